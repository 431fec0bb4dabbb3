//! Depthwise 2-D convolution (NHWC input, `[1, KH, KW, Cout]` weights, channel multiplier
//! `Cout / Cin`), f32 (f32 or f16 weights) and int8.

use super::conv2d::for_each_window;
use super::fully_connected::{mac_f32, mac_i8, requantize};
use super::{ClampF32, ConvGeometry, Int8Params, LaidOut, Weight};

/// Shared loop: output channel `oc = ic × multiplier + m` accumulates `mac` over the valid taps
/// of input channel `ic` (weight `w(tap × Cout + oc)`), then `finish(oc, acc)` produces the
/// output.
fn depthwise_conv2d<X: Copy, W, A: Copy, O>(
    g: &ConvGeometry,
    x: &[X],
    w: impl Fn(usize) -> W,
    zero: A,
    mac: impl Fn(A, X, W) -> A,
    finish: impl Fn(usize, A) -> O,
    out: &mut [O],
) {
    let (cin, cout) = (g.input.c, g.output.c);
    let multiplier = cout.checked_div(cin).unwrap_or(0);
    for_each_window(g, |window, pixel| {
        let out = &mut out[pixel * cout..][..cout];
        for ic in 0..cin {
            for m in 0..multiplier {
                let oc = ic * multiplier + m;
                let mut acc = zero;
                window.for_each_cell(|tap, px| acc = mac(acc, x[px * cin + ic], w(tap * cout + oc)));
                out[oc] = finish(oc, acc);
            }
        }
    });
}

/// f32 depthwise convolution: x NHWC, w `[1, KH, KW, Cout]`, bias `[Cout]`, out NHWC; output
/// channel `oc` reads input channel `oc / (Cout / Cin)`.
pub fn depthwise_conv2d_f32<W: Weight>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    depthwise_conv2d(g, x, |i| w[i], 0.0, mac_f32, |oc, acc| act.apply(acc + bias[oc]), out);
}

/// int8 depthwise convolution with symmetric weights; layouts as in [`depthwise_conv2d_f32`].
pub fn depthwise_conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
) {
    let mac = mac_i8(q.input_zero_point.wrapping_neg());
    depthwise_conv2d(g, x, |i| w[i], 0, mac, |oc, acc| requantize(q, oc, acc, bias[oc]), out);
}

