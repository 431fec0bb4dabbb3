//! `mean`: `[x [N,H,W,C]]` → `y [N,1,1,C]`, the average over height and width.

use super::{
    arity, check_requant, expect_dims, expect_dtype, input, is_int8, kernel_bit, kernel_io, nhwc, output,
    Kernels, OpIo,
};
use crate::format::params::MeanParams;
use crate::format::OpKind;
use crate::kernels::mean;
use crate::model::{Model, OpInfo};
use crate::Error;

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::Mean);

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    arity(op, 1)?;
    let p: MeanParams = op.params()?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    let xs = nhwc(op, &x)?;
    expect_dims(op, &y, &[xs.n, 1, 1, xs.c], "[N, 1, 1, C]")?;
    expect_dtype(op, &y, x.dtype)?;
    if is_int8(op, &x)? {
        check_requant(op, &p.requant)?;
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        let (zx, zy) = (x.scale_zero_point().1, y.scale_zero_point().1);
        mean::mean_i8(xs, zx, zy, p.requant, io.read.input(&x)?, io.output()?);
    } else {
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        mean::mean_f32(xs, io.read.input(&x)?, io.output()?);
    }
    Ok(())
}
