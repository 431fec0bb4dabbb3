//! Ember's float graph IR: the contract between the ONNX front end and the later stages.
//!
//! Every tensor has a fully concrete shape. 4-D activations touched by conv-like ops are NHWC;
//! weights are stored in the layouts documented on [`Op`]. Nodes are kept in topological order.

#[cfg(test)]
pub(crate) mod eval;

use std::fmt;

use anyhow::{bail, ensure, Context, Result};

/// Index of a tensor in `Graph::tensors`.
pub type TensorId = usize;

/// A float model: tensors, nodes in execution order, and its inputs and outputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    /// All tensors: activations and constants.
    pub tensors: Vec<Tensor>,
    /// Nodes in topological (execution) order.
    pub nodes: Vec<Node>,
    /// Graph inputs, in ONNX order.
    pub inputs: Vec<GraphIo>,
    /// Graph outputs, in ONNX order.
    pub outputs: Vec<GraphIo>,
}

/// A tensor: an activation (`data == None`) or a constant.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Name, derived from the ONNX tensor it represents.
    pub name: String,
    /// Concrete shape (internal layout).
    pub shape: Vec<usize>,
    /// Row-major values for constants; `None` for activations.
    pub data: Option<Vec<f32>>,
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Name of the ONNX node it came from.
    pub name: String,
    /// The operation and its parameters.
    pub op: Op,
    /// Input tensors, in the order documented on [`Op`].
    pub inputs: Vec<TensorId>,
    /// Output tensors (one for every op today).
    pub outputs: Vec<TensorId>,
    /// Index of the source model's operator it came from (`ember::format::meta::NO_SOURCE`
    /// until the importer sets it).
    pub source: u32,
}

/// A graph input or output and how its internal layout relates to the ONNX one.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphIo {
    /// The internal tensor.
    pub tensor: TensorId,
    /// ONNX name.
    pub name: String,
    /// Shape the user sees (ONNX layout).
    pub onnx_shape: Vec<usize>,
    /// internal = transpose(onnx, perm); identity if unchanged.
    pub perm: Vec<usize>,
}

/// Activation fused into a producing op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// No activation.
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, min), max); Relu6 is `Clip { min: 0, max: 6 }`.
    Clip { min: f32, max: f32 },
}

/// Geometry of a 2-D convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// Stride along H and W.
    pub stride: [usize; 2],
    /// Dilation along H and W.
    pub dilation: [usize; 2],
    /// Zero padding: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Fused activation.
    pub act: Activation,
}

/// Operations, with their input layouts.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// x [N,H,W,Cin], w [Cout,KH,KW,Cin], bias [Cout] -> [N,OH,OW,Cout].
    Conv2d(Conv),
    /// x [N,H,W,C], w [1,KH,KW,C*mult], bias [C*mult] -> [N,OH,OW,C*mult].
    DepthwiseConv2d(Conv),
    /// x [..,K] (rows = product of leading dims), w [Cout,K], bias [Cout] -> [..,Cout].
    FullyConnected { act: Activation },
    /// Elementwise sum with numpy broadcasting; both inputs have the same rank.
    Add { act: Activation },
    /// Elementwise product with numpy broadcasting; both inputs have the same rank.
    Mul { act: Activation },
    /// max(x, 0).
    Relu,
    /// min(max(x, min), max).
    Clip { min: f32, max: f32 },
    /// x if x >= 0 else alpha * x.
    LeakyRelu { alpha: f32 },
    /// x * relu6(x + 3) / 6.
    HardSwish,
    /// max(0, min(1, alpha * x + beta)).
    HardSigmoid { alpha: f32, beta: f32 },
    /// 1 / (1 + exp(-x)).
    Sigmoid,
    /// tanh(x).
    Tanh,
    /// Max over windows of NHWC x; padded cells are ignored.
    MaxPool { kernel: [usize; 2], stride: [usize; 2], pads: [usize; 4] },
    /// Mean over windows of NHWC x; padded cells are excluded from the count.
    AveragePool { kernel: [usize; 2], stride: [usize; 2], pads: [usize; 4] },
    /// Mean over H and W: [N,H,W,C] -> [N,1,1,C].
    Mean,
    /// Same elements, new shape (the output tensor's).
    Reshape,
    /// Concatenation of all inputs along `axis`.
    Concat { axis: usize },
    /// Constant padding, (before, after) per axis.
    Pad { pads: Vec<[usize; 2]>, value: f32 },
    /// out.shape[i] = in.shape[perm[i]].
    Transpose { perm: Vec<usize> },
    /// Softmax along `axis`.
    Softmax { axis: usize },
}

