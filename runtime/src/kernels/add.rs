//! Elementwise ADD with numpy broadcasting: f32, and int8 bit-exact with TFLite's reference.

use super::broadcast::broadcast_binary;
use super::{ClampF32, ClampI8, Input};
use crate::quant::Requant;

/// Left shift TFLite applies to int8 ADD inputs before rescaling them to a common scale.
const INT8_LEFT_SHIFT: i32 = 20;

/// Quantization of a TFLite int8 ADD; the offsets are the negated input zero points and the
/// output zero point.
#[derive(Clone, Copy, Debug)]
pub struct AddParams {
    /// Negated zero point of `a`.
    pub a_offset: i32,
    /// Negated zero point of `b`.
    pub b_offset: i32,
    /// Zero point of the output.
    pub output_offset: i32,
    /// Headroom shift applied to both offset inputs (20 for int8).
    pub left_shift: i32,
    /// Rescales shifted `a` to the common scale (`a_scale / (2 × max scale)`).
    pub a: Requant,
    /// Rescales shifted `b` to the common scale (`b_scale / (2 × max scale)`).
    pub b: Requant,
    /// Rescales the sum to the output (`2 × max scale / (2^left_shift × out_scale)`).
    pub output: Requant,
    /// Fused activation bounds.
    pub act: ClampI8,
}

impl AddParams {
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
        let twice_max = 2.0 * f64::from(a_scale.max(b_scale));
        let shifted_out = f64::from(1u32 << INT8_LEFT_SHIFT) * f64::from(out_scale);
        Self {
            a_offset: a_zero_point.wrapping_neg(),
            b_offset: b_zero_point.wrapping_neg(),
            output_offset: out_zero_point,
            left_shift: INT8_LEFT_SHIFT,
            // A zero or non-finite ratio encodes as a zero factor, never a panic.
            a: Requant::from_f64(f64::from(a_scale) / twice_max),
            b: Requant::from_f64(f64::from(b_scale) / twice_max),
            output: Requant::from_f64(twice_max / shifted_out),
            act,
        }
    }

    /// Adds one pair of quantized values exactly as TFLite's reference int8 ADD.
    #[inline(always)]
    fn add(&self, a: i8, b: i8) -> i8 {
        let scale = 1i32.wrapping_shl(self.left_shift as u32);
        let a = self.a.apply(i32::from(a).wrapping_add(self.a_offset).wrapping_mul(scale));
        let b = self.b.apply(i32::from(b).wrapping_add(self.b_offset).wrapping_mul(scale));
        let sum = self.output.apply(a.wrapping_add(b));
        self.act.apply(sum.wrapping_add(self.output_offset))
    }
}

/// f32 `out = act(a + b)` with numpy broadcasting; in place over an operand with the output's shape.
pub fn add_f32(
    out_shape: &[usize],
    a_shape: &[usize],
    a: Input<f32>,
    b_shape: &[usize],
    b: Input<f32>,
    act: ClampF32,
    out: &mut [f32],
) {
    broadcast_binary(out_shape, a_shape, a, b_shape, b, out, |x, y| act.apply(x + y));
}

