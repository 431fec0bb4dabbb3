//! Elementwise MUL with numpy broadcasting: f32, and int8 bit-exact with TFLite's reference.

use super::broadcast::broadcast_binary;
use super::{ClampF32, ClampI8, Input};
use crate::quant::Requant;

/// Quantization of a TFLite int8 MUL; the offsets are the negated input zero points and the
/// output zero point.
#[derive(Clone, Copy, Debug)]
pub struct MulParams {
    /// Negated zero point of `a`.
    pub a_offset: i32,
    /// Negated zero point of `b`.
    pub b_offset: i32,
    /// Zero point of the output.
    pub output_offset: i32,
    /// Rescales the product to the output (`a_scale × b_scale / out_scale`).
    pub output: Requant,
    /// Fused activation bounds.
    pub act: ClampI8,
}

impl MulParams {
    /// Computes the params from real scales as TFLite's `Prepare` does.
    pub fn new(
        a_scale: f32,
        a_zero_point: i32,
        b_scale: f32,
        b_zero_point: i32,
        out_scale: f32,
        out_zero_point: i32,
        act: ClampI8,
    ) -> Self {
        let real = f64::from(a_scale) * f64::from(b_scale) / f64::from(out_scale);
        Self {
            a_offset: a_zero_point.wrapping_neg(),
            b_offset: b_zero_point.wrapping_neg(),
            output_offset: out_zero_point,
            // A zero or non-finite ratio encodes as a zero factor, never a panic.
            output: Requant::from_f64(real),
            act,
        }
    }

    /// Multiplies one pair of quantized values exactly as TFLite's reference int8 MUL.
    #[inline(always)]
    fn mul(&self, a: i8, b: i8) -> i8 {
        let a = i32::from(a).wrapping_add(self.a_offset);
        let b = i32::from(b).wrapping_add(self.b_offset);
        let product = self.output.apply(a.wrapping_mul(b));
        self.act.apply(product.wrapping_add(self.output_offset))
    }
}

/// f32 `out = act(a × b)` with numpy broadcasting; in place over an operand with the output's shape.
pub fn mul_f32(
    out_shape: &[usize],
    a_shape: &[usize],
    a: Input<f32>,
    b_shape: &[usize],
    b: Input<f32>,
    act: ClampF32,
    out: &mut [f32],
) {
    broadcast_binary(out_shape, a_shape, a, b_shape, b, out, |x, y| act.apply(x * y));
}