impl Activation {
    /// Applies the activation to one value.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Clip { min, max } => x.max(min).min(max),
        }
    }
}

impl Op {
    /// Short op name, as printed by `Display`.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "Conv2d",
            Op::DepthwiseConv2d(_) => "DepthwiseConv2d",
            Op::FullyConnected { .. } => "FullyConnected",
            Op::Add { .. } => "Add",
            Op::Mul { .. } => "Mul",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::HardSwish => "HardSwish",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::MaxPool { .. } => "MaxPool",
            Op::AveragePool { .. } => "AveragePool",
            Op::Mean => "Mean",
            Op::Reshape => "Reshape",
            Op::Concat { .. } => "Concat",
            Op::Pad { .. } => "Pad",
            Op::Transpose { .. } => "Transpose",
            Op::Softmax { .. } => "Softmax",
        }
    }

    /// The fused activation of ops that carry one.
    pub fn act(&self) -> Option<Activation> {
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => Some(c.act),
            Op::FullyConnected { act } | Op::Add { act } | Op::Mul { act } => Some(*act),
            _ => None,
        }
    }

    /// Mutable access to the fused activation of ops that carry one.
    pub fn act_mut(&mut self) -> Option<&mut Activation> {
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => Some(&mut c.act),
            Op::FullyConnected { act } | Op::Add { act } | Op::Mul { act } => Some(act),
            _ => None,
        }
    }

    /// Output shape for the given input shapes; `reshape_to` is the target of `Reshape`.
    pub fn output_shape(&self, inputs: &[&[usize]], reshape_to: Option<&[usize]>) -> Result<Vec<usize>> {
        let arity = match self {
            Op::Conv2d(_) | Op::DepthwiseConv2d(_) | Op::FullyConnected { .. } => Some(3),
            Op::Add { .. } | Op::Mul { .. } => Some(2),
            Op::Concat { .. } => None,
            _ => Some(1),
        };
        if let Some(n) = arity {
            ensure!(inputs.len() == n, "expected {n} inputs, got {}", inputs.len());
        }
        let x = inputs.first().copied().context("no input")?;
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
                let (w, b) = (inputs[1], inputs[2]);
                ensure!(x.len() == 4, "input must be NHWC (rank 4), got {x:?}");
                ensure!(w.len() == 4, "weights must be rank 4, got {w:?}");
                let cout = if matches!(self, Op::Conv2d(_)) {
                    ensure!(
                        w[3] == x[3],
                        "weights {w:?} expect {} input channels, input {x:?} has {}",
                        w[3],
                        x[3]
                    );
                    w[0]
                } else {
                    ensure!(w[0] == 1, "depthwise weights must be [1,KH,KW,C*mult], got {w:?}");
                    ensure!(
                        x[3] > 0 && w[3] % x[3] == 0,
                        "depthwise weights {w:?} are not a multiple of the {} input channels",
                        x[3]
                    );
                    w[3]
                };
                ensure!(b == [cout], "bias must be [{cout}], got {b:?}");
                let oh = window_out(x[1], w[1], c.stride[0], c.dilation[0], c.pads[0] + c.pads[2])?;
                let ow = window_out(x[2], w[2], c.stride[1], c.dilation[1], c.pads[1] + c.pads[3])?;
                Ok(vec![x[0], oh, ow, cout])
            }
            Op::FullyConnected { .. } => {
                let (w, b) = (inputs[1], inputs[2]);
                ensure!(w.len() == 2, "weights must be [Cout,K], got {w:?}");
                ensure!(x.last() == Some(&w[1]), "input {x:?} must end with K = {}", w[1]);
                ensure!(b == [w[0]], "bias must be [{}], got {b:?}", w[0]);
                let mut out = x.to_vec();
                *out.last_mut().expect("non-empty") = w[0];
                Ok(out)
            }
            Op::Add { .. } | Op::Mul { .. } => broadcast(x, inputs[1]),
            Op::Relu
            | Op::Clip { .. }
            | Op::LeakyRelu { .. }
            | Op::HardSwish
            | Op::HardSigmoid { .. }
            | Op::Sigmoid
            | Op::Tanh => Ok(x.to_vec()),
            Op::MaxPool { kernel, stride, pads } | Op::AveragePool { kernel, stride, pads } => {
                ensure!(x.len() == 4, "input must be NHWC (rank 4), got {x:?}");
                ensure!(
                    pads[0] < kernel[0] && pads[2] < kernel[0] && pads[1] < kernel[1] && pads[3] < kernel[1],
                    "pads {pads:?} must be smaller than the kernel {kernel:?}"
                );
                let oh = window_out(x[1], kernel[0], stride[0], 1, pads[0] + pads[2])?;
                let ow = window_out(x[2], kernel[1], stride[1], 1, pads[1] + pads[3])?;
                Ok(vec![x[0], oh, ow, x[3]])
            }
            Op::Mean => {
                ensure!(x.len() == 4, "input must be NHWC (rank 4), got {x:?}");
                Ok(vec![x[0], 1, 1, x[3]])
            }
            Op::Reshape => {
                let to = reshape_to.context("reshape needs its output shape")?;
                let (n_in, n_out) = (x.iter().product::<usize>(), to.iter().product::<usize>());
                ensure!(n_in == n_out, "cannot reshape {x:?} ({n_in} elements) to {to:?} ({n_out} elements)");
                Ok(to.to_vec())
            }
            Op::Concat { axis } => {
                ensure!(*axis < x.len(), "axis {axis} out of range for rank {}", x.len());
                let mut out = x.to_vec();
                for s in &inputs[1..] {
                    ensure!(s.len() == x.len(), "all inputs must have rank {}, got {s:?}", x.len());
                    for (i, (&a, &b)) in x.iter().zip(s.iter()).enumerate() {
                        ensure!(i == *axis || a == b, "input {s:?} differs from {x:?} outside axis {axis}");
                    }
                    out[*axis] += s[*axis];
                }
                Ok(out)
            }
            Op::Pad { pads, .. } => {
                ensure!(pads.len() == x.len(), "{} pad pairs for rank {}", pads.len(), x.len());
                Ok(x.iter().zip(pads).map(|(d, [b, a])| d + b + a).collect())
            }
            Op::Transpose { perm } => {
                ensure!(
                    is_permutation(perm, x.len()),
                    "perm {perm:?} is not a permutation of rank {}",
                    x.len()
                );
                Ok(perm.iter().map(|&p| x[p]).collect())
            }
            Op::Softmax { axis } => {
                ensure!(*axis < x.len(), "axis {axis} out of range for rank {}", x.len());
                Ok(x.to_vec())
            }
        }
    }
}

