//! `reshape`: `[x]` → `y` with the same elements; `y` aliases `x`'s storage, so nothing runs.

use super::{arity, expect_dtype, expect_same_quant, input, output, shape_error, OpIo};
use crate::model::{Model, OpInfo};
use crate::Error;

pub(super) fn run(model: &Model, op: &OpInfo, _io: Option<OpIo>) -> Result<(), Error> {
    arity(op, 1)?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    expect_dtype(op, &y, x.dtype)?;
    expect_same_quant(op, &x, &y)?;
    if x.len() != y.len() {
        return Err(shape_error(op, &y, "as many elements as the input"));
    }
    let root = x.alias_of.unwrap_or(x.id);
    if y.alias_of != Some(root) {
        return Err(op.error("output must alias the input's storage"));
    }
    Ok(())
}
