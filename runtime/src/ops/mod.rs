//! Op glue: checks an op's tensors and parameters against its kind, then calls the kernel.
//!
//! Each op module exposes `run(model, op, io)`. The same code path checks every shape and
//! length before touching data, so [`prepare`] (called once per op by
//! `Model::validate_ops`, with no arena) and the interpreter (on every `invoke`) can never
//! disagree. Both go through one `dispatch::<K>`, whose arms for op kinds `K` does not link are
//! dead code: a firmware carries the checks and kernels of its model's ops only.

mod activation;
mod add;
mod binary;
mod concat;
mod conv2d;
mod depthwise_conv2d;
mod dequantize;
mod fully_connected;
mod mean;
mod mul;
mod pad;
mod pool;
mod quantize;
mod reshape;
mod softmax;
mod transpose;
mod weighted;

use bytemuck::Pod;

use crate::format::layout::WeightLayout;
use crate::format::params::FusedAct;
use crate::format::{DType, OpKind, Storage, MAX_RANK};
use crate::kernels::scratch::{Scratch, Target};
use crate::kernels::{ClampF32, ClampI8, Input, Nhwc};
use crate::model::{Model, OpInfo, TensorInfo};
use crate::quant::Requant;
use crate::Error;

/// Which kernels a firmware links: bit masks over op kinds (bit `kind as u8`, see
/// [`kernel_bit`]), one for int8 and one for float (f32 and f16 weights), and two over the
/// layouts of int8 weights (bit `layout as u8`, see [`layout_bit`]): of `conv2d` and
/// `fully_connected` filters, and of `depthwise_conv2d` weights. Kernels outside
/// the masks are never referenced, so the linker drops them; `ember-build` generates the masks
/// of a model, and [`AllKernels`] links everything.
pub trait Kernels {
    /// Op kinds whose int8 kernels are linked.
    const INT8: u32;
    /// Op kinds whose float kernels are linked.
    const FLOAT: u32;
    /// Weight layouts ([`WeightLayout`]) whose int8 `conv2d` and `fully_connected` kernels are
    /// linked (all by default).
    const LAYOUTS: u32 = u32::MAX;
    /// Weight layouts whose int8 `depthwise_conv2d` kernels are linked (all by default).
    const DEPTHWISE_LAYOUTS: u32 = u32::MAX;
}

/// Links every kernel (the default).
pub struct AllKernels;

impl Kernels for AllKernels {
    const INT8: u32 = u32::MAX;
    const FLOAT: u32 = u32::MAX;
    const LAYOUTS: u32 = u32::MAX;
    const DEPTHWISE_LAYOUTS: u32 = u32::MAX;
}

/// The bit of `kind` in a [`Kernels`] mask.
pub const fn kernel_bit(kind: OpKind) -> u32 {
    1 << kind as u32
}

/// The bit of `layout` in [`Kernels::LAYOUTS`] and [`Kernels::DEPTHWISE_LAYOUTS`].
pub const fn layout_bit(layout: WeightLayout) -> u32 {
    1 << layout as u32
}

/// Whether `K` links the int8 `conv2d` and `fully_connected` kernels of filters in `layout` (a
/// constant for a constant `layout`).
#[inline(always)]
pub(crate) const fn links_layout<K: Kernels>(layout: WeightLayout) -> bool {
    K::LAYOUTS & layout_bit(layout) != 0
}

/// Whether `K` links the int8 `depthwise_conv2d` kernel of weights in `layout` (a constant for a
/// constant `layout`).
#[inline(always)]
pub(crate) const fn links_depthwise_layout<K: Kernels>(layout: WeightLayout) -> bool {
    K::DEPTHWISE_LAYOUTS & layout_bit(layout) != 0
}

/// Whether `op` computes in int8 (its output is int8) rather than in float.
pub(crate) fn computes_in_int8(model: &Model, op: &OpInfo) -> Result<bool, Error> {
    Ok(output(model, op)?.dtype == DType::I8)
}

/// Whether `K` links the kernel `op` needs (for `reshape`, the aliasing checks).
fn is_linked<K: Kernels>(model: &Model, op: &OpInfo) -> Result<bool, Error> {
    let mask = if computes_in_int8(model, op)? { K::INT8 } else { K::FLOAT };
    Ok(mask & kernel_bit(op.kind) != 0)
}

