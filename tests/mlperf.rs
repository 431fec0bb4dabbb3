//! The MLPerf Tiny reference models quantize without hand edits at int8 and f16, and follow
//! tract's f32 results closely enough: int8 top-1 agreement ≥ 90 % for the classifiers, SWW
//! accuracy on its real labelled windows within 2 points of f32, AD output SQNR ≥ 25 dB.
//!
//! `cargo test --release --test mlperf -- --nocapture` prints the table kept in
//! docs/QUANTIZATION.md.

mod mlperf_data;

use std::path::PathBuf;

use ember_quantize::emit::Precision;
use ember_quantize::host::{ModelFile, Runner};
use ember_quantize::metrics::{accuracy, compare, Agreement};
use ember_quantize::onnx::{load_onnx, TractModel};
use ember_quantize::pipeline::build;
use mlperf_data::{real_samples, synthetic};
use tract_onnx::prelude::tract_ndarray::ArrayD;

/// Synthetic samples per model for evaluation (and as many, with another seed, for calibration).
const SYNTHETIC: usize = 64;

fn dir() -> PathBuf {
    mlperf_data::mlperf_dir()
}

/// A model file with the input range its README gives and its real samples (NHWC / flat).
struct Case {
    file: &'static str,
    range: (f32, f32),
    classifier: bool,
}

const CASES: &[Case] = &[
    Case { file: "kws/kws_dscnn_nchw.onnx", range: (-123.0, 25.0), classifier: true },
    Case { file: "kws/kws_dscnn_nhwc.onnx", range: (-123.0, 25.0), classifier: true },
    Case { file: "kws/kws_dscnn_fromtflite_nhwc.onnx", range: (-123.0, 25.0), classifier: true },
    Case { file: "vww/vww_mobilenetv1_025_nchw.onnx", range: (0.0, 1.0), classifier: true },
    Case { file: "vww/vww_mobilenetv1_025_nhwc.onnx", range: (0.0, 1.0), classifier: true },
    Case { file: "ic/ic_resnet8_nchw.onnx", range: (0.0, 255.0), classifier: true },
    Case { file: "ic/ic_resnet8_nhwc.onnx", range: (0.0, 255.0), classifier: true },
    Case { file: "ad/ad_fc_autoencoder.onnx", range: (-67.0, 2.0), classifier: false },
    Case { file: "ad/ad_fc_autoencoder_fromtflite.onnx", range: (-67.0, 2.0), classifier: false },
    Case { file: "sww/sww_dscnn_nchw.onnx", range: (0.0, 0.94), classifier: true },
    Case { file: "sww/sww_dscnn_nhwc.onnx", range: (0.0, 0.94), classifier: true },
];

fn outputs(runner: &mut Runner, samples: &[ArrayD<f32>]) -> Vec<Vec<f32>> {
    samples
        .iter()
        .map(|x| runner.run(std::slice::from_ref(x)).unwrap()[0].iter().copied().collect())
        .collect()
}

struct Row {
    model: String,
    precision: Precision,
    synthetic: Agreement,
    real: Option<Agreement>,
    accuracy: Option<(f64, f64)>,
    arena: usize,
    weights: usize,
}

fn evaluate(case: &Case) -> Vec<Row> {
    let path = dir().join(case.file);
    let graph = load_onnx(&path, &[]).unwrap_or_else(|e| panic!("{}: {e:?}", case.file));
    let shape = graph.inputs[0].onnx_shape.clone();
    let tract = TractModel::load(&path, &[]).unwrap();
    let (real, labels) = real_samples(case.file, &shape);
    let eval = synthetic(&shape, case.range, SYNTHETIC, 2);
    // Calibrate on other synthetic samples plus every second real sample.
    let mut calib: Vec<Vec<ArrayD<f32>>> =
        synthetic(&shape, case.range, SYNTHETIC, 1).into_iter().map(|x| vec![x]).collect();
    calib.extend(real.iter().step_by(2).map(|x| vec![x.clone()]));
    let reference = |xs: &[ArrayD<f32>]| -> Vec<Vec<f32>> {
        xs.iter().map(|x| tract.run(std::slice::from_ref(x)).unwrap()[0].iter().copied().collect()).collect()
    };
    let (ref_eval, ref_real) = (reference(&eval), reference(&real));
    [Precision::Int8, Precision::F16]
        .into_iter()
        .map(|precision| {
            let written =
                build(&graph, precision, Some(&calib)).unwrap_or_else(|e| panic!("{}: {e:?}", case.file));
            let file = ModelFile::from_bytes(&written.bytes);
            let model = file.model().unwrap();
            let mut runner = Runner::new(&model);
            let ours_real = outputs(&mut runner, &real);
            Row {
                model: case.file.trim_end_matches(".onnx").to_string(),
                precision,
                synthetic: compare(&ref_eval, &outputs(&mut runner, &eval)),
                real: (!real.is_empty()).then(|| compare(&ref_real, &ours_real)),
                accuracy: labels.as_ref().map(|l| (accuracy(&ref_real, l), accuracy(&ours_real, l))),
                arena: model.arena_bytes(),
                weights: model.weight_bytes(),
            }
        })
        .collect()
}

#[test]
fn mlperf_tiny_models_quantize_and_agree_with_f32() {
    println!("| model | precision | top-1 agreement (64 synthetic) | SQNR synthetic | real samples: agreement / SQNR | accuracy f32 → ember (real, labelled) | arena bytes | weight bytes |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for case in CASES {
        for row in evaluate(case) {
            let real = row.real.as_ref().map_or("–".into(), |r| {
                format!("{} samples: {:.1} % / {:.1} dB", r.samples, 100.0 * r.top1, r.sqnr_db)
            });
            let acc = row
                .accuracy
                .map_or("–".into(), |(f, e)| format!("{:.1} % → {:.1} %", 100.0 * f, 100.0 * e));
            println!(
                "| {} | {:?} | {:.1} % | {:.1} dB | {real} | {acc} | {} | {} |",
                row.model,
                row.precision,
                100.0 * row.synthetic.top1,
                row.synthetic.sqnr_db,
                row.arena,
                row.weights
            );
            let mut check = |ok: bool, what: &str| {
                if !ok {
                    failures.push(format!("{} {:?}: {what}", row.model, row.precision));
                }
            };
            if case.classifier {
                check(row.synthetic.top1 >= 0.90, "top-1 agreement below 90 %");
            } else {
                check(row.synthetic.sqnr_db >= 25.0, "synthetic SQNR below 25 dB");
                check(row.real.as_ref().is_some_and(|r| r.sqnr_db >= 25.0), "real-sample SQNR below 25 dB");
            }
            if let Some((f, e)) = row.accuracy {
                check(e >= f - 0.02, "accuracy more than 2 points below f32");
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
