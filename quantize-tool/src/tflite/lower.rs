//! TFLite int8 operators → Ember ops, keeping the model's own quantization: weights, int32
//! biases, scales and zero points are copied, and every fixed-point factor is derived from
//! them the way TFLite's reference kernels derive it (see docs/QUANTIZATION.md, "TFLite import").

use anyhow::{bail, ensure, Context, Result};
use ember::format::params::{
    AddParams, ConcatParams, ConvParams, FullyConnectedParams, FusedAct, MeanParams, MulParams, NoParams,
    PadParams, PoolParams, SoftmaxParams, UnaryParams,
};
use ember::format::writer::{IoDesc, ModelBuilder, Quant};
use ember::format::{DType, OpKind, MAX_RANK};
use ember::kernels::{add, mul, softmax, ClampI8};
use ember::quant::Requant;

use super::builtin;
use super::schema::{tensor_type, Operator, Subgraph, Tensor};
use super::tables;

/// Per-tensor int8 quantization of an activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Q {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
}

/// Lowers every operator of `graph` into a new model builder; each Ember op records the index
/// of the TFLite operator it came from.
pub fn lower(graph: &Subgraph) -> Result<ModelBuilder> {
    let mut l = Lowering { graph, b: ModelBuilder::new(), ids: vec![None; graph.tensors.len()] };
    let mut edges = vec![false; graph.operators.len()];
    for (i, op) in graph.operators.iter().enumerate() {
        edges[i] = l.edge(op)?;
    }
    for &t in &graph.inputs {
        let id = l.activation(l.source(t))?;
        l.b.input(io_desc(&graph.tensors[t], id));
    }
    for (i, op) in graph.operators.iter().enumerate() {
        if !edges[i] {
            let first = l.b.op_count();
            l.op(op).with_context(|| format!("operator {i} ({})", builtin::name(op.code)))?;
            for ember_op in first..l.b.op_count() {
                l.b.set_op_source(ember_op as u16, i as u32);
            }
        }
    }
    for &t in &graph.outputs {
        let id = l.ids[l.sink(t)]
            .with_context(|| format!("output '{}' is not computed by any operator", graph.tensors[t].name))?;
        l.b.output(io_desc(&graph.tensors[t], id));
    }
    Ok(l.b)
}

/// The descriptor of a model input or output (TFLite layout, so no permutation); names are
/// cut to the format's 60 bytes.
fn io_desc(t: &Tensor, id: u16) -> IoDesc {
    let mut name = t.name.clone();
    while name.len() > 60 {
        name.pop();
    }
    IoDesc { tensor: id, name, onnx_shape: t.shape.clone(), perm: (0..t.shape.len()).collect() }
}

struct Lowering<'g, 'a> {
    graph: &'g Subgraph<'a>,
    b: ModelBuilder,
    ids: Vec<Option<u16>>,
}

impl<'g, 'a> Lowering<'g, 'a> {
    fn tensor(&self, t: usize) -> &'g Tensor<'a> {
        &self.graph.tensors[t]
    }

    /// Whether `op` is a QUANTIZE of a float model input or a DEQUANTIZE to a float model
    /// output: the Ember model then takes or gives the int8 tensor, and its (de)quantizing
    /// input and output access does the conversion.
    fn edge(&self, op: &Operator) -> Result<bool> {
        let single = |v: &[Option<usize>]| v.first().copied().flatten().filter(|_| v.len() == 1);
        Ok(match op.code {
            builtin::QUANTIZE => {
                single(&op.inputs).is_some_and(|x| self.graph.inputs.contains(&x))
                    && self.tensor(op.outputs[0]).dtype == tensor_type::INT8
            }
            builtin::DEQUANTIZE => {
                op.outputs.len() == 1
                    && self.graph.outputs.contains(&op.outputs[0])
                    && single(&op.inputs).is_some_and(|x| self.tensor(x).dtype == tensor_type::INT8)
            }
            _ => false,
        })
    }

