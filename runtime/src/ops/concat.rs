//! `concat`: `[x0, x1, …]` → `y` along one axis; int8 inputs and output share quantization.

use super::{
    expect_dtype, expect_same_quant, input, is_int8, kernel_bit, kernel_io, output, shape_error, Element,
    Kernels, OpIo,
};
use crate::format::params::ConcatParams;
use crate::format::OpKind;
use crate::kernels::concat::concat_part;
use crate::model::{Model, OpInfo, TensorInfo};
use crate::Error;

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    let p: ConcatParams = op.params()?;
    let y = output(model, op)?;
    let axis = p.axis as usize;
    if axis >= y.dims.len() || op.inputs.is_empty() {
        return Err(op.error("axis beyond the output's rank, or no inputs"));
    }
    let int8 = is_int8(op, &y)?;
    let mut total = 0u64;
    for i in 0..op.inputs.len() {
        let x = input(model, op, i)?;
        expect_dtype(op, &x, y.dtype)?;
        if int8 {
            expect_same_quant(op, &x, &y)?;
        }
        let same_elsewhere = x.dims.len() == y.dims.len()
            && x.dims.iter().zip(y.dims).enumerate().all(|(d, (a, b))| d == axis || a == b);
        if !same_elsewhere {
            return Err(shape_error(op, &x, "the output's shape except along the axis"));
        }
        total += u64::from(along(op, &x, axis)?);
    }
    if total != u64::from(along(op, &y, axis)?) {
        return Err(shape_error(op, &y, "the sum of the inputs along the axis"));
    }
    let Some(io) = kernel_io::<K>(op, io, kernel_bit(OpKind::Concat), int8)? else { return Ok(()) };
    if int8 {
        copy_parts::<i8>(model, op, io, axis)
    } else {
        copy_parts::<f32>(model, op, io, axis)
    }
}

fn copy_parts<T: Element>(model: &Model, op: &OpInfo, mut io: OpIo, axis: usize) -> Result<(), Error> {
    let y = output(model, op)?;
    let (outer, after) = y.dims.split_at_checked(axis).ok_or(op.error("axis beyond the output's rank"))?;
    let inner: usize = after.iter().skip(1).map(|&d| d as usize).product();
    let outer: usize = outer.iter().map(|&d| d as usize).product();
    let total = along(op, &y, axis)? as usize * inner;
    let read = io.read;
    let out = io.output::<T>()?;
    let mut offset = 0;
    for i in 0..op.inputs.len() {
        let x = input(model, op, i)?;
        let part = along(op, &x, axis)? as usize * inner;
        concat_part(outer, part, total, offset, read.input::<T>(&x)?, out);
        offset += part;
    }
    Ok(())
}

/// The dim of `t` along `axis`.
fn along(op: &OpInfo, t: &TensorInfo, axis: usize) -> Result<u32, Error> {
    t.dims.get(axis).copied().ok_or(shape_error(op, t, "a dim along the concat axis"))
}

#[cfg(test)]
mod tests {
    use crate::format::{DType, OpKind, OpRecord, Storage};
    use crate::model::{tensor_record, Model};
    use crate::Error;

    #[test]
    fn axis_sum_past_the_address_space_is_a_shape_error() {
        // Two inputs of 2^31 elements: their sum along the axis overflowed `usize` on 32-bit targets.
        let t = |dim| tensor_record(DType::I8, Storage::Arena, &[dim]);
        let tensors = [t(1 << 31), t(1 << 31), t(u32::MAX)];
        let ops = [OpRecord {
            kind: OpKind::Concat as u8,
            n_inputs: 2,
            n_outputs: 1,
            params_len: 4,
            ..Default::default()
        }];
        let model = Model::from_parts(&tensors, &ops, &[0, 1, 2], &[0; 4], 0);
        let expected = "the sum of the inputs along the axis";
        assert_eq!(
            crate::ops::prepare::<crate::AllKernels>(&model, &model.op(0).unwrap()),
            Err(Error::ShapeMismatch { op: 0, kind: OpKind::Concat, tensor: 2, expected })
        );
    }
}
