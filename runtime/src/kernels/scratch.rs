//! Kernel scratch memory: which kernel set a model is planned for ([`Target`]), how many
//! scratch bytes each of its kernels needs for an op ([`Target::bytes`]), and the planned
//! buffer a kernel carves its working space from ([`Scratch`]).
//!
//! Scratch is part of the offline memory plan: `ember-quantize` asks [`Target::bytes`] for
//! every op and places the buffer in the arena where no live tensor is (docs/FORMAT.md,
//! `scratch_offset`); the interpreter refuses a model that plans less than its kernels need.
//! The sizes are plain arithmetic on the op's geometry, compiled on every target, so the host
//! plans for a device. Each function here mirrors the [`Scratch::take`] calls of the kernel
//! it names; a kernel given too little scratch runs the reference kernel instead of failing.

use super::{ConvGeometry, FcGeometry};

/// A kernel set a model's scratch can be planned for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Target {
    /// The portable reference kernels (no scratch).
    Reference,
    /// Cortex-M cores with the DSP extension (M4, M7, M33): `kernels::cortex_m_dsp`.
    CortexMDsp,
    /// Cortex-M cores with Helium (M55, M85): `kernels::helium`, the DSP kernels elsewhere.
    Helium,
    /// aarch64 with NEON: `kernels::neon`.
    Neon,
}

impl Target {
    /// Every kernel set.
    pub const ALL: [Target; 4] = [Target::Reference, Target::CortexMDsp, Target::Helium, Target::Neon];

    /// The kernel set this build of the runtime runs.
    pub const SELECTED: Target = if cfg!(ember_helium) {
        Target::Helium
    } else if cfg!(ember_arm_dsp) {
        Target::CortexMDsp
    } else if cfg!(ember_neon) {
        Target::Neon
    } else {
        Target::Reference
    };

    /// The name `ember-quantize --target` takes.
    pub fn name(self) -> &'static str {
        match self {
            Target::Reference => "reference",
            Target::CortexMDsp => "cortex-m-dsp",
            Target::Helium => "helium",
            Target::Neon => "neon",
        }
    }

    /// Scratch bytes this kernel set needs to run `op`.
    pub fn bytes(self, op: &ScratchOp) -> usize {
        match self {
            Target::Reference => 0,
            Target::CortexMDsp => cortex_m_dsp(op),
            Target::Helium => helium(op),
            Target::Neon => neon(op),
        }
    }
}

/// An op whose kernels may need scratch, with what sizes it.
#[derive(Clone, Copy, Debug)]
pub enum ScratchOp {
    /// int8 `conv2d`.
    Conv2dI8(ConvGeometry),
    /// int8 `depthwise_conv2d`.
    DepthwiseI8(ConvGeometry),
    /// int8 `fully_connected`.
    FullyConnectedI8(FcGeometry),
    /// int8 `add`.
    AddI8 {
        /// Whether the inputs' shapes differ from the output's.
        broadcast: bool,
    },
    /// f32 `conv2d` (f32 or f16 weights).
    Conv2dF32(ConvGeometry),
}

/// `kernels::cortex_m_dsp`'s needs.
fn cortex_m_dsp(op: &ScratchOp) -> usize {
    match *op {
        ScratchOp::Conv2dI8(g) => dsp::conv2d_i8(&g),
        ScratchOp::DepthwiseI8(g) => dsp::depthwise_i8(&g),
        ScratchOp::FullyConnectedI8(g) => dsp::fully_connected_i8(&g),
        ScratchOp::AddI8 { broadcast } => dsp::add_i8(broadcast),
        ScratchOp::Conv2dF32(_) => 0,
    }
}

/// `kernels::helium`'s needs: those of the DSP kernels it falls back to (its convolution's
/// gathered column, `KH × KW × Cin` bytes, fits in theirs; its depthwise kernel needs none),
/// but its add needs none.
fn helium(op: &ScratchOp) -> usize {
    match op {
        ScratchOp::AddI8 { .. } => 0,
        _ => cortex_m_dsp(op),
    }
}

/// `kernels::neon`'s needs: convolutions other than pointwise gather windows, one row of
/// `KH × KW × Cin` int8 values, or four of f32 values.
fn neon(op: &ScratchOp) -> usize {
    let window = |g: &ConvGeometry| if g.is_pointwise() { 0 } else { g.kernel[0] * g.kernel[1] * g.input.c };
    match op {
        ScratchOp::Conv2dI8(g) => window(g),
        ScratchOp::Conv2dF32(g) => 4 * size_of::<f32>() * window(g),
        ScratchOp::DepthwiseI8(_) | ScratchOp::FullyConnectedI8(_) | ScratchOp::AddI8 { .. } => 0,
    }
}

/// The Cortex-M DSP kernels' scratch, in bytes.
pub(crate) mod dsp {
    use crate::kernels::{dsp_depthwise, ConvGeometry, FcGeometry};

    /// `conv2d_i8`: two columns of 16-bit activations (4 bytes per window element, the window
    /// rounded up to a multiple of 4), and the window gathered as bytes when its channels
    /// come in other than fours (unless the window is one unpadded pixel).
    pub(crate) fn conv2d_i8(g: &ConvGeometry) -> usize {
        let depth = g.kernel[0] * g.kernel[1] * g.input.c;
        let pixel = g.kernel == [1, 1] && g.pad == [0, 0];
        let gathered = if pixel || g.input.c.is_multiple_of(4) { 0 } else { depth };
        4 * depth.next_multiple_of(4) + gathered
    }