    /// The int8 tensor standing for model input `t` (past an edge QUANTIZE).
    fn source(&self, t: usize) -> usize {
        self.graph
            .operators
            .iter()
            .find(|op| op.code == builtin::QUANTIZE && op.inputs.first() == Some(&Some(t)))
            .map_or(t, |op| op.outputs[0])
    }

    /// The int8 tensor standing for model output `t` (before an edge DEQUANTIZE).
    fn sink(&self, t: usize) -> usize {
        self.graph
            .operators
            .iter()
            .find(|op| op.code == builtin::DEQUANTIZE && op.outputs.first() == Some(&t))
            .and_then(|op| op.inputs.first().copied().flatten())
            .unwrap_or(t)
    }

    /// The per-tensor int8 quantization of tensor `t`.
    fn q(&self, t: usize) -> Result<Q> {
        let tensor = self.tensor(t);
        ensure!(
            tensor.dtype == tensor_type::INT8,
            "tensor '{}' has type {} where int8 (9) is needed: only int8 models import",
            tensor.name,
            tensor.dtype
        );
        let q = tensor
            .quant
            .as_ref()
            .with_context(|| format!("int8 tensor '{}' has no quantization", tensor.name))?;
        ensure!(
            q.scales.len() == 1 && q.zero_points.len() <= 1,
            "tensor '{}' has {} scales where one (per-tensor quantization) is needed",
            tensor.name,
            q.scales.len()
        );
        let zero_point = q.zero_points.first().copied().unwrap_or(0);
        ensure!(
            (-128..=127).contains(&zero_point) && q.scales[0].is_finite() && q.scales[0] > 0.0,
            "tensor '{}' has scale {} and zero point {zero_point}: a positive finite scale and a zero point in -128..=127 are needed",
            tensor.name,
            q.scales[0]
        );
        Ok(Q { scale: q.scales[0], zero_point: zero_point as i32 })
    }

    /// Input `i` of `op` (present).
    fn input(&self, op: &Operator, i: usize) -> Result<usize> {
        op.inputs.get(i).copied().flatten().with_context(|| format!("input {i} is missing"))
    }

    /// The Ember tensor of TFLite tensor `t`: an int8 activation, or an int8 constant.
    fn activation(&mut self, t: usize) -> Result<u16> {
        if let Some(id) = self.ids[t] {
            return Ok(id);
        }
        let q = self.q(t)?;
        let quant = Quant::PerTensor { scale: q.scale, zero_point: q.zero_point };
        let tensor = self.tensor(t);
        let id = match tensor.data {
            Some(data) => self.b.constant(DType::I8, &tensor.shape.clone(), data, Some(&quant))?,
            None => self.b.activation(DType::I8, &tensor.shape.clone(), Some(&quant))?,
        };
        self.ids[t] = Some(id);
        Ok(id)
    }

    /// The constant int32 values of tensor `t`.
    fn int32s(&self, t: usize) -> Result<Vec<i32>> {
        let tensor = self.tensor(t);
        ensure!(tensor.dtype == tensor_type::INT32, "tensor '{}' must be int32", tensor.name);
        let data = tensor.data.with_context(|| format!("tensor '{}' must be a constant", tensor.name))?;
        Ok(data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// A new activation of `shape` viewing `t`'s bytes (an Ember `reshape`).
    fn reshaped(&mut self, t: usize, shape: &[usize]) -> Result<u16> {
        let x = self.activation(t)?;
        if self.tensor(t).shape == shape {
            return Ok(x);
        }
        let q = self.q(t)?;
        let quant = Quant::PerTensor { scale: q.scale, zero_point: q.zero_point };
        if self.tensor(t).data.is_some() {
            let data = self.tensor(t).data.unwrap_or_default();
            return Ok(self.b.constant(DType::I8, shape, data, Some(&quant))?);
        }
        let y = self.b.activation(DType::I8, shape, Some(&quant))?;
        self.b.alias(y, x);
        self.b.op(OpKind::Reshape, &[x], &[y], &NoParams)?;
        Ok(y)
    }

    /// The builtin options table (absent means every field takes its default).
    fn options<'o>(op: &'o Operator) -> Options<'o> {
        Options(op.options)
    }

