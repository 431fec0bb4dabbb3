//! `transpose`: `[x]` → `y` with permuted axes; int8 input and output share quantization.

use super::{
    arity, expect_dtype, expect_same_quant, input, is_int8, kernel_bit, kernel_io, output, shape_error,
    Kernels, OpIo,
};
use crate::format::params::TransposeParams;
use crate::format::OpKind;
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
    let mut perm = [0usize; 6];
    let mut shape = [0usize; 6];
    let mut seen = [false; 6];
    if y.dims.len() != rank {
        return Err(shape_error(op, &y, "the input's rank"));
    }
    for i in 0..rank {
        let a = p.perm[i] as usize;
        if a >= rank || seen[a] {
            return Err(op.error("perm is not a permutation of the input's axes"));
        }
        seen[a] = true;
        if y.dims[i] != x.dims[a] {
            return Err(shape_error(op, &y, "the input's dims permuted"));
        }
        perm[i] = a;
        shape[i] = x.dims[i] as usize;
    }
    if is_int8(op, &x)? {
        expect_same_quant(op, &x, &y)?;
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        transpose::<i8>(&shape[..rank], &perm[..rank], io.read.input(&x)?, io.output()?);
    } else {
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        transpose::<f32>(&shape[..rank], &perm[..rank], io.read.input(&x)?, io.output()?);
    }
    Ok(())
}
