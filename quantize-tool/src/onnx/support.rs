//! Which ONNX content Ember supports, checked on the protobuf before tract sees the model.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};
use tract_onnx::pb::{ModelProto, NodeProto};

use super::attrs::{node_name, Attrs};

/// ONNX ops (default domain) that Ember lowers to its IR.
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Pad",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Default-domain opsets whose operator semantics Ember's lowering knows: from 7 (BatchNormalization
/// without `spatial`) to 28, the newest opset of ONNX 1.23, the release the test models are made with.
pub const SUPPORTED_OPSETS: std::ops::RangeInclusive<i64> = 7..=28;

/// The default-domain opset version the model imports (0 if none).
pub fn opset_version(model: &ModelProto) -> i64 {
    model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version)
}

/// Fails with one error listing every unsupported node (op type or attribute value) of the model.
///
/// Nodes whose inputs are all constant are skipped: tract folds them into constants.
pub fn check_supported(model: &ModelProto) -> Result<()> {
    let Some(graph) = &model.graph else {
        bail!("the file holds no ONNX graph (is it empty, or not an ONNX model?); export the model again")
    };
    let opset = opset_version(model);
    if !SUPPORTED_OPSETS.contains(&opset) {
        let imports = match opset {
            0 => "no default ONNX operator set (ai.onnx)".to_string(),
            v => format!("the default ONNX operator set (ai.onnx) at version {v}"),
        };
        bail!(
            "the model imports {imports}; Ember supports opsets {} to {}. Convert the model \
             (onnx.version_converter.convert_version) or export it again with an opset in that range",
            SUPPORTED_OPSETS.start(),
            SUPPORTED_OPSETS.end()
        );
    }
    let mut const_dims: HashMap<&str, Option<Vec<i64>>> =
        graph.initializer.iter().map(|t| (t.name.as_str(), Some(t.dims.clone()))).collect();
    let mut problems = Vec::new();
    for node in &graph.node {
        let inputs_const =
            node.input.iter().filter(|i| !i.is_empty()).all(|i| const_dims.contains_key(i.as_str()));
        let folded = match node.op_type.as_str() {
            "Constant" => true,
            "Shape" | "Size" => node.domain.is_empty(),
            _ => inputs_const && !node.input.is_empty(),
        };
        if folded {
            let dims = (node.op_type == "Constant")
                .then(|| node.attr("value").and_then(|a| a.t.as_ref()).map(|t| t.dims.clone()));
            node.output.iter().for_each(|o| {
                const_dims.insert(o.as_str(), dims.clone().flatten());
            });
            continue;
        }
        let is_const =
            |i: usize| node.input.get(i).is_none_or(|n| n.is_empty() || const_dims.contains_key(n.as_str()));
        let dims = |i: usize| node.input.get(i).and_then(|n| const_dims.get(n.as_str()).cloned().flatten());
        if let Some(reason) = problem(node, &is_const, &dims) {
            problems.push(format!("'{}' ({reason})", node_name(node)));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "{} unsupported ONNX node{} (opset {}): {}. Ember supports: {}. Replace these nodes (or re-export the model with supported ops) and try again.",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        opset_version(model),
        problems.join(", "),
        SUPPORTED_OPS.join(", ")
    )
}

/// Why `node` is unsupported, or `None` if Ember can lower it.
fn problem(
    node: &NodeProto,
    is_const: &dyn Fn(usize) -> bool,
    dims: &dyn Fn(usize) -> Option<Vec<i64>>,
) -> Option<String> {
    let op = node.op_type.as_str();
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return Some(format!("{op} from domain '{}'", node.domain));
    }
    if !SUPPORTED_OPS.contains(&op) {
        return Some(op.to_string());
    }
    if matches!(op, "Conv" | "MaxPool" | "AveragePool") {
        for attr in ["strides", "dilations"] {
            if let Some(values) = node.ints(attr).filter(|v| v.iter().any(|&x| x <= 0)) {
                return Some(format!("{op}: {attr} {values:?}; every value must be at least 1"));
            }
        }
    }
    let need_const = |inputs: &[usize], what: &str| {
        (!inputs.iter().all(|&i| is_const(i))).then(|| format!("{op}: {what} must be constant"))
    };
    match op {
        "Conv" => {
            if let Some(p) = need_const(&[1, 2], "weights and bias") {
                return Some(p);
            }
            let group = node.int("group", 1);
            match dims(1) {
                Some(w) if w.len() != 4 => Some(format!("Conv: only 2-D convolutions, kernel has rank {}", w.len())),
                Some(w) if group > 1 && w[1] != 1 => Some(format!(
                    "Conv: grouped convolution group={group} with {} input channels per group; only group=1 or depthwise (group = input channels)",
                    w[1]
                )),
                _ => None,
            }
        }
        "MaxPool" | "AveragePool" => {
            let kernel = node.ints("kernel_shape").unwrap_or_default();
            let padded = node.ints("pads").is_some_and(|p| p.iter().any(|&v| v != 0))
                || node.string("auto_pad", "NOTSET").starts_with("SAME");
            if kernel.len() != 2 {
                Some(format!("{op}: only 2-D pooling, kernel_shape {kernel:?}"))
            } else if node.ints("dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
                Some(format!("{op}: dilations other than 1"))
            } else if node.output.iter().skip(1).any(|o| !o.is_empty()) {
                Some(format!("{op}: Indices output"))
            } else if node.int("storage_order", 0) != 0 {
                Some(format!("{op}: storage_order=1"))
            } else if op == "AveragePool" && node.int("count_include_pad", 0) != 0 && padded {
                Some("AveragePool: count_include_pad=1 with padding".to_string())
            } else {
                None
            }
        }
        "Gemm" | "MatMul" => need_const(&[1, 2], "weights (second input) and bias (third input)"),
        "Div" => need_const(&[1], "divisor"),
        "Clip" => need_const(&[1, 2], "min and max"),
        "BatchNormalization" if node.int("training_mode", 0) != 0 => {
            Some("BatchNormalization: training_mode=1".to_string())
        }
        "BatchNormalization" => need_const(&[1, 2, 3, 4], "scale, bias, mean and var"),
        "Pad" => {
            let mode = node.string("mode", "constant");
            if mode != "constant" {
                Some(format!("Pad: mode '{mode}'; only 'constant'"))
            } else {
                need_const(&[1, 2, 3], "pads, constant_value and axes")
            }
        }
        "ReduceMean" => need_const(&[1], "axes"),
        _ => None,
    }
}

/// Names of the graph inputs that are not initializers.
pub(super) fn real_inputs(model: &ModelProto) -> Vec<&tract_onnx::pb::ValueInfoProto> {
    let Some(graph) = &model.graph else {
        return vec![];
    };
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph.input.iter().filter(|i| !inits.contains(i.name.as_str())).collect()
}
