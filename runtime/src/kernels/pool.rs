//! Max and average pooling over NHWC tensors, f32 and int8 (int8 input and output share
//! scale and zero point, so no requantization is needed).
//!
//! Padded cells are ignored: the maximum and the average are taken over the window cells that
//! lie inside the input. A window with no such cell (only possible with padding at least as
//! large as the window) yields the lowest value for max pooling and 0 (f32: NaN) for average
//! pooling, before the fused activation.

use super::conv2d::for_each_window;
use super::{ClampF32, ClampI8, ConvGeometry};

/// Shared loop: `out[p, c] = finish(fold of step over channel c's window values from init,
/// window cell count)`.
fn pool<T: Copy, A: Copy, O>(
    g: &ConvGeometry,
    x: &[T],
    init: A,
    step: impl Fn(A, T) -> A,
    finish: impl Fn(A, usize) -> O,
    out: &mut [O],
) {
    let channels = g.output.c;
    for_each_window(g, |window, pixel| {
        for (c, o) in out[pixel * channels..][..channels].iter_mut().enumerate() {
            let mut acc = init;
            window.for_each_cell(|_, px| acc = step(acc, x[px * channels + c]));
            *o = finish(acc, window.len());
        }
    });
}

/// f32 max pooling with window `g.kernel`.
pub fn max_pool_f32(g: &ConvGeometry, x: &[f32], act: ClampF32, out: &mut [f32]) {
    pool(g, x, f32::MIN, f32::max, |max, _| act.apply(max), out);
}

/// int8 max pooling with window `g.kernel`.
pub fn max_pool_i8(g: &ConvGeometry, x: &[i8], act: ClampI8, out: &mut [i8]) {
    pool(g, x, i8::MIN, i8::max, |max, _| act.apply(i32::from(max)), out);
}

/// f32 average pooling with window `g.kernel`.
pub fn average_pool_f32(g: &ConvGeometry, x: &[f32], act: ClampF32, out: &mut [f32]) {
    pool(g, x, 0.0, |sum, v| sum + v, |sum, count| act.apply(sum / count as f32), out);
}

/// int8 average pooling with window `g.kernel`, rounding half away from zero as TFLite does.
pub fn average_pool_i8(g: &ConvGeometry, x: &[i8], act: ClampI8, out: &mut [i8]) {
    let step = |sum: i32, v: i8| sum.wrapping_add(i32::from(v));
    pool(g, x, 0, step, |sum, count| act.apply(rounded_div(sum, count)), out);
}

/// Most window cells whose int8 sum fits a 16-bit lane (`|sum| ≤ 128 × 256`).
#[cfg(any(ember_arm_dsp, ember_helium, ember_neon))]
pub(crate) const LANE_SUM_CELLS: usize = 256;

/// Whether the optimized average pools, which sum windows in 16-bit lanes, take `g` over `x`
/// into `out`: the slices hold the tensors, the input has the output's channels, and windows have
/// at most [`LANE_SUM_CELLS`] cells (otherwise they run [`average_pool_i8`]).
#[cfg(any(ember_arm_dsp, ember_helium, ember_neon))]
pub(crate) fn lane_sums_fit(g: &ConvGeometry, x: &[i8], out: &[i8]) -> bool {
    let sized = x.len() >= g.input.len() && g.output.n <= g.input.n && out.len() >= g.output.len();
    sized && g.input.c == g.output.c && g.kernel[0] * g.kernel[1] <= LANE_SUM_CELLS
}

