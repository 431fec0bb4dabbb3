//! int8 kernels for Cortex-M cores with the DSP extension (Armv7E-M: M4, M7; Armv8-M Mainline
//! with DSP: M33, M55), bit-exact with the reference kernels.
//!
//! LLVM does not emit the dual 16-bit multiply-accumulate `SMLAD` from plain Rust, so the inner
//! product is written with it by hand: four int8 pairs per step, loaded as two words,
//! sign-extended to 16-bit lanes (`SXTAB16` also adds the input offset to both lanes of the
//! activations), and accumulated with two `SMLAD`s. Each lane product fits 16 × 16 bits: the
//! offset activation `x − zero_point` lies in −255..=255 and a weight in −128..=127; `SMLAD`
//! adds in wrapping 32-bit arithmetic, as the reference does.

use super::conv2d::conv2d_i8_with;
use super::fully_connected::fully_connected_i8_with;
use super::{ConvGeometry, FcGeometry, Int8Params};

/// `acc + Σ (x[i] + input_offset) × w[i]` over the common length, with `SMLAD` (`input_offset`
/// is the negated input zero point, in −127..=128).
#[inline(always)]
pub fn dot_i8(acc: i32, x: &[i8], w: &[i8], input_offset: i32) -> i32 {
    let n = x.len().min(w.len());
    let ((x4, x_tail), (w4, w_tail)) = (x[..n].as_chunks::<4>(), w[..n].as_chunks::<4>());
    // The offset in both 16-bit lanes.
    let offsets = (input_offset as u32 & 0xFFFF).wrapping_mul(0x0001_0001);
    let mut acc = acc;
    for (xq, wq) in x4.iter().zip(w4) {
        let xv = u32::from_le_bytes(xq.map(|v| v as u8));
        let wv = u32::from_le_bytes(wq.map(|v| v as u8));
        // SAFETY: register-only DSP instructions (no memory access, no stack, no flags read),
        // available on every core this module is compiled for (`ember_arm_dsp`).
        unsafe {
            core::arch::asm!(
                "sxtab16 {xe}, {off}, {xv}",
                "sxtab16 {xo}, {off}, {xv}, ror #8",
                "sxtb16 {we}, {wv}",
                "sxtb16 {wo}, {wv}, ror #8",
                "smlad {acc}, {xe}, {we}, {acc}",
                "smlad {acc}, {xo}, {wo}, {acc}",
                acc = inout(reg) acc,
                xv = in(reg) xv,
                wv = in(reg) wv,
                off = in(reg) offsets,
                xe = out(reg) _,
                xo = out(reg) _,
                we = out(reg) _,
                wo = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
    }
    for (&x, &w) in x_tail.iter().zip(w_tail) {
        acc = acc.wrapping_add(i32::from(x).wrapping_add(input_offset).wrapping_mul(i32::from(w)));
    }
    acc
}

/// [`super::fully_connected::fully_connected_i8`] with the `SMLAD` inner product.
pub fn fully_connected_i8(g: &FcGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let offset = q.input_zero_point.wrapping_neg();
    fully_connected_i8_with(g, q, x, w, bias, out, |acc, xs, ws| dot_i8(acc, xs, ws, offset));
}

/// [`super::conv2d::conv2d_i8`] with the `SMLAD` inner product over each run of taps; a 1×1
/// convolution with stride 1 and no padding is a fully connected layer over the pixels.
pub fn conv2d_i8(g: &ConvGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let offset = q.input_zero_point.wrapping_neg();
    let dot = |acc, xs: &[i8], ws: &[i8]| dot_i8(acc, xs, ws, offset);
    if g.kernel == [1, 1] && g.stride == [1, 1] && g.pad == [0, 0] {
        let fc = FcGeometry { rows: g.input.len() / g.input.c.max(1), depth: g.input.c, units: g.output.c };
        fully_connected_i8_with(&fc, q, x, w, bias, out, dot);
    } else {
        conv2d_i8_with(g, q, x, w, bias, out, dot);
    }
}
