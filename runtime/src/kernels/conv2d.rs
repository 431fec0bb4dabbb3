//! 2-D convolution (NHWC input, OHWI weights), f32 (f32 or f16 weights) and int8, plus the
//! sliding-window walker shared with depthwise convolution and pooling.

use super::fully_connected::{dot, laid_out_dot, mac_f32, mac_i8, requantize};
use super::{ClampF32, ConvGeometry, Int8Params, LaidOut, Weight};

/// The taps of one window axis whose input coordinate lies inside the input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Taps {
    /// First tap inside the input.
    start: usize,
    /// One past the last tap inside the input (`>= start`).
    end: usize,
    /// Input coordinate of tap `start`.
    first: usize,
    /// Input distance between consecutive taps.
    dilation: usize,
}

impl Taps {
    /// Taps of output coordinate `out` along an axis of `size` input elements; tap `k` reads
    /// input coordinate `out × stride + k × dilation − pad`.
    fn new(out: usize, stride: usize, dilation: usize, pad: usize, kernel: usize, size: usize) -> Self {
        let dilation = dilation.max(1);
        let origin = out.saturating_mul(stride);
        let start = pad.saturating_sub(origin).div_ceil(dilation);
        let end = pad.saturating_add(size).saturating_sub(origin).div_ceil(dilation).min(kernel);
        // Only used when `start < end`, where the true value is a valid coordinate.
        let first = start.wrapping_mul(dilation).wrapping_add(origin).wrapping_sub(pad);
        Self { start, end: end.max(start), first, dilation }
    }

    /// Number of taps inside the input.
    fn len(self) -> usize {
        self.end - self.start
    }

    /// `(tap, input coordinate)` of every tap inside the input, in order.
    fn iter(self) -> impl Iterator<Item = (usize, usize)> {
        (self.start..self.end).map(move |k| (k, self.first + (k - self.start) * self.dilation))
    }
}

/// The cells of one output pixel's window that lie inside the input (padding excluded).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    rows: Taps,
    cols: Taps,
    /// Input pixel index of `(batch, 0, 0)`.
    base: usize,
    /// Input width.
    width: usize,
    /// Window width.
    kernel_w: usize,
}

