//! Every calibration method, and per-tensor weights, cross-layer equalization and bias
//! correction, on the digits CNN, the depthwise-separable `ds_cnn` and the MLPerf Tiny models
//! (one ONNX file each): int8 against tract's f32. The data follow tests/mlperf.rs: 64
//! synthetic inputs (seed 2) over each model's input range to evaluate, 64 others (seed 1) plus
//! every second real sample to calibrate; the digits models calibrate on their 200 calibration
//! images and are evaluated on the 450 labelled test images.
//!
//! `cargo test --test calibration_methods -- --nocapture` prints the tables kept in
//! docs/QUANTIZATION.md. The tests fail if a method loses more than 2 points of accuracy on a
//! labelled set, if min/max misses the bounds tests/mlperf.rs holds it to, if equalization
//! changes the digits CNN's f32 function, or if equalization + bias correction do not raise
//! `ds_cnn`'s per-tensor output SQNR by a clear margin.

mod mlperf_data;

use std::path::{Path, PathBuf};

use ember_quantize::algorithms::equalize::equalize;
use ember_quantize::algorithms::{Settings, Switch};
use ember_quantize::calibrate::Method;
use ember_quantize::emit::Precision;
use ember_quantize::graph::Graph;
use ember_quantize::host::{ModelFile, Runner};
use ember_quantize::metrics::{accuracy, compare, Agreement};
use ember_quantize::npy::{load_samples, read_npy};
use ember_quantize::onnx::{load_onnx, TractModel};
use ember_quantize::pipeline::{build, build_tuned, Calibration};
use ember_quantize::plan::Options;
use ember_quantize::provenance::Origin;
use ember_quantize::quantize::Granularity;
use mlperf_data::{real_samples, synthetic};
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

/// Synthetic samples per model for evaluation (and as many, with another seed, for calibration).
const SYNTHETIC: usize = 64;

const METHODS: [Method; 4] = [Method::MinMax, Method::Percentile(99.99), Method::Entropy, Method::Mse];

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Samples to calibrate on and to evaluate with, and the f32 model.
struct Data {
    name: &'static str,
    calib: Vec<Sample>,
    /// Synthetic inputs (empty for the digits CNN).
    synthetic: Vec<Sample>,
    /// Real inputs, with labels where the data set has them.
    real: Vec<Sample>,
    labels: Option<Vec<usize>>,
    classifier: bool,
}

fn mlperf(name: &'static str, file: &str, range: (f32, f32), classifier: bool) -> Data {
    let graph = load_onnx(&models().join("mlperf-tiny").join(file), &[]).unwrap();
    let shape = graph.inputs[0].onnx_shape.clone();
    let one_input = |xs: Vec<ArrayD<f32>>| xs.into_iter().map(|x| vec![x]).collect::<Vec<Sample>>();
    let (real, labels) = real_samples(file, &shape);
    let real = one_input(real);
    let mut calib = one_input(synthetic(&shape, range, SYNTHETIC, 1));
    calib.extend(real.iter().step_by(2).cloned());
    let synthetic = one_input(synthetic(&shape, range, SYNTHETIC, 2));
    Data { name, calib, synthetic, real, labels, classifier }
}

fn digits() -> Data {
    let dir = models().join("digits");
    let inputs = [("image".to_string(), vec![1, 1, 8, 8])];
    let labels = read_npy(&dir.join("test_y.npy")).unwrap().iter().map(|&v| v as usize).collect();
    Data {
        name: "digits CNN",
        calib: load_samples(&dir.join("calib_x.npy"), &inputs).unwrap(),
        synthetic: Vec::new(),
        real: load_samples(&dir.join("test_x.npy"), &inputs).unwrap(),
        labels: Some(labels),
        classifier: true,
    }
}

/// The depthwise-separable CNN: its calibration images, and the digits test set upscaled to
/// 16×16 as models/make_models.py trained it (every pixel repeated 2×2).
fn ds_cnn() -> Data {
    let digits = digits();
    let inputs = [("image".to_string(), vec![1, 1, 16, 16])];
    let upscale =
        |x: &ArrayD<f32>| ArrayD::from_shape_fn(IxDyn(&[1, 1, 16, 16]), |i| x[[0, 0, i[2] / 2, i[3] / 2]]);
    Data {
        name: "ds_cnn (depthwise-separable)",
        calib: load_samples(&models().join("ds_cnn/calib_x.npy"), &inputs).unwrap(),
        real: digits.real.iter().map(|s| vec![upscale(&s[0])]).collect(),
        ..digits
    }
}

