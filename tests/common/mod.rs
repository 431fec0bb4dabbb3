//! Test models shared by the root crate's tests.

use ember_quantize::graph::{Activation, Graph, GraphIo, Op};

/// Every op kind that can run in place, in a chain whose intermediate tensors the planner can
/// overwrite: `x [1,2,2,3]` → mean → `k`; `x` → pad → `a [1,4,4,3]` → relu → clip →
/// leaky_relu → hard_swish → hard_sigmoid → sigmoid → tanh → add `k` (broadcast) → mul by a
/// per-channel constant → softmax → `y`. Ten ops can write over their first input.
pub fn in_place_graph() -> Graph {
    let mut g = Graph::default();
    let x = g.add_tensor("x", vec![1, 2, 2, 3], None);
    let node = |g: &mut Graph, op: Op, inputs: Vec<usize>| {
        let name = op.kind().to_lowercase();
        g.add_node(&name, op, inputs, format!("{name}_out"), None).expect("valid node")
    };
    let k = node(&mut g, Op::Mean, vec![x]);
    let mut t = node(&mut g, Op::Pad { pads: vec![[0, 0], [1, 1], [1, 1], [0, 0]], value: 0.25 }, vec![x]);
    for op in [
        Op::Relu,
        Op::Clip { min: 0.0, max: 2.5 },
        Op::LeakyRelu { alpha: 0.1 },
        Op::HardSwish,
        Op::HardSigmoid { alpha: 0.4, beta: -0.1 },
        Op::Sigmoid,
        Op::Tanh,
    ] {
        t = node(&mut g, op, vec![t]);
    }
    t = node(&mut g, Op::Add { act: Activation::None }, vec![t, k]);
    let scale = g.add_tensor("scale", vec![1, 1, 1, 3], Some(vec![3.0, -2.0, 0.5]));
    t = node(&mut g, Op::Mul { act: Activation::None }, vec![t, scale]);
    let y = node(&mut g, Op::Softmax { axis: 3 }, vec![t]);
    let io = |tensor: usize, name: &str, shape: &[usize]| GraphIo {
        tensor,
        name: name.into(),
        onnx_shape: shape.to_vec(),
        perm: vec![0, 1, 2, 3],
    };
    g.inputs.push(io(x, "x", &[1, 2, 2, 3]));
    g.outputs.push(io(y, "y", &[1, 4, 4, 3]));
    g.validate().expect("a valid graph");
    g
}