    /// A fused activation's int8 bounds on output `out`, as TFLite's
    /// `CalculateActivationRangeQuantized`.
    fn fused(&self, code: u8, out: usize) -> Result<FusedAct> {
        let q = self.q(out)?;
        let quantize = |v: f32| {
            let r = (v / q.scale).round();
            q.zero_point.saturating_add(r.clamp(-1e9, 1e9) as i32)
        };
        let (min, max) = match code {
            0 => return Ok(FusedAct::NONE),
            1 => (0.0, f32::INFINITY),
            2 => (-1.0, 1.0),
            3 => (0.0, 6.0),
            _ => bail!("fused activation {code} ({}) is not supported", fused_name(code)),
        };
        let qmin = quantize(min).max(-128);
        let qmax = if max.is_infinite() { 127 } else { quantize(max).min(127) };
        Ok(FusedAct { min, max, qmin, qmax })
    }

    fn op(&mut self, op: &Operator) -> Result<()> {
        let out = *op.outputs.first().context("the operator has no output")?;
        let o = Self::options(op);
        match op.code {
            builtin::CONV_2D | builtin::DEPTHWISE_CONV_2D => {
                let depthwise = op.code == builtin::DEPTHWISE_CONV_2D;
                // Conv2DOptions: padding 0, stride_w 1, stride_h 2, activation 3, dilation_w 4,
                // dilation_h 5; DepthwiseConv2DOptions inserts depth_multiplier at 3.
                let (act, dil) = if depthwise { (4, 5) } else { (3, 4) };
                let (x, w) = (self.input(op, 0)?, self.input(op, 1)?);
                let (xs, ws) = (&self.tensor(x).shape, &self.tensor(w).shape);
                ensure!(xs.len() == 4 && ws.len() == 4, "input {xs:?} and weights {ws:?} must be rank 4");
                let stride = [o.int(2, 1)?, o.int(1, 1)?];
                let dilation = [o.int(dil + 1, 1)?, o.int(dil, 1)?];
                let out_shape = &self.tensor(out).shape;
                ensure!(out_shape.len() == 4, "output {out_shape:?} must be rank 4");
                let same = o.byte(0, 0)? == 0;
                let pad = padding(
                    same,
                    [xs[1], xs[2]],
                    [ws[1], ws[2]],
                    stride,
                    dilation,
                    [out_shape[1], out_shape[2]],
                );
                let p = ConvParams {
                    stride: stride.map(|v| v as u32),
                    dilation: dilation.map(|v| v as u32),
                    pad: pad.map(|v| v as u32),
                    act: self.fused(o.byte(act, 0)?, out)?,
                };
                let kind = if depthwise { OpKind::DepthwiseConv2d } else { OpKind::Conv2d };
                let x = self.activation(x)?;
                self.weighted(op, kind, x, &p)
            }
            builtin::FULLY_CONNECTED => {
                // FullyConnectedOptions: activation 0, weights_format 1, keep_num_dims 2.
                ensure!(o.byte(1, 0)? == 0, "only the default weights format is supported");
                let (x, w) = (self.input(op, 0)?, self.input(op, 1)?);
                let k = *self.tensor(w).shape.get(1).context("weights must be [units, depth]")?;
                // TFLite flattens the input to rows of `depth`; Ember's rows are the leading dims.
                let mut x_shape = self.tensor(out).shape.clone();
                *x_shape.last_mut().context("the output has rank 0")? = k;
                let x_len: usize = self.tensor(x).shape.iter().product();
                ensure!(
                    x_shape.iter().product::<usize>() == x_len,
                    "input {:?} does not flatten to rows of {k} for output {:?}",
                    self.tensor(x).shape,
                    self.tensor(out).shape
                );
                let p = FullyConnectedParams { act: self.fused(o.byte(0, 0)?, out)? };
                let x = self.reshaped(x, &x_shape)?;
                self.weighted(op, OpKind::FullyConnected, x, &p)
            }
            builtin::ADD | builtin::MUL => {
                let (a, b) = (self.input(op, 0)?, self.input(op, 1)?);
                let (qa, qb, qy) = (self.q(a)?, self.q(b)?, self.q(out)?);
                let act = self.fused(o.byte(0, 0)?, out)?;
                let rank = self.tensor(out).shape.len();
                let a_id = self.with_rank(a, rank)?;
                let b_id = self.with_rank(b, rank)?;
                let y = self.activation(out)?;
                let clamp = ClampI8 { min: act.qmin, max: act.qmax };
                if op.code == builtin::ADD {
                    let k = add::AddParams::new(
                        qa.scale,
                        qa.zero_point,
                        qb.scale,
                        qb.zero_point,
                        qy.scale,
                        qy.zero_point,
                        clamp,
                    );
                    let p = AddParams { act, left_shift: k.left_shift, a: k.a, b: k.b, output: k.output };
                    self.b.op(OpKind::Add, &[a_id, b_id], &[y], &p)?;
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
                    self.b.op(OpKind::Mul, &[a_id, b_id], &[y], &MulParams { act, output: k.output })?;
                }
                Ok(())
            }
            builtin::AVERAGE_POOL_2D | builtin::MAX_POOL_2D => {
                // Pool2DOptions: padding 0, stride_w 1, stride_h 2, filter_w 3, filter_h 4, activation 5.
                let x = self.input(op, 0)?;
                ensure!(
                    self.q(x)? == self.q(out)?,
                    "input and output quantization differ, which TFLite does not allow for pooling"
                );
                let xs = &self.tensor(x).shape;
                let os = &self.tensor(out).shape;
                ensure!(xs.len() == 4 && os.len() == 4, "input {xs:?} and output {os:?} must be rank 4");
                let kernel = [o.int(4, 0)?, o.int(3, 0)?];
                let stride = [o.int(2, 1)?, o.int(1, 1)?];
                let same = o.byte(0, 0)? == 0;
                let pad = padding(same, [xs[1], xs[2]], kernel, stride, [1, 1], [os[1], os[2]]);
                let p = PoolParams {
                    kernel: kernel.map(|v| v as u32),
                    stride: stride.map(|v| v as u32),
                    pad: pad.map(|v| v as u32),
                    act: self.fused(o.byte(5, 0)?, out)?,
                };
                let kind =
                    if op.code == builtin::MAX_POOL_2D { OpKind::MaxPool } else { OpKind::AveragePool };
                self.simple(kind, x, out, &p)
            }
            builtin::RESHAPE | builtin::SQUEEZE => {
                let x = self.input(op, 0)?;
                let shape = self.tensor(out).shape.clone();
                let y = self.reshaped(x, &shape)?;
                self.ids[out] = Some(y);
                Ok(())
            }
            builtin::SOFTMAX => {
                let x = self.input(op, 0)?;
                let qy = self.q(out)?;
                ensure!(
                    qy == Q { scale: 1.0 / 256.0, zero_point: -128 },
                    "the output has scale {} and zero point {}; TFLite's int8 softmax needs 1/256 and -128",
                    qy.scale,
                    qy.zero_point
                );
                let beta = o.float(0, 0.0)?;
                let k = softmax::SoftmaxParams::new(self.q(x)?.scale, beta);
                let p = SoftmaxParams {
                    beta,
                    input_multiplier: k.input_multiplier,
                    input_left_shift: k.input_left_shift,
                    diff_min: k.diff_min,
                };
                self.simple(OpKind::Softmax, x, out, &p)
            }
            builtin::LOGISTIC | builtin::TANH | builtin::HARD_SWISH | builtin::RELU | builtin::RELU6 => {
                let x = self.input(op, 0)?;
                let (qx, qy) = (self.q(x)?, self.q(out)?);
                let (kind, table) = match op.code {
                    builtin::LOGISTIC => (OpKind::Sigmoid, tables::logistic(qx, qy)),
                    builtin::TANH => (OpKind::Tanh, tables::tanh(qx, qy)),
                    builtin::HARD_SWISH => (
                        OpKind::HardSwish,
                        tables::hard_swish(qx, qy).with_context(|| {
                            format!(
                                "output scale {} is too fine for input scale {} (TFLite's int8 HARD_SWISH needs output scale ≥ input scale / 128)",
                                qy.scale, qx.scale
                            )
                        })?,
                    ),
                    builtin::RELU => (OpKind::Relu, tables::relu(qx, qy, 0.0, f32::INFINITY)),
                    _ => (OpKind::Clip, tables::relu(qx, qy, 0.0, 6.0)),
                };
                let (a, b) = if op.code == builtin::RELU6 { (0.0, 6.0) } else { (0.0, 0.0) };
                let xi = self.activation(x)?;
                let y = self.activation(out)?;
                let table = self.b.constant_of(DType::I8, &[256], &table, None)?;
                self.b.op(kind, &[xi, table], &[y], &UnaryParams { a, b })?;
                Ok(())
            }
            builtin::PAD => {
                let x = self.input(op, 0)?;
                ensure!(
                    self.q(x)? == self.q(out)?,
                    "input and output quantization differ, which TFLite does not allow for PAD"
                );
                let pads = self.int32s(self.input(op, 1)?)?;
                let rank = self.tensor(x).shape.len();
                ensure!(
                    pads.len() == 2 * rank && rank <= MAX_RANK,
                    "paddings {pads:?} do not fit rank {rank}"
                );
                let mut p =
                    PadParams { pads: [[0; 2]; MAX_RANK], value: 0.0, qvalue: self.q(out)?.zero_point };
                for (dst, src) in p.pads.iter_mut().zip(pads.chunks_exact(2)) {
                    let side = |v: i32| u32::try_from(v).with_context(|| format!("negative padding {v}"));
                    *dst = [side(src[0])?, side(src[1])?];
                }
                self.simple(OpKind::Pad, x, out, &p)
            }
            builtin::CONCATENATION => {
                // ConcatenationOptions: axis 0, activation 1.
                ensure!(o.byte(1, 0)? == 0, "a fused activation on CONCATENATION is not supported");
                let rank = self.tensor(out).shape.len() as i32;
                let axis = o.signed(0, 0)?;
                let axis = if axis < 0 { axis + rank } else { axis };
                ensure!((0..rank).contains(&axis), "axis {axis} of a rank-{rank} output");
                let qy = self.q(out)?;
                let mut inputs = Vec::new();
                for t in op.inputs.iter().flatten() {
                    ensure!(
                        self.q(*t)? == qy,
                        "input '{}' is quantized unlike the output; Ember's concat copies bytes",
                        self.tensor(*t).name
                    );
                    inputs.push(self.activation(*t)?);
                }
                let y = self.activation(out)?;
                self.b.op(OpKind::Concat, &inputs, &[y], &ConcatParams { axis: axis as u32 })?;
                Ok(())
            }
            builtin::MEAN => {
                let x = self.input(op, 0)?;
                let mut axes = self.int32s(self.input(op, 1)?)?;
                axes.iter_mut().for_each(|a| *a = if *a < 0 { *a + 4 } else { *a });
                axes.sort_unstable();
                axes.dedup();
                let xs = self.tensor(x).shape.clone();
                let os = &self.tensor(out).shape;
                let kept = [xs.first().copied().unwrap_or(0), 1, 1, xs.last().copied().unwrap_or(0)];
                ensure!(
                    xs.len() == 4 && axes == [1, 2] && (*os == kept || *os == [kept[0], kept[3]]),
                    "only the mean over axes [1, 2] of a rank-4 tensor is supported (input {xs:?}, axes {axes:?}, output {os:?})"
                );
                let (qx, qy) = (self.q(x)?, self.q(out)?);
                let requant = mean_requant(qx.scale, qy.scale, xs[1] * xs[2]);
                if *os == kept {
                    return self.simple(OpKind::Mean, x, out, &MeanParams { requant });
                }
                // keep_dims false: Ember's mean keeps them, and a reshape drops them.
                let quant = Quant::PerTensor { scale: qy.scale, zero_point: qy.zero_point };
                let x = self.activation(x)?;
                let mean = self.b.activation(DType::I8, &kept, Some(&quant))?;
                let y = self.activation(out)?;
                self.b.op(OpKind::Mean, &[x], &[mean], &MeanParams { requant })?;
                self.b.alias(y, mean);
                self.b.op(OpKind::Reshape, &[mean], &[y], &NoParams)?;
                Ok(())
            }
            code => bail!("operator code {code} is not supported"),
        }
    }

