//! `ember-quantize`: quantize ONNX models to Ember files, inspect, run and evaluate them.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context, Result};
use clap::{Parser, Subcommand};
use ember::format::layout::WeightLayout;
use ember::format::meta::SourceFormat;
use ember::format::DType;
use ember::kernels::scratch::Target;
use ember_build::IncludePaths;
use ember_quantize::algorithms::{Settings, Switch};
use ember_quantize::calibrate::Method;
use ember_quantize::emit::Precision;
use ember_quantize::graph::Graph;
use ember_quantize::host::{ModelFile, Runner};
use ember_quantize::metrics::{accuracy, compare};
use ember_quantize::mixed::{self, drop_points, Chosen, Mixed};
use ember_quantize::npy::{is_int8_npy, load_samples, npy_bytes, read_npy};
use ember_quantize::pipeline::Tuning;
use ember_quantize::plan::{Options, PlanReport};
use ember_quantize::provenance::{self, Origin};
use ember_quantize::quantize::Granularity;
use ember_quantize::samples::arrays::Arrays;
use ember_quantize::samples::images::{Channels, ImageOptions, Images, Layout};
use ember_quantize::samples::{is_data_error, Input, Noise, SampleSource};
use ember_quantize::{debug, inspect, onnx, pipeline, sign, tflite};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tract_onnx::prelude::tract_ndarray::ArrayD;

/// `println!` that returns an error instead of panicking, and treats a closed standard output
/// (`ember-quantize … | head`) as the reader having seen enough.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        match writeln!(std::io::stdout(), $($arg)*) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(anyhow::Error::from(e).context("cannot write to standard output"))
            }
            _ => Ok(()),
        }
    }};
}

/// Exit statuses, by what has to change for the command to succeed (`--help` lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// A bug or an unclassified failure.
    Internal = 1,
    /// The command line: a missing or contradictory option (clap's own usage errors exit 2 too).
    Usage = 2,
    /// The model file: unreadable, corrupt, unsupported, symbolic shapes, non-finite weights.
    Model = 3,
    /// The data file: unreadable, wrong element type or shape, NaN or infinity.
    Data = 4,
    /// The output path: a directory, a missing folder, not writable.
    Output = 5,
}

/// An error and the exit status it earns.
struct Failure {
    fault: Fault,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self { fault: Fault::Internal, error }
    }
}

/// Attaches a [`Fault`] to a result's error.
trait Blame<T> {
    fn blame(self, fault: Fault) -> Result<T, Failure>;
}

impl<T> Blame<T> for Result<T> {
    fn blame(self, fault: Fault) -> Result<T, Failure> {
        self.map_err(|error| Failure { fault, error })
    }
}

const EXIT_CODES: &str = "Exit status: 0 success; 1 internal error (please report it); 2 command-line \
usage (a missing option, -o naming the input model); 3 the model file cannot be used (unreadable, \
corrupt, unsupported, symbolic shapes without --input-shape, NaN or infinite weights); 4 the data \
file cannot be used (unreadable, wrong element type or shape, NaN or infinite calibration values); \
5 the output cannot be written (a directory, a missing folder, not writable). When `quantize` \
fails, no file is created or changed.";

