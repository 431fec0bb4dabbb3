//! `cargo xtask bench-device`: the MLPerf Tiny models (or given ONNX files) quantized at int8 and
//! run on the emulated boards; instruction counts, memory and the output check against the host,
//! written to `benches/results/device.json` and docs/BENCHMARKS.md.
//!
//! Under QEMU (`clock=instructions`) the figures are instructions executed, not cycles and not
//! time (see targets/README.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ember::format::DType;
use ember::Model;
use ember_quantize::emit::Precision;
use ember_quantize::host::{to_internal, ModelFile};
use ember_quantize::inspect::op_macs;
use ember_quantize::npy::read_npy;
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::build;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

use crate::board::{self, elf_sizes, memory_regions, Board};
use crate::{root, setup};

/// A model to benchmark: its ONNX file and the input range its README gives.
struct Spec {
    name: &'static str,
    file: &'static str,
    range: (f32, f32),
}

/// The MLPerf Tiny models, with the input ranges tests/mlperf.rs calibrates with.
const MLPERF: &[Spec] = &[
    Spec { name: "kws", file: "models/mlperf-tiny/kws/kws_dscnn_nhwc.onnx", range: (-123.0, 25.0) },
    Spec { name: "vww", file: "models/mlperf-tiny/vww/vww_mobilenetv1_025_nhwc.onnx", range: (0.0, 1.0) },
    Spec { name: "ic", file: "models/mlperf-tiny/ic/ic_resnet8_nhwc.onnx", range: (0.0, 255.0) },
    Spec { name: "ad", file: "models/mlperf-tiny/ad/ad_fc_autoencoder.onnx", range: (-67.0, 2.0) },
];

/// Synthetic calibration samples per model (seed 1), as in tests/mlperf.rs.
const CALIBRATION: usize = 64;
/// Samples in each board's input batch (seed 2).
const BATCH: usize = 4;
/// Stack the firmware needs beside its statics; a board whose RAM leaves less is too small.
const STACK_MARGIN: u64 = 16 << 10;
/// The docs/BENCHMARKS.md section this command rewrites.
const SECTION: &str = "## On-device (QEMU) instruction counts";

/// What `cargo xtask bench-device` was asked.
pub struct Options {
    /// Board names (`--board`); empty: the default boards.
    pub boards: Vec<String>,
    /// ONNX files (`--model`); empty: the MLPerf Tiny models.
    pub models: Vec<PathBuf>,
    /// Input range for models not in the MLPerf table.
    pub range: Option<(f32, f32)>,
    /// Longest a board may run one model.
    pub timeout: Duration,
    /// Where to write the JSON results.
    pub json: PathBuf,
    /// Whether to rewrite the docs/BENCHMARKS.md section.
    pub docs: bool,
    /// The command line, for the docs.
    pub command: String,
}

/// One (model, board) run, as written to `benches/results/device.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Model name (`kws`, `vww`, `ic`, `ad` or the file stem).
    pub model: String,
    /// ONNX file, relative to the repository root where it is inside it.
    pub file: String,
    /// Board name (`qemu-m4`, …).
    pub board: String,
    /// Quantization (`int8`).
    pub precision: String,
    /// What the board's ticks count (`instructions` under QEMU, `cycles` on hardware).
    pub clock: Option<String>,
    /// Samples in the batch.
    pub samples: usize,
    /// Mean instructions per inference (when `clock` is `instructions`).
    pub instructions: Option<u64>,
    /// Mean cycles per inference (when `clock` is `cycles`).
    pub cycles: Option<u64>,
    /// Multiply-accumulates per inference, summed over the ops.
    pub macs: u64,
    /// Arena bytes of the model's memory plan.
    pub arena_bytes: u64,
    /// Arena bytes a greedy-by-size plan (TFLite Micro's planner) would need for the same model.
    pub arena_greedy_bytes: u64,
    /// Model file bytes (in flash).
    pub model_bytes: u64,
    /// Input batch bytes (in flash).
    pub input_bytes: u64,
    /// Flash bytes of the firmware image.
    pub flash_bytes: Option<u64>,
    /// Flash minus the input batch: code and model, what TFLite Micro's firmware text counts.
    pub firmware_bytes: Option<u64>,
    /// Flash minus the model and the input batch: code, tables and other constants.
    pub code_bytes: Option<u64>,
    /// Static RAM (`.data`, `.bss`, `.uninit`; includes the arena).
    pub ram_bytes: Option<u64>,
    /// Peak stack use.
    pub stack_bytes: Option<u64>,
    /// The board's CRC32 over all output bytes.
    pub output_crc32: Option<String>,
    /// The host's CRC32 of the same outputs.
    pub host_output_crc32: String,
    /// Whether the board's and the host's output bytes are equal.
    pub output_matches_host: Option<bool>,
    /// Whether the firmware fits the board's memory map.
    pub fits: bool,
    /// Why the model did not run, when it did not.
    pub note: Option<String>,
}

