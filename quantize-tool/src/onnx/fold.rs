//! Graph-level folding after lowering: per-channel affine ops into weights, activations into
//! producers, zero padding into convs, chains of reshapes/transposes, and input layouts.

use crate::graph::{Activation, Graph, Op, TensorId};

use super::layout::{permute, transpose_data, unit_move};

/// Runs every folding pass until nothing changes, then drops unused tensors.
pub(super) fn fold(graph: &mut Graph) {
    while fold_channel_affine(graph)
        || fuse_activations(graph)
        || fold_pad_into_conv(graph)
        || merge_layout_chains(graph)
        || hoist_transposes(graph)
        || fold_transpose_into_fc(graph)
        || absorb_input_layouts(graph)
    {}
    graph.compact();
}

/// Replaces every use of tensor `from` (node inputs and graph outputs) by `to`.
fn replace_uses(graph: &mut Graph, from: TensorId, to: TensorId) {
    graph.nodes.iter_mut().flat_map(|n| n.inputs.iter_mut()).filter(|t| **t == from).for_each(|t| *t = to);
    graph.outputs.iter_mut().filter(|o| o.tensor == from).for_each(|o| o.tensor = to);
}

/// The single-consumer producer of `node`'s input `slot`, if any (index into `graph.nodes`).
fn sole_producer(
    graph: &Graph,
    uses: &[usize],
    producers: &[Option<usize>],
    node: usize,
    slot: usize,
) -> Option<usize> {
    let t = graph.nodes[node].inputs[slot];
    (uses[t] == 1).then_some(producers[t]).flatten()
}

/// Folds `Mul`/`Add` by a per-output-channel constant into the preceding Conv/FullyConnected.
fn fold_channel_affine(graph: &mut Graph) -> bool {
    let (uses, producers) = (graph.use_counts(), graph.producers());
    for n in 0..graph.nodes.len() {
        let is_mul = match graph.nodes[n].op {
            Op::Mul { act: Activation::None } => true,
            Op::Add { act: Activation::None } => false,
            _ => continue,
        };
        for slot in 0..2 {
            let k = graph.nodes[n].inputs[1 - slot];
            let Some(values) = graph.tensors[k].data.clone() else {
                continue;
            };
            let Some(p) = sole_producer(graph, &uses, &producers, n, slot) else {
                continue;
            };
            let producer = &graph.nodes[p];
            if !matches!(producer.op, Op::Conv2d(_) | Op::DepthwiseConv2d(_) | Op::FullyConnected { .. })
                || producer.op.act() != Some(Activation::None)
            {
                continue;
            }
            let out_shape = &graph.tensors[producer.outputs[0]].shape;
            let cout = *out_shape.last().expect("conv/fc outputs have a channel axis");
            let kshape = &graph.tensors[k].shape;
            let (last, leading) = kshape.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
            if kshape.len() != out_shape.len()
                || leading.iter().any(|&d| d != 1)
                || !(last == 1 || last == cout)
            {
                continue;
            }
            let per_channel = |o: usize| values[if last == 1 { 0 } else { o }];
            let depthwise = matches!(producer.op, Op::DepthwiseConv2d(_));
            if is_mul {
                let w = owned_const(graph, p, 1, &uses);
                let data = graph.tensors[w].data.as_mut().expect("weights are constant");
                let per_out = data.len() / cout;
                for (i, v) in data.iter_mut().enumerate() {
                    *v *= per_channel(if depthwise { i % cout } else { i / per_out });
                }
            }
            let b = owned_const(graph, p, 2, &uses);
            let bias = graph.tensors[b].data.as_mut().expect("bias is constant");
            for (o, v) in bias.iter_mut().enumerate() {
                *v = if is_mul { *v * per_channel(o) } else { *v + per_channel(o) };
            }
            bypass_into_producer(graph, n, p);
            return true;
        }
    }
    false
}

/// The constant input `slot` of node `p`, cloned first if other nodes share it.
fn owned_const(graph: &mut Graph, p: usize, slot: usize, uses: &[usize]) -> TensorId {
    let t = graph.nodes[p].inputs[slot];
    if uses[t] <= 1 {
        return t;
    }
    let copy = graph.tensors[t].clone();
    graph.tensors.push(copy);
    graph.nodes[p].inputs[slot] = graph.tensors.len() - 1;
    graph.tensors.len() - 1
}

/// Makes producer `p` write node `n`'s output and removes `n`.
fn bypass_into_producer(graph: &mut Graph, n: usize, p: usize) {
    let out = graph.nodes[n].outputs[0];
    graph.nodes[p].outputs[0] = out;
    graph.nodes.remove(n);
}

