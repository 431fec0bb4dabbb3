//! int8 kernels for Cortex-M cores with the DSP extension (Armv7E-M: M4, M7; Armv8-M Mainline
//! with DSP: M33, M55), bit-exact with the reference kernels.
//!
//! LLVM does not emit the dual 16-bit multiply-accumulate `SMLAD` from plain Rust, so the inner
//! product is written with it by hand: four int8 pairs per step, loaded as two words,
//! sign-extended to 16-bit lanes (`SXTAB16` also adds the input offset to both lanes of the
//! activations), and accumulated with two `SMLAD`s. Each lane product fits 16 × 16 bits: the
//! offset activation `x − zero_point` lies in −255..=255 and a weight in −128..=127; `SMLAD`
//! adds in wrapping 32-bit arithmetic, as the reference does.

use super::conv2d::{conv2d_i8_with, for_each_window};
use super::depthwise_conv2d;
use super::fully_connected::{fully_connected_i8_with, requantize};
use super::{ConvGeometry, FcGeometry, Int8Params};

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

/// `acc + Σ (x[i] + input_offset) × w[i]` over the common length, with `SMLAD` (`input_offset`
/// is the negated input zero point, in −127..=128).
#[inline(always)]
pub fn dot_i8(acc: i32, x: &[i8], w: &[i8], input_offset: i32) -> i32 {
    let n = x.len().min(w.len());
    let ((x4, x_tail), (w4, w_tail)) = (x[..n].as_chunks::<4>(), w[..n].as_chunks::<4>());
    let offsets = lanes(input_offset);
    let mut acc = acc;
    for (xq, wq) in x4.iter().zip(w4) {
        let (xv, wv) = (word(xq), word(wq));
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

/// Largest filter (`KH × KW × Cin` bytes) that [`conv2d_i8`] gathers on the stack for inputs
/// with few channels.
const GATHER_BYTES: usize = 128;

/// [`super::conv2d::conv2d_i8`] with the `SMLAD` inner product:
/// - a 1×1 convolution with stride 1 and no padding is a fully connected layer over the pixels;
/// - with fewer than 4 input channels (first layers), each window is gathered into one
///   contiguous row of `KH × KW × Cin` values on the stack, padding filled with the input zero
///   point (which contributes 0, as a skipped tap does in the reference), so the inner product
///   runs over the whole filter instead of one short run per window row;
/// - otherwise one inner product per run of taps.
pub fn conv2d_i8(g: &ConvGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let offset = q.input_zero_point.wrapping_neg();
    let dot = |acc, xs: &[i8], ws: &[i8]| dot_i8(acc, xs, ws, offset);
    let (cin, cout) = (g.input.c, g.output.c);
    let filter_len = g.kernel[0] * g.kernel[1] * cin;
    if g.kernel == [1, 1] && g.stride == [1, 1] && g.pad == [0, 0] {
        let fc = FcGeometry { rows: g.input.len() / cin.max(1), depth: cin, units: cout };
        fully_connected_i8_with(&fc, q, x, w, bias, out, dot);
    } else if cin < 4 && filter_len <= GATHER_BYTES {
        let mut gathered = [0i8; GATHER_BYTES];
        let column = &mut gathered[..filter_len];
        // In range: the loader checks zero points are int8.
        let zero_point = q.input_zero_point as i8;
        for_each_window(g, |window, pixel| {
            column.fill(zero_point);
            window.for_each_cell(|tap, px| column[tap * cin..][..cin].copy_from_slice(&x[px * cin..][..cin]));
            for (oc, o) in out[pixel * cout..][..cout].iter_mut().enumerate() {
                let acc = dot(0, column, &w[oc * filter_len..][..filter_len]);
                *o = requantize(q, oc, acc, bias[oc]);
            }
        });
    } else {
        conv2d_i8_with(g, q, x, w, bias, out, dot);
    }
}

/// Most window cells (`KH × KW`) [`depthwise_conv2d_i8`] handles; larger windows take the
/// reference path. 25 covers 5×5 (the table lives on the stack: 8 bytes per cell).
const DEPTHWISE_CELLS: usize = 25;

/// [`super::depthwise_conv2d::depthwise_conv2d_i8`] four channels at a time for a channel
/// multiplier of 1. Per output pixel, the window's cells inside the input become a table of
/// (activation, weight) offsets, checked against the buffers once; then for every four channels
/// one pass over the table does, per cell, one word load each of activations and weights,
/// sign-extends them to 16-bit lanes and accumulates four channels with `SMLABB`/`SMLATT`.
/// Other multipliers, windows of more than [`DEPTHWISE_CELLS`] cells, and the last `C mod 4`
/// channels take the reference path.
pub fn depthwise_conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
) {
    let c = g.input.c;
    if g.output.c != c || g.kernel[0] * g.kernel[1] > DEPTHWISE_CELLS {
        return depthwise_conv2d::depthwise_conv2d_i8(g, q, x, w, bias, out);
    }
    let offset = q.input_zero_point.wrapping_neg();
    let offsets = lanes(offset);
    let quads = c / 4 * 4;
    let mut table = [(0usize, 0usize); DEPTHWISE_CELLS];
    for_each_window(g, |window, pixel| {
        let mut n = 0;
        window.for_each_cell(|tap, px| {
            if let Some(cell) = table.get_mut(n) {
                *cell = (px * c, tap * c);
                n += 1;
            }
        });
        let cells = &table[..n];
        // Every load below reads 4 bytes at a cell's offset plus c0 ≤ quads − 4: in bounds when
        // the largest offsets plus `quads` are (the loader's geometry checks make them so).
        let fits = cells.iter().all(|&(xo, wo)| xo + quads <= x.len() && wo + quads <= w.len());
        let out = &mut out[pixel * c..][..c];
        if !fits {
            return;
        }
        for c0 in (0..quads).step_by(4) {
            // SAFETY: `fits` bounds every offset + c0 + 4 ≤ offset + quads by the buffer lengths.
            let [a0, a1, a2, a3] =
                unsafe { quad_taps(x.as_ptr().add(c0), w.as_ptr().add(c0), cells, offsets) };
            for (k, a) in [a0, a1, a2, a3].into_iter().enumerate() {
                out[c0 + k] = requantize(q, c0 + k, a, bias[c0 + k]);
            }
        }
        for ch in quads..c {
            let mut acc = 0i32;
            for &(xo, wo) in cells {
                let xv = i32::from(x[xo + ch]).wrapping_add(offset);
                acc = acc.wrapping_add(xv.wrapping_mul(i32::from(w[wo + ch])));
            }
            out[ch] = requantize(q, ch, acc, bias[ch]);
        }
    });
}

/// Four channels' sums `Σ (x[xo + k] + offset) × w[wo + k]` (k = 0..4) over the `cells`
/// (`offsets` holds the input offset in both 16-bit lanes).
///
/// # Safety
/// For every cell, `x + xo .. x + xo + 4` and `w + wo .. w + wo + 4` must be readable.
#[inline(always)]
unsafe fn quad_taps(x: *const i8, w: *const i8, cells: &[(usize, usize)], offsets: u32) -> [i32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    for &(xo, wo) in cells {
        // SAFETY: the caller guarantees both words are readable; Cortex-M loads unaligned words.
        let (xv, wv) =
            unsafe { (x.add(xo).cast::<u32>().read_unaligned(), w.add(wo).cast::<u32>().read_unaligned()) };
        // SAFETY: register-only DSP instructions, as in `dot_i8`.
        unsafe {
            core::arch::asm!(
                "sxtb16 {we}, {wv}",
                "sxtab16 {xe}, {off}, {xv}",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "sxtb16 {we}, {wv}, ror #8",
                "sxtab16 {xe}, {off}, {xv}, ror #8",
                "smlabb {a1}, {xe}, {we}, {a1}",
                "smlatt {a3}, {xe}, {we}, {a3}",
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                xv = in(reg) xv,
                wv = in(reg) wv,
                off = in(reg) offsets,
                xe = out(reg) _,
                we = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
    }
    [a0, a1, a2, a3]
}