impl Run {
    /// Instructions (or cycles) per inference, whichever the board counts.
    fn ticks(&self) -> Option<u64> {
        self.instructions.or(self.cycles)
    }
}

/// A quantized model and its batch, ready for the boards.
struct Prepared {
    name: String,
    file: String,
    model_path: PathBuf,
    inputs_path: PathBuf,
    model_bytes: u64,
    input_bytes: u64,
    samples: usize,
    macs: u64,
    arena_bytes: u64,
    arena_greedy_bytes: u64,
    host_crc: u32,
}

/// Runs `cargo xtask bench-device`.
pub fn run(options: Options) -> Result<()> {
    let boards: Vec<&Board> = if options.boards.is_empty() {
        let (present, missing): (Vec<&Board>, Vec<&Board>) =
            board::DEFAULT_BOARDS.iter().copied().partition(|b| root().join(b.dir).is_dir());
        for b in missing {
            eprintln!("warning: skipping board {}: no crate at {}", b.name, b.dir);
        }
        present
    } else {
        options.boards.iter().map(|b| board::by_name(b)).collect::<Result<_>>()?
    };
    for b in &boards {
        ensure!(root().join(b.dir).is_dir(), "board {}: no crate at {}", b.name, b.dir);
        setup::rustup_target(b.target)?;
    }
    setup::qemu_boards()?;
    let specs: Vec<(String, PathBuf, (f32, f32))> = if options.models.is_empty() {
        MLPERF
            .iter()
            .map(|s| {
                let path = root().join(s.file);
                let path = path.canonicalize().with_context(|| format!("cannot find {}", path.display()))?;
                Ok((s.name.to_string(), path, s.range))
            })
            .collect::<Result<_>>()?
    } else {
        options.models.iter().map(|m| model_spec(m, options.range)).collect::<Result<_>>()?
    };

    let work = root().join("target/bench-device");
    std::fs::create_dir_all(&work)?;
    let mut runs = Vec::new();
    for (name, path, range) in &specs {
        let started = Instant::now();
        let prepared = prepare(name, path, *range, &work)?;
        eprintln!(
            "{name}: quantized ({} model bytes, {} MACs, arena {} bytes) in {:.1} s",
            prepared.model_bytes,
            prepared.macs,
            prepared.arena_bytes,
            started.elapsed().as_secs_f64()
        );
        for b in &boards {
            let started = Instant::now();
            let run = run_on(b, &prepared, options.timeout)?;
            eprintln!(
                "{name} on {}: {} in {:.1} s",
                b.name,
                match (&run.note, run.ticks()) {
                    (Some(note), _) => note.clone(),
                    (None, t) => format!(
                        "{} {} per inference, output = host: {}",
                        t.unwrap_or(0),
                        run.clock.as_deref().unwrap_or("ticks"),
                        yes_no(run.output_matches_host)
                    ),
                },
                started.elapsed().as_secs_f64()
            );
            runs.push(run);
        }
    }

    if let Some(dir) = options.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_string_pretty(&runs)? + "\n";
    std::fs::write(&options.json, json).with_context(|| format!("writing {}", options.json.display()))?;
    let section = section(&runs, &options.command, &versions());
    println!("{section}");
    if options.docs {
        let docs = root().join("docs/BENCHMARKS.md");
        let text = std::fs::read_to_string(&docs).with_context(|| format!("reading {}", docs.display()))?;
        std::fs::write(&docs, replace_section(&text, &section))?;
    }
    eprintln!(
        "wrote {}{}",
        options.json.display(),
        if options.docs { " and docs/BENCHMARKS.md" } else { "" }
    );

    let differ: Vec<String> = runs
        .iter()
        .filter(|r| r.output_matches_host == Some(false))
        .map(|r| format!("{} on {}", r.model, r.board))
        .collect();
    ensure!(differ.is_empty(), "board outputs differ from the host's: {}", differ.join(", "));
    Ok(())
}