impl Window {
    /// Number of cells inside the input.
    pub(crate) fn len(self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// Input pixel index of the window's first cell inside the input (its top-left cell when
    /// the whole window lies inside).
    #[cfg(ember_arm_dsp)]
    pub(crate) fn first_pixel(self) -> usize {
        self.base + self.rows.first * self.width + self.cols.first
    }

    /// Calls `f(tap, pixel)` for every cell inside the input in row-major window order (`tap` is
    /// `ky × KW + kx`, `pixel` the input pixel index `(b × H + iy) × W + ix`), with plain counted
    /// loops (no iterator adapters), which stay tight at any optimization level.
    #[inline(always)]
    pub(crate) fn for_each_cell(self, mut f: impl FnMut(usize, usize)) {
        let (rows, cols) = (self.rows, self.cols);
        let (mut iy, mut tap_row) = (rows.first, rows.start * self.kernel_w);
        for _ in rows.start..rows.end {
            let (mut px, mut tap) = (self.base + iy * self.width + cols.first, tap_row + cols.start);
            for _ in cols.start..cols.end {
                f(tap, px);
                px += cols.dilation;
                tap += 1;
            }
            iy += rows.dilation;
            tap_row += self.kernel_w;
        }
    }

    /// Calls `f(tap, pixel, count)` for the runs of [`Window::runs`], with counted loops (as
    /// [`Window::for_each_cell`]).
    #[cfg(ember_arm_dsp)]
    #[inline(always)]
    pub(crate) fn for_each_run(self, mut f: impl FnMut(usize, usize, usize)) {
        let (rows, cols) = (self.rows, self.cols);
        if cols.dilation != 1 {
            return self.for_each_cell(|tap, px| f(tap, px, 1));
        }
        let (mut iy, mut tap) = (rows.first, rows.start * self.kernel_w + cols.start);
        for _ in rows.start..rows.end {
            if cols.len() > 0 {
                f(tap, self.base + iy * self.width + cols.first, cols.len());
            }
            iy += rows.dilation;
            tap += self.kernel_w;
        }
    }

    /// The cells as runs `(tap, pixel, count)` of consecutive taps reading consecutive pixels,
    /// in the order of [`Window::for_each_cell`]: one run per window row when the column dilation is 1
    /// (then an NHWC row of `count` pixels and its filter row are each contiguous), else one per
    /// cell.
    pub(crate) fn runs(self) -> impl Iterator<Item = (usize, usize, usize)> {
        let whole_rows = self.cols.dilation == 1 && self.cols.len() > 0;
        self.rows.iter().flat_map(move |(ky, iy)| {
            let row = self.base + iy * self.width;
            let (runs, count) = if whole_rows { (1, self.cols.len()) } else { (self.cols.len(), 1) };
            self.cols.iter().take(runs).map(move |(kx, ix)| (ky * self.kernel_w + kx, row + ix, count))
        })
    }
}

/// Calls `f(window, out_pixel)` for every output pixel, `out_pixel` counting output pixels in
/// NHWC order.
pub(crate) fn for_each_window(g: &ConvGeometry, mut f: impl FnMut(Window, usize)) {
    let (input, output) = (g.input, g.output);
    let mut out_pixel = 0;
    for b in 0..output.n {
        let base = b * input.h * input.w;
        for oy in 0..output.h {
            let rows = Taps::new(oy, g.stride[0], g.dilation[0], g.pad[0], g.kernel[0], input.h);
            for ox in 0..output.w {
                let cols = Taps::new(ox, g.stride[1], g.dilation[1], g.pad[1], g.kernel[1], input.w);
                f(Window { rows, cols, base, width: input.w, kernel_w: g.kernel[1] }, out_pixel);
                out_pixel += 1;
            }
        }
    }
}

/// Shared loop: `out[p, oc] = finish(oc, Σ over runs of valid taps of dot(acc, oc, k, input))`,
/// in tap-major, channel-minor order, `k` being the run's first weight in the filter.
fn conv2d<X: Copy, A: Copy, O>(
    g: &ConvGeometry,
    x: &[X],
    zero: A,
    dot: impl Fn(A, usize, usize, &[X]) -> A,
    finish: impl Fn(usize, A) -> O,
    out: &mut [O],
) {
    let (cin, cout) = (g.input.c, g.output.c);
    for_each_window(g, |window, pixel| {
        for (oc, o) in out[pixel * cout..][..cout].iter_mut().enumerate() {
            let acc = window
                .runs()
                .fold(zero, |acc, (tap, px, count)| dot(acc, oc, tap * cin, &x[px * cin..][..count * cin]));
            *o = finish(oc, acc);
        }
    });
}

/// `dot` over filter `oc` of standard-layout filters `w` from weight `k`, as [`conv2d`] asks.
#[inline(always)]
fn standard<'w, X, W: Copy, A>(
    w: &'w [W],
    g: &ConvGeometry,
    dot: impl Fn(A, &[X], &[W]) -> A + 'w,
) -> impl Fn(A, usize, usize, &[X]) -> A + 'w {
    let filter_len = g.kernel[0] * g.kernel[1] * g.input.c;
    move |acc, oc, k, xs| dot(acc, xs, &w[oc * filter_len + k..][..xs.len()])
}

/// f32 convolution: x NHWC, w `[Cout, KH, KW, Cin]`, bias `[Cout]`, out NHWC.
pub fn conv2d_f32<W: Weight>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let dot = standard(w, g, |acc, xs: &[f32], ws: &[W]| dot(acc, xs, ws, mac_f32));
    conv2d(g, x, 0.0, dot, |oc, acc| act.apply(acc + bias[oc]), out);
}

/// int8 convolution with symmetric weights; layouts as in [`conv2d_f32`].
pub fn conv2d_i8(g: &ConvGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let mac = mac_i8(q.input_zero_point.wrapping_neg());
    conv2d_i8_with(g, q, x, w, bias, out, |acc, xs, ws| dot(acc, xs, ws, mac));
}

/// [`conv2d_i8`] with the inner product over one tap's input channels given (as in
/// [`super::fully_connected::fully_connected_i8_with`]).
#[inline(always)]
pub(crate) fn conv2d_i8_with(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    dot: impl Fn(i32, &[i8], &[i8]) -> i32,
) {
    conv2d(g, x, 0, standard(w, g, dot), |oc, acc| requantize(q, oc, acc, bias[oc]), out);
}

