//! `cargo xtask`: project automation that needs more than cargo.
//!
//! `cargo xtask demo` quantizes the bundled digits model, runs it on an emulated Cortex-M4F
//! (QEMU `mps2-an386`) and prints predictions, accuracy, instructions per inference and memory.

mod board;
mod demo;
mod setup;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Ember project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize the digits CNN, run it on the emulated Cortex-M4F, print the figures.
    Demo {
        /// How many test images to run on the board.
        #[arg(long, default_value_t = 32)]
        images: usize,
    },
}

fn main() {
    let result = match Cli::parse().command {
        Command::Demo { images } => demo::run(images),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The workspace root.
fn root() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Runs a command, failing with its name and status.
fn run_checked(cmd: &mut std::process::Command) -> Result<std::process::Output> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}
