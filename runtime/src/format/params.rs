//! Operator parameter structs as stored in the `PARAMS` section, one per op kind.
//!
//! Each op kind has exactly one parameter struct (of fixed size, possibly empty), read in
//! place. int8 requantization factors are computed offline by the quantizer with TFLite's
//! `QuantizeMultiplier`, so the device never needs floating point for int8 models.

use bytemuck::{Pod, Zeroable};

use super::{OpKind, MAX_RANK};
use crate::quant::Requant;

/// Fused activation bounds, in float and quantized form.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct FusedAct {
    /// Lower bound for f32 outputs (`-inf` for none).
    pub min: f32,
    /// Upper bound for f32 outputs (`inf` for none).
    pub max: f32,
    /// Lower bound for int8 outputs (-128 for none).
    pub qmin: i32,
    /// Upper bound for int8 outputs (127 for none).
    pub qmax: i32,
}

impl FusedAct {
    /// No activation.
    pub const NONE: Self = Self { min: f32::NEG_INFINITY, max: f32::INFINITY, qmin: -128, qmax: 127 };
}

/// `conv2d` and `depthwise_conv2d`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct ConvParams {
    /// Vertical, horizontal stride.
    pub stride: [u32; 2],
    /// Vertical, horizontal dilation.
    pub dilation: [u32; 2],
    /// Padding: top, left, bottom, right.
    pub pad: [u32; 4],
    /// Fused activation.
    pub act: FusedAct,
}

/// `fully_connected`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct FullyConnectedParams {
    /// Fused activation.
    pub act: FusedAct,
}

/// `add` (int8 fields as in TFLite's ADD; unused for f32).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct AddParams {
    /// Fused activation.
    pub act: FusedAct,
    /// Left shift applied to both offset inputs (20).
    pub left_shift: i32,
    /// Rescale of input `a`.
    pub a: Requant,
    /// Rescale of input `b`.
    pub b: Requant,
    /// Rescale of the sum to the output.
    pub output: Requant,
}

/// `mul` (int8 field unused for f32).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct MulParams {
    /// Fused activation.
    pub act: FusedAct,
    /// Rescale of the product to the output (`sa × sb / so`).
    pub output: Requant,
}

/// Unary activations: `clip` (min, max), `leaky_relu` (alpha, –), `hard_sigmoid`
/// (alpha, beta); unused by the others. int8 models carry a 256-entry table instead.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct UnaryParams {
    /// First parameter.
    pub a: f32,
    /// Second parameter.
    pub b: f32,
}

/// `max_pool` and `average_pool`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct PoolParams {
    /// Window height, width.
    pub kernel: [u32; 2],
    /// Vertical, horizontal stride.
    pub stride: [u32; 2],
    /// Padding: top, left, bottom, right.
    pub pad: [u32; 4],
    /// Fused activation.
    pub act: FusedAct,
}

/// `mean` over height and width.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct MeanParams {
    /// int8: `in_scale / (out_scale × count)`.
    pub requant: Requant,
}

/// `concat`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct ConcatParams {
    /// Axis to join along.
    pub axis: u32,
}

/// `pad`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct PadParams {
    /// (before, after) per axis; axes past the rank are zero.
    pub pads: [[u32; 2]; MAX_RANK],
    /// Fill value for f32.
    pub value: f32,
    /// Fill value for int8.
    pub qvalue: i32,
}

/// `transpose`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct TransposeParams {
    /// Output axis `i` is input axis `perm[i]`; entries past the rank are zero.
    pub perm: [u32; MAX_RANK],
}

/// `softmax`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct SoftmaxParams {
    /// Inverse temperature.
    pub beta: f32,
    /// int8: TFLite's input multiplier.
    pub input_multiplier: i32,
    /// int8: TFLite's input left shift.
    pub input_left_shift: i32,
    /// int8: smallest difference from the row max that still contributes.
    pub diff_min: i32,
}

/// Ops without parameters (`reshape`, `quantize`, `dequantize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct NoParams;

/// Byte length of the parameter struct of `kind`.
pub fn params_len(kind: OpKind) -> usize {
    use core::mem::size_of;
    match kind {
        OpKind::Conv2d | OpKind::DepthwiseConv2d => size_of::<ConvParams>(),
        OpKind::FullyConnected => size_of::<FullyConnectedParams>(),
        OpKind::Add => size_of::<AddParams>(),
        OpKind::Mul => size_of::<MulParams>(),
        OpKind::Relu
        | OpKind::Clip
        | OpKind::LeakyRelu
        | OpKind::HardSwish
        | OpKind::HardSigmoid
        | OpKind::Sigmoid
        | OpKind::Tanh => size_of::<UnaryParams>(),
        OpKind::MaxPool | OpKind::AveragePool => size_of::<PoolParams>(),
        OpKind::Mean => size_of::<MeanParams>(),
        OpKind::Reshape | OpKind::Quantize | OpKind::Dequantize => size_of::<NoParams>(),
        OpKind::Concat => size_of::<ConcatParams>(),
        OpKind::Pad => size_of::<PadParams>(),
        OpKind::Transpose => size_of::<TransposeParams>(),
        OpKind::Softmax => size_of::<SoftmaxParams>(),
    }
}