/// A model: its ONNX file under models/ and its data.
type Case = (&'static str, fn() -> Data);

/// The models of the tables.
fn cases() -> [Case; 7] {
    [
        ("digits/digits_cnn.onnx", digits),
        ("ds_cnn/ds_cnn.onnx", ds_cnn),
        ("mlperf-tiny/kws/kws_dscnn_nchw.onnx", || {
            mlperf("KWS (DS-CNN)", "kws/kws_dscnn_nchw.onnx", (-123.0, 25.0), true)
        }),
        ("mlperf-tiny/vww/vww_mobilenetv1_025_nchw.onnx", || {
            mlperf("VWW (MobileNetV1 0.25)", "vww/vww_mobilenetv1_025_nchw.onnx", (0.0, 1.0), true)
        }),
        ("mlperf-tiny/ic/ic_resnet8_nchw.onnx", || {
            mlperf("IC (ResNet-8)", "ic/ic_resnet8_nchw.onnx", (0.0, 255.0), true)
        }),
        ("mlperf-tiny/ad/ad_fc_autoencoder.onnx", || {
            mlperf("AD (FC autoencoder)", "ad/ad_fc_autoencoder.onnx", (-67.0, 2.0), false)
        }),
        ("mlperf-tiny/sww/sww_dscnn_nchw.onnx", || {
            mlperf("SWW (DS-CNN)", "sww/sww_dscnn_nchw.onnx", (0.0, 0.94), true)
        }),
    ]
}

/// A model quantized one way, measured against f32.
struct Measured {
    synthetic: Option<Agreement>,
    real: Option<Agreement>,
    /// Accuracy of f32 and of int8 on the labelled samples.
    accuracy: Option<(f64, f64)>,
}

/// A model and its f32 outputs on the evaluation samples.
struct Reference {
    data: Data,
    graph: Graph,
    synthetic: Vec<Vec<f32>>,
    real: Vec<Vec<f32>>,
}

impl Reference {
    fn new(file: &str, data: fn() -> Data) -> Self {
        let data = data();
        let path = models().join(file);
        let graph = load_onnx(&path, &[]).unwrap();
        let tract = TractModel::load(&path, &[]).unwrap();
        let mut reference = |x: &[ArrayD<f32>]| tract.run(x).unwrap();
        let (synthetic, real) =
            (outputs(&mut reference, &data.synthetic), outputs(&mut reference, &data.real));
        Self { data, graph, synthetic, real }
    }

    /// The int8 model of `settings` and `method`, measured.
    fn measure(&self, method: Method, settings: &Settings) -> Measured {
        let data = &self.data;
        let calib = Calibration { source: &data.calib.as_slice(), method };
        let written = build_tuned(
            &self.graph,
            Precision::Int8,
            Some(calib),
            settings,
            Options::default(),
            &Origin::default(),
        )
        .unwrap_or_else(|e| panic!("{} {method}: {e:?}", data.name));
        self.run(&written.bytes)
    }

    /// The model `bytes`, measured.
    fn run(&self, bytes: &[u8]) -> Measured {
        let data = &self.data;
        let file = ModelFile::from_bytes(bytes);
        let model = file.model().unwrap();
        let mut runner = Runner::new(&model);
        let mut ours = |x: &[ArrayD<f32>]| runner.run(x).unwrap();
        let (synthetic, real) = (outputs(&mut ours, &data.synthetic), outputs(&mut ours, &data.real));
        Measured {
            synthetic: (!synthetic.is_empty()).then(|| compare(&self.synthetic, &synthetic)),
            accuracy: data.labels.as_ref().map(|l| (accuracy(&self.real, l), accuracy(&real, l))),
            real: (!real.is_empty()).then(|| compare(&self.real, &real)),
        }
    }

    /// The table columns of `m`: synthetic and real agreement, accuracy.
    fn columns(&self, m: &Measured) -> String {
        let shown = |a: &Option<Agreement>, count: usize| {
            a.as_ref().map_or("–".into(), |a| format!("{count}: {}", cell(a)))
        };
        format!(
            "{} | {} | {}",
            shown(&m.synthetic, self.data.synthetic.len()),
            shown(&m.real, self.data.real.len()),
            m.accuracy.map_or("–".into(), |(f, e)| format!("{:.1} % → {:.1} %", 100.0 * f, 100.0 * e))
        )
    }
}

/// One sample's inputs, one array each.
type Sample = Vec<ArrayD<f32>>;

/// The first output of `run` on every sample, flattened.
fn outputs(run: &mut dyn FnMut(&[ArrayD<f32>]) -> Sample, xs: &[Sample]) -> Vec<Vec<f32>> {
    xs.iter().map(|x| run(x)[0].iter().copied().collect()).collect()
}

fn cell(a: &Agreement) -> String {
    format!("{:.1} % / {:.1} dB", 100.0 * a.top1, a.sqnr_db)
}

#[test]
fn calibration_methods_on_the_digits_cnns_and_mlperf_tiny() {
    println!("| model | calibration | synthetic: top-1 agreement / SQNR | real: top-1 agreement / SQNR | accuracy f32 → int8 (labelled) |");
    println!("|---|---|---|---|---|");
    let mut failures = Vec::new();
    for (file, data) in cases() {
        let reference = Reference::new(file, data);
        let data = &reference.data;
        for method in METHODS {
            let m = reference.measure(method, &Settings::default());
            println!("| {} | {method} | {} |", data.name, reference.columns(&m));
            let mut check = |ok: bool, what: &str| {
                if !ok {
                    failures.push(format!("{} {method}: {what}", data.name));
                }
            };
            if let Some((f, e)) = m.accuracy {
                check(e >= f - 0.02, "accuracy more than 2 points below f32");
            }
            if let (Method::MinMax, Some(s)) = (method, &m.synthetic) {
                let ok = if data.classifier { s.top1 >= 0.90 } else { s.sqnr_db >= 25.0 };
                check(ok, "min/max misses the bound of tests/mlperf.rs");
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The SQNR of the evaluation samples: the real ones where there are any, else the synthetic.
fn evaluation_sqnr(m: &Measured) -> f64 {
    m.real.as_ref().or(m.synthetic.as_ref()).expect("evaluation samples").sqnr_db
}

#[test]
fn per_tensor_weights_equalization_and_bias_correction() {
    use Granularity::{PerChannel, PerTensor};
    use Switch::{Off, On};
    // (weights, equalization, bias correction), min/max calibration; per channel without either
    // is the first table's min/max row.
    let rows = [
        (PerChannel, On, On),
        (PerTensor, Off, Off),
        (PerTensor, Off, On),
        (PerTensor, On, Off),
        (PerTensor, On, On),
    ];
    println!("| model | weights | algorithms | synthetic: top-1 agreement / SQNR | real: top-1 agreement / SQNR | accuracy f32 → int8 (labelled) |");
    println!("|---|---|---|---|---|---|");
    let mut gains = Vec::new();
    for (file, data) in cases() {
        let reference = Reference::new(file, data);
        let mut plain_per_tensor = None;
        for (weights, equalize, bias_correction) in rows {
            let settings = Settings { weights, equalize, bias_correction };
            let m = reference.measure(Method::MinMax, &settings);
            let variant = settings.variants()[0];
            let granularity = if weights == PerTensor { "per tensor" } else { "per channel" };
            println!("| {} | {granularity} | {variant} | {} |", reference.data.name, reference.columns(&m));
            if let Some((f, e)) = m.accuracy.filter(|_| weights == PerChannel) {
                assert!(
                    e >= f - 0.02,
                    "{} {variant}: accuracy {e} more than 2 points below f32 {f}",
                    reference.data.name
                );
            }
            match (weights, equalize, bias_correction) {
                (PerTensor, Off, Off) => plain_per_tensor = Some(evaluation_sqnr(&m)),
                (PerTensor, On, On) => gains.push((file, evaluation_sqnr(&m) - plain_per_tensor.unwrap())),
                _ => {}
            }
        }
    }
    println!("per-tensor output SQNR gain of equalization + bias correction over plain min/max: {gains:?}");
    let (_, ds_gain) = gains.iter().find(|(f, _)| f.starts_with("ds_cnn")).unwrap();
    assert!(*ds_gain >= 3.0, "ds_cnn per tensor: equalization + bias correction gain only {ds_gain:.2} dB");
}

/// Every calibration method with every combination of weight granularity and algorithms: the
/// full cross product of issue 6's table, too slow for every CI run (about six minutes in the
/// dev profile). `cargo test --test calibration_methods -- --ignored --nocapture` prints it.
#[test]
#[ignore]
fn every_method_with_every_algorithm() {
    let switches = [
        (Switch::Off, Switch::Off),
        (Switch::Off, Switch::On),
        (Switch::On, Switch::Off),
        (Switch::On, Switch::On),
    ];
    let columns: Vec<Settings> = [Granularity::PerChannel, Granularity::PerTensor]
        .into_iter()
        .flat_map(|weights| {
            switches.map(|(equalize, bias_correction)| Settings { weights, equalize, bias_correction })
        })
        .collect();
    let names: Vec<String> = columns
        .iter()
        .map(|s| {
            let granularity = if s.weights == Granularity::PerTensor { "tensor" } else { "channel" };
            format!("{granularity}: {}", s.variants()[0])
        })
        .collect();
    println!("| model | calibration | {} |", names.join(" | "));
    println!("|---|---|{}", "---|".repeat(columns.len()));
    for (file, data) in cases() {
        let reference = Reference::new(file, data);
        for method in METHODS {
            let cells: Vec<String> = columns
                .iter()
                .map(|settings| {
                    let m = reference.measure(method, settings);
                    let accuracy = m.accuracy.map_or(String::new(), |(_, e)| format!(", {:.1} %", 100.0 * e));
                    format!("{:.1} dB{accuracy}", evaluation_sqnr(&m))
                })
                .collect();
            println!("| {} | {method} | {} |", reference.data.name, cells.join(" | "));
        }
    }
}

/// The f32 outputs of `graph` on `samples`, through Ember's f32 model.
fn f32_outputs(graph: &Graph, samples: &[Sample]) -> Vec<Vec<f32>> {
    let written = build(graph, Precision::F32, None).unwrap();
    let file = ModelFile::from_bytes(&written.bytes);
    let model = file.model().unwrap();
    let mut runner = Runner::new(&model);
    outputs(&mut |x: &[ArrayD<f32>]| runner.run(x).unwrap(), samples)
}

#[test]
fn equalization_keeps_the_f32_function_up_to_relu6() {
    // Where no ReLU6 had to become a ReLU the f32 function stays (the digits CNN equalizes two
    // conv → conv pairs through ReLUs). Elsewhere outputs above 6 are no longer clipped: the
    // change is printed, and must keep ds_cnn's decisions.
    for (file, data) in cases() {
        let data = data();
        let samples = if data.real.is_empty() { &data.synthetic } else { &data.real };
        let mut graph = load_onnx(&models().join(file), &[]).unwrap();
        let before = f32_outputs(&graph, samples);
        let done = equalize(&mut graph);
        let drift = compare(&before, &f32_outputs(&graph, samples));
        println!(
            "{}: {} pairs, {} ReLU6 → ReLU; f32 after vs before: top-1 {:.1} %, SQNR {:.1} dB",
            data.name,
            done.pairs.len(),
            done.relu6_replaced.len(),
            100.0 * drift.top1,
            drift.sqnr_db
        );
        if done.relu6_replaced.is_empty() {
            assert!(drift.max_abs_error <= 1e-5 * drift.max_abs_reference, "{}: {drift:?}", data.name);
        }
        if file.starts_with("digits") {
            assert_eq!(done.pairs.len(), 2);
        }
        if file.starts_with("ds_cnn") {
            assert_eq!((done.pairs.len(), done.relu6_replaced.len()), (8, 8));
            assert!(drift.top1 >= 0.99, "{drift:?}");
        }
    }
}
