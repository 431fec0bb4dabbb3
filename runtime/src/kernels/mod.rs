//! Reference kernels in portable Rust: the oracle every optimized kernel is checked against;
//! hand-written kernels per architecture (`cortex_m_dsp`, `helium`, `neon`) and the set the interpreter runs
//! ([`selected`]).
//!
//! Kernels take plain slices and small geometry structs; the interpreter's op glue
//! (`crate::ops`) has already validated every length, so kernels only compute. Elementwise
//! kernels take their input as an [`Input`], which may be the output buffer itself. Activation
//! tensors are NHWC. f32 kernels are generic over the weight element type so f16 weights are
//! widened on the fly without a copy.

pub mod activation;
pub mod add;
pub mod broadcast;
pub mod concat;
pub mod conv2d;
#[cfg(ember_arm_dsp)]
pub mod cortex_m_dsp;
pub mod depthwise_conv2d;
pub mod dequantize;
pub mod dsp_depthwise;
pub mod fully_connected;
#[cfg(ember_helium)]
pub mod helium;
pub mod mean;
pub mod mul;
#[cfg(ember_neon)]
pub mod neon;
pub mod pad;
pub mod pool;
pub mod quantize;
pub mod scan;
pub mod scratch;
pub mod softmax;
#[cfg(test)]
pub(crate) mod testutil;
pub mod transpose;

/// The int8 kernels, and the f32 convolutions and fully connected layer, the interpreter runs:
/// the hand-written ones of the target where they exist (chosen at compile time, see
/// `runtime/build.rs`), the reference kernels otherwise. Kernels that may use scratch take the
/// op's planned [`Scratch`](scratch::Scratch) (sized by [`Target::bytes`](scratch::Target::bytes)).
pub mod selected {
    #[cfg(all(ember_arm_dsp, not(ember_helium)))]
    pub use super::cortex_m_dsp::{
        add_i8, average_pool_i8, conv2d_i8, depthwise_conv2d_i8, fully_connected_i8,
    };
    #[cfg(ember_arm_dsp)]
    pub use super::cortex_m_dsp::{
        conv2d_i8_laid_out, count_equal, depthwise_conv2d_i8_laid_out, fully_connected_i8_laid_out, range_i8,
    };
    #[cfg(not(ember_neon))]
    pub use super::depthwise_conv2d::depthwise_conv2d_f32;
    #[cfg(not(any(ember_neon, ember_helium)))]
    pub use super::fully_connected::fully_connected_f32;
    #[cfg(ember_helium)]
    pub use super::helium::float::fully_connected_f32;
    #[cfg(ember_helium)]
    pub use super::helium::{add_i8, average_pool_i8, conv2d_i8, depthwise_conv2d_i8, fully_connected_i8};
    #[cfg(ember_neon)]
    pub use super::neon::{
        average_pool_i8, conv2d_f32, conv2d_i8, depthwise_conv2d_f32, depthwise_conv2d_i8,
        fully_connected_f32, fully_connected_i8,
    };
    #[cfg(not(any(ember_arm_dsp, ember_helium, ember_neon)))]
    pub use super::pool::average_pool_i8;
    #[cfg(not(ember_arm_dsp))]
    pub use super::scan::{count_equal, range_i8};
    use super::scratch::Scratch;
    #[cfg(not(any(ember_arm_dsp, ember_helium)))]
    use super::{add::AddParams, Input};
    #[cfg(not(ember_neon))]
    use super::{ClampF32, Weight};
    #[cfg(not(ember_arm_dsp))]
    use super::{ConvGeometry, FcGeometry, Int8Params};

    /// The reference [`super::add::add_i8`] (no scratch).
    #[cfg(not(any(ember_arm_dsp, ember_helium)))]
    #[allow(clippy::too_many_arguments)]
    pub fn add_i8(
        out_shape: &[usize],
        a_shape: &[usize],
        a: Input<i8>,
        b_shape: &[usize],
        b: Input<i8>,
        p: &AddParams,
        out: &mut [i8],
        _: Scratch,
    ) {
        super::add::add_i8(out_shape, a_shape, a, b_shape, b, p, out)
    }