/// Output length of a sliding window along one axis.
fn window_out(input: usize, kernel: usize, stride: usize, dilation: usize, pads: usize) -> Result<usize> {
    ensure!(kernel > 0 && stride > 0 && dilation > 0, "kernel, stride and dilation must be positive");
    let span = (kernel - 1) * dilation + 1;
    ensure!(input + pads >= span, "window {span} larger than padded input {}", input + pads);
    Ok((input + pads - span) / stride + 1)
}

/// Numpy broadcast of two shapes of the same rank.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    ensure!(a.len() == b.len(), "inputs must have the same rank, got {a:?} and {b:?}");
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (1, _) => Ok(y),
            (_, 1) => Ok(x),
            _ => bail!("shapes {a:?} and {b:?} do not broadcast"),
        })
        .collect()
}

/// True if `perm` is a permutation of `0..rank`.
pub fn is_permutation(perm: &[usize], rank: usize) -> bool {
    let mut seen = vec![false; rank];
    perm.len() == rank && perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true))
}

impl Graph {
    /// Adds a tensor and returns its id.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Option<Vec<f32>>,
    ) -> TensorId {
        self.tensors.push(Tensor { name: name.into(), shape, data });
        self.tensors.len() - 1
    }

    /// Appends a node computing a new activation tensor named `out_name`; returns the tensor.
    pub fn add_node(
        &mut self,
        name: &str,
        op: Op,
        inputs: Vec<TensorId>,
        out_name: impl Into<String>,
        reshape_to: Option<&[usize]>,
    ) -> Result<TensorId> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&t| self.tensors[t].shape.as_slice()).collect();
        let shape = op
            .output_shape(&shapes, reshape_to)
            .with_context(|| format!("node '{name}' ({}): inputs {shapes:?}", op.kind()))?;
        let out = self.add_tensor(out_name, shape, None);
        let source = ember::format::meta::NO_SOURCE;
        self.nodes.push(Node { name: name.to_string(), op, inputs, outputs: vec![out], source });
        Ok(out)
    }

    /// Number of uses of every tensor as a node input or graph output.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.tensors.len()];
        self.nodes.iter().flat_map(|n| &n.inputs).for_each(|&t| uses[t] += 1);
        self.outputs.iter().for_each(|o| uses[o.tensor] += 1);
        uses
    }

    /// Index of the node producing every tensor, if any.
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut producer = vec![None; self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            n.outputs.iter().for_each(|&t| producer[t] = Some(i));
        }
        producer
    }

    /// Drops tensors no node or graph io refers to, renumbering the rest.
    pub fn compact(&mut self) {
        let mut used = vec![false; self.tensors.len()];
        for n in &self.nodes {
            n.inputs.iter().chain(&n.outputs).for_each(|&t| used[t] = true);
        }
        self.inputs.iter().chain(&self.outputs).for_each(|io| used[io.tensor] = true);
        let mut remap = vec![usize::MAX; self.tensors.len()];
        let mut kept = Vec::new();
        for (i, t) in std::mem::take(&mut self.tensors).into_iter().enumerate() {
            if used[i] {
                remap[i] = kept.len();
                kept.push(t);
            }
        }
        self.tensors = kept;
        for n in &mut self.nodes {
            n.inputs.iter_mut().chain(n.outputs.iter_mut()).for_each(|t| *t = remap[*t]);
        }
        self.inputs.iter_mut().chain(self.outputs.iter_mut()).for_each(|io| io.tensor = remap[io.tensor]);
    }

    /// Number of nodes of every op kind, sorted by kind.
    pub fn op_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        self.nodes.iter().for_each(|n| *counts.entry(n.op.kind()).or_insert(0) += 1);
        counts.into_iter().collect()
    }

    /// Checks ids, topological order, constant sizes and every node's output shape.
    pub fn validate(&self) -> Result<()> {
        let n_tensors = self.tensors.len();
        for t in &self.tensors {
            if let Some(d) = &t.data {
                let n: usize = t.shape.iter().product();
                ensure!(
                    d.len() == n,
                    "constant '{}' has {} values for shape {:?} ({n} expected)",
                    t.name,
                    d.len(),
                    t.shape
                );
            }
        }
        let mut ready: Vec<bool> = self.tensors.iter().map(|t| t.data.is_some()).collect();
        for io in &self.inputs {
            ensure!(
                io.tensor < n_tensors,
                "graph input '{}' refers to missing tensor {}",
                io.name,
                io.tensor
            );
            check_io(io, &self.tensors[io.tensor].shape)?;
            ready[io.tensor] = true;
        }
        for n in &self.nodes {
            let ctx = || format!("node '{}' ({})", n.name, n.op.kind());
            ensure!(n.outputs.len() == 1, "{}: expected 1 output, got {}", ctx(), n.outputs.len());
            for &t in n.inputs.iter().chain(&n.outputs) {
                ensure!(t < n_tensors, "{}: refers to missing tensor {t}", ctx());
            }
            for &t in &n.inputs {
                ensure!(ready[t], "{}: input '{}' is not computed before use", ctx(), self.tensors[t].name);
            }
            if matches!(n.op, Op::Conv2d(_) | Op::DepthwiseConv2d(_) | Op::FullyConnected { .. }) {
                for &t in &n.inputs[1..] {
                    ensure!(
                        self.tensors[t].data.is_some(),
                        "{}: weights/bias '{}' must be constant",
                        ctx(),
                        self.tensors[t].name
                    );
                }
            }
            let out = &self.tensors[n.outputs[0]];
            ensure!(!ready[n.outputs[0]], "{}: output '{}' is already defined", ctx(), out.name);
            let shapes: Vec<&[usize]> = n.inputs.iter().map(|&t| self.tensors[t].shape.as_slice()).collect();
            let expected =
                n.op.output_shape(&shapes, Some(&out.shape))
                    .with_context(|| format!("{}: inputs {shapes:?}", ctx()))?;
            ensure!(
                expected == out.shape,
                "{}: output '{}' has shape {:?}, expected {expected:?}",
                ctx(),
                out.name,
                out.shape
            );
            ready[n.outputs[0]] = true;
        }
        for io in &self.outputs {
            ensure!(
                io.tensor < n_tensors,
                "graph output '{}' refers to missing tensor {}",
                io.name,
                io.tensor
            );
            ensure!(ready[io.tensor], "graph output '{}' is never computed", io.name);
            check_io(io, &self.tensors[io.tensor].shape)?;
        }
        Ok(())
    }
}

