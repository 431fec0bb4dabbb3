//! `softmax`: `[x]` → `y` over the last axis; int8 output has scale 1/256, zero point -128.

use super::{arity, expect_dtype, input, is_int8, kernel_bit, kernel_io, output, shape_error, Kernels, OpIo};
use crate::format::params::SoftmaxParams;
use crate::format::OpKind;
use crate::kernels::softmax::{self, SoftmaxParams as Int8Softmax};
use crate::model::{Model, OpInfo};
use crate::Error;

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::Softmax);

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    arity(op, 1)?;
    let p: SoftmaxParams = op.params()?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    expect_dtype(op, &y, x.dtype)?;
    if x.dims != y.dims {
        return Err(shape_error(op, &y, "the input's shape"));
    }
    let depth = x.dims.last().map_or(1, |&d| d as usize);
    let rows = x.len() / depth;
    if is_int8(op, &x)? {
        if y.scale_zero_point() != (1.0 / 256.0, -128) {
            return Err(op.error("int8 softmax output must have scale 1/256 and zero point -128"));
        }
        if !(0..=31).contains(&p.input_left_shift) || p.input_multiplier < 0 || p.diff_min > 0 {
            return Err(op.error("int8 softmax parameters out of range"));
        }
        let q = Int8Softmax {
            input_multiplier: p.input_multiplier,
            input_left_shift: p.input_left_shift,
            diff_min: p.diff_min,
        };
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        softmax::softmax_i8(rows, depth, &q, io.read.operand(&x)?, io.output()?);
    } else {
        if !p.beta.is_finite() {
            return Err(op.error("beta must be finite"));
        }
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        softmax::softmax_f32(rows, depth, p.beta, io.read.operand(&x)?, io.output()?);
    }
    Ok(())
}
