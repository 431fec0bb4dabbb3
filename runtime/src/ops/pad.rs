//! `pad`: `[x]` → `y` with constant padding; int8 input and output share quantization.

use super::{
    arity, expect_dtype, expect_same_quant, input, is_int8, kernel_bit, kernel_io, output, shape_error,
    Kernels, OpIo, PerAxis,
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
    let (Some(mut shape), Some(mut pads)) = (PerAxis::new(rank, 0), PerAxis::new(rank, [0; 2])) else {
        return Err(shape_error(op, &x, "rank at most 6"));
    };
    if y.dims.len() != rank {
        return Err(shape_error(op, &y, "the input's rank"));
    }
    let axes = x.dims.iter().zip(y.dims).zip(&p.pads);
    for ((s, pad), ((&xd, &yd), &[before, after])) in
        shape.values_mut().iter_mut().zip(pads.values_mut()).zip(axes)
    {
        if xd as u64 + before as u64 + after as u64 != yd as u64 {
            return Err(shape_error(op, &y, "input dims plus pads"));
        }
        *s = xd as usize;
        *pad = [before as usize, after as usize];
    }
    let (shape, pads) = (shape.values(), pads.values());
    if is_int8(op, &x)? {
        expect_same_quant(op, &x, &y)?;
        let value = i8::try_from(p.qvalue).map_err(|_| op.error("int8 pad value out of range"))?;
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        pad(shape, pads, value, io.read.input(&x)?, io.output()?);
    } else {
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        pad(shape, pads, p.value, io.read.input(&x)?, io.output()?);
    }
    Ok(())
}