/// Validates an op without running it, failing if `K` does not link its kernel or the model
/// plans less scratch for it than this build's kernels need.
pub(crate) fn prepare<K: Kernels>(model: &Model, op: &OpInfo) -> Result<(), Error> {
    dispatch::<K>(model, op, None)?;
    check_scratch::<K>(model, op, Target::SELECTED)
}

/// Fails if the model plans less scratch for `op` than `target`'s kernels need.
pub(crate) fn check_scratch<K: Kernels>(model: &Model, op: &OpInfo, target: Target) -> Result<(), Error> {
    let needed = scratch_bytes::<K>(model, op, target)?;
    if op.scratch.1 < needed {
        return Err(Error::ScratchTooSmall {
            op: op.index,
            kind: op.kind,
            target,
            needed: needed as u32,
            planned: op.scratch.1 as u32,
        });
    }
    Ok(())
}

/// Scratch bytes `target`'s kernels need to run `op` (whose kernel `K` links).
pub(crate) fn scratch_bytes<K: Kernels>(model: &Model, op: &OpInfo, target: Target) -> Result<usize, Error> {
    use OpKind::*;
    let need = match op.kind {
        Conv2d if links::<K>(&[Conv2d]) => Some(conv2d::scratch_op(model, op)?),
        DepthwiseConv2d if links::<K>(&[DepthwiseConv2d]) => depthwise_conv2d::scratch_op(model, op)?,
        FullyConnected if links::<K>(&[FullyConnected]) => fully_connected::scratch_op(model, op)?,
        Add if links::<K>(&[Add]) => add::scratch_op(model, op)?,
        _ => None,
    };
    Ok(need.map_or(0, |need| target.bytes(&need)))
}

/// Runs an op over `arena` with the kernels `K` links.
pub(crate) fn run<K: Kernels>(model: &Model, op: &OpInfo, arena: &mut [u8]) -> Result<(), Error> {
    let out = output(model, op)?;
    dispatch::<K>(model, op, Some(OpIo::new(model, arena, out, op)?))
}

fn dispatch<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    use OpKind::*;
    if !is_linked::<K>(model, op)? {
        return Err(Error::KernelNotLinked { op: op.index, kind: op.kind });
    }
    // Each guard is a constant once `K` is known, so unlinked arms vanish with their glue.
    match op.kind {
        Conv2d if links::<K>(&[Conv2d]) => conv2d::run::<K>(model, op, io),
        DepthwiseConv2d if links::<K>(&[DepthwiseConv2d]) => depthwise_conv2d::run::<K>(model, op, io),
        FullyConnected if links::<K>(&[FullyConnected]) => fully_connected::run::<K>(model, op, io),
        Add if links::<K>(&[Add]) => add::run::<K>(model, op, io),
        Mul if links::<K>(&[Mul]) => mul::run::<K>(model, op, io),
        Relu | Clip | LeakyRelu | HardSwish | HardSigmoid | Sigmoid | Tanh
            if links::<K>(&[Relu, Clip, LeakyRelu, HardSwish, HardSigmoid, Sigmoid, Tanh]) =>
        {
            activation::run::<K>(model, op, io)
        }
        MaxPool | AveragePool if links::<K>(&[MaxPool, AveragePool]) => pool::run::<K>(model, op, io),
        Mean if links::<K>(&[Mean]) => mean::run::<K>(model, op, io),
        Reshape if links::<K>(&[Reshape]) => reshape::run(model, op, io),
        Concat if links::<K>(&[Concat]) => concat::run::<K>(model, op, io),
        Pad if links::<K>(&[Pad]) => pad::run::<K>(model, op, io),
        Transpose if links::<K>(&[Transpose]) => transpose::run::<K>(model, op, io),
        Softmax if links::<K>(&[Softmax]) => softmax::run::<K>(model, op, io),
        Quantize if links::<K>(&[Quantize]) => quantize::run::<K>(model, op, io),
        Dequantize if links::<K>(&[Dequantize]) => dequantize::run::<K>(model, op, io),
        _ => Err(Error::KernelNotLinked { op: op.index, kind: op.kind }),
    }
}