    /// The reference [`super::conv2d::conv2d_i8`] (no scratch).
    #[cfg(not(any(ember_arm_dsp, ember_neon)))]
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_i8(
        g: &ConvGeometry,
        q: &Int8Params,
        x: &[i8],
        w: &[i8],
        bias: &[i32],
        out: &mut [i8],
        _: Scratch,
    ) {
        super::conv2d::conv2d_i8(g, q, x, w, bias, out)
    }

    /// The reference [`super::depthwise_conv2d::depthwise_conv2d_i8`] (no scratch).
    #[cfg(not(any(ember_arm_dsp, ember_neon)))]
    #[allow(clippy::too_many_arguments)]
    pub fn depthwise_conv2d_i8(
        g: &ConvGeometry,
        q: &Int8Params,
        x: &[i8],
        w: &[i8],
        bias: &[i32],
        out: &mut [i8],
        _: Scratch,
    ) {
        super::depthwise_conv2d::depthwise_conv2d_i8(g, q, x, w, bias, out)
    }

    /// The reference [`super::fully_connected::fully_connected_i8`] (no scratch).
    #[cfg(not(any(ember_arm_dsp, ember_neon)))]
    #[allow(clippy::too_many_arguments)]
    pub fn fully_connected_i8(
        g: &FcGeometry,
        q: &Int8Params,
        x: &[i8],
        w: &[i8],
        bias: &[i32],
        out: &mut [i8],
        _: Scratch,
    ) {
        super::fully_connected::fully_connected_i8(g, q, x, w, bias, out)
    }

    /// The reference [`super::conv2d::conv2d_i8_laid_out`] for filters `w` in the layout `L`
    /// names (`WeightLayout as u8`; no scratch).
    #[cfg(not(ember_arm_dsp))]
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_i8_laid_out<const L: u8>(
        g: &ConvGeometry,
        q: &Int8Params,
        x: &[i8],
        w: &[i8],
        bias: &[i32],
        out: &mut [i8],
        _: Scratch,
    ) {
        let (layout, depth) = (const { super::weight_layout(L) }, g.kernel[0] * g.kernel[1] * g.input.c);
        super::conv2d::conv2d_i8_laid_out(g, q, x, super::LaidOut { bytes: w, layout, depth }, bias, out)
    }

    /// The reference [`super::depthwise_conv2d::depthwise_conv2d_i8_laid_out`] for weights `w`
    /// in the layout `L` names (`WeightLayout as u8`; no scratch).
    #[cfg(not(ember_arm_dsp))]
    #[allow(clippy::too_many_arguments)]
    pub fn depthwise_conv2d_i8_laid_out<const L: u8>(
        g: &ConvGeometry,
        q: &Int8Params,
        x: &[i8],
        w: &[i8],
        bias: &[i32],
        out: &mut [i8],
        _: Scratch,
    ) {
        let (layout, depth) = (const { super::weight_layout(L) }, g.kernel[0] * g.kernel[1] * g.output.c);
        super::depthwise_conv2d::depthwise_conv2d_i8_laid_out(
            g,
            q,
            x,
            super::LaidOut { bytes: w, layout, depth },
            bias,
            out,
        )
    }

    /// The reference [`super::fully_connected::fully_connected_i8_laid_out`] for filters `w` in
    /// the layout `L` names (`WeightLayout as u8`; no scratch).
    #[cfg(not(ember_arm_dsp))]
    #[allow(clippy::too_many_arguments)]
    pub fn fully_connected_i8_laid_out<const L: u8>(
        g: &FcGeometry,
        q: &Int8Params,
        x: &[i8],
        w: &[i8],
        bias: &[i32],
        out: &mut [i8],
        _: Scratch,
    ) {
        let laid = super::LaidOut { bytes: w, layout: const { super::weight_layout(L) }, depth: g.depth };
        super::fully_connected::fully_connected_i8_laid_out(g, q, x, laid, bias, out)
    }

