//! `depthwise_conv2d`: `[x, w [1,KH,KW,Cout], bias]` (+ `requant`) → `y`, Cout = Cin × multiplier.

use core::marker::PhantomData;

use super::conv2d::{dims4, geometry};
use super::{input, is_int8, links_depthwise_layout, nhwc, output, shape_error, weighted, Kernels, OpIo};
use crate::format::layout::WeightLayout;
use crate::format::params::ConvParams;
use crate::format::OpKind;
use crate::kernels::scratch::{Scratch, ScratchOp};
use crate::kernels::{ClampF32, ConvGeometry, Int8Params, LaidOut, Weight};
use crate::model::{Model, OpInfo};
use crate::Error;

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    let (p, g) = shapes(model, op)?;
    weighted::run::<K, DepthwiseConv2dKernels<K>>(model, op, io, &g, g.output.c, &p.act)
}

/// What the kernels' scratch depends on (int8 only: the float kernels need none).
pub(super) fn scratch_op(model: &Model, op: &OpInfo) -> Result<Option<ScratchOp>, Error> {
    let g = shapes(model, op)?.1;
    Ok(is_int8(op, &input(model, op, 0)?)?.then_some(ScratchOp::DepthwiseI8(g)))
}

/// The parameters and the checked geometry.
fn shapes(model: &Model, op: &OpInfo) -> Result<(ConvParams, ConvGeometry), Error> {
    let p: ConvParams = op.params()?;
    let (x, w, y) = (input(model, op, 0)?, input(model, op, 1)?, output(model, op)?);
    let (xs, ys) = (nhwc(op, &x)?, nhwc(op, &y)?);
    let [one, kh, kw, cout] = dims4(op, &w)?;
    if one != 1 || cout != ys.c || xs.c == 0 || cout % xs.c != 0 {
        return Err(shape_error(op, &w, "[1, KH, KW, Cout] with Cout a multiple of Cin"));
    }
    let g = geometry(op, &y, xs, ys, [kh, kw], p.stride, p.dilation, p.pad)?;
    Ok((p, g))
}

/// `depthwise_conv2d`'s kernels in a firmware linking kernels `K`.
struct DepthwiseConv2dKernels<K>(PhantomData<K>);

impl<K: Kernels> weighted::WeightedKernels for DepthwiseConv2dKernels<K> {
    const KIND: OpKind = OpKind::DepthwiseConv2d;
    type Geometry = ConvGeometry;

    fn links(layout: WeightLayout) -> bool {
        links_depthwise_layout::<K>(layout)
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
        use crate::kernels::selected::{depthwise_conv2d_i8, depthwise_conv2d_i8_laid_out};
        use WeightLayout::*;
        // As in `conv2d`: each guard is a constant once `K` is known.
        match w.layout {
            Standard if links_depthwise_layout::<K>(Standard) => {
                depthwise_conv2d_i8(g, q, x, w.bytes, bias, out, scratch)
            }
            DspDepthwiseRows if links_depthwise_layout::<K>(DspDepthwiseRows) => {
                depthwise_conv2d_i8_laid_out::<{ DspDepthwiseRows as u8 }>(
                    g, q, x, w.bytes, bias, out, scratch,
                )
            }
            DspDepthwiseColumns if links_depthwise_layout::<K>(DspDepthwiseColumns) => {
                depthwise_conv2d_i8_laid_out::<{ DspDepthwiseColumns as u8 }>(
                    g, q, x, w.bytes, bias, out, scratch,
                )
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
        _: Scratch,
    ) {
        crate::kernels::selected::depthwise_conv2d_f32(g, x, w, bias, act, out)
    }
}
