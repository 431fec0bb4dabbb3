//! `quantize`: `[x f32]` → `y i8` of the same dims, with `y`'s per-tensor scale and zero point.

use super::{
    arity, expect_dtype, input, kernel_bit, kernel_io, output, per_tensor, same_dims, Kernels, OpIo,
};
use crate::format::{DType, OpKind};
use crate::kernels::quantize;
use crate::model::{Model, OpInfo};
use crate::Error;

/// The op kinds this module runs.
const KINDS: u32 = kernel_bit(OpKind::Quantize);

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    arity(op, 1)?;
    let (x, y) = (input(model, op, 0)?, output(model, op)?);
    expect_dtype(op, &x, DType::F32)?;
    expect_dtype(op, &y, DType::I8)?;
    same_dims(op, &x, &y)?;
    let (scale, zero_point) = per_tensor(op, &y)?;
    let Some(mut io) = kernel_io::<K>(op, io, KINDS, true)? else { return Ok(()) };
    quantize::quantize(io.read.input(&x)?, scale, zero_point, io.output()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::format::params::NoParams;
    use crate::format::writer::{IoDesc, ModelBuilder, Quant};
    use crate::format::{DType, OpKind};
    use crate::ops::{kernel_bit, Kernels};
    use crate::{AlignedBytes, Error, Interpreter, Model};

    const Q: Quant = Quant::PerTensor { scale: 0.5, zero_point: -3 };

    /// `x f32 [1,6] → quantize → q i8 (Q) → dequantize → y f32`, with `q`'s dtype and dims
    /// and `y`'s dims as given.
    fn model(q_dtype: DType, q_dims: &[usize], y_dims: &[usize]) -> AlignedBytes {
        let mut b = ModelBuilder::new();
        let x = b.activation(DType::F32, &[1, 6], None).unwrap();
        let quant = (q_dtype == DType::I8).then_some(&Q);
        let q = b.activation(q_dtype, q_dims, quant).unwrap();
        let y = b.activation(DType::F32, y_dims, None).unwrap();
        b.op(OpKind::Quantize, &[x], &[q], &NoParams).unwrap();
        b.op(OpKind::Dequantize, &[q], &[y], &NoParams).unwrap();
        b.input(IoDesc { tensor: x, name: "x".into(), onnx_shape: vec![1, 6], perm: vec![0, 1] });
        let y_shape = y_dims.to_vec();
        b.output(IoDesc {
            tensor: y,
            name: "y".into(),
            perm: (0..y_shape.len()).collect(),
            onnx_shape: y_shape,
        });
        b.place(x, 0);
        b.place(q, 32);
        b.place(y, 64);
        b.arena_bytes(96);
        AlignedBytes::new(&b.finish().unwrap())
    }

    #[test]
    fn quantize_then_dequantize_rounds_to_the_grid() {
        let bytes = model(DType::I8, &[1, 6], &[1, 6]);
        let m = Model::from_bytes(&bytes).unwrap();
        let mut arena = [0u8; 112];
        let mut interp = Interpreter::new(&m, &mut arena).unwrap();
        // q = round(x / 0.5) − 3: 2.5 ties away from zero; 1000 and NaN saturate / give zp.
        interp.set_input(0, &[1.25, -1.25, 0.1, 1000.0, -1000.0, f32::NAN]).unwrap();
        interp.invoke().unwrap();
        let mut y = [0f32; 6];
        interp.get_output(0, &mut y).unwrap();
        assert_eq!(y, [1.5, -1.5, 0.0, 65.0, -62.5, 0.0]);
    }

    #[test]
    fn dtypes_and_shapes_are_checked() {
        let bad =
            |bytes: AlignedBytes| Model::from_bytes(&bytes).unwrap().validate_ops::<crate::AllKernels>();
        let reason = "an input or output has the wrong element type";
        let err = Error::BadOp { op: 0, kind: Some(OpKind::Quantize), reason };
        assert_eq!(bad(model(DType::F32, &[1, 6], &[1, 6])), Err(err));
        assert!(matches!(
            bad(model(DType::I8, &[6, 1], &[6, 1])),
            Err(Error::ShapeMismatch { op: 0, kind: OpKind::Quantize, .. })
        ));
        assert!(matches!(
            bad(model(DType::I8, &[1, 6], &[6, 1])),
            Err(Error::ShapeMismatch { op: 1, kind: OpKind::Dequantize, .. })
        ));
    }

    #[test]
    fn quantize_is_an_int8_kernel_and_dequantize_a_float_one() {
        struct Pair;
        impl Kernels for Pair {
            const INT8: u32 = kernel_bit(OpKind::Quantize);
            const FLOAT: u32 = kernel_bit(OpKind::Dequantize);
        }
        struct Swapped;
        impl Kernels for Swapped {
            const INT8: u32 = kernel_bit(OpKind::Dequantize);
            const FLOAT: u32 = kernel_bit(OpKind::Quantize);
        }
        let bytes = model(DType::I8, &[1, 6], &[1, 6]);
        let m = Model::from_bytes(&bytes).unwrap();
        assert_eq!(m.validate_ops::<Pair>(), Ok(()));
        let err = Error::KernelNotLinked { op: 0, kind: OpKind::Quantize };
        assert_eq!(m.validate_ops::<Swapped>(), Err(err));
    }
}