/// Whether `K` links a kernel, int8 or float, of any of `kinds`.
#[inline(always)]
#[allow(clippy::indexing_slicing)] // Const evaluation of constant slices: `i < kinds.len()`.
const fn links<K: Kernels>(kinds: &[OpKind]) -> bool {
    let mut mask = 0;
    let mut i = 0;
    while i < kinds.len() {
        mask |= kernel_bit(kinds[i]);
        i += 1;
    }
    (K::INT8 | K::FLOAT) & mask != 0
}

/// The arena view for running `op`'s kernel of this precision, which must be linked in `K`
/// for one of `kinds`; `None` when only validating. With constant `kinds` and `int8` the
/// kernel call after it is dead code for kernels `K` does not link.
#[inline(always)]
pub(crate) fn kernel_io<'m, 'r, K: Kernels>(
    op: &OpInfo,
    io: Option<OpIo<'m, 'r>>,
    kinds: u32,
    int8: bool,
) -> Result<Option<OpIo<'m, 'r>>, Error> {
    let linked = (if int8 { K::INT8 } else { K::FLOAT }) & kinds != 0;
    match io {
        None => Ok(None),
        Some(io) if linked => Ok(Some(io)),
        Some(_) => Err(Error::KernelNotLinked { op: op.index, kind: op.kind }),
    }
}

/// An element type tensors can be viewed as.
pub(crate) trait Element: Pod {
    /// The tensor dtype this Rust type reads.
    const DTYPE: DType;
}

impl Element for i8 {
    const DTYPE: DType = DType::I8;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}

/// The arena split around one op's output and scratch buffer: inputs are read from the other
/// parts (the plan was checked to never overlap live tensors), the output is written in place
/// and the scratch is the kernel's. An op that may run in place reads an input planned over its
/// output's bytes from the output buffer itself ([`Reader::operand`]).
pub(crate) struct OpIo<'m, 'r> {
    /// Read access to constants and to the arena outside the output and the scratch.
    pub read: Reader<'m, 'r>,
    /// The output tensor's bytes.
    pub out: &'r mut [u8],
    /// The op's planned scratch bytes (empty when it has none).
    pub scratch: &'r mut [u8],
}

/// Read access to an op's inputs.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'m, 'r> {
    model: &'r Model<'m>,
    /// The readable parts of the arena, each with its arena offset.
    parts: [(usize, &'r [u8]); 3],
    /// The output's arena range (start, end).
    output: (usize, usize),
}

impl<'m, 'r> OpIo<'m, 'r> {
    fn new(model: &'r Model<'m>, arena: &'r mut [u8], out: TensorInfo, op: &OpInfo) -> Result<Self, Error> {
        let range = out.arena_range();
        let (s_start, s_len) = op.scratch;
        let scratch = s_start..s_start + s_len;
        if range.end > arena.len() || scratch.end > arena.len() {
            return Err(Error::ArenaTooSmall { needed: model.arena_bytes(), got: arena.len() });
        }
        // The loader checked that the scratch overlaps no tensor alive at this op.
        if s_len > 0 && scratch.start < range.end && range.start < scratch.end {
            return Err(Error::PlanOverlap { a: out.id, b: u16::MAX });
        }
        let (before, rest) = arena.split_at_mut(range.start);
        let (out, after) = rest.split_at_mut(range.len());
        let (parts, scratch) = if s_len == 0 {
            ([(0, &*before), (range.end, &*after), (range.end, &[][..])], &mut [][..])
        } else if scratch.end <= range.start {
            let (low, rest) = before.split_at_mut(scratch.start);
            let (scratch_bytes, high) = rest.split_at_mut(s_len);
            ([(0, &*low), (scratch.end, &*high), (range.end, &*after)], scratch_bytes)
        } else {
            let (low, rest) = after.split_at_mut(scratch.start - range.end);
            let (scratch_bytes, high) = rest.split_at_mut(s_len);
            ([(0, &*before), (range.end, &*low), (scratch.end, &*high)], scratch_bytes)
        };
        let read = Reader { model, parts, output: (range.start, range.end) };
        Ok(Self { read, out, scratch })
    }

    /// The output as a slice of `T`.
    pub(crate) fn output<T: Element>(&mut self) -> Result<&mut [T], Error> {
        Ok(self.output_and_scratch()?.0)
    }

    /// The output as a slice of `T`, and the op's scratch for its kernel.
    pub(crate) fn output_and_scratch<T: Element>(&mut self) -> Result<(&mut [T], Scratch<'_>), Error> {
        let out = bytemuck::try_cast_slice_mut(&mut *self.out).map_err(|_| Error::BadTensor {
            tensor: u16::MAX,
            reason: "output misaligned for its element type",
        })?;
        Ok((out, Scratch::new(&mut *self.scratch)))
    }
}

impl<'m, 'r> Reader<'m, 'r> {
    /// Input tensor `t` as a slice of `T`: in place in the model for constants, in the arena otherwise.
    pub(crate) fn input<T: Element>(&self, t: &TensorInfo) -> Result<&'r [T], Error> {
        if t.dtype != T::DTYPE {
            return Err(Error::WrongType { tensor: t.id });
        }
        let bytes = if t.storage == Storage::Constant {
            self.model.constant_bytes(t)?
        } else {
            let range = t.arena_range();
            self.parts
                .iter()
                .find_map(|&(start, part)| {
                    let from = range.start.checked_sub(start)?;
                    part.get(from..from + range.len())
                })
                .ok_or(Error::PlanOverlap { a: t.id, b: u16::MAX })?
        };
        bytemuck::try_cast_slice(bytes)
            .map_err(|_| Error::BadTensor { tensor: t.id, reason: "misaligned for its element type" })
    }

    /// Input `t` of an elementwise kernel: [`Input::InPlace`] when the plan put it exactly on
    /// the output's bytes (which the loader allows only for ops that can run in place),
    /// otherwise as [`Reader::input`] reads it.
    pub(crate) fn operand<T: Element>(&self, t: &TensorInfo) -> Result<Input<'r, T>, Error> {
        if t.storage == Storage::Arena
            && t.dtype == T::DTYPE
            && t.arena_range() == (self.output.0..self.output.1)
        {
            return Ok(Input::InPlace);
        }
        self.input(t).map(Input::Separate)
    }

    /// An i32 `[n, 2]` tensor as requantization factors.
    pub(crate) fn input_requant(&self, t: &TensorInfo) -> Result<&'r [Requant], Error> {
        bytemuck::try_cast_slice(self.input::<i32>(t)?)
            .map_err(|_| Error::BadTensor { tensor: t.id, reason: "not (multiplier, shift) pairs" })
    }
}