    /// Tensor `t` viewed with `rank` dimensions (leading ones added), for broadcasting.
    fn with_rank(&mut self, t: usize, rank: usize) -> Result<u16> {
        let shape = &self.tensor(t).shape;
        ensure!(shape.len() <= rank, "operand {shape:?} has more dimensions than the output");
        let padded: Vec<usize> =
            std::iter::repeat_n(1, rank - shape.len()).chain(shape.iter().copied()).collect();
        self.reshaped(t, &padded)
    }

    fn simple<P: bytemuck::Pod>(&mut self, kind: OpKind, x: usize, out: usize, p: &P) -> Result<()> {
        let x = self.activation(x)?;
        let y = self.activation(out)?;
        self.b.op(kind, &[x], &[y], p)?;
        Ok(())
    }

    /// CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED over input `x`: the int8 weights and
    /// int32 bias copied, one requantization factor per scale of the weights.
    fn weighted<P: bytemuck::Pod>(&mut self, op: &Operator, kind: OpKind, x: u16, p: &P) -> Result<()> {
        let (x_t, w_t, out) = (self.input(op, 0)?, self.input(op, 1)?, op.outputs[0]);
        let w = self.tensor(w_t);
        ensure!(
            w.dtype == tensor_type::INT8,
            "weights '{}' must be int8 (type 9), not type {}",
            w.name,
            w.dtype
        );
        let data = w.data.with_context(|| format!("weights '{}' must be constant", w.name))?;
        let wq = w.quant.as_ref().with_context(|| format!("weights '{}' have no quantization", w.name))?;
        ensure!(
            wq.zero_points.iter().all(|&z| z == 0),
            "weights '{}' have nonzero zero points; TFLite int8 weights are symmetric",
            w.name
        );
        let units_axis = if kind == OpKind::DepthwiseConv2d { 3 } else { 0 };
        let units = *w.shape.get(units_axis).context("weights of too low rank")?;
        ensure!(
            wq.scales.len() == 1 || (wq.scales.len() == units && wq.axis == units_axis),
            "weights '{}' have {} scales along axis {}; expected 1 or {units} along axis {units_axis}",
            w.name,
            wq.scales.len(),
            wq.axis
        );
        let w_shape = w.shape.clone();
        let scales = wq.scales.clone();
        let bias = match op.inputs.get(2).copied().flatten() {
            Some(b) => {
                let bias = self.int32s(b)?;
                ensure!(bias.len() == units, "bias has {} values for {units} output channels", bias.len());
                bias
            }
            None => vec![0; units],
        };
        let (qx, qy) = (self.q(x_t)?, self.q(out)?);
        // TFLite's `PopulateConvolutionQuantizationParams`: each factor in double precision
        // from the float scales.
        let requant: Vec<Requant> = scales
            .iter()
            .map(|&s| Requant::from_f64(f64::from(qx.scale) * f64::from(s) / f64::from(qy.scale)))
            .collect();
        let w = self.b.constant(DType::I8, &w_shape, data, None)?;
        let b = self.b.constant_of(DType::I32, &[units], &bias, None)?;
        let r = self.b.constant_of(DType::I32, &[requant.len(), 2], &requant, None)?;
        let y = self.activation(out)?;
        let index = self.b.op(kind, &[x, w, b, r], &[y], p)?;
        // TFLite's reference per-tensor FULLY_CONNECTED rounds its requantization once.
        if kind == OpKind::FullyConnected && requant.len() == 1 {
            self.b.set_single_rounding(index);
        }
        Ok(())
    }
}

