//! int8 kernels for Cortex-M cores with the DSP extension (Armv7E-M: M4, M7; Armv8-M Mainline
//! with DSP: M33, M55), bit-exact with the reference kernels.
//!
//! LLVM does not emit the dual 16-bit multiply-accumulate `SMLAD` from plain Rust, so the inner
//! products are written with it by hand: int8 words are sign-extended to 16-bit lanes (`SXTB16`;
//! `SXTAB16` also adds the input offset to both lanes of the activations) and two lane pairs are
//! multiplied and accumulated per `SMLAD`. Each lane product fits 16 × 16 bits: the offset
//! activation `x − zero_point` lies in −255..=255 and a weight in −128..=127; `SMLAD` adds in
//! wrapping 32-bit arithmetic, as the reference does.
//!
//! - [`matrix`]: convolutions and fully connected layers as matrix products of 16-bit activation
//!   columns (two output channels × two columns per pass; one column for a single-row fully
//!   connected layer, four units per pass);
//! - [`depthwise`]: depthwise convolutions, four channels per pass;
//! - [`output`]: the requantization, with a short exact path where the accumulators are bounded;
//! - [`add`]: ADD of same-shape operands, its three requantizations with `SMMULR`;
//! - [`pool`]: average pooling, four channels' window sums per `SXTAB16` pair;
//! - [`scan`]: the drift telemetry's scans (values equal to -128 or 127, the input range).

/// The short output stage ([`output`]) of the accumulator in register `$acc`, with the
/// multiplier in `$m` and `e − 1` in `$e1` (r12: 1 + 2 × output zero point):
/// `(((SMMULR(2·acc, m) + sign) >> (e − 1)) + r12) >> 1`, saturated to int8 (`SSAT` shifts).
#[rustfmt::skip]
macro_rules! rescale {
    ($acc:literal, $m:literal, $e1:literal) => {
        concat!(
            "lsl ", $acc, ", ", $acc, ", #1\n",
            "smmulr ", $acc, ", ", $acc, ", ", $m, "\n",
            "add ", $acc, ", ", $acc, ", ", $acc, ", asr #31\n",
            "asr ", $acc, ", ", $acc, ", ", $e1, "\n",
            "add ", $acc, ", r12\n",
            "ssat ", $acc, ", #8, ", $acc, ", asr #1",
        )
    };
}

/// [`rescale!`] rounding once (`SMMUL`, no sign correction; see [`output`]).
#[rustfmt::skip]
macro_rules! rescale_once {
    ($acc:literal, $m:literal, $e1:literal) => {
        concat!(
            "lsl ", $acc, ", ", $acc, ", #1\n",
            "smmul ", $acc, ", ", $acc, ", ", $m, "\n",
            "asr ", $acc, ", ", $acc, ", ", $e1, "\n",
            "add ", $acc, ", r12\n",
            "ssat ", $acc, ", #8, ", $acc, ", asr #1",
        )
    };
}

/// Packs the int8 values of r0–r3 into r0's bytes (r0 lowest) and clamps each byte to the
/// activation bounds, given in every byte of `$min` (r5) and `$max` (r6); `$t` (r4) is scratch.
#[rustfmt::skip]
macro_rules! clamp4 {
    () => {
        clamp4!("r4", "r5", "r6")
    };
    ($t:literal, $min:literal, $max:literal) => {
        concat!(
            "bfi r0, r1, #8, #8\n",
            "bfi r0, r2, #16, #8\n",
            "bfi r0, r3, #24, #8\n",
            "ssub8 ", $t, ", r0, ", $min, "\n",
            "sel r0, r0, ", $min, "\n",
            "ssub8 ", $t, ", ", $max, ", r0\n",
            "sel r0, r0, ", $max,
        )
    };
}

mod add;
mod depthwise;
mod matrix;
mod output;
mod pool;
mod scan;

pub use add::add_i8;
pub use depthwise::{depthwise_conv2d_i8, depthwise_conv2d_i8_laid_out};
pub use matrix::{conv2d_i8, conv2d_i8_laid_out, fully_connected_i8, fully_connected_i8_laid_out};
pub use pool::average_pool_i8;
pub use scan::{count_equal, range_i8};

/// The offset in both 16-bit lanes, for `SXTAB16`.
#[inline(always)]
fn lanes(input_offset: i32) -> u32 {
    (input_offset as u32 & 0xFFFF).wrapping_mul(0x0001_0001)
}

/// Four int8 values as one little-endian word (one `LDR`: Cortex-M loads unaligned words).
#[inline(always)]
fn word(v: &[i8; 4]) -> u32 {
    u32::from_le_bytes(v.map(|b| b as u8))
}

/// The up to four int8 values of `v` as one word, padded with `fill`.
#[inline(always)]
fn padded_word(v: &[i8], fill: i8) -> u32 {
    word(&match *v {
        [] => [fill; 4],
        [a] => [a, fill, fill, fill],
        [a, b] => [a, b, fill, fill],
        [a, b, c] => [a, b, c, fill],
        [a, b, c, d, ..] => [a, b, c, d],
    })
}

/// The activations `xv` plus the offset, sign-extended to 16-bit lanes: (bytes 0 and 2, bytes 1
/// and 3).
#[inline(always)]
fn extend_activations(xv: u32, offsets: u32) -> (u32, u32) {
    let (xe, xo);
    // SAFETY: register-only DSP instructions (no memory access, no stack, no flags read),
    // available on every core this module is compiled for (`ember_arm_dsp`).
    unsafe {
        core::arch::asm!(
            "sxtab16 {xe}, {off}, {xv}",
            "sxtab16 {xo}, {off}, {xv}, ror #8",
            xv = in(reg) xv,
            off = in(reg) offsets,
            xe = out(reg) xe,
            xo = out(reg) xo,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (xe, xo)
}

/// `acc` plus the four products of extended activations (`xe`, `xo`, as [`extend_activations`]
/// makes them) and the int8 weight word `wv`.
#[inline(always)]
fn smlad_word(acc: i32, xe: u32, xo: u32, wv: u32) -> i32 {
    let mut acc = acc;
    // SAFETY: register-only DSP instructions, as in `extend_activations`.
    unsafe {
        core::arch::asm!(
            "sxtb16 {t}, {wv}",
            "smlad {acc}, {xe}, {t}, {acc}",
            "sxtb16 {t}, {wv}, ror #8",
            "smlad {acc}, {xo}, {t}, {acc}",
            acc = inout(reg) acc,
            xe = in(reg) xe,
            xo = in(reg) xo,
            wv = in(reg) wv,
            t = out(reg) _,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}