/// Fuses Relu/Clip into a producing Conv/FullyConnected/Add/Mul that has no other consumer.
fn fuse_activations(graph: &mut Graph) -> bool {
    let (uses, producers) = (graph.use_counts(), graph.producers());
    for n in 0..graph.nodes.len() {
        let act = match graph.nodes[n].op {
            Op::Relu => Activation::Relu,
            Op::Clip { min, max } => Activation::Clip { min, max },
            _ => continue,
        };
        let Some(p) = sole_producer(graph, &uses, &producers, n, 0) else {
            continue;
        };
        if let Some(slot @ Activation::None) = graph.nodes[p].op.act_mut() {
            *slot = act;
            bypass_into_producer(graph, n, p);
            return true;
        }
    }
    false
}

/// Folds a zero `Pad` of only the H and W axes into the following Conv2d/DepthwiseConv2d.
fn fold_pad_into_conv(graph: &mut Graph) -> bool {
    let (uses, producers) = (graph.use_counts(), graph.producers());
    for n in 0..graph.nodes.len() {
        if !matches!(graph.nodes[n].op, Op::Conv2d(_) | Op::DepthwiseConv2d(_)) {
            continue;
        }
        let Some(p) = sole_producer(graph, &uses, &producers, n, 0) else {
            continue;
        };
        let Op::Pad { pads, value } = &graph.nodes[p].op else {
            continue;
        };
        if *value != 0.0 || pads.len() != 4 || pads[0] != [0, 0] || pads[3] != [0, 0] {
            continue;
        }
        let (top, bottom, left, right) = (pads[1][0], pads[1][1], pads[2][0], pads[2][1]);
        let src = graph.nodes[p].inputs[0];
        if let Op::Conv2d(c) | Op::DepthwiseConv2d(c) = &mut graph.nodes[n].op {
            c.pads = [c.pads[0] + top, c.pads[1] + left, c.pads[2] + bottom, c.pads[3] + right];
        }
        graph.nodes[n].inputs[0] = src;
        graph.nodes.remove(p);
        return true;
    }
    false
}

/// Merges Reshape->Reshape and Transpose->Transpose chains and drops no-op reshapes/transposes.
fn merge_layout_chains(graph: &mut Graph) -> bool {
    let (uses, producers) = (graph.use_counts(), graph.producers());
    let is_io = |g: &Graph, t: TensorId| g.inputs.iter().chain(&g.outputs).any(|io| io.tensor == t);
    for n in 0..graph.nodes.len() {
        let (input, output) = (graph.nodes[n].inputs[0], graph.nodes[n].outputs[0]);
        let noop = match &graph.nodes[n].op {
            Op::Reshape => graph.tensors[input].shape == graph.tensors[output].shape,
            Op::Transpose { perm } => perm.iter().enumerate().all(|(i, &p)| i == p),
            _ => continue,
        };
        if noop && !is_io(graph, output) {
            replace_uses(graph, output, input);
            graph.nodes.remove(n);
            return true;
        }
        let Some(p) = sole_producer(graph, &uses, &producers, n, 0) else {
            continue;
        };
        let merged = match (&graph.nodes[p].op, &graph.nodes[n].op) {
            (Op::Reshape, Op::Reshape) => Op::Reshape,
            (Op::Transpose { perm: first }, Op::Transpose { perm: second }) => {
                Op::Transpose { perm: second.iter().map(|&a| first[a]).collect() }
            }
            _ => continue,
        };
        graph.nodes[n].op = merged;
        graph.nodes[n].inputs[0] = graph.nodes[p].inputs[0];
        graph.nodes.remove(p);
        return true;
    }
    false
}

/// Moves a Transpose above the elementwise op or Pad producing its input, towards the graph
/// input (where it is absorbed) or another Transpose (where it merges).
fn hoist_transposes(graph: &mut Graph) -> bool {
    let (uses, producers) = (graph.use_counts(), graph.producers());
    for n in 0..graph.nodes.len() {
        let Op::Transpose { perm } = graph.nodes[n].op.clone() else {
            continue;
        };
        let Some(p) = sole_producer(graph, &uses, &producers, n, 0) else {
            continue;
        };
        let const_operand = match &graph.nodes[p].op {
            Op::Relu
            | Op::Clip { .. }
            | Op::LeakyRelu { .. }
            | Op::HardSwish
            | Op::HardSigmoid { .. }
            | Op::Sigmoid
            | Op::Tanh
            | Op::Pad { .. } => None,
            Op::Add { .. } | Op::Mul { .. } => {
                let inputs = &graph.nodes[p].inputs;
                match inputs.iter().position(|&t| graph.tensors[t].data.is_some()) {
                    Some(slot) if graph.tensors[inputs[1 - slot]].data.is_none() => Some(slot),
                    _ => continue,
                }
            }
            _ => continue,
        };
        if let Some(slot) = const_operand {
            let k = owned_const(graph, p, slot, &uses);
            let t = &mut graph.tensors[k];
            let data = t.data.as_ref().expect("constant operand");
            t.data = Some(transpose_data(data, &t.shape, &perm));
            t.shape = permute(&t.shape, &perm);
        }
        if let Op::Pad { pads, .. } = &mut graph.nodes[p].op {
            *pads = permute(pads, &perm);
        }
        let act_slot = const_operand.map_or(0, |slot| 1 - slot);
        let src = graph.nodes[p].inputs[act_slot];
        let mid = graph.nodes[p].outputs[0];
        graph.tensors[mid].shape = permute(&graph.tensors[src].shape, &perm);
        let producer_op = std::mem::replace(&mut graph.nodes[p].op, Op::Transpose { perm });
        let producer_inputs = std::mem::replace(&mut graph.nodes[p].inputs, vec![src]);
        let name = graph.nodes[p].name.clone();
        let node = &mut graph.nodes[n];
        node.op = producer_op;
        node.inputs = producer_inputs.iter().map(|&t| if t == src { mid } else { t }).collect();
        node.name = name;
        return true;
    }
    false
}