/// Name and input range for a `--model` file: the MLPerf table's when it is one of those.
fn model_spec(path: &Path, range: Option<(f32, f32)>) -> Result<(String, PathBuf, (f32, f32))> {
    let path = path.canonicalize().with_context(|| format!("cannot find {}", path.display()))?;
    let known = MLPERF.iter().find(|s| root().join(s.file).canonicalize().is_ok_and(|p| p == path));
    if let Some(s) = known {
        return Ok((s.name.to_string(), path, range.unwrap_or(s.range)));
    }
    let name = path.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let range =
        range.with_context(|| format!("{}: give its input range with --range LO..HI", path.display()))?;
    Ok((name, path, range))
}

/// Seeded uniform samples in `range`, as tests/mlperf.rs makes them.
fn synthetic(shape: &[usize], range: (f32, f32), count: usize, seed: u64) -> Vec<ArrayD<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count).map(|_| ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(range.0..=range.1))).collect()
}

/// The real samples tests/mlperf.rs calibrates with (every second one is used there too).
fn real_samples(path: &Path, shape: &[usize]) -> Result<Vec<ArrayD<f32>>> {
    let dir = root().join("models/mlperf-tiny");
    let is = |file: &str| dir.join(file).canonicalize().is_ok_and(|p| p == path);
    if is("ad/ad_fc_autoencoder.onnx") {
        let spec = read_npy(&dir.join("ad/toycar_normal_id01_logmel_200x128.npy"))?;
        let flat: Vec<f32> = spec.iter().copied().collect();
        return (0..=200 - 5)
            .map(|f| Ok(ArrayD::from_shape_vec(IxDyn(shape), flat[f * 128..(f + 5) * 128].to_vec())?))
            .collect();
    }
    if is("kws/kws_dscnn_nhwc.onnx") {
        let x = read_npy(&dir.join("kws/kws_input_float_1x49x10x1.npy"))?;
        return Ok(vec![x.into_shape_with_order(IxDyn(shape))?]);
    }
    Ok(Vec::new())
}

