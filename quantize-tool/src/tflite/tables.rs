//! 256-entry tables for the int8 unary operators of an imported model (Ember runs every int8
//! unary op as a table lookup), each entry computed as TFLite's reference kernel (LiteRT's
//! `BUILTIN_REF`) computes that input (docs/QUANTIZATION.md, "TFLite import"):
//!
//! - RELU and RELU6 as `ReluX`: the input minus its zero point, rescaled by
//!   `QuantizeMultiplier(input_scale / output_scale)`, plus the output zero point, clamped to the
//!   activation's quantized range.
//! - LOGISTIC and TANH as the reference kernel's own table: the input dequantized in f32, the
//!   function in f32, the result times the f32 reciprocal of the output scale, rounded half away
//!   from zero.
//! - HARD_SWISH in 16-bit fixed point, as the reference `HardSwish`.

use ember::quant::{quantize_i8, quantize_multiplier, Requant};

use super::lower::Q;

/// The table of RELU (`max` infinite) or RELU6 (`min` 0, `max` 6), as TFLite's `ReluX`.
pub fn relu(x: Q, y: Q, min: f32, max: f32) -> [i8; 256] {
    let requant = Requant::from_f64(f64::from(x.scale) / f64::from(y.scale));
    let lo = i32::from(quantize_i8(min, y.scale, y.zero_point));
    let hi = if max.is_finite() { i32::from(quantize_i8(max, y.scale, y.zero_point)) } else { 127 };
    table(|q| y.zero_point.wrapping_add(requant.apply(q - x.zero_point)).clamp(lo, hi))
}

/// LOGISTIC: `1 / (1 + e^-x)` in f32.
pub fn logistic(x: Q, y: Q) -> [i8; 256] {
    f32_table(x, y, |v| 1.0 / (1.0 + f32_exp(-v)))
}

/// TANH in f32.
pub fn tanh(x: Q, y: Q) -> [i8; 256] {
    f32_table(x, y, |v| (f64::from(v).tanh()) as f32)
}

/// `e^v` rounded to f32 (what the C library's `expf` returns, computed in f64 so that the table
/// does not depend on the host's `expf`).
fn f32_exp(v: f32) -> f32 {
    f64::from(v).exp() as f32
}

/// The table of `f` as TFLite's `LUTPopulate`: input dequantized in f32, `f` in f32, scaled by
/// the f32 reciprocal of the output scale, rounded half away from zero, offset and clamped.
fn f32_table(x: Q, y: Q, f: impl Fn(f32) -> f32) -> [i8; 256] {
    let inverse = 1.0 / y.scale;
    table(|q| {
        let v = f(x.scale * (q - x.zero_point) as f32);
        ((v * inverse).round() as i32).saturating_add(y.zero_point).clamp(-128, 127)
    })
}

/// HARD_SWISH, `x · relu6(x + 3) / 6`, as TFLite's reference int8 `HardSwish` (16-bit fixed
/// point; the factors derived in f32 as its `Prepare` does). The input is moved to a finer scale
/// (`s_in / 128`, the value times 128); its "relu-ish" factor, the input rescaled so that ±3
/// maps to ±1 in Q15 (saturating) and shifted to [0, 1], multiplies the input rescaled to the
/// output scale by a truncating doubling high multiply, and a rounding right shift finishes.
/// `None` when the output scale is not coarse enough for that last shift (TFLite refuses the
/// model then too).
pub fn hard_swish(x: Q, y: Q) -> Option<[i8; 256]> {
    let hires_scale = (1.0f32 / 128.0) * x.scale;
    let (out_m, out_exp) = quantize_multiplier(f64::from(hires_scale / y.scale));
    let (relu_m, relu_exp) = quantize_multiplier(f64::from(hires_scale / (3.0f32 / 32768.0)));
    if out_exp > 0 {
        return None;
    }
    let (out_m, relu_m) = (q15_multiplier(out_m), q15_multiplier(relu_m));
    Some(table(|q| {
        let hires = ((q - x.zero_point) * 128) as i16;
        let on_output_scale = rounding_doubling_high_mul_i16(hires, out_m);
        let mut reluish = hires;
        if relu_exp > 0 {
            reluish = saturating_shl_i16(reluish, relu_exp - 1);
        }
        reluish = rounding_doubling_high_mul_i16(reluish, relu_m);
        if relu_exp > 0 {
            reluish = saturating_shl_i16(reluish, 1);
        } else if relu_exp < 0 {
            reluish = rounding_shr_i16(reluish, -relu_exp);
        }
        let unit = ((i32::from(reluish) + (1 << 15)) >> 1) as i16;
        let product = doubling_high_mul_i16(unit, on_output_scale);
        let out = rounding_shr_i16(product, -out_exp).wrapping_add(y.zero_point as i16);
        i32::from(out).clamp(-128, 127)
    }))
}

