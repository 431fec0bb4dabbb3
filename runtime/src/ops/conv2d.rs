//! `conv2d`: `[x, w [Cout,KH,KW,Cin], bias]` (+ `requant` for int8) → `y`.

use core::marker::PhantomData;

use super::{input, is_int8, links_layout, nhwc, output, shape_error, weighted, Kernels, OpIo};
use crate::format::layout::WeightLayout;
use crate::format::params::ConvParams;
use crate::format::OpKind;
use crate::kernels::scratch::{Scratch, ScratchOp};
use crate::kernels::{ClampF32, ConvGeometry, Int8Params, LaidOut, Nhwc, Weight};
use crate::model::{Model, OpInfo, TensorInfo};
use crate::Error;

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    let (p, g) = shapes(model, op)?;
    weighted::run::<K, Conv2dKernels<K>>(model, op, io, &g, g.output.c, &p.act)
}

/// What the kernels' scratch depends on.
pub(super) fn scratch_op(model: &Model, op: &OpInfo) -> Result<ScratchOp, Error> {
    let g = shapes(model, op)?.1;
    Ok(if is_int8(op, &input(model, op, 0)?)? { ScratchOp::Conv2dI8(g) } else { ScratchOp::Conv2dF32(g) })
}

/// The parameters and the checked geometry.
fn shapes(model: &Model, op: &OpInfo) -> Result<(ConvParams, ConvGeometry), Error> {
    let p: ConvParams = op.params()?;
    let (x, w, y) = (input(model, op, 0)?, input(model, op, 1)?, output(model, op)?);
    let (xs, ys) = (nhwc(op, &x)?, nhwc(op, &y)?);
    let [cout, kh, kw, cin] = dims4(op, &w)?;
    if cin != xs.c || cout != ys.c {
        return Err(shape_error(op, &w, "[Cout, KH, KW, Cin] matching x and y channels"));
    }
    let g = geometry(op, &y, xs, ys, [kh, kw], p.stride, p.dilation, p.pad)?;
    Ok((p, g))
}

/// `conv2d`'s kernels in a firmware linking kernels `K`.
struct Conv2dKernels<K>(PhantomData<K>);

impl<K: Kernels> weighted::WeightedKernels for Conv2dKernels<K> {
    const KIND: OpKind = OpKind::Conv2d;
    type Geometry = ConvGeometry;

    fn links(layout: WeightLayout) -> bool {
        links_layout::<K>(layout)
    }

    fn i8(
        g: &ConvGeometry,
        q: &Int8Params,
        x: &[i8],
        w: LaidOut,
        bias: &[i32],
        out: &mut [i8],
        scratch: Scratch,
    ) {
        use crate::kernels::selected::{conv2d_i8, conv2d_i8_laid_out};
        use WeightLayout::*;
        // Each guard is a constant once `K` is known: layouts `K` does not link (which
        // `weighted::run` refuses) have no kernel here.
        match w.layout {
            Standard if links_layout::<K>(Standard) => conv2d_i8(g, q, x, w.bytes, bias, out, scratch),
            DspPairs if links_layout::<K>(DspPairs) => {
                conv2d_i8_laid_out::<{ DspPairs as u8 }>(g, q, x, w.bytes, bias, out, scratch)
            }
            DspPairsWide if links_layout::<K>(DspPairsWide) => {
                conv2d_i8_laid_out::<{ DspPairsWide as u8 }>(g, q, x, w.bytes, bias, out, scratch)
            }
            _ => {}
        }
    }

    fn float<W: Weight>(
        g: &ConvGeometry,
        x: &[f32],
        w: &[W],
        bias: &[f32],
        act: ClampF32,
        out: &mut [f32],
        scratch: Scratch,
    ) {
        crate::kernels::selected::conv2d_f32(g, x, w, bias, act, out, scratch)
    }
}

/// Dims of a rank-4 tensor.
pub(super) fn dims4(op: &OpInfo, t: &TensorInfo) -> Result<[usize; 4], Error> {
    match *t.dims {
        [a, b, c, d] => Ok([a as usize, b as usize, c as usize, d as usize]),
        _ => Err(shape_error(op, t, "rank 4")),
    }
}

/// Checks stride, dilation, padding and the output size of a sliding window, and builds the
/// kernel geometry. Padding must be smaller than the window so every window sees the input.
#[allow(clippy::too_many_arguments)]
pub(super) fn geometry(
    op: &OpInfo,
    y: &TensorInfo,
    xs: Nhwc,
    ys: Nhwc,
    kernel: [usize; 2],
    stride: [u32; 2],
    dilation: [u32; 2],
    pad: [u32; 4],
) -> Result<ConvGeometry, Error> {
    if xs.n != ys.n {
        return Err(shape_error(op, y, "the input's batch size"));
    }
    let [top, left, bottom, right] = pad;
    let axes = [
        (stride[0], dilation[0], kernel[0], top, bottom, xs.h, ys.h),
        (stride[1], dilation[1], kernel[1], left, right, xs.w, ys.w),
    ];
    for (s, d, k, before, after, input, output) in axes {
        let (s, d, k) = (s as u64, d as u64, k as u64);
        if s == 0 || d == 0 || k == 0 {
            return Err(op.error("stride, dilation and kernel size must be at least 1"));
        }
        let extent = d * (k - 1) + 1;
        let (before, after) = (before as u64, after as u64);
        let padded = input as u64 + before + after;
        if padded < extent || before >= extent || after >= extent {
            return Err(
                op.error("padding must be smaller than the window and the window fit the padded input")
            );
        }
        if (padded - extent) / s + 1 != output as u64 {
            return Err(shape_error(op, y, "(in + pads - dilated kernel) / stride + 1 rows and columns"));
        }
    }
    Ok(ConvGeometry {
        input: xs,
        output: ys,
        kernel,
        stride: stride.map(|v| v as usize),
        dilation: dilation.map(|v| v as usize),
        pad: [pad[0] as usize, pad[1] as usize],
    })
}
