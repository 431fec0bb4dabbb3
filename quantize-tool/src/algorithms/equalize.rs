//! Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
//! Equalization and Bias Correction"; AIMET's CLE).
//!
//! For a conv or depthwise conv `A` whose output feeds only a conv or depthwise conv `B`, through
//! no activation or a ReLU, `relu(x / s) = relu(x) / s` for `s > 0`: dividing output channel `i`
//! of `A` (weights and bias) by `s_i` and multiplying the input channel `i` weights of `B` by
//! `s_i` leaves the float function unchanged. With `s_i = sqrt(r1_i / r2_i)`, where `r1_i` is
//! the largest magnitude of `A`'s channel `i` weights and `r2_i` that of `B`'s input channel `i`
//! weights, both ranges become `sqrt(r1_i · r2_i)`: channels that folding BatchNorm left far
//! apart get similar ranges, which per-tensor weight scales need most. Chains (conv →
//! depthwise → conv) are swept pair by pair until the scales settle.
//!
//! A channel of `A` with tiny weights (a dead channel that outputs its bias) would get
//! `s_i ≪ 1` and its bias multiplied by `1 / s_i`: its output, and with it the whole tensor's
//! per-tensor int8 range, would explode. So no channel of `A` is scaled beyond the largest
//! weight range or bias magnitude among its channels: `s_i ≥ r1_i / max r1` and
//! `s_i ≥ |b_i| / max |b|`.
//!
//! ReLU6 is not scale-invariant, so, as AIMET does, a ReLU6 on `A` is replaced by a ReLU. That
//! changes the float function wherever `A`'s output exceeded 6; the caller reports it.

use crate::graph::{Activation, Graph, Op};
use crate::quantize::weight_axis;

/// Sweeps over all pairs at most.
const MAX_SWEEPS: usize = 100;
/// A sweep whose scales all lie within this factor of 1 ends the iteration.
const SETTLED: f32 = 1e-4;

/// What [`equalize`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Equalized {
    /// The equalized `(A, B)` pairs, by node name.
    pub pairs: Vec<(String, String)>,
    /// Nodes whose ReLU6 became a ReLU.
    pub relu6_replaced: Vec<String>,
}

/// A pair: node indices, and how many of `B`'s weight channels (along axis 3) read each of
/// `A`'s output channels (1 for a conv, the multiplier for a depthwise conv).
struct Pair {
    a: usize,
    b: usize,
    per_input: usize,
}

/// Equalizes every conv/depthwise → conv/depthwise pair of `graph` in place.
pub fn equalize(graph: &mut Graph) -> Equalized {
    let pairs = find_pairs(graph);
    let mut done = Equalized::default();
    for p in &pairs {
        let a = &mut graph.nodes[p.a];
        if let Some(act @ Activation::Clip { .. }) = a.op.act_mut() {
            *act = Activation::Relu;
            done.relu6_replaced.push(a.name.clone());
        }
        done.pairs.push((graph.nodes[p.a].name.clone(), graph.nodes[p.b].name.clone()));
    }
    for _ in 0..MAX_SWEEPS {
        let mut largest_change = 0f32;
        for p in &pairs {
            let scales = pair_scales(graph, p);
            largest_change = scales.iter().fold(largest_change, |m, s| m.max(s.ln().abs()));
            apply(graph, p, &scales);
        }
        if largest_change < SETTLED {
            break;
        }
    }
    done
}

/// The pairs whose equalization keeps the float function (up to a ReLU6 → ReLU replacement).
fn find_pairs(graph: &Graph) -> Vec<Pair> {
    let uses = graph.use_counts();
    let producers = graph.producers();
    let weights_owned = |n: usize| uses[graph.nodes[n].inputs[1]] == 1 && uses[graph.nodes[n].inputs[2]] == 1;
    let conv_like = |op: &Op| matches!(op, Op::Conv2d(_) | Op::DepthwiseConv2d(_));
    let mut pairs = Vec::new();
    for (b, node) in graph.nodes.iter().enumerate() {
        let Some(a) = producers[node.inputs[0]] else { continue };
        let (op_a, op_b) = (&graph.nodes[a].op, &node.op);
        let scale_invariant = matches!(
            op_a.act(),
            Some(Activation::None | Activation::Relu | Activation::Clip { min: 0.0, max: 6.0 })
        );
        if !(conv_like(op_a) && conv_like(op_b) && scale_invariant) {
            continue;
        }
        if uses[node.inputs[0]] != 1 || !weights_owned(a) || !weights_owned(b) {
            continue;
        }
        let channels = graph.tensors[node.inputs[0]].shape[3];
        let per_input = graph.tensors[node.inputs[1]].shape[3] / channels;
        pairs.push(Pair { a, b, per_input });
    }
    pairs
}

