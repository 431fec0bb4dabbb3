//! `cargo xtask bench-host`: the criterion benches (`benches/kernels.rs`, `benches/inference.rs`)
//! in one run, their medians written to docs/BENCHMARKS.md: MACs per second of each kernel, and
//! each model's latency on Ember beside tract's on the same ONNX file, with the ratio.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde::Deserialize;

use crate::bench::{markdown, replace_section, thousands};
use crate::root;

/// The kernel benches' criterion groups.
const KERNEL_GROUPS: &[&str] = &["conv2d", "depthwise_conv2d", "fully_connected", "add"];
/// The model benches' criterion groups.
const MODEL_GROUPS: &[&str] = &["digits", "kws", "vww", "ic", "ad"];
/// The docs/BENCHMARKS.md sections this command rewrites.
const KERNEL_SECTION: &str = "## Host kernels (criterion)";
const MODEL_SECTION: &str = "## Host latency: Ember against tract (criterion)";

/// One benchmark's `new/benchmark.json`.
#[derive(Deserialize)]
struct Benchmark {
    group_id: String,
    function_id: String,
    throughput: Option<Throughput>,
}

#[derive(Deserialize)]
enum Throughput {
    Elements(u64),
    #[serde(other)]
    Other,
}

/// One benchmark's `new/estimates.json`, the part read here.
#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// A benchmark's result: group, function id, median nanoseconds, elements per iteration.
struct Measured {
    group: String,
    id: String,
    nanos: f64,
    elements: Option<u64>,
}

/// Runs `cargo xtask bench-host`; `criterion_args` go to both benches (e.g. `--measurement-time 3`).
pub fn run(criterion_args: &[String], docs: bool, command: &str) -> Result<()> {
    let dir = root().join("target/criterion");
    // Results of earlier runs would mix with this one's.
    for group in KERNEL_GROUPS.iter().chain(MODEL_GROUPS) {
        let _ = std::fs::remove_dir_all(dir.join(group));
    }
    let status = Command::new("cargo")
        .args(["bench", "--bench", "kernels", "--bench", "inference", "--"])
        .args(criterion_args)
        .current_dir(root())
        .status()
        .context("cannot run cargo bench")?;
    ensure!(status.success(), "cargo bench failed ({status})");
    let measured = read(&dir)?;
    let cpu = cpu_name();
    let kernels = kernel_section(&measured, command, &cpu);
    let models = model_section(&measured, command, &cpu);
    println!("{kernels}\n{models}");
    if docs {
        let path = root().join("docs/BENCHMARKS.md");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let text = replace_section(&replace_section(&text, KERNEL_SECTION, &kernels), MODEL_SECTION, &models);
        std::fs::write(&path, text)?;
        eprintln!("wrote docs/BENCHMARKS.md");
    }
    Ok(())
}

/// Every benchmark under `dir` (criterion's output folder) of this command's groups.
fn read(dir: &Path) -> Result<Vec<Measured>> {
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = KERNEL_GROUPS.iter().chain(MODEL_GROUPS).map(|g| dir.join(g)).collect();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == "new") {
                let bench: Benchmark = serde_json::from_slice(&std::fs::read(path.join("benchmark.json"))?)?;
                let estimates: Estimates =
                    serde_json::from_slice(&std::fs::read(path.join("estimates.json"))?)?;
                found.push(Measured {
                    group: bench.group_id,
                    id: bench.function_id,
                    nanos: estimates.median.point_estimate,
                    elements: match bench.throughput {
                        Some(Throughput::Elements(n)) => Some(n),
                        _ => None,
                    },
                });
            } else if path.is_dir() {
                stack.push(path);
            }
        }
    }
    ensure!(!found.is_empty(), "no criterion results under {}", dir.display());
    Ok(found)
}

/// The host CPU's model name, for the docs.
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// `1234.5` ns → `1.23 µs`.
fn duration(nanos: f64) -> String {
    match nanos {
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

fn find<'a>(measured: &'a [Measured], group: &str, id: &str) -> Option<&'a Measured> {
    measured.iter().find(|m| m.group == group && m.id == id)
}

