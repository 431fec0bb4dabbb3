//! Puts `memory.x` where the linker finds it and generates the model module with `ember-build`.
//!
//! `EMBER_MODEL` (an .ember file) and `EMBER_INPUTS` (its raw input batch) choose the model;
//! without `EMBER_MODEL`, the committed digits model and its 32 test samples are used.

use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::copy("memory.x", out.join("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=EMBER_MODEL");
    println!("cargo:rerun-if-env-changed=EMBER_INPUTS");

    let (model, inputs) = match std::env::var_os("EMBER_MODEL") {
        Some(model) => (PathBuf::from(model), std::env::var_os("EMBER_INPUTS").map(PathBuf::from)),
        None => {
            let models = Path::new("../models");
            (models.join("digits_int8.ember"), Some(models.join("digits_inputs.bin")))
        }
    };
    let inputs = inputs.ok_or_else(|| anyhow::anyhow!("EMBER_MODEL is set but EMBER_INPUTS is not"))?;
    println!("cargo:rerun-if-changed={}", model.display());
    println!("cargo:rerun-if-changed={}", inputs.display());
    ember_build::generate(&model, Some(&inputs), &out.join("model.rs"))
}
