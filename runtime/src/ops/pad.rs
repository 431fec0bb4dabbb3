//! `pad`: `[x]` → `y` with constant padding; int8 input and output share quantization.

use super::{
    arity, expect_dtype, expect_same_quant, input, is_int8, kernel_bit, kernel_io, output, shape_error,
    Kernels, OpIo,
};
use crate::format::params::PadParams;
use crate::format::OpKind;
use crate::kernels::pad::pad;
use crate::model::{Model, OpInfo};
use crate::Error;

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::Pad);

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    arity(op, 1)?;
    let p: PadParams = op.params()?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    expect_dtype(op, &y, x.dtype)?;
    let rank = x.dims.len();
    let mut shape = [0usize; 6];
    let mut pads = [[0usize; 2]; 6];
    if y.dims.len() != rank {
        return Err(shape_error(op, &y, "the input's rank"));
    }
    for i in 0..rank {
        let [before, after] = p.pads[i].map(|v| v as u64);
        if x.dims[i] as u64 + before + after != y.dims[i] as u64 {
            return Err(shape_error(op, &y, "input dims plus pads"));
        }
        shape[i] = x.dims[i] as usize;
        pads[i] = p.pads[i].map(|v| v as usize);
    }
    if is_int8(op, &x)? {
        expect_same_quant(op, &x, &y)?;
        let value = i8::try_from(p.qvalue).map_err(|_| op.error("int8 pad value out of range"))?;
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        pad(&shape[..rank], &pads[..rank], value, io.read.input(&x)?, io.output()?);
    } else {
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        pad(&shape[..rank], &pads[..rank], p.value, io.read.input(&x)?, io.output()?);
    }
    Ok(())
}