/// Padding top, left, bottom, right of a window op, as TFLite's `ComputePaddingHeightWidth`:
/// SAME splits the total evenly, the extra cell after; VALID has none.
fn padding(
    same: bool,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    output: [usize; 2],
) -> [usize; 4] {
    if !same {
        return [0; 4];
    }
    let total = |i: usize| {
        let effective = (kernel[i].max(1) - 1) * dilation[i] + 1;
        ((output[i].max(1) - 1) * stride[i] + effective).saturating_sub(input[i])
    };
    let (h, w) = (total(0), total(1));
    [h / 2, w / 2, h - h / 2, w - w / 2]
}

/// The factor of an int8 MEAN over `count` cells as TFLite's reference `QuantizedMeanOrSum`
/// derives it: `QuantizeMultiplier(in_scale / out_scale)`, then the multiplier times `2^k`
/// divided by `count` (truncating) and the shift lowered by `k`, where `2^k` is the largest
/// power of two not above `count` (at most 32, and at most `31 + shift` so the shift stays ≥ −31).
/// The multiplier can fall below 2^30; Ember's requantization takes it as it is.
fn mean_requant(in_scale: f32, out_scale: f32, count: usize) -> Requant {
    let r = Requant::from_f64(f64::from(in_scale) / f64::from(out_scale));
    let count = count.max(1) as i64;
    let k = (count.ilog2() as i32).min(32).min(31 + r.shift).max(0);
    Requant { multiplier: ((i64::from(r.multiplier) << k) / count) as i32, shift: r.shift - k }
}