/// Largest magnitude of every channel along `axis` of `data` (of `shape`).
fn channel_ranges(data: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    let inner: usize = shape[axis + 1..].iter().product();
    let mut ranges = vec![0f32; shape[axis]];
    for (i, &w) in data.iter().enumerate() {
        let c = (i / inner) % shape[axis];
        ranges[c] = ranges[c].max(w.abs());
    }
    ranges
}

/// Multiplies every value of `data` (of `shape`) by the factor of its channel along `axis`.
fn scale_channels(data: &mut [f32], shape: &[usize], axis: usize, factor: impl Fn(usize) -> f32) {
    let inner: usize = shape[axis + 1..].iter().product();
    for (i, w) in data.iter_mut().enumerate() {
        *w *= factor((i / inner) % shape[axis]);
    }
}

/// `s_i = sqrt(r1_i / r2_i)` for every output channel of `A` (1 where either range is 0),
/// raised where it would scale the channel's weights or bias beyond the largest of `A`'s.
fn pair_scales(graph: &Graph, p: &Pair) -> Vec<f32> {
    let (a, b) = (&graph.nodes[p.a], &graph.nodes[p.b]);
    let wa = &graph.tensors[a.inputs[1]];
    let wb = &graph.tensors[b.inputs[1]];
    let bias = graph.tensors[a.inputs[2]].data.as_deref().expect("constant bias");
    let axis_a = weight_axis(&a.op).expect("a conv-like op");
    let r1 = channel_ranges(wa.data.as_deref().expect("constant weights"), &wa.shape, axis_a);
    let rb = channel_ranges(wb.data.as_deref().expect("constant weights"), &wb.shape, 3);
    let largest_range = r1.iter().copied().fold(0.0, f32::max);
    let largest_bias = bias.iter().fold(0f32, |m, b| m.max(b.abs()));
    r1.iter()
        .zip(bias)
        .enumerate()
        .map(|(i, (&r1, &b))| {
            let r2 = rb[i * p.per_input..(i + 1) * p.per_input].iter().copied().fold(0.0, f32::max);
            if r1 == 0.0 || r2 == 0.0 {
                return 1.0;
            }
            let floor =
                (r1 / largest_range).max(if largest_bias > 0.0 { b.abs() / largest_bias } else { 0.0 });
            (r1 / r2).sqrt().max(floor)
        })
        .collect()
}

