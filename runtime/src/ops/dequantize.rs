//! `dequantize`: `[x i8]` → `y f32` of the same dims, with `x`'s per-tensor scale and zero point.

use super::{
    arity, expect_dtype, input, kernel_bit, kernel_io, output, per_tensor, same_dims, Kernels, OpIo,
};
use crate::format::{DType, OpKind};
use crate::kernels::dequantize;
use crate::model::{Model, OpInfo};
use crate::Error;

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::Dequantize);

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    arity(op, 1)?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    expect_dtype(op, &x, DType::I8)?;
    expect_dtype(op, &y, DType::F32)?;
    same_dims(op, &x, &y)?;
    let (scale, zero_point) = per_tensor(op, &x)?;
    let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
    dequantize::dequantize(io.read.input(&x)?, scale, zero_point, io.output()?);
    Ok(())
}
