//! Lowers the float graph IR to Ember model records at a chosen precision.
//!
//! One IR node becomes one Ember op, in the same order, so calibration can map op outputs
//! back to IR tensors (a mixed model adds `quantize`/`dequantize` ops between its int8 and
//! float nodes). int8 lowering computes every requantization factor here, offline.

use anyhow::{bail, Context, Result};
use ember::format::params::{
    AddParams, ConcatParams, ConvParams, FullyConnectedParams, FusedAct, MeanParams, MulParams, NoParams,
    PadParams, PoolParams, SoftmaxParams, TransposeParams, UnaryParams,
};
use ember::format::writer::{IoDesc, ModelBuilder, Quant};
use ember::format::{DType, OpKind, MAX_RANK};
use ember::kernels::activation::UnaryF32;
use ember::kernels::{add, mul, softmax, ClampI8};
use ember::quant::{build_table, Requant};

use crate::graph::{Activation, Graph, GraphIo, Node, Op, TensorId};
use crate::quantize::{quantize_bias, quantize_weights, weight_axis, Granularity, QParams};

/// Numeric precision of a written model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    /// int8 weights and activations (TFLite spec).
    Int8,
    /// f16 weights, f32 activations.
    F16,
    /// f32 everywhere (the reference).
    F32,
}

/// A lowered model and how it maps back to the IR.
pub struct Emitted {
    /// The model records, not yet planned.
    pub builder: ModelBuilder,
    /// IR tensor each Ember op writes, in op order (a `quantize`/`dequantize` op writes a copy
    /// of the tensor it converts).
    pub op_outputs: Vec<TensorId>,
}

/// Lowers `graph`; `qparams` (one per IR tensor) is required for int8, whose weights get scales
/// at `weights` granularity.
pub fn emit(
    graph: &Graph,
    precision: Precision,
    qparams: Option<&[Option<QParams>]>,
    weights: Granularity,
) -> Result<Emitted> {
    emit_mixed(graph, precision, qparams, weights, &[])
}

/// As [`emit`], except that for int8 the nodes marked in `float_nodes` (one flag per node) run
/// in float with f16 weights: a `dequantize` op precedes a float node's int8 inputs and a
/// `quantize` op follows a float result an int8 node reads. Model inputs and outputs are f32
/// where only float nodes touch them.
pub fn emit_mixed(
    graph: &Graph,
    precision: Precision,
    qparams: Option<&[Option<QParams>]>,
    weights: Granularity,
    float_nodes: &[bool],
) -> Result<Emitted> {
    let int8 = precision == Precision::Int8;
    let mut e = Emitter {
        graph,
        precision,
        qparams,
        weights,
        b: ModelBuilder::new(),
        int8,
        ids: [vec![None; graph.tensors.len()], vec![None; graph.tensors.len()]],
        home: vec![None; graph.tensors.len()],
        op_outputs: Vec::with_capacity(graph.nodes.len()),
    };
    let is_float = |i: usize| float_nodes.get(i).copied().unwrap_or(false);
    for io in &graph.inputs {
        let mut readers = graph.nodes.iter().enumerate().filter(|(_, n)| n.inputs.contains(&io.tensor));
        e.int8 = int8 && !readers.all(|(i, _)| is_float(i));
        let t = e.activation(io.tensor)?;
        e.b.input(io_desc(io, t));
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        e.int8 = int8 && !is_float(i);
        let first = e.b.op_count();
        e.node(node).with_context(|| format!("node '{}' ({})", node.name, node.op.kind()))?;
        for op in first..e.b.op_count() {
            e.b.set_op_source(op as u16, node.source);
        }
        e.op_outputs.push(node.outputs[0]);
    }
    for io in &graph.outputs {
        let t = e.home[io.tensor].context("graph output is not computed by any node")?;
        e.b.output(io_desc(io, t));
    }
    Ok(Emitted { builder: e.b, op_outputs: e.op_outputs })
}