/// A Q31 multiplier rounded to Q15 (`DownScaleInt32ToInt16Multiplier`), saturating at the top.
fn q15_multiplier(m: i32) -> i16 {
    if m >= i32::MAX - (1 << 15) {
        i16::MAX
    } else {
        ((m + (1 << 15)) >> 16) as i16
    }
}

/// `2ab / 2^16` rounded to nearest, ties away from zero (gemmlowp's 16-bit
/// `SaturatingRoundingDoublingHighMul`); the one overflow case saturates.
fn rounding_doubling_high_mul_i16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    let ab = i32::from(a) * i32::from(b);
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// `2ab / 2^16` truncated toward zero (`SaturatingDoublingHighMul`, like Arm's SQDMULH).
fn doubling_high_mul_i16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    ((i32::from(a) * i32::from(b)) / (1 << 15)) as i16
}

/// `v · 2^amount`, saturated to i16.
fn saturating_shl_i16(v: i16, amount: i32) -> i16 {
    (i64::from(v) << amount.clamp(0, 47)).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// `v / 2^exponent` rounded half away from zero, as gemmlowp's 16-bit `RoundingDivideByPOT`
/// (whose mask is cut to 16 bits, which matters only for exponents above 15).
fn rounding_shr_i16(v: i16, exponent: i32) -> i16 {
    let exponent = exponent.clamp(0, 31);
    let mask = ((1i64 << exponent) - 1) as i16;
    let threshold = (mask >> 1) + i16::from(v < 0);
    ((i32::from(v) >> exponent) as i16).wrapping_add(i16::from(v & mask > threshold))
}

/// The table whose entry for input byte `q` is `f(q)`.
fn table(f: impl Fn(i32) -> i32) -> [i8; 256] {
    let mut out = [0i8; 256];
    for (i, entry) in out.iter_mut().enumerate() {
        *entry = f(i32::from(i as u8 as i8)) as i8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(table: &[i8; 256], q: i8) -> i8 {
        table[q as u8 as usize]
    }

    #[test]
    fn relu6_rescales_and_clamps() {
        // Input scale 0.1, zero point 10; output scale 0.05, zero point -100: x = (q - 10) / 10,
        // y = 20 x - 100, clamped to [-100, round(6 / 0.05) - 100 = 20].
        let (x, y) = (Q { scale: 0.1, zero_point: 10 }, Q { scale: 0.05, zero_point: -100 });
        let t = relu(x, y, 0.0, 6.0);
        assert_eq!(at(&t, 10), -100);
        assert_eq!(at(&t, -128), -100);
        assert_eq!(at(&t, 13), -94);
        assert_eq!(at(&t, 70), 20);
        let t = relu(x, y, 0.0, f32::INFINITY);
        assert_eq!(at(&t, 13), -94);
        assert_eq!(at(&t, 127), 127);
    }

    #[test]
    fn sixteen_bit_steps_round_like_gemmlowp() {
        assert_eq!(q15_multiplier(1 << 30), 1 << 14);
        assert_eq!(q15_multiplier(i32::MAX - 100), i16::MAX);
        // 0.5 × 0.5 in Q15; −1 × 1 / 2^15 rounds to 0; −3 × 0.5 = −1.5 truncates to −1.
        assert_eq!(rounding_doubling_high_mul_i16(1 << 14, 1 << 14), 1 << 13);
        assert_eq!(rounding_doubling_high_mul_i16(-1, 1), 0);
        assert_eq!(rounding_doubling_high_mul_i16(i16::MIN, i16::MIN), i16::MAX);
        assert_eq!(doubling_high_mul_i16(-3, 1 << 14), -1);
        assert_eq!(saturating_shl_i16(300, 7), i16::MAX);
        assert_eq!(saturating_shl_i16(-300, 7), i16::MIN);
        // Ties away from zero; above 15 the 16-bit mask is all ones, so −1 stays −1.
        assert_eq!(rounding_shr_i16(3, 1), 2);
        assert_eq!(rounding_shr_i16(-3, 1), -2);
        assert_eq!(rounding_shr_i16(-1, 16), -1);
    }

    #[test]
    fn hard_swish_is_refused_for_a_too_fine_output_scale() {
        let x = Q { scale: 1.0, zero_point: 0 };
        assert!(hard_swish(x, Q { scale: 1.0 / 512.0, zero_point: 0 }).is_none());
        // Equal scales: −3 and below give 0, 3 and above give the input.
        let t = hard_swish(x, x).unwrap();
        assert_eq!([at(&t, -100), at(&t, -3), at(&t, 0), at(&t, 3), at(&t, 100)], [0, 0, 0, 3, 100]);
    }
}
