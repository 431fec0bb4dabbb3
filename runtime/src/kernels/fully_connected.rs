//! Fully connected layer (`out = x · wᵀ + bias`), f32 (f32 or f16 weights) and int8, plus the
//! multiply-accumulate and int8 output stage shared with the convolutions.

use super::{ClampF32, FcGeometry, Int8Params, LaidOut, Weight};
use crate::quant::Requant;

/// f32 multiply-accumulate, widening the weight.
#[inline(always)]
pub(crate) fn mac_f32<W: Weight>(acc: f32, x: f32, w: W) -> f32 {
    acc + x * w.to_f32()
}

/// int8 multiply-accumulate `acc + (x + input_offset) × w` in wrapping i32 arithmetic
/// (`input_offset` is the negated input zero point).
#[inline(always)]
pub(crate) fn mac_i8(input_offset: i32) -> impl Fn(i32, i8, i8) -> i32 + Copy {
    move |acc, x, w| acc.wrapping_add(i32::from(x).wrapping_add(input_offset).wrapping_mul(i32::from(w)))
}

/// Folds `mac` over the element pairs of `xs` and `ws`, starting from `acc`.
#[inline(always)]
pub(crate) fn dot<A, X: Copy, W: Copy>(acc: A, xs: &[X], ws: &[W], mac: impl Fn(A, X, W) -> A) -> A {
    xs.iter().zip(ws).fold(acc, |acc, (&x, &w)| mac(acc, x, w))
}

/// `acc + Σ (xs[i] + input_offset) × w.get(f, k + i)`: [`mac_i8`] over filter `f` of
/// laid-out filters from weight `k`.
#[inline(always)]
pub(crate) fn laid_out_dot(acc: i32, w: &LaidOut, f: usize, k: usize, xs: &[i8], input_offset: i32) -> i32 {
    xs.iter().enumerate().fold(acc, |acc, (i, &x)| {
        acc.wrapping_add(i32::from(x).wrapping_add(input_offset).wrapping_mul(w.get(f, k + i)))
    })
}

/// TFLite's int8 output stage for output channel `c`: add the bias, requantize, add the output
/// zero point, clamp to the fused activation and narrow.
#[inline(always)]
pub(crate) fn requantize(q: &Int8Params, c: usize, acc: i32, bias: i32) -> i8 {
    requantize_with(q, q.channel(c), acc, bias)
}

/// [`requantize`] with the channel's factor `r` given (for kernels that look factors up for
/// several channels at once).
#[inline(always)]
pub(crate) fn requantize_with(q: &Int8Params, r: Requant, acc: i32, bias: i32) -> i8 {
    let scaled = r.apply_rounded(q.rounding, acc.wrapping_add(bias));
    q.act.apply(scaled.wrapping_add(q.output_zero_point))
}

/// Shared loop: `out[r, u] = finish(u, dot(zero, u, x[r, ..]))`.
fn fully_connected<X: Copy, A: Copy, O>(
    g: &FcGeometry,
    x: &[X],
    zero: A,
    dot: impl Fn(A, usize, &[X]) -> A,
    finish: impl Fn(usize, A) -> O,
    out: &mut [O],
) {
    let (depth, units) = (g.depth, g.units);
    for r in 0..g.rows {
        let row = &x[r * depth..][..depth];
        for (u, o) in out[r * units..][..units].iter_mut().enumerate() {
            *o = finish(u, dot(zero, u, row));
        }
    }
}

/// f32 fully connected layer: x `[rows, depth]`, w `[units, depth]`, bias `[units]`, out `[rows, units]`.
pub fn fully_connected_f32<W: Weight>(
    g: &FcGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let dot = |acc, u, xs: &[f32]| dot(acc, xs, &w[u * g.depth..][..g.depth], mac_f32);
    fully_connected(g, x, 0.0, dot, |u, acc| act.apply(acc + bias[u]), out);
}

/// int8 fully connected layer with symmetric weights; layouts as in [`fully_connected_f32`].
pub fn fully_connected_i8(g: &FcGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let mac = mac_i8(q.input_zero_point.wrapping_neg());
    fully_connected_i8_with(g, q, x, w, bias, out, |acc, xs, ws| dot(acc, xs, ws, mac));
}

/// [`fully_connected_i8`] with the inner product `dot(acc, x, w) = acc + Σ (x − input zero
/// point) × w` given, so optimized kernels share the loop and output stage.
#[inline(always)]
pub(crate) fn fully_connected_i8_with(
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    dot: impl Fn(i32, &[i8], &[i8]) -> i32,
) {
    let dot = |acc, u, xs: &[i8]| dot(acc, xs, &w[u * g.depth..][..g.depth]);
    fully_connected(g, x, 0, dot, |u, acc| requantize(q, u, acc, bias[u]), out);
}

