//! `cargo xtask bench-device`: the MLPerf Tiny models (or given ONNX files) quantized at int8,
//! or with `--tflite` the MLPerf Tiny int8 `.tflite` files (or given ones) imported as they are,
//! run on the emulated boards; instruction counts, memory and the output check against the host
//! (and, for imported models, against TFLite's reference-kernel output bytes), written to
//! `benches/results/device.json` (`device-tflite.json`) and docs/BENCHMARKS.md.
//!
//! Under QEMU (`clock=instructions`) the figures are instructions executed, not cycles and not
//! time (see targets/README.md).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ember::format::layout::WeightLayout;
use ember::format::meta::SourceFormat;
use ember::format::DType;
use ember::Model;
use ember_quantize::emit::Precision;
use ember_quantize::host::{to_internal, ModelFile};
use ember_quantize::inspect::{op_macs, op_shape};
use ember_quantize::npy::{read_npy, read_npz_array};
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::{build_with, Written};
use ember_quantize::plan;
use ember_quantize::provenance::Origin;
use ember_quantize::tflite;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

use crate::board::{self, crc32_concat, elf_sizes, memory_regions, Board, Kernels};
use crate::{root, setup};

/// An MLPerf Tiny ONNX model and the input range its README gives.
struct OnnxSpec {
    name: &'static str,
    file: &'static str,
    range: (f32, f32),
}

/// The MLPerf Tiny models, with the input ranges tests/mlperf.rs calibrates with.
const MLPERF: &[OnnxSpec] = &[
    OnnxSpec { name: "kws", file: "models/mlperf-tiny/kws/kws_dscnn_nhwc.onnx", range: (-123.0, 25.0) },
    OnnxSpec { name: "vww", file: "models/mlperf-tiny/vww/vww_mobilenetv1_025_nhwc.onnx", range: (0.0, 1.0) },
    OnnxSpec { name: "ic", file: "models/mlperf-tiny/ic/ic_resnet8_nhwc.onnx", range: (0.0, 255.0) },
    OnnxSpec { name: "ad", file: "models/mlperf-tiny/ad/ad_fc_autoencoder.onnx", range: (-67.0, 2.0) },
];

/// An MLPerf Tiny int8 `.tflite` model and its TFLite reference-kernel outputs.
struct TfliteSpec {
    name: &'static str,
    file: &'static str,
    reference: &'static str,
}

/// The MLPerf Tiny int8 `.tflite` files and the reference outputs tests/tflite_import.rs checks.
const MLPERF_TFLITE: &[TfliteSpec] = &[
    TfliteSpec {
        name: "kws",
        file: "models/tflite-ref/kws_ref_model_int8.tflite",
        reference: "models/tflite-ref/kws.ref.npz",
    },
    TfliteSpec {
        name: "vww",
        file: "models/tflite-ref/vww_96_int8.tflite",
        reference: "models/tflite-ref/vww.ref.npz",
    },
    TfliteSpec {
        name: "ic",
        file: "models/tflite-ref/ic_resnet8_int8.tflite",
        reference: "models/tflite-ref/ic.ref.npz",
    },
    TfliteSpec {
        name: "ad",
        file: "models/tflite-ref/ad01_int8.tflite",
        reference: "models/tflite-ref/ad.ref.npz",
    },
    TfliteSpec {
        name: "sww",
        file: "models/tflite-ref/sww_int8.tflite",
        reference: "models/tflite-ref/sww.ref.npz",
    },
];

/// Synthetic calibration samples per model (seed 1), as in tests/mlperf.rs.
const CALIBRATION: usize = 64;
/// Samples in each board's input batch (seed 2) for ONNX models.
const BATCH: usize = 4;
/// Stack the firmware needs beside its statics; a board whose RAM leaves less is too small.
const STACK_MARGIN: u64 = 16 << 10;
/// The docs/BENCHMARKS.md section the ONNX runs rewrite.
const SECTION: &str = "## On-device (QEMU) instruction counts";
/// The docs/BENCHMARKS.md section the `--tflite` runs rewrite.
const TFLITE_SECTION: &str = "## On-device (QEMU): imported int8 TFLite models";

/// What `cargo xtask bench-device` was asked.
pub struct Options {
    /// Board names (`--board`); empty: the default boards.
    pub boards: Vec<String>,
    /// ONNX or `.tflite` files (`--model`); empty: the MLPerf Tiny models.
    pub models: Vec<PathBuf>,
    /// Whether to run the MLPerf Tiny `.tflite` files instead of the ONNX models (`--tflite`).
    pub tflite: bool,
    /// Input range for ONNX models not in the MLPerf table.
    pub range: Option<(f32, f32)>,
    /// Longest a board may run one firmware image.
    pub timeout: Duration,
    /// Where to write the JSON results; `None`: `benches/results/device.json` (ONNX) or
    /// `benches/results/device-tflite.json` (TFLite).
    pub json: Option<PathBuf>,
    /// Whether to rewrite the docs/BENCHMARKS.md section.
    pub docs: bool,
    /// Whether to run each ONNX model a second time on the portable reference kernels.
    pub reference: bool,
    /// The layout of the models' int8 convolution and fully connected weights (`--weight-layout`).
    pub layout: WeightLayout,
    /// The command line, for the docs.
    pub command: String,
}

/// One (model, board) run, as written to `benches/results/device.json` (`device-tflite.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Model name (`kws`, `vww`, `ic`, `ad`, `sww` or the file stem).
    pub model: String,
    /// Source model file (ONNX or `.tflite`), relative to the repository root where it is inside it.
    pub file: String,
    /// `onnx` (quantized here) or `tflite` (imported with its own quantization).
    pub source_format: String,
    /// Board name (`qemu-m4`, …).
    pub board: String,
    /// Quantization (`int8`).
    pub precision: String,
    /// What the board's ticks count (`instructions` under QEMU, `cycles` on hardware).
    pub clock: Option<String>,
    /// Samples in the batch (all firmware builds together).
    pub samples: usize,
    /// Firmware builds the batch ran in: consecutive inputs each, as many as the flash needs.
    pub builds: usize,
    /// Mean instructions per inference over all samples (when `clock` is `instructions`).
    pub instructions: Option<u64>,
    /// Mean cycles per inference over all samples (when `clock` is `cycles`).
    pub cycles: Option<u64>,
    /// Mean ticks per inference of the same firmware built with the portable reference kernels
    /// only (`EMBER_NO_DSP=1`), when they ran.
    pub reference_ticks: Option<u64>,
    /// Whether the reference kernels' output bytes equal the host's, when they ran.
    pub reference_kernels_match_host: Option<bool>,
    /// Every op, with its mean ticks per inference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
    /// Multiply-accumulates per inference, summed over the ops.
    pub macs: u64,
    /// Arena bytes of the model's memory plan.
    pub arena_bytes: u64,
    /// Arena bytes a greedy-by-size plan (TFLite Micro's planner) would need for the same model.
    pub arena_greedy_bytes: u64,
    /// Model file bytes (in flash).
    pub model_bytes: u64,
    /// Input bytes in flash: the batch, or the first (largest) build's part of it.
    pub input_bytes: u64,
    /// Flash bytes of the firmware image (of the first build).
    pub flash_bytes: Option<u64>,
    /// Flash minus the input bytes: code and model, what TFLite Micro's firmware text counts.
    pub firmware_bytes: Option<u64>,
    /// Flash minus the model and the input bytes: code, tables and other constants.
    pub code_bytes: Option<u64>,
    /// Static RAM (`.data`, `.bss`, `.uninit`; includes the arena).
    pub ram_bytes: Option<u64>,
    /// Peak stack use (the largest of the builds).
    pub stack_bytes: Option<u64>,
    /// The board's CRC32 over all output bytes, in input order (joined over the builds).
    pub output_crc32: Option<String>,
    /// The host's CRC32 of the same outputs.
    pub host_output_crc32: String,
    /// Whether the board's and the host's output bytes are equal.
    pub output_matches_host: Option<bool>,
    /// The TFLite reference file whose inputs and outputs an imported model ran on.
    pub reference_file: Option<String>,
    /// CRC32 of TFLite's reference-kernel output bytes for the same inputs.
    pub reference_output_crc32: Option<String>,
    /// Whether the board's output bytes equal TFLite's reference-kernel output bytes.
    pub output_matches_reference: Option<bool>,
    /// Inputs (0-based) whose board output differs from the host's, by each sample's CRC32.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs_differing_from_host: Vec<usize>,
    /// Inputs (0-based) whose board output differs from TFLite's reference output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs_differing_from_reference: Vec<usize>,
    /// Whether the firmware fits the board's memory map.
    pub fits: bool,
    /// Why the model did not run, when it did not.
    pub note: Option<String>,
}

