//! Unary activations (`relu`, `clip`, `leaky_relu`, `hard_swish`, `hard_sigmoid`, `sigmoid`,
//! `tanh`): `[x]` → `y` in f32, `[x, table]` → `y` in int8 through a 256-entry table.

use super::{
    arity, expect_constant, expect_dims, expect_dtype, input, is_int8, kernel_bit, kernel_io, output,
    shape_error, Kernels, OpIo,
};
use crate::format::params::UnaryParams;
use crate::format::{DType, OpKind};
use crate::kernels::activation::{self, UnaryF32};
use crate::model::{Model, OpInfo};
use crate::Error;

/// The f32 function of a unary op kind.
pub(crate) fn unary(kind: OpKind, p: &UnaryParams) -> Option<UnaryF32> {
    Some(match kind {
        OpKind::Relu => UnaryF32::Relu,
        OpKind::Clip => UnaryF32::Clip { min: p.a, max: p.b },
        OpKind::LeakyRelu => UnaryF32::LeakyRelu { alpha: p.a },
        OpKind::HardSwish => UnaryF32::HardSwish,
        OpKind::HardSigmoid => UnaryF32::HardSigmoid { alpha: p.a, beta: p.b },
        OpKind::Sigmoid => UnaryF32::Sigmoid,
        OpKind::Tanh => UnaryF32::Tanh,
        _ => return None,
    })
}

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::Relu)
    | kernel_bit(OpKind::Clip)
    | kernel_bit(OpKind::LeakyRelu)
    | kernel_bit(OpKind::HardSwish)
    | kernel_bit(OpKind::HardSigmoid)
    | kernel_bit(OpKind::Sigmoid)
    | kernel_bit(OpKind::Tanh);

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    let p: UnaryParams = op.params()?;
    let f = unary(op.kind, &p).ok_or(op.error("not a unary op"))?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    if x.dims != y.dims {
        return Err(shape_error(op, &y, "the input's shape"));
    }
    expect_dtype(op, &y, x.dtype)?;
    if is_int8(op, &x)? {
        arity(op, 2)?;
        let table = input(model, op, 1)?;
        expect_constant(op, &table)?;
        expect_dtype(op, &table, DType::I8)?;
        expect_dims(op, &table, &[256], "[256]")?;
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        let xv = io.read.operand::<i8>(&x)?;
        let table: &[i8; 256] = io.read.input::<i8>(&table)?.try_into().map_err(|_| op.error("table"))?;
        activation::lookup_i8(table, xv, io.output()?);
    } else {
        arity(op, 1)?;
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        let xv = io.read.operand::<f32>(&x)?;
        activation::unary_f32(f, xv, io.output()?);
    }
    Ok(())
}
