//! `cargo xtask`: project automation that needs more than cargo.
//!
//! `cargo xtask demo` quantizes the bundled digits model, runs it on an emulated Cortex-M4F
//! (QEMU `mps2-an386`) and prints predictions, accuracy, instructions per inference and memory.
//! `cargo xtask bench-device` runs the MLPerf Tiny models on the emulated boards and writes
//! `benches/results/device.json` and the on-device section of docs/BENCHMARKS.md; with
//! `--tflite` it runs their int8 `.tflite` files as imported, checks the boards' output bytes
//! against TFLite's reference kernels, and writes `device-tflite.json` and its own section.
//! `cargo xtask bench-host` runs the criterion benches (kernels, and models beside tract) and
//! writes their tables in docs/BENCHMARKS.md.
//! `cargo xtask setup` installs the rustup targets and tools every board crate needs.

mod bench;
mod bench_host;
mod board;
mod demo;
mod setup;

use anyhow::Result;
use clap::{Parser, Subcommand};
use ember::format::layout::WeightLayout;

#[derive(Parser)]
#[command(about = "Ember project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the board crates need: rustup targets, QEMU (system and user mode) and the
    /// aarch64 cross linker (apt-get, when run as root on Debian/Ubuntu).
    Setup,
    /// Quantize the digits CNN, run it on the emulated Cortex-M4F, print the figures.
    Demo {
        /// How many test images to run on the board.
        #[arg(long, default_value_t = 32)]
        images: usize,
    },
    /// Run the criterion benches of the kernels and the models (Ember beside tract) and write
    /// their tables in docs/BENCHMARKS.md.
    BenchHost {
        /// Don't rewrite docs/BENCHMARKS.md.
        #[arg(long)]
        no_docs: bool,
        /// Arguments for criterion, after `--` (e.g. `-- --measurement-time 3`).
        #[arg(last = true)]
        criterion: Vec<String>,
    },
    /// Quantize the MLPerf Tiny models (int8), run them on the emulated boards, write
    /// benches/results/device.json and the on-device table in docs/BENCHMARKS.md (with
    /// --tflite: import their int8 .tflite files, check the outputs against TFLite's reference
    /// kernels, write benches/results/device-tflite.json and that table).
    BenchDevice {
        /// Board to run on (repeatable): qemu-m4, qemu-m7, qemu-m55. Default: every board
        /// known to build.
        #[arg(long = "board")]
        boards: Vec<String>,
        /// Model to run instead of the MLPerf Tiny models (repeatable): ONNX (quantized at
        /// int8) or int8 .tflite (imported, run on the inputs of NAME.ref.npz beside it, or of
        /// models/tflite-ref/ for the MLPerf Tiny files).
        #[arg(long = "model")]
        models: Vec<std::path::PathBuf>,
        /// Run the MLPerf Tiny int8 .tflite files of models/tflite-ref/ as imported, on their
        /// reference inputs, and check the boards' output bytes against TFLite's reference
        /// kernels' (a mismatch fails the command).
        #[arg(long, conflicts_with = "models")]
        tflite: bool,
        /// Input range `LO..HI` of the synthetic calibration and test inputs (needed for ONNX
        /// models outside the MLPerf Tiny table).
        #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
        range: Option<(f32, f32)>,
        /// Longest one firmware run may take, in seconds.
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
        /// Where to write the JSON results (default: benches/results/device.json, with --tflite
        /// or .tflite models benches/results/device-tflite.json).
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Don't rewrite docs/BENCHMARKS.md.
        #[arg(long)]
        no_docs: bool,
        /// Don't run the ONNX models a second time on the portable reference kernels (imported
        /// .tflite models never are).
        #[arg(long)]
        no_reference: bool,
        /// Lay the models' int8 convolution and fully connected weights out as `ember-quantize
        /// --weight-layout` does: standard, dsp-pairs or dsp-pairs-wide (results go to a JSON
        /// file and docs section of their own).
        #[arg(long, default_value = "standard", value_parser = parse_layout)]
        weight_layout: WeightLayout,
    },
}

fn parse_layout(s: &str) -> Result<WeightLayout, String> {
    WeightLayout::FILTERS.into_iter().find(|l| l.name() == s).ok_or_else(|| {
        let names: Vec<&str> = WeightLayout::FILTERS.iter().map(|l| l.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

fn parse_range(s: &str) -> Result<(f32, f32), String> {
    let (lo, hi) = s.split_once("..").ok_or("expected LO..HI, e.g. -1..1")?;
    let (lo, hi): (f32, f32) = (
        lo.trim().parse().map_err(|e| format!("{lo}: {e}"))?,
        hi.trim().parse().map_err(|e| format!("{hi}: {e}"))?,
    );
    if lo.is_finite() && hi.is_finite() && lo <= hi {
        Ok((lo, hi))
    } else {
        Err(format!("{s}: LO must not exceed HI"))
    }
}

fn main() {
    let result = match Cli::parse().command {
        Command::Setup => setup::all(),
        Command::Demo { images } => demo::run(images),
        Command::BenchHost { no_docs, criterion } => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            bench_host::run(&criterion, !no_docs, &format!("cargo xtask {}", args.join(" ")))
        }
        Command::BenchDevice {
            boards,
            models,
            tflite,
            range,
            timeout_secs,
            json,
            no_docs,
            no_reference,
            weight_layout,
        } => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            bench::run(bench::Options {
                boards,
                models,
                tflite,
                range,
                timeout: std::time::Duration::from_secs(timeout_secs),
                json,
                docs: !no_docs,
                reference: !no_reference,
                layout: weight_layout,
                command: format!("cargo xtask {}", args.join(" ")),
            })
        }
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
