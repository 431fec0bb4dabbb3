//! Which int8 depthwise layers the Cortex-M DSP kernels' 3×3 path takes
//! (`cortex_m_dsp/depthwise/three_by_three.rs`), decided from plain geometry and quantization on
//! every target, so the host plans for the device: the planner sizes the path's tile
//! (`scratch`), `ember-quantize` lays out its weights ([`weight_layout`]).

use super::ConvGeometry;
use crate::format::layout::WeightLayout;
use crate::quant::{Requant, Rounding};

/// Fewest output pixels along the longer side for which the path runs (it beats the general
/// kernel on the emulated M4 from lines of 6).
pub const MIN_PIXELS: usize = 6;

/// Words of the path's tile: 7 rows of 68 words.
pub const TILE_WORDS: usize = 7 * 68;

/// Largest right shift of a nonzero factor the path's output stage takes.
pub const MAX_SHIFT: i32 = 22;

/// Whether the path sweeps `g`'s output along columns (it has more rows than columns), if its
/// geometry suits the path: 3×3 windows of dilation 1 over channels in fours with a channel
/// multiplier of 1, and at least [`MIN_PIXELS`] output pixels along the longer side, of stride
/// 1 or 2.
pub fn sweeps_columns(g: &ConvGeometry) -> Option<bool> {
    let c = g.input.c;
    let columns = g.output.h > g.output.w;
    let (pixels, stride) = if columns { (g.output.h, g.stride[0]) } else { (g.output.w, g.stride[1]) };
    let suits = g.kernel == [3, 3]
        && g.dilation == [1, 1]
        && c > 0
        && c.is_multiple_of(4)
        && g.output.c == c
        && pixels >= MIN_PIXELS
        && (1..=2).contains(&stride);
    suits.then_some(columns)
}

/// The layout of the weights of a layer the path takes whatever its activations: its geometry
/// suits the path ([`sweeps_columns`]), it rounds twice, and each channel with a nonzero
/// factor has a factor below 1/2 with a right shift of at most [`MAX_SHIFT`] and a bias that
/// keeps every accumulator below 2^30 (`|bias| + 9 × 255 × 128`). `requant` holds one factor or
/// one per channel, `bias` one per channel.
pub fn weight_layout(
    g: &ConvGeometry,
    requant: &[Requant],
    bias: &[i32],
    rounding: Rounding,
) -> Option<WeightLayout> {
    let columns = sweeps_columns(g)?;
    let c = g.output.c;
    let factor = |ch: usize| if requant.len() == 1 { requant.first() } else { requant.get(ch) };
    let fits = |ch: usize| match (factor(ch), bias.get(ch)) {
        (Some(r), Some(&b)) => {
            let below_half = r.multiplier > 0 && (-MAX_SHIFT..=-1).contains(&r.shift);
            r.multiplier == 0 || (below_half && u64::from(b.unsigned_abs()) + 9 * 255 * 128 < 1 << 30)
        }
        _ => false,
    };
    let layout = if columns { WeightLayout::DspDepthwiseColumns } else { WeightLayout::DspDepthwiseRows };
    (rounding == Rounding::Double && (0..c).all(fits)).then_some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Nhwc;

    fn geometry(output: [usize; 2], c: usize, stride: usize) -> ConvGeometry {
        let [oh, ow] = output;
        ConvGeometry {
            input: Nhwc { n: 1, h: oh * stride, w: ow * stride, c },
            output: Nhwc { n: 1, h: oh, w: ow, c },
            kernel: [3, 3],
            stride: [stride; 2],
            dilation: [1, 1],
            pad: [1, 1],
        }
    }

    #[test]
    fn layout_follows_the_sweep_and_needs_every_channel_to_fit() {
        let r = Requant { multiplier: 1 << 30, shift: -5 };
        let (requant, bias) = ([r], [1000; 8]);
        let layout = |g: &ConvGeometry| weight_layout(g, &requant, &bias, Rounding::Double);
        assert_eq!(layout(&geometry([25, 5], 8, 1)), Some(WeightLayout::DspDepthwiseColumns));
        assert_eq!(layout(&geometry([6, 6], 8, 2)), Some(WeightLayout::DspDepthwiseRows));
        // Too short a side, channels not in fours, stride 3, a 5×5 window.
        assert_eq!(layout(&geometry([5, 5], 8, 1)), None);
        assert_eq!(layout(&geometry([8, 8], 6, 1)), None);
        assert_eq!(layout(&geometry([8, 8], 8, 3)), None);
        assert_eq!(layout(&ConvGeometry { kernel: [5, 5], ..geometry([8, 8], 8, 1) }), None);
        let g = geometry([8, 8], 8, 1);
        assert_eq!(weight_layout(&g, &requant, &bias, Rounding::Single), None);
        // Per channel: a zero factor fits whatever its bias; a shift of 23, a factor of 1/2 or
        // more, or a bias near 2^30 on a live channel does not.
        let mut per_channel = [r; 8];
        let mut biases = bias;
        (per_channel[0], biases[0]) = (Requant { multiplier: 0, shift: 0 }, i32::MAX);
        assert!(weight_layout(&g, &per_channel, &biases, Rounding::Double).is_some());
        for bad in [Requant { shift: -23, ..r }, Requant { shift: 0, ..r }] {
            per_channel[7] = bad;
            assert_eq!(weight_layout(&g, &per_channel, &biases, Rounding::Double), None);
        }
        per_channel[7] = r;
        biases[7] = (1 << 30) - 9 * 255 * 128;
        assert_eq!(weight_layout(&g, &per_channel, &biases, Rounding::Double), None);
        biases[7] -= 1;
        assert!(weight_layout(&g, &per_channel, &biases, Rounding::Double).is_some());
        // Too few biases or factors.
        assert_eq!(weight_layout(&g, &per_channel[..7], &biases, Rounding::Double), None);
        assert_eq!(weight_layout(&g, &per_channel, &biases[..7], Rounding::Double), None);
    }
}