    /// Helium's [`super::helium::float::conv2d_f32`], or the reference
    /// [`super::conv2d::conv2d_f32`] (neither takes scratch).
    #[cfg(not(ember_neon))]
    pub fn conv2d_f32<W: Weight>(
        g: &super::ConvGeometry,
        x: &[f32],
        w: &[W],
        bias: &[f32],
        act: ClampF32,
        out: &mut [f32],
        _: Scratch,
    ) {
        #[cfg(not(ember_helium))]
        use super::conv2d::conv2d_f32 as kernel;
        #[cfg(ember_helium)]
        use super::helium::float::conv2d_f32 as kernel;
        kernel(g, x, w, bias, act, out)
    }
}

use core::ops::Range;

use crate::format::layout::WeightLayout;
use crate::quant::{Requant, Rounding};

/// The [`WeightLayout`] `l` is the byte of (`layout as u8`): the const parameter of the
/// kernels for laid-out filters, which name it in a `const` block so that another value does
/// not compile.
#[allow(clippy::panic)] // Called in `const` blocks, where the panic is a compile error.
pub const fn weight_layout(l: u8) -> WeightLayout {
    match WeightLayout::from_u8(l) {
        Some(layout) => layout,
        None => panic!("not a WeightLayout"),
    }
}

/// int8 filters as a weight tensor holds them: its bytes in a [`WeightLayout`] and the
/// weights per filter.
#[derive(Clone, Copy, Debug)]
pub struct LaidOut<'a> {
    /// The tensor's bytes (the loader checked their length for the layout).
    pub bytes: &'a [i8],
    /// Their arrangement.
    pub layout: WeightLayout,
    /// Weights per filter (`KH × KW × Cin`, or a fully connected layer's depth).
    pub depth: usize,
}

impl LaidOut<'_> {
    /// Weight `k` of filter `f`.
    #[inline(always)]
    pub fn get(&self, f: usize, k: usize) -> i32 {
        self.layout.get(bytemuck::cast_slice(self.bytes), self.depth, f, k)
    }
}

/// An elementwise kernel's input: a slice of its own, or the output buffer it overwrites.
///
/// In place, an input element is read only before the output element at its index is
/// written (softmax reads a whole row before writing it), so both forms give the same bits.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a, T> {
    /// A separate slice with the output's length.
    Separate(&'a [T]),
    /// The output buffer itself.
    InPlace,
}

impl<'a, T: Copy> Input<'a, T> {
    /// Writes `f(x)` to every output element, `x` being the input element at its index.
    #[inline(always)]
    pub fn map(self, out: &mut [T], mut f: impl FnMut(T) -> T) {
        match self {
            Input::Separate(x) => out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v)),
            Input::InPlace => out.iter_mut().for_each(|o| *o = f(*o)),
        }
    }

    /// The input's elements, given the output buffer before the kernel writes to it.
    #[inline(always)]
    pub fn values<'s>(self, out: &'s [T]) -> &'s [T]
    where
        'a: 's,
    {
        match self {
            Input::Separate(x) => x,
            Input::InPlace => out,
        }
    }

    /// The input elements that feed `out[range]`, if the input has them.
    #[inline(always)]
    pub fn slice(self, range: Range<usize>) -> Option<Self> {
        match self {
            Input::Separate(x) => x.get(range).map(Input::Separate),
            Input::InPlace => Some(Input::InPlace),
        }
    }
}

/// Shape of an NHWC activation tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Nhwc {
    /// Batch.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Nhwc {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sliding-window geometry shared by convolutions and pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConvGeometry {
    /// Input shape.
    pub input: Nhwc,
    /// Output shape (`output.n == input.n`).
    pub output: Nhwc,
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation (1 for pools).
    pub dilation: [usize; 2],
    /// Padding before the first row and column (top, left); bottom/right padding is implied
    /// by the output size.
    pub pad: [usize; 2],
}