/// Per kernel and layer shape: MACs, then int8 and f32 median time and GMAC/s.
fn kernel_section(measured: &[Measured], command: &str, cpu: &str) -> String {
    let cell = |m: Option<&Measured>| {
        m.map_or("–".to_string(), |m| match m.elements {
            Some(e) => format!("{} ({:.2} GMAC/s)", duration(m.nanos), e as f64 / m.nanos),
            None => duration(m.nanos),
        })
    };
    let mut rows = Vec::new();
    for group in KERNEL_GROUPS {
        let mut layers: Vec<&str> = measured
            .iter()
            .filter(|m| m.group == *group)
            .filter_map(|m| m.id.split_once('/').map(|(l, _)| l))
            .collect();
        layers.sort_unstable();
        layers.dedup();
        for layer in layers {
            let int8 = find(measured, group, &format!("{layer}/int8"));
            let macs = int8.and_then(|m| m.elements).map_or("–".into(), thousands);
            rows.push(vec![
                group.to_string(),
                layer.to_string(),
                macs,
                cell(int8),
                cell(find(measured, group, &format!("{layer}/f32"))),
            ]);
        }
    }
    let heads =
        [("kernel", false), ("layer", false), ("MACs (add: elements)", true), ("int8", true), ("f32", true)]
            .map(|(h, r)| (h.to_string(), r));
    format!(
        "{KERNEL_SECTION}\n\n`{command}` (`benches/kernels.rs`)\n\n\
         {cpu}, {arch}. Median of criterion's estimate per call; GMAC/s is MACs (add: elements)\n\
         per nanosecond. int8 runs the kernels the runtime selects for this host ({selected});\n\
         f32 the f32 kernels. Random inputs and weights, per-channel requantization, layer shapes\n\
         of the MLPerf Tiny models (kernel, stride, input → output channels).\n\n{}",
        markdown(&heads, rows),
        arch = std::env::consts::ARCH,
        selected = if cfg!(target_arch = "aarch64") {
            "NEON, SDOT where the CPU has it"
        } else {
            "the reference kernels: Ember has no SIMD kernels for this architecture"
        },
    )
}

/// Per model: Ember's latency at each precision, tract's f32, and the ratios to tract.
fn model_section(measured: &[Measured], command: &str, cpu: &str) -> String {
    let time = |group: &str, id: &str| find(measured, group, id).map(|m| m.nanos);
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(o), Some(t)) => format!("{:.2}", o / t),
        _ => "–".into(),
    };
    let rows = MODEL_GROUPS
        .iter()
        .filter(|g| measured.iter().any(|m| m.group == **g))
        .map(|g| {
            let [int8, f16, f32, tract] =
                ["ember-int8", "ember-f16", "ember-f32", "tract-f32"].map(|id| time(g, id));
            let show = |t: Option<f64>| t.map_or("–".into(), duration);
            vec![
                g.to_string(),
                show(int8),
                show(f16),
                show(f32),
                show(tract),
                ratio(int8, tract),
                ratio(f32, tract),
            ]
        })
        .collect();
    let heads = [
        ("model", false),
        ("Ember int8", true),
        ("Ember f16 weights", true),
        ("Ember f32", true),
        ("tract f32", true),
        ("Ember int8 / tract f32", true),
        ("Ember f32 / tract f32", true),
    ]
    .map(|(h, r)| (h.to_string(), r));
    format!(
        "{MODEL_SECTION}\n\n`{command}` (`benches/inference.rs`)\n\n\
         {cpu}, {arch}. Median of criterion's estimate for one inference of an already-loaded\n\
         model (Ember: `set_input` and `invoke`; tract: `tract-onnx` 0.23.9's optimized plan of the same\n\
         ONNX file, `run` on one sample, its input copy included), all in one process. Below 1 Ember\n\
         is faster. tract's own int8 path needs an int8 ONNX graph (QLinear or QDQ ops): the repository\n\
         has none of these models in that form, so only tract's f32 is measured. Ember runs the\n\
         kernels it selects for this host ({selected}).\n\n{}",
        markdown(&heads, rows),
        arch = std::env::consts::ARCH,
        selected = if cfg!(target_arch = "aarch64") {
            "NEON, SDOT where the CPU has it"
        } else {
            "the reference kernels"
        },
    )
}