#[derive(Parser)]
#[command(
    version,
    about = "Quantize ONNX models for the Ember runtime, inspect, run and evaluate them",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert an ONNX model to an Ember model file.
    Quantize {
        /// The ONNX model.
        model: PathBuf,
        /// Output file (written atomically; never the input).
        #[arg(short, long)]
        output: PathBuf,
        /// Numeric precision.
        #[arg(long, value_enum, default_value = "int8")]
        precision: Precision,
        #[command(flatten)]
        calib: CalibArgs,
        #[command(flatten)]
        int8: Int8Args,
        #[command(flatten)]
        mixed: MixedArgs,
        /// Concrete shape for an input with symbolic dims, e.g. `input:1,3,32,32` (repeatable).
        #[arg(long = "input-shape", value_parser = parse_input_shape)]
        input_shapes: Vec<(String, Vec<usize>)>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Per-layer quantization debugger: the SQNR of every layer's int8 output against float,
    /// quantized alone and with everything before it, ranked worst first; writes sqnr.json,
    /// sqnr.csv and sqnr.png to --out and prints the ranking.
    Debug {
        /// The ONNX model.
        model: PathBuf,
        /// Folder for sqnr.json, sqnr.csv and sqnr.png (created if missing).
        #[arg(short, long)]
        out: PathBuf,
        /// Flag layers whose alone SQNR is more than this many dB under the median layer's.
        #[arg(long, value_name = "DB", default_value_t = debug::DEFAULT_FLAG_DB)]
        flag_below: f64,
        #[command(flatten)]
        calib: CalibArgs,
        /// Concrete shape for an input with symbolic dims, as for `quantize`.
        #[arg(long = "input-shape", value_parser = parse_input_shape)]
        input_shapes: Vec<(String, Vec<usize>)>,
    },
    /// Convert an int8 TFLite model to an Ember model file, keeping its own quantization.
    Import {
        /// The .tflite model.
        model: PathBuf,
        /// Output file (written atomically; never the input).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Write a Rust module that embeds an Ember model for firmware: the model (16-byte aligned),
    /// `ARENA_BYTES` and an `Arena` type of exactly that size, `OP_COUNT`, the `Kernels` it needs,
    /// input/output shapes and quantization (as `ember-build` does from a build script).
    Codegen {
        /// The Ember model.
        model: PathBuf,
        /// The module file, e.g. `src/model.rs`; it names the model by its path relative to this
        /// file's folder.
        #[arg(short, long)]
        output: PathBuf,
        /// A raw input batch to embed as `INPUTS` (whole samples of input 0, internal layout).
        #[arg(long)]
        inputs: Option<PathBuf>,
    },
    /// Describe an Ember model: ops, shapes, MACs, weights, memory plan, quantization.
    Inspect {
        /// The Ember model.
        model: PathBuf,
    },
    /// Make an Ed25519 key pair for signing models: KEY (secret, 64 bytes) and KEY.pub (32 bytes,
    /// for the firmware's `Model::from_bytes_verified`).
    Keygen {
        /// The secret key file; the public key goes to the same path with `.pub` appended.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Sign an Ember model (in place, or to -o): appends a signature of every other byte.
    Sign {
        /// The Ember model.
        model: PathBuf,
        /// The secret key file from `keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Output file (default: the model itself, replaced atomically).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Check that an Ember model is valid and signed by a key.
    Verify {
        /// The Ember model.
        model: PathBuf,
        /// The public key file from `keygen` (KEY.pub).
        #[arg(long)]
        pubkey: PathBuf,
    },
    /// Run an Ember model on the host: float arrays in the ONNX model's shapes and layout.
    Run {
        /// The Ember model.
        model: PathBuf,
        /// Input samples (.npy or .npz, as for `quantize --calib`).
        #[arg(long)]
        input: PathBuf,
        /// Output .npy (first output; samples stacked on a new first axis when several).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Compare an Ember model with the ONNX model run by tract in f32.
    Eval {
        /// The ONNX model.
        onnx: PathBuf,
        /// The Ember model.
        ember: PathBuf,
        /// Input samples (.npy or .npz).
        #[arg(long)]
        data: PathBuf,
        /// Integer class labels (.npy), one per sample.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Concrete input shapes, as for `quantize`.
        #[arg(long = "input-shape", value_parser = parse_input_shape)]
        input_shapes: Vec<(String, Vec<usize>)>,
    },
}

/// How an image folder given to `--calib` becomes input values.
#[derive(clap::Args)]
struct ImageArgs {
    /// Image folder only: stretch images to WIDTHxHEIGHT, the model input's size (e.g. 96x96).
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    resize: Option<(u32, u32)>,
    /// Image folder only: subtracted from pixel values 0..255, one per channel or one for all
    /// (e.g. 123.675,116.28,103.53).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    mean: Option<Vec<f32>>,
    /// Image folder only: divides (pixel − mean), one per channel or one for all (255 gives
    /// 0..1 from 0..255).
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Image folder only: the input's layout (default: where its 1 or 3 channels are).
    #[arg(long, value_enum)]
    layout: Option<Layout>,
    /// Image folder only: the input's channel order (default: gray for 1 channel, rgb for 3).
    #[arg(long, value_enum)]
    channels: Option<Channels>,
}

impl ImageArgs {
    /// The flags given, by name.
    fn given(&self) -> Vec<&'static str> {
        let flags = [
            ("--resize", self.resize.is_some()),
            ("--mean", self.mean.is_some()),
            ("--std", self.std.is_some()),
            ("--layout", self.layout.is_some()),
            ("--channels", self.channels.is_some()),
        ];
        flags.into_iter().filter(|(_, given)| *given).map(|(flag, _)| flag).collect()
    }

    fn options(&self) -> ImageOptions {
        let defaults = ImageOptions::default();
        ImageOptions {
            resize: self.resize,
            mean: self.mean.clone().unwrap_or(defaults.mean),
            std: self.std.clone().unwrap_or(defaults.std),
            layout: self.layout,
            channels: self.channels,
        }
    }
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let parsed =
        s.split_once(['x', 'X']).and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(format!("'{s}' is not WIDTHxHEIGHT: write e.g. 96x96")),
    }
}

fn parse_input_shape(s: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = s.rsplit_once(':').ok_or("expected NAME:D0,D1,...")?;
    let dims = dims
        .split(',')
        .map(|d| d.trim().parse::<usize>().map_err(|e| format!("{d}: {e}")))
        .collect::<Result<_, _>>()?;
    Ok((name.to_string(), dims))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    ember_quantize::guard::install_hook();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(Failure { fault, error })) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(fault as u8)
        }
        // The hook has reported it.
        Err(_) => std::process::ExitCode::from(Fault::Internal as u8),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Quantize { model, output, precision, calib, int8, mixed, input_shapes, target } => {
            let settings = int8.settings();
            quantize(&model, &output, precision, &calib, &settings, &mixed, &input_shapes, target.plan())
        }
        Command::Debug { model, out, flag_below, calib, input_shapes } => {
            debug(&model, &out, flag_below, &calib, &input_shapes)
        }
        Command::Import { model, output, target } => import(&model, &output, target.plan()),
        Command::Codegen { model, output, inputs } => {
            // Blame the model or the output path for what they cause; what remains is internal.
            ModelFile::read(&model).and_then(|file| file.model().map(drop)).blame(Fault::Model)?;
            check_output(&output).blame(Fault::Output)?;
            ember_build::write_module(&model, inputs.as_deref(), &output, IncludePaths::RelativeToModule)?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::Inspect { model } => {
            let file = ModelFile::read(&model).blame(Fault::Model)?;
            out!("{}", inspect::report(&file.model().blame(Fault::Model)?, file.len()).trim_end())?;
            Ok(())
        }
        Command::Keygen { output } => keygen(&output),
        Command::Sign { model, key, output } => {
            let key = read_file(&key).blame(Fault::Usage)?;
            let bytes = read_file(&model).blame(Fault::Model)?;
            let signed = sign::sign(&bytes, &key).blame(Fault::Model)?;
            let output = output.unwrap_or(model);
            write_atomically(&output, &signed).blame(Fault::Output)?;
            out!("signed {}", output.display())?;
            Ok(())
        }
        Command::Verify { model, pubkey } => {
            let key = read_file(&pubkey).blame(Fault::Usage)?;
            let bytes = read_file(&model).blame(Fault::Model)?;
            sign::verify(&bytes, &key)
                .with_context(|| format!("{} fails verification", model.display()))
                .blame(Fault::Model)?;
            out!("{}: valid, signed by {}", model.display(), pubkey.display())?;
            Ok(())
        }
        Command::Run { model, input, output } => run_model(&model, &input, &output),
        Command::Eval { onnx, ember, data, labels, input_shapes } => {
            eval(&onnx, &ember, &data, labels.as_deref(), &input_shapes)
        }
    }
}