/// [`conv2d_i8`] over filters in any layout.
pub fn conv2d_i8_laid_out(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: LaidOut,
    bias: &[i32],
    out: &mut [i8],
) {
    let offset = q.input_zero_point.wrapping_neg();
    let dot = |acc, oc, k, xs: &[i8]| laid_out_dot(acc, &w, oc, k, xs, offset);
    conv2d(g, x, 0, dot, |oc, acc| requantize(q, oc, acc, bias[oc]), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::layout::WeightLayout;
    use crate::kernels::testutil::{
        self, assert_close, assert_within, f32s, f64s, i8s, quant, weights_i8, Quant,
    };
    use crate::kernels::{ClampI8, Nhwc};
    use half::f16;
    use proptest::prelude::*;

    /// Geometry of an `h × w × cin` image into `oh × ow × cout`, batch 1.
    fn geometry(
        [h, w, cin]: [usize; 3],
        [oh, ow, cout]: [usize; 3],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        pad: [usize; 2],
    ) -> ConvGeometry {
        let input = Nhwc { n: 1, h, w, c: cin };
        let output = Nhwc { n: 1, h: oh, w: ow, c: cout };
        ConvGeometry { input, output, kernel, stride, dilation, pad }
    }

    /// Runs the int8 kernel and the f64 oracle.
    fn run_i8(g: &ConvGeometry, q: &Quant, x: &[i8], w: &[i8], bias: &[i32]) -> (Vec<i8>, Vec<i32>) {
        let requant = q.requant();
        let mut out = vec![0; g.output.len()];
        conv2d_i8(g, &q.params(&requant), x, w, bias, &mut out);
        let filter_len = w.len() / g.output.c;
        let w_real = q.weights(w, |i| i / filter_len);
        let expected = q.output(&testutil::conv(g, false, &q.input(x), &w_real, &q.bias(bias)));
        (out, expected)
    }

    #[test]
    fn taps_skip_padding_exactly() {
        // Window of 3 taps, dilation 2, over 5 elements with 3 padding before.
        let taps = |out| Taps::new(out, 1, 2, 3, 3, 5).iter().collect::<Vec<_>>();
        assert_eq!(taps(0), [(2, 1)]); // Coordinates −3, −1, 1.
        assert_eq!(taps(1), [(1, 0), (2, 2)]); // −2, 0, 2.
        assert_eq!(taps(3), [(0, 0), (1, 2), (2, 4)]); // 0, 2, 4.
        assert_eq!(taps(5), [(0, 2), (1, 4)]); // 2, 4, 6.
        assert_eq!(taps(9), []); // 6, 8, 10.
        assert_eq!(Taps::new(0, 1, 1, 4, 2, 3).len(), 0); // Entirely in the padding.
    }

    #[test]
    fn f32_asymmetric_padding_and_relu6() {
        // 3×3 image 1..=9, 2×2 window, padding top 1 / left 0 / bottom 0 / right 0 → 3×2.
        let g = geometry([3, 3, 1], [3, 2, 2], [2, 2], [1, 1], [1, 1], [1, 0]);
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        // Channel 0 sums the window; channel 1 is x[ky=0, kx=0] − x[ky=1, kx=1].
        let w = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, -1.0];
        let bias = [0.5, 0.0];
        let mut out = [0.0; 12];
        conv2d_f32(&g, &x, &w, &bias, ClampF32::NONE, &mut out);
        let expected = [3.5, -2.0, 5.5, -3.0, 12.5, -4.0, 16.5, -4.0, 24.5, -4.0, 28.5, -4.0];
        assert_eq!(out, expected);
        assert_close(&out, &testutil::conv(&g, false, &f64s(&x), &f64s(&w), &f64s(&bias)));
        let relu6 = ClampF32 { min: 0.0, max: 6.0 };
        conv2d_f32(&g, &x, &w, &bias, relu6, &mut out);
        assert_eq!(out, [3.5, 0.0, 5.5, 0.0, 6.0, 0.0, 6.0, 0.0, 6.0, 0.0, 6.0, 0.0]);
    }

    #[test]
    fn f32_stride2_dilation2_f16_weights() {
        // 4×4 image x[r][c] = 4r + c, 2×2 window dilated to 3×3, stride 2, padding 1 all round.
        let g = geometry([4, 4, 1], [2, 2, 1], [2, 2], [2, 2], [2, 2], [1, 1]);
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let w = [1.0, 2.0, 3.0, 4.0].map(f16::from_f32);
        let mut out = [0.0; 4];
        conv2d_f32(&g, &x, &w, &[0.0], ClampF32::NONE, &mut out);
        // (0,0): 4·x11; (0,1): 3·x11 + 4·x13; (1,0): 2·x11 + 4·x31; (1,1): 1·5 + 2·7 + 3·13 + 4·15.
        assert_eq!(out, [20.0, 43.0, 62.0, 118.0]);
    }

    #[test]
    fn i8_zero_points_saturation_per_channel_and_relu6() {
        // 2×2 image, 2×2 window, padding top/left 1 → 2×2, four output channels.
        let g = geometry([2, 2, 1], [2, 2, 4], [2, 2], [1, 1], [1, 1], [1, 1]);
        // x − zp = [[4, 0], [8, 2]].
        let x = [1, -3, 5, -1];
        let w = [1, 1, 1, 1, 1, -1, 2, 3, 127, 127, 127, 127, -127, -127, -127, -127];
        let bias = [0, 6, 10_000, -10_000];
        // Scales chosen so the factors are exactly 1 and 1/2.
        let mut q = Quant {
            in_scale: 1.0,
            in_zp: -3,
            w_scales: vec![1.0, 0.5, 1.0, 1.0],
            out_scale: 1.0,
            out_zp: 5,
            act: ClampI8::FULL,
        };
        // Channel 0 sums [4, 4, 12, 14]; channel 1 is [18, 14, 26, 32] (bias included).
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [9, 14, 127, -128, 9, 12, 127, -128, 17, 18, 127, -128, 19, 21, 127, -128]);
        assert_within(&out, &expected, 0);
        q.w_scales = vec![0.5];
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [7, 14, 127, -128, 7, 12, 127, -128, 11, 18, 127, -128, 12, 21, 127, -128]);
        assert_within(&out, &expected, 0);
        // ReLU6 at scale 1/2 and zero point 5.
        q.w_scales = vec![1.0, 0.5, 1.0, 1.0];
        q.act = ClampI8 { min: 5, max: 17 };
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [9, 14, 17, 5, 9, 12, 17, 5, 17, 17, 17, 5, 17, 17, 17, 5]);
        assert_within(&out, &expected, 0);
    }

    /// Random geometry with `cin` and `cout` in 1..=3.
    fn random_geometry() -> impl Strategy<Value = ConvGeometry> {
        (testutil::geometry(2, false), 1..=3usize, 1..=3usize).prop_map(|(mut g, cin, cout)| {
            g.input.c = cin;
            g.output.c = cout;
            g
        })
    }

    fn weight_len(g: &ConvGeometry) -> usize {
        g.output.c * g.kernel[0] * g.kernel[1] * g.input.c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn f32_matches_oracle(
            (g, x, w, bias) in random_geometry().prop_flat_map(|g| {
                (Just(g), f32s(g.input.len()), f32s(weight_len(&g)), f32s(g.output.c))
            })
        ) {
            let mut out = vec![0.0; g.output.len()];
            conv2d_f32(&g, &x, &w, &bias, ClampF32::NONE, &mut out);
            assert_close(&out, &testutil::conv(&g, false, &f64s(&x), &f64s(&w), &f64s(&bias)));
            let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            conv2d_f32(&g, &x, &w16, &bias, ClampF32::NONE, &mut out);
            assert_close(&out, &testutil::conv(&g, false, &f64s(&x), &f64s(&w16), &f64s(&bias)));
        }

        #[test]
        fn i8_matches_oracle(
            (g, q, x, w, bias) in random_geometry().prop_flat_map(|g| {
                let bias = proptest::collection::vec(-2000i32..2000, g.output.c);
                (Just(g), quant(g.output.c), i8s(g.input.len()), weights_i8(weight_len(&g)), bias)
            })
        ) {
            let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
            assert_within(&out, &expected, 1);
        }

        #[test]
        fn i8_laid_out_equals_standard(
            (g, q, x, w, bias) in random_geometry().prop_flat_map(|g| {
                let bias = proptest::collection::vec(-2000i32..2000, g.output.c);
                (Just(g), quant(g.output.c), i8s(g.input.len()), weights_i8(weight_len(&g)), bias)
            })
        ) {
            let requant = q.requant();
            let p = q.params(&requant);
            let mut standard = vec![0; g.output.len()];
            conv2d_i8(&g, &p, &x, &w, &bias, &mut standard);
            let depth = weight_len(&g) / g.output.c;
            for layout in WeightLayout::FILTERS {
                let mut bytes = vec![0; layout.byte_len(g.output.c, depth).unwrap()];
                layout.pack(&w, g.output.c, depth, &mut bytes);
                let laid = LaidOut { bytes: bytemuck::cast_slice(&bytes), layout, depth };
                let mut out = vec![0; g.output.len()];
                conv2d_i8_laid_out(&g, &p, &x, laid, &bias, &mut out);
                prop_assert_eq!(&out, &standard, "{:?}", layout);
            }
        }
    }
}