/// [`depthwise_conv2d_i8`] over weights in any layout (`w.depth` is `KH × KW × Cout`).
pub fn depthwise_conv2d_i8_laid_out(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: LaidOut,
    bias: &[i32],
    out: &mut [i8],
) {
    let offset = q.input_zero_point.wrapping_neg();
    let mac = |acc: i32, x: i8, w: i32| acc.wrapping_add(i32::from(x).wrapping_add(offset).wrapping_mul(w));
    depthwise_conv2d(g, x, |i| w.get(0, i), 0, mac, |oc, acc| requantize(q, oc, acc, bias[oc]), out);
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

    /// Runs the int8 kernel and the f64 oracle.
    fn run_i8(g: &ConvGeometry, q: &Quant, x: &[i8], w: &[i8], bias: &[i32]) -> (Vec<i8>, Vec<i32>) {
        let requant = q.requant();
        let mut out = vec![0; g.output.len()];
        depthwise_conv2d_i8(g, &q.params(&requant), x, w, bias, &mut out);
        let w_real = q.weights(w, |i| i % g.output.c);
        let expected = q.output(&testutil::conv(g, true, &q.input(x), &w_real, &q.bias(bias)));
        (out, expected)
    }

    #[test]
    fn f32_multiplier2_stride2_padding() {
        // 3×3 image, channel 0 = 1..=9, channel 1 its negation; multiplier 2; 2×2 window,
        // stride 2, padding top/left 1 → 2×2.
        let g = ConvGeometry {
            input: Nhwc { n: 1, h: 3, w: 3, c: 2 },
            output: Nhwc { n: 1, h: 2, w: 2, c: 4 },
            kernel: [2, 2],
            stride: [2, 2],
            dilation: [1, 1],
            pad: [1, 1],
        };
        let x: Vec<f32> = (1..=9).flat_map(|v| [v as f32, -v as f32]).collect();
        // Per tap [oc0, oc1, oc2, oc3]: oc0 and oc2 sum the window, oc1 weights taps 1..=4, oc3
        // takes the bottom-right tap.
        let w = [1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0, 1.0, 1.0];
        let bias = [0.0, 0.5, 1.0, -1.0];
        let expected = [
            1.0, 4.5, 0.0, -2.0, // cells (0,0)
            5.0, 18.5, -4.0, -4.0, // (0,1), (0,2)
            11.0, 36.5, -10.0, -8.0, // (1,0), (2,0)
            28.0, 77.5, -27.0, -10.0, // (1,1), (1,2), (2,1), (2,2)
        ];
        let mut out = [0.0; 16];
        depthwise_conv2d_f32(&g, &x, &w, &bias, ClampF32::NONE, &mut out);
        assert_eq!(out, expected);
        assert_close(&out, &testutil::conv(&g, true, &f64s(&x), &f64s(&w), &f64s(&bias)));
        depthwise_conv2d_f32(&g, &x, &w.map(f16::from_f32), &bias, ClampF32::NONE, &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn i8_dilation2_zero_points_saturation_and_relu6() {
        // 3×3 image, multiplier 3, 2×2 window dilated to 3×3, padding top 1 → 2×1.
        let g = ConvGeometry {
            input: Nhwc { n: 1, h: 3, w: 3, c: 1 },
            output: Nhwc { n: 1, h: 2, w: 1, c: 3 },
            kernel: [2, 2],
            stride: [1, 1],
            dilation: [2, 2],
            pad: [1, 0],
        };
        // x − zp = [[0, 3, 4], [5, 0, 7], [10, 3, 2]].
        let x = [-3, 0, 1, 2, -3, 4, 7, 0, -1];
        // Per tap [oc0, oc1, oc2].
        let w = [1, -100, 100, 2, -100, 100, 3, -100, 100, 4, -100, 100];
        let bias = [-1, 0, 0];
        let mut q = Quant {
            in_scale: 1.0,
            in_zp: -3,
            w_scales: vec![1.0],
            out_scale: 1.0,
            out_zp: 5,
            act: ClampI8::FULL,
        };
        // oc0: (0,0) sees 3·5 + 4·7 = 43; (1,0) sees 1·0 + 2·4 + 3·10 + 4·2 = 46.
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [47, -128, 127, 50, -128, 127]);
        assert_within(&out, &expected, 0);
        q.act = ClampI8 { min: 5, max: 17 };
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [17, 5, 17, 17, 5, 17]);
        assert_within(&out, &expected, 0);
    }

    #[test]
    fn i8_per_channel_requant() {
        // 1×1 image with two channels, multiplier 2: the output is each weight times x − zp.
        let g = ConvGeometry {
            input: Nhwc { n: 1, h: 1, w: 1, c: 2 },
            output: Nhwc { n: 1, h: 1, w: 1, c: 4 },
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0, 0],
        };
        let (x, w, bias) = ([8, -4], [1, 2, 3, 4], [0, 0, 0, 0]);
        let mut q = Quant {
            in_scale: 1.0,
            in_zp: 0,
            w_scales: vec![0.5],
            out_scale: 1.0,
            out_zp: 0,
            act: ClampI8::FULL,
        };
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [4, 8, -6, -8]);
        assert_within(&out, &expected, 0);
        q.w_scales = vec![1.0, 0.5, 0.25, 0.125];
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [8, 8, -3, -2]);
        assert_within(&out, &expected, 0);
    }

    /// Random geometry with `cin` in 1..=3 and multiplier in 1..=2.
    fn random_geometry() -> impl Strategy<Value = ConvGeometry> {
        (testutil::geometry(2, false), 1..=3usize, 1..=2usize).prop_map(|(mut g, cin, multiplier)| {
            g.input.c = cin;
            g.output.c = cin * multiplier;
            g
        })
    }

    fn weight_len(g: &ConvGeometry) -> usize {
        g.kernel[0] * g.kernel[1] * g.output.c
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
            depthwise_conv2d_f32(&g, &x, &w, &bias, ClampF32::NONE, &mut out);
            assert_close(&out, &testutil::conv(&g, true, &f64s(&x), &f64s(&w), &f64s(&bias)));
            let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            depthwise_conv2d_f32(&g, &x, &w16, &bias, ClampF32::NONE, &mut out);
            assert_close(&out, &testutil::conv(&g, true, &f64s(&x), &f64s(&w16), &f64s(&bias)));
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
            (g, q, x, w, bias) in three_by_three().prop_flat_map(|g| {
                let bias = proptest::collection::vec(-2000i32..2000, g.output.c);
                (Just(g), quant(g.output.c), i8s(g.input.len()), weights_i8(weight_len(&g)), bias)
            })
        ) {
            let requant = q.requant();
            let p = q.params(&requant);
            let mut standard = vec![0; g.output.len()];
            depthwise_conv2d_i8(&g, &p, &x, &w, &bias, &mut standard);
            let depth = weight_len(&g);
            for layout in WeightLayout::ALL.into_iter().filter(|&l| l.is_depthwise() || l == WeightLayout::Standard) {
                let mut bytes = vec![0; layout.byte_len(1, depth).unwrap()];
                layout.pack(&w, 1, depth, &mut bytes);
                let laid = LaidOut { bytes: bytemuck::cast_slice(&bytes), layout, depth };
                let mut out = vec![0; g.output.len()];
                depthwise_conv2d_i8_laid_out(&g, &p, &x, laid, &bias, &mut out);
                prop_assert_eq!(&out, &standard, "{:?}", layout);
            }
        }
    }

    /// 3×3 windows over 4 or 8 channels (multiplier 1), the layers the depthwise layouts hold.
    fn three_by_three() -> impl Strategy<Value = ConvGeometry> {
        (2..=7usize, 2..=7usize, 1..=2usize, 1..=2usize, 0..=1usize, 0..=1usize).prop_map(
            |(h, w, quads, stride, top, left)| {
                let c = 4 * quads;
                let out = |size: usize, pad: usize| (size + 2 * pad).saturating_sub(3) / stride + 1;
                ConvGeometry {
                    input: Nhwc { n: 1, h: h + 1, w: w + 1, c },
                    output: Nhwc { n: 1, h: out(h + 1, top), w: out(w + 1, left), c },
                    kernel: [3, 3],
                    stride: [stride; 2],
                    dilation: [1, 1],
                    pad: [top, left],
                }
            },
        )
    }
}