/// Folds `Transpose -> Reshape (flatten) -> FullyConnected` into a permutation of the weight
/// columns, so the FullyConnected reads the untransposed tensor directly.
fn fold_transpose_into_fc(graph: &mut Graph) -> bool {
    let (uses, producers) = (graph.use_counts(), graph.producers());
    for n in 0..graph.nodes.len() {
        if !matches!(graph.nodes[n].op, Op::FullyConnected { .. }) {
            continue;
        }
        let Some(r) = sole_producer(graph, &uses, &producers, n, 0) else {
            continue;
        };
        if graph.nodes[r].op != Op::Reshape {
            continue;
        }
        let Some(t) = sole_producer(graph, &uses, &producers, r, 0) else {
            continue;
        };
        let Op::Transpose { perm } = graph.nodes[t].op.clone() else {
            continue;
        };
        let src = graph.nodes[t].inputs[0];
        let shape = graph.tensors[src].shape.clone();
        let flat = &graph.tensors[graph.nodes[r].outputs[0]].shape;
        let rows: usize = flat[..flat.len() - 1].iter().product();
        let Some(j) = (0..=shape.len()).find(|&j| shape[..j].iter().product::<usize>() == rows) else {
            continue;
        };
        if perm[..j].iter().enumerate().any(|(i, &p)| i != p) {
            continue;
        }
        let tail_perm: Vec<usize> = perm[j..].iter().map(|p| p - j).collect();
        let k: usize = shape[j..].iter().product();
        let source: Vec<usize> = transpose_data(&(0..k).collect::<Vec<_>>(), &shape[j..], &tail_perm);
        let w = owned_const(graph, n, 1, &uses);
        let data = graph.tensors[w].data.as_mut().expect("weights are constant");
        for row in data.chunks_mut(k) {
            let old = row.to_vec();
            source.iter().zip(&old).for_each(|(&s, &v)| row[s] = v);
        }
        graph.nodes[r].inputs[0] = src;
        graph.nodes.remove(t);
        return true;
    }
    false
}

/// Lets a graph input arrive already transposed when every consumer only changes its layout.
fn absorb_input_layouts(graph: &mut Graph) -> bool {
    for i in 0..graph.inputs.len() {
        let t = graph.inputs[i].tensor;
        if graph.outputs.iter().any(|o| o.tensor == t) {
            continue;
        }
        let consumers: Vec<usize> =
            (0..graph.nodes.len()).filter(|&n| graph.nodes[n].inputs.contains(&t)).collect();
        let perms: Vec<Option<Vec<usize>>> = consumers
            .iter()
            .map(|&n| {
                let node = &graph.nodes[n];
                match &node.op {
                    Op::Transpose { perm } => Some(perm.clone()),
                    Op::Reshape => unit_move(&graph.tensors[t].shape, &graph.tensors[node.outputs[0]].shape),
                    _ => None,
                }
            })
            .collect();
        let Some(Some(step)) = perms.first() else {
            continue;
        };
        if perms.iter().any(|p| p.as_ref() != Some(step)) {
            continue;
        }
        let io = &mut graph.inputs[i];
        io.perm = step.iter().map(|&a| io.perm[a]).collect();
        let kept = graph.nodes[consumers[0]].outputs[0];
        io.tensor = kept;
        graph.tensors[kept].name.clone_from(&io.name);
        for &n in consumers.iter().skip(1) {
            let out = graph.nodes[n].outputs[0];
            replace_uses(graph, out, kept);
        }
        for &n in consumers.iter().rev() {
            graph.nodes.remove(n);
        }
        return true;
    }
    false
}
