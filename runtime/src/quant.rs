//! Fixed-point arithmetic of the TFLite int8 quantization spec.
//!
//! Requantization multiplies an `i32` accumulator by a real factor `m` encoded as a Q31
//! multiplier and a power-of-two shift (`m ≈ multiplier × 2^(shift − 31)`), with the same
//! rounding as TFLite's reference kernels: a saturating, rounding doubling high multiply
//! followed by a rounding arithmetic right shift (round half away from zero), or, where TFLite's
//! reference kernel rounds once (per-tensor FULLY_CONNECTED), one rounding of the 64-bit product.

/// A real factor encoded as Q31 multiplier and power-of-two exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Requant {
    /// Q31 mantissa, ≥ 0: in [2^30, 2^31) as [`quantize_multiplier`] makes it, or 0 for a zero
    /// factor (an imported TFLite MEAN's can be smaller).
    pub multiplier: i32,
    /// Power-of-two exponent: positive shifts left, negative shifts right.
    pub shift: i32,
}

impl Requant {
    /// Encodes `real` (≥ 0) exactly as TFLite's `QuantizeMultiplier` does.
    pub fn from_f64(real: f64) -> Self {
        let (multiplier, shift) = quantize_multiplier(real);
        Self { multiplier, shift }
    }

    /// Applies the factor to `x` as TFLite's `MultiplyByQuantizedMultiplier`.
    #[inline(always)]
    pub fn apply(self, x: i32) -> i32 {
        multiply_by_quantized_multiplier(x, self.multiplier, self.shift)
    }

    /// Applies the factor to `x` with `rounding`.
    #[inline(always)]
    pub fn apply_rounded(self, rounding: Rounding, x: i32) -> i32 {
        match rounding {
            Rounding::Double => self.apply(x),
            Rounding::Single => multiply_by_quantized_multiplier_single(x, self.multiplier, self.shift),
        }
    }
}

/// How a requantization rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rounding {
    /// Twice, as TFLite's default `MultiplyByQuantizedMultiplier` (every Ember-quantized model).
    #[default]
    Double,
    /// Once, as TFLite's reference per-tensor FULLY_CONNECTED (imported models only).
    Single,
}

/// `(a × b × 2) >> 32` rounded to nearest with ties toward +∞ (gemmlowp), saturating the one overflow case.
///
/// gemmlowp adds a nudge of `2^30` (or `1 − 2^30` for a negative product) and divides by `2^31`
/// truncating toward zero; both cases equal `(a × b + 2^30) >> 31` with an arithmetic shift
/// (for a negative product, truncating `y / 2^31` is flooring `(y + 2^31 − 1) / 2^31`), which
/// is one multiply-accumulate and a shift on 32-bit cores.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    ((i64::from(a) * i64::from(b) + (1 << 30)) >> 31) as i32
}

/// `x / 2^exponent` rounded half away from zero (`exponent` in 0..=31).
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let exponent = exponent.clamp(0, 31) as u32;
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// TFLite's `MultiplyByQuantizedMultiplier`: `x × multiplier × 2^(shift − 31)`, rounded.
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let right = (-shift).max(0);
    let shifted = x.wrapping_mul(1i32.wrapping_shl(left as u32));
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)
}

/// `x × multiplier × 2^(shift − 31)` rounded once: `(x × multiplier + 2^(n−1)) >> n` with
/// `n = 31 − shift` in 64 bits (round half up), saturated to i32. `shift` is clamped to
/// TFLite's range −31..=30, so `n` is in 1..=62 and nothing overflows.
#[inline(always)]
pub fn multiply_by_quantized_multiplier_single(x: i32, multiplier: i32, shift: i32) -> i32 {
    let n = (31 - shift.clamp(-31, 30)) as u32;
    // |x × multiplier| ≤ 2^62 and the rounding term ≤ 2^61: the sum fits in i64.
    let rounded = (i64::from(x) * i64::from(multiplier) + (1i64 << (n - 1))) >> n;
    rounded.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// TFLite's `QuantizeMultiplier`: encodes `real` as `(multiplier, shift)`.
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if real <= 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let (fraction, mut shift) = frexp(real);
    let mut q = libm::round(fraction * (1u64 << 31) as f64) as i64;
    if q == 1i64 << 31 {
        q /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    if shift > 30 {
        return (i32::MAX, 30);
    }
    (q as i32, shift)
}

/// Splits a positive finite `x` into `fraction × 2^exponent` with `fraction` in [0.5, 1).
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: scale into the normal range first.
        let (f, e) = frexp(x * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (f, e - 54);
    }
    let fraction = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (fraction, biased - 1022)
}

