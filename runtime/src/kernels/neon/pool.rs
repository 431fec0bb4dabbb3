//! Average pooling with NEON: each window's sums of eight channels at a time in 16-bit lanes.

use core::arch::aarch64::{int16x8_t, vaddw_s8, vdupq_n_s16, vld1_s8, vst1q_s16};

use crate::kernels::conv2d::for_each_window;
use crate::kernels::pool::{self, rounded_div};
use crate::kernels::{ClampI8, ConvGeometry};

/// [`pool::average_pool_i8`] with each window's sums of eight channels in the 16-bit lanes of
/// one register (`SADDW` of every cell's eight bytes), channels past the last eight summed one
/// by one, then TFLite's rounded division per channel. Windows the lanes cannot sum
/// ([`pool::lane_sums_fit`]) run the reference kernel.
pub fn average_pool_i8(g: &ConvGeometry, x: &[i8], act: ClampI8, out: &mut [i8]) {
    let c = g.output.c;
    if !pool::lane_sums_fit(g, x, out) {
        return pool::average_pool_i8(g, x, act, out);
    }
    let vectors = c / 8;
    for_each_window(g, |window, pixel| {
        let (cells, out) = (window.len(), &mut out[pixel * c..][..c]);
        for v in 0..vectors {
            // SAFETY: NEON is always present on aarch64; every load reads the eight channels
            // 8v..8v + 8 ≤ c of a pixel inside the input (`lane_sums_fit`), the store eight i16.
            let sums = unsafe {
                let mut sum: int16x8_t = vdupq_n_s16(0);
                window.for_each_cell(|_, px| sum = vaddw_s8(sum, vld1_s8(x[px * c + 8 * v..][..8].as_ptr())));
                let mut sums = [0i16; 8];
                vst1q_s16(sums.as_mut_ptr(), sum);
                sums
            };
            for (o, sum) in out[8 * v..][..8].iter_mut().zip(sums) {
                *o = act.apply(rounded_div(i32::from(sum), cells));
            }
        }
        for (ch, o) in out.iter_mut().enumerate().skip(8 * vectors) {
            let mut sum = 0i32;
            window.for_each_cell(|_, px| sum += i32::from(x[px * c + ch]));
            *o = act.apply(rounded_div(sum, cells));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Nhwc;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Equal to the reference byte for byte: channels in eights and not, windows up to
        /// the whole input (and past 256 cells), strides, paddings, batches, activation bounds.
        #[test]
        fn average_pool_equals_reference(
            (g, x, act) in (1..=2usize, 1..=20usize, 1..=20usize, 1..=20usize, any::<bool>(), 1..=3usize, 1..=3usize)
                .prop_flat_map(|(n, h, w, c, global, sy, sx)| {
                    let kernel = if global { Just([h, w]).boxed() } else { (1..=h.min(6), 1..=w.min(6)).prop_map(|(a, b)| [a, b]).boxed() };
                    (Just((n, h, w, c, sy, sx)), kernel)
                })
                .prop_flat_map(|((n, h, w, c, sy, sx), kernel)| {
                    (Just((n, h, w, c, sy, sx, kernel)), 0..kernel[0], 0..kernel[1])
                })
                .prop_flat_map(|((n, h, w, c, sy, sx, kernel), py, px)| {
                    let size = |s: usize, k: usize, st: usize, p: usize| (s + 2 * p - k) / st + 1;
                    let input = Nhwc { n, h, w, c };
                    let output = Nhwc { n, h: size(h, kernel[0], sy, py), w: size(w, kernel[1], sx, px), c };
                    let g = ConvGeometry { input, output, kernel, stride: [sy, sx], dilation: [1, 1], pad: [py, px] };
                    let x = prop_oneof![vec(any::<i8>(), input.len()), Just(vec![-128; input.len()]), Just(vec![127; input.len()])];
                    let act = (-128..=127i32).prop_flat_map(|min| (Just(min), min..=127)).prop_map(|(min, max)| ClampI8 { min, max });
                    (Just(g), x, prop_oneof![Just(ClampI8::FULL), act])
                })
        ) {
            let mut reference = vec![0; g.output.len()];
            pool::average_pool_i8(&g, &x, act, &mut reference);
            let mut optimized = vec![0x55; g.output.len()];
            average_pool_i8(&g, &x, act, &mut optimized);
            prop_assert_eq!(optimized, reference);
        }
    }
}
