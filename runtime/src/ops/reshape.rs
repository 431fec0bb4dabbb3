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

#[cfg(test)]
mod tests {
    use crate::format::params::{NoParams, UnaryParams};
    use crate::format::writer::{IoDesc, ModelBuilder, Quant};
    use crate::format::{DType, OpKind};
    use crate::{AlignedBytes, Error, Interpreter, Model};

    /// `x [1,2,2,2] → reshape → [1,8] → relu → y`; `alias` decides whether the reshape output
    /// shares the input's storage as required.
    fn model(dtype: DType, alias: bool) -> AlignedBytes {
        let mut b = ModelBuilder::new();
        let q = Quant::PerTensor { scale: 0.5, zero_point: 3 };
        let quant = (dtype == DType::I8).then_some(&q);
        let x = b.activation(dtype, &[1, 2, 2, 2], quant).unwrap();
        let r = b.activation(dtype, &[1, 8], quant).unwrap();
        let y = b.activation(dtype, &[1, 8], quant).unwrap();
        if alias {
            b.alias(r, x);
        }
        b.op(OpKind::Reshape, &[x], &[r], &NoParams).unwrap();
        let relu = UnaryParams { a: 0.0, b: 0.0 };
        if dtype == DType::I8 {
            let table: Vec<i8> = (0..256).map(|i| (i as u8 as i8).max(3)).collect();
            let t = b.constant_of(DType::I8, &[256], &table, None).unwrap();
            b.op(OpKind::Relu, &[r, t], &[y], &relu).unwrap();
        } else {
            b.op(OpKind::Relu, &[r], &[y], &relu).unwrap();
        }
        b.input(IoDesc { tensor: x, name: "x".into(), onnx_shape: vec![1, 2, 2, 2], perm: vec![0, 1, 2, 3] });
        b.output(IoDesc { tensor: y, name: "y".into(), onnx_shape: vec![1, 8], perm: vec![0, 1] });
        b.place(x, 0);
        b.place(r, if alias { 0 } else { 64 });
        b.place(y, 32);
        b.arena_bytes(96);
        AlignedBytes::new(&b.finish().unwrap())
    }

    #[test]
    fn reshape_aliases_its_input_in_f32_and_int8() {
        for dtype in [DType::F32, DType::I8] {
            let bytes = model(dtype, true);
            let m = Model::from_bytes(&bytes).unwrap();
            let mut arena = [0u8; 112];
            let mut interp = Interpreter::new(&m, &mut arena).unwrap();
            let x = [-2.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 10.0];
            interp.set_input(0, &x).unwrap();
            interp.invoke().unwrap();
            let mut y = [0f32; 8];
            interp.get_output(0, &mut y).unwrap();
            assert_eq!(y, [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 10.0], "{dtype:?}");
        }
    }

    #[test]
    fn reshape_without_alias_is_rejected() {
        let bytes = model(DType::F32, false);
        let err = Model::from_bytes(&bytes).unwrap().validate_ops::<crate::AllKernels>().err();
        assert_eq!(
            err,
            Some(Error::BadOp {
                op: 0,
                kind: Some(OpKind::Reshape),
                reason: "output must alias the input's storage"
            })
        );
    }
}
