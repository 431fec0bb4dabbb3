//! `mul`: `[a, b]` → `y` with numpy broadcasting.

use super::binary::operands;
use super::{check_requant, clamp_f32, clamp_i8, OpIo};
use crate::format::params::MulParams;
use crate::kernels::mul::{self, MulParams as Int8Mul};
use crate::model::{Model, OpInfo};
use crate::Error;

pub(super) fn run(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    let p: MulParams = op.params()?;
    let o = operands(model, op)?;
    let [da, db, dy] = o.dims;
    let r = o.rank;
    if o.int8 {
        check_requant(op, &p.output)?;
        let q = Int8Mul {
            a_offset: -o.a.scale_zero_point().1,
            b_offset: -o.b.scale_zero_point().1,
            output_offset: o.y.scale_zero_point().1,
            output: p.output,
            act: clamp_i8(op, &p.act)?,
        };
        let Some(mut io) = io else { return Ok(()) };
        let (a, b) = (io.read.input(&o.a)?, io.read.input(&o.b)?);
        mul::mul_i8(&dy[..r], &da[..r], a, &db[..r], b, &q, io.output()?);
    } else {
        let Some(mut io) = io else { return Ok(()) };
        let (a, b) = (io.read.input(&o.a)?, io.read.input(&o.b)?);
        mul::mul_f32(&dy[..r], &da[..r], a, &db[..r], b, clamp_f32(&p.act), io.output()?);
    }
    Ok(())
}