/// int8 `out = act(a × b)` with numpy broadcasting, bit-exact with TFLite's reference MUL;
/// in place over an operand with the output's shape.
pub fn mul_i8(
    out_shape: &[usize],
    a_shape: &[usize],
    a: Input<i8>,
    b_shape: &[usize],
    b: Input<i8>,
    p: &MulParams,
    out: &mut [i8],
) {
    broadcast_binary(out_shape, a_shape, a, b_shape, b, out, |x, y| p.mul(x, y));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::broadcast::reference::*;
    use proptest::prelude::*;

    /// The real operation the kernels approximate.
    fn real(x: f64, y: f64) -> f64 {
        x * y
    }

    /// Runs f32 MUL and checks it against the f64 reference.
    fn run_f32(shapes: [&[usize]; 3], a: &[f32], b: &[f32], act: ClampF32) {
        let kernel = |a, b, out: &mut [f32]| mul_f32(shapes[0], shapes[1], a, shapes[2], b, act, out);
        let mut out = vec![f32::NAN; shapes[0].iter().product()];
        kernel(Input::Separate(a), Input::Separate(b), &mut out);
        check_f32(shapes, (a, b), act, real, &out);
        check_in_place(shapes, (a, b), &out, kernel);
    }

    /// Runs int8 MUL, checks it within 1 LSB of the f64 reference and returns its output.
    fn run_i8(shapes: [&[usize]; 3], a: &[i8], b: &[i8], q: Quant, act: ClampI8) -> Vec<i8> {
        let p = MulParams::new(q.a.0, q.a.1, q.b.0, q.b.1, q.out.0, q.out.1, act);
        let kernel = |a, b, out: &mut [i8]| mul_i8(shapes[0], shapes[1], a, shapes[2], b, &p, out);
        let mut out = vec![0i8; shapes[0].iter().product()];
        kernel(Input::Separate(a), Input::Separate(b), &mut out);
        check_i8(shapes, (a, b), q, act, real, &out);
        check_in_place(shapes, (a, b), &out, kernel);
        out
    }

    const NHWC: &[usize] = &[1, 2, 3, 4];
    const CHANNEL: &[usize] = &[1, 1, 1, 4];
    const SCALAR: &[usize] = &[1, 1, 1, 1];

    #[test]
    fn f32_broadcasts_in_both_directions() {
        let full = ramp_f32(24, -3.0, 0.37);
        let chan = ramp_f32(4, 10.0, -1.5);
        run_f32([NHWC, NHWC, NHWC], &full, &full, ClampF32::NONE);
        run_f32([NHWC, CHANNEL, NHWC], &chan, &full, ClampF32::NONE);
        run_f32([NHWC, NHWC, CHANNEL], &full, &chan, ClampF32::NONE);
        run_f32([NHWC, SCALAR, NHWC], &[0.25], &full, ClampF32::NONE);
        run_f32([NHWC, NHWC, SCALAR], &full, &[-0.25], ClampF32::NONE);
        let (a, b) = ([1.0, 2.0], [10.0, 20.0, 30.0]);
        run_f32([&[2, 3], &[2, 1], &[1, 3]], &a, &b, ClampF32::NONE);
    }

    #[test]
    fn f32_hand_checked_with_fused_clamp() {
        let relu6 = ClampF32 { min: 0.0, max: 6.0 };
        let mut out = [0.0f32; 6];
        let (a, b) = ([-3.0, 1.0, 2.5, 9.0, 0.5, -0.5], [1.0, 2.0]);
        mul_f32(&[3, 2], &[3, 2], Input::Separate(&a), &[1, 2], Input::Separate(&b), relu6, &mut out);
        assert_eq!(out, [0.0, 2.0, 2.5, 6.0, 0.5, 0.0]);
        let (a, b) = (ramp_f32(4, 1.0, 1.0), ramp_f32(24, -5.0, 0.5));
        run_f32([NHWC, CHANNEL, NHWC], &a, &b, relu6);
    }

    #[test]
    fn i8_hand_checked() {
        // Zero points -3 and 7, output scale = product of input scales: q = (a + 3) × (b − 7).
        let p = MulParams::new(0.5, -3, 0.25, 7, 0.125, 0, ClampI8::FULL);
        let mut out = [0i8; 4];
        mul_i8(&[4], &[4], Input::Separate(&[-3, 2, -13, 100]), &[1], Input::Separate(&[10]), &p, &mut out);
        assert_eq!(out, [0, 15, -30, 127]);
        mul_i8(
            &[4],
            &[4],
            Input::Separate(&[7, -128, 0, 1]),
            &[4],
            Input::Separate(&[-128, 127, 7, 3]),
            &p,
            &mut out,
        );
        assert_eq!(out, [-128, -128, 0, -16]);
    }

    #[test]
    fn i8_broadcasts_with_zero_points_and_saturation() {
        let q = Quant { a: (0.05, -3), b: (0.11, 7), out: (0.08, -5) };
        let full = ramp_i8(24, -128, 11);
        let chan = ramp_i8(4, 120, 61);
        run_i8([NHWC, NHWC, NHWC], &full, &full, q, ClampI8::FULL);
        run_i8([NHWC, CHANNEL, NHWC], &chan, &full, q, ClampI8::FULL);
        run_i8([NHWC, NHWC, CHANNEL], &full, &chan, q, ClampI8::FULL);
        run_i8([NHWC, SCALAR, NHWC], &[100], &full, q, ClampI8::FULL);
        run_i8([NHWC, NHWC, SCALAR], &full, &[-100], q, ClampI8::FULL);
        // Large products saturate at both ends.
        let out = run_i8([&[3], &[3], &[1]], &[127, -128, 0], &[127], q, ClampI8::FULL);
        assert_eq!(out, [127, -128, 20]);
    }

    #[test]
    fn i8_fused_clamp() {
        let q = Quant { a: (0.02, 7), b: (0.03, -3), out: (0.01, -20) };
        // ReLU capped at 1.0 on an output with zero point -20 and scale 0.01: [-20, 80].
        let relu1 = ClampI8 { min: -20, max: 80 };
        let (a, b) = (ramp_i8(4, 127, -70), ramp_i8(24, -128, 11));
        let out = run_i8([NHWC, CHANNEL, NHWC], &a, &b, q, relu1);
        assert!(out.iter().all(|&v| (-20..=80).contains(&v)));
        assert!(out.contains(&-20) && out.contains(&80));
    }

    #[test]
    fn hostile_params_do_not_panic() {
        let mut out = [0i8; 3];
        for p in [
            MulParams::new(0.0, 0, 0.0, 0, 0.0, 0, ClampI8::FULL),
            MulParams::new(f32::NAN, i32::MIN, f32::INFINITY, i32::MAX, 1e-30, i32::MAX, ClampI8::FULL),
            MulParams::new(1e30, i32::MIN, 1e30, i32::MIN, 1e-30, 0, ClampI8::FULL),
        ] {
            mul_i8(
                &[3],
                &[3],
                Input::Separate(&[-128, 0, 127]),
                &[3],
                Input::Separate(&[127, 0, -128]),
                &p,
                &mut out,
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_shapes_match_f64(
            dims in prop::collection::vec(1usize..4, 1..=6),
            mask in any::<u32>(),
            seeds in any::<(u64, u64)>(),
            scales in prop::array::uniform3(0.005f32..0.5),
            zps in prop::array::uniform3(-20i32..20),
        ) {
            let (o, a_shape, b_shape) = shapes(&dims, mask);
            let shapes = [&o[..], &a_shape[..], &b_shape[..]];
            let a = noise_i8(a_shape.iter().product(), seeds.0);
            let b = noise_i8(b_shape.iter().product(), seeds.1);
            let q = Quant {
                a: (scales[0], zps[0]),
                b: (scales[1], zps[1]),
                out: (scales[2], zps[2]),
            };
            run_i8(shapes, &a, &b, q, ClampI8::FULL);
            let af: Vec<f32> = a.iter().map(|&v| f32::from(v) * 0.1).collect();
            let bf: Vec<f32> = b.iter().map(|&v| f32::from(v) * 0.3).collect();
            run_f32(shapes, &af, &bf, ClampF32::NONE);
        }
    }
}