/// The descriptor of a graph input or output; names are cut to the format's 60 bytes.
fn io_desc(io: &GraphIo, tensor: u16) -> IoDesc {
    let mut name = io.name.clone();
    while name.len() > 60 {
        name.pop();
    }
    IoDesc { tensor, name, onnx_shape: io.onnx_shape.clone(), perm: io.perm.clone() }
}

struct Emitter<'g> {
    graph: &'g Graph,
    precision: Precision,
    qparams: Option<&'g [Option<QParams>]>,
    weights: Granularity,
    b: ModelBuilder,
    /// Whether the node being lowered computes in int8.
    int8: bool,
    /// The Ember tensor of each IR tensor in float (`[0]`) and in int8 (`[1]`), once made.
    ids: [Vec<Option<u16>>; 2],
    /// The Ember tensor of each IR activation in its producer's precision.
    home: Vec<Option<u16>>,
    /// IR tensor each Ember op writes, in op order.
    op_outputs: Vec<TensorId>,
}

impl Emitter<'_> {
    fn int8(&self) -> bool {
        self.int8
    }

    /// The weights of the node being lowered: int8, or the model's float type (f16 weights
    /// for float nodes of a mixed model).
    fn weight_precision(&self) -> Precision {
        match self.precision {
            Precision::Int8 if !self.int8 => Precision::F16,
            p => p,
        }
    }

    fn shape(&self, t: TensorId) -> &[usize] {
        &self.graph.tensors[t].shape
    }

    fn data(&self, t: TensorId) -> Result<&[f32]> {
        self.graph.tensors[t]
            .data
            .as_deref()
            .with_context(|| format!("'{}' must be a constant", self.graph.tensors[t].name))
    }

    fn q(&self, t: TensorId) -> Result<QParams> {
        self.qparams
            .and_then(|q| q[t])
            .with_context(|| format!("no quantization for tensor '{}'", self.graph.tensors[t].name))
    }

    /// The Ember tensor of an IR activation in the current node's precision: created on first
    /// use, or converted (`quantize`/`dequantize`) from the other precision's.
    fn activation(&mut self, t: TensorId) -> Result<u16> {
        let int8 = self.int8();
        if let Some(id) = self.ids[usize::from(int8)][t] {
            return Ok(id);
        }
        let shape = self.graph.tensors[t].shape.clone();
        let id = if int8 {
            let q = self.q(t)?;
            let quant = Quant::PerTensor { scale: q.scale, zero_point: q.zero_point };
            self.b.activation(DType::I8, &shape, Some(&quant))?
        } else {
            self.b.activation(DType::F32, &shape, None)?
        };
        match self.ids[usize::from(!int8)][t] {
            Some(other) => {
                let kind = if int8 { OpKind::Quantize } else { OpKind::Dequantize };
                self.b.op(kind, &[other], &[id], &NoParams)?;
                self.op_outputs.push(t);
            }
            None => self.home[t] = Some(id),
        }
        self.ids[usize::from(int8)][t] = Some(id);
        Ok(id)
    }

    /// An operand that may be an activation or a constant (quantized per tensor in int8).
    fn operand(&mut self, t: TensorId, own_range: bool) -> Result<u16> {
        if self.graph.tensors[t].data.is_none() {
            return self.activation(t);
        }
        let int8 = self.int8();
        if let Some(id) = self.ids[usize::from(int8)][t] {
            return Ok(id);
        }
        let shape = self.shape(t).to_vec();
        let data = self.data(t)?.to_vec();
        let id = if int8 {
            let q = match self.qparams.and_then(|q| q[t]) {
                Some(q) if !own_range => q,
                _ => QParams::covering(&data),
            };
            let values: Vec<i8> = data.iter().map(|&x| q.quantize(x)).collect();
            let quant = Quant::PerTensor { scale: q.scale, zero_point: q.zero_point };
            self.b.constant_of(DType::I8, &shape, &values, Some(&quant))?
        } else {
            self.b.constant_of(DType::F32, &shape, &data, None)?
        };
        self.ids[usize::from(int8)][t] = Some(id);
        Ok(id)
    }

    fn fused(&self, act: Activation, out: TensorId) -> Result<FusedAct> {
        let (min, max) = match act {
            Activation::None => return Ok(FusedAct::NONE),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Clip { min, max } => (min, max),
        };
        let (qmin, qmax) = if self.int8() {
            let q = self.q(out)?;
            let bound = |v: f32| {
                if v.is_infinite() {
                    if v > 0.0 {
                        127
                    } else {
                        -128
                    }
                } else {
                    q.quantize(v) as i32
                }
            };
            (bound(min), bound(max))
        } else {
            (-128, 127)
        };
        Ok(FusedAct { min, max, qmin, qmax })
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        let out_t = node.outputs[0];
        let x_t = node.inputs[0];
        match &node.op {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
                let depthwise = matches!(node.op, Op::DepthwiseConv2d(_));
                let p = ConvParams {
                    stride: c.stride.map(|v| v as u32),
                    dilation: c.dilation.map(|v| v as u32),
                    pad: c.pads.map(|v| v as u32),
                    act: self.fused(c.act, out_t)?,
                };
                let kind = if depthwise { OpKind::DepthwiseConv2d } else { OpKind::Conv2d };
                self.weighted(node, kind, &p)
            }
            Op::FullyConnected { act } => {
                let p = FullyConnectedParams { act: self.fused(*act, out_t)? };
                self.weighted(node, OpKind::FullyConnected, &p)
            }
            Op::Add { act } | Op::Mul { act } => {
                let is_add = matches!(node.op, Op::Add { .. });
                let a = self.operand(node.inputs[0], true)?;
                let b = self.operand(node.inputs[1], true)?;
                let y = self.activation(out_t)?;
                let fused = self.fused(*act, out_t)?;
                let kind = if is_add { OpKind::Add } else { OpKind::Mul };
                if self.int8() {
                    let qa = self.operand_q(node.inputs[0])?;
                    let qb = self.operand_q(node.inputs[1])?;
                    let qy = self.q(out_t)?;
                    let clamp = ClampI8 { min: fused.qmin, max: fused.qmax };
                    if is_add {
                        let k = add::AddParams::new(
                            qa.scale,
                            qa.zero_point,
                            qb.scale,
                            qb.zero_point,
                            qy.scale,
                            qy.zero_point,
                            clamp,
                        );
                        let p = AddParams {
                            act: fused,
                            left_shift: k.left_shift,
                            a: k.a,
                            b: k.b,
                            output: k.output,
                        };
                        self.b.op(kind, &[a, b], &[y], &p)?;
                    } else {
                        let k = mul::MulParams::new(
                            qa.scale,
                            qa.zero_point,
                            qb.scale,
                            qb.zero_point,
                            qy.scale,
                            qy.zero_point,
                            clamp,
                        );
                        self.b.op(kind, &[a, b], &[y], &MulParams { act: fused, output: k.output })?;
                    }
                } else if is_add {
                    let p = AddParams {
                        act: fused,
                        left_shift: 0,
                        a: Requant::default(),
                        b: Requant::default(),
                        output: Requant::default(),
                    };
                    self.b.op(kind, &[a, b], &[y], &p)?;
                } else {
                    self.b.op(kind, &[a, b], &[y], &MulParams { act: fused, output: Requant::default() })?;
                }
                Ok(())
            }
            Op::Relu
            | Op::Clip { .. }
            | Op::LeakyRelu { .. }
            | Op::HardSwish
            | Op::HardSigmoid { .. }
            | Op::Sigmoid
            | Op::Tanh => {
                let (kind, f, p) = unary(&node.op).context("not a unary op")?;
                let x = self.activation(x_t)?;
                let y = self.activation(out_t)?;
                if self.int8() {
                    let (qx, qy) = (self.q(x_t)?, self.q(out_t)?);
                    let table =
                        build_table(|v| f.apply_f64(v), qx.scale, qx.zero_point, qy.scale, qy.zero_point);
                    let table = self.b.constant_of(DType::I8, &[256], &table, None)?;
                    self.b.op(kind, &[x, table], &[y], &p)?;
                } else {
                    self.b.op(kind, &[x], &[y], &p)?;
                }
                Ok(())
            }
            Op::MaxPool { kernel, stride, pads } | Op::AveragePool { kernel, stride, pads } => {
                let kind =
                    if matches!(node.op, Op::MaxPool { .. }) { OpKind::MaxPool } else { OpKind::AveragePool };
                let p = PoolParams {
                    kernel: kernel.map(|v| v as u32),
                    stride: stride.map(|v| v as u32),
                    pad: pads.map(|v| v as u32),
                    act: FusedAct::NONE,
                };
                self.simple(kind, x_t, out_t, &p)
            }
            Op::Mean => {
                let count = self.shape(x_t)[1] * self.shape(x_t)[2];
                let requant = if self.int8() {
                    let (qx, qy) = (self.q(x_t)?, self.q(out_t)?);
                    Requant::from_f64(qx.scale as f64 / (qy.scale as f64 * count as f64))
                } else {
                    Requant::default()
                };
                self.simple(OpKind::Mean, x_t, out_t, &MeanParams { requant })
            }
            Op::Reshape => {
                let x = self.activation(x_t)?;
                let y = self.activation(out_t)?;
                self.b.alias(y, x);
                self.b.op(OpKind::Reshape, &[x], &[y], &NoParams)?;
                Ok(())
            }
            Op::Concat { axis } => {
                let inputs =
                    node.inputs.iter().map(|&t| self.operand(t, false)).collect::<Result<Vec<_>>>()?;
                let y = self.activation(out_t)?;
                self.b.op(OpKind::Concat, &inputs, &[y], &ConcatParams { axis: *axis as u32 })?;
                Ok(())
            }
            Op::Pad { pads, value } => {
                let mut p = PadParams { pads: [[0; 2]; MAX_RANK], value: *value, qvalue: 0 };
                for (dst, src) in p.pads.iter_mut().zip(pads) {
                    *dst = src.map(|v| v as u32);
                }
                if self.int8() {
                    p.qvalue = self.q(out_t)?.quantize(*value) as i32;
                }
                self.simple(OpKind::Pad, x_t, out_t, &p)
            }
            Op::Transpose { perm } => {
                let mut p = TransposeParams { perm: [0; MAX_RANK] };
                for (dst, &src) in p.perm.iter_mut().zip(perm) {
                    *dst = src as u32;
                }
                self.simple(OpKind::Transpose, x_t, out_t, &p)
            }
            Op::Softmax { axis } => {
                if *axis + 1 != self.shape(x_t).len() {
                    bail!(
                        "softmax over axis {axis} of {:?}: only the last axis is supported",
                        self.shape(x_t)
                    );
                }
                let mut p =
                    SoftmaxParams { beta: 1.0, input_multiplier: 0, input_left_shift: 0, diff_min: 0 };
                if self.int8() {
                    let k = softmax::SoftmaxParams::new(self.q(x_t)?.scale, 1.0);
                    p.input_multiplier = k.input_multiplier;
                    p.input_left_shift = k.input_left_shift;
                    p.diff_min = k.diff_min;
                }
                self.simple(OpKind::Softmax, x_t, out_t, &p)
            }
        }
    }

    /// Quantization of an operand: its own range for constants, calibrated for activations.
    fn operand_q(&self, t: TensorId) -> Result<QParams> {
        match &self.graph.tensors[t].data {
            None => self.q(t),
            Some(data) => Ok(QParams::covering(data)),
        }
    }

    fn simple<P: bytemuck::Pod>(
        &mut self,
        kind: OpKind,
        x_t: TensorId,
        out_t: TensorId,
        p: &P,
    ) -> Result<()> {
        let x = self.operand(x_t, false)?;
        let y = self.activation(out_t)?;
        self.b.op(kind, &[x], &[y], p)?;
        Ok(())
    }

    /// conv2d, depthwise_conv2d and fully_connected: weights quantized along their output
    /// channel axis, per channel or per tensor.
    fn weighted<P: bytemuck::Pod>(&mut self, node: &Node, kind: OpKind, p: &P) -> Result<()> {
        let (x_t, w_t, b_t, out_t) = (node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]);
        let x = self.activation(x_t)?;
        let y = self.activation(out_t)?;
        let w_shape = self.shape(w_t).to_vec();
        let w_data = self.data(w_t)?.to_vec();
        let bias = self.data(b_t)?.to_vec();
        let units = bias.len();
        let inputs = match self.weight_precision() {
            Precision::F32 => {
                let w = self.b.constant_of(DType::F32, &w_shape, &w_data, None)?;
                let b = self.b.constant_of(DType::F32, &[units], &bias, None)?;
                vec![x, w, b]
            }
            Precision::F16 => {
                let halves: Vec<half::f16> = w_data.iter().map(|&v| half::f16::from_f32(v)).collect();
                let w = self.b.constant_of(DType::F16, &w_shape, &halves, None)?;
                let b = self.b.constant_of(DType::F32, &[units], &bias, None)?;
                vec![x, w, b]
            }
            Precision::Int8 => {
                let (qx, qy) = (self.q(x_t)?, self.q(out_t)?);
                // The requant table carries in_scale × w_scale[c] / out_scale, all the kernels
                // need: weights and bias are stored without quantization records, which would
                // cost 16 bytes of flash per output channel and never be read.
                // Per tensor, one requant row serves every channel.
                let axis = weight_axis(&node.op).context("not a weighted op")?;
                let (wq, scales) = quantize_weights(&w_data, &w_shape, axis, self.weights);
                let w = self.b.constant_of(DType::I8, &w_shape, &wq, None)?;
                let bq = quantize_bias(&bias, qx.scale, &scales);
                let b = self.b.constant_of(DType::I32, &[units], &bq, None)?;
                let rows = if self.weights == Granularity::PerTensor { &scales[..1] } else { &scales[..] };
                let requant: Vec<Requant> = rows
                    .iter()
                    .map(|&s| Requant::from_f64(qx.scale as f64 * s as f64 / qy.scale as f64))
                    .collect();
                let r = self.b.constant_of(DType::I32, &[requant.len(), 2], &requant, None)?;
                vec![x, w, b, r]
            }
        };
        self.b.op(kind, &inputs, &[y], p)?;
        Ok(())
    }
}

/// The Ember kind, f32 function and parameters of a unary IR op.
fn unary(op: &Op) -> Option<(OpKind, UnaryF32, UnaryParams)> {
    let none = UnaryParams { a: 0.0, b: 0.0 };
    Some(match *op {
        Op::Relu => (OpKind::Relu, UnaryF32::Relu, none),
        Op::Clip { min, max } => (OpKind::Clip, UnaryF32::Clip { min, max }, UnaryParams { a: min, b: max }),
        Op::LeakyRelu { alpha } => {
            (OpKind::LeakyRelu, UnaryF32::LeakyRelu { alpha }, UnaryParams { a: alpha, b: 0.0 })
        }
        Op::HardSwish => (OpKind::HardSwish, UnaryF32::HardSwish, none),
        Op::HardSigmoid { alpha, beta } => {
            (OpKind::HardSigmoid, UnaryF32::HardSigmoid { alpha, beta }, UnaryParams { a: alpha, b: beta })
        }
        Op::Sigmoid => (OpKind::Sigmoid, UnaryF32::Sigmoid, none),
        Op::Tanh => (OpKind::Tanh, UnaryF32::Tanh, none),
        _ => return None,
    })
}
