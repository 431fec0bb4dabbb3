//! `transpose`: `[x]` → `y` with permuted axes; int8 input and output share quantization.

use super::{
    arity, expect_dtype, expect_same_quant, input, is_int8, kernel_bit, kernel_io, output, shape_error,
    Kernels, OpIo, PerAxis,
};
use crate::format::params::TransposeParams;
use crate::format::{OpKind, MAX_RANK};
use crate::kernels::transpose::transpose;
use crate::model::{Model, OpInfo};
use crate::Error;

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::Transpose);

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    arity(op, 1)?;
    let p: TransposeParams = op.params()?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    expect_dtype(op, &y, x.dtype)?;
    let rank = x.dims.len();
    let (Some(mut perm), Some(mut shape)) = (PerAxis::new(rank, 0), PerAxis::new(rank, 0)) else {
        return Err(shape_error(op, &x, "rank at most 6"));
    };
    let mut seen = [false; MAX_RANK];
    if y.dims.len() != rank {
        return Err(shape_error(op, &y, "the input's rank"));
    }
    for ((axis, &yd), &from) in perm.values_mut().iter_mut().zip(y.dims).zip(&p.perm) {
        let from = from as usize;
        let (Some(&xd), Some(seen)) = (x.dims.get(from), seen.get_mut(from)) else {
            return Err(op.error("perm is not a permutation of the input's axes"));
        };
        if *seen {
            return Err(op.error("perm is not a permutation of the input's axes"));
        }
        *seen = true;
        if yd != xd {
            return Err(shape_error(op, &y, "the input's dims permuted"));
        }
        *axis = from;
    }
    for (s, &xd) in shape.values_mut().iter_mut().zip(x.dims) {
        *s = xd as usize;
    }
    let (shape, perm) = (shape.values(), perm.values());
    if is_int8(op, &x)? {
        expect_same_quant(op, &x, &y)?;
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        transpose::<i8>(shape, perm, io.read.input(&x)?, io.output()?);
    } else {
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        transpose::<f32>(shape, perm, io.read.input(&x)?, io.output()?);
    }
    Ok(())
}
