//! Softmax over the last axis: f32 with `libm::expf`, and int8 bit-exact with TFLite's
//! reference kernel, including the gemmlowp fixed-point exponential and reciprocal it uses.
//!
//! Fixed-point values below are raw `i32`s in the Q`m`.`n` format named in each doc comment
//! (`m` integer bits, `n = 31 − m` fractional bits), as gemmlowp's `FixedPoint<int32_t, m>`.
//! Products of two fixed-point values use [`saturating_rounding_doubling_high_mul`], which
//! adds their integer bits; additions wrap like gemmlowp's raw `int32_t` additions.

use super::Input;
use crate::quant::{quantize_multiplier, rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// Integer bits of the scaled logit differences fed to the exponential (TFLite's
/// `kScaledDiffIntegerBits`).
const SCALED_DIFF_INTEGER_BITS: i32 = 5;

/// Integer bits of the running sum of exponentials (TFLite's `kAccumulationIntegerBits`).
const ACCUMULATION_INTEGER_BITS: i32 = 12;

/// Quantization of the int8 softmax input, as TFLite's `Prepare` computes it.
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxParams {
    /// Q31 multiplier turning an int8 logit difference into a Q5.26 value of `beta × Δx`.
    pub input_multiplier: i32,
    /// Left shift applied to the difference before `input_multiplier`.
    pub input_left_shift: i32,
    /// Differences below this (always ≤ 0) contribute `exp(−32) ≈ 0` and are skipped.
    pub diff_min: i32,
}

impl SoftmaxParams {
    /// As TFLite's `PreprocessSoftmaxScaling(beta, input_scale, 5)` and `CalculateInputRadius`.
    pub fn new(input_scale: f32, beta: f32) -> Self {
        let max_real = f64::from(i32::MAX);
        let frac_bits = 31 - SCALED_DIFF_INTEGER_BITS;
        let real = f64::from(beta) * f64::from(input_scale) * f64::from(1u32 << frac_bits);
        // TFLite's `std::min`, which keeps a NaN (encoded below as a zero factor).
        let real = if max_real < real { max_real } else { real };
        let (multiplier, shift) = quantize_multiplier(real);
        // TFLite requires `real > 1` (shift ≥ 0); a smaller factor moves its shift into the
        // multiplier instead of failing.
        let input_multiplier = multiplier >> (-shift).clamp(0, 31);
        let input_left_shift = shift.max(0);
        let max_input_rescaled = f64::from((1 << SCALED_DIFF_INTEGER_BITS) - 1)
            * f64::from(1u32 << frac_bits)
            / f64::from(1u32 << input_left_shift);
        Self { input_multiplier, input_left_shift, diff_min: -(libm::floor(max_input_rescaled) as i32) }
    }

    /// `beta × diff` in Q5.26, as TFLite's `MultiplyByQuantizedMultiplierGreaterThanOne`.
    #[inline(always)]
    fn rescale(&self, diff: i32) -> i32 {
        let shifted = diff.wrapping_mul(1i32.wrapping_shl(self.input_left_shift as u32));
        saturating_rounding_doubling_high_mul(shifted, self.input_multiplier)
    }
}

/// f32 softmax of each row of `x` (`[rows, depth]`): `exp(beta × (x − max)) / sum`. In place,
/// each row is read whole before it is written.
pub fn softmax_f32(rows: usize, depth: usize, beta: f32, x: Input<f32>, out: &mut [f32]) {
    if depth == 0 {
        return;
    }
    for (r, out_row) in out.chunks_exact_mut(depth).take(rows).enumerate() {
        let Some(row) = x.slice(r * depth..(r + 1) * depth) else { return };
        let max = row.values(out_row).iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        row.map(out_row, |v| {
            let e = libm::expf((v - max) * beta);
            sum += e;
            e
        });
        for o in out_row.iter_mut() {
            *o /= sum;
        }
    }
}

/// int8 softmax of each row of `x` (`[rows, depth]`), bit-exact with TFLite's reference;
/// the output has scale 1/256 and zero point −128. In place, each row is read whole before it
/// is written.
pub fn softmax_i8(rows: usize, depth: usize, p: &SoftmaxParams, x: Input<i8>, out: &mut [i8]) {
    if depth == 0 {
        return;
    }
    for (r, out_row) in out.chunks_exact_mut(depth).take(rows).enumerate() {
        let Some(row) = x.slice(r * depth..(r + 1) * depth) else { return };
        let values = row.values(out_row);
        let max = i32::from(values.iter().copied().fold(i8::MIN, i8::max));
        // Q12.19 sum of the Q0.31 exponentials.
        let mut sum_of_exps = 0i32;
        for &v in values {
            let diff = i32::from(v) - max;
            if diff >= p.diff_min {
                let exp = exp_on_negative_values(p.rescale(diff));
                sum_of_exps =
                    sum_of_exps.wrapping_add(rounding_divide_by_pot(exp, ACCUMULATION_INTEGER_BITS));
            }
        }
        let (scale, bits_over_unit) = reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS);
        // `scale × exp` is the probability × 2^-bits_over_unit in Q0.31; keep 8 bits.
        let out_shift = bits_over_unit + 31 - 8;
        row.map(out_row, |v| {
            let diff = i32::from(v) - max;
            if diff >= p.diff_min {
                let exp = exp_on_negative_values(p.rescale(diff));
                let q = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scale, exp), out_shift);
                q.wrapping_sub(128).clamp(-128, 127) as i8
            } else {
                i8::MIN
            }
        });
    }
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT`: `x × 2^exponent`, saturating when shifting
/// left and rounding half away from zero when shifting right.
#[inline(always)]
fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let threshold = (1i32 << (31 - exponent)) - 1;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x << exponent
        }
    } else {
        rounding_divide_by_pot(x, -exponent)
    }
}

/// gemmlowp's `RoundingHalfSum`: `(a + b) / 2` without overflow, rounded half away from zero.
#[inline(always)]
fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = i64::from(a) + i64::from(b);
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// Q0.31 `exp(−1/8)`.
const EXP_MINUS_ONE_EIGHTH: i32 = 1_895_147_668;
/// Q0.31 `1/3`.
const ONE_THIRD: i32 = 715_827_883;
/// Q0.31 `exp(−2^k)` for `k = −2..=4`: the factors of the integer and quarter part of `−a`.
const EXP_MINUS_POWERS_OF_TWO: [i32; 7] =
    [1_672_461_947, 1_302_514_674, 790_015_084, 290_630_308, 39_332_535, 720_401, 242];

/// gemmlowp's `exp_on_interval_between_negative_one_quarter_and_0_excl`: `exp(a)` for Q0.31
/// `a` in [−1/4, 0), as `exp(−1/8) × exp(x)` with `x = a + 1/8` and the 4th-order Taylor
/// polynomial `1 + x + x²/2 + x³/6 + x⁴/24`, all in Q0.31.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    let x = a.wrapping_add(1 << 28);
    let x2 = saturating_rounding_doubling_high_mul(x, x);
    let x3 = saturating_rounding_doubling_high_mul(x2, x);
    let x4 = saturating_rounding_doubling_high_mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    // ((x⁴/4 + x³) / 3 + x²) / 2 = x⁴/24 + x³/6 + x²/2.
    let higher_terms = saturating_rounding_multiply_by_pot(
        saturating_rounding_doubling_high_mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        -1,
    );
    EXP_MINUS_ONE_EIGHTH.wrapping_add(saturating_rounding_doubling_high_mul(
        EXP_MINUS_ONE_EIGHTH,
        x.wrapping_add(higher_terms),
    ))
}

/// gemmlowp's `exp_on_negative_values` for a Q5.26 `a ≤ 0`, giving Q0.31 `exp(a)`.
///
/// Splits `a = r − n/4` with `r` in [−1/4, 0) evaluated by the Taylor polynomial, and `n ≥ 0`
/// whose bits select the factors `exp(−2^k)` (a barrel shifter over the bits of `n/4`).
/// `a = 0` gives the saturated Q0.31 one.
fn exp_on_negative_values(a: i32) -> i32 {
    const FRACTIONAL_BITS: i32 = 31 - SCALED_DIFF_INTEGER_BITS;
    const ONE_QUARTER: i32 = 1 << (FRACTIONAL_BITS - 2);
    let a_mod_quarter_minus_one_quarter = (a & (ONE_QUARTER - 1)) - ONE_QUARTER;
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, SCALED_DIFF_INTEGER_BITS),
    );
    // The multiple of 1/4 removed from `a`, as a non-negative Q5.26 value.
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    for (bit, &factor) in (FRACTIONAL_BITS - 2..).zip(&EXP_MINUS_POWERS_OF_TWO) {
        if remainder & (1 << bit) != 0 {
            result = saturating_rounding_doubling_high_mul(result, factor);
        }
    }
    if a == 0 {
        i32::MAX
    } else {
        result
    }
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1`: Q0.31 `1 / (1 + a)` for Q0.31 `a` in
/// [0, 1), by three Newton–Raphson steps on `d = (1 + a) / 2` from the initial guess
/// `48/17 − 32/17 × d` (all in Q2.29), then halved back to Q0.31.
fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    /// Q2.29 `48/17`.
    const FORTY_EIGHT_OVER_SEVENTEEN: i32 = 1_515_870_810;
    /// Q2.29 `−32/17`.
    const MINUS_THIRTY_TWO_OVER_SEVENTEEN: i32 = -1_010_580_540;
    /// Q2.29 `1`.
    const ONE_Q2: i32 = 1 << 29;
    let half_denominator = rounding_half_sum(a, i32::MAX);
    let mut x = FORTY_EIGHT_OVER_SEVENTEEN.wrapping_add(saturating_rounding_doubling_high_mul(
        half_denominator,
        MINUS_THIRTY_TWO_OVER_SEVENTEEN,
    ));
    for _ in 0..3 {
        let half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x);
        let one_minus_half_denominator_times_x = ONE_Q2.wrapping_sub(half_denominator_times_x);
        // The Q4.27 correction term rescaled to Q2.29.
        let correction = saturating_rounding_multiply_by_pot(
            saturating_rounding_doubling_high_mul(x, one_minus_half_denominator_times_x),
            2,
        );
        x = x.wrapping_add(correction);
    }
    // `x ≈ 1/d` in Q2.29 is `1/(1 + a)` when read as Q1.30; rescale that to Q0.31.
    saturating_rounding_multiply_by_pot(x, 1)
}

