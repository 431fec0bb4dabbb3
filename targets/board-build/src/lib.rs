//! What every board crate's `build.rs` does, so that it is one call:
//!
//! ```ignore
//! fn main() -> ember_board_build::Result<()> {
//!     ember_board_build::firmware()
//! }
//! ```
//!
//! `EMBER_MODEL` (an `.ember` file) and `EMBER_INPUTS` (its raw input batch) choose the model;
//! without `EMBER_MODEL`, the committed digits model and its 32 test samples in
//! `targets/models/` are used.
#![deny(missing_docs)]

use std::env;
use std::path::{Path, PathBuf};

pub use anyhow::Result;
use anyhow::{anyhow, Context};

/// For Cortex-M firmware: [`memory_x`], then [`model`].
pub fn firmware() -> Result<()> {
    memory_x()?;
    model()
}

/// Copies the crate's `memory.x` (and `device.x`, if it has one) to `OUT_DIR` and puts that on
/// the linker's search path, where cortex-m-rt's `link.x` finds them.
pub fn memory_x() -> Result<()> {
    let out = out_dir()?;
    std::fs::copy("memory.x", out.join("memory.x")).context("cannot copy memory.x")?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    // A board without a device crate (the QEMU boards) brings its own interrupt list for
    // cortex-m-rt's `device` feature; a device crate's build script provides it otherwise.
    if Path::new("device.x").exists() {
        std::fs::copy("device.x", out.join("device.x")).context("cannot copy device.x")?;
        println!("cargo:rerun-if-changed=device.x");
    }
    Ok(())
}

/// Generates `OUT_DIR/model.rs` with `ember_build::generate` from `EMBER_MODEL` and
/// `EMBER_INPUTS`, or from the committed digits model and inputs when `EMBER_MODEL` is unset.
pub fn model() -> Result<()> {
    println!("cargo:rerun-if-env-changed=EMBER_MODEL");
    println!("cargo:rerun-if-env-changed=EMBER_INPUTS");
    let (model, inputs) = match env::var_os("EMBER_MODEL") {
        Some(model) => {
            let inputs = env::var_os("EMBER_INPUTS")
                .ok_or_else(|| anyhow!("EMBER_MODEL is set but EMBER_INPUTS is not"))?;
            (PathBuf::from(model), PathBuf::from(inputs))
        }
        None => {
            let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
            (models.join("digits_int8.ember"), models.join("digits_inputs.bin"))
        }
    };
    println!("cargo:rerun-if-changed={}", model.display());
    println!("cargo:rerun-if-changed={}", inputs.display());
    ember_build::generate(&model, Some(&inputs), &out_dir()?.join("model.rs"))
}

/// The build script's output folder.
fn out_dir() -> Result<PathBuf> {
    Ok(PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR is not set: call this from a build script")?))
}
