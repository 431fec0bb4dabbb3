//! Mixed precision end to end on the digits CNN with per-tensor int8 weights: the plain int8
//! model disagrees with f32 on one of the 450 test images, so it misses a budget of 0 points;
//! `--max-drop 0` keeps the most sensitive layer (`conv1`) in float and meets it. The model
//! written is the one the search measured, `--keep-float conv1` writes the same bytes, and
//! building twice gives the same bytes.
//!
//! `cargo test --test mixed_precision -- --nocapture` prints the figures in docs/QUANTIZATION.md
//! ("Mixed precision").

use std::path::{Path, PathBuf};

use ember::format::{DType, OpKind};
use ember_quantize::algorithms::{Settings, Switch};
use ember_quantize::calibrate::Method;
use ember_quantize::emit::Precision;
use ember_quantize::graph::Graph;
use ember_quantize::host::{ModelFile, Runner};
use ember_quantize::inspect;
use ember_quantize::metrics::{compare, Agreement};
use ember_quantize::mixed::{drop_points, Mixed};
use ember_quantize::npy::load_samples;
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::{build, build_mixed, Calibration, Written};
use ember_quantize::plan::Options;
use ember_quantize::provenance::Origin;
use ember_quantize::quantize::Granularity;
use tract_onnx::prelude::tract_ndarray::ArrayD;

type Sample = Vec<ArrayD<f32>>;

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits")
}

const SETTINGS: Settings =
    Settings { weights: Granularity::PerTensor, equalize: Switch::Off, bias_correction: Switch::Off };

fn quantize(graph: &Graph, calib: &[Sample], mixed: Mixed) -> Written {
    let calib = Calibration { source: &calib, method: Method::MinMax };
    build_mixed(graph, calib, &SETTINGS, mixed, Options::default(), &Origin::default()).unwrap()
}

/// The first output of the model in `bytes` on every sample.
fn outputs(bytes: &[u8], samples: &[Sample]) -> Vec<Vec<f32>> {
    let file = ModelFile::from_bytes(bytes);
    let model = file.model().unwrap();
    let mut runner = Runner::new(&model);
    samples.iter().map(|s| runner.run(s).unwrap()[0].iter().copied().collect()).collect()
}

#[test]
fn max_drop_keeps_the_most_sensitive_layer_in_float_and_meets_the_budget() {
    let inputs = [("image".to_string(), vec![1, 1, 8, 8])];
    let calib = load_samples(&digits().join("calib_x.npy"), &inputs).unwrap();
    let test = load_samples(&digits().join("test_x.npy"), &inputs).unwrap();
    let graph = load_onnx(&digits().join("digits_cnn.onnx"), &[]).unwrap();
    let reference = outputs(&build(&graph, Precision::F32, None).unwrap().bytes, &test);
    let agreement = |bytes: &[u8]| -> Agreement { compare(&reference, &outputs(bytes, &test)) };

    let plain = quantize(&graph, &calib, Mixed::None);
    let plain_agreement = agreement(&plain.bytes);
    assert!(drop_points(&plain_agreement) > 0.0, "plain int8 must miss a budget of 0 points");

    let mixed = quantize(&graph, &calib, Mixed::MaxDrop { points: 0.0, samples: &test });
    let chosen = &mixed.tuning.as_ref().unwrap().mixed;
    let search = chosen.search.as_ref().unwrap();
    let kept: Vec<&str> = search.kept.iter().map(|&i| graph.nodes[i].name.as_str()).collect();
    assert_eq!(kept, ["conv1"]);
    assert_eq!(search.int8, plain_agreement, "the search measured the plain model");
    let mixed_agreement = agreement(&mixed.bytes);
    assert_eq!(search.mixed, mixed_agreement, "the model written is the one the search measured");
    assert_eq!(drop_points(&mixed_agreement), 0.0);

    // conv1 runs in float with f16 weights on the f32 input, and a quantize op feeds int8 conv2.
    let file = ModelFile::from_bytes(&mixed.bytes);
    let model = file.model().unwrap();
    let (conv1, convert) = (model.op(0).unwrap(), model.op(1).unwrap());
    assert_eq!((conv1.kind, model.tensor(conv1.inputs[1]).unwrap().dtype), (OpKind::Conv2d, DType::F16));
    assert_eq!(model.input(0).unwrap().tensor.dtype, DType::F32);
    assert_eq!(convert.kind, OpKind::Quantize);
    assert_eq!(model.op_count(), ModelFile::from_bytes(&plain.bytes).model().unwrap().op_count() + 1);
    let report = inspect::report(&model, mixed.bytes.len());
    assert!(
        report.contains("mixed precision: ops 0 (source 0) compute in float, 5 in int8, 1 quantize"),
        "{report}"
    );
    let plain_file = ModelFile::from_bytes(&plain.bytes);
    assert!(!inspect::report(&plain_file.model().unwrap(), plain.bytes.len()).contains("mixed precision"));

    let by_name = quantize(&graph, &calib, Mixed::KeepFloat(&["conv1".to_string()]));
    assert!(by_name.bytes == mixed.bytes, "--keep-float conv1 writes the same model");
    let again = quantize(&graph, &calib, Mixed::MaxDrop { points: 0.0, samples: &test });
    assert!(again.bytes == mixed.bytes, "the search is deterministic");

    println!(
        "| model | top-1 disagreement with f32 (450 images) | output SQNR | arena bytes | weight bytes |"
    );
    println!("|---|---|---|---|---|");
    for (name, written, a) in [("int8", &plain, &plain_agreement), ("mixed", &mixed, &mixed_agreement)] {
        let file = ModelFile::from_bytes(&written.bytes);
        let weights = file.model().unwrap().weight_bytes();
        let (points, db, arena) = (drop_points(a), a.sqnr_db, written.plan.arena_bytes);
        println!("| {name} | {points:.2} points | {db:.1} dB | {arena} | {weights} |");
    }
}

#[test]
fn keep_float_names_an_unknown_layer_with_the_valid_ones() {
    let inputs = [("image".to_string(), vec![1, 1, 8, 8])];
    let calib = load_samples(&digits().join("calib_x.npy"), &inputs).unwrap();
    let graph = load_onnx(&digits().join("digits_cnn.onnx"), &[]).unwrap();
    let calib = Calibration { source: &calib.as_slice(), method: Method::MinMax };
    let names = ["relu1".to_string()];
    let err = build_mixed(
        &graph,
        calib,
        &SETTINGS,
        Mixed::KeepFloat(&names),
        Options::default(),
        &Origin::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no layer 'relu1'") && err.contains("conv1, conv2"), "{err}");
}