/// TFLite's `GetReciprocal`: for `x` with `integer_bits` integer bits, returns Q0.31 `s` and
/// `bits_over_unit` with `1/x ≈ s × 2^-bits_over_unit`.
fn reciprocal(x: i32, integer_bits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros();
    let bits_over_unit = integer_bits - headroom_plus_one as i32;
    // `x` normalized into [1, 2), minus one, as Q0.31.
    let normalized = (x as u32).checked_shl(headroom_plus_one).unwrap_or(0);
    let shifted_minus_one = normalized.wrapping_sub(1 << 31) as i32;
    (one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), bits_over_unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// f64 softmax of one row scaled by `beta`.
    fn reference(row: &[f64], beta: f64) -> Vec<f64> {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = row.iter().map(|&v| ((v - max) * beta).exp()).collect();
        let sum: f64 = exps.iter().sum();
        exps.iter().map(|e| e / sum).collect()
    }

    /// Runs int8 softmax, checks every output within 1 LSB of the f64 reference and returns it.
    fn run_i8(rows: usize, depth: usize, scale: f32, beta: f32, x: &[i8]) -> Vec<i8> {
        let p = SoftmaxParams::new(scale, beta);
        let mut out = vec![0i8; rows * depth];
        softmax_i8(rows, depth, &p, Input::Separate(x), &mut out);
        let mut in_place = x.to_vec();
        softmax_i8(rows, depth, &p, Input::InPlace, &mut in_place);
        assert_eq!(in_place, out, "in place");
        for (row, out_row) in x.chunks(depth).zip(out.chunks(depth)) {
            let real: Vec<f64> = row.iter().map(|&v| f64::from(v) * f64::from(scale)).collect();
            for (&got, prob) in out_row.iter().zip(reference(&real, beta.into())) {
                let want = ((prob * 256.0).round() as i32 - 128).clamp(-128, 127);
                assert!((i32::from(got) - want).abs() <= 1, "{row:?} -> {out_row:?}: {got} vs {want}");
            }
        }
        out
    }

    /// Runs f32 softmax and checks it against the f64 reference within 1e-6 relative, plus
    /// the f32 rounding of the exponent `beta × (x − max)` (exp's relative error is the
    /// exponent's absolute error).
    fn run_f32(rows: usize, depth: usize, beta: f32, x: &[f32]) -> Vec<f32> {
        let mut out = vec![f32::NAN; rows * depth];
        softmax_f32(rows, depth, beta, Input::Separate(x), &mut out);
        let mut in_place = x.to_vec();
        softmax_f32(rows, depth, beta, Input::InPlace, &mut in_place);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&in_place), bits(&out), "in place");
        for (row, out_row) in x.chunks(depth).zip(out.chunks(depth)) {
            let real: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            let max = real.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let probs = reference(&real, beta.into());
            for ((&got, want), v) in out_row.iter().zip(probs).zip(&real) {
                let exponent = f64::from(beta) * (v - max);
                let tol = want * (1e-6 + exponent.abs() * 2.5e-7) + f64::from(f32::MIN_POSITIVE);
                assert!((f64::from(got) - want).abs() <= tol, "{row:?}: {got} vs {want}");
            }
        }
        out
    }

    #[test]
    fn constants_are_the_documented_reals() {
        let q = |v: f64, frac_bits: i32| (v * 2f64.powi(frac_bits)).round() as i32;
        assert_eq!(EXP_MINUS_ONE_EIGHTH, q((-0.125f64).exp(), 31));
        assert_eq!(ONE_THIRD, q(1.0 / 3.0, 31));
        for (k, &c) in (-2..=4).zip(&EXP_MINUS_POWERS_OF_TWO) {
            assert_eq!(c, q((-2f64.powi(k)).exp(), 31), "exp(-2^{k})");
        }
    }

    #[test]
    fn fixed_point_exp_and_reciprocal_are_accurate() {
        for i in 0..=2000 {
            let a = -f64::from(i) * 0.01;
            let raw = (a * f64::from(1 << 26)) as i32;
            let got = f64::from(exp_on_negative_values(raw)) / 2f64.powi(31);
            assert!((got - a.exp()).abs() < 3e-7, "exp({a}) = {got}");
        }
        for i in 0..1000 {
            let x = f64::from(i) / 1000.0;
            let got = f64::from(one_over_one_plus_x_for_x_in_0_1((x * 2f64.powi(31)) as i32)) / 2f64.powi(31);
            assert!((got - 1.0 / (1.0 + x)).abs() < 1e-8, "1/(1+{x}) = {got}");
        }
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 28, 3), i32::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 28), 3), i32::MIN);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 27), 3), -(1 << 30));
        assert_eq!(saturating_rounding_multiply_by_pot(-6, -2), -2);
        assert_eq!(rounding_half_sum(3, 4), 4);
        assert_eq!(rounding_half_sum(-3, -4), -4);
        assert_eq!(rounding_half_sum(i32::MAX, i32::MAX), i32::MAX);
    }

    #[test]
    fn params_match_tflite_prepare() {
        // beta × scale × 2^26 = 0.1 × 2^26 < 2^31: multiplier × 2^(shift − 31) = that factor.
        let p = SoftmaxParams::new(0.1, 1.0);
        let real = f64::from(0.1f32) * f64::from(1 << 26);
        let back = f64::from(p.input_multiplier) * 2f64.powi(p.input_left_shift - 31);
        assert!((back - real).abs() < real * 1e-9);
        assert_eq!(p.input_left_shift, 23);
        assert_eq!(p.diff_min, -((31.0 * f64::from(1 << 26) / f64::from(1 << 23)).floor() as i32));
        assert_eq!(p.diff_min, -248);
    }

    #[test]
    fn i8_all_equal_logits_are_uniform() {
        for depth in [1, 2, 3, 4, 10, 16, 100] {
            let out = run_i8(1, depth, 0.1, 1.0, &vec![17; depth]);
            let want = ((256.0 / depth as f64).round() as i32 - 128).clamp(-128, 127) as i8;
            assert!(out.iter().all(|&v| v == want), "depth {depth}: {out:?} vs {want}");
        }
        assert_eq!(run_i8(1, 4, 0.5, 1.0, &[-128; 4]), [-64; 4]);
    }

    #[test]
    fn i8_dominant_logit_saturates() {
        let mut x = vec![-100i8; 10];
        x[3] = 120;
        let out = run_i8(1, 10, 0.1, 1.0, &x);
        assert_eq!(out[3], 127);
        assert!(out.iter().enumerate().all(|(i, &v)| i == 3 || v == -128));
        // Two rows, the second with three distinct logits and a non-unit beta.
        let out = run_i8(2, 3, 0.05, 2.0, &[0, 0, 127, -20, 5, 30]);
        assert_eq!(out[2], 127);
    }

    #[test]
    fn f32_hand_checked() {
        let out = run_f32(2, 4, 1.0, &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 100.0]);
        assert_eq!(&out[..4], [0.25; 4]);
        assert_eq!(out[7], 1.0);
        let out = run_f32(1, 2, 0.5, &[2.0f32.ln() * 2.0, 0.0]);
        assert!((out[0] - 2.0 / 3.0).abs() < 1e-7);
    }

    #[test]
    fn hostile_params_do_not_panic() {
        let x = [-128, 0, 127, 5];
        let mut out = [0i8; 4];
        for p in [
            SoftmaxParams::new(0.0, 1.0),
            SoftmaxParams::new(f32::NAN, 1.0),
            SoftmaxParams::new(1e30, 1e30),
            SoftmaxParams::new(1e-30, 1.0),
            SoftmaxParams { input_multiplier: i32::MIN, input_left_shift: -7, diff_min: 5 },
            SoftmaxParams { input_multiplier: i32::MAX, input_left_shift: 99, diff_min: i32::MIN },
        ] {
            softmax_i8(2, 2, &p, Input::Separate(&x), &mut out);
            softmax_i8(2, 2, &p, Input::InPlace, &mut out);
        }
        softmax_i8(0, 0, &SoftmaxParams::new(0.1, 1.0), Input::Separate(&[]), &mut []);
        softmax_f32(1, 0, 1.0, Input::InPlace, &mut []);
        // An input shorter than the output stops at its last whole row.
        softmax_f32(2, 2, 1.0, Input::Separate(&[0.0; 3]), &mut [0.0; 4]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_rows_match_f64(
            rows in 1usize..4,
            depth in 1usize..40,
            scale in 0.005f32..0.5,
            beta in 0.25f32..2.0,
            seed in any::<u64>(),
        ) {
            let x: Vec<i8> = (0..(rows * depth) as u64)
                .map(|i| (seed.wrapping_mul(2 * i + 1).rotate_left(i as u32) >> 56) as u8 as i8)
                .collect();
            run_i8(rows, depth, scale, beta, &x);
            let xf: Vec<f32> = x.iter().map(|&v| f32::from(v) * scale).collect();
            run_f32(rows, depth, beta, &xf);
        }
    }
}
