//! Lowering ONNX nodes to Ember IR nodes, propagating each tensor's physical layout.
//!
//! Every ONNX activation is an [`Act`]: its logical (ONNX) shape and the IR tensors holding it,
//! each with its permutation (see [`super::layout`]). Ops that do not care about element order
//! keep their input's layout; conv-like ops ask for NHWC; order-dependent ops map their axes
//! through the permutation. A conversion is emitted only when an op needs a layout the tensor
//! does not have yet, as a `Reshape` when only size-1 axes move, else as a `Transpose`, and is
//! cached so every layout of a tensor is computed once.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};
use tract_onnx::pb::{ModelProto, NodeProto};
use tract_onnx::prelude::*;

use super::attrs::{node_name, norm_axis, Attrs};
use super::layout::{between, identity, inverse, keeps_order, permute, transpose_data, NHWC};
use super::load::Facts;
use super::support::opset_version;
use crate::graph::{Activation, Conv, Graph, GraphIo, Op, TensorId};

/// An ONNX activation: its logical shape and the IR tensors storing it.
#[derive(Clone, Debug)]
struct Act {
    /// Logical (ONNX) shape.
    shape: Vec<usize>,
    /// (perm, tensor) pairs; the first is the layout the producer wrote.
    layouts: Vec<(Vec<usize>, TensorId)>,
}

/// Value of an ONNX tensor during lowering.
#[derive(Clone, Debug)]
enum Val {
    Const(Arc<Tensor>),
    Act(Act),
}

/// A float constant in logical layout.
struct Konst {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Binary elementwise op kinds Ember keeps.
#[derive(Clone, Copy)]
enum Bin {
    Add,
    Mul,
}

impl Bin {
    fn op(self) -> Op {
        match self {
            Bin::Add => Op::Add { act: Activation::None },
            Bin::Mul => Op::Mul { act: Activation::None },
        }
    }
}

/// Lowers the whole ONNX graph (already checked by `support`) to an unoptimized IR graph.
pub(super) fn lower(model: &ModelProto, facts: &Facts, inputs: &[(String, Vec<usize>)]) -> Result<Graph> {
    let graph = model.graph.as_ref().context("the ONNX file has no graph")?;
    let mut l =
        Lowering { graph: Graph::default(), facts, opset: opset_version(model), vals: HashMap::new() };
    for (name, shape) in inputs {
        let t = l.graph.add_tensor(name.clone(), shape.clone(), None);
        l.graph.inputs.push(GraphIo {
            tensor: t,
            name: name.clone(),
            onnx_shape: shape.clone(),
            perm: identity(shape.len()),
        });
        l.vals.insert(
            name.clone(),
            Val::Act(Act { shape: shape.clone(), layouts: vec![(identity(shape.len()), t)] }),
        );
    }
    for init in &graph.initializer {
        if !l.vals.contains_key(&init.name) {
            let value = facts
                .konst(&init.name)
                .with_context(|| format!("initializer '{}' has no value", init.name))?;
            l.vals.insert(init.name.clone(), Val::Const(value.clone()));
        }
    }
    for (index, node) in graph.node.iter().enumerate() {
        let first = l.graph.nodes.len();
        l.node(node)
            .with_context(|| format!("lowering ONNX node '{}' ({})", node_name(node), node.op_type))?;
        l.graph.nodes[first..].iter_mut().for_each(|n| n.source = index as u32);
    }
    for output in &graph.output {
        let act = match l.vals.get(&output.name) {
            Some(Val::Act(a)) => a.clone(),
            Some(Val::Const(_)) => bail!(
                "graph output '{}' is a constant; Ember needs outputs computed from the inputs",
                output.name
            ),
            None => bail!("graph output '{}' is not produced by any node", output.name),
        };
        let (perm, tensor) = act.layouts[0].clone();
        l.graph.outputs.push(GraphIo { tensor, name: output.name.clone(), onnx_shape: act.shape, perm });
    }
    Ok(l.graph)
}

struct Lowering<'a> {
    graph: Graph,
    facts: &'a Facts,
    opset: i64,
    vals: HashMap<String, Val>,
}

