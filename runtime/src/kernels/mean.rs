//! Mean over the spatial axes (H and W) of an NHWC tensor, f32 and int8.

use super::Nhwc;
use crate::quant::Requant;

/// f32 mean over H and W: x `[N, H, W, C]` -> out `[N, 1, 1, C]` (NaN when `H × W` is 0).
pub fn mean_f32(shape: Nhwc, x: &[f32], out: &mut [f32]) {
    let (pixels, c) = (shape.h * shape.w, shape.c);
    for b in 0..shape.n {
        let out = &mut out[b * c..][..c];
        out.fill(0.0);
        for pixel in x[b * pixels * c..][..pixels * c].chunks_exact(c.max(1)) {
            for (o, &v) in out.iter_mut().zip(pixel) {
                *o += v;
            }
        }
        let count = pixels as f32;
        for o in out.iter_mut() {
            *o /= count;
        }
    }
}

/// int8 mean over H and W; out = clamp(output_zero_point + requant.apply(sum(x) - count *
/// input_zero_point)), where requant ≈ in_scale / (out_scale * count): `quantize` rounds that
/// factor once, `import` derives it as TFLite's reference MEAN does (its multiplier can then be
/// below 2^30).
pub fn mean_i8(
    shape: Nhwc,
    input_zero_point: i32,
    output_zero_point: i32,
    requant: Requant,
    x: &[i8],
    out: &mut [i8],
) {
    let (pixels, c) = (shape.h * shape.w, shape.c);
    let offset = (pixels as i32).wrapping_mul(input_zero_point);
    for b in 0..shape.n {
        let x = &x[b * pixels * c..][..pixels * c];
        for (ch, o) in out[b * c..][..c].iter_mut().enumerate() {
            let sum = x.iter().skip(ch).step_by(c).fold(0i32, |s, &v| s.wrapping_add(i32::from(v)));
            let acc = requant.apply(sum.wrapping_sub(offset)).wrapping_add(output_zero_point);
            *o = acc.clamp(-128, 127) as i8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{self, assert_close, assert_within, f32s, f64s, i8s, quant, Quant};
    use crate::kernels::ClampI8;
    use proptest::prelude::*;

    /// Runs the int8 kernel with the tool's requantization and the f64 oracle.
    fn run_i8(shape: Nhwc, q: &Quant, x: &[i8]) -> (Vec<i8>, Vec<i32>) {
        let count = (shape.h * shape.w) as f64;
        let requant = Requant::from_f64(q.in_scale / (q.out_scale * count));
        let mut out = vec![0; shape.n * shape.c];
        mean_i8(shape, q.in_zp, q.out_zp, requant, x, &mut out);
        (out, q.output(&testutil::mean(shape, &q.input(x))))
    }

    #[test]
    fn f32_hand_computed() {
        let shape = Nhwc { n: 2, h: 2, w: 2, c: 2 };
        let x = [1.0, -1.0, 2.0, 0.0, 3.0, 0.0, 4.0, 5.0, 0.5, 8.0, 0.5, 8.0, 0.5, 8.0, 0.5, -8.0];
        let mut out = [0.0; 4];
        mean_f32(shape, &x, &mut out);
        assert_eq!(out, [2.5, 1.0, 0.5, 4.0]);
        assert_close(&out, &testutil::mean(shape, &f64s(&x)));
    }

    #[test]
    fn i8_zero_points_rounding_and_saturation() {
        let shape = Nhwc { n: 1, h: 2, w: 2, c: 3 };
        // Equal scales: the factor is 1/4. x − zp: [0, 4, 8, 12] → 6; [130; 4] → 130;
        // [−1, −2, −3, 0] → −1.5, rounded away from zero to −2.
        let mut q = Quant {
            in_scale: 0.5,
            in_zp: -3,
            w_scales: vec![1.0],
            out_scale: 0.5,
            out_zp: 5,
            act: ClampI8::FULL,
        };
        let x = [-3, 127, -4, 1, 127, -5, 5, 127, -6, 9, 127, -3];
        let (out, expected) = run_i8(shape, &q, &x);
        assert_eq!(out, [11, 127, 3]);
        assert_within(&out, &expected, 0);
        // x − zp = −133 everywhere: −133 − 3 saturates.
        (q.in_zp, q.out_zp) = (5, -3);
        let (out, expected) = run_i8(shape, &q, &[-128; 12]);
        assert_eq!(out, [-128; 3]);
        assert_within(&out, &expected, 0);
    }

    fn shape() -> impl Strategy<Value = Nhwc> {
        (1..=2usize, 1..=5usize, 1..=5usize, 1..=3usize).prop_map(|(n, h, w, c)| Nhwc { n, h, w, c })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn f32_matches_oracle((shape, x) in shape().prop_flat_map(|s| (Just(s), f32s(s.len())))) {
            let mut out = vec![0.0; shape.n * shape.c];
            mean_f32(shape, &x, &mut out);
            assert_close(&out, &testutil::mean(shape, &f64s(&x)));
        }

        #[test]
        fn i8_matches_oracle((shape, q, x) in shape().prop_flat_map(|s| (Just(s), quant(1), i8s(s.len())))) {
            let (out, expected) = run_i8(shape, &q, &x);
            assert_within(&out, &expected, 1);
        }
    }
}