/// What int8 is calibrated with.
#[derive(clap::Args)]
struct CalibArgs {
    /// Calibration samples: .npy (first axis = samples), .npz (one array per input), a folder
    /// of PNG/JPEG images (one image input), or `random` for seeded uniform noise (accuracy
    /// not representative). Read one sample at a time.
    #[arg(long = "calib")]
    data: Option<String>,
    /// Use at most this many calibration samples.
    #[arg(long = "calib-limit", default_value_t = 500)]
    limit: usize,
    /// How each activation's int8 range is chosen: minmax, percentile[=P] (P % on each tail,
    /// default 99.99), entropy (least KL divergence) or mse (least squared error).
    #[arg(long = "calibration", default_value = "minmax", value_parser = str::parse::<Method>)]
    method: Method,
    #[command(flatten)]
    images: ImageArgs,
}

impl CalibArgs {
    /// Refuses contradictory flags: image options without an image folder, a histogram method
    /// on random noise.
    fn check(&self) -> Result<(), Failure> {
        let image_flags = self.images.given();
        if !self.data.as_deref().is_some_and(|p| Path::new(p).is_dir()) && !image_flags.is_empty() {
            return Err(anyhow!(
                "{} only apply to an image folder given to --calib; drop them, or pass --calib FOLDER",
                image_flags.join(", ")
            ))
            .blame(Fault::Usage);
        }
        if self.is_random() && provenance::calibration_code(self.method, true).is_none() {
            return Err(anyhow!(
                "--calib random calibrates with min/max only (noise has no outliers to clip): drop \
                 --calibration {}, or give real samples",
                self.method
            ))
            .blame(Fault::Usage);
        }
        Ok(())
    }

    fn is_random(&self) -> bool {
        self.data.as_deref() == Some("random")
    }

    /// The samples of `--calib` for a model with `inputs`.
    fn open(&self, inputs: &[Input]) -> Result<Box<dyn SampleSource>, Failure> {
        let path = self.data.as_deref().context("internal error: no --calib to open")?;
        if self.is_random() {
            eprintln!("warning: calibrating on random noise; int8 accuracy will not be representative");
            return Ok(Box::new(Noise::new(inputs, RANDOM_SAMPLES.min(self.limit))));
        }
        let path = Path::new(path);
        let opened: Result<Box<dyn SampleSource>> = match path.is_dir() {
            true => Images::open(path, inputs, &self.images.options(), self.limit).map(|s| Box::new(s) as _),
            false => Arrays::open(path, inputs, self.limit).map(|s| Box::new(s) as _),
        };
        opened.context("cannot use the calibration data (--calib)").blame(Fault::Data)
    }
}

/// Which kernels the model's memory plan reserves scratch for.
#[derive(clap::Args)]
struct TargetArgs {
    /// The kernel set the model will run on: each op gets the scratch memory its kernels need,
    /// in the arena plan. `any` (the default) plans the most any set needs, so the file runs
    /// everywhere; naming the device's set gives it the smallest arena. The runtime refuses a
    /// model planned with less scratch than its kernels need.
    #[arg(long, value_enum, default_value = "any")]
    target: TargetName,
    /// How int8 convolution and fully connected weights are laid out: `standard` (what every
    /// kernel set reads at full speed), `dsp-pairs` (filter pairs interleaved for the Cortex-M
    /// DSP kernels, same flash), `dsp-pairs-wide` (the same sign-extended to 16 bits: the
    /// fastest DSP convolutions, twice their weight bytes). Both DSP layouts also store the
    /// weights of 3×3 depthwise layers the DSP 3×3 path takes as its paired, doubled taps
    /// (2.7× their bytes). Default: `dsp-pairs` for `--target cortex-m-dsp`, else `standard`.
    /// Every layout runs on every target.
    #[arg(long, value_enum)]
    weight_layout: Option<LayoutName>,
}

/// A `--weight-layout` value.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LayoutName {
    /// Row-major, as the tensor's dims say.
    Standard,
    /// Filter pairs interleaved per four weights, for Cortex-M DSP kernels.
    DspPairs,
    /// `dsp-pairs` with 16-bit weights.
    DspPairsWide,
}