/// [`fully_connected_i8`] over filters in any layout.
pub fn fully_connected_i8_laid_out(
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: LaidOut,
    bias: &[i32],
    out: &mut [i8],
) {
    let offset = q.input_zero_point.wrapping_neg();
    let dot = |acc, u, xs: &[i8]| laid_out_dot(acc, &w, u, 0, xs, offset);
    fully_connected(g, x, 0, dot, |u, acc| requantize(q, u, acc, bias[u]), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::layout::WeightLayout;
    use crate::kernels::testutil::{
        self, assert_close, assert_within, f32s, f64s, i8s, quant, weights_i8, Quant,
    };
    use crate::kernels::ClampI8;
    use half::f16;
    use proptest::prelude::*;

    const RELU6: ClampF32 = ClampF32 { min: 0.0, max: 6.0 };

    /// Runs the int8 kernel and the f64 oracle.
    fn run_i8(g: &FcGeometry, q: &Quant, x: &[i8], w: &[i8], bias: &[i32]) -> (Vec<i8>, Vec<i32>) {
        let requant = q.requant();
        let mut out = vec![0; g.rows * g.units];
        fully_connected_i8(g, &q.params(&requant), x, w, bias, &mut out);
        let w_real = q.weights(w, |i| i / g.depth);
        let expected = q.output(&testutil::fully_connected(g, &q.input(x), &w_real, &q.bias(bias)));
        (out, expected)
    }

    #[test]
    fn f32_hand_computed() {
        let g = FcGeometry { rows: 2, depth: 3, units: 2 };
        let x = [1.0, 2.0, 3.0, -1.0, 0.0, 2.0];
        let w = [1.0, 0.0, -1.0, 0.5, 0.5, 0.5];
        let bias = [0.5, -1.0];
        let mut out = [0.0; 4];
        fully_connected_f32(&g, &x, &w, &bias, ClampF32::NONE, &mut out);
        assert_eq!(out, [-1.5, 2.0, -2.5, -0.5]);
        assert_close(&out, &testutil::fully_connected(&g, &f64s(&x), &f64s(&w), &f64s(&bias)));
        let w16 = w.map(f16::from_f32);
        fully_connected_f32(&g, &x, &w16, &bias, RELU6, &mut out);
        assert_eq!(out, [0.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn i8_zero_points_saturation_and_relu6() {
        let g = FcGeometry { rows: 1, depth: 3, units: 4 };
        // Scales 1: the requantization factor is exactly 1.
        let mut q = Quant {
            in_scale: 1.0,
            in_zp: -3,
            w_scales: vec![1.0],
            out_scale: 1.0,
            out_zp: 5,
            act: ClampI8::FULL,
        };
        // x − zp = [0, 10, 3].
        let x = [-3, 7, 0];
        let w = [1, 2, 3, 127, 127, 127, -127, -127, -127, 0, -1, 1];
        let bias = [1, 0, 0, -2];
        // 29 + 1 + 5; 1651 + 5 saturates; −1651 + 5 saturates; −7 − 2 + 5.
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [35, 127, -128, -4]);
        assert_within(&out, &expected, 0);
        // ReLU6 at scale 1 and zero point 5: [5, 11].
        q.act = ClampI8 { min: 5, max: 11 };
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [11, 11, 5, 5]);
        assert_within(&out, &expected, 0);
    }

    #[test]
    fn i8_per_tensor_and_per_channel_requant() {
        let g = FcGeometry { rows: 1, depth: 2, units: 2 };
        let (x, w, bias) = ([4, 6], [1, 1, 2, 2], [0, 0]);
        let mut q = Quant {
            in_scale: 1.0,
            in_zp: 0,
            w_scales: vec![0.5],
            out_scale: 1.0,
            out_zp: 0,
            act: ClampI8::FULL,
        };
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [5, 10]);
        assert_within(&out, &expected, 0);
        q.w_scales = vec![0.5, 0.25];
        let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
        assert_eq!(out, [5, 5]);
        assert_within(&out, &expected, 0);
    }

    fn geometry() -> impl Strategy<Value = FcGeometry> {
        (1..=3usize, 1..=16usize, 1..=4usize).prop_map(|(rows, depth, units)| FcGeometry {
            rows,
            depth,
            units,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn f32_matches_oracle(
            (g, x, w, bias) in geometry().prop_flat_map(|g| {
                (Just(g), f32s(g.rows * g.depth), f32s(g.units * g.depth), f32s(g.units))
            })
        ) {
            let mut out = vec![0.0; g.rows * g.units];
            fully_connected_f32(&g, &x, &w, &bias, ClampF32::NONE, &mut out);
            assert_close(&out, &testutil::fully_connected(&g, &f64s(&x), &f64s(&w), &f64s(&bias)));
            let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            fully_connected_f32(&g, &x, &w16, &bias, ClampF32::NONE, &mut out);
            assert_close(&out, &testutil::fully_connected(&g, &f64s(&x), &f64s(&w16), &f64s(&bias)));
        }

        #[test]
        fn i8_matches_oracle(
            (g, q, x, w, bias) in geometry().prop_flat_map(|g| {
                let bias = proptest::collection::vec(-2000i32..2000, g.units);
                (Just(g), quant(g.units), i8s(g.rows * g.depth), weights_i8(g.units * g.depth), bias)
            })
        ) {
            let (out, expected) = run_i8(&g, &q, &x, &w, &bias);
            assert_within(&out, &expected, 1);
        }

        #[test]
        fn i8_laid_out_equals_standard(
            (g, q, x, w, bias) in geometry().prop_flat_map(|g| {
                let bias = proptest::collection::vec(-2000i32..2000, g.units);
                (Just(g), quant(g.units), i8s(g.rows * g.depth), weights_i8(g.units * g.depth), bias)
            })
        ) {
            let requant = q.requant();
            let p = q.params(&requant);
            let mut standard = vec![0; g.rows * g.units];
            fully_connected_i8(&g, &p, &x, &w, &bias, &mut standard);
            for layout in WeightLayout::FILTERS {
                let mut bytes = vec![0; layout.byte_len(g.units, g.depth).unwrap()];
                layout.pack(&w, g.units, g.depth, &mut bytes);
                let laid = LaidOut { bytes: bytemuck::cast_slice(&bytes), layout, depth: g.depth };
                let mut out = vec![0; g.rows * g.units];
                fully_connected_i8_laid_out(&g, &p, &x, laid, &bias, &mut out);
                prop_assert_eq!(&out, &standard, "{:?}", layout);
            }
        }
    }
}