/// Divides `A`'s output channel `i` (weights and bias) by `scales[i]` and multiplies `B`'s input
/// channel `i` weights by it.
fn apply(graph: &mut Graph, p: &Pair, scales: &[f32]) {
    let (a, b) = (&graph.nodes[p.a], &graph.nodes[p.b]);
    let axis_a = weight_axis(&a.op).expect("a conv-like op");
    let (wa, ba, wb) = (a.inputs[1], a.inputs[2], b.inputs[1]);
    let per_input = p.per_input;
    for (t, axis, factor) in [
        (wa, axis_a, &(|c: usize| 1.0 / scales[c]) as &dyn Fn(usize) -> f32),
        (ba, 0, &|c: usize| 1.0 / scales[c]),
        (wb, 3, &|c: usize| scales[c / per_input]),
    ] {
        let tensor = &mut graph.tensors[t];
        let data = tensor.data.as_mut().expect("constant weights");
        scale_channels(data, &tensor.shape, axis, factor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{eval, Conv, GraphIo};

    fn conv(act: Activation) -> Op {
        Op::Conv2d(Conv { stride: [1, 1], dilation: [1, 1], pads: [1, 1, 1, 1], act })
    }

    /// Seeded values in −1..1.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503));
                (h >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// conv 3×3 (8 channels, act) → depthwise 3×3 (ReLU) → conv 1×1 (6 channels), on [1,5,5,3].
    fn chain(act: Activation) -> Graph {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 5, 5, 3], None);
        // Output channel c of every layer scaled by 30^(c/units), as folded BatchNorm spreads them.
        let layer = |g: &mut Graph, name: &str, op: Op, input: usize, w: Vec<usize>, units: usize| {
            let seed = g.tensors.len() as u32;
            let mut data = values(w.iter().product(), seed);
            let spread = |c: usize| 30f32.powf(c as f32 / units as f32);
            scale_channels(&mut data, &w, weight_axis(&op).unwrap(), spread);
            let wt = g.add_tensor(format!("{name}_w"), w, Some(data));
            let bt = g.add_tensor(format!("{name}_b"), vec![units], Some(values(units, seed + 1)));
            g.add_node(name, op, vec![input, wt, bt], format!("{name}_out"), None).unwrap()
        };
        let t = layer(&mut g, "stem", conv(act), x, vec![8, 3, 3, 3], 8);
        let dw = Op::DepthwiseConv2d(Conv {
            stride: [1, 1],
            dilation: [1, 1],
            pads: [1, 1, 1, 1],
            act: Activation::Relu,
        });
        let t = layer(&mut g, "dw", dw, t, vec![1, 3, 3, 8], 8);
        let pw = Op::Conv2d(Conv { stride: [1, 1], dilation: [1, 1], pads: [0; 4], act: Activation::None });
        let y = layer(&mut g, "pw", pw, t, vec![6, 1, 1, 8], 6);
        let io = |tensor, name: &str, shape: Vec<usize>| GraphIo {
            tensor,
            name: name.into(),
            onnx_shape: shape,
            perm: vec![0, 1, 2, 3],
        };
        g.inputs.push(io(x, "x", vec![1, 5, 5, 3]));
        g.outputs.push(io(y, "y", vec![1, 5, 5, 6]));
        g.validate().unwrap();
        g
    }

    fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    #[test]
    fn equalization_keeps_the_float_function_and_evens_out_channel_ranges() {
        let mut g = chain(Activation::Relu);
        let x = values(75, 7);
        let before = eval::run(&g, std::slice::from_ref(&x)).unwrap();
        let done = equalize(&mut g);
        assert_eq!(done.pairs, [("stem".into(), "dw".into()), ("dw".into(), "pw".into())]);
        assert!(done.relu6_replaced.is_empty());
        let after = eval::run(&g, &[x]).unwrap();
        let largest = before[0].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max_abs_difference(&before[0], &after[0]) <= 1e-5 * largest);
        // The depthwise layer sits between two pairs: its output and input ranges converge to
        // the geometric means of its neighbours', so its channels' ranges differ far less than
        // the 30× they started with.
        let dw = &g.tensors[g.nodes[1].inputs[1]];
        let r = channel_ranges(dw.data.as_deref().unwrap(), &dw.shape, 3);
        let (lo, hi) = r.iter().fold((f32::MAX, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let stem = &g.tensors[g.nodes[0].inputs[1]];
        let r1 = channel_ranges(stem.data.as_deref().unwrap(), &stem.shape, 0);
        let rb = channel_ranges(dw.data.as_deref().unwrap(), &dw.shape, 3);
        for (a, b) in r1.iter().zip(&rb) {
            assert!((a / b - 1.0).abs() < 1e-3, "stem range {a} vs depthwise {b}");
        }
        assert!(hi / lo < 30.0, "{r:?}");
    }

    #[test]
    fn a_dead_channel_is_not_scaled_beyond_the_largest_bias() {
        let mut g = chain(Activation::Relu);
        // Stem channel 0 outputs its bias alone: equalization must not multiply that bias up.
        let (w, b) = (g.nodes[0].inputs[1], g.nodes[0].inputs[2]);
        let inner = 27;
        g.tensors[w].data.as_mut().unwrap()[..inner].iter_mut().for_each(|v| *v *= 1e-6);
        g.tensors[b].data.as_mut().unwrap()[0] = 0.5;
        let largest =
            |g: &Graph| g.tensors[b].data.as_ref().unwrap().iter().fold(0f32, |m, v| m.max(v.abs()));
        let before = largest(&g);
        equalize(&mut g);
        assert!(g.tensors[b].data.as_ref().unwrap()[0] <= before * 1.0001);
    }

    #[test]
    fn relu6_becomes_relu_and_is_reported() {
        let mut g = chain(Activation::Clip { min: 0.0, max: 6.0 });
        let done = equalize(&mut g);
        assert_eq!(done.relu6_replaced, ["stem"]);
        assert_eq!(g.nodes[0].op.act(), Some(Activation::Relu));
    }

    #[test]
    fn other_clips_and_shared_outputs_are_left_alone() {
        let mut g = chain(Activation::Clip { min: -1.0, max: 1.0 });
        let done = equalize(&mut g);
        assert_eq!(done.pairs, [("dw".into(), "pw".into())]);
        let mut g = chain(Activation::Relu);
        let stem_out = g.nodes[0].outputs[0];
        g.outputs.push(GraphIo {
            tensor: stem_out,
            name: "s".into(),
            onnx_shape: vec![1, 5, 5, 8],
            perm: vec![0, 1, 2, 3],
        });
        let done = equalize(&mut g);
        assert_eq!(done.pairs, [("dw".into(), "pw".into())]);
    }
}