/// A `--target` value.
#[derive(Clone, Copy, clap::ValueEnum)]
enum TargetName {
    /// Every kernel set below.
    Any,
    /// The portable reference kernels (x86 hosts, cores without DSP or SIMD).
    Reference,
    /// Cortex-M4, M7, M33 (DSP extension).
    CortexMDsp,
    /// Cortex-M55, M85 (Helium).
    Helium,
    /// aarch64 (NEON, SDOT).
    Neon,
}

impl TargetArgs {
    /// The plan options for this target.
    fn plan(&self) -> Options {
        let targets: &'static [Target] = match self.target {
            TargetName::Any => &Target::ALL,
            TargetName::Reference => &[Target::Reference],
            TargetName::CortexMDsp => &[Target::CortexMDsp],
            TargetName::Helium => &[Target::Helium],
            TargetName::Neon => &[Target::Neon],
        };
        let layout = match (self.weight_layout, self.target) {
            (Some(LayoutName::Standard), _) => WeightLayout::Standard,
            (Some(LayoutName::DspPairs), _) | (None, TargetName::CortexMDsp) => WeightLayout::DspPairs,
            (Some(LayoutName::DspPairsWide), _) => WeightLayout::DspPairsWide,
            (None, _) => WeightLayout::Standard,
        };
        Options { targets, layout, ..Options::default() }
    }
}

/// How `quantize` makes int8 weights, and the algorithms it may run.
#[derive(clap::Args)]
struct Int8Args {
    /// One int8 scale per weight tensor instead of one per output channel (for kernels and
    /// targets that want it; cross-layer equalization matters most there).
    #[arg(long)]
    per_tensor: bool,
    /// Cross-layer equalization of conv → (depthwise) conv chains, replacing ReLU6 by ReLU where
    /// it applies; auto keeps it only if it raises the output SQNR on the calibration samples.
    #[arg(long, value_enum, default_value = "auto")]
    equalize: Switch,
    /// Bias correction of every conv and fully connected layer for its weights' rounding; auto
    /// keeps it only if it raises the output SQNR on the calibration samples.
    #[arg(long, value_enum, default_value = "auto")]
    bias_correction: Switch,
}

impl Int8Args {
    fn settings(&self) -> Settings {
        let weights = if self.per_tensor { Granularity::PerTensor } else { Granularity::PerChannel };
        Settings { weights, equalize: self.equalize, bias_correction: self.bias_correction }
    }
}

/// Which layers of an int8 model run in float.
#[derive(clap::Args)]
struct MixedArgs {
    /// Run these layers (ONNX node names) in float: f32 activations and f16 weights, with
    /// quantize/dequantize ops where they meet int8 layers.
    #[arg(long, value_name = "NODE", num_args = 1.., conflicts_with = "max_drop")]
    keep_float: Vec<String>,
    /// Keep the most sensitive layers in float until the int8 model's top-1 disagreement with the
    /// f32 model on --eval-data is at most X percentage points (an accuracy drop is never larger).
    #[arg(long, value_name = "X", requires = "eval_data")]
    max_drop: Option<f64>,
    /// The samples --max-drop evaluates on (.npy or .npz, as for --calib).
    #[arg(long, value_name = "DATA", requires = "max_drop")]
    eval_data: Option<PathBuf>,
}