    /// `depthwise_conv2d_i8`: the tile of the 3×3 path for the layers whose geometry suits it
    /// ([`dsp_depthwise::sweeps_columns`]).
    pub(crate) fn depthwise_i8(g: &ConvGeometry) -> usize {
        match dsp_depthwise::sweeps_columns(g) {
            Some(_) => 4 * dsp_depthwise::TILE_WORDS,
            None => 0,
        }
    }

    /// `fully_connected_i8`: one column of 16-bit activations for a single row; more rows run
    /// as a pointwise convolution, with two.
    pub(crate) fn fully_connected_i8(g: &FcGeometry) -> usize {
        let columns = if g.rows == 1 { 1 } else { 2 };
        2 * columns * g.depth.next_multiple_of(4)
    }

    /// `add_i8`: each input's rescaled value per byte (2 × 256 × 4 bytes) for same-shape inputs.
    pub(crate) fn add_i8(broadcast: bool) -> usize {
        if broadcast {
            0
        } else {
            2 * 256 * 4
        }
    }
}

/// An op's planned scratch buffer, from which a kernel takes aligned slices.
pub struct Scratch<'a> {
    bytes: &'a mut [u8],
}

impl<'a> Scratch<'a> {
    /// Scratch over `bytes`.
    pub fn new(bytes: &'a mut [u8]) -> Self {
        Self { bytes }
    }

    /// No scratch (the reference kernels' and validation's).
    pub fn none() -> Self {
        Self { bytes: &mut [] }
    }

    /// Bytes left.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no bytes are left.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next `n` elements of `T`, zeroed, aligned for `T` (skipping at most
    /// `align_of::<T>() - 1` bytes), or `None` when the buffer is too short.
    pub fn take<T: bytemuck::Pod>(&mut self, n: usize) -> Option<&'a mut [T]> {
        let skip = self.bytes.as_ptr().align_offset(align_of::<T>());
        let len = n.checked_mul(size_of::<T>())?;
        let end = skip.checked_add(len)?;
        if end > self.bytes.len() {
            return None;
        }
        let bytes = core::mem::take(&mut self.bytes);
        let (taken, rest) = bytes.split_at_mut(end);
        self.bytes = rest;
        let taken = &mut taken[skip..];
        taken.fill(0);
        bytemuck::try_cast_slice_mut(taken).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Nhwc;

    #[test]
    fn takes_are_aligned_zeroed_and_refused_past_the_end() {
        #[repr(align(16))]
        struct Aligned([u8; 40]);
        let mut buffer = Aligned([0xff; 40]);
        let mut scratch = Scratch::new(&mut buffer.0[1..]);
        assert_eq!(scratch.take::<u8>(3).unwrap(), [0; 3]);
        // From address +4, aligned for u32 without skipping: 36 bytes left.
        let words = scratch.take::<u32>(4).unwrap();
        assert_eq!((words.as_ptr() as usize) % 4, 0);
        assert_eq!(words, [0; 4]);
        assert!(scratch.take::<u32>(6).is_none(), "20 bytes hold no 6 words");
        assert_eq!(scratch.len(), 20);
        assert_eq!(scratch.take::<u8>(1).map(|b| b.len()), Some(1));
        // From +21, a word is 3 bytes further: 16 bytes hold 4 words.
        assert_eq!(scratch.take::<u32>(4).map(|w| w.len()), Some(4));
        assert!(scratch.is_empty());
    }

    #[test]
    fn each_target_sizes_what_its_kernels_take() {
        let g = ConvGeometry {
            input: Nhwc { n: 1, h: 8, w: 8, c: 3 },
            output: Nhwc { n: 1, h: 8, w: 8, c: 16 },
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [1, 1],
        };
        let pointwise = ConvGeometry { input: Nhwc { c: 8, ..g.input }, kernel: [1, 1], pad: [0, 0], ..g };
        let fc = FcGeometry { rows: 1, depth: 10, units: 4 };
        // Two 16-bit columns of 27 → 28 elements, and the 27 gathered bytes (3 channels).
        assert_eq!(Target::CortexMDsp.bytes(&ScratchOp::Conv2dI8(g)), 4 * 28 + 27);
        assert_eq!(Target::CortexMDsp.bytes(&ScratchOp::Conv2dI8(pointwise)), 4 * 8);
        assert_eq!(Target::CortexMDsp.bytes(&ScratchOp::FullyConnectedI8(fc)), 2 * 12);
        let rows = FcGeometry { rows: 3, ..fc };
        assert_eq!(Target::CortexMDsp.bytes(&ScratchOp::FullyConnectedI8(rows)), 4 * 12);
        assert_eq!(Target::CortexMDsp.bytes(&ScratchOp::AddI8 { broadcast: false }), 2048);
        assert_eq!(Target::CortexMDsp.bytes(&ScratchOp::AddI8 { broadcast: true }), 0);
        assert_eq!(Target::Helium.bytes(&ScratchOp::Conv2dI8(g)), 4 * 28 + 27);
        assert_eq!(Target::Helium.bytes(&ScratchOp::AddI8 { broadcast: false }), 0);
        assert_eq!(Target::Neon.bytes(&ScratchOp::Conv2dI8(g)), 27);
        assert_eq!(Target::Neon.bytes(&ScratchOp::Conv2dI8(pointwise)), 0);
        assert_eq!(Target::Neon.bytes(&ScratchOp::Conv2dF32(g)), 4 * 4 * 27);
        for op in [ScratchOp::Conv2dI8(g), ScratchOp::FullyConnectedI8(fc), ScratchOp::Conv2dF32(g)] {
            assert_eq!(Target::Reference.bytes(&op), 0);
        }
    }
}
