//! What `conv2d`, `depthwise_conv2d` and `fully_connected` share: weights, bias, requantization
//! and the choice between the int8, f32 and f16-weight kernels.

use super::{
    arity, check_requant, clamp_f32, clamp_i8, expect_constant, expect_dims, expect_dtype, input, is_int8,
    kernel_bit, kernel_io, output, shape_error, Kernels, OpIo,
};
use crate::format::layout::WeightLayout;
use crate::format::params::FusedAct;
use crate::format::{DType, OpKind};
use crate::kernels::scratch::Scratch;
use crate::kernels::{ClampF32, Int8Params, LaidOut, Weight};
use crate::model::{Model, OpInfo, TensorInfo};
use crate::quant::Requant;
use crate::Error;

/// The kernels of one weighted op kind over its geometry: static calls (not function pointers),
/// so kernels a firmware does not link are never referenced.
pub(super) trait WeightedKernels {
    /// The op kind.
    const KIND: OpKind;
    /// Geometry the kernels take.
    type Geometry;
    /// Whether the firmware links this op's int8 kernel for weights in `layout`.
    fn links(layout: WeightLayout) -> bool;
    /// int8 activations and weights (in a layout the loader allows for the op kind, its kernel
    /// linked only where [`WeightedKernels::links`]).
    #[allow(clippy::too_many_arguments)]
    fn i8(
        g: &Self::Geometry,
        q: &Int8Params,
        x: &[i8],
        w: LaidOut,
        bias: &[i32],
        out: &mut [i8],
        scratch: Scratch,
    );
    /// f32 activations, weights of type `W` (f32 or f16).
    #[allow(clippy::too_many_arguments)]
    fn float<W: Weight>(
        g: &Self::Geometry,
        x: &[f32],
        w: &[W],
        bias: &[f32],
        act: ClampF32,
        out: &mut [f32],
        scratch: Scratch,
    );
}

/// Checks the weights (already shape-checked by the caller), bias and requantization of a
/// weighted op with `units` output channels, then runs the kernel of `W` matching its types.
pub(super) fn run<K: Kernels, W: WeightedKernels>(
    model: &Model,
    op: &OpInfo,
    io: Option<OpIo>,
    g: &W::Geometry,
    units: usize,
    act: &FusedAct,
) -> Result<(), Error> {
    let (x, w, y) = (input(model, op, 0)?, input(model, op, 1)?, output(model, op)?);
    let bias = input(model, op, 2)?;
    expect_constant(op, &w)?;
    expect_constant(op, &bias)?;
    expect_dims(op, &bias, &[units], "[Cout]")?;
    if is_int8(op, &x)? {
        arity(op, 4)?;
        let requant = requant_input(model, op, units)?;
        expect_dtype(op, &w, DType::I8)?;
        expect_dtype(op, &bias, DType::I32)?;
        expect_dtype(op, &y, DType::I8)?;
        let act = clamp_i8(op, act)?;
        if !W::links(w.layout) {
            return Err(Error::LayoutNotLinked { op: op.index, kind: op.kind, layout: w.layout });
        }
        let Some(mut io) = kernel_io::<K>(op, io, kernel_bit(W::KIND), true)? else { return Ok(()) };
        let q = Int8Params {
            input_zero_point: x.scale_zero_point().1,
            output_zero_point: y.scale_zero_point().1,
            requant: io.read.input_requant(&requant)?,
            act,
            rounding: op.rounding,
        };
        let (xv, wv, bv) = (io.read.input(&x)?, io.read.input(&w)?, io.read.input(&bias)?);
        let (out, scratch) = io.output_and_scratch()?;
        let w = LaidOut { bytes: wv, layout: w.layout, depth: w.filters_depth().1 };
        W::i8(g, &q, xv, w, bv, out, scratch);
    } else {
        arity(op, 3)?;
        expect_dtype(op, &bias, DType::F32)?;
        expect_dtype(op, &y, DType::F32)?;
        let act = clamp_f32(act);
        match w.dtype {
            DType::F32 | DType::F16 => {}
            _ => return Err(op.error("float weights must be f32 or f16")),
        }
        let Some(mut io) = kernel_io::<K>(op, io, kernel_bit(W::KIND), false)? else { return Ok(()) };
        let read = io.read;
        let (xv, bv) = (read.input(&x)?, read.input(&bias)?);
        let (out, scratch) = io.output_and_scratch()?;
        if w.dtype == DType::F16 {
            W::float::<half::f16>(g, xv, read.input(&w)?, bv, act, out, scratch);
        } else {
            W::float::<f32>(g, xv, read.input(&w)?, bv, act, out, scratch);
        }
    }
    Ok(())
}

/// The `requant` input (`[Cout or 1, 2]` i32 constant: multiplier, shift), checked.
fn requant_input<'a>(model: &Model<'a>, op: &OpInfo, units: usize) -> Result<TensorInfo<'a>, Error> {
    let r = input(model, op, 3)?;
    expect_constant(op, &r)?;
    expect_dtype(op, &r, DType::I32)?;
    if !matches!(*r.dims, [c, 2] if c as usize == units || c == 1) {
        return Err(shape_error(op, &r, "[Cout or 1, 2] (multiplier, shift)"));
    }
    for pair in model.constant_bytes(&r)?.chunks_exact(8) {
        let q: Requant = bytemuck::pod_read_unaligned(pair);
        check_requant(op, &q)?;
    }
    Ok(r)
}