impl MixedArgs {
    /// The evaluation samples of `--max-drop` for `graph`, after checking the flags fit
    /// `precision` and `--keep-float` names layers of `graph`.
    fn samples(&self, precision: Precision, graph: &Graph) -> Result<Vec<Vec<ArrayD<f32>>>, Failure> {
        let given = !self.keep_float.is_empty() || self.max_drop.is_some();
        if given && precision != Precision::Int8 {
            return Err(anyhow!(
                "--keep-float and --max-drop choose float layers of an int8 model: drop them, or use \
                 --precision int8"
            ))
            .blame(Fault::Usage);
        }
        if !self.keep_float.is_empty() {
            mixed::by_name(graph, &self.keep_float).blame(Fault::Usage)?;
        }
        match (self.max_drop, &self.eval_data) {
            (Some(x), _) if !(0.0..=100.0).contains(&x) => Err(anyhow!(
                "--max-drop {x}: give a budget in percentage points of top-1 agreement, from 0 to 100"
            ))
            .blame(Fault::Usage),
            (Some(_), Some(path)) => {
                let inputs: Vec<Input> =
                    graph.inputs.iter().map(|io| (io.name.clone(), io.onnx_shape.clone())).collect();
                load_samples(path, &inputs)
                    .context("cannot use the evaluation data (--eval-data)")
                    .blame(Fault::Data)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The choice of float layers, over `samples` for `--max-drop`.
    fn choice<'a>(&'a self, samples: &'a [Vec<ArrayD<f32>>]) -> Mixed<'a> {
        match self.max_drop {
            Some(points) => Mixed::MaxDrop { points, samples },
            None if !self.keep_float.is_empty() => Mixed::KeepFloat(&self.keep_float),
            None => Mixed::None,
        }
    }
}

/// The lines `quantize` prints about a mixed model: after `--max-drop`, the layers it kept and
/// the disagreement with f32 before and after; then every float layer.
fn mixed_summary(graph: &Graph, chosen: &Chosen) -> Vec<String> {
    let names =
        |nodes: &[usize]| nodes.iter().map(|&i| graph.nodes[i].name.as_str()).collect::<Vec<_>>().join(", ");
    let mut lines = Vec::new();
    if let Some(s) = &chosen.search {
        if s.kept.is_empty() {
            lines.push("--max-drop: the all-int8 model meets the budget".to_string());
        }
        for (i, step) in &s.added {
            lines.push(format!(
                "--max-drop tries {} in float: {:.2} points, {:.1} dB",
                graph.nodes[*i].name,
                drop_points(step),
                step.sqnr_db
            ));
        }
        if !s.kept.is_empty() {
            lines.push(format!("--max-drop keeps in float: {}", names(&s.kept)));
        }
        lines.push(format!(
            "top-1 disagreement with f32 on {} samples: int8 {:.2} points ({:.1} dB SQNR), mixed {:.2} points ({:.1} dB)",
            s.int8.samples,
            drop_points(&s.int8),
            s.int8.sqnr_db,
            drop_points(&s.mixed),
            s.mixed.sqnr_db
        ));
    }
    let float: Vec<usize> = (0..chosen.float.len()).filter(|&i| chosen.float[i]).collect();
    if !float.is_empty() {
        lines.push(format!("float layers (f32 activations, f16 weights): {}", names(&float)));
    }
    lines
}

/// Calibration samples to read: the random noise `quantize` uses has this many.
const RANDOM_SAMPLES: usize = 16;

#[allow(clippy::too_many_arguments)]
fn quantize(
    model: &Path,
    output: &Path,
    precision: Precision,
    calib: &CalibArgs,
    settings: &Settings,
    mixed: &MixedArgs,
    input_shapes: &[(String, Vec<usize>)],
    options: Options,
) -> Result<(), Failure> {
    refuse_input_as_output(model, output)?;
    check_output(output).blame(Fault::Output)?;
    if let (Precision::Int8, None) = (precision, &calib.data) {
        return Err(anyhow!(
            "int8 needs calibration data: pass --calib SAMPLES.npy|.npz|IMAGE_FOLDER (a few hundred \
             representative inputs), or --calib random to accept unrepresentative accuracy"
        ))
        .blame(Fault::Usage);
    }
    calib.check()?;
    let random = calib.is_random();
    let graph = onnx::load_onnx(model, input_shapes).blame(Fault::Model)?;
    let eval_samples = mixed.samples(precision, &graph)?;
    let source = match precision {
        Precision::Int8 => Some(calib.open(&model_inputs_of(&graph))?),
        _ => None,
    };
    let calibration_passes = if calib.method.needs_histograms() { 2 } else { 1 };
    let more = settings.passes(calibration_passes) - calibration_passes;
    let source = source.map(|s| Progress::new(s, calib.method, more));
    let calibration = source
        .as_ref()
        .map(|s| pipeline::Calibration { source: s as &dyn SampleSource, method: calib.method });
    let text = read_file(model).blame(Fault::Model)?;
    let origin = Origin::new(&text, SourceFormat::Onnx, random).blame(Fault::Usage)?;
    let built = match (precision, calibration) {
        (Precision::Int8, Some(calibration)) => {
            let choice = mixed.choice(&eval_samples);
            pipeline::build_mixed(&graph, calibration, settings, choice, options, &origin)
        }
        _ => pipeline::build_tuned(&graph, precision, calibration, settings, options, &origin),
    };
    if let Some(s) = &source {
        s.bar.finish_and_clear();
    }
    let written = built.map_err(|error| match is_data_error(&error) {
        true => {
            Failure { fault: Fault::Data, error: error.context("cannot use the calibration data (--calib)") }
        }
        false => Failure { fault: Fault::Model, error },
    })?;
    for (tensor, value) in &written.constant_activations {
        let fallback =
            if *value == 0.0 { " (scale 1, zero point 0: the fallback for an empty range)" } else { "" };
        eprintln!(
            "warning: activation '{tensor}' was {value} for every calibration sample, so its int8 range is \
             only [{}, {}]{fallback}; other values at run time will lose precision or saturate. Calibrate \
             with data that exercises it, or check the model",
            value.min(0.0),
            value.max(0.0)
        );
    }
    write_atomically(output, &written.bytes).blame(Fault::Output)?;
    let file = ModelFile::from_bytes(&written.bytes);
    let m = file.model()?;
    let plan = &written.plan;
    let samples = m.metadata().map_or(0, |meta| meta.provenance.calib_samples);
    out!(
        "wrote {} ({:?}): {} ops, {} weight bytes, {} calibration samples{}",
        output.display(),
        precision,
        m.op_count(),
        m.weight_bytes(),
        samples,
        if samples > 0 { format!(" ({})", calib.method) } else { String::new() }
    )?;
    if let Some(tuning) = &written.tuning {
        out!("{}", tuning_summary(settings.weights, tuning))?;
        for line in mixed_summary(&graph, &tuning.mixed) {
            out!("{line}")?;
        }
    }
    out!("{}", plan_summary(plan))?;
    Ok(())
}

/// What int8 quantization did: weight granularity, each algorithm's outcome and, when `auto`
/// chose, the output SQNR of every variant tried.
fn tuning_summary(weights: Granularity, tuning: &Tuning) -> String {
    let granularity = match weights {
        Granularity::PerChannel => "per channel",
        Granularity::PerTensor => "per tensor",
    };
    let mut lines = vec![format!("int8 weights {granularity}; {}", tuning.chosen)];
    if let Some(e) = &tuning.equalized {
        lines.push(format!("  equalization: {} conv pairs", e.pairs.len()));
        if !e.relu6_replaced.is_empty() {
            lines.push(format!(
                "  ReLU6 replaced by ReLU (as AIMET does; outputs above 6 are no longer clipped) in: {}",
                e.relu6_replaced.join(", ")
            ));
        }
    }
    if tuning.chosen.bias_correction {
        lines.push(format!("  bias correction: {} layers", tuning.corrected));
    }
    if !tuning.tried.is_empty() {
        let tried: Vec<String> = tuning.tried.iter().map(|(v, db)| format!("{v} {db:.2} dB")).collect();
        lines.push(format!("  output SQNR vs f32 on the calibration samples (auto): {}", tried.join(", ")));
    }
    lines.join("\n")
}

/// The inputs of `graph` by name and ONNX shape.
fn model_inputs_of(graph: &Graph) -> Vec<Input> {
    graph.inputs.iter().map(|io| (io.name.clone(), io.onnx_shape.clone())).collect()
}

/// `debug`: analyses every layer, prints the ranking and writes the JSON, CSV and PNG reports.
fn debug(
    model: &Path,
    out: &Path,
    flag_below: f64,
    calib: &CalibArgs,
    input_shapes: &[(String, Vec<usize>)],
) -> Result<(), Failure> {
    if !(flag_below.is_finite() && flag_below >= 0.0) {
        return Err(anyhow!("--flag-below {flag_below}: give a number of dB, 0 or more (e.g. 10)"))
            .blame(Fault::Usage);
    }
    if calib.data.is_none() {
        return Err(anyhow!(
            "the debugger needs calibration data: pass --calib SAMPLES.npy|.npz|IMAGE_FOLDER, as for quantize"
        ))
        .blame(Fault::Usage);
    }
    calib.check()?;
    std::fs::create_dir_all(out)
        .with_context(|| {
            format!("cannot create the folder {} for the reports; choose another --out", out.display())
        })
        .blame(Fault::Output)?;
    let paths = ["sqnr.json", "sqnr.csv", "sqnr.png"].map(|name| out.join(name));
    paths.iter().try_for_each(|p| check_output(p)).blame(Fault::Output)?;
    let graph = onnx::load_onnx(model, input_shapes).blame(Fault::Model)?;
    let source = Progress::new(calib.open(&model_inputs_of(&graph))?, calib.method, 1);
    let calibration = pipeline::Calibration { source: &source, method: calib.method };
    let analysis = debug::analyze(&graph, calibration, flag_below);
    source.bar.finish_and_clear();
    let analysis = analysis.map_err(|error| match is_data_error(&error) {
        true => {
            Failure { fault: Fault::Data, error: error.context("cannot use the calibration data (--calib)") }
        }
        false => Failure { fault: Fault::Model, error },
    })?;
    let name =
        model.file_name().map_or_else(|| model.display().to_string(), |n| n.to_string_lossy().into_owned());
    let [json, csv, png] = &paths;
    write_atomically(json, debug::report::json(&analysis, &name)?.as_bytes()).blame(Fault::Output)?;
    write_atomically(csv, &debug::report::csv(&analysis)?).blame(Fault::Output)?;
    let title = format!("{name}: per-layer int8 SQNR ({}, {} samples)", analysis.method, analysis.samples);
    debug::plot::png(&analysis, &title, png).blame(Fault::Output)?;
    out!("{}", debug::report::text(&analysis).trim_end())?;
    let flagged = analysis.layers.iter().filter(|l| l.flagged).count();
    out!(
        "{} layers, {} samples; median alone SQNR {:.2} dB; {flagged} flagged (alone SQNR under {:.2} dB, \
         i.e. more than {} dB below the median)",
        analysis.layers.len(),
        analysis.samples,
        analysis.median_db,
        analysis.threshold_db(),
        analysis.flag_db
    )?;
    out!("wrote {}, {} and {}", json.display(), csv.display(), png.display())?;
    Ok(())
}

/// Calibration samples behind a progress bar over every pass, drawn only when standard error
/// is a terminal.
struct Progress {
    source: Box<dyn SampleSource>,
    bar: ProgressBar,
}

impl Progress {
    /// A bar over the passes calibration with `method` makes and `more` passes after them.
    fn new(source: Box<dyn SampleSource>, method: Method, more: usize) -> Self {
        let passes = if method.needs_histograms() { 2 } else { 1 } + more;
        let bar =
            ProgressBar::with_draw_target(Some((source.len() * passes) as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} samples, {eta} left") {
            bar.set_style(style.progress_chars("=> "));
        }
        let task = if more > 0 { "calibrating and measuring" } else { "calibrating" };
        bar.set_message(format!("{task} ({method}, {passes} pass{})", if passes > 1 { "es" } else { "" }));
        Self { source, bar }
    }
}

impl SampleSource for Progress {
    fn len(&self) -> usize {
        self.source.len()
    }

    fn for_each(&self, visit: &mut dyn FnMut(&[ArrayD<f32>]) -> Result<()>) -> Result<()> {
        self.source.for_each(&mut |sample| {
            visit(sample)?;
            self.bar.inc(1);
            Ok(())
        })
    }
}

/// Writes a new key pair to `output` and `output.pub`, refusing to overwrite either.
fn keygen(output: &Path) -> Result<(), Failure> {
    let public = PathBuf::from(format!("{}.pub", output.display()));
    for path in [output, &public] {
        if path.exists() {
            return Err(anyhow!(
                "{} exists: keygen never overwrites a key; choose another -o path",
                path.display()
            ))
            .blame(Fault::Output);
        }
    }
    let (secret_key, public_key) = sign::keygen();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options.open(output).map_err(anyhow::Error::from).blame(Fault::Output)?,
        &secret_key,
    )
    .map_err(anyhow::Error::from)
    .blame(Fault::Output)?;
    std::fs::write(&public, public_key).map_err(anyhow::Error::from).blame(Fault::Output)?;
    out!("wrote {} (secret: keep it off the device) and {} (public)", output.display(), public.display())?;
    Ok(())
}

/// Refuses an output path naming the input model.
fn refuse_input_as_output(model: &Path, output: &Path) -> Result<(), Failure> {
    if let (Ok(a), Ok(b)) = (model.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(anyhow!(
                "refusing to overwrite the input model {} with the output: give -o another path, e.g. {}",
                model.display(),
                model.with_extension("ember").display()
            ))
            .blame(Fault::Usage);
        }
    }
    Ok(())
}

fn import(model: &Path, output: &Path, options: Options) -> Result<(), Failure> {
    refuse_input_as_output(model, output)?;
    check_output(output).blame(Fault::Output)?;
    let bytes = read_file(model).blame(Fault::Model)?;
    let origin = Origin::new(&bytes, SourceFormat::Tflite, false).blame(Fault::Usage)?;
    let written = tflite::import(&bytes, &origin, options)
        .with_context(|| format!("cannot import {}", model.display()))
        .blame(Fault::Model)?;
    write_atomically(output, &written.bytes).blame(Fault::Output)?;
    let file = ModelFile::from_bytes(&written.bytes);
    let m = file.model()?;
    out!(
        "wrote {} (int8, imported): {} ops, {} weight bytes",
        output.display(),
        m.op_count(),
        m.weight_bytes()
    )?;
    out!("{}", plan_summary(&written.plan))?;
    Ok(())
}

/// The memory plan's line in `quantize` and `import` output.
fn plan_summary(plan: &PlanReport) -> String {
    format!(
        "arena: {} bytes (greedy by size: {}; lower bound: {}; no reuse: {}; in-place ops: {}; largest kernel scratch: {})",
        thousands(plan.arena_bytes),
        thousands(plan.greedy_bytes),
        thousands(plan.lower_bound_bytes),
        thousands(plan.unshared_bytes),
        plan.in_place_ops,
        thousands(plan.scratch_bytes)
    )
}

/// The bytes of the file at `path`, or an error naming it.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `n` with a comma between thousands: `64512` → `64,512`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Fails early, before any work, if `output` cannot become a file: it is a directory, or its
/// folder does not exist or is not a folder.
fn check_output(output: &Path) -> Result<()> {
    ensure!(
        !output.is_dir(),
        "the output path {} is a directory; give a file path such as {}",
        output.display(),
        output.join("model.ember").display()
    );
    let dir = output_dir(output);
    ensure!(
        dir.is_dir(),
        "cannot write {}: the folder {} {}; create it first or choose another -o path",
        output.display(),
        dir.display(),
        if dir.exists() { "is not a folder" } else { "does not exist" }
    );
    // Fail now rather than after quantizing: create and remove the temporary file the write uses.
    let tmp = temporary(output)?;
    std::fs::write(&tmp, b"").and_then(|()| std::fs::remove_file(&tmp)).map_err(|e| {
        anyhow!(
            "cannot create files in {} ({e}); check that the folder is writable, or choose another -o path",
            dir.display()
        )
    })
}

/// The temporary file beside `path` that [`write_atomically`] renames over it.
fn temporary(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().context("the output path has no file name")?.to_string_lossy();
    Ok(output_dir(path).join(format!(".{name}.tmp{}", std::process::id())))
}

/// The folder `path` is written in.
fn output_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: on failure
/// `path` is untouched and the temporary file removed.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary(path)?;
    let advice = "check that the folder is writable and has space, or choose another -o path";
    let written = std::fs::write(&tmp, bytes)
        .map_err(|e| anyhow!("cannot create {} to write {} ({e}); {advice}", tmp.display(), path.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|e| {
                anyhow!("cannot replace {} with {} ({e}); {advice}", path.display(), tmp.display())
            })
        });
    if written.is_err() {
        // Best effort: the file may not exist, and the write's error is the one to report.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn model_inputs(model: &ember::Model) -> Result<Vec<(String, Vec<usize>)>> {
    (0..model.input_count())
        .map(|i| {
            let io = model.input(i)?;
            Ok((io.name.to_string(), io.onnx_dims.iter().map(|&d| d as usize).collect()))
        })
        .collect()
}

