//! Standalone activation functions: f32 unary ops computed with `libm` (so every target
//! produces the same bits) and the int8 kernel, a 256-entry lookup table built offline from
//! the same functions in f64. Both run in place when their input is the output buffer.

use super::{ClampF32, Input};

/// An f32 elementwise activation, with ONNX semantics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryF32 {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `x` for `x ≥ 0`, else `alpha × x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `x × clamp(x + 3, 0, 6) / 6`.
    HardSwish,
    /// `clamp(alpha × x + beta, 0, 1)`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

impl UnaryF32 {
    /// Evaluates the function in f32.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Self::Clip { min, max } => ClampF32 { min, max }.apply(x),
            Self::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            // `x + 3` is exact near the kink at -3, so this form keeps full relative accuracy.
            Self::HardSwish => x * ClampF32 { min: 0.0, max: 6.0 }.apply(x + 3.0) / 6.0,
            // A fused multiply-add rounds once, so there is no cancellation error near 0.
            Self::HardSigmoid { alpha, beta } => {
                ClampF32 { min: 0.0, max: 1.0 }.apply(libm::fmaf(alpha, x, beta))
            }
            Self::Sigmoid => 1.0 / (1.0 + libm::expf(-x)),
            Self::Tanh => libm::tanhf(x),
        }
    }

    /// Evaluates the same function in f64, used by the tool to build int8 tables.
    pub fn apply_f64(self, x: f64) -> f64 {
        let clamp = |v: f64, min: f64, max: f64| {
            if v < min {
                min
            } else if v > max {
                max
            } else {
                v
            }
        };
        match self {
            Self::Relu => clamp(x, 0.0, f64::INFINITY),
            Self::Clip { min, max } => clamp(x, f64::from(min), f64::from(max)),
            Self::LeakyRelu { alpha } => {
                if x < 0.0 {
                    f64::from(alpha) * x
                } else {
                    x
                }
            }
            Self::HardSwish => x * clamp(x + 3.0, 0.0, 6.0) / 6.0,
            Self::HardSigmoid { alpha, beta } => clamp(f64::from(alpha) * x + f64::from(beta), 0.0, 1.0),
            Self::Sigmoid => 1.0 / (1.0 + libm::exp(-x)),
            Self::Tanh => libm::tanh(x),
        }
    }
}

/// Applies `op` to every element of `x`.
pub fn unary_f32(op: UnaryF32, x: Input<f32>, out: &mut [f32]) {
    x.map(out, |v| op.apply(v));
}

