//! 256-entry tables for the int8 unary operators of an imported model (Ember runs every int8
//! unary op as a table lookup).
//!
//! RELU and RELU6 follow TFLite's reference `ReluX` exactly: the input minus its zero point,
//! rescaled by `QuantizeMultiplier(input_scale / output_scale)`, plus the output zero point,
//! clamped to the activation's quantized range. LOGISTIC, TANH and HARD_SWISH are the real
//! function rounded once (`build_table`), which can differ by one step from TFLite's
//! fixed-point reference kernels on some inputs; the MLPerf Tiny models use none of them.

use ember::quant::{build_table, quantize_i8, Requant};

use super::lower::Q;

/// The table of RELU (`max` infinite) or RELU6 (`min` 0, `max` 6), as TFLite's `ReluX`.
pub fn relu(x: Q, y: Q, min: f32, max: f32) -> [i8; 256] {
    let requant = Requant::from_f64(f64::from(x.scale) / f64::from(y.scale));
    let lo = i32::from(quantize_i8(min, y.scale, y.zero_point));
    let hi = if max.is_finite() { i32::from(quantize_i8(max, y.scale, y.zero_point)) } else { 127 };
    table(|q| y.zero_point.wrapping_add(requant.apply(q - x.zero_point)).clamp(lo, hi))
}

/// LOGISTIC: `1 / (1 + e^-x)`, rounded once.
pub fn logistic(x: Q, y: Q) -> [i8; 256] {
    build_table(|v| 1.0 / (1.0 + (-v).exp()), x.scale, x.zero_point, y.scale, y.zero_point)
}

/// TANH, rounded once.
pub fn tanh(x: Q, y: Q) -> [i8; 256] {
    build_table(f64::tanh, x.scale, x.zero_point, y.scale, y.zero_point)
}

/// HARD_SWISH: `x · relu6(x + 3) / 6`, rounded once.
pub fn hard_swish(x: Q, y: Q) -> [i8; 256] {
    build_table(|v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0, x.scale, x.zero_point, y.scale, y.zero_point)
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
}