fn run_model(model: &Path, input: &Path, output: &Path) -> Result<(), Failure> {
    check_output(output).blame(Fault::Output)?;
    let file = ModelFile::read(model).blame(Fault::Model)?;
    let m = file.model().blame(Fault::Model)?;
    if input.extension().is_some_and(|e| e == "npy") && is_int8_npy(input).blame(Fault::Data)? {
        return run_raw_i8(&m, input, output);
    }
    let samples = load_samples(input, &model_inputs(&m)?).blame(Fault::Data)?;
    let mut runner = Runner::new(&m);
    let mut outs = Vec::with_capacity(samples.len());
    for s in &samples {
        outs.push(runner.run(s)?.swap_remove(0));
    }
    let result = if outs.len() == 1 {
        outs.swap_remove(0)
    } else {
        let views: Vec<_> =
            outs.iter().map(|o| o.view().insert_axis(tract_onnx::prelude::tract_ndarray::Axis(0))).collect();
        tract_onnx::prelude::tract_ndarray::concatenate(tract_onnx::prelude::tract_ndarray::Axis(0), &views)
            .map_err(anyhow::Error::from)?
    };
    write_atomically(output, &npy_bytes(result.shape(), result.iter().copied())?).blame(Fault::Output)?;
    out!("ran {} sample(s); wrote {} with shape {:?}", samples.len(), output.display(), result.shape())?;
    Ok(())
}

