//! Weight layouts: how the bytes of a weight tensor are arranged (`TensorRecord::layout`).
//!
//! A weight tensor holds `filters` filters (its first dimension) of `depth` weights (the
//! product of the others). [`WeightLayout::Standard`] stores them row-major as the dims say.
//! The other layouts are the order the Cortex-M DSP kernels read, chosen by `ember-quantize`
//! at export (`--target cortex-m-dsp`) so no kernel rearranges weights at run time: filters in
//! pairs and each filter's depth in groups of four, padded with zeros (the padding is never
//! part of a result); 3×3 depthwise weights as the taps of window rows, paired and doubled.
//! Every kernel set reads every layout; the reference kernels through [`WeightLayout::get`].

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
    /// int8 3×3 depthwise weights `[1, 3, 3, C]`, `C` a multiple of 4, as the DSP 3×3
    /// depthwise path reads them sweeping output rows: per quad of channels and window row (a
    /// row of the weights), eight words of i16 lanes, each weight doubled: `(w0, w1)` of
    /// channels 0 and 1, `(w1, w2)` of channels 0 and 1, then the same of channels 2 and 3.
    /// Every middle tap is stored twice; the loader checks both copies agree and every lane is
    /// a doubled int8.
    DspDepthwiseRows = 3,
    /// [`WeightLayout::DspDepthwiseRows`] with window rows the weights' columns: the path
    /// sweeps output columns when the output has more rows than columns.
    DspDepthwiseColumns = 4,
}

/// Bytes of one quad of channels in the depthwise layouts: 3 window rows × 8 words.
const DEPTHWISE_QUAD_BYTES: usize = 96;

impl WeightLayout {
    /// Every layout, in byte order.
    pub const ALL: [WeightLayout; 5] = [
        Self::Standard,
        Self::DspPairs,
        Self::DspPairsWide,
        Self::DspDepthwiseRows,
        Self::DspDepthwiseColumns,
    ];

    /// The layouts of filters (`conv2d`, `fully_connected`), which `ember-quantize
    /// --weight-layout` names; DSP ones bring the depthwise layouts with them.
    pub const FILTERS: [WeightLayout; 3] = [Self::Standard, Self::DspPairs, Self::DspPairsWide];

