//! Loader tests: every reference model is lowered, evaluated with the naive IR evaluator and
//! compared with tract's f32 output (and tract with ONNX Runtime's stored outputs).

use std::path::{Path, PathBuf};

use npyz::npz::NpzArchive;
use tract_onnx::prelude::tract_ndarray::ArrayD;

use super::layout::{inverse, transpose_data};
use super::{check_supported, load_onnx, run_tract};
use crate::graph::{eval, Graph};
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};

fn mlperf(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mlperf-tiny").join(rel)
}

/// Reads array `name` of an .npz file as (shape, f32 data).
fn npz_array(
    archive: &mut NpzArchive<std::io::BufReader<std::fs::File>>,
    name: &str,
) -> (Vec<usize>, Vec<f32>) {
    let npy = archive.by_name(name).expect("readable npz").unwrap_or_else(|| panic!("no array '{name}'"));
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().expect("f32 array"))
}

/// Runs the IR on one input given in ONNX layout; returns its first output in ONNX layout.
fn eval_onnx_layout(graph: &Graph, input: &[f32]) -> Vec<f32> {
    let io = &graph.inputs[0];
    let internal = transpose_data(input, &io.onnx_shape, &io.perm);
    let outs = eval::run(graph, &[internal]).expect("IR evaluation");
    let out = &graph.outputs[0];
    transpose_data(&outs[0], &graph.tensors[out.tensor].shape, &inverse(&out.perm))
}

/// Largest |a - b| and largest |b|.
fn max_err(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len(), "output sizes differ");
    let err = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    (err, b.iter().map(|v| v.abs()).fold(0.0, f32::max))
}

fn models(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(rel)
}