/// `run` on an int8 `.npy` input: the bytes go into the model's int8 input as they are and the
/// int8 output bytes come out as an int8 `.npy`, with no (de)quantization in between, so they
/// compare byte for byte with another int8 runtime.
fn run_raw_i8(m: &ember::Model, input: &Path, output: &Path) -> Result<(), Failure> {
    let (x, y) = (m.input(0).map_err(anyhow::Error::from)?, m.output(0).map_err(anyhow::Error::from)?);
    let identity = |perm: &[u8]| perm.iter().enumerate().all(|(i, &p)| p as usize == i);
    if m.input_count() != 1 || x.tensor.dtype != DType::I8 || y.tensor.dtype != DType::I8 {
        return Err(anyhow!(
            "an int8 .npy input needs a model with one int8 input and an int8 first output; give float \
             values (e.g. x.astype(numpy.float32)) to have them quantized"
        ))
        .blame(Fault::Data);
    }
    if !identity(x.perm) || !identity(y.perm) {
        return Err(anyhow!(
            "this model stores its input or output in another layout than the original model; raw int8 \
             input needs an unpermuted model (e.g. one from `import`): give float values instead"
        ))
        .blame(Fault::Data);
    }
    let shape: Vec<usize> = x.onnx_dims.iter().map(|&d| d as usize).collect();
    let data = read_npy(input).blame(Fault::Data)?;
    let samples = ember_quantize::host::samples(&data, &shape).blame(Fault::Data)?;
    let mut arena = vec![0u8; m.arena_bytes()];
    let mut interp = ember::Interpreter::new(m, &mut arena).map_err(anyhow::Error::from)?;
    let mut values = Vec::new();
    for sample in &samples {
        let input = interp.input_i8(0).map_err(anyhow::Error::from)?;
        input.iter_mut().zip(sample).for_each(|(q, &v)| *q = v as i8);
        interp.invoke().map_err(anyhow::Error::from)?;
        values.extend_from_slice(interp.output_i8(0).map_err(anyhow::Error::from)?);
    }
    let mut out_shape: Vec<usize> = y.onnx_dims.iter().map(|&d| d as usize).collect();
    if samples.len() > 1 {
        out_shape.insert(0, samples.len());
    }
    write_atomically(output, &npy_bytes(&out_shape, values)?).blame(Fault::Output)?;
    out!(
        "ran {} sample(s) on raw int8 bytes; wrote {} (int8) with shape {out_shape:?}",
        samples.len(),
        output.display()
    )?;
    Ok(())
}

