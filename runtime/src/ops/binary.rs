//! What `add` and `mul` share: numpy broadcasting of two same-typed inputs.

use super::{arity, expect_dtype, input, is_int8, output, padded_dims, shape_error, PerAxis};
use crate::model::{Model, OpInfo, TensorInfo};
use crate::Error;

/// The checked operands of a broadcasting binary op.
pub(super) struct Operands<'a> {
    /// Left input.
    pub a: TensorInfo<'a>,
    /// Right input.
    pub b: TensorInfo<'a>,
    /// Output.
    pub y: TensorInfo<'a>,
    /// Dims of `a`, `b` and `y`, padded to the output's rank with leading ones.
    pub dims: [PerAxis<usize>; 3],
    /// Whether the op computes in int8.
    pub int8: bool,
}

/// Checks arity, element types and broadcast shapes.
pub(super) fn operands<'a>(model: &Model<'a>, op: &OpInfo) -> Result<Operands<'a>, Error> {
    arity(op, 2)?;
    let (a, b, y) = (input(model, op, 0)?, input(model, op, 1)?, output(model, op)?);
    let int8 = is_int8(op, &a)?;
    expect_dtype(op, &b, a.dtype)?;
    expect_dtype(op, &y, a.dtype)?;
    let rank = y.dims.len();
    let expected = "the broadcast of both inputs (same rank, each dim equal or 1)";
    let pa = padded_dims(&a, rank).ok_or(shape_error(op, &a, expected))?;
    let pb = padded_dims(&b, rank).ok_or(shape_error(op, &b, expected))?;
    let py = padded_dims(&y, rank).ok_or(shape_error(op, &y, expected))?;
    for ((&da, &db), &dy) in pa.values().iter().zip(pb.values()).zip(py.values()) {
        let ok = |d: usize| d == dy || d == 1;
        if !ok(da) || !ok(db) || dy != da.max(db) {
            return Err(shape_error(op, &y, expected));
        }
    }
    Ok(Operands { a, b, y, dims: [pa, pb, py], int8 })
}