/// Loads `path`, checks its op counts, and compares IR and tract on (input, ONNX Runtime output) samples.
fn check(path: &Path, samples: &[(Vec<usize>, Vec<f32>, Vec<f32>)], expected_ops: &[(&str, usize)]) {
    let graph = load_onnx(path, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    println!("{}:\n{graph}", path.display());
    for (i, (shape, input, ort)) in samples.iter().enumerate() {
        let array = ArrayD::from_shape_vec(shape.clone(), input.clone()).expect("input shape");
        let reference = run_tract(path, &[], &[array]).unwrap_or_else(|e| panic!("{e:?}"));
        let reference: Vec<f32> = reference[0].iter().copied().collect();
        let ours = eval_onnx_layout(&graph, input);
        let (err, scale) = max_err(&ours, &reference);
        assert!(
            err <= 1e-4 * scale,
            "{} sample {i}: IR vs tract max error {err} (max |out| {scale})",
            path.display()
        );
        let (err, scale) = max_err(&reference, ort);
        assert!(
            err <= 1e-3 * scale.max(1.0),
            "{} sample {i}: tract vs ONNX Runtime max error {err}",
            path.display()
        );
    }
    assert_eq!(graph.op_counts(), expected_ops, "op counts of {}", path.display());
}

/// The first `n` (input_i, output_i) pairs of an .npz file.
fn npz_samples(npz: &Path, n: usize) -> Vec<(Vec<usize>, Vec<f32>, Vec<f32>)> {
    let mut archive = NpzArchive::open(npz).unwrap_or_else(|e| panic!("{}: {e}", npz.display()));
    (0..n)
        .map(|i| {
            let (shape, input) = npz_array(&mut archive, &format!("input_{i}"));
            let (_, output) = npz_array(&mut archive, &format!("output_{i}"));
            (shape, input, output)
        })
        .collect()
}

/// Checks an MLPerf Tiny model on the first `n` samples of its .ref.npz.
fn check_model(model: &str, n: usize, expected_ops: &[(&str, usize)]) {
    let samples = npz_samples(&mlperf(&format!("{model}.ref.npz")), n);
    check(&mlperf(&format!("{model}.onnx")), &samples, expected_ops);
}

/// Checks a `models/ops` model on its 8 samples.
fn check_op(name: &str, expected_ops: &[(&str, usize)]) {
    let samples = npz_samples(&models(&format!("ops/{name}.npz")), 8);
    check(&models(&format!("ops/{name}.onnx")), &samples, expected_ops);
}

#[test]
fn kws_nchw() {
    check_model(
        "kws/kws_dscnn_nchw",
        4,
        &[
            ("AveragePool", 1),
            ("Conv2d", 5),
            ("DepthwiseConv2d", 4),
            ("FullyConnected", 1),
            ("Reshape", 1),
            ("Softmax", 1),
        ],
    );
}

#[test]
fn kws_nhwc() {
    check_model(
        "kws/kws_dscnn_nhwc",
        4,
        &[
            ("AveragePool", 1),
            ("Conv2d", 5),
            ("DepthwiseConv2d", 4),
            ("FullyConnected", 1),
            ("Reshape", 1),
            ("Softmax", 1),
        ],
    );
}

#[test]
fn kws_fromtflite_nhwc() {
    check_model(
        "kws/kws_dscnn_fromtflite_nhwc",
        4,
        &[
            ("AveragePool", 1),
            ("Conv2d", 5),
            ("DepthwiseConv2d", 4),
            ("FullyConnected", 1),
            ("Reshape", 1),
            ("Softmax", 1),
        ],
    );
}

#[test]
fn vww_nchw() {
    check_model(
        "vww/vww_mobilenetv1_025_nchw",
        2,
        &[
            ("AveragePool", 1),
            ("Conv2d", 14),
            ("DepthwiseConv2d", 13),
            ("FullyConnected", 1),
            ("Reshape", 1),
            ("Softmax", 1),
        ],
    );
}

#[test]
fn vww_nhwc() {
    check_model(
        "vww/vww_mobilenetv1_025_nhwc",
        2,
        &[
            ("AveragePool", 1),
            ("Conv2d", 14),
            ("DepthwiseConv2d", 13),
            ("FullyConnected", 1),
            ("Reshape", 1),
            ("Softmax", 1),
        ],
    );
}

#[test]
fn ic_nchw() {
    check_model(
        "ic/ic_resnet8_nchw",
        2,
        &[
            ("Add", 3),
            ("AveragePool", 1),
            ("Conv2d", 9),
            ("FullyConnected", 1),
            ("Reshape", 1),
            ("Softmax", 1),
        ],
    );
}

#[test]
fn ic_nhwc() {
    check_model(
        "ic/ic_resnet8_nhwc",
        2,
        &[
            ("Add", 3),
            ("AveragePool", 1),
            ("Conv2d", 9),
            ("FullyConnected", 1),
            ("Reshape", 1),
            ("Softmax", 1),
        ],
    );
}

#[test]
fn ad() {
    check_model("ad/ad_fc_autoencoder", 4, &[("FullyConnected", 10)]);
}

#[test]
fn ad_fromtflite() {
    check_model("ad/ad_fc_autoencoder_fromtflite", 4, &[("FullyConnected", 10)]);
}

#[test]
fn sww_nchw() {
    check_model(
        "sww/sww_dscnn_nchw",
        4,
        &[("Conv2d", 4), ("DepthwiseConv2d", 4), ("FullyConnected", 1), ("Reshape", 1), ("Softmax", 1)],
    );
}

#[test]
fn sww_nhwc() {
    check_model(
        "sww/sww_dscnn_nhwc",
        4,
        &[("Conv2d", 4), ("DepthwiseConv2d", 4), ("FullyConnected", 1), ("Reshape", 1), ("Softmax", 1)],
    );
}

#[test]
fn digits_cnn() {
    let read = |name: &str| {
        npyz::NpyFile::new(std::fs::File::open(models(name)).expect("npy"))
            .expect("npy")
            .into_vec::<f32>()
            .expect("f32")
    };
    let images = read("digits/test_x.npy");
    let mut archive = NpzArchive::open(models("digits/reference.npz")).expect("reference.npz");
    let (_, logits) = npz_array(&mut archive, "logits");
    let samples: Vec<_> = (0..8)
        .map(|i| {
            (vec![1, 1, 8, 8], images[i * 64..(i + 1) * 64].to_vec(), logits[i * 10..(i + 1) * 10].to_vec())
        })
        .collect();
    check(
        &models("digits/digits_cnn.onnx"),
        &samples,
        &[("Conv2d", 2), ("DepthwiseConv2d", 1), ("FullyConnected", 1), ("Mean", 1), ("Reshape", 1)],
    );
}

#[test]
fn unsupported_nodes_are_listed_at_once() {
    let err = load_onnx(&models("ops/unsupported.onnx"), &[]).expect_err("unsupported model must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("2 unsupported ONNX nodes (opset 13)"), "{msg}");
    assert!(msg.contains("(Sin)") && msg.contains("(Einsum)"), "{msg}");
    assert!(msg.contains("Ember supports: Add"), "{msg}");
}

#[test]
fn op_add_broadcast() {
    check_op("add_broadcast", &[("Add", 2), ("Relu", 1)]);
}

#[test]
fn op_avgpool() {
    check_op("avgpool", &[("AveragePool", 1)]);
}

#[test]
fn op_batchnorm() {
    check_op("batchnorm", &[("Conv2d", 1)]);
}

#[test]
fn op_clip_relu6() {
    check_op("clip_relu6", &[("Clip", 1)]);
}

#[test]
fn op_concat() {
    check_op("concat", &[("Concat", 1), ("Conv2d", 2)]);
}

#[test]
fn op_conv_1x1() {
    check_op("conv_1x1", &[("Conv2d", 1)]);
}

#[test]
fn op_conv_basic() {
    check_op("conv_basic", &[("Conv2d", 1)]);
}

#[test]
fn op_conv_same_upper() {
    check_op("conv_same_upper", &[("Conv2d", 1)]);
}

#[test]
fn op_conv_stride2_dilation() {
    check_op("conv_stride2_dilation", &[("Conv2d", 1)]);
}

#[test]
fn op_depthwise() {
    check_op("depthwise", &[("DepthwiseConv2d", 1)]);
}

#[test]
fn op_depthwise_multiplier() {
    check_op("depthwise_multiplier", &[("DepthwiseConv2d", 1)]);
}

#[test]
fn op_gemm() {
    check_op("gemm", &[("FullyConnected", 1), ("Reshape", 1)]);
}

#[test]
fn op_global_avgpool() {
    check_op("global_avgpool", &[("Mean", 1)]);
}

#[test]
fn op_hard_sigmoid() {
    check_op("hard_sigmoid", &[("HardSigmoid", 1)]);
}

#[test]
fn op_hard_swish() {
    check_op("hard_swish", &[("HardSwish", 1)]);
}

#[test]
fn op_leaky_relu() {
    check_op("leaky_relu", &[("LeakyRelu", 1)]);
}

#[test]
fn op_matmul() {
    check_op("matmul", &[("FullyConnected", 1)]);
}

#[test]
fn op_maxpool() {
    check_op("maxpool", &[("MaxPool", 1)]);
}

#[test]
fn op_mul_broadcast() {
    check_op("mul_broadcast", &[("Mul", 2), ("Relu", 1)]);
}

#[test]
fn op_pad() {
    check_op("pad", &[("Conv2d", 1)]);
}

#[test]
fn op_reduce_mean_spatial() {
    check_op("reduce_mean_spatial", &[("Mean", 1)]);
}

#[test]
fn op_relu() {
    check_op("relu", &[("Relu", 1)]);
}

#[test]
fn op_reshape_flatten() {
    check_op("reshape_flatten", &[("Conv2d", 1), ("FullyConnected", 1), ("Reshape", 1)]);
}

#[test]
fn op_sigmoid() {
    check_op("sigmoid", &[("Sigmoid", 1)]);
}

#[test]
fn op_softmax() {
    check_op("softmax", &[("FullyConnected", 1), ("Softmax", 1)]);
}

#[test]
fn op_tanh() {
    check_op("tanh", &[("Tanh", 1)]);
}

#[test]
fn op_transpose() {
    check_op("transpose", &[("FullyConnected", 1)]);
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i, ..Default::default() }
}

fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

#[test]
fn unsupported_ops_and_attributes_are_reported_together() {
    let weights = TensorProto { name: "w".into(), dims: vec![8, 2, 3, 3], ..Default::default() };
    let graph = GraphProto {
        node: vec![
            node("shape", "Shape", &["x"], &["s"], vec![]),
            node("gather", "Gather", &["s", "w"], &["g"], vec![]),
            node("sin_1", "Sin", &["x"], &["a"], vec![]),
            node("relu", "Relu", &["a"], &["b"], vec![]),
            node("lstm_0", "LSTM", &["b"], &["c"], vec![]),
            node("conv_g", "Conv", &["c", "w"], &["d"], vec![attr_int("group", 4)]),
        ],
        initializer: vec![weights],
        ..Default::default()
    };
    let model = ModelProto {
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        ..Default::default()
    };
    let msg = check_supported(&model).expect_err("must fail").to_string();
    assert!(
        msg.starts_with("3 unsupported ONNX nodes (opset 13): 'sin_1' (Sin), 'lstm_0' (LSTM), 'conv_g' (Conv: grouped convolution group=4 with 2 input channels per group;"),
        "{msg}"
    );
    assert!(!msg.contains("gather"), "constant subgraphs are folded, not reported: {msg}");
}

#[test]
fn input_shape_overrides_are_checked() {
    let path = models("ops/relu.onnx");
    let graph = load_onnx(&path, &[("x".into(), vec![1, 8, 8, 8])]).expect("matching override");
    assert_eq!(graph.inputs[0].onnx_shape, vec![1, 8, 8, 8]);
    let err = format!("{:#}", load_onnx(&path, &[("x".into(), vec![1, 8, 8, 9])]).expect_err("conflict"));
    assert!(err.contains("conflicts with the model's [1,8,8,8] at axis 3"), "{err}");
    let err = format!("{:#}", load_onnx(&path, &[("y".into(), vec![1])]).expect_err("unknown input"));
    assert!(err.contains("the model's inputs are: 'x'"), "{err}");
}

#[test]
fn validate_names_the_bad_node() {
    let mut graph = load_onnx(&models("ops/conv_basic.onnx"), &[]).expect("loads");
    let out = graph.nodes[0].outputs[0];
    graph.tensors[out].shape[1] += 1;
    let err = graph.validate().expect_err("shape mismatch").to_string();
    assert!(err.contains("node 'conv' (Conv2d)") && err.contains("expected [1, 10, 12, 8]"), "{err}");
}