fn eval(
    onnx_path: &Path,
    ember_path: &Path,
    data: &Path,
    labels: Option<&Path>,
    input_shapes: &[(String, Vec<usize>)],
) -> Result<(), Failure> {
    let file = ModelFile::read(ember_path).blame(Fault::Model)?;
    let m = file.model().blame(Fault::Model)?;
    let samples = load_samples(data, &model_inputs(&m)?).blame(Fault::Data)?;
    let mut runner = Runner::new(&m);
    let tract = onnx::TractModel::load(onnx_path, input_shapes).blame(Fault::Model)?;
    let (mut reference, mut ours) = (Vec::new(), Vec::new());
    for s in &samples {
        let r = tract.run(s)?;
        reference.push(r[0].iter().copied().collect::<Vec<f32>>());
        ours.push(runner.run(s)?[0].iter().copied().collect::<Vec<f32>>());
    }
    let a = compare(&reference, &ours);
    out!("samples: {}", a.samples)?;
    out!("top-1 agreement: {:.2}%", 100.0 * a.top1)?;
    out!("cosine similarity: {:.6}", a.cosine)?;
    out!("max abs error: {:.6} (max |reference| {:.4})", a.max_abs_error, a.max_abs_reference)?;
    out!("SQNR: {:.2} dB", a.sqnr_db)?;
    if let Some(labels) = labels {
        let l: Vec<usize> = read_npy(labels).blame(Fault::Data)?.iter().map(|&v| v as usize).collect();
        if l.len() < samples.len() {
            return Err(anyhow!(
                "{}: {} labels for {} samples; give one label per sample of {}",
                labels.display(),
                l.len(),
                samples.len(),
                data.display()
            ))
            .blame(Fault::Data);
        }
        let l = &l[..samples.len()];
        out!(
            "accuracy: f32 (tract) {:.2}%, ember {:.2}%",
            100.0 * accuracy(&reference, l),
            100.0 * accuracy(&ours, l)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated_by_commas() {
        let cases = [(0, "0"), (768, "768"), (1000, "1,000"), (64512, "64,512"), (1234567, "1,234,567")];
        for (n, expected) in cases {
            assert_eq!(thousands(n), expected);
        }
    }
}