/// Quantizes `path` at int8, writes the model and its input batch under `work`, and computes
/// what the host outputs for that batch.
fn prepare(name: &str, path: &Path, range: (f32, f32), work: &Path) -> Result<Prepared> {
    let graph = load_onnx(path, &[]).with_context(|| format!("loading {}", path.display()))?;
    ensure!(
        graph.inputs.len() == 1,
        "{name}: the boards feed one input, the model has {}",
        graph.inputs.len()
    );
    let shape = graph.inputs[0].onnx_shape.clone();
    let mut calib: Vec<Vec<ArrayD<f32>>> =
        synthetic(&shape, range, CALIBRATION, 1).into_iter().map(|x| vec![x]).collect();
    calib.extend(real_samples(path, &shape)?.into_iter().step_by(2).map(|x| vec![x]));
    let written =
        build(&graph, Precision::Int8, Some(&calib)).with_context(|| format!("quantizing {name}"))?;
    let file = ModelFile::from_bytes(&written.bytes);
    let model = file.model()?;

    let batch = input_batch(&model, &synthetic(&shape, range, BATCH, 2))?;
    let model_path = work.join(format!("{name}_int8.ember"));
    let inputs_path = work.join(format!("{name}_inputs.bin"));
    std::fs::write(&model_path, &written.bytes)?;
    std::fs::write(&inputs_path, &batch)?;
    let macs = (0..model.op_count() as u16).map(|i| op_macs(&model, i)).sum();
    let file_name = path.strip_prefix(root().canonicalize()?).unwrap_or(path).display().to_string();
    Ok(Prepared {
        name: name.to_string(),
        file: file_name,
        model_path,
        inputs_path,
        model_bytes: written.bytes.len() as u64,
        input_bytes: batch.len() as u64,
        samples: BATCH,
        macs,
        arena_bytes: model.arena_bytes() as u64,
        arena_greedy_bytes: written.plan.greedy_bytes as u64,
        host_crc: board::host_output_crc(&model, &batch)?,
    })
}

/// Raw input-0 bytes of `samples` (ONNX layout) in the model's internal layout and element type.
fn input_batch(model: &Model, samples: &[ArrayD<f32>]) -> Result<Vec<u8>> {
    let input = model.input(0)?;
    let (scale, zero_point) = input.tensor.scale_zero_point();
    let mut batch = Vec::new();
    for sample in samples {
        let values = to_internal(&input, sample)?;
        match input.tensor.dtype {
            DType::I8 => {
                batch.extend(values.iter().map(|&v| ember::quant::quantize_i8(v, scale, zero_point) as u8))
            }
            DType::F32 => batch.extend(values.iter().flat_map(|v| v.to_le_bytes())),
            other => bail!("input 0 is {}: the boards take int8 or f32 inputs", other.name()),
        }
    }
    Ok(batch)
}

/// Builds and runs `prepared` on `board`; a model that does not fit becomes a run with a note.
fn run_on(board: &Board, prepared: &Prepared, timeout: Duration) -> Result<Run> {
    let mut run = Run {
        model: prepared.name.clone(),
        file: prepared.file.clone(),
        board: board.name.to_string(),
        precision: "int8".into(),
        clock: None,
        samples: prepared.samples,
        instructions: None,
        cycles: None,
        macs: prepared.macs,
        arena_bytes: prepared.arena_bytes,
        arena_greedy_bytes: prepared.arena_greedy_bytes,
        model_bytes: prepared.model_bytes,
        input_bytes: prepared.input_bytes,
        flash_bytes: None,
        firmware_bytes: None,
        code_bytes: None,
        ram_bytes: None,
        stack_bytes: None,
        output_crc32: None,
        host_output_crc32: hex(prepared.host_crc),
        output_matches_host: None,
        fits: false,
        note: None,
    };
    let memory_x = root().join(board.dir).join("memory.x");
    let (flash_len, ram_len) = memory_regions(&std::fs::read_to_string(&memory_x)?)
        .with_context(|| format!("reading {}", memory_x.display()))?;
    if prepared.model_bytes + prepared.input_bytes > flash_len {
        run.note = Some(format!(
            "does not fit: model + inputs {} bytes > {flash_len} bytes of flash",
            prepared.model_bytes + prepared.input_bytes
        ));
        return Ok(run);
    }
    if prepared.arena_bytes + STACK_MARGIN > ram_len {
        run.note = Some(format!(
            "does not fit: arena {} bytes + {STACK_MARGIN} bytes of stack > {ram_len} bytes of RAM",
            prepared.arena_bytes
        ));
        return Ok(run);
    }
    let elf = match board::build(board, &prepared.model_path, &prepared.inputs_path)? {
        Ok(elf) => elf,
        Err(why) => {
            run.note = Some(format!("does not fit: {why}"));
            return Ok(run);
        }
    };
    let sizes = elf_sizes(&elf)?;
    run.flash_bytes = Some(sizes.flash);
    run.firmware_bytes = Some(sizes.flash.saturating_sub(prepared.input_bytes));
    run.code_bytes = Some(sizes.flash.saturating_sub(prepared.model_bytes + prepared.input_bytes));
    run.ram_bytes = Some(sizes.ram);
    if sizes.ram + STACK_MARGIN > ram_len {
        run.note = Some(format!(
            "does not fit: {} bytes of static RAM + {STACK_MARGIN} bytes of stack > {ram_len} bytes of RAM",
            sizes.ram
        ));
        return Ok(run);
    }
    run.fits = true;
    let report = board::run_built(board, &prepared.model_path, &prepared.inputs_path, timeout)?;
    ensure!(
        report.samples.len() == prepared.samples,
        "{} on {}: the board ran {} of {} samples",
        prepared.name,
        board.name,
        report.samples.len(),
        prepared.samples
    );
    ensure!(
        report.arena_bytes == prepared.arena_bytes,
        "{} on {}: the board's arena is {} bytes, the model's {}",
        prepared.name,
        board.name,
        report.arena_bytes,
        prepared.arena_bytes
    );
    match report.clock.as_str() {
        "instructions" => run.instructions = Some(report.ticks_per_inference),
        "cycles" => run.cycles = Some(report.ticks_per_inference),
        other => bail!("board {} reports an unknown clock {other:?}", board.name),
    }
    run.clock = Some(report.clock);
    run.stack_bytes = Some(report.stack_bytes);
    run.output_crc32 = Some(hex(report.output_crc32));
    run.output_matches_host = Some(report.output_crc32 == prepared.host_crc);
    Ok(run)
}