impl Lowering<'_> {
    fn val(&self, name: &str) -> Result<&Val> {
        self.vals.get(name).with_context(|| format!("tensor '{name}' is used before it is defined"))
    }

    fn is_const(&self, name: &str) -> bool {
        matches!(self.vals.get(name), Some(Val::Const(_)))
    }

    /// The float value of constant `name`.
    fn konst(&self, name: &str) -> Result<Konst> {
        let Val::Const(t) = self.val(name)? else { bail!("input '{name}' must be a constant") };
        let data = t.cast_to::<f32>()?.to_plain_array_view::<f32>()?.iter().copied().collect();
        Ok(Konst { shape: t.shape().to_vec(), data })
    }

    /// The integer values of constant `name`.
    fn ints(&self, name: &str) -> Result<Vec<i64>> {
        let Val::Const(t) = self.val(name)? else { bail!("input '{name}' must be a constant") };
        Ok(t.cast_to::<i64>()?.to_plain_array_view::<i64>()?.iter().copied().collect())
    }

    /// Optional input `ix` of `node` (absent or empty name gives `None`).
    fn opt_input(node: &NodeProto, ix: usize) -> Option<&str> {
        node.input.get(ix).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// The activation `name`; constants become IR constant tensors.
    fn act(&mut self, name: &str) -> Result<Act> {
        match self.val(name)?.clone() {
            Val::Act(a) => Ok(a),
            Val::Const(_) => {
                let k = self.konst(name)?;
                let t = self.graph.add_tensor(name, k.shape.clone(), Some(k.data));
                let act = Act { layouts: vec![(identity(k.shape.len()), t)], shape: k.shape };
                self.vals.insert(name.to_string(), Val::Act(act.clone()));
                Ok(act)
            }
        }
    }

    /// The IR tensor holding activation `name` with permutation `want`, converting if needed.
    fn layout(&mut self, node: &NodeProto, name: &str, want: &[usize]) -> Result<TensorId> {
        let mut act = self.act(name)?;
        if let Some((_, t)) = act.layouts.iter().find(|(p, _)| p == want) {
            return Ok(*t);
        }
        let internal = |g: &Graph, t: TensorId| g.tensors[t].shape.clone();
        let cheap =
            act.layouts.iter().find(|(p, t)| keeps_order(&internal(&self.graph, *t), &between(p, want)));
        let (from, t) = cheap.unwrap_or(&act.layouts[0]).clone();
        let step = between(&from, want);
        let out_name = format!("{name}/perm{}", want.iter().map(usize::to_string).collect::<String>());
        let out = if keeps_order(&internal(&self.graph, t), &step) {
            let to = permute(&act.shape, want);
            self.graph.add_node(node_name(node), Op::Reshape, vec![t], out_name, Some(&to))?
        } else {
            self.graph.add_node(node_name(node), Op::Transpose { perm: step }, vec![t], out_name, None)?
        };
        act.layouts.push((want.to_vec(), out));
        self.vals.insert(name.to_string(), Val::Act(act));
        Ok(out)
    }

    /// Appends a node whose output is the ONNX tensor `out` stored with `perm`; checks tract's shape.
    fn emit(
        &mut self,
        node: &NodeProto,
        op: Op,
        inputs: Vec<TensorId>,
        out: &str,
        perm: Vec<usize>,
        reshape_to: Option<&[usize]>,
    ) -> Result<()> {
        let t = self.graph.add_node(node_name(node), op, inputs, out, reshape_to)?;
        let shape = permute(&self.graph.tensors[t].shape, &inverse(&perm));
        if let Ok(expected) = self.facts.shape(out) {
            ensure!(
                expected == shape,
                "Ember computed shape {shape:?} for '{out}' but tract inferred {expected:?}; please report this model"
            );
        }
        self.vals.insert(out.to_string(), Val::Act(Act { shape, layouts: vec![(perm, t)] }));
        Ok(())
    }

    /// Adds a constant tensor to the IR.
    fn add_const(&mut self, name: String, shape: Vec<usize>, data: Vec<f32>) -> TensorId {
        self.graph.add_tensor(name, shape, Some(data))
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        let outs: Vec<&String> = node.output.iter().filter(|o| !o.is_empty()).collect();
        if !outs.is_empty() && outs.iter().all(|o| self.facts.konst(o).is_some()) {
            for o in outs {
                let value = self.facts.konst(o).expect("checked").clone();
                self.vals.insert(o.clone(), Val::Const(value));
            }
            return Ok(());
        }
        let x = node.input.first().map(String::as_str).unwrap_or_default();
        let out = node.output.first().map(String::as_str).context("node has no output")?;
        match node.op_type.as_str() {
            "Identity" | "Dropout" => {
                let v = self.val(x)?.clone();
                self.vals.insert(out.to_string(), v);
                Ok(())
            }
            "Conv" => self.conv(node),
            "BatchNormalization" => self.batch_norm(node),
            "Add" | "Sub" | "Mul" | "Div" => self.binary(node),
            "Relu" => self.unary(node, Op::Relu),
            "Clip" => self.clip(node),
            "LeakyRelu" => self.unary(node, Op::LeakyRelu { alpha: node.float("alpha", 0.01) }),
            "HardSwish" => self.unary(node, Op::HardSwish),
            "HardSigmoid" => self.unary(
                node,
                Op::HardSigmoid { alpha: node.float("alpha", 0.2), beta: node.float("beta", 0.5) },
            ),
            "Sigmoid" => self.unary(node, Op::Sigmoid),
            "Tanh" => self.unary(node, Op::Tanh),
            "MaxPool" | "AveragePool" => self.pool(node),
            "GlobalAveragePool" => self.reduce_mean(node, x, out, &[2, 3], true),
            "ReduceMean" => {
                let rank = self.act(x)?.shape.len();
                let axes = match Self::opt_input(node, 1) {
                    Some(a) => Some(self.ints(a)?),
                    None => node.ints("axes"),
                };
                let axes: Vec<usize> = match axes {
                    Some(a) if !a.is_empty() => {
                        a.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_>>()?
                    }
                    _ if node.int("noop_with_empty_axes", 0) != 0 => {
                        let v = self.val(x)?.clone();
                        self.vals.insert(out.to_string(), v);
                        return Ok(());
                    }
                    _ => identity(rank),
                };
                self.reduce_mean(node, x, out, &axes, node.int("keepdims", 1) != 0)
            }
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => {
                let to = self.facts.shape(out)?.to_vec();
                self.reshape(node, x, out, &to)
            }
            "Transpose" => self.transpose(node),
            "Concat" => self.concat(node),
            "Pad" => self.pad(node),
            "Softmax" => self.softmax(node),
            "Gemm" => self.gemm(node),
            "MatMul" => self.matmul(node),
            other => bail!("op {other} is not supported by Ember"),
        }
    }

    fn unary(&mut self, node: &NodeProto, op: Op) -> Result<()> {
        let act = self.act(&node.input[0])?;
        let (perm, t) = act.layouts[0].clone();
        self.emit(node, op, vec![t], &node.output[0], perm, None)
    }

    fn clip(&mut self, node: &NodeProto) -> Result<()> {
        let bound = |l: &Self, ix: usize, attr: &str, default: f32| -> Result<f32> {
            if l.opset < 11 {
                return Ok(node.float(attr, default));
            }
            match Self::opt_input(node, ix) {
                Some(name) => {
                    let k = l.konst(name)?;
                    ensure!(k.data.len() == 1, "Clip {attr} must be a scalar, got shape {:?}", k.shape);
                    Ok(k.data[0])
                }
                None => Ok(default),
            }
        };
        let min = bound(self, 1, "min", f32::NEG_INFINITY)?;
        let max = bound(self, 2, "max", f32::INFINITY)?;
        let op = if min == 0.0 && max == f32::INFINITY { Op::Relu } else { Op::Clip { min, max } };
        self.unary(node, op)
    }

    /// Explicit [top, left, bottom, right] pads of a 2-D window op; `ceil` extends the end pads.
    fn window_pads(
        node: &NodeProto,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        ceil: bool,
    ) -> Result<[usize; 4]> {
        let auto_pad = node.string("auto_pad", "NOTSET");
        let mut pads = [0; 4];
        match auto_pad.as_str() {
            "NOTSET" => {
                if let Some(p) = node.ints("pads") {
                    ensure!(
                        p.len() == 4 && p.iter().all(|&v| v >= 0),
                        "pads {p:?} must be 4 non-negative values"
                    );
                    p.iter().enumerate().for_each(|(i, &v)| pads[i] = v as usize);
                }
            }
            "VALID" => {}
            "SAME_UPPER" | "SAME_LOWER" => {
                for a in 0..2 {
                    let out = input[a].div_ceil(stride[a]);
                    let span = (kernel[a] - 1) * dilation[a] + 1;
                    let total = ((out - 1) * stride[a] + span).saturating_sub(input[a]);
                    let small = total / 2;
                    let (before, after) = if auto_pad == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    pads[a] = before;
                    pads[a + 2] = after;
                }
            }
            other => bail!("auto_pad '{other}' is not a valid ONNX value"),
        }
        if ceil {
            for a in 0..2 {
                let span = (kernel[a] - 1) * dilation[a] + 1;
                let padded = input[a] + pads[a] + pads[a + 2];
                let rest = (padded - span) % stride[a];
                if rest != 0 {
                    pads[a + 2] += stride[a] - rest;
                }
            }
        }
        Ok(pads)
    }

    fn pair(node: &NodeProto, name: &str) -> Result<[usize; 2]> {
        match node.ints(name) {
            None => Ok([1, 1]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| x > 0) => Ok([v[0] as usize, v[1] as usize]),
            Some(v) => bail!("{name} {v:?} must be 2 positive values (only 2-D is supported)"),
        }
    }

    fn conv(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act(&node.input[0])?;
        ensure!(
            x.shape.len() == 4,
            "only 2-D convolutions on [N,C,H,W] inputs are supported, input has shape {:?}",
            x.shape
        );
        let w = self.konst(&node.input[1])?;
        ensure!(w.shape.len() == 4, "weights must be [Cout,Cin/group,KH,KW], got {:?}", w.shape);
        let (cin, cout, kernel) = (x.shape[1], w.shape[0], [w.shape[2], w.shape[3]]);
        let group = node.int("group", 1) as usize;
        let depthwise = group > 1 && group == cin && w.shape[1] == 1;
        ensure!(
            group == 1 || depthwise,
            "grouped convolution (group={group}, {cin} input channels) is unsupported; only group=1 or depthwise (group = input channels)"
        );
        ensure!(
            w.shape[1] * group == cin,
            "weights {:?} with group={group} do not match {cin} input channels",
            w.shape
        );
        let stride = Self::pair(node, "strides")?;
        let dilation = Self::pair(node, "dilations")?;
        let pads = Self::window_pads(node, [x.shape[2], x.shape[3]], kernel, stride, dilation, false)?;
        let bias = match Self::opt_input(node, 2) {
            Some(b) => self.konst(b)?.data,
            None => vec![0.0; cout],
        };
        ensure!(bias.len() == cout, "bias has {} values, expected {cout}", bias.len());
        let name = node_name(node);
        let (wperm, wshape) = if depthwise {
            ([1, 2, 3, 0], vec![1, kernel[0], kernel[1], cout])
        } else {
            ([0, 2, 3, 1], vec![cout, kernel[0], kernel[1], cin])
        };
        let wt = self.add_const(format!("{name}/weights"), wshape, transpose_data(&w.data, &w.shape, &wperm));
        let bt = self.add_const(format!("{name}/bias"), vec![cout], bias);
        let xt = self.layout(node, &node.input[0], &NHWC)?;
        let conv = Conv { stride, dilation, pads, act: Activation::None };
        let op = if depthwise { Op::DepthwiseConv2d(conv) } else { Op::Conv2d(conv) };
        self.emit(node, op, vec![xt, wt, bt], &node.output[0], NHWC.to_vec(), None)
    }

    fn batch_norm(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act(&node.input[0])?;
        ensure!(x.shape.len() >= 2, "input must be [N,C,...], got {:?}", x.shape);
        let c = x.shape[1];
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| self.konst(&node.input[i]));
        let (scale, bias, mean, var) = (scale?.data, bias?.data, mean?.data, var?.data);
        ensure!(
            [&scale, &bias, &mean, &var].iter().all(|v| v.len() == c),
            "scale, bias, mean and var must have {c} values"
        );
        let eps = node.float("epsilon", 1e-5);
        let mul: Vec<f32> = scale.iter().zip(&var).map(|(s, v)| s / (v + eps).sqrt()).collect();
        let add: Vec<f32> = bias.iter().zip(&mean).zip(&mul).map(|((b, m), s)| b - m * s).collect();
        let mut shape = vec![1; x.shape.len()];
        shape[1] = c;
        let scaled = format!("{}/scaled", node.output[0]);
        self.bin_const(node, Bin::Mul, &node.input[0], Konst { shape: shape.clone(), data: mul }, &scaled)?;
        self.bin_const(node, Bin::Add, &scaled, Konst { shape, data: add }, &node.output[0])
    }

    fn binary(&mut self, node: &NodeProto) -> Result<()> {
        let (a, b, out) = (&node.input[0], &node.input[1], &node.output[0]);
        let neg = |k: Konst| Konst { data: k.data.iter().map(|v| -v).collect(), shape: k.shape };
        match (node.op_type.as_str(), self.is_const(a), self.is_const(b)) {
            ("Add", false, true) => self.bin_const(node, Bin::Add, a, self.konst(b)?, out),
            ("Add", true, false) => self.bin_const(node, Bin::Add, b, self.konst(a)?, out),
            ("Mul", false, true) => self.bin_const(node, Bin::Mul, a, self.konst(b)?, out),
            ("Mul", true, false) => self.bin_const(node, Bin::Mul, b, self.konst(a)?, out),
            ("Sub", false, true) => self.bin_const(node, Bin::Add, a, neg(self.konst(b)?), out),
            ("Div", false, true) => {
                let k = self.konst(b)?;
                ensure!(k.data.iter().all(|&v| v != 0.0), "divisor '{b}' contains zeros");
                self.bin_const(
                    node,
                    Bin::Mul,
                    a,
                    Konst { data: k.data.iter().map(|v| 1.0 / v).collect(), shape: k.shape },
                    out,
                )
            }
            ("Sub", true, false) => {
                let negated = format!("{out}/negated");
                self.bin_const(node, Bin::Mul, b, Konst { shape: vec![], data: vec![-1.0] }, &negated)?;
                self.bin_const(node, Bin::Add, &negated, self.konst(a)?, out)
            }
            ("Sub", false, false) => {
                let negated = format!("{out}/negated");
                self.bin_const(node, Bin::Mul, b, Konst { shape: vec![], data: vec![-1.0] }, &negated)?;
                self.bin_act(node, Bin::Add, a, &negated, out)
            }
            ("Add", false, false) => self.bin_act(node, Bin::Add, a, b, out),
            ("Mul", false, false) => self.bin_act(node, Bin::Mul, a, b, out),
            (op, _, _) => {
                bail!("{op} with these operands is unsupported (the divisor must be a constant)")
            }
        }
    }

    /// Gives activation `name` at least `rank` axes by prepending size-1 axes; returns the new name.
    fn with_rank(&mut self, node: &NodeProto, name: &str, rank: usize) -> Result<String> {
        let act = self.act(name)?;
        let extra = rank.saturating_sub(act.shape.len());
        if extra == 0 {
            return Ok(name.to_string());
        }
        let (perm, t) = act.layouts[0].clone();
        let new_perm: Vec<usize> = (0..extra).chain(perm.iter().map(|p| p + extra)).collect();
        let logical: Vec<usize> = std::iter::repeat_n(1, extra).chain(act.shape.iter().copied()).collect();
        let new_name = format!("{name}/rank{rank}");
        let to = permute(&logical, &new_perm);
        self.emit(node, Op::Reshape, vec![t], &new_name, new_perm, Some(&to))?;
        Ok(new_name)
    }

    /// `out = x (op) k` with constant `k` broadcast in the layout of `x`.
    fn bin_const(&mut self, node: &NodeProto, bin: Bin, x: &str, k: Konst, out: &str) -> Result<()> {
        let x = self.with_rank(node, x, k.shape.len())?;
        let act = self.act(&x)?;
        let rank = act.shape.len();
        let shape: Vec<usize> =
            std::iter::repeat_n(1, rank - k.shape.len()).chain(k.shape.iter().copied()).collect();
        let (perm, t) = act.layouts[0].clone();
        let kt = self.add_const(
            format!("{out}/operand"),
            permute(&shape, &perm),
            transpose_data(&k.data, &shape, &perm),
        );
        self.emit(node, bin.op(), vec![t, kt], out, perm, None)
    }

    /// `out = a (op) b` for two activations, in a common layout.
    fn bin_act(&mut self, node: &NodeProto, bin: Bin, a: &str, b: &str, out: &str) -> Result<()> {
        let rank = self.act(a)?.shape.len().max(self.act(b)?.shape.len());
        let a = self.with_rank(node, a, rank)?;
        let b = self.with_rank(node, b, rank)?;
        let perm = self.common_perm(&[&a, &b])?;
        let ta = self.layout(node, &a, &perm)?;
        let tb = self.layout(node, &b, &perm)?;
        self.emit(node, bin.op(), vec![ta, tb], out, perm, None)
    }

    /// Layout for an op combining several activations: NHWC if any 4-D one has it, else the first's.
    fn common_perm(&mut self, names: &[&str]) -> Result<Vec<usize>> {
        let mut first = None;
        for name in names {
            if let Val::Act(a) = self.val(name)? {
                if a.layouts.iter().any(|(p, _)| p == &NHWC) {
                    return Ok(NHWC.to_vec());
                }
                first.get_or_insert_with(|| a.layouts[0].0.clone());
            }
        }
        Ok(first.unwrap_or_else(|| identity(self.facts.shape(names[0]).map_or(0, <[usize]>::len))))
    }

    fn pool(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.act(&node.input[0])?;
        ensure!(
            x.shape.len() == 4,
            "only 2-D pooling on [N,C,H,W] inputs is supported, input has shape {:?}",
            x.shape
        );
        let kernel = node.ints("kernel_shape").context("kernel_shape is required")?;
        ensure!(
            kernel.len() == 2 && kernel.iter().all(|&k| k > 0),
            "kernel_shape {kernel:?} must be 2 positive values"
        );
        let kernel = [kernel[0] as usize, kernel[1] as usize];
        let stride = Self::pair(node, "strides")?;
        let ceil = node.int("ceil_mode", 0) != 0;
        let pads = Self::window_pads(node, [x.shape[2], x.shape[3]], kernel, stride, [1, 1], ceil)?;
        let op = if node.op_type == "MaxPool" {
            Op::MaxPool { kernel, stride, pads }
        } else {
            ensure!(
                node.int("count_include_pad", 0) == 0 || pads == [0; 4],
                "count_include_pad=1 with padding is unsupported (padded cells are excluded from the average)"
            );
            Op::AveragePool { kernel, stride, pads }
        };
        let xt = self.layout(node, &node.input[0], &NHWC)?;
        self.emit(node, op, vec![xt], &node.output[0], NHWC.to_vec(), None)
    }

    /// Mean over logical `axes` of `x`, as Ember's spatial `Mean` (reshaping around it if needed).
    fn reduce_mean(
        &mut self,
        node: &NodeProto,
        x: &str,
        out: &str,
        axes: &[usize],
        keepdims: bool,
    ) -> Result<()> {
        let act = self.act(x)?;
        let rank = act.shape.len();
        ensure!(axes.iter().all(|&a| a < rank), "axes {axes:?} out of range for input shape {:?}", act.shape);
        let reduced = |a: usize| axes.contains(&a);
        let kept_shape: Vec<usize> =
            act.shape.iter().enumerate().map(|(a, &d)| if reduced(a) { 1 } else { d }).collect();
        let contiguous = |p: &[usize]| {
            let pos: Vec<usize> = (0..rank).filter(|&i| reduced(p[i])).collect();
            pos.windows(2).all(|w| w[1] == w[0] + 1)
        };
        let perm = if rank == 4 && axes.len() == 2 && reduced(2) && reduced(3) {
            NHWC.to_vec()
        } else if let Some((p, _)) = act.layouts.iter().find(|(p, _)| contiguous(p)) {
            p.clone()
        } else {
            let first = axes.iter().copied().min().unwrap_or(0);
            (0..rank)
                .filter(|&a| !reduced(a) && a < first)
                .chain(axes.iter().copied())
                .chain((0..rank).filter(|&a| !reduced(a) && a > first))
                .collect()
        };
        let t = self.layout(node, x, &perm)?;
        let internal = self.graph.tensors[t].shape.clone();
        let pos: Vec<usize> = (0..rank).filter(|&i| reduced(perm[i])).collect();
        let (start, end) = (pos.first().copied().unwrap_or(0), pos.last().map_or(0, |p| p + 1));
        let mean_out = if keepdims { out.to_string() } else { format!("{out}/mean") };
        if rank == 4 && pos == [1, 2] {
            self.emit(node, Op::Mean, vec![t], &mean_out, perm, None)?;
        } else {
            let pre: usize = internal[..start].iter().product();
            let red: usize = internal[start..end].iter().product();
            let post: usize = internal[end..].iter().product();
            let name = node_name(node);
            let as4 = self.graph.add_node(
                name,
                Op::Reshape,
                vec![t],
                format!("{out}/as4d"),
                Some(&[pre, red, 1, post]),
            )?;
            let mean = self.graph.add_node(name, Op::Mean, vec![as4], format!("{out}/mean4d"), None)?;
            let to = permute(&kept_shape, &perm);
            self.emit(node, Op::Reshape, vec![mean], &mean_out, perm, Some(&to))?;
        }
        if !keepdims {
            let to = self.facts.shape(out)?.to_vec();
            self.reshape(node, &mean_out, out, &to)?;
        }
        Ok(())
    }

    fn reshape(&mut self, node: &NodeProto, x: &str, out: &str, to: &[usize]) -> Result<()> {
        let act = self.act(x)?;
        if act.shape == to {
            self.vals.insert(out.to_string(), Val::Act(act));
            return Ok(());
        }
        let ordered = act.layouts.iter().find(|(p, _)| keeps_order(&act.shape, p)).map(|(_, t)| *t);
        let t = match ordered {
            Some(t) => t,
            None => self.layout(node, x, &identity(act.shape.len()))?,
        };
        self.emit(node, Op::Reshape, vec![t], out, identity(to.len()), Some(to))
    }

    fn transpose(&mut self, node: &NodeProto) -> Result<()> {
        let act = self.act(&node.input[0])?;
        let rank = act.shape.len();
        let perm: Vec<usize> = match node.ints("perm") {
            Some(p) => p.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_>>()?,
            None => (0..rank).rev().collect(),
        };
        ensure!(
            crate::graph::is_permutation(&perm, rank),
            "perm {perm:?} is not a permutation of {rank} axes"
        );
        let inv = inverse(&perm);
        let shape = permute(&act.shape, &perm);
        let layouts = act.layouts.iter().map(|(p, t)| (p.iter().map(|&a| inv[a]).collect(), *t)).collect();
        self.vals.insert(node.output[0].clone(), Val::Act(Act { shape, layouts }));
        Ok(())
    }

    fn concat(&mut self, node: &NodeProto) -> Result<()> {
        let names: Vec<&str> = node.input.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        let rank = self.facts.shape(&node.output[0])?.len();
        let axis = norm_axis(node.attr("axis").context("axis is required")?.i, rank)?;
        let perm = self.common_perm(&names)?;
        let mut inputs = Vec::new();
        for name in &names {
            if self.is_const(name) {
                let k = self.konst(name)?;
                inputs.push(self.add_const(
                    format!("{name}/perm"),
                    permute(&k.shape, &perm),
                    transpose_data(&k.data, &k.shape, &perm),
                ));
            } else {
                inputs.push(self.layout(node, name, &perm)?);
            }
        }
        let internal_axis = inverse(&perm)[axis];
        self.emit(node, Op::Concat { axis: internal_axis }, inputs, &node.output[0], perm, None)
    }

    fn pad(&mut self, node: &NodeProto) -> Result<()> {
        let act = self.act(&node.input[0])?;
        let rank = act.shape.len();
        let (pads, value, axes) = if self.opset < 11 {
            (node.ints("pads").context("pads is required")?, node.float("value", 0.0), identity(rank))
        } else {
            let pads = self.ints(Self::opt_input(node, 1).context("pads input is required")?)?;
            let value = match Self::opt_input(node, 2) {
                Some(v) => *self.konst(v)?.data.first().unwrap_or(&0.0),
                None => 0.0,
            };
            let axes = match Self::opt_input(node, 3) {
                Some(a) => self.ints(a)?.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_>>()?,
                None => identity(rank),
            };
            (pads, value, axes)
        };
        ensure!(pads.len() == 2 * axes.len(), "{} pads for {} axes", pads.len(), axes.len());
        ensure!(pads.iter().all(|&p| p >= 0), "negative pads {pads:?} (cropping) are unsupported");
        let mut logical = vec![[0usize; 2]; rank];
        for (i, &a) in axes.iter().enumerate() {
            logical[a] = [pads[i] as usize, pads[i + axes.len()] as usize];
        }
        let (perm, t) = act.layouts[0].clone();
        let internal = permute(&logical, &perm);
        self.emit(node, Op::Pad { pads: internal, value }, vec![t], &node.output[0], perm, None)
    }

    fn softmax(&mut self, node: &NodeProto) -> Result<()> {
        let (x, out) = (&node.input[0], &node.output[0]);
        let act = self.act(x)?;
        let rank = act.shape.len();
        let axis = norm_axis(node.int("axis", if self.opset < 13 { 1 } else { -1 }), rank)?;
        let inner: usize = act.shape[axis + 1..].iter().product();
        if self.opset < 13 && inner != 1 {
            let outer: usize = act.shape[..axis].iter().product();
            let flat = format!("{out}/2d");
            self.reshape(node, x, &flat, &[outer, act.shape[axis] * inner])?;
            let t = self.layout(node, &flat, &[0, 1])?;
            let soft = format!("{out}/softmax2d");
            self.emit(node, Op::Softmax { axis: 1 }, vec![t], &soft, vec![0, 1], None)?;
            return self.reshape(node, &soft, out, &act.shape);
        }
        let (perm, t) = act.layouts[0].clone();
        self.emit(node, Op::Softmax { axis: inverse(&perm)[axis] }, vec![t], out, perm, None)
    }

    /// A FullyConnected from activation `x` (read in logical order) with weights `w` [Cout,K] and `bias`.
    fn fully_connected(&mut self, node: &NodeProto, xt: TensorId, w: Konst, bias: Vec<f32>) -> Result<()> {
        let name = node_name(node);
        let wt = self.add_const(format!("{name}/weights"), w.shape, w.data);
        let bt = self.add_const(format!("{name}/bias"), vec![bias.len()], bias);
        let rank = self.graph.tensors[xt].shape.len();
        self.emit(
            node,
            Op::FullyConnected { act: Activation::None },
            vec![xt, wt, bt],
            &node.output[0],
            identity(rank),
            None,
        )
    }

    fn gemm(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(&node.input[0])?;
        ensure!(a.shape.len() == 2, "A must be 2-D, got {:?}", a.shape);
        let xt = if node.int("transA", 0) != 0 {
            self.layout(node, &node.input[0], &[1, 0])?
        } else {
            self.layout(node, &node.input[0], &[0, 1])?
        };
        let b = self.konst(&node.input[1])?;
        ensure!(b.shape.len() == 2, "B must be 2-D, got {:?}", b.shape);
        let (alpha, beta) = (node.float("alpha", 1.0), node.float("beta", 1.0));
        let w = if node.int("transB", 0) != 0 {
            Konst { data: b.data.iter().map(|v| v * alpha).collect(), shape: b.shape }
        } else {
            let data = transpose_data(&b.data, &b.shape, &[1, 0]);
            Konst { data: data.iter().map(|v| v * alpha).collect(), shape: vec![b.shape[1], b.shape[0]] }
        };
        let n = w.shape[0];
        let bias = match Self::opt_input(node, 2) {
            None => vec![0.0; n],
            Some(c) => {
                let c = self.konst(c)?;
                let per_row = c.shape.iter().rev().skip(1).all(|&d| d == 1);
                ensure!(
                    per_row,
                    "bias C of shape {:?} must be a vector of {n} values (one per output)",
                    c.shape
                );
                match c.data.len() {
                    1 => vec![c.data[0] * beta; n],
                    len if len == n => c.data.iter().map(|v| v * beta).collect(),
                    len => bail!("bias C has {len} values, expected {n}"),
                }
            }
        };
        self.fully_connected(node, xt, w, bias)
    }

    fn matmul(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(&node.input[0])?;
        let b = self.konst(&node.input[1])?;
        ensure!(
            b.shape.len() == 2,
            "only MatMul by a constant 2-D weight is supported, weight has shape {:?}",
            b.shape
        );
        ensure!(a.shape.len() >= 2, "input must have at least 2 axes, got {:?}", a.shape);
        let xt = self.layout(node, &node.input[0], &identity(a.shape.len()))?;
        let w =
            Konst { data: transpose_data(&b.data, &b.shape, &[1, 0]), shape: vec![b.shape[1], b.shape[0]] };
        let cout = w.shape[0];
        self.fully_connected(node, xt, w, vec![0.0; cout])
    }
}
