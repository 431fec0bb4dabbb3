//! Every op-coverage model in `models/ops/` (one ONNX op or pattern each, random weights)
//! runs end to end through the tool and the runtime: f32 matches ONNX Runtime's stored outputs,
//! f16 weights stay within 1 %, and int8 keeps a high signal-to-noise ratio.

use std::path::{Path, PathBuf};

use ember_quantize::emit::Precision;
use ember_quantize::host::{ModelFile, Runner};
use ember_quantize::metrics::compare;
use ember_quantize::npy::read_npz;
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::build;
use tract_onnx::prelude::tract_ndarray::ArrayD;

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ops")
}

/// `(inputs, expected outputs)` per sample from `<name>.npz`.
fn samples(name: &str) -> Vec<(ArrayD<f32>, ArrayD<f32>)> {
    let arrays = read_npz(&ops_dir().join(format!("{name}.npz"))).unwrap();
    let get = |key: String| arrays.iter().find(|(k, _)| *k == key).map(|(_, a)| a.clone());
    (0..).map_while(|i| Some((get(format!("input_{i}"))?, get(format!("output_{i}"))?))).collect()
}

fn run(name: &str, precision: Precision) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let graph = load_onnx(&ops_dir().join(format!("{name}.onnx")), &[]).unwrap();
    let data = samples(name);
    assert!(data.len() >= 8, "{name}: {} samples", data.len());
    let calib: Vec<Vec<ArrayD<f32>>> = data.iter().map(|(x, _)| vec![x.clone()]).collect();
    let written = build(&graph, precision, Some(&calib)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let file = ModelFile::from_bytes(&written.bytes);
    let model = file.model().unwrap();
    let mut runner = Runner::new(&model);
    let ours = data
        .iter()
        .map(|(x, _)| runner.run(std::slice::from_ref(x)).unwrap()[0].iter().copied().collect())
        .collect();
    let expected = data.iter().map(|(_, y)| y.iter().copied().collect()).collect();
    (expected, ours)
}

const MODELS: &[&str] = &[
    "conv_basic",
    "conv_stride2_dilation",
    "conv_same_upper",
    "conv_1x1",
    "depthwise",
    "depthwise_multiplier",
    "gemm",
    "matmul",
    "add_broadcast",
    "mul_broadcast",
    "relu",
    "clip_relu6",
    "leaky_relu",
    "hard_swish",
    "hard_sigmoid",
    "sigmoid",
    "tanh",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "reduce_mean_spatial",
    "reshape_flatten",
    "concat",
    "pad",
    "transpose",
    "softmax",
    "batchnorm",
];

#[test]
fn every_op_model_is_covered() {
    let mut on_disk: Vec<String> = std::fs::read_dir(ops_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".npz").map(str::to_string))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = MODELS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn f32_matches_onnx_runtime() {
    for name in MODELS {
        let (expected, ours) = run(name, Precision::F32);
        let a = compare(&expected, &ours);
        println!("{name:<24} f32  max abs error {:.2e} of {:.3}", a.max_abs_error, a.max_abs_reference);
        assert!(a.max_abs_error <= 1e-4 * a.max_abs_reference.max(1.0), "{name}: {a:?}");
    }
}

#[test]
fn f16_weights_stay_within_one_percent() {
    for name in MODELS {
        let (expected, ours) = run(name, Precision::F16);
        let a = compare(&expected, &ours);
        println!("{name:<24} f16  max abs error {:.2e} of {:.3}", a.max_abs_error, a.max_abs_reference);
        assert!(a.max_abs_error <= 1e-2 * a.max_abs_reference.max(1.0), "{name}: {a:?}");
    }
}

#[test]
fn int8_keeps_signal_to_noise() {
    for name in MODELS {
        let (expected, ours) = run(name, Precision::Int8);
        let a = compare(&expected, &ours);
        println!("{name:<24} int8 SQNR {:.1} dB, cosine {:.5}", a.sqnr_db, a.cosine);
        assert!(a.sqnr_db >= 25.0, "{name}: {a:?}");
    }
}