fn hex(crc: u32) -> String {
    format!("{crc:#010x}")
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "–",
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

/// rustc's and QEMU's versions, for the docs.
fn versions() -> String {
    let first_line = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
            .unwrap_or_else(|| format!("{cmd} (unknown version)"))
    };
    format!("{}, {}", first_line("rustc", "--version"), first_line("qemu-system-arm", "--version"))
}

/// The markdown table: one row per run.
pub fn table(runs: &[Run]) -> String {
    let mut s = String::from(
        "| model | board | instructions / inference | MACs | MACs / instruction | arena | arena, greedy by size | flash | code | RAM | stack | output = host |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    let bytes = |b: Option<u64>| b.map_or("–".into(), thousands);
    for r in runs {
        let (ticks, per) = match (r.instructions, r.cycles) {
            (Some(i), _) => (thousands(i), format!("{:.3}", r.macs as f64 / i.max(1) as f64)),
            (None, Some(c)) => (format!("{} cycles", thousands(c)), "–".into()),
            (None, None) => (r.note.clone().unwrap_or_else(|| "–".into()), "–".into()),
        };
        s += &format!(
            "| {} | {} | {ticks} | {} | {per} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.model,
            r.board,
            thousands(r.macs),
            thousands(r.arena_bytes),
            thousands(r.arena_greedy_bytes),
            bytes(r.flash_bytes),
            bytes(r.code_bytes),
            bytes(r.ram_bytes),
            bytes(r.stack_bytes),
            yes_no(r.output_matches_host)
        );
    }
    s
}

/// TFLite Micro's memory for an MLPerf Tiny int8 model on a Cortex-M4 (issue 3's figures: the
/// interpreter's `arena_used_bytes`, firmware text including the model, and that text minus the
/// model, with the same minimal startup and printing).
struct Tflm {
    model: &'static str,
    arena: u64,
    firmware: u64,
    code: u64,
}

const TFLM: &[Tflm] = &[
    Tflm { model: "kws", arena: 22_820, firmware: 142_884, code: 88_948 },
    Tflm { model: "vww", arena: 100_708, firmware: 422_236, code: 88_948 },
    Tflm { model: "ic", arena: 54_996, firmware: 182_304, code: 83_808 },
    Tflm { model: "ad", arena: 2_580, firmware: 313_204, code: 36_228 },
];

/// The comparison with TFLite Micro: Ember's Cortex-M4 runs of the MLPerf Tiny models against
/// [`TFLM`]; `None` when no such run exists.
pub fn tflm_table(runs: &[Run]) -> Option<String> {
    let mut s = String::from(
        "| model | arena: Ember / TFLM | code + model: Ember / TFLM | code: Ember / TFLM (goal ≤ 50 %) |\n\
         |---|--:|--:|--:|\n",
    );
    let ratio = |ours: u64, theirs: u64| {
        format!("{} / {} ({:.0} %)", thousands(ours), thousands(theirs), 100.0 * ours as f64 / theirs as f64)
    };
    let mut rows = 0;
    for t in TFLM {
        let Some(r) = runs.iter().find(|r| r.model == t.model && r.board == "qemu-m4") else { continue };
        let (Some(firmware), Some(code)) = (r.firmware_bytes, r.code_bytes) else { continue };
        s += &format!(
            "| {} | {} | {} | {} |\n",
            t.model,
            ratio(r.arena_bytes, t.arena),
            ratio(firmware, t.firmware),
            ratio(code, t.code)
        );
        rows += 1;
    }
    (rows > 0).then_some(s)
}

/// The docs section: heading, command, what the numbers are, the table.
pub fn section(runs: &[Run], command: &str, versions: &str) -> String {
    let samples = runs.first().map_or(BATCH, |r| r.samples);
    format!(
        "{SECTION}\n\n\
         `{command}`\n\n\
         {versions}.\n\
         Release build of the board crates (`opt-level = \"s\"`, LTO, one codegen unit). Each model is quantized at int8\n\
         with 64 seeded synthetic calibration inputs in its README's input range (plus the real\n\
         samples tests/mlperf.rs uses) and run on a batch of {samples} seeded inputs; the raw results\n\
         are in `benches/results/device.json`.\n\n\
         Instructions are QEMU `-icount` instruction counts, the mean per inference over the batch,\n\
         counted in steps of the board's SysTick tick and identical on every run: not cycles and not\n\
         time (see targets/README.md). MACs / instruction compares kernels and builds, not chips.\n\
         Bytes: arena is the model's memory plan (ember-quantize's planner), next to what TFLite\n\
         Micro's greedy-by-size planner needs for the same tensors; flash is the whole image; code is flash minus the\n\
         model file and the input batch; RAM is static RAM (arena included); stack is the painted\n\
         peak. Output = host: the board's output bytes for the batch equal the host runtime's (CRC32).\n\n{}{}",
        table(runs),
        tflm_table(runs).map_or(String::new(), |t| format!(
            "\nAgainst TFLite Micro on a Cortex-M4 (its figures from issue 3: `arena_used_bytes`, and\n\
             firmware text with and without the model, with the same minimal startup and printing).\n\
             Ember's code + model is flash minus the input batch, on `qemu-m4`:\n\n{t}"
        ))
    )
}

/// `doc` with its `SECTION` replaced by `section` (up to the next `## ` heading), or with
/// `section` appended when it has none.
pub fn replace_section(doc: &str, section: &str) -> String {
    let section = section.trim_end();
    let start = doc.find(&format!("\n{SECTION}\n")).map(|i| i + 1).or_else(|| {
        let prefix = format!("{SECTION}\n");
        doc.starts_with(&prefix).then_some(0)
    });
    match start {
        Some(start) => {
            let after = start + SECTION.len();
            let end = doc[after..].find("\n## ").map_or(doc.len(), |i| after + i + 1);
            let rest = &doc[end..];
            let sep = if rest.is_empty() { "\n" } else { "\n\n" };
            format!("{}{section}{sep}{rest}", &doc[..start])
        }
        None => format!("{}\n\n{section}\n", doc.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: &str, instructions: Option<u64>, matches: Option<bool>, note: Option<&str>) -> Run {
        Run {
            model: model.into(),
            file: format!("{model}.onnx"),
            board: "qemu-m4".into(),
            precision: "int8".into(),
            clock: instructions.map(|_| "instructions".into()),
            samples: 4,
            instructions,
            cycles: None,
            macs: 2_000_000,
            arena_bytes: 16_000,
            arena_greedy_bytes: 16_512,
            model_bytes: 30_000,
            input_bytes: 1960,
            flash_bytes: instructions.map(|_| 150_000),
            firmware_bytes: instructions.map(|_| 148_040),
            code_bytes: instructions.map(|_| 118_040),
            ram_bytes: instructions.map(|_| 16_024),
            stack_bytes: instructions.map(|_| 2_100),
            output_crc32: instructions.map(|_| "0x0000abcd".into()),
            host_output_crc32: "0x0000abcd".into(),
            output_matches_host: matches,
            fits: note.is_none(),
            note: note.map(str::to_string),
        }
    }

    #[test]
    fn table_rows_show_instructions_ratios_and_misfits() {
        let t = table(&[
            run("kws", Some(8_000_000), Some(true), None),
            run("vww", None, None, Some("does not fit: 400000 bytes > 262144 bytes of flash")),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("instructions / inference") && !t.contains("cycles") && !t.contains("ms"));
        assert_eq!(
            lines[2],
            "| kws | qemu-m4 | 8,000,000 | 2,000,000 | 0.250 | 16,000 | 16,512 | 150,000 | 118,040 | 16,024 | 2,100 | yes |"
        );
        assert_eq!(
            lines[3],
            "| vww | qemu-m4 | does not fit: 400000 bytes > 262144 bytes of flash | 2,000,000 | – | 16,000 | 16,512 | – | – | – | – | – |"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(0), "0");
    }

    #[test]
    fn tflm_table_compares_m4_runs_only() {
        assert_eq!(tflm_table(&[run("vww", None, None, Some("does not fit"))]), None);
        let t = tflm_table(&[run("kws", Some(8_000_000), Some(true), None)]).unwrap();
        let row = t.lines().nth(2).unwrap();
        assert_eq!(
            row,
            "| kws | 16,000 / 22,820 (70 %) | 148,040 / 142,884 (104 %) | 118,040 / 88,948 (133 %) |"
        );
    }

    #[test]
    fn json_has_the_promised_fields() {
        let v = serde_json::to_value([run("kws", Some(8_000_000), Some(true), None)]).unwrap();
        let o = &v[0];
        for key in [
            "model",
            "board",
            "precision",
            "instructions",
            "macs",
            "arena_bytes",
            "flash_bytes",
            "code_bytes",
            "ram_bytes",
            "stack_bytes",
            "output_crc32",
            "host_output_crc32",
        ] {
            assert!(!o[key].is_null(), "{key} missing");
        }
        assert_eq!(o["instructions"], 8_000_000);
        assert_eq!(o["output_crc32"], "0x0000abcd");
    }

    #[test]
    fn replaces_only_its_own_section() {
        let new = "## On-device (QEMU) instruction counts\n\nnew table\n";
        let doc = "# B\n\n## Host\n\nhost\n";
        let added = replace_section(doc, new);
        assert_eq!(added, "# B\n\n## Host\n\nhost\n\n## On-device (QEMU) instruction counts\n\nnew table\n");
        assert_eq!(replace_section(&added, new), added, "idempotent");
        let middle = "# B\n\n## On-device (QEMU) instruction counts\n\nold\n\n## Memory\n\nmem\n";
        assert_eq!(
            replace_section(middle, new),
            "# B\n\n## On-device (QEMU) instruction counts\n\nnew table\n\n## Memory\n\nmem\n"
        );
        let last = replace_section(&added, "## On-device (QEMU) instruction counts\n\nnewer\n");
        assert_eq!(last, "# B\n\n## Host\n\nhost\n\n## On-device (QEMU) instruction counts\n\nnewer\n");
    }
}