/// Quantizes a real value to int8 as TFLite's reference `Quantize` does.
#[inline]
pub fn quantize_i8(x: f32, scale: f32, zero_point: i32) -> i8 {
    let q = libm::roundf(x / scale);
    let q = if q.is_nan() { 0 } else { q as i32 };
    q.saturating_add(zero_point).clamp(-128, 127) as i8
}

/// Dequantizes an int8 value.
#[inline]
pub fn dequantize_i8(q: i8, scale: f32, zero_point: i32) -> f32 {
    (q as i32 - zero_point) as f32 * scale
}

/// Builds the 256-entry table of an int8 unary function: entry `i` is the output for input
/// byte `i as i8`, computed in f64 and rounded half away from zero.
pub fn build_table(
    f: impl Fn(f64) -> f64,
    in_scale: f32,
    in_zero_point: i32,
    out_scale: f32,
    out_zero_point: i32,
) -> [i8; 256] {
    let mut table = [0i8; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let q = i as u8 as i8;
        let x = (q as i32 - in_zero_point) as f64 * in_scale as f64;
        let y = libm::round(f(x) / out_scale as f64);
        let y = if y.is_nan() { 0.0 } else { y };
        *entry = (y.clamp(-1e9, 1e9) as i32 + out_zero_point).clamp(-128, 127) as i8;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_divide_rounds_half_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 1), 2);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
    }

    proptest::proptest! {
        #[test]
        fn high_mul_equals_gemmlowps_nudge_and_truncating_division(a: i32, b: i32) {
            let ab = i64::from(a) * i64::from(b);
            let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
            let gemmlowp = if a == i32::MIN && b == i32::MIN { i32::MAX } else { ((ab + nudge) / (1i64 << 31)) as i32 };
            proptest::prop_assert_eq!(saturating_rounding_doubling_high_mul(a, b), gemmlowp);
        }
    }

    #[test]
    fn high_mul_saturates_and_rounds() {
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        // -1.5: gemmlowp's nudge makes negative ties round toward zero.
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
    }

    #[test]
    fn multiplier_matches_real_factor() {
        for &m in &[0.5, 0.25, 0.0001234, 0.9999999, 1.0, 3.5, 1e-9] {
            let r = Requant::from_f64(m);
            assert!((1 << 30..=i32::MAX).contains(&r.multiplier), "{m}: {r:?}");
            let back = r.multiplier as f64 * 2f64.powi(r.shift - 31);
            assert!((back - m).abs() <= m * 1e-9, "{m} -> {back}");
            let x = 1_000_000;
            let expected = (x as f64 * m).round() as i32;
            assert!((r.apply(x) - expected).abs() <= 1);
        }
        assert_eq!(quantize_multiplier(0.0), (0, 0));
    }

    #[test]
    fn single_rounding_rounds_the_product_once_half_up() {
        // Factor 0.75 (multiplier 0.75 × 2^31, shift 0): ties round up.
        let m = 3 << 29;
        // 1.5 and -1.5.
        assert_eq!(multiply_by_quantized_multiplier_single(2, m, 0), 2);
        assert_eq!(multiply_by_quantized_multiplier_single(-2, m, 0), -1);

        // 5 × 0.4999999 = 2.4999995: once, 2; twice, the high multiply gives 5 (×2^-1) and the
        // shift rounds the half away from zero, 3.
        let r = Requant::from_f64(0.4999999);
        assert_eq!(r.apply_rounded(Rounding::Single, 5), 2);
        assert_eq!(r.apply_rounded(Rounding::Double, 5), 3);
        // Hostile shifts saturate instead of overflowing.
        assert_eq!(multiply_by_quantized_multiplier_single(i32::MAX, i32::MAX, 30), i32::MAX);
        assert_eq!(multiply_by_quantized_multiplier_single(i32::MIN, i32::MAX, i32::MAX), i32::MIN);
        assert_eq!(multiply_by_quantized_multiplier_single(7, i32::MAX, i32::MIN), 0);
    }

    #[test]
    fn frexp_handles_subnormals() {
        let (f, e) = frexp(f64::MIN_POSITIVE / 8.0);
        assert_eq!(f, 0.5);
        assert_eq!(e, -1022 - 2);
        assert_eq!(frexp(1.0), (0.5, 1));
    }

    #[test]
    fn quantize_saturates() {
        assert_eq!(quantize_i8(1e9, 0.1, 0), 127);
        assert_eq!(quantize_i8(-1e9, 0.1, 3), -128);
        assert_eq!(quantize_i8(0.25, 0.1, -5), -2);
        assert_eq!(quantize_i8(f32::NAN, 0.1, 7), 7);
    }
}
