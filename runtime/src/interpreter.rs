//! Runs a validated model over a caller-provided arena.

use core::marker::PhantomData;

use crate::format::{DType, OpKind};
use crate::model::{IoInfo, Model, TensorInfo};
use crate::ops::{self, AllKernels, Kernels};
use crate::{quant, Error};

/// Alignment the interpreter gives the arena's start.
const ARENA_ALIGN: usize = 16;
/// Most inputs a model may have (one bit each in `Interpreter::written`).
const MAX_INPUTS: usize = 64;

/// An op about to run or just run, for [`Hook`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OpEvent {
    /// Op index in the model.
    pub index: u16,
    /// Op kind.
    pub kind: OpKind,
}

/// An op's output right after it ran.
#[derive(Clone, Copy, Debug)]
pub struct OpOutput<'a> {
    /// The output tensor.
    pub tensor: TensorInfo<'a>,
    /// Its bytes in the arena.
    pub bytes: &'a [u8],
}

impl OpOutput<'_> {
    /// The output as f32 values, if it is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        (self.tensor.dtype == DType::F32).then(|| bytemuck::try_cast_slice(self.bytes).ok())?
    }

    /// The output as int8 values, if it is an int8 tensor.
    pub fn as_i8(&self) -> Option<&[i8]> {
        (self.tensor.dtype == DType::I8).then(|| bytemuck::cast_slice(self.bytes))
    }
}

/// Called around every op by [`Interpreter::invoke_with`], e.g. to time layers on a board.
pub trait Hook {
    /// Before op `event.index` runs.
    fn before(&mut self, _event: OpEvent) {}
    /// After op `event.index` ran, with its output.
    fn after(&mut self, _event: OpEvent, _output: OpOutput<'_>) {}
}

/// A hook that does nothing.
pub struct NoHook;

impl Hook for NoHook {}

impl<H: Hook + ?Sized> Hook for &mut H {
    fn before(&mut self, event: OpEvent) {
        (**self).before(event);
    }

    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        (**self).after(event, output);
    }
}

/// Two hooks, `.0` called before `.1` both before and after each op.
impl<A: Hook, B: Hook> Hook for (A, B) {
    fn before(&mut self, event: OpEvent) {
        self.0.before(event);
        self.1.before(event);
    }

    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        self.0.after(event, output);
        self.1.after(event, output);
    }
}

/// Runs a model; owns nothing but borrows the model and the arena. `K` chooses the kernels
/// linked into the program: all of them by default, only the model's with the `Kernels` type
/// `ember-build` generates.
///
/// Each `invoke` needs every input written since the previous one (by [`Interpreter::set_input`],
/// [`Interpreter::input_i8`] or [`Interpreter::input_f32`]): the memory plan may reuse an
/// input's bytes for later tensors, so a second run over stale inputs would compute on
/// overwritten data. It fails with [`Error::InputNotSet`] instead.
///
/// The arena is borrowed mutably for the interpreter's life, so two interpreters can never
/// share one arena:
///
/// ```compile_fail,E0499
/// # fn f(model: &ember::Model) -> Result<(), ember::Error> {
/// let mut arena = [0u8; 1024];
/// let first = ember::Interpreter::new(model, &mut arena)?;
/// let second = ember::Interpreter::new(model, &mut arena)?;
/// # drop((first, second)); Ok(()) }
/// ```
pub struct Interpreter<'m, 'a, K: Kernels = AllKernels> {
    model: &'m Model<'m>,
    arena: &'a mut [u8],
    /// Bit `i`: input `i` was written since the last `invoke`.
    written: u64,
    kernels: PhantomData<K>,
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// Prepares to run `model` in `arena`, which needs `model.arena_bytes()` bytes after
    /// aligning its start to 16 bytes, with every kernel linked; checks every op
    /// ([`Model::validate_ops`]).
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        Self::with_kernels(model, arena)
    }
}

