//! Every calibration method on the digits CNN and the MLPerf Tiny models (one ONNX file each):
//! int8 against tract's f32. The data follow tests/mlperf.rs: 64 synthetic inputs (seed 2)
//! over each model's input range to evaluate, 64 others (seed 1) plus every second real
//! sample to calibrate; the digits CNN calibrates on its 200 calibration images and is
//! evaluated on its 450 labelled test images.
//!
//! `cargo test --test calibration_methods -- --nocapture` prints the table kept in
//! docs/QUANTIZATION.md. The test fails if a method loses more than 2 points of accuracy on a
//! labelled set, or if min/max misses the bounds tests/mlperf.rs holds it to.

mod mlperf_data;

use std::path::{Path, PathBuf};

use ember_quantize::calibrate::Method;
use ember_quantize::emit::Precision;
use ember_quantize::host::{ModelFile, Runner};
use ember_quantize::metrics::{accuracy, compare, Agreement};
use ember_quantize::npy::{load_samples, read_npy};
use ember_quantize::onnx::{load_onnx, TractModel};
use ember_quantize::pipeline::{build_from, Calibration};
use ember_quantize::plan::Options;
use ember_quantize::provenance::Origin;
use mlperf_data::{real_samples, synthetic};
use tract_onnx::prelude::tract_ndarray::ArrayD;

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
fn calibration_methods_on_the_digits_cnn_and_mlperf_tiny() {
    let cases = [
        ("digits/digits_cnn.onnx", digits as fn() -> Data),
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
    ];
    println!("| model | calibration | synthetic: top-1 agreement / SQNR | real: top-1 agreement / SQNR | accuracy f32 → int8 (labelled) |");
    println!("|---|---|---|---|---|");
    let mut failures = Vec::new();
    for (file, data) in cases {
        let data = data();
        let path = models().join(file);
        let graph = load_onnx(&path, &[]).unwrap();
        let tract = TractModel::load(&path, &[]).unwrap();
        let mut reference = |x: &[ArrayD<f32>]| tract.run(x).unwrap();
        let (ref_synthetic, ref_real) =
            (outputs(&mut reference, &data.synthetic), outputs(&mut reference, &data.real));
        for method in METHODS {
            let calib = Calibration { source: &data.calib.as_slice(), method };
            let written =
                build_from(&graph, Precision::Int8, Some(calib), Options::default(), &Origin::default())
                    .unwrap_or_else(|e| panic!("{file} {method}: {e:?}"));
            let file = ModelFile::from_bytes(&written.bytes);
            let model = file.model().unwrap();
            let mut runner = Runner::new(&model);
            let mut ours = |x: &[ArrayD<f32>]| runner.run(x).unwrap();
            let (synthetic, real) = (outputs(&mut ours, &data.synthetic), outputs(&mut ours, &data.real));
            let synthetic = (!synthetic.is_empty()).then(|| compare(&ref_synthetic, &synthetic));
            let accuracy = data.labels.as_ref().map(|l| (accuracy(&ref_real, l), accuracy(&real, l)));
            let real = (!real.is_empty()).then(|| compare(&ref_real, &real));
            let shown = |a: &Option<Agreement>, count: usize| {
                a.as_ref().map_or("–".into(), |a| format!("{count}: {}", cell(a)))
            };
            println!(
                "| {} | {method} | {} | {} | {} |",
                data.name,
                shown(&synthetic, data.synthetic.len()),
                shown(&real, data.real.len()),
                accuracy.map_or("–".into(), |(f, e)| format!("{:.1} % → {:.1} %", 100.0 * f, 100.0 * e))
            );
            let mut check = |ok: bool, what: &str| {
                if !ok {
                    failures.push(format!("{} {method}: {what}", data.name));
                }
            };
            if let Some((f, e)) = accuracy {
                check(e >= f - 0.02, "accuracy more than 2 points below f32");
            }
            if let (Method::MinMax, Some(s)) = (method, &synthetic) {
                let ok = if data.classifier { s.top1 >= 0.90 } else { s.sqnr_db >= 25.0 };
                check(ok, "min/max misses the bound of tests/mlperf.rs");
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
