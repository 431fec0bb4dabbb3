//! `quantize`: f32 values to int8 with a per-tensor scale and zero point (TFLite's QUANTIZE).

use crate::quant::quantize_i8;

/// `out[i] = clamp(round(x[i] / scale) + zero_point, −128, 127)`, rounding half away from zero
/// as TFLite's reference kernel does. NaN gives the zero point; ±infinity saturates.
pub fn quantize(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_i8(v, scale, zero_point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(x: &[f32], scale: f32, zero_point: i32) -> Vec<i8> {
        let mut out = vec![0; x.len()];
        quantize(x, scale, zero_point, &mut out);
        out
    }

    #[test]
    fn ties_round_half_away_from_zero() {
        // x / 0.5 = 2.5, −2.5, 0.5, −0.5, 1.5, −1.5.
        let x = [1.25, -1.25, 0.25, -0.25, 0.75, -0.75];
        assert_eq!(run(&x, 0.5, 0), [3, -3, 1, -1, 2, -2]);
        // The zero point is added after rounding.
        assert_eq!(run(&x, 0.5, -10), [-7, -13, -9, -11, -8, -12]);
    }

    #[test]
    fn saturates_at_both_ends() {
        let x = [127.4, 127.5, 1e30, -128.4, -128.6, -1e30, f32::MAX, f32::MIN];
        assert_eq!(run(&x, 1.0, 0), [127, 127, 127, -128, -128, -128, 127, -128]);
        // With a zero point near an end, the sum saturates rather than wraps.
        assert_eq!(run(&[200.0, -200.0], 1.0, 127), [127, -73]);
        assert_eq!(run(&[200.0, -200.0], 1.0, -128), [72, -128]);
    }

    #[test]
    fn non_finite_inputs_have_defined_results() {
        let x = [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        assert_eq!(run(&x, 0.1, 5), [5, 5, 127, -128]);
        // A tiny scale makes finite values overflow the division: they saturate too.
        assert_eq!(run(&[1.0, -1.0], f32::MIN_POSITIVE, 0), [127, -128]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_f64_rounding(
            x in prop::collection::vec(-300.0f32..300.0, 1..32),
            scale in 0.01f32..4.0,
            zero_point in -128i32..=127,
        ) {
            let out = run(&x, scale, zero_point);
            for (&q, &v) in out.iter().zip(&x) {
                // The kernel divides in f32, as TFLite does; away from a tie that is the f64 result.
                let r = f64::from(v / scale);
                let expected = (r.round() as i64 + i64::from(zero_point)).clamp(-128, 127);
                prop_assert_eq!(i64::from(q), expected);
            }
        }
    }
}
