//! `max_pool` and `average_pool`: `[x]` → `y`; int8 input and output share quantization.

use super::conv2d::geometry;
use super::{
    arity, clamp_f32, clamp_i8, expect_dtype, expect_same_quant, input, is_int8, kernel_bit, kernel_io, nhwc,
    output, shape_error, Kernels, OpIo,
};
use crate::format::params::PoolParams;
use crate::format::OpKind;
use crate::kernels::pool;
use crate::model::{Model, OpInfo};
use crate::Error;

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::MaxPool) | kernel_bit(OpKind::AveragePool);

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    arity(op, 1)?;
    let p: PoolParams = op.params()?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    let (xs, ys) = (nhwc(op, &x)?, nhwc(op, &y)?);
    if xs.c != ys.c {
        return Err(shape_error(op, &y, "the input's channel count"));
    }
    let kernel = [p.kernel[0] as usize, p.kernel[1] as usize];
    let g = geometry(op, &y, xs, ys, kernel, p.stride, [1, 1], p.pad)?;
    expect_dtype(op, &y, x.dtype)?;
    let max = op.kind == OpKind::MaxPool;
    if is_int8(op, &x)? {
        expect_same_quant(op, &x, &y)?;
        let act = clamp_i8(op, &p.act)?;
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        let xv = io.read.input(&x)?;
        let kernel = if max { pool::max_pool_i8 } else { crate::kernels::selected::average_pool_i8 };
        kernel(&g, xv, act, io.output()?);
    } else {
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        let xv = io.read.input(&x)?;
        let kernel = if max { pool::max_pool_f32 } else { pool::average_pool_f32 };
        kernel(&g, xv, clamp_f32(&p.act), io.output()?);
    }
    Ok(())
}