/// int8 unary op through a 256-entry table indexed by the input byte (`table[x as u8 as usize]`).
pub fn lookup_i8(table: &[i8; 256], x: Input<i8>, out: &mut [i8]) {
    x.map(out, |v| table[v as u8 as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::build_table;
    use proptest::prelude::*;

    /// Every op with typical parameters.
    const OPS: [UnaryF32; 8] = [
        UnaryF32::Relu,
        UnaryF32::Clip { min: 0.0, max: 6.0 },
        UnaryF32::Clip { min: -1.5, max: 0.75 },
        UnaryF32::LeakyRelu { alpha: 0.1 },
        UnaryF32::HardSwish,
        UnaryF32::HardSigmoid { alpha: 0.2, beta: 0.5 },
        UnaryF32::Sigmoid,
        UnaryF32::Tanh,
    ];

    /// Independent f64 definitions, written from the ONNX operator specs.
    fn reference(op: UnaryF32, x: f64) -> f64 {
        match op {
            UnaryF32::Relu => x.max(0.0),
            UnaryF32::Clip { min, max } => x.max(min.into()).min(max.into()),
            UnaryF32::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    x * f64::from(alpha)
                }
            }
            UnaryF32::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            UnaryF32::HardSigmoid { alpha, beta } => (x * f64::from(alpha) + f64::from(beta)).clamp(0.0, 1.0),
            UnaryF32::Sigmoid => {
                // Written so that the exponential never overflows nor cancels.
                let e = (-x.abs()).exp();
                if x >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                }
            }
            UnaryF32::Tanh => x.tanh(),
        }
    }

    /// `unary_f32` of `xs`, after checking that running it in place gives the same bits.
    fn unary(op: UnaryF32, xs: &[f32]) -> Vec<f32> {
        let mut out = vec![f32::NAN; xs.len()];
        unary_f32(op, Input::Separate(xs), &mut out);
        let mut in_place = xs.to_vec();
        unary_f32(op, Input::InPlace, &mut in_place);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&in_place), bits(&out), "{op:?} in place");
        out
    }

    /// `lookup_i8` of `xs`, after checking that running it in place gives the same bytes.
    fn lookup(table: &[i8; 256], xs: &[i8]) -> Vec<i8> {
        let mut out = vec![0; xs.len()];
        lookup_i8(table, Input::Separate(xs), &mut out);
        let mut in_place = xs.to_vec();
        lookup_i8(table, Input::InPlace, &mut in_place);
        assert_eq!(in_place, out, "in place");
        out
    }

    /// Checks f32 `unary_f32` against the f64 reference within 1e-6 relative (plus the f32
    /// subnormal range, where f32 cannot carry relative precision).
    fn check_f32(op: UnaryF32, xs: &[f32]) {
        let out = unary(op, xs);
        for (&x, &got) in xs.iter().zip(&out) {
            let want = reference(op, f64::from(x));
            let tol = want.abs() * 1e-6 + f64::from(f32::MIN_POSITIVE);
            assert!((f64::from(got) - want).abs() <= tol, "{op:?}({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn f32_ops_match_f64_on_a_grid_and_extremes() {
        let mut xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.025).collect();
        xs.extend([-3.0, 3.0, -1e-30, 1e-30, 0.0, -0.0, -100.0, 100.0, -1e6, 1e6, 2.5, -2.5]);
        for op in OPS {
            check_f32(op, &xs);
        }
    }

    #[test]
    fn f32_hand_checked() {
        let xs = [-4.0, -3.0, -1.0, 0.0, 1.0, 3.0, 8.0];
        assert_eq!(unary(UnaryF32::Relu, &xs), [0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 8.0]);
        assert_eq!(
            unary(UnaryF32::Clip { min: -1.0, max: 6.0 }, &xs),
            [-1.0, -1.0, -1.0, 0.0, 1.0, 3.0, 6.0]
        );
        assert_eq!(unary(UnaryF32::LeakyRelu { alpha: 0.5 }, &xs), [-2.0, -1.5, -0.5, 0.0, 1.0, 3.0, 8.0]);
        assert_eq!(unary(UnaryF32::HardSwish, &xs), [0.0, 0.0, -1.0 / 3.0, 0.0, 2.0 / 3.0, 3.0, 8.0]);
        let hard_sigmoid = UnaryF32::HardSigmoid { alpha: 0.25, beta: 0.5 };
        assert_eq!(unary(hard_sigmoid, &xs), [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]);
        assert_eq!(UnaryF32::Sigmoid.apply(0.0), 0.5);
        assert_eq!(UnaryF32::Tanh.apply(0.0), 0.0);
        assert!(UnaryF32::Relu.apply(f32::NAN).is_nan());
    }

    /// Builds the op's int8 table and checks `lookup_i8` on every input byte against
    /// `round(f(x) / s) + zp` computed from the f64 reference, with 0 LSB tolerance.
    fn check_i8(op: UnaryF32, input: (f32, i32), output: (f32, i32)) {
        let table = build_table(|x| op.apply_f64(x), input.0, input.1, output.0, output.1);
        let xs: Vec<i8> = (-128..=127).collect();
        let out = lookup(&table, &xs);
        for (&q, &got) in xs.iter().zip(&out) {
            let x = f64::from(i32::from(q) - input.1) * f64::from(input.0);
            let y = reference(op, x) / f64::from(output.0);
            let want = (y.round() as i32 + output.1).clamp(-128, 127);
            assert_eq!(i32::from(got), want, "{op:?} q={q} x={x} y={y}");
        }
    }

    #[test]
    fn i8_tables_match_f64_exactly() {
        for op in OPS {
            check_i8(op, (0.05, -3), (0.03, 7));
            check_i8(op, (0.1, 20), (1.0 / 128.0, -128));
            check_i8(op, (0.02, 0), (0.05, 0));
        }
    }

    #[test]
    fn i8_table_saturates_and_indexes_by_byte() {
        // Identity-like ReLU with a much finer output scale saturates at 127; Tanh reaches -1.
        let relu = build_table(|x| UnaryF32::Relu.apply_f64(x), 0.1, 0, 0.01, -128);
        assert_eq!(lookup(&relu, &[-128, 0, 2, 127]), [-128, -128, -108, 127]);
        let tanh = build_table(|x| UnaryF32::Tanh.apply_f64(x), 0.1, 0, 1.0 / 128.0, 0);
        assert_eq!(lookup(&tanh, &[-128, 0, 127, 1]), [-128, 0, 127, 13]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn random_params_match_f64(
            which in 0usize..OPS.len(),
            alpha in 0.01f32..1.0,
            beta in -1.0f32..1.0,
            lo in -3.0f32..0.0,
            in_scale in 0.005f32..0.2,
            out_scale in 0.005f32..0.2,
            zps in prop::array::uniform2(-30i32..30),
            xs in prop::collection::vec(-50.0f32..50.0, 1..40),
        ) {
            let op = match OPS[which] {
                UnaryF32::Clip { .. } => UnaryF32::Clip { min: lo, max: lo + 6.0 * alpha },
                UnaryF32::LeakyRelu { .. } => UnaryF32::LeakyRelu { alpha },
                UnaryF32::HardSigmoid { .. } => UnaryF32::HardSigmoid { alpha, beta },
                other => other,
            };
            check_f32(op, &xs);
            check_i8(op, (in_scale, zps[0]), (out_scale, zps[1]));
        }
    }
}