/// int8 `out = act(a + b)` with numpy broadcasting, bit-exact with TFLite's reference ADD;
/// in place over an operand with the output's shape.
pub fn add_i8(
    out_shape: &[usize],
    a_shape: &[usize],
    a: Input<i8>,
    b_shape: &[usize],
    b: Input<i8>,
    p: &AddParams,
    out: &mut [i8],
) {
    broadcast_binary(out_shape, a_shape, a, b_shape, b, out, |x, y| p.add(x, y));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::broadcast::reference::*;
    use proptest::prelude::*;

    /// The real operation the kernels approximate.
    fn real(x: f64, y: f64) -> f64 {
        x + y
    }

    /// Runs f32 ADD and checks it against the f64 reference.
    fn run_f32(shapes: [&[usize]; 3], a: &[f32], b: &[f32], act: ClampF32) {
        let kernel = |a, b, out: &mut [f32]| add_f32(shapes[0], shapes[1], a, shapes[2], b, act, out);
        let mut out = vec![f32::NAN; shapes[0].iter().product()];
        kernel(Input::Separate(a), Input::Separate(b), &mut out);
        check_f32(shapes, (a, b), act, real, &out);
        check_in_place(shapes, (a, b), &out, kernel);
    }

    /// Runs int8 ADD, checks it within 1 LSB of the f64 reference and returns its output.
    fn run_i8(shapes: [&[usize]; 3], a: &[i8], b: &[i8], q: Quant, act: ClampI8) -> Vec<i8> {
        let p = AddParams::new(q.a.0, q.a.1, q.b.0, q.b.1, q.out.0, q.out.1, act);
        let kernel = |a, b, out: &mut [i8]| add_i8(shapes[0], shapes[1], a, shapes[2], b, &p, out);
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
        add_f32(&[3, 2], &[3, 2], Input::Separate(&a), &[1, 2], Input::Separate(&b), relu6, &mut out);
        assert_eq!(out, [0.0, 3.0, 3.5, 6.0, 1.5, 1.5]);
        let (a, b) = (ramp_f32(4, 1.0, 1.0), ramp_f32(24, -5.0, 0.5));
        run_f32([NHWC, CHANNEL, NHWC], &a, &b, relu6);
    }

    #[test]
    fn i8_hand_checked() {
        // Equal scales, zero points -3 and 7, output zero point 0: q = (a + 3) + (b - 7).
        let p = AddParams::new(0.5, -3, 0.5, 7, 0.5, 0, ClampI8::FULL);
        let mut out = [0i8; 4];
        add_i8(&[4], &[4], Input::Separate(&[-3, 10, 100, -128]), &[1], Input::Separate(&[7]), &p, &mut out);
        assert_eq!(out, [0, 13, 103, -125]);
        add_i8(
            &[4],
            &[4],
            Input::Separate(&[120, -128, 0, 5]),
            &[4],
            Input::Separate(&[27, -120, 0, 5]),
            &p,
            &mut out,
        );
        assert_eq!(out, [127, -128, -4, 6]);
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
        // Large values in a small output scale saturate at both ends.
        let tight = Quant { a: (0.1, 0), b: (0.1, 0), out: (0.01, 0) };
        let (a, b) = ([100, -100, 1, 0], [27, -28, 2, 0]);
        let out = run_i8([&[4], &[4], &[4]], &a, &b, tight, ClampI8::FULL);
        assert_eq!(out, [127, -128, 30, 0]);
    }

    #[test]
    fn i8_fused_clamp() {
        let q = Quant { a: (0.02, 7), b: (0.03, -3), out: (0.04, -20) };
        // ReLU capped at 4.0 on an output with zero point -20 and scale 0.04: [-20, 80].
        let relu4 = ClampI8 { min: -20, max: 80 };
        let (a, b) = (ramp_i8(4, 127, -70), ramp_i8(24, -128, 11));
        let out = run_i8([NHWC, CHANNEL, NHWC], &a, &b, q, relu4);
        assert!(out.iter().all(|&v| (-20..=80).contains(&v)));
        assert!(out.contains(&-20) && out.contains(&80));
    }

    #[test]
    fn hostile_params_do_not_panic() {
        let mut out = [0i8; 3];
        let unit = AddParams::new(1.0, 0, 1.0, 0, 1.0, 0, ClampI8::FULL);
        for p in [
            AddParams::new(0.0, 0, 0.0, 0, 0.0, 0, ClampI8::FULL),
            AddParams::new(f32::NAN, i32::MIN, f32::INFINITY, i32::MAX, 1e-30, i32::MAX, ClampI8::FULL),
            AddParams { left_shift: 99, ..unit },
            AddParams { left_shift: -5, a_offset: i32::MAX, ..unit },
        ] {
            add_i8(
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