/// TFLite's name of a fused activation code.
fn fused_name(code: u8) -> &'static str {
    match code {
        4 => "TANH",
        5 => "SIGN_BIT",
        _ => "unknown",
    }
}

/// Typed reads of a builtin options table (absent fields take the schema's defaults).
struct Options<'o>(Option<super::flatbuffer::Table<'o>>);

impl Options<'_> {
    fn signed(&self, field: u16, default: i32) -> Result<i32> {
        self.0.as_ref().map_or(Ok(default), |t| t.scalar(field, default))
    }

    fn int(&self, field: u16, default: i32) -> Result<usize> {
        let v = self.signed(field, default)?;
        usize::try_from(v).with_context(|| format!("option {field} is {v}, where a size is needed"))
    }

    fn byte(&self, field: u16, default: u8) -> Result<u8> {
        self.0.as_ref().map_or(Ok(default), |t| t.scalar(field, default))
    }

    fn float(&self, field: u16, default: f32) -> Result<f32> {
        self.0.as_ref().map_or(Ok(default), |t| t.scalar(field, default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_factor_folds_the_count_into_the_multiplier() {
        // in/out = 1.5: multiplier 0.75 · 2^31, exponent 1. 3 cells: k = 1, 0.75 · 2^32 / 3 =
        // 2^30 exactly; 5 cells: k = 2, 3 · 2^31 / 5 truncated.
        let r = mean_requant(1.5, 1.0, 1);
        assert_eq!((r.multiplier, r.shift), (3 << 29, 1));
        assert_eq!(mean_requant(1.5, 1.0, 3), Requant { multiplier: 1 << 30, shift: 0 });
        assert_eq!(mean_requant(1.5, 1.0, 5), Requant { multiplier: ((3i64 << 31) / 5) as i32, shift: -1 });
        // A factor of 2^-31 (exponent -30) leaves room for one bit of k only.
        let r = mean_requant(1.0, 2f32.powi(31), 16);
        assert_eq!((r.multiplier, r.shift), ((1 << 30) / 8, -31));
    }
}
