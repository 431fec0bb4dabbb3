//! `depthwise_conv2d`: `[x, w [1,KH,KW,Cout], bias]` (+ `requant`) → `y`, Cout = Cin × multiplier.

use super::conv2d::{dims4, geometry};
use super::{input, nhwc, output, shape_error, weighted, OpIo};
use crate::format::params::ConvParams;
use crate::kernels::depthwise_conv2d;
use crate::model::{Model, OpInfo};
use crate::Error;

pub(super) fn run(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    let p: ConvParams = op.params()?;
    let (x, w, y) = (input(model, op, 0)?, input(model, op, 1)?, output(model, op)?);
    let (xs, ys) = (nhwc(op, &x)?, nhwc(op, &y)?);
    let [one, kh, kw, cout] = dims4(op, &w)?;
    if one != 1 || cout != ys.c || xs.c == 0 || cout % xs.c != 0 {
        return Err(shape_error(op, &w, "[1, KH, KW, Cout] with Cout a multiple of Cin"));
    }
    let g = geometry(op, &y, xs, ys, [kh, kw], p.stride, p.dilation, p.pad)?;
    let kernels = weighted::Kernels {
        i8: depthwise_conv2d::depthwise_conv2d_i8,
        f32: depthwise_conv2d::depthwise_conv2d_f32::<f32>,
        f16: depthwise_conv2d::depthwise_conv2d_f32::<half::f16>,
    };
    weighted::run(model, op, io, &g, cout, &p.act, kernels)
}