/// One op of a run: what it computes and its mean ticks per inference.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// Op index in the model.
    pub index: usize,
    /// Op kind (`conv2d`, …).
    pub kind: String,
    /// Kernel and channels, e.g. `3×3/2 3→8` (conv), `3×3/1 ×64` (depthwise), `640→128` (FC).
    pub shape: String,
    /// Multiply-accumulates per inference (0 for ops without weights).
    pub macs: u64,
    /// Mean ticks per inference with the optimized kernels.
    pub ticks: u64,
    /// Mean ticks per inference with the reference kernels, when they ran.
    pub reference_ticks: Option<u64>,
}

impl Run {
    /// Instructions (or cycles) per inference, whichever the board counts.
    fn ticks(&self) -> Option<u64> {
        self.instructions.or(self.cycles)
    }
}

/// What a run benchmarks: ONNX models quantized here, or `.tflite` models imported as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Onnx,
    Tflite,
}

impl Kind {
    /// The `source_format` of its runs.
    fn name(self) -> &'static str {
        match self {
            Kind::Onnx => "onnx",
            Kind::Tflite => "tflite",
        }
    }

    /// The docs/BENCHMARKS.md section its runs rewrite.
    fn heading(self) -> &'static str {
        match self {
            Kind::Onnx => SECTION,
            Kind::Tflite => TFLITE_SECTION,
        }
    }

    /// Where its JSON results go by default (relative to the root), for weights in `layout`.
    fn default_json(self, layout: WeightLayout) -> String {
        let stem = match self {
            Kind::Onnx => "benches/results/device",
            Kind::Tflite => "benches/results/device-tflite",
        };
        match layout {
            WeightLayout::Standard => format!("{stem}.json"),
            _ => format!("{stem}-{}.json", layout.name()),
        }
    }
}

/// Where a model's bytes and inputs come from.
#[derive(Debug)]
enum Source {
    /// An ONNX file, quantized at int8 with calibration and test inputs in `range`.
    Onnx { range: (f32, f32) },
    /// An int8 `.tflite` file, imported, run on the inputs of its TFLite reference file.
    Tflite { reference: PathBuf },
}

/// A model to benchmark.
#[derive(Debug)]
struct Job {
    name: String,
    path: PathBuf,
    source: Source,
}

impl Job {
    fn kind(&self) -> Kind {
        match self.source {
            Source::Onnx { .. } => Kind::Onnx,
            Source::Tflite { .. } => Kind::Tflite,
        }
    }
}

/// TFLite's reference-kernel outputs for an imported model's batch.
struct Reference {
    /// The reference file, relative to the repository root where it is inside it.
    file: String,
    /// Output 0's bytes, one row per sample.
    outputs: Vec<Vec<u8>>,
}

/// A model file and its batch, ready for the boards.
struct Prepared {
    name: String,
    file: String,
    kind: Kind,
    model_path: PathBuf,
    model_bytes: u64,
    macs: u64,
    /// Every op's kind, shape (see [`Layer::shape`]) and MACs.
    ops: Vec<(String, String, u64)>,
    arena_bytes: u64,
    arena_greedy_bytes: u64,
    /// Raw input 0 samples, concatenated.
    batch: Vec<u8>,
    /// Bytes of one sample of `batch`.
    sample_bytes: usize,
    /// The host runtime's output 0 bytes, one row per sample.
    host_outputs: Vec<Vec<u8>>,
    reference: Option<Reference>,
}

impl Prepared {
    fn samples(&self) -> usize {
        self.host_outputs.len()
    }
}