/// Checks that a graph io's perm maps its ONNX shape onto the internal one.
fn check_io(io: &GraphIo, internal: &[usize]) -> Result<()> {
    ensure!(
        is_permutation(&io.perm, io.onnx_shape.len()),
        "'{}': perm {:?} is not a permutation of rank {}",
        io.name,
        io.perm,
        io.onnx_shape.len()
    );
    let permuted: Vec<usize> = io.perm.iter().map(|&p| io.onnx_shape[p]).collect();
    ensure!(
        permuted == internal,
        "'{}': ONNX shape {:?} transposed by {:?} is {permuted:?}, but the tensor is {internal:?}",
        io.name,
        io.onnx_shape,
        io.perm
    );
    Ok(())
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::None => Ok(()),
            Activation::Relu => write!(f, " +relu"),
            Activation::Clip { min, max } => write!(f, " +clip({min},{max})"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())?;
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
                write!(f, "(stride={:?} dilation={:?} pads={:?}){}", c.stride, c.dilation, c.pads, c.act)
            }
            Op::FullyConnected { act } | Op::Add { act } | Op::Mul { act } => write!(f, "{act}"),
            Op::Clip { min, max } => write!(f, "({min},{max})"),
            Op::LeakyRelu { alpha } => write!(f, "({alpha})"),
            Op::HardSigmoid { alpha, beta } => write!(f, "({alpha},{beta})"),
            Op::MaxPool { kernel, stride, pads } | Op::AveragePool { kernel, stride, pads } => {
                write!(f, "(kernel={kernel:?} stride={stride:?} pads={pads:?})")
            }
            Op::Concat { axis } | Op::Softmax { axis } => write!(f, "(axis={axis})"),
            Op::Pad { pads, value } => write!(f, "(pads={pads:?} value={value})"),
            Op::Transpose { perm } => write!(f, "(perm={perm:?})"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let desc = |t: TensorId| {
            let t = &self.tensors[t];
            let kind = if t.data.is_some() { "const " } else { "" };
            format!("{kind}{}{:?}", t.name, t.shape)
        };
        for io in &self.inputs {
            writeln!(f, "input  {} (onnx {:?}, perm {:?})", desc(io.tensor), io.onnx_shape, io.perm)?;
        }
        for n in &self.nodes {
            let ins: Vec<String> = n.inputs.iter().map(|&t| desc(t)).collect();
            let outs: Vec<String> = n.outputs.iter().map(|&t| desc(t)).collect();
            writeln!(f, "{} '{}': {} -> {}", n.op, n.name, ins.join(", "), outs.join(", "))?;
        }
        for io in &self.outputs {
            writeln!(f, "output {} (onnx {:?}, perm {:?})", desc(io.tensor), io.onnx_shape, io.perm)?;
        }
        Ok(())
    }
}