impl ConvGeometry {
    /// Whether every output pixel is the input pixel at its place times the filters: a 1×1
    /// window, stride 1 and no padding on any side (the output has the input's size).
    pub fn is_pointwise(&self) -> bool {
        let same_size = (self.output.h, self.output.w) == (self.input.h, self.input.w);
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [0, 0] && same_size
    }
}

/// Shape of a fully connected layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FcGeometry {
    /// Number of input rows (product of all leading dimensions).
    pub rows: usize,
    /// Input features per row (`K`).
    pub depth: usize,
    /// Output features per row (`Cout`).
    pub units: usize,
}

/// Fused activation bounds for f32 outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClampF32 {
    /// Lower bound (`-inf` for none).
    pub min: f32,
    /// Upper bound (`inf` for none).
    pub max: f32,
}

impl ClampF32 {
    /// No clamping.
    pub const NONE: Self = Self { min: f32::NEG_INFINITY, max: f32::INFINITY };

    /// Clamps `x` (NaN passes through unchanged).
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        if x < self.min {
            self.min
        } else if x > self.max {
            self.max
        } else {
            x
        }
    }
}

/// Fused activation bounds for int8 outputs, already quantized (within -128..=127).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClampI8 {
    /// Lower bound.
    pub min: i32,
    /// Upper bound.
    pub max: i32,
}

impl ClampI8 {
    /// The full int8 range.
    pub const FULL: Self = Self { min: -128, max: 127 };

    /// Clamps `x` and narrows it to int8 (`min ≤ max`, both int8, as the loader checks; unlike
    /// `i32::clamp` this has no assertion to check per value).
    #[inline(always)]
    pub fn apply(self, x: i32) -> i8 {
        x.max(self.min).min(self.max) as i8
    }
}

/// Quantization of an int8 convolution or fully connected layer.
#[derive(Clone, Copy, Debug)]
pub struct Int8Params<'a> {
    /// Zero point of the input activation.
    pub input_zero_point: i32,
    /// Zero point of the output activation.
    pub output_zero_point: i32,
    /// Per-output-channel requantization (`in_scale × w_scale[c] / out_scale`); a single
    /// entry applies to every channel (per-tensor weights).
    pub requant: &'a [Requant],
    /// Fused activation bounds.
    pub act: ClampI8,
    /// How the requantization rounds (twice, but for imported per-tensor fully connected layers).
    pub rounding: Rounding,
}

impl Int8Params<'_> {
    /// Requantization of output channel `c`.
    #[inline(always)]
    pub fn channel(&self, c: usize) -> Requant {
        if self.requant.len() == 1 {
            self.requant[0]
        } else {
            self.requant[c]
        }
    }
}

/// A weight element that f32 kernels widen on the fly.
pub trait Weight: Copy {
    /// The weight as f32.
    fn to_f32(self) -> f32;

    /// The weights themselves when they are f32 (so vector kernels load them directly), else `None`.
    #[inline(always)]
    fn as_f32(_w: &[Self]) -> Option<&[f32]> {
        None
    }

    /// The weights' bit patterns when they are f16 (so vector kernels widen several at once), else `None`.
    #[inline(always)]
    fn as_f16_bits(_w: &[Self]) -> Option<&[u16]> {
        None
    }
}

impl Weight for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    #[inline(always)]
    fn as_f32(w: &[f32]) -> Option<&[f32]> {
        Some(w)
    }
}

impl Weight for half::f16 {
    /// The portable conversion: `half`'s `to_f32` with its `std` feature (which the host tools
    /// enable) detects F16C at run time and calls an out-of-line function per weight, ~20× slower.
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32_const()
    }

    #[inline(always)]
    fn as_f16_bits(w: &[Self]) -> Option<&[u16]> {
        Some(half::slice::HalfFloatSliceExt::reinterpret_cast(w))
    }
}
