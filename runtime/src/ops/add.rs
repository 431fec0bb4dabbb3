//! `add`: `[a, b]` → `y` with numpy broadcasting.

use super::binary::operands;
use super::{check_requant, clamp_f32, clamp_i8, kernel_bit, kernel_io, Kernels, OpIo};
use crate::format::params::AddParams;
use crate::format::OpKind;
use crate::kernels::add::{self, AddParams as Int8Add};
use crate::kernels::scratch::ScratchOp;
use crate::model::{Model, OpInfo};
use crate::Error;

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::Add);

/// What the kernels' scratch depends on (int8 only: the float kernel needs none).
pub(super) fn scratch_op(model: &Model, op: &OpInfo) -> Result<Option<ScratchOp>, Error> {
    let o = operands(model, op)?;
    let broadcast = o.a.dims != o.y.dims || o.b.dims != o.y.dims;
    Ok(o.int8.then_some(ScratchOp::AddI8 { broadcast }))
}

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    let p: AddParams = op.params()?;
    let o = operands(model, op)?;
    let [da, db, dy] = o.dims.each_ref().map(|d| d.values());
    if o.int8 {
        for q in [&p.a, &p.b, &p.output] {
            check_requant(op, q)?;
        }
        if !(0..=20).contains(&p.left_shift) {
            return Err(op.error("left shift outside 0..=20"));
        }
        let q = Int8Add {
            a_offset: -o.a.scale_zero_point().1,
            b_offset: -o.b.scale_zero_point().1,
            output_offset: o.y.scale_zero_point().1,
            left_shift: p.left_shift,
            a: p.a,
            b: p.b,
            output: p.output,
            act: clamp_i8(op, &p.act)?,
        };
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
        let (a, b) = (io.read.operand(&o.a)?, io.read.operand(&o.b)?);
        let (out, scratch) = io.output_and_scratch()?;
        crate::kernels::selected::add_i8(dy, da, a, db, b, &q, out, scratch);
    } else {
        let Some(mut io) = kernel_io::<K>(op, io, KINDS, false)? else { return Ok(()) };
        let (a, b) = (io.read.operand(&o.a)?, io.read.operand(&o.b)?);
        add::add_f32(dy, da, a, db, b, clamp_f32(&p.act), io.output()?);
    }
    Ok(())
}