/// Runs `cargo xtask bench-device`.
pub fn run(options: Options) -> Result<()> {
    let (kind, jobs) = jobs(&options)?;
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

    let work = root().join("target/bench-device");
    std::fs::create_dir_all(&work)?;
    let mut runs = Vec::new();
    for job in &jobs {
        let name = &job.name;
        let started = Instant::now();
        let prepared = prepare(job, &work, options.layout)?;
        eprintln!(
            "{name}: {} ({} model bytes, {} MACs, arena {} bytes, {} inputs) in {:.1} s",
            match kind {
                Kind::Onnx => "quantized",
                Kind::Tflite => "imported",
            },
            prepared.model_bytes,
            prepared.macs,
            prepared.arena_bytes,
            prepared.samples(),
            started.elapsed().as_secs_f64()
        );
        for b in &boards {
            let started = Instant::now();
            let run = run_on(b, &prepared, &work, options.timeout, options.reference && kind == Kind::Onnx)?;
            eprintln!(
                "{name} on {}: {} in {:.1} s",
                b.name,
                match (&run.note, run.ticks()) {
                    (Some(note), _) => note.clone(),
                    (None, t) => format!(
                        "{} {} per inference ({} build{}), output = host: {}{}",
                        t.unwrap_or(0),
                        run.clock.as_deref().unwrap_or("ticks"),
                        run.builds,
                        if run.builds == 1 { "" } else { "s" },
                        yes_no(run.output_matches_host),
                        match run.output_matches_reference {
                            Some(m) => format!(", output = TFLite reference: {}", yes_no(Some(m))),
                            None => String::new(),
                        }
                    ),
                },
                started.elapsed().as_secs_f64()
            );
            runs.push(run);
        }
    }

    let json_path = options.json.clone().unwrap_or_else(|| root().join(kind.default_json(options.layout)));
    if let Some(dir) = json_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_string_pretty(&runs)? + "\n";
    std::fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    let section = match kind {
        Kind::Onnx => section(&runs, &options.command, &versions()),
        Kind::Tflite => tflite_section(&runs, &options.command, &versions()),
    };
    let (heading, section) = laid_out_section(kind, options.layout, &section);
    println!("{section}");
    if options.docs {
        let docs = root().join("docs/BENCHMARKS.md");
        let text = std::fs::read_to_string(&docs).with_context(|| format!("reading {}", docs.display()))?;
        std::fs::write(&docs, replace_section(&text, &heading, &section))?;
    }
    eprintln!("wrote {}{}", json_path.display(), if options.docs { " and docs/BENCHMARKS.md" } else { "" });

    let differ_host = mismatches(&runs, |r| (r.output_matches_host, &r.inputs_differing_from_host));
    let differ_reference =
        mismatches(&runs, |r| (r.output_matches_reference, &r.inputs_differing_from_reference));
    let mut failures = Vec::new();
    if !differ_host.is_empty() {
        failures.push(format!("board outputs differ from the host's: {}", differ_host.join(", ")));
    }
    let reference_differs: Vec<String> = runs
        .iter()
        .filter(|r| r.reference_kernels_match_host == Some(false))
        .map(|r| format!("{} on {}", r.model, r.board))
        .collect();
    if !reference_differs.is_empty() {
        failures.push(format!(
            "the reference kernels' outputs differ from the host's: {}",
            reference_differs.join(", ")
        ));
    }
    if !differ_reference.is_empty() {
        failures.push(format!(
            "board outputs differ from TFLite's reference-kernel outputs: {}",
            differ_reference.join(", ")
        ));
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// `model on board (inputs 3, 7 of 20)` for every run whose check `check` failed.
fn mismatches(runs: &[Run], check: impl Fn(&Run) -> (Option<bool>, &Vec<usize>)) -> Vec<String> {
    runs.iter()
        .filter_map(|r| {
            let (matches, inputs) = check(r);
            (matches == Some(false)).then(|| {
                let list: Vec<String> = inputs.iter().map(usize::to_string).collect();
                match list.is_empty() {
                    true => format!("{} on {} (output CRC32 of all {} inputs)", r.model, r.board, r.samples),
                    false => {
                        format!("{} on {} (inputs {} of {})", r.model, r.board, list.join(", "), r.samples)
                    }
                }
            })
        })
        .collect()
}

/// The models `options` asks for, all of one kind.
fn jobs(options: &Options) -> Result<(Kind, Vec<Job>)> {
    let jobs: Vec<Job> = if options.tflite {
        ensure!(
            options.models.is_empty(),
            "--tflite runs the MLPerf Tiny .tflite files: give --model instead to run others"
        );
        ensure!(
            options.range.is_none(),
            "--range is for ONNX models: a .tflite model runs on the inputs of its TFLite reference file"
        );
        MLPERF_TFLITE
            .iter()
            .map(|s| {
                Ok(Job {
                    name: s.name.to_string(),
                    path: existing(&root().join(s.file))?,
                    source: Source::Tflite { reference: existing(&root().join(s.reference))? },
                })
            })
            .collect::<Result<_>>()?
    } else if options.models.is_empty() {
        MLPERF
            .iter()
            .map(|s| {
                let path = existing(&root().join(s.file))?;
                Ok(Job { name: s.name.to_string(), path, source: Source::Onnx { range: s.range } })
            })
            .collect::<Result<_>>()?
    } else {
        options.models.iter().map(|m| job(m, options.range)).collect::<Result<_>>()?
    };
    let kind = jobs.first().map_or(Kind::Onnx, Job::kind);
    ensure!(
        jobs.iter().all(|j| j.kind() == kind),
        "--model: run ONNX and .tflite models in separate commands (each writes its own JSON file and docs section)"
    );
    Ok((kind, jobs))
}

/// `path`, canonical, or an error naming it.
fn existing(path: &Path) -> Result<PathBuf> {
    path.canonicalize().with_context(|| format!("cannot find {}", path.display()))
}

/// The job for a `--model` file: an int8 `.tflite` file (by its extension) with its TFLite
/// reference file, else an ONNX file with its input range (the MLPerf table's when it is one of
/// those).
fn job(path: &Path, range: Option<(f32, f32)>) -> Result<Job> {
    let path = existing(path)?;
    let stem = path.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tflite")) {
        ensure!(
            range.is_none(),
            "--range is for ONNX models: {} runs on the inputs of its TFLite reference file",
            path.display()
        );
        let known = MLPERF_TFLITE.iter().find(|s| existing(&root().join(s.file)).is_ok_and(|p| p == path));
        let (name, reference) = match known {
            Some(s) => (s.name.to_string(), root().join(s.reference)),
            None => (stem.clone(), path.with_file_name(format!("{stem}.ref.npz"))),
        };
        let reference = reference.canonicalize().with_context(|| {
            format!(
                "{}: no TFLite reference outputs at {}: write them there (int8 arrays `inputs` and \
                 `outputs`, one row per input), as scripts/tflite_reference.py does for the MLPerf Tiny models",
                path.display(),
                reference.display()
            )
        })?;
        return Ok(Job { name, path, source: Source::Tflite { reference } });
    }
    let known = MLPERF.iter().find(|s| existing(&root().join(s.file)).is_ok_and(|p| p == path));
    if let Some(s) = known {
        return Ok(Job {
            name: s.name.to_string(),
            path,
            source: Source::Onnx { range: range.unwrap_or(s.range) },
        });
    }
    let range =
        range.with_context(|| format!("{}: give its input range with --range LO..HI", path.display()))?;
    Ok(Job { name: stem, path, source: Source::Onnx { range } })
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

/// The heading and text of `kind`'s docs section for weights in `layout`: `section` as it is
/// for the standard layout, else under a heading of its own that names the layout and its JSON.
fn laid_out_section(kind: Kind, layout: WeightLayout, section: &str) -> (String, String) {
    if layout == WeightLayout::Standard {
        return (kind.heading().to_string(), section.to_string());
    }
    let heading = format!("{}, weights laid out `{}`", kind.heading(), layout.name());
    let note = format!(
        "{heading}\n\nThe same run with every int8 convolution's and fully connected layer's weights in the \
         `{}` layout (`ember-quantize --weight-layout {}`, docs/FORMAT.md §3.1).",
        layout.name(),
        layout.name()
    );
    let text = section.replacen(kind.heading(), &note, 1).replacen(
        &kind.default_json(WeightLayout::Standard),
        &kind.default_json(layout),
        1,
    );
    (heading, text)
}

/// Makes `job`'s model file (quantized or imported, weights in `layout`) under `work`, its input
/// batch, and the host's (and for imported models TFLite's reference) output bytes for that batch.
fn prepare(job: &Job, work: &Path, layout: WeightLayout) -> Result<Prepared> {
    let (written, batch, reference) = match &job.source {
        Source::Onnx { range } => {
            let (written, batch) = quantize(&job.name, &job.path, *range, layout)?;
            (written, batch, None)
        }
        Source::Tflite { reference } => {
            let (written, batch, outputs) = import(&job.name, &job.path, reference, layout)?;
            (written, batch, Some(Reference { file: relative(reference)?, outputs }))
        }
    };
    let file = ModelFile::from_bytes(&written.bytes);
    let model = file.model()?;
    let host_outputs = board::host_outputs(&model, &batch)?;
    if let Some(reference) = &reference {
        ensure!(
            reference.outputs.len() == host_outputs.len(),
            "{}: {} reference outputs for {} inputs: regenerate it with scripts/tflite_reference.py",
            reference.file,
            reference.outputs.len(),
            host_outputs.len()
        );
    }
    let model_path = work.join(format!(
        "{}_{}{}.ember",
        job.name,
        match job.kind() {
            Kind::Onnx => "int8",
            Kind::Tflite => "tflite",
        },
        match layout {
            WeightLayout::Standard => String::new(),
            _ => format!("_{}", layout.name()),
        }
    ));
    write_if_changed(&model_path, &written.bytes)?;
    Ok(Prepared {
        name: job.name.clone(),
        file: relative(&job.path)?,
        kind: job.kind(),
        model_path,
        model_bytes: written.bytes.len() as u64,
        macs: (0..model.op_count() as u16).map(|i| op_macs(&model, i)).sum(),
        ops: (0..model.op_count() as u16)
            .map(|i| {
                let kind = model.op(i).map_or("?", |op| op.kind.name());
                (kind.to_string(), op_shape(&model, i), op_macs(&model, i))
            })
            .collect(),
        arena_bytes: model.arena_bytes() as u64,
        arena_greedy_bytes: written.plan.greedy_bytes as u64,
        sample_bytes: model.input(0)?.tensor.byte_len,
        batch,
        host_outputs,
        reference,
    })
}

/// `path` relative to the repository root when it is inside it.
fn relative(path: &Path) -> Result<String> {
    Ok(path.strip_prefix(root().canonicalize()?).unwrap_or(path).display().to_string())
}

/// Quantizes the ONNX file `path` at int8 (calibrated on seeded synthetic inputs in `range` and
/// the real samples tests/mlperf.rs uses) and makes its batch of `BATCH` seeded inputs.
fn quantize(name: &str, path: &Path, range: (f32, f32), layout: WeightLayout) -> Result<(Written, Vec<u8>)> {
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
    let options = plan::Options { layout, ..plan::Options::default() };
    let written = build_with(&graph, Precision::Int8, Some(&calib), options)
        .with_context(|| format!("quantizing {name}"))?;
    let batch =
        input_batch(&ModelFile::from_bytes(&written.bytes).model()?, &synthetic(&shape, range, BATCH, 2))?;
    Ok((written, batch))
}

/// Imports the int8 `.tflite` file `path` as `ember-quantize import` does (with creation time 0,
/// so the model bytes are reproducible) and reads its TFLite reference file: the input batch and
/// TFLite's output bytes for each input.
fn import(
    name: &str,
    path: &Path,
    reference: &Path,
    layout: WeightLayout,
) -> Result<(Written, Vec<u8>, Vec<Vec<u8>>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let origin = Origin { created_unix: 0, ..Origin::new(&bytes, SourceFormat::Tflite, false)? };
    let options = plan::Options { layout, ..plan::Options::default() };
    let written =
        tflite::import(&bytes, &origin, options).with_context(|| format!("importing {}", path.display()))?;
    let file = ModelFile::from_bytes(&written.bytes);
    let model = file.model()?;
    let (input, output) = (model.input(0)?.tensor, model.output(0)?.tensor);
    ensure!(
        input.dtype == DType::I8 && output.dtype == DType::I8,
        "{name}: input 0 is {} and output 0 is {}: the check against TFLite's output bytes needs int8 for both",
        input.dtype.name(),
        output.dtype.name()
    );
    let inputs = int8_rows(reference, "inputs", input.byte_len)?;
    let outputs = int8_rows(reference, "outputs", output.byte_len)?;
    ensure!(
        inputs.len() == outputs.len(),
        "{}: {} inputs but {} outputs: regenerate it with scripts/tflite_reference.py",
        reference.display(),
        inputs.len(),
        outputs.len()
    );
    Ok((written, inputs.concat(), outputs))
}

/// The int8 array `key` of the reference file `path`, as rows of `row_bytes` bytes.
fn int8_rows(path: &Path, key: &str, row_bytes: usize) -> Result<Vec<Vec<u8>>> {
    let array = read_npz_array(path, key)?;
    let rows = array.shape().first().copied().unwrap_or(0);
    ensure!(
        rows > 0 && array.len() == rows * row_bytes,
        "{}: `{key}` has shape {:?}, not one row of the model's {row_bytes} values per input: \
         regenerate it with scripts/tflite_reference.py for this model",
        path.display(),
        array.shape()
    );
    let bytes = array
        .iter()
        .map(|&v| {
            ensure!(
                v.fract() == 0.0 && (-128.0..=127.0).contains(&v),
                "{}: `{key}` holds {v}, not int8",
                path.display()
            );
            Ok(v as i8 as u8)
        })
        .collect::<Result<Vec<u8>>>()?;
    Ok(bytes.chunks_exact(row_bytes).map(<[u8]>::to_vec).collect())
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

/// `0..samples` as the fewest runs of consecutive samples with at most `most` each, as equal
/// as can be (the longer ones first).
fn split(samples: usize, most: usize) -> Vec<Range<usize>> {
    let builds = samples.div_ceil(most.max(1)).max(1);
    let (base, longer) = (samples / builds, samples % builds);
    let mut start = 0;
    (0..builds)
        .map(|i| {
            let len = base + usize::from(i < longer);
            start += len;
            start - len..start
        })
        .collect()
}

/// Writes the inputs `samples` of `prepared`'s batch to their file under `work` and returns its
/// path.
fn inputs_file(prepared: &Prepared, samples: &Range<usize>, work: &Path) -> Result<PathBuf> {
    let stem = prepared.model_path.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let path = if *samples == (0..prepared.samples()) {
        work.join(format!("{stem}_inputs.bin"))
    } else {
        work.join(format!("{stem}_inputs_{}-{}.bin", samples.start, samples.end - 1))
    };
    let bytes = &prepared.batch[samples.start * prepared.sample_bytes..samples.end * prepared.sample_bytes];
    write_if_changed(&path, bytes)?;
    Ok(path)
}

/// Writes `bytes` to `path` unless it holds them already: an unchanged file keeps its time, so
/// cargo does not rebuild the firmware for it.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Builds and runs `prepared` on `board`, in as many firmware builds of consecutive inputs as
/// the board's flash needs; a model that does not fit even with one input becomes a run with a
/// note.
fn run_on(
    board: &Board,
    prepared: &Prepared,
    work: &Path,
    timeout: Duration,
    reference: bool,
) -> Result<Run> {
    let samples = prepared.samples();
    let crc_of = |rows: &[Vec<u8>]| ember::CRC32.checksum(&rows.concat());
    let host_crc = crc_of(&prepared.host_outputs);
    let reference_crc = prepared.reference.as_ref().map(|r| crc_of(&r.outputs));
    let mut run = Run {
        model: prepared.name.clone(),
        file: prepared.file.clone(),
        source_format: prepared.kind.name().into(),
        board: board.name.to_string(),
        precision: "int8".into(),
        clock: None,
        samples,
        builds: 0,
        instructions: None,
        cycles: None,
        reference_ticks: None,
        reference_kernels_match_host: None,
        layers: Vec::new(),
        macs: prepared.macs,
        arena_bytes: prepared.arena_bytes,
        arena_greedy_bytes: prepared.arena_greedy_bytes,
        model_bytes: prepared.model_bytes,
        input_bytes: prepared.batch.len() as u64,
        flash_bytes: None,
        firmware_bytes: None,
        code_bytes: None,
        ram_bytes: None,
        stack_bytes: None,
        output_crc32: None,
        host_output_crc32: hex(host_crc),
        output_matches_host: None,
        reference_file: prepared.reference.as_ref().map(|r| r.file.clone()),
        reference_output_crc32: reference_crc.map(hex),
        output_matches_reference: None,
        inputs_differing_from_host: Vec::new(),
        inputs_differing_from_reference: Vec::new(),
        fits: false,
        note: None,
    };
    let memory_x = root().join(board.dir).join("memory.x");
    let (flash_len, ram_len) = memory_regions(&std::fs::read_to_string(&memory_x)?)
        .with_context(|| format!("reading {}", memory_x.display()))?;
    let one_input = prepared.sample_bytes as u64;
    if prepared.model_bytes + one_input > flash_len {
        run.note = Some(format!(
            "does not fit: model + one input {} bytes > {flash_len} bytes of flash",
            prepared.model_bytes + one_input
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
    // The whole batch in one image if it fits the flash, else the fewest builds that do: each
    // overflow the linker reports takes as many inputs off the longest build as it needs.
    let mut most = samples;
    let (builds, elf) = loop {
        let builds = split(samples, most);
        let inputs = inputs_file(prepared, &builds[0], work)?;
        match board::build(board, Kernels::Optimized, &prepared.model_path, &inputs)? {
            Ok(elf) => break (builds, elf),
            Err(misfit) => match misfit.flash_overflow {
                Some(overflow) if builds[0].len() > 1 => {
                    let fewer = usize::try_from(overflow)?.div_ceil(prepared.sample_bytes).max(1);
                    most = builds[0].len().saturating_sub(fewer).max(1);
                }
                _ => {
                    run.note = Some(format!("does not fit: {}", misfit.why));
                    return Ok(run);
                }
            },
        }
    };
    let in_flash = builds[0].len() as u64 * one_input;
    let sizes = elf_sizes(&elf)?;
    run.builds = builds.len();
    run.input_bytes = in_flash;
    run.flash_bytes = Some(sizes.flash);
    run.firmware_bytes = Some(sizes.flash.saturating_sub(in_flash));
    run.code_bytes = Some(sizes.flash.saturating_sub(prepared.model_bytes + in_flash));
    run.ram_bytes = Some(sizes.ram);
    if sizes.ram + STACK_MARGIN > ram_len {
        run.note = Some(format!(
            "does not fit: {} bytes of static RAM + {STACK_MARGIN} bytes of stack > {ram_len} bytes of RAM",
            sizes.ram
        ));
        return Ok(run);
    }
    run.fits = true;

    let optimized = measure(board, Kernels::Optimized, prepared, &builds, work, timeout)?;
    let per_inference = optimized.ticks_total / samples as u64;
    match optimized.clock.as_str() {
        "instructions" => run.instructions = Some(per_inference),
        "cycles" => run.cycles = Some(per_inference),
        other => bail!("board {} reports an unknown clock {other:?}", board.name),
    }
    run.stack_bytes = Some(optimized.stack_bytes);
    run.output_crc32 = Some(hex(optimized.crc));
    let differing = |rows: &[Vec<u8>]| -> Vec<usize> {
        (0..samples).filter(|&i| optimized.sample_crcs[i] != ember::CRC32.checksum(&rows[i])).collect()
    };
    run.output_matches_host = Some(optimized.crc == host_crc);
    run.inputs_differing_from_host = differing(&prepared.host_outputs);
    if let (Some(reference), Some(crc)) = (&prepared.reference, reference_crc) {
        run.output_matches_reference = Some(optimized.crc == crc);
        run.inputs_differing_from_reference = differing(&reference.outputs);
    }
    let reference = match reference {
        true => Some(measure(board, Kernels::Reference, prepared, &builds, work, timeout)?),
        false => None,
    };
    if let Some(r) = &reference {
        ensure!(r.clock == optimized.clock, "board {}: the reference build counts {}", board.name, r.clock);
        run.reference_ticks = Some(r.ticks_total / samples as u64);
        run.reference_kernels_match_host = Some(r.crc == host_crc);
    }
    run.layers = prepared
        .ops
        .iter()
        .enumerate()
        .map(|(index, (kind, shape, macs))| Layer {
            index,
            kind: kind.clone(),
            shape: shape.clone(),
            macs: *macs,
            ticks: optimized.layer_ticks.get(index).copied().unwrap_or(0) / samples as u64,
            reference_ticks: reference
                .as_ref()
                .map(|r| r.layer_ticks.get(index).copied().unwrap_or(0) / samples as u64),
        })
        .collect();
    run.clock = Some(optimized.clock);
    Ok(run)
}

/// What a board measured over the whole batch, in one or more firmware builds.
struct Measured {
    clock: String,
    /// Ticks of all inferences.
    ticks_total: u64,
    /// Ticks of each op over all inferences.
    layer_ticks: Vec<u64>,
    stack_bytes: u64,
    /// CRC32 over all output bytes, in input order.
    crc: u32,
    /// Each sample's output CRC32.
    sample_crcs: Vec<u32>,
}

/// Builds and runs `prepared` on `board` with `kernels`, one firmware build per part of `builds`.
fn measure(
    board: &Board,
    kernels: Kernels,
    prepared: &Prepared,
    builds: &[Range<usize>],
    work: &Path,
    timeout: Duration,
) -> Result<Measured> {
    let mut m = Measured {
        clock: String::new(),
        ticks_total: 0,
        layer_ticks: vec![0; prepared.ops.len()],
        stack_bytes: 0,
        crc: ember::CRC32.checksum(&[]),
        sample_crcs: Vec::with_capacity(prepared.samples()),
    };
    for part in builds {
        let inputs = inputs_file(prepared, part, work)?;
        if let Err(misfit) = board::build(board, kernels, &prepared.model_path, &inputs)? {
            bail!(
                "{} on {} ({kernels:?} kernels): inputs {}..{} do not fit although the first {} did: {}",
                prepared.name,
                board.name,
                part.start,
                part.end,
                builds[0].len(),
                misfit.why
            );
        }
        let report = board::run_built(board, kernels, &prepared.model_path, &inputs, timeout)?;
        ensure!(
            report.samples.len() == part.len(),
            "{} on {}: the board ran {} of {} samples",
            prepared.name,
            board.name,
            report.samples.len(),
            part.len()
        );
        ensure!(
            report.arena_bytes == prepared.arena_bytes,
            "{} on {}: the board's arena is {} bytes, the model's {}",
            prepared.name,
            board.name,
            report.arena_bytes,
            prepared.arena_bytes
        );
        ensure!(
            m.clock.is_empty() || m.clock == report.clock,
            "board {} changed its clock from {:?} to {:?}",
            board.name,
            m.clock,
            report.clock
        );
        m.ticks_total += report.ticks_total;
        // The report's layer ticks are means over this build's samples.
        for (index, _, ticks) in &report.layers {
            if let Some(total) = m.layer_ticks.get_mut(*index) {
                *total += ticks * part.len() as u64;
            }
        }
        m.stack_bytes = m.stack_bytes.max(report.stack_bytes);
        let output_len = prepared.host_outputs[part.clone()].iter().map(Vec::len).sum();
        m.crc = crc32_concat(m.crc, report.output_crc32, output_len);
        m.sample_crcs.extend(report.samples.iter().map(|s| s.output_crc32));
        m.clock = report.clock;
    }
    ensure!(!m.clock.is_empty(), "no firmware build ran");
    Ok(m)
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
pub(crate) fn thousands(n: u64) -> String {
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

/// A markdown table column: heading, right-aligned or not, and a row's cell (`None`: none).
struct Column<T> {
    head: &'static str,
    right: bool,
    cell: fn(&T) -> Option<String>,
}

/// `columns` over `rows` as a markdown table; a missing cell shows `–`.
fn render<T>(columns: &[Column<T>], rows: &[T]) -> String {
    let heads: Vec<(String, bool)> = columns.iter().map(|c| (c.head.to_string(), c.right)).collect();
    let cells = rows
        .iter()
        .map(|row| columns.iter().map(|c| (c.cell)(row).unwrap_or_else(|| "–".into())).collect())
        .collect();
    markdown(&heads, cells)
}

/// A markdown table: headings (right-aligned or not) and rows of cells.
pub(crate) fn markdown(heads: &[(String, bool)], rows: Vec<Vec<String>>) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut s = line(&heads.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>());
    s += &format!(
        "|{}|\n",
        heads.iter().map(|&(_, right)| if right { "--:" } else { "---" }).collect::<Vec<_>>().join("|")
    );
    for row in rows {
        s += &line(&row);
    }
    s
}

/// Bytes with thousands separators.
fn bytes(b: Option<u64>) -> Option<String> {
    b.map(thousands)
}

/// Instructions per inference (or cycles), or why the model did not run.
fn ticks_cell(r: &Run) -> Option<String> {
    match (r.instructions, r.cycles) {
        (Some(i), _) => Some(thousands(i)),
        (None, Some(c)) => Some(format!("{} cycles", thousands(c))),
        (None, None) => r.note.clone(),
    }
}

/// MACs per instruction (instruction-counting boards only).
fn macs_per_instruction(r: &Run) -> Option<String> {
    r.instructions.map(|i| format!("{:.3}", r.macs as f64 / i.max(1) as f64))
}

/// The markdown table of the ONNX runs: one row per run.
pub fn table(runs: &[Run]) -> String {
    let columns: [Column<Run>; 12] = [
        Column { head: "model", right: false, cell: |r| Some(r.model.clone()) },
        Column { head: "board", right: false, cell: |r| Some(r.board.clone()) },
        Column { head: "instructions / inference", right: true, cell: ticks_cell },
        Column { head: "MACs", right: true, cell: |r| Some(thousands(r.macs)) },
        Column { head: "MACs / instruction", right: true, cell: macs_per_instruction },
        Column { head: "arena", right: true, cell: |r| bytes(Some(r.arena_bytes)) },
        Column { head: "arena, greedy by size", right: true, cell: |r| bytes(Some(r.arena_greedy_bytes)) },
        Column { head: "flash", right: true, cell: |r| bytes(r.flash_bytes) },
        Column { head: "code", right: true, cell: |r| bytes(r.code_bytes) },
        Column { head: "RAM", right: true, cell: |r| bytes(r.ram_bytes) },
        Column { head: "stack", right: true, cell: |r| bytes(r.stack_bytes) },
        Column { head: "output = host", right: false, cell: |r| Some(yes_no(r.output_matches_host).into()) },
    ];
    render(&columns, runs)
}

/// The markdown table of the imported `.tflite` runs: one row per run.
pub fn tflite_table(runs: &[Run]) -> String {
    let columns: [Column<Run>; 12] = [
        Column { head: "model", right: false, cell: |r| Some(r.model.clone()) },
        Column { head: "board", right: false, cell: |r| Some(r.board.clone()) },
        Column { head: "inputs", right: true, cell: |r| Some(r.samples.to_string()) },
        Column { head: "builds", right: true, cell: |r| (r.builds > 0).then(|| r.builds.to_string()) },
        Column { head: "instructions / inference", right: true, cell: ticks_cell },
        Column { head: "MACs / instruction", right: true, cell: macs_per_instruction },
        Column { head: "arena", right: true, cell: |r| bytes(Some(r.arena_bytes)) },
        Column { head: "code + model", right: true, cell: |r| bytes(r.firmware_bytes) },
        Column { head: "code", right: true, cell: |r| bytes(r.code_bytes) },
        Column { head: "stack", right: true, cell: |r| bytes(r.stack_bytes) },
        Column { head: "output = host", right: false, cell: |r| Some(yes_no(r.output_matches_host).into()) },
        Column {
            head: "output = TFLite reference",
            right: false,
            cell: |r| Some(yes_no(r.output_matches_reference).into()),
        },
    ];
    render(&columns, runs)
}

/// Reference against optimized kernels, per model and board, beside TFLite Micro + CMSIS-NN's
/// instructions on the Cortex-M4; `None` when no run has both counts.
pub fn kernels_table(runs: &[Run]) -> Option<String> {
    let columns: [Column<Run>; 7] = [
        Column { head: "model", right: false, cell: |r| Some(r.model.clone()) },
        Column { head: "board", right: false, cell: |r| Some(r.board.clone()) },
        Column { head: "reference kernels", right: true, cell: |r| r.reference_ticks.map(thousands) },
        Column { head: "optimized kernels", right: true, cell: |r| r.ticks().map(thousands) },
        Column {
            head: "reference / optimized",
            right: true,
            cell: |r| Some(format!("{:.2}×", r.reference_ticks? as f64 / r.ticks()?.max(1) as f64)),
        },
        Column { head: "TFLM + CMSIS-NN", right: true, cell: |r| Some(thousands(tflm(r)?.instructions)) },
        Column {
            head: "optimized / TFLM",
            right: true,
            cell: |r| Some(format!("{:.0} %", 100.0 * r.instructions? as f64 / tflm(r)?.instructions as f64)),
        },
    ];
    let rows: Vec<Run> =
        runs.iter().filter(|r| r.reference_ticks.is_some() && r.ticks().is_some()).cloned().collect();
    (!rows.is_empty()).then(|| render(&columns, &rows))
}

/// TFLite Micro's figures for a `qemu-m4` run's model.
fn tflm(r: &Run) -> Option<&'static Tflm> {
    TFLM.iter().find(|t| t.model == r.model && r.board == "qemu-m4")
}

/// Per op with weights (conv2d, depthwise_conv2d, fully_connected) of `model`'s runs: MACs, and
/// on each board the optimized kernels' instructions and MACs per instruction (reference →
/// optimized); then the other ops together and the whole inference.
pub fn layers_table(runs: &[Run], model: &str) -> Option<String> {
    let runs: Vec<&Run> = runs.iter().filter(|r| r.model == model && !r.layers.is_empty()).collect();
    let first = runs.first()?;
    let mut heads: Vec<(String, bool)> = [("op", false), ("kind", false), ("shape", false), ("MACs", true)]
        .map(|(h, r)| (h.to_string(), r))
        .into();
    for r in &runs {
        heads.push((format!("{}: instructions", r.board), true));
        heads.push((format!("{}: MACs / instruction, reference → optimized", r.board), true));
    }
    let per_instruction = |macs: u64, ticks: Option<u64>| {
        ticks.map_or("–".into(), |t| format!("{:.2}", macs as f64 / t.max(1) as f64))
    };
    let cells = |macs: u64, ticks: &dyn Fn(&Run) -> (u64, Option<u64>)| -> Vec<String> {
        runs.iter()
            .flat_map(|r| {
                let (optimized, reference) = ticks(r);
                [
                    thousands(optimized),
                    format!(
                        "{} → {}",
                        per_instruction(macs, reference),
                        per_instruction(macs, Some(optimized))
                    ),
                ]
            })
            .collect()
    };
    let mut rows = Vec::new();
    for (i, layer) in first.layers.iter().enumerate().filter(|(_, l)| l.macs > 0) {
        let mut row =
            vec![layer.index.to_string(), layer.kind.clone(), layer.shape.clone(), thousands(layer.macs)];
        row.extend(cells(layer.macs, &|r| (r.layers[i].ticks, r.layers[i].reference_ticks)));
        rows.push(row);
    }
    let others = |r: &Run, ticks: fn(&Layer) -> Option<u64>| -> Option<u64> {
        r.layers.iter().filter(|l| l.macs == 0).map(ticks).sum()
    };
    let mut row = vec!["".into(), "other ops".into(), "".into(), "0".into()];
    row.extend(runs.iter().flat_map(|r| [thousands(others(r, |l| Some(l.ticks)).unwrap_or(0)), "".into()]));
    rows.push(row);
    let mut row = vec!["".into(), "**inference**".into(), "".into(), thousands(first.macs)];
    row.extend(cells(first.macs, &|r| (r.ticks().unwrap_or(0), r.reference_ticks)));
    rows.push(row);
    Some(markdown(&heads, rows))
}

/// TFLite Micro's figures for an MLPerf Tiny int8 model on a Cortex-M4 (QEMU `mps2-an386`):
/// issue 3's memory (the interpreter's `arena_used_bytes`, firmware text including the model,
/// and that text minus the model, with the same minimal startup and printing) and issue 5's
/// instructions per inference with CMSIS-NN on the same board and `.tflite` files.
struct Tflm {
    model: &'static str,
    instructions: u64,
    arena: u64,
    firmware: u64,
    code: u64,
}

const TFLM: &[Tflm] = &[
    Tflm { model: "kws", instructions: 7_697_880, arena: 22_820, firmware: 142_884, code: 88_948 },
    Tflm { model: "vww", instructions: 24_101_920, arena: 100_708, firmware: 422_236, code: 88_948 },
    Tflm { model: "ic", instructions: 29_861_680, arena: 54_996, firmware: 182_304, code: 83_808 },
    Tflm { model: "ad", instructions: 582_960, arena: 2_580, firmware: 313_204, code: 36_228 },
];

/// `ours / theirs (p %)`.
fn ratio(ours: Option<u64>, theirs: u64) -> Option<String> {
    ours.map(|o| {
        format!("{} / {} ({:.0} %)", thousands(o), thousands(theirs), 100.0 * o as f64 / theirs as f64)
    })
}

/// Ember's `qemu-m4` run of each model in [`TFLM`] beside TFLite Micro's figures, a row for
/// every run with all of `columns`' cells; `None` when there is no such run.
fn tflm_rows<'a>(runs: &'a [Run], columns: &[Column<(&'a Run, &'static Tflm)>]) -> Option<String> {
    let rows: Vec<(&Run, &Tflm)> = TFLM
        .iter()
        .filter_map(|t| Some((runs.iter().find(|r| r.model == t.model && r.board == "qemu-m4")?, t)))
        .filter(|row| columns.iter().all(|c| (c.cell)(row).is_some()))
        .collect();
    (!rows.is_empty()).then(|| render(columns, &rows))
}

/// The memory comparison with TFLite Micro of the ONNX runs.
pub fn tflm_table(runs: &[Run]) -> Option<String> {
    tflm_rows(
        runs,
        &[
            Column { head: "model", right: false, cell: |(r, _)| Some(r.model.clone()) },
            Column {
                head: "arena: Ember / TFLM",
                right: true,
                cell: |(r, t)| ratio(Some(r.arena_bytes), t.arena),
            },
            Column {
                head: "code + model: Ember / TFLM",
                right: true,
                cell: |(r, t)| ratio(r.firmware_bytes, t.firmware),
            },
            Column {
                head: "code: Ember / TFLM (goal ≤ 50 %)",
                right: true,
                cell: |(r, t)| ratio(r.code_bytes, t.code),
            },
        ],
    )
}

/// The comparison with TFLite Micro + CMSIS-NN of the imported runs: instructions and memory.
pub fn tflite_tflm_table(runs: &[Run]) -> Option<String> {
    tflm_rows(
        runs,
        &[
            Column { head: "model", right: false, cell: |(r, _)| Some(r.model.clone()) },
            Column {
                head: "instructions / inference: Ember / TFLM + CMSIS-NN",
                right: true,
                cell: |(r, t)| ratio(r.instructions, t.instructions),
            },
            Column {
                head: "arena: Ember / TFLM",
                right: true,
                cell: |(r, t)| ratio(Some(r.arena_bytes), t.arena),
            },
            Column {
                head: "code + model: Ember / TFLM",
                right: true,
                cell: |(r, t)| ratio(r.firmware_bytes, t.firmware),
            },
        ],
    )
}

/// What the instruction counts are, in both sections.
const INSTRUCTIONS: &str =
    "Instructions are QEMU `-icount` instruction counts, the mean per inference over the batch,\n\
    counted in steps of the board's SysTick tick and identical on every run: not cycles and not\n\
    time (see targets/README.md). MACs / instruction compares kernels and builds, not chips.\n";

/// How the firmware is built, in both sections.
const BUILD: &str = "Release build of the board crates (`opt-level = \"s\"`, LTO, one codegen unit).";

/// The docs section of the ONNX runs: heading, command, what the numbers are, the table.
pub fn section(runs: &[Run], command: &str, versions: &str) -> String {
    let samples = runs.first().map_or(BATCH, |r| r.samples);
    format!(
        "{SECTION}\n\n\
         `{command}`\n\n\
         {versions}.\n\
         {BUILD} Each model is quantized at int8\n\
         with 64 seeded synthetic calibration inputs in its README's input range (plus the real\n\
         samples tests/mlperf.rs uses) and run on a batch of {samples} seeded inputs; the raw results\n\
         are in `benches/results/device.json`.\n\n\
         {INSTRUCTIONS}\
         Bytes: arena is the model's memory plan (ember-quantize's planner), next to what TFLite\n\
         Micro's greedy-by-size planner needs for the same tensors; flash is the whole image; code is flash minus the\n\
         model file and the input batch; RAM is static RAM (arena included); stack is the painted\n\
         peak. Output = host: the board's output bytes for the batch equal the host runtime's (CRC32).\n\n{}{}{}{}",
        table(runs),
        tflm_table(runs).map_or(String::new(), |t| format!(
            "\nAgainst TFLite Micro on a Cortex-M4 (its figures from issue 3: `arena_used_bytes`, and\n\
             firmware text with and without the model, with the same minimal startup and printing).\n\
             Ember's code + model is flash minus the input batch, on `qemu-m4`:\n\n{t}"
        )),
        kernels_table(runs).map_or(String::new(), |t| format!(
            "\n### Reference against optimized kernels\n\n\
             The same firmware built a second time with the portable reference kernels only\n\
             (`EMBER_NO_DSP=1`); both builds give the host's output bytes. TFLite Micro + CMSIS-NN\n\
             ran the MLPerf Tiny `.tflite` files of the same models on `mps2-an386` (issue 4's\n\
             figures; the section on imported models below runs those very files on Ember):\n\n{t}"
        )),
        layers(runs)
    )
}

/// The per-op tables of every model, under one heading; empty without per-op figures.
fn layers(runs: &[Run]) -> String {
    let mut models: Vec<&str> = runs.iter().map(|r| r.model.as_str()).collect();
    models.dedup();
    let tables: Vec<String> =
        models.iter().filter_map(|m| layers_table(runs, m).map(|t| format!("#### {m}\n\n{t}"))).collect();
    if tables.is_empty() {
        return String::new();
    }
    format!(
        "\n### Per op: MACs per instruction\n\n\
         Every op with weights, from the boards' per-op tick totals (instructions per inference,\n\
         the mean over the batch); shape is kernel/stride and input → output channels (conv2d),\n\
         kernel/stride and channels (depthwise), inputs → outputs (fully connected). Other ops\n\
         are the ops without weights together; the inference row is the whole invoke.\n\n{}",
        tables.join("\n")
    )
}

/// The docs section of the imported `.tflite` runs: heading, command, what the numbers are,
/// the table, and the comparison with TFLite Micro + CMSIS-NN.
pub fn tflite_section(runs: &[Run], command: &str, versions: &str) -> String {
    format!(
        "{TFLITE_SECTION}\n\n\
         `{command}`\n\n\
         {versions}.\n\
         {BUILD} Each int8 `.tflite` file is imported as\n\
         `ember-quantize import` does it (the model's own scales, zero points and int32 biases; no\n\
         calibration) and run on every input of its TFLite reference file (`models/tflite-ref/<model>.ref.npz`:\n\
         the model's real samples, where it has them, then 20 seeded random int8 inputs over -128..127).\n\
         Output = TFLite reference: the board's output bytes for all inputs, in order, have the CRC32 of\n\
         the output bytes of TFLite's reference kernels (LiteRT `BUILTIN_REF`, `scripts/tflite_reference.py`);\n\
         output = host: of the host runtime's. Where the model and all inputs do not fit the board's flash\n\
         (the M55's 512 KiB ITCM), the inputs run in several firmware builds of consecutive inputs\n\
         (builds); their CRCs are joined into the CRC over all outputs, and instructions are the mean\n\
         over all inputs. The raw results are in `benches/results/device-tflite.json`.\n\n\
         {INSTRUCTIONS}\
         Bytes: arena is the model's memory plan (ember-quantize's planner); code + model is flash minus\n\
         the inputs (the same in every build); code is that minus the model file; stack is the painted peak.\n\n{}{}",
        tflite_table(runs),
        tflite_tflm_table(runs).map_or(String::new(), |t| format!(
            "\nAgainst TFLite Micro with CMSIS-NN running the same `.tflite` files on the same board (QEMU\n\
             `mps2-an386`, Cortex-M4), Ember on `qemu-m4`. TFLite Micro's figures were not measured here:\n\
             instructions per inference and `arena_used_bytes` as issue 5 gives them, firmware text\n\
             including the model as issue 3 gives it. SWW has none.\n\n{t}"
        ))
    )
}

/// `doc` with its section `heading` replaced by `section` (up to the next `## ` heading), or
/// with `section` appended when it has none.
pub fn replace_section(doc: &str, heading: &str, section: &str) -> String {
    let section = section.trim_end();
    let start = doc.find(&format!("\n{heading}\n")).map(|i| i + 1).or_else(|| {
        let prefix = format!("{heading}\n");
        doc.starts_with(&prefix).then_some(0)
    });
    match start {
        Some(start) => {
            let after = start + heading.len();
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
            source_format: "onnx".into(),
            board: "qemu-m4".into(),
            precision: "int8".into(),
            clock: instructions.map(|_| "instructions".into()),
            samples: 4,
            builds: usize::from(instructions.is_some()),
            instructions,
            cycles: None,
            reference_ticks: None,
            reference_kernels_match_host: None,
            layers: Vec::new(),
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
            reference_file: None,
            reference_output_crc32: None,
            output_matches_reference: None,
            inputs_differing_from_host: Vec::new(),
            inputs_differing_from_reference: Vec::new(),
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
    fn kernel_and_layer_tables_compare_reference_and_optimized() {
        let layer = |index, kind: &str, macs, ticks, reference| Layer {
            index,
            kind: kind.into(),
            shape: if macs > 0 { "640→128".into() } else { String::new() },
            macs,
            ticks,
            reference_ticks: Some(reference),
        };
        let mut m4 = run("ad", Some(700_000), Some(true), None);
        m4.reference_ticks = Some(1_400_000);
        m4.macs = 100_000;
        m4.layers = vec![
            layer(0, "fully_connected", 100_000, 500_000, 1_000_000),
            layer(1, "relu", 0, 150_000, 300_000),
        ];
        let mut m55 = m4.clone();
        m55.board = "qemu-m55".into();
        m55.instructions = Some(350_000);
        let without_reference = run("kws", Some(8_000_000), Some(true), None);
        let runs = [m4, m55, without_reference];

        let t = kernels_table(&runs).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "runs without a reference count are left out");
        assert_eq!(lines[2], "| ad | qemu-m4 | 1,400,000 | 700,000 | 2.00× | 582,960 | 120 % |");
        assert_eq!(lines[3], "| ad | qemu-m55 | 1,400,000 | 350,000 | 4.00× | – | – |");

        let t = layers_table(&runs, "ad").unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0]
            .ends_with("| qemu-m55: instructions | qemu-m55: MACs / instruction, reference → optimized |"));
        assert_eq!(
            lines[2],
            "| 0 | fully_connected | 640→128 | 100,000 | 500,000 | 0.10 → 0.20 | 500,000 | 0.10 → 0.20 |"
        );
        assert_eq!(lines[3], "|  | other ops |  | 0 | 150,000 |  | 150,000 |  |");
        assert_eq!(
            lines[4],
            "|  | **inference** |  | 100,000 | 700,000 | 0.07 → 0.14 | 350,000 | 0.07 → 0.29 |"
        );
        assert_eq!(layers_table(&runs, "kws"), None, "no per-op figures");
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

    /// An imported model's run that matched TFLite's reference bytes or not.
    fn tflite_run(model: &str, board: &str, matches: bool) -> Run {
        let mut r = run(model, Some(9_000_000), Some(true), None);
        r.board = board.into();
        r.source_format = "tflite".into();
        r.samples = 20;
        r.builds = 3;
        r.output_matches_reference = Some(matches);
        r.inputs_differing_from_reference = if matches { vec![] } else { vec![3, 7] };
        r
    }

    #[test]
    fn tflite_tables_show_inputs_builds_the_reference_check_and_tflm() {
        let runs = [tflite_run("kws", "qemu-m4", true), tflite_run("kws", "qemu-m55", false)];
        let t = tflite_table(&runs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| model | board | inputs | builds | instructions / inference | MACs / instruction | arena | code + model | code | stack | output = host | output = TFLite reference |");
        assert_eq!(lines[1], "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
        assert_eq!(
            lines[2],
            "| kws | qemu-m4 | 20 | 3 | 9,000,000 | 0.222 | 16,000 | 148,040 | 118,040 | 2,100 | yes | yes |"
        );
        assert!(lines[3].starts_with("| kws | qemu-m55 |") && lines[3].ends_with("| yes | NO |"));
        let tflm = tflite_tflm_table(&runs).unwrap();
        assert_eq!(
            tflm.lines().nth(2).unwrap(),
            "| kws | 9,000,000 / 7,697,880 (117 %) | 16,000 / 22,820 (70 %) | 148,040 / 142,884 (104 %) |"
        );
        assert_eq!(tflm.lines().count(), 3, "qemu-m4 runs only");
        assert_eq!(tflite_tflm_table(&[tflite_run("sww", "qemu-m4", true)]), None, "no TFLM figures for SWW");
        let section = tflite_section(&runs, "cargo xtask bench-device --tflite", "rustc, QEMU");
        assert!(section.starts_with(
            "## On-device (QEMU): imported int8 TFLite models\n\n`cargo xtask bench-device --tflite`\n"
        ));
        assert_eq!(
            mismatches(&runs, |r| (r.output_matches_reference, &r.inputs_differing_from_reference)),
            ["kws on qemu-m55 (inputs 3, 7 of 20)"]
        );
    }

    #[test]
    fn splits_batches_into_the_fewest_even_builds() {
        assert_eq!((split(20, 20).len(), split(20, 20)[0].clone()), (1, 0..20));
        assert_eq!(split(20, 8), [0..7, 7..14, 14..20]);
        assert_eq!(split(21, 7), [0..7, 7..14, 14..21]);
        assert_eq!(split(5, 1), [0..1, 1..2, 2..3, 3..4, 4..5]);
        assert_eq!(split(3, 0), [0..1, 1..2, 2..3], "at least one input per build");
    }

    #[test]
    fn laid_out_runs_have_a_section_and_json_of_their_own() {
        let standard = format!("{SECTION}\n\ntable; raw results in `benches/results/device.json`.\n");
        assert_eq!(laid_out_section(Kind::Onnx, WeightLayout::Standard, &standard).1, standard);
        let (heading, text) = laid_out_section(Kind::Onnx, WeightLayout::DspPairsWide, &standard);
        assert_eq!(heading, format!("{SECTION}, weights laid out `dsp-pairs-wide`"));
        assert!(text.starts_with(&format!("{heading}\n\nThe same run with")), "{text}");
        assert!(text.contains("`benches/results/device-dsp-pairs-wide.json`"), "{text}");
        let docs = replace_section(&format!("# Doc\n\n{standard}"), &heading, &text);
        assert!(docs.contains(&standard) && docs.ends_with(&text), "both sections kept:\n{docs}");
    }

    #[test]
    fn tflite_models_and_onnx_models_run_apart() {
        let options = |models: &[&str], tflite: bool, range: Option<(f32, f32)>| Options {
            boards: vec![],
            models: models.iter().map(|m| root().join(m)).collect(),
            tflite,
            range,
            timeout: Duration::from_secs(1),
            json: None,
            docs: false,
            reference: false,
            layout: WeightLayout::Standard,
            command: String::new(),
        };
        let (kind, list) = jobs(&options(&[], true, None)).unwrap();
        assert_eq!(kind, Kind::Tflite);
        assert_eq!(
            list.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
            ["kws", "vww", "ic", "ad", "sww"]
        );
        let (kind, list) = jobs(&options(&["models/tflite-ref/vww_96_int8.tflite"], false, None)).unwrap();
        assert_eq!((kind, list[0].name.as_str()), (Kind::Tflite, "vww"));
        assert!(
            matches!(&list[0].source, Source::Tflite { reference } if reference.ends_with("vww.ref.npz"))
        );
        assert_eq!(jobs(&options(&[], false, None)).unwrap().0, Kind::Onnx);
        let mixed = ["models/tflite-ref/ad01_int8.tflite", "models/mlperf-tiny/ad/ad_fc_autoencoder.onnx"];
        assert!(jobs(&options(&mixed, false, None)).unwrap_err().to_string().contains("separate commands"));
        let ranged = jobs(&options(&["models/tflite-ref/ad01_int8.tflite"], false, Some((0.0, 1.0))));
        assert!(ranged.unwrap_err().to_string().contains("--range is for ONNX models"));
        assert!(jobs(&options(&[], true, Some((0.0, 1.0)))).is_err());
    }

    #[test]
    fn replaces_only_its_own_section() {
        let new = "## On-device (QEMU) instruction counts\n\nnew table\n";
        let replace = |doc: &str, new: &str| replace_section(doc, SECTION, new);
        let doc = "# B\n\n## Host\n\nhost\n";
        let added = replace(doc, new);
        assert_eq!(added, "# B\n\n## Host\n\nhost\n\n## On-device (QEMU) instruction counts\n\nnew table\n");
        assert_eq!(replace(&added, new), added, "idempotent");
        let middle = "# B\n\n## On-device (QEMU) instruction counts\n\nold\n\n## Memory\n\nmem\n";
        assert_eq!(
            replace(middle, new),
            "# B\n\n## On-device (QEMU) instruction counts\n\nnew table\n\n## Memory\n\nmem\n"
        );
        let last = replace(&added, "## On-device (QEMU) instruction counts\n\nnewer\n");
        assert_eq!(last, "# B\n\n## Host\n\nhost\n\n## On-device (QEMU) instruction counts\n\nnewer\n");
        let tflite = replace_section(&last, TFLITE_SECTION, &format!("{TFLITE_SECTION}\n\nimported\n"));
        assert_eq!(tflite, format!("{}\n{TFLITE_SECTION}\n\nimported\n", last));
        let both = replace(&tflite, "## On-device (QEMU) instruction counts\n\nx\n");
        assert_eq!(both, tflite.replace("\n\nnewer\n", "\n\nx\n"), "the other section stays");
    }
}