    /// Decodes a layout byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        // A match, not a search of `ALL`: the loader decodes this for every tensor lookup.
        match v {
            0 => Some(Self::Standard),
            1 => Some(Self::DspPairs),
            2 => Some(Self::DspPairsWide),
            3 => Some(Self::DspDepthwiseRows),
            4 => Some(Self::DspDepthwiseColumns),
            _ => None,
        }
    }

    /// The name `ember-quantize inspect` and the docs use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::DspPairs => "dsp-pairs",
            Self::DspPairsWide => "dsp-pairs-wide",
            Self::DspDepthwiseRows => "dsp-depthwise-rows",
            Self::DspDepthwiseColumns => "dsp-depthwise-columns",
        }
    }

    /// Whether this is a layout of 3×3 depthwise weights (`[1, 3, 3, C]`), not of filters.
    pub fn is_depthwise(self) -> bool {
        matches!(self, Self::DspDepthwiseRows | Self::DspDepthwiseColumns)
    }

    /// Bytes of `filters` int8 filters of `depth` weights in this layout (`None` on overflow,
    /// or for depthwise weights other than one filter of `9 × C` with `C` a multiple of 4).
    pub fn byte_len(self, filters: usize, depth: usize) -> Option<usize> {
        let paired = || filters.div_ceil(2).checked_mul(depth.div_ceil(4))?.checked_mul(8);
        match self {
            Self::Standard => filters.checked_mul(depth),
            Self::DspPairs => paired(),
            Self::DspPairsWide => paired()?.checked_mul(2),
            Self::DspDepthwiseRows | Self::DspDepthwiseColumns => {
                (filters == 1 && depth.is_multiple_of(36)).then_some(depth / 36 * DEPTHWISE_QUAD_BYTES)
            }
        }
    }

    /// Element index of weight `k` of filter `f` (an int8 element; an i16 one in the wide and
    /// depthwise layouts, the first copy of a middle tap).
    #[inline(always)]
    fn index(self, depth: usize, f: usize, k: usize) -> usize {
        let (groups, (g, j)) = (depth.div_ceil(4), (k / 4, k % 4));
        let unit = ((f / 2) * groups + g) * 2 + f % 2;
        match self {
            Self::Standard => f * depth + k,
            Self::DspPairs => unit * 4 + j,
            // Lanes (k, k + 2) then (k + 1, k + 3).
            Self::DspPairsWide => unit * 4 + (j & 1) * 2 + j / 2,
            Self::DspDepthwiseRows | Self::DspDepthwiseColumns => self.depthwise_index(depth, k).0,
        }
    }

    /// The i16 element of depthwise weight `k` (of `depth = 9 × C`) in a depthwise layout, and
    /// whether it is a middle tap, stored again 3 elements further (the low lane of the pair
    /// `(w1, w2)`).
    #[inline(always)]
    fn depthwise_index(self, depth: usize, k: usize) -> (usize, bool) {
        // Weight k is tap t = 3a + b (row a, column b) of channel ch.
        let channels = (depth / 9).max(1);
        let (t, ch) = (k / channels, k % channels);
        let (row, tap) = if self == Self::DspDepthwiseRows { (t / 3, t % 3) } else { (t % 3, t / 3) };
        // Channels 0 and 1 in words 0–3, 2 and 3 in words 4–7; the pair (w1, w2) two words
        // after (w0, w1).
        let word = (ch % 4 / 2) * 4 + ch % 2 + if tap == 2 { 2 } else { 0 };
        (((ch / 4 * 3 + row) * 8 + word) * 2 + usize::from(tap != 0), tap == 1)
    }

    /// Weight `k` of filter `f` of filters of `depth` int8 weights laid out in `bytes` (0 past
    /// the end, which the loader's length check rules out).
    #[inline(always)]
    pub fn get(self, bytes: &[u8], depth: usize, f: usize, k: usize) -> i32 {
        let i = self.index(depth, f, k);
        let lane = || match bytes.get(2 * i..2 * i + 2) {
            Some(&[lo, hi]) => i32::from(i16::from_le_bytes([lo, hi])),
            _ => 0,
        };
        match self {
            Self::Standard | Self::DspPairs => bytes.get(i).map_or(0, |&b| i32::from(b as i8)),
            Self::DspPairsWide => lane(),
            // Doubled (the loader checks every lane is even).
            Self::DspDepthwiseRows | Self::DspDepthwiseColumns => lane() >> 1,
        }
    }

    /// Whether `bytes` are weights in this layout as the kernels read them: in the depthwise
    /// layouts, every lane a doubled int8 and both copies of each middle tap equal (the loader's
    /// check; the reference reads the first copy, the DSP path both). Other layouts hold any
    /// bytes.
    pub fn holds_weights(self, bytes: &[u8]) -> bool {
        if !self.is_depthwise() {
            return true;
        }
        let (words, _) = bytes.as_chunks::<4>();
        let lanes = |w: &[u8; 4]| [i16::from_le_bytes([w[0], w[1]]), i16::from_le_bytes([w[2], w[3]])];
        let doubled = |v: i16| v % 2 == 0 && (-256..=254).contains(&v);
        let (rows, _) = words.as_chunks::<8>();
        rows.iter().all(|row| {
            let [a0, a1, b0, b1, a2, a3, b2, b3] = row.map(|w| lanes(&w));
            // Each pair (w0, w1) ends with the tap the pair (w1, w2) two words on starts with.
            let middles = [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].iter().all(|(a, b)| a[1] == b[0]);
            middles && row.iter().flat_map(lanes).all(doubled)
        })
    }

    /// Writes `filters` standard-layout filters `w` of `depth` weights to `out` in this layout
    /// (`out` holds [`WeightLayout::byte_len`] bytes; padding is written as zeros).
    #[cfg(any(test, feature = "std"))]
    #[allow(clippy::indexing_slicing)]
    pub fn pack(self, w: &[i8], filters: usize, depth: usize, out: &mut [u8]) {
        out.fill(0);
        let lane = |out: &mut [u8], i: usize, v: i16| out[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
        for f in 0..filters {
            for k in 0..depth {
                let (v, i) = (w[f * depth + k], self.index(depth, f, k));
                match self {
                    Self::Standard | Self::DspPairs => out[i] = v as u8,
                    Self::DspPairsWide => lane(out, i, i16::from(v)),
                    Self::DspDepthwiseRows | Self::DspDepthwiseColumns => {
                        let (i, middle) = self.depthwise_index(depth, k);
                        lane(out, i, 2 * i16::from(v));
                        if middle {
                            lane(out, i + 3, 2 * i16::from(v));
                        }
                    }
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
        for (filters, depth) in [(1, 1), (2, 4), (3, 5), (5, 9), (4, 27), (1, 36), (1, 72)] {
            let w: Vec<i8> = (0..filters * depth).map(|i| (i as i32 * 37 % 255 - 127) as i8).collect();
            for layout in WeightLayout::ALL {
                let Some(len) = layout.byte_len(filters, depth) else {
                    assert!(layout.is_depthwise() && (filters != 1 || depth % 36 != 0));
                    continue;
                };
                let mut out = vec![0xffu8; len];
                layout.pack(&w, filters, depth, &mut out);
                for f in 0..filters {
                    for k in 0..depth {
                        assert_eq!(layout.get(&out, depth, f, k), i32::from(w[f * depth + k]), "{layout:?}");
                    }
                }
                // Every byte not holding a weight is zero padding.
                let nonzero = out.iter().filter(|&&b| b != 0).count();
                let weights = w.iter().filter(|&&v| v != 0).count();
                let per = match layout {
                    WeightLayout::Standard | WeightLayout::DspPairs => 1,
                    WeightLayout::DspPairsWide => 2,
                    _ => 4,
                };
                assert!(nonzero <= weights * per, "{layout:?}");
                assert!(layout.holds_weights(&out), "{layout:?}");
                assert_eq!(WeightLayout::from_u8(layout as u8), Some(layout));
            }
        }
        assert_eq!(WeightLayout::from_u8(5), None);
    }

    #[test]
    fn depthwise_rows_pair_doubled_taps_per_quad_and_window_row() {
        // [1, 3, 3, 4]: channel ch's tap (a, b) is 10·ch + 3a + b + 1.
        let w: Vec<i8> = (0..36).map(|k| (10 * (k % 4) + k / 4 + 1) as i8).collect();
        let lanes = |layout: WeightLayout| {
            let mut out = vec![0; 96];
            layout.pack(&w, 1, 36, &mut out);
            assert!(layout.holds_weights(&out));
            let lanes: Vec<i16> = out.chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
            lanes
        };
        let rows = lanes(WeightLayout::DspDepthwiseRows);
        // Window row 0: (w0, w1) of channels 0, 1, (w1, w2) of channels 0, 1, then channels 2, 3.
        let halves = |v: &[i16]| v.iter().map(|x| x / 2).collect::<Vec<_>>();
        assert_eq!(halves(&rows[..16]), [1, 2, 11, 12, 2, 3, 12, 13, 21, 22, 31, 32, 22, 23, 32, 33]);
        assert_eq!(halves(&rows[16..20]), [4, 5, 14, 15]);
        assert!(rows.iter().all(|v| v % 2 == 0));
        // Columns: window row 0 is the weights' column 0 (taps 1, 4, 7).
        let columns = lanes(WeightLayout::DspDepthwiseColumns);
        assert_eq!(halves(&columns[..8]), [1, 4, 11, 14, 4, 7, 14, 17]);
        // A middle tap's copies disagreeing, an odd lane, a lane past int8: not weights.
        for (at, v) in [(1, 6), (0, 3), (0, 256)] {
            let mut bytes = vec![0; 96];
            WeightLayout::DspDepthwiseRows.pack(&w, 1, 36, &mut bytes);
            bytes[2 * at..2 * at + 2].copy_from_slice(&i16::to_le_bytes(v));
            assert!(!WeightLayout::DspDepthwiseRows.holds_weights(&bytes), "lane {at} = {v}");
            assert!(WeightLayout::DspPairs.holds_weights(&bytes));
        }
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