/// Requires `op` to have `inputs` inputs.
pub(crate) fn arity(op: &OpInfo, inputs: usize) -> Result<(), Error> {
    if op.inputs.len() != inputs {
        return Err(op.error("wrong number of inputs for this op kind"));
    }
    Ok(())
}

/// Input `i` of `op`.
pub(crate) fn input<'a>(model: &Model<'a>, op: &OpInfo, i: usize) -> Result<TensorInfo<'a>, Error> {
    model.tensor(*op.inputs.get(i).ok_or(op.error("missing input"))?)
}

/// The output of `op`.
pub(crate) fn output<'a>(model: &Model<'a>, op: &OpInfo) -> Result<TensorInfo<'a>, Error> {
    model.tensor(*op.outputs.first().ok_or(op.error("no output"))?)
}

/// Shape error for `t` in `op`.
pub(crate) fn shape_error(op: &OpInfo, t: &TensorInfo, expected: &'static str) -> Error {
    Error::ShapeMismatch { op: op.index, kind: op.kind, tensor: t.id, expected }
}

/// `t` as an NHWC shape (rank 4).
pub(crate) fn nhwc(op: &OpInfo, t: &TensorInfo) -> Result<Nhwc, Error> {
    match *t.dims {
        [n, h, w, c] => Ok(Nhwc { n: n as usize, h: h as usize, w: w as usize, c: c as usize }),
        _ => Err(shape_error(op, t, "rank 4 (NHWC)")),
    }
}

/// Whether `op` computes in int8 (its first input is i8) or f32; anything else is an error.
pub(crate) fn is_int8(op: &OpInfo, x: &TensorInfo) -> Result<bool, Error> {
    match x.dtype {
        DType::I8 => Ok(true),
        DType::F32 => Ok(false),
        _ => Err(op.error("activations must be i8 or f32")),
    }
}

/// Requires `t` to have element type `dtype`.
pub(crate) fn expect_dtype(op: &OpInfo, t: &TensorInfo, dtype: DType) -> Result<(), Error> {
    if t.dtype != dtype {
        return Err(op.error("an input or output has the wrong element type"));
    }
    Ok(())
}