impl<'m, 'a, K: Kernels> Interpreter<'m, 'a, K> {
    /// Like [`Interpreter::new`], linking only the kernels in `K` (and only their checks);
    /// fails if the model needs another.
    pub fn with_kernels(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        let misalignment = arena.as_ptr() as usize % ARENA_ALIGN;
        let skip = (ARENA_ALIGN - misalignment) % ARENA_ALIGN;
        let needed = model.arena_bytes().saturating_add(skip);
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall { needed, got: arena.len() });
        }
        if model.input_count() > MAX_INPUTS {
            return Err(Error::BadIo {
                index: MAX_INPUTS as u16,
                reason: "the interpreter runs models of at most 64 inputs",
            });
        }
        model.validate_ops::<K>()?;
        let too_small = Error::ArenaTooSmall { needed, got: arena.len() };
        let arena = arena.get_mut(skip..needed).ok_or(too_small)?;
        Ok(Self { model, arena, written: 0, kernels: PhantomData })
    }

    /// The model being run.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Runs every op in order.
    pub fn invoke(&mut self) -> Result<(), Error> {
        self.invoke_with(&mut NoHook)
    }

    /// Runs every op in order, calling `hook` before and after each.
    pub fn invoke_with(&mut self, hook: &mut impl Hook) -> Result<(), Error> {
        let all = u64::MAX.checked_shr(64 - self.model.input_count() as u32).unwrap_or(0);
        let missing = all & !self.written;
        if missing != 0 {
            return Err(Error::InputNotSet { input: missing.trailing_zeros() as usize });
        }
        self.written = 0;
        for index in 0..self.model.op_count() as u16 {
            let op = self.model.op(index)?;
            let event = OpEvent { index, kind: op.kind };
            hook.before(event);
            ops::run::<K>(self.model, &op, self.arena)?;
            let tensor = ops::output(self.model, &op)?;
            let bytes = self
                .arena
                .get(tensor.arena_range())
                .ok_or(Error::ArenaTooSmall { needed: tensor.arena_range().end, got: self.arena.len() })?;
            hook.after(event, OpOutput { tensor, bytes });
        }
        Ok(())
    }

    fn io_slice<T: ops::Element>(&self, io: &IoInfo) -> Result<&[T], Error> {
        let t = &io.tensor;
        let bytes = self.arena.get(t.arena_range());
        bytes
            .and_then(|b| bytemuck::try_cast_slice(b).ok())
            .filter(|_| t.dtype == T::DTYPE)
            .ok_or(Error::WrongType { tensor: t.id })
    }

    /// Input `index` as a slice of `T` to fill, marking it written.
    fn input_slice_mut<T: ops::Element>(&mut self, index: usize) -> Result<&mut [T], Error> {
        let t = self.model.input(index)?.tensor;
        let bytes = self.arena.get_mut(t.arena_range());
        let slice = bytes
            .and_then(|b| bytemuck::try_cast_slice_mut(b).ok())
            .filter(|_| t.dtype == T::DTYPE)
            .ok_or(Error::WrongType { tensor: t.id })?;
        self.written |= 1u64.checked_shl(index as u32).unwrap_or(0);
        Ok(slice)
    }

    /// Input `index` of an int8 model, to fill before `invoke` (internal NHWC layout).
    pub fn input_i8(&mut self, index: usize) -> Result<&mut [i8], Error> {
        self.input_slice_mut(index)
    }

    /// Input `index` of a float model, to fill before `invoke` (internal NHWC layout).
    pub fn input_f32(&mut self, index: usize) -> Result<&mut [f32], Error> {
        self.input_slice_mut(index)
    }

    /// Input `index` of an int8 model as it is now, read-only (reading does not count as
    /// writing it for the next `invoke`).
    pub fn input_values_i8(&self, index: usize) -> Result<&[i8], Error> {
        self.io_slice(&self.model.input(index)?)
    }

    /// Input `index` of a float model as it is now, read-only (see [`Self::input_values_i8`]).
    pub fn input_values_f32(&self, index: usize) -> Result<&[f32], Error> {
        self.io_slice(&self.model.input(index)?)
    }

    /// Output `index` of an int8 model.
    pub fn output_i8(&self, index: usize) -> Result<&[i8], Error> {
        self.io_slice(&self.model.output(index)?)
    }

    /// Output `index` of a float model.
    pub fn output_f32(&self, index: usize) -> Result<&[f32], Error> {
        self.io_slice(&self.model.output(index)?)
    }

    /// Writes real values into input `index`, quantizing them if the input is int8.
    pub fn set_input(&mut self, index: usize, values: &[f32]) -> Result<(), Error> {
        let io = self.model.input(index)?;
        let t = io.tensor;
        if values.len() != t.len() {
            return Err(Error::WrongLength { expected: t.len(), got: values.len() });
        }
        let (scale, zero_point) = t.scale_zero_point();
        if t.dtype == DType::I8 {
            let dst = self.input_slice_mut::<i8>(index)?;
            for (d, &v) in dst.iter_mut().zip(values) {
                *d = quant::quantize_i8(v, scale, zero_point);
            }
        } else {
            self.input_slice_mut::<f32>(index)?.copy_from_slice(values);
        }
        Ok(())
    }

    /// Reads output `index` as real values, dequantizing it if the output is int8.
    pub fn get_output(&self, index: usize, values: &mut [f32]) -> Result<(), Error> {
        let io = self.model.output(index)?;
        let t = io.tensor;
        if values.len() != t.len() {
            return Err(Error::WrongLength { expected: t.len(), got: values.len() });
        }
        let (scale, zero_point) = t.scale_zero_point();
        if t.dtype == DType::I8 {
            for (v, &q) in values.iter_mut().zip(self.io_slice::<i8>(&io)?) {
                *v = quant::dequantize_i8(q, scale, zero_point);
            }
        } else {
            values.copy_from_slice(self.io_slice::<f32>(&io)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_size_at_the_address_space_limit_is_too_small() {
        // On 32-bit targets `arena_bytes` can be `usize::MAX`; adding the alignment skip overflowed.
        let model = Model::from_parts(&[], &[], &[], &[], usize::MAX);
        let mut arena = crate::Aligned([0u8; 32]);
        let err = Interpreter::new(&model, &mut arena.0[1..]).err();
        assert_eq!(err, Some(Error::ArenaTooSmall { needed: usize::MAX, got: 31 }));
    }

    use crate::format::layout::WeightLayout;
    use crate::format::params::UnaryParams;
    use crate::format::writer::{IoDesc, ModelBuilder, Quant};
    use crate::AlignedBytes;

    /// `x [1,4] → relu → sigmoid → y`, in f32 or int8 (tables).
    fn two_op_model(int8: bool) -> AlignedBytes {
        let mut b = ModelBuilder::new();
        let q = Quant::PerTensor { scale: 0.05, zero_point: -10 };
        let (dtype, quant) = if int8 { (DType::I8, Some(&q)) } else { (DType::F32, None) };
        let x = b.activation(dtype, &[1, 4], quant).unwrap();
        let h = b.activation(dtype, &[1, 4], quant).unwrap();
        let y = b.activation(dtype, &[1, 4], quant).unwrap();
        let p = UnaryParams { a: 0.0, b: 0.0 };
        for (kind, f, from, to) in [
            (OpKind::Relu, libm::fmax as fn(f64, f64) -> f64, x, h),
            (OpKind::Sigmoid, |v, _| 1.0 / (1.0 + libm::exp(-v)), h, y),
        ] {
            if int8 {
                let table = quant::build_table(|v| f(v, 0.0), 0.05, -10, 0.05, -10);
                let t = b.constant_of(DType::I8, &[256], &table, None).unwrap();
                b.op(kind, &[from, t], &[to], &p).unwrap();
            } else {
                b.op(kind, &[from], &[to], &p).unwrap();
            }
        }
        let io = |tensor| IoDesc { tensor, name: "v".into(), onnx_shape: vec![1, 4], perm: vec![0, 1] };
        b.input(io(x));
        b.output(io(y));
        b.place(x, 0);
        b.place(h, 16);
        b.place(y, 0);
        b.arena_bytes(32);
        AlignedBytes::new(&b.finish().unwrap())
    }

    #[repr(C, align(16))]
    struct Buffer([u8; 64]);

    #[test]
    fn arena_size_errors_give_the_exact_need_for_the_address() {
        let bytes = two_op_model(false);
        let model = Model::from_bytes(&bytes).unwrap();
        assert_eq!(model.arena_bytes(), 32);
        let mut buf = Buffer([0; 64]);
        let err = Interpreter::new(&model, &mut buf.0[..31]).err();
        assert_eq!(err, Some(Error::ArenaTooSmall { needed: 32, got: 31 }));
        // Starting 3 bytes past a 16-byte boundary costs 13 bytes of alignment padding.
        let err = Interpreter::new(&model, &mut buf.0[3..3 + 44]).err();
        assert_eq!(err, Some(Error::ArenaTooSmall { needed: 45, got: 44 }));
        let mut interp = Interpreter::new(&model, &mut buf.0[3..3 + 45]).unwrap();
        interp.set_input(0, &[-1.0, 0.0, 1.0, 2.0]).unwrap();
        interp.invoke().unwrap();
        let mut y = [0f32; 4];
        interp.get_output(0, &mut y).unwrap();
        assert_eq!(y, [0.5, 0.5, 1.0 / (1.0 + libm::expf(-1.0)), 1.0 / (1.0 + libm::expf(-2.0))]);
    }

    #[test]
    fn hooks_see_every_op_in_order_with_its_output() {
        struct Log(Vec<(bool, u16, OpKind, Option<f32>)>);
        impl Hook for Log {
            fn before(&mut self, e: OpEvent) {
                self.0.push((true, e.index, e.kind, None));
            }
            fn after(&mut self, e: OpEvent, out: OpOutput<'_>) {
                self.0.push((false, e.index, e.kind, out.as_f32().map(|v| v[0])));
            }
        }
        let bytes = two_op_model(false);
        let model = Model::from_bytes(&bytes).unwrap();
        let mut buf = Buffer([0; 64]);
        let mut interp = Interpreter::new(&model, &mut buf.0).unwrap();
        interp.input_f32(0).unwrap().copy_from_slice(&[3.0, 0.0, 0.0, 0.0]);
        // A pair of hooks: both see every event.
        let (mut log, mut second) = (Log(Vec::new()), Log(Vec::new()));
        interp.invoke_with(&mut (&mut log, &mut second)).unwrap();
        assert_eq!(log.0, second.0);
        let sig3 = 1.0 / (1.0 + libm::expf(-3.0));
        assert_eq!(
            log.0,
            [
                (true, 0, OpKind::Relu, None),
                (false, 0, OpKind::Relu, Some(3.0)),
                (true, 1, OpKind::Sigmoid, None),
                (false, 1, OpKind::Sigmoid, Some(sig3)),
            ]
        );
    }

    #[test]
    fn int8_inputs_are_quantized_and_outputs_dequantized() {
        let bytes = two_op_model(true);
        let model = Model::from_bytes(&bytes).unwrap();
        let mut buf = Buffer([0; 64]);
        let mut interp = Interpreter::new(&model, &mut buf.0).unwrap();
        interp.set_input(0, &[-1.0, 0.0, 0.5, 100.0]).unwrap();
        assert_eq!(interp.input_i8(0).unwrap(), &[-30, -10, 0, 127]);
        assert_eq!(interp.input_f32(0).err(), Some(Error::WrongType { tensor: 0 }));
        interp.invoke().unwrap();
        let mut y = [0f32; 4];
        interp.get_output(0, &mut y).unwrap();
        // relu then sigmoid on the 0.05 grid: sigmoid(0) = 0.5, sigmoid(0.5) ≈ 0.62 → 0.6,
        // and the saturated input 127 = 6.85 gives sigmoid ≈ 0.999 → 1.0.
        assert_eq!(interp.output_i8(0).unwrap(), &[0, 0, 2, 10]);
        assert_eq!(y, [0.5, 0.5, 0.6, 1.0]);
        assert_eq!(interp.set_input(0, &[0.0; 3]), Err(Error::WrongLength { expected: 4, got: 3 }));
    }

    #[test]
    fn each_invoke_needs_every_input_written_since_the_last() {
        let bytes = two_op_model(true);
        let model = Model::from_bytes(&bytes).unwrap();
        let mut buffer = Buffer([0; 64]);
        let mut interp = Interpreter::new(&model, &mut buffer.0).unwrap();
        assert_eq!(interp.invoke(), Err(Error::InputNotSet { input: 0 }));
        interp.set_input(0, &[0.5; 4]).unwrap();
        interp.invoke().unwrap();
        // The plan puts the output on the input's bytes: a second run would read the output.
        assert_eq!(interp.invoke(), Err(Error::InputNotSet { input: 0 }));
        interp.input_i8(0).unwrap().fill(3);
        interp.invoke().unwrap();
        // A failed access does not count as writing.
        assert_eq!(interp.input_f32(0).err(), Some(Error::WrongType { tensor: 0 }));
        assert_eq!(interp.invoke(), Err(Error::InputNotSet { input: 0 }));
        assert_eq!(interp.input_i8(1).err(), Some(Error::NoSuchIo { index: 1, count: 1 }));
    }

    #[test]
    fn a_kernel_set_must_link_every_kernel_the_model_needs() {
        struct FloatRelu;
        impl Kernels for FloatRelu {
            const INT8: u32 = crate::kernel_bit(OpKind::Sigmoid);
            const FLOAT: u32 = crate::kernel_bit(OpKind::Relu);
        }
        struct FloatReluSigmoid;
        impl Kernels for FloatReluSigmoid {
            const INT8: u32 = 0;
            const FLOAT: u32 = crate::kernel_bit(OpKind::Relu) | crate::kernel_bit(OpKind::Sigmoid);
        }
        let bytes = two_op_model(false);
        let model = Model::from_bytes(&bytes).unwrap();
        let mut buf = Buffer([0; 64]);
        let err = Interpreter::<FloatRelu>::with_kernels(&model, &mut buf.0).err();
        assert_eq!(err, Some(Error::KernelNotLinked { op: 1, kind: OpKind::Sigmoid }));
        let mut interp = Interpreter::<FloatReluSigmoid>::with_kernels(&model, &mut buf.0).unwrap();
        interp.input_f32(0).unwrap().copy_from_slice(&[0.0; 4]);
        interp.invoke().unwrap();
        assert_eq!(interp.output_f32(0).unwrap(), &[0.5; 4]);
    }

    /// `x [1,4] → fully_connected (2 units, int8 weights in `layout`) → y [1,2]`.
    fn fully_connected_model(layout: WeightLayout) -> AlignedBytes {
        use crate::format::params::{FullyConnectedParams, FusedAct};
        let mut b = ModelBuilder::new();
        let q = Quant::PerTensor { scale: 0.05, zero_point: -10 };
        let x = b.activation(DType::I8, &[1, 4], Some(&q)).unwrap();
        let y = b.activation(DType::I8, &[1, 2], Some(&q)).unwrap();
        let wq = Quant::PerTensor { scale: 0.01, zero_point: 0 };
        let w = b.constant_of(DType::I8, &[2, 4], &[1i8, 2, 3, 4, -5, 6, -7, 8], Some(&wq)).unwrap();
        let bias = b.constant_of(DType::I32, &[2], &[3i32, -3], None).unwrap();
        let requant = b.constant_of(DType::I32, &[1, 2], &[1i32 << 30, -2], None).unwrap();
        let p = FullyConnectedParams { act: FusedAct::NONE };
        b.op(OpKind::FullyConnected, &[x, w, bias, requant], &[y], &p).unwrap();
        let io = |tensor, n| IoDesc { tensor, name: "v".into(), onnx_shape: vec![1, n], perm: vec![0, 1] };
        b.input(io(x, 4));
        b.output(io(y, 2));
        b.place(x, 0);
        b.place(y, 16);
        b.arena_bytes(32);
        assert_eq!(b.lay_out_weights(layout), usize::from(layout != WeightLayout::Standard));
        AlignedBytes::new(&b.finish().unwrap())
    }

    #[test]
    fn a_kernel_set_must_link_the_layout_of_every_weight_tensor() {
        use crate::format::layout::WeightLayout::{DspPairs, DspPairsWide, Standard};
        use crate::ops::layout_bit;
        struct StandardAndWide;
        impl Kernels for StandardAndWide {
            const INT8: u32 = crate::kernel_bit(OpKind::FullyConnected);
            const FLOAT: u32 = 0;
            const LAYOUTS: u32 = layout_bit(Standard) | layout_bit(DspPairsWide);
        }
        fn run<K: Kernels>(layout: WeightLayout) -> Result<[i8; 2], Error> {
            let bytes = fully_connected_model(layout);
            let model = Model::from_bytes(&bytes).unwrap();
            let mut buf = Buffer([0; 64]);
            let mut interp = Interpreter::<K>::with_kernels(&model, &mut buf.0)?;
            interp.input_i8(0).unwrap().copy_from_slice(&[-20, 0, 30, 117]);
            interp.invoke()?;
            Ok(interp.output_i8(0).unwrap().try_into().unwrap())
        }
        let expected = run::<AllKernels>(Standard).unwrap();
        for layout in WeightLayout::FILTERS {
            assert_eq!(run::<AllKernels>(layout), Ok(expected), "{layout:?}");
        }
        assert_eq!(run::<StandardAndWide>(Standard), Ok(expected));
        assert_eq!(run::<StandardAndWide>(DspPairsWide), Ok(expected));
        let err = run::<StandardAndWide>(DspPairs).unwrap_err();
        assert_eq!(err, Error::LayoutNotLinked { op: 0, kind: OpKind::FullyConnected, layout: DspPairs });
        let message = err.to_string();
        assert!(message.contains("dsp-pairs layout") && message.contains("ember-build"), "{message}");
    }

    /// `x [1,8,6,4] → depthwise_conv2d 3×3, padding 1 → y [1,8,6,4]`, the weights laid out for
    /// filters in `layout` (a DSP one brings `dsp-depthwise-columns`: the output is taller than
    /// wide).
    fn depthwise_model(layout: WeightLayout) -> AlignedBytes {
        use crate::format::params::{ConvParams, FusedAct};
        let shape = [1, 8, 6, 4];
        let mut b = ModelBuilder::new();
        let q = Quant::PerTensor { scale: 0.05, zero_point: -3 };
        let [x, y] = [0, 1].map(|_| b.activation(DType::I8, &shape, Some(&q)).unwrap());
        let wq = Quant::PerChannel { axis: 3, scales: vec![0.01; 4] };
        let weights: Vec<i8> = (0..36).map(|i| (i * 29 % 255 - 127) as i8).collect();
        let w = b.constant_of(DType::I8, &[1, 3, 3, 4], &weights, Some(&wq)).unwrap();
        let bias = b.constant_of(DType::I32, &[4], &[100i32, -50, 0, 7], None).unwrap();
        let requant = b.constant_of(DType::I32, &[4, 2], &[1i32 << 30, -3].repeat(4), None).unwrap();
        let p = ConvParams { stride: [1, 1], dilation: [1, 1], pad: [1, 1, 1, 1], act: FusedAct::NONE };
        b.op(OpKind::DepthwiseConv2d, &[x, w, bias, requant], &[y], &p).unwrap();
        let io =
            |tensor| IoDesc { tensor, name: "v".into(), onnx_shape: shape.to_vec(), perm: vec![0, 1, 2, 3] };
        b.input(io(x));
        b.output(io(y));
        b.place(x, 0);
        b.place(y, 192);
        b.arena_bytes(384);
        assert_eq!(b.lay_out_weights(layout), usize::from(layout != WeightLayout::Standard));
        AlignedBytes::new(&b.finish().unwrap())
    }

    #[test]
    fn depthwise_weights_need_their_layout_in_depthwise_layouts() {
        use crate::format::layout::WeightLayout::{DspDepthwiseColumns, DspPairs, Standard};
        use crate::ops::layout_bit;
        struct StandardDepthwise;
        impl Kernels for StandardDepthwise {
            const INT8: u32 = crate::kernel_bit(OpKind::DepthwiseConv2d);
            const FLOAT: u32 = 0;
            const LAYOUTS: u32 = 0;
            const DEPTHWISE_LAYOUTS: u32 = layout_bit(Standard);
        }
        struct Columns;
        impl Kernels for Columns {
            const INT8: u32 = crate::kernel_bit(OpKind::DepthwiseConv2d);
            const FLOAT: u32 = 0;
            const LAYOUTS: u32 = layout_bit(Standard);
            const DEPTHWISE_LAYOUTS: u32 = layout_bit(DspDepthwiseColumns);
        }
        #[repr(align(16))]
        struct Arena([u8; 384]);
        fn run<K: Kernels>(layout: WeightLayout) -> Result<Vec<i8>, Error> {
            let bytes = depthwise_model(layout);
            let model = Model::from_bytes(&bytes).unwrap();
            let mut buf = Arena([0; 384]);
            let mut interp = Interpreter::<K>::with_kernels(&model, &mut buf.0)?;
            let x: Vec<i8> = (0..192).map(|i| (i * 37 % 256 - 128) as i8).collect();
            interp.input_i8(0).unwrap().copy_from_slice(&x);
            interp.invoke()?;
            Ok(interp.output_i8(0).unwrap().to_vec())
        }
        let expected = run::<AllKernels>(Standard).unwrap();
        assert_eq!(run::<StandardDepthwise>(Standard), Ok(expected.clone()));
        let not_linked = |layout| Error::LayoutNotLinked { op: 0, kind: OpKind::DepthwiseConv2d, layout };
        assert_eq!(run::<StandardDepthwise>(DspPairs), Err(not_linked(DspDepthwiseColumns)));
        assert_eq!(run::<Columns>(DspPairs), Ok(expected));
        // The filters' standard bit does not link standard depthwise weights.
        assert_eq!(run::<Columns>(Standard), Err(not_linked(Standard)));
    }
}