/// `sum / count` rounded half away from zero (TFLite's average pool rounding); 0 when
/// `count` is 0.
pub(crate) fn rounded_div(sum: i32, count: usize) -> i32 {
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    let half = count / 2;
    let nudged = if sum > 0 { sum.wrapping_add(half) } else { sum.wrapping_sub(half) };
    nudged.checked_div(count).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{self, assert_close, assert_within, f32s, f64s, i8s};
    use crate::kernels::Nhwc;
    use proptest::prelude::*;

    /// 2×2 window over an `h × w × c` image with padding top/left `pad` and none after.
    fn geometry([h, w, c]: [usize; 3], stride: usize, pad: usize) -> ConvGeometry {
        let out = |size: usize| (size + pad - 2) / stride + 1;
        ConvGeometry {
            input: Nhwc { n: 1, h, w, c },
            output: Nhwc { n: 1, h: out(h), w: out(w), c },
            kernel: [2, 2],
            stride: [stride; 2],
            dilation: [1, 1],
            pad: [pad; 2],
        }
    }

    /// The oracle's output, every window holding an image cell.
    fn oracle(g: &ConvGeometry, max: bool, x: &[f64]) -> Vec<f64> {
        testutil::pool(g, max, x).into_iter().map(Option::unwrap).collect()
    }

    #[test]
    fn f32_stride2_padding_and_relu6() {
        // 3×3 image, channel 0 = 1..=9, channel 1 its negation; stride 2, padding 1 → 2×2
        // windows over cells {(0,0)}, {(0,1), (0,2)}, {(1,0), (2,0)}, {(1,1), (1,2), (2,1), (2,2)}.
        let g = geometry([3, 3, 2], 2, 1);
        let x: Vec<f32> = (1..=9).flat_map(|v| [v as f32, -v as f32]).collect();
        let mut out = [0.0; 8];
        max_pool_f32(&g, &x, ClampF32::NONE, &mut out);
        assert_eq!(out, [1.0, -1.0, 3.0, -2.0, 7.0, -4.0, 9.0, -5.0]);
        assert_close(&out, &oracle(&g, true, &f64s(&x)));
        average_pool_f32(&g, &x, ClampF32::NONE, &mut out);
        assert_eq!(out, [1.0, -1.0, 2.5, -2.5, 5.5, -5.5, 7.0, -7.0]);
        assert_close(&out, &oracle(&g, false, &f64s(&x)));
        let relu6 = ClampF32 { min: 0.0, max: 6.0 };
        average_pool_f32(&g, &x, relu6, &mut out);
        assert_eq!(out, [1.0, 0.0, 2.5, 0.0, 5.5, 0.0, 6.0, 0.0]);
    }

    #[test]
    fn i8_rounding_extremes_and_clamp() {
        // 2×2 image, stride 1, padding 1 → windows {x00}, {x00, x01}, {x00, x10}, all.
        let g = geometry([2, 2, 2], 1, 1);
        let x = [5, -128, 6, -128, -8, -127, -9, -128];
        let mut out = [0; 8];
        // Channel 0 sums 5, 11, −3, −6: 5, 5.5 → 6, −1.5 → −2, −1.5 → −2.
        average_pool_i8(&g, &x, ClampI8::FULL, &mut out);
        assert_eq!(out, [5, -128, 6, -128, -2, -128, -2, -128]);
        let x64 = f64s(&x);
        let expected = |max| oracle(&g, max, &x64).iter().map(|v| v.round() as i32).collect::<Vec<_>>();
        assert_within(&out, &expected(false), 0);
        max_pool_i8(&g, &x, ClampI8::FULL, &mut out);
        assert_eq!(out, [5, -128, 6, -128, 5, -127, 6, -127]);
        assert_within(&out, &expected(true), 0);
        let act = ClampI8 { min: -3, max: 4 };
        average_pool_i8(&g, &x, act, &mut out);
        assert_eq!(out, [4, -3, 4, -3, -2, -3, -2, -3]);
        max_pool_i8(&g, &x, act, &mut out);
        assert_eq!(out, [4, -3, 4, -3, 4, -3, 4, -3]);
    }

    #[test]
    fn windows_entirely_in_padding() {
        // 1×1 image, 1×1 window, padding 1: only output (1, 1) sees the image.
        let g = ConvGeometry {
            input: Nhwc { n: 1, h: 1, w: 1, c: 1 },
            output: Nhwc { n: 1, h: 2, w: 2, c: 1 },
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [1, 1],
        };
        let mut out = [0.0; 4];
        max_pool_f32(&g, &[3.0], ClampF32::NONE, &mut out);
        assert_eq!(out, [f32::MIN, f32::MIN, f32::MIN, 3.0]);
        average_pool_f32(&g, &[3.0], ClampF32::NONE, &mut out);
        assert!(out[..3].iter().all(|v| v.is_nan()) && out[3] == 3.0);
        let mut out = [0; 4];
        max_pool_i8(&g, &[3], ClampI8::FULL, &mut out);
        assert_eq!(out, [-128, -128, -128, 3]);
        average_pool_i8(&g, &[3], ClampI8::FULL, &mut out);
        assert_eq!(out, [0, 0, 0, 3]);
    }

    /// Random pool geometry with 1..=3 channels.
    fn random_geometry() -> impl Strategy<Value = ConvGeometry> {
        (testutil::geometry(1, true), 1..=3usize).prop_map(|(mut g, c)| {
            g.input.c = c;
            g.output.c = c;
            g
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn f32_matches_oracle((g, x) in random_geometry().prop_flat_map(|g| (Just(g), f32s(g.input.len())))) {
            let mut out = vec![0.0; g.output.len()];
            max_pool_f32(&g, &x, ClampF32::NONE, &mut out);
            assert_close(&out, &oracle(&g, true, &f64s(&x)));
            average_pool_f32(&g, &x, ClampF32::NONE, &mut out);
            assert_close(&out, &oracle(&g, false, &f64s(&x)));
        }

        #[test]
        fn i8_matches_oracle_exactly((g, x) in random_geometry().prop_flat_map(|g| (Just(g), i8s(g.input.len())))) {
            // Shared scale and zero point cancel out, and rounding the exact mean half away
            // from zero is what the kernel computes: the results agree exactly.
            let expected = |max| oracle(&g, max, &f64s(&x)).iter().map(|v| v.round() as i32).collect::<Vec<_>>();
            let mut out = vec![0; g.output.len()];
            max_pool_i8(&g, &x, ClampI8::FULL, &mut out);
            assert_within(&out, &expected(true), 0);
            average_pool_i8(&g, &x, ClampI8::FULL, &mut out);
            assert_within(&out, &expected(false), 0);
        }
    }
}
