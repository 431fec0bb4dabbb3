//! Weight layouts: how the bytes of a weight tensor are arranged (`TensorRecord::layout`).
//!
//! A weight tensor holds `filters` filters (its first dimension) of `depth` weights (the
//! product of the others). [`WeightLayout::Standard`] stores them row-major as the dims say.
//! The other layouts are the order the Cortex-M DSP kernels read, chosen by `ember-quantize`
//! at export (`--target cortex-m-dsp`) so no kernel rearranges weights at run time: filters in
//! pairs and each filter's depth in groups of four, padded with zeros (the padding is never
//! part of a result). Every kernel set reads every layout; the reference kernels through
//! [`WeightLayout::get`].

/// How a weight tensor's bytes are arranged (docs/FORMAT.md §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum WeightLayout {
    /// Row-major in the tensor's dims, elements of its dtype.
    Standard = 0,
    /// int8 filters in pairs `p` (an odd last filter paired with zeros), depth in groups `g` of
    /// four (the last padded with zeros): per pair and group, filter `2p`'s four bytes then
    /// filter `2p + 1`'s, so one `LDRD` loads both.
    DspPairs = 1,
    /// [`WeightLayout::DspPairs`] with every weight sign-extended to a little-endian i16, each
    /// filter's group as two words of lanes `(k, k + 2)` and `(k + 1, k + 3)`: the operands of
    /// `SMLAD` as they are, at twice the bytes.
    DspPairsWide = 2,
}

impl WeightLayout {
    /// Every layout, in byte order.
    pub const ALL: [WeightLayout; 3] = [Self::Standard, Self::DspPairs, Self::DspPairsWide];

    /// Decodes a layout byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        // A match, not a search of `ALL`: the loader decodes this for every tensor lookup.
        match v {
            0 => Some(Self::Standard),
            1 => Some(Self::DspPairs),
            2 => Some(Self::DspPairsWide),
            _ => None,
        }
    }

    /// The name `ember-quantize inspect` and the docs use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::DspPairs => "dsp-pairs",
            Self::DspPairsWide => "dsp-pairs-wide",
        }
    }

    /// Bytes of `filters` int8 filters of `depth` weights in this layout (`None` on overflow).
    pub fn byte_len(self, filters: usize, depth: usize) -> Option<usize> {
        let paired = || filters.div_ceil(2).checked_mul(depth.div_ceil(4))?.checked_mul(8);
        match self {
            Self::Standard => filters.checked_mul(depth),
            Self::DspPairs => paired(),
            Self::DspPairsWide => paired()?.checked_mul(2),
        }
    }

    /// Element index of weight `k` of filter `f` (an int8 element; an i16 one in
    /// [`WeightLayout::DspPairsWide`]).
    #[inline(always)]
    fn index(self, depth: usize, f: usize, k: usize) -> usize {
        let (groups, (g, j)) = (depth.div_ceil(4), (k / 4, k % 4));
        let unit = ((f / 2) * groups + g) * 2 + f % 2;
        match self {
            Self::Standard => f * depth + k,
            Self::DspPairs => unit * 4 + j,
            // Lanes (k, k + 2) then (k + 1, k + 3).
            Self::DspPairsWide => unit * 4 + (j & 1) * 2 + j / 2,
        }
    }

    /// Weight `k` of filter `f` of filters of `depth` int8 weights laid out in `bytes` (0 past
    /// the end, which the loader's length check rules out).
    #[inline(always)]
    pub fn get(self, bytes: &[u8], depth: usize, f: usize, k: usize) -> i32 {
        let i = self.index(depth, f, k);
        match self {
            Self::Standard | Self::DspPairs => bytes.get(i).map_or(0, |&b| i32::from(b as i8)),
            Self::DspPairsWide => match bytes.get(2 * i..2 * i + 2) {
                Some(&[lo, hi]) => i32::from(i16::from_le_bytes([lo, hi])),
                _ => 0,
            },
        }
    }

    /// Writes `filters` standard-layout filters `w` of `depth` weights to `out` in this layout
    /// (`out` holds [`WeightLayout::byte_len`] bytes; padding is written as zeros).
    #[cfg(any(test, feature = "std"))]
    #[allow(clippy::indexing_slicing)]
    pub fn pack(self, w: &[i8], filters: usize, depth: usize, out: &mut [u8]) {
        out.fill(0);
        for f in 0..filters {
            for k in 0..depth {
                let (v, i) = (w[f * depth + k], self.index(depth, f, k));
                match self {
                    Self::Standard | Self::DspPairs => out[i] = v as u8,
                    Self::DspPairsWide => out[2 * i..2 * i + 2].copy_from_slice(&i16::from(v).to_le_bytes()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_get_round_trips_with_zero_padding() {
        for (filters, depth) in [(1, 1), (2, 4), (3, 5), (5, 9), (4, 27)] {
            let w: Vec<i8> = (0..filters * depth).map(|i| (i as i32 * 37 % 255 - 127) as i8).collect();
            for layout in WeightLayout::ALL {
                let mut out = vec![0xffu8; layout.byte_len(filters, depth).unwrap()];
                layout.pack(&w, filters, depth, &mut out);
                for f in 0..filters {
                    for k in 0..depth {
                        assert_eq!(layout.get(&out, depth, f, k), i32::from(w[f * depth + k]), "{layout:?}");
                    }
                }
                // Every byte not holding a weight is zero padding.
                let nonzero = out.iter().filter(|&&b| b != 0).count();
                let weights = w.iter().filter(|&&v| v != 0).count();
                let per = if layout == WeightLayout::DspPairsWide { 2 } else { 1 };
                assert!(nonzero <= weights * per, "{layout:?}");
                assert_eq!(WeightLayout::from_u8(layout as u8), Some(layout));
            }
        }
        assert_eq!(WeightLayout::from_u8(3), None);
    }

    #[test]
    fn pairs_interleave_filters_per_group_of_four() {
        // Two filters of 6: f0 = 1..=6, f1 = 11..=16 → groups [1 2 3 4][11..14], [5 6 0 0][15 16 0 0].
        let w: Vec<i8> = (1..=6).chain(11..=16).collect();
        let mut out = vec![0; 16];
        WeightLayout::DspPairs.pack(&w, 2, 6, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 11, 12, 13, 14, 5, 6, 0, 0, 15, 16, 0, 0]);
        let mut wide = vec![0; 32];
        WeightLayout::DspPairsWide.pack(&w, 2, 6, &mut wide);
        let lanes: Vec<i16> = wide.chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        assert_eq!(lanes, [1, 3, 2, 4, 11, 13, 12, 14, 5, 0, 6, 0, 15, 0, 16, 0]);
    }
}