/// Requires `t` to be a constant.
pub(crate) fn expect_constant(op: &OpInfo, t: &TensorInfo) -> Result<(), Error> {
    if t.storage != Storage::Constant {
        return Err(op.error("weights, biases and tables must be constants"));
    }
    Ok(())
}

/// Requires `t` to have exactly these dimensions.
pub(crate) fn expect_dims(
    op: &OpInfo,
    t: &TensorInfo,
    dims: &[usize],
    expected: &'static str,
) -> Result<(), Error> {
    if t.dims.len() != dims.len() || t.dims.iter().zip(dims).any(|(&a, &b)| a as usize != b) {
        return Err(shape_error(op, t, expected));
    }
    Ok(())
}

/// Requires `y` to have `x`'s dims.
pub(crate) fn same_dims(op: &OpInfo, x: &TensorInfo, y: &TensorInfo) -> Result<(), Error> {
    if x.dims != y.dims {
        return Err(shape_error(op, y, "the input's shape"));
    }
    Ok(())
}

/// The scale and zero point of `t`, which must be quantized per tensor.
pub(crate) fn per_tensor(op: &OpInfo, t: &TensorInfo) -> Result<(f32, i32), Error> {
    match t.quant {
        [q] => Ok((q.scale, q.zero_point)),
        _ => Err(op.error("the int8 tensor needs one per-tensor scale and zero point")),
    }
}

/// f32 bounds of a fused activation.
pub(crate) fn clamp_f32(act: &FusedAct) -> ClampF32 {
    ClampF32 { min: act.min, max: act.max }
}

/// int8 bounds of a fused activation, checked.
pub(crate) fn clamp_i8(op: &OpInfo, act: &FusedAct) -> Result<ClampI8, Error> {
    if !(-128..=127).contains(&act.qmin) || !(act.qmin..=127).contains(&act.qmax) {
        return Err(op.error("int8 activation bounds outside -128..=127"));
    }
    Ok(ClampI8 { min: act.qmin, max: act.qmax })
}

/// Checks a requantization factor's fields are in the ranges the kernels assume.
pub(crate) fn check_requant(op: &OpInfo, r: &Requant) -> Result<(), Error> {
    if r.multiplier < 0 || !(-31..=30).contains(&r.shift) {
        return Err(op.error("requantization multiplier or shift out of range"));
    }
    Ok(())
}

/// Dims of `t` padded to `rank` with leading ones.
pub(crate) fn padded_dims(t: &TensorInfo, rank: usize) -> Option<PerAxis<usize>> {
    let lead = rank.checked_sub(t.dims.len())?;
    let mut out = PerAxis::new(rank, 1)?;
    for (o, &d) in out.values_mut().iter_mut().skip(lead).zip(t.dims) {
        *o = d as usize;
    }
    Some(out)
}

/// One value per axis of a tensor of rank ≤ [`MAX_RANK`] (dims, pads, a permutation), built
/// by the glue before it calls a kernel.
#[derive(Clone, Copy)]
pub(crate) struct PerAxis<T> {
    values: [T; MAX_RANK],
    rank: usize,
}

impl<T: Copy> PerAxis<T> {
    /// `rank` copies of `fill`, or `None` if `rank` exceeds [`MAX_RANK`].
    pub(crate) fn new(rank: usize, fill: T) -> Option<Self> {
        (rank <= MAX_RANK).then_some(Self { values: [fill; MAX_RANK], rank })
    }

    /// The values of the `rank` axes.
    pub(crate) fn values(&self) -> &[T] {
        // `new` keeps `rank ≤ MAX_RANK`, so this is never the empty fallback.
        self.values.get(..self.rank).unwrap_or(&[])
    }

    /// The values of the `rank` axes, to fill.
    pub(crate) fn values_mut(&mut self) -> &mut [T] {
        self.values.get_mut(..self.rank).unwrap_or(&mut [])
    }
}

/// int8 in/out must share quantization for data-movement ops (TFLite's rule).
pub(crate) fn expect_same_quant(op: &OpInfo, x: &TensorInfo, y: &TensorInfo) -> Result<(), Error> {
    if x.quant != y.quant {
        return Err(op.error("int8 input and output must share scale and zero point"));
    }
    Ok(())
}
