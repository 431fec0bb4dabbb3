//! int8 kernels for Cortex-M cores with the DSP extension (Armv7E-M: M4, M7; Armv8-M Mainline
//! with DSP: M33, M55), bit-exact with the reference kernels.
//!
//! LLVM does not emit the dual 16-bit multiply-accumulate `SMLAD` from plain Rust, so the inner
//! product is written with it by hand: four int8 pairs per step, loaded as two words,
//! sign-extended to 16-bit lanes (`SXTAB16` also adds the input offset to both lanes of the
//! activations), and accumulated with two `SMLAD`s. Each lane product fits 16 × 16 bits: the
//! offset activation `x − zero_point` lies in −255..=255 and a weight in −128..=127; `SMLAD`
//! adds in wrapping 32-bit arithmetic, as the reference does.

use super::conv2d::for_each_window;
use super::depthwise_conv2d;
use super::fully_connected::{fully_connected_i8_with, requantize, requantize_with};
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

/// The activations `xv` plus the offset, sign-extended to 16-bit lanes: (bytes 0 and 2, bytes 1
/// and 3).
#[inline(always)]
fn extend_activations(xv: u32, offsets: u32) -> (u32, u32) {
    let (xe, xo);
    // SAFETY: register-only DSP instructions, as in `dot_i8`.
    unsafe {
        core::arch::asm!(
            "sxtab16 {xe}, {off}, {xv}",
            "sxtab16 {xo}, {off}, {xv}, ror #8",
            xv = in(reg) xv,
            off = in(reg) offsets,
            xe = out(reg) xe,
            xo = out(reg) xo,
            options(pure, nomem, nostack),
        );
    }
    (xe, xo)
}

/// `acc` plus the four products of extended activations (`xe`, `xo`) and the weight word `wv`.
#[inline(always)]
fn smlad_word(acc: i32, xe: u32, xo: u32, wv: u32) -> i32 {
    let mut acc = acc;
    // SAFETY: register-only DSP instructions, as in `dot_i8`.
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
            options(pure, nomem, nostack),
        );
    }
    acc
}

/// Four filters' inner products with one row: `Σ (x[i] + input_offset) × w[k·depth + i]` for
/// k = 0..4 and i over `x`, loading and sign-extending each word of activations once for all
/// four. `w` holds the four consecutive filters of `depth ≥ x.len()` bytes each.
#[inline(always)]
fn dot4_i8(x: &[i8], w: &[i8], depth: usize, input_offset: i32) -> [i32; 4] {
    let n = x.len();
    let words = n / 4;
    if n > depth || w.len() < 3 * depth + n {
        return [0, 1, 2, 3].map(|k| dot_i8(0, x, w.get(k * depth..).unwrap_or(&[]), input_offset));
    }
    let offsets = lanes(input_offset);
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    let (xp, wp) = (x.as_ptr(), w.as_ptr());
    for i in 0..words {
        // SAFETY: 4·i + 4 ≤ n ≤ depth, and the check above makes `x` hold n bytes and `w` hold
        // 3·depth + n: every word read lies inside its slice.
        let (xv, w0, w1, w2, w3) = unsafe {
            let at = |p: *const i8| p.add(4 * i).cast::<u32>().read_unaligned();
            (at(xp), at(wp), at(wp.add(depth)), at(wp.add(2 * depth)), at(wp.add(3 * depth)))
        };
        let (xe, xo) = extend_activations(xv, offsets);
        a0 = smlad_word(a0, xe, xo, w0);
        a1 = smlad_word(a1, xe, xo, w1);
        a2 = smlad_word(a2, xe, xo, w2);
        a3 = smlad_word(a3, xe, xo, w3);
    }
    let mut acc = [a0, a1, a2, a3];
    if words * 4 < n {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = dot_i8(*a, &x[words * 4..], &w[k * depth + words * 4..k * depth + n], input_offset);
        }
    }
    acc
}

/// [`super::fully_connected::fully_connected_i8`] with `SMLAD`, four units per pass over each
/// row (the activations are extended once for the four), then one at a time.
pub fn fully_connected_i8(g: &FcGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let offset = q.input_zero_point.wrapping_neg();
    let (depth, units) = (g.depth, g.units);
    if depth == 0 || units == 0 {
        return fully_connected_i8_with(g, q, x, w, bias, out, |acc, xs, ws| dot_i8(acc, xs, ws, offset));
    }
    let filter = |u: usize| &w[u * depth..][..depth];
    for (row, out) in x.chunks_exact(depth).zip(out.chunks_exact_mut(units)).take(g.rows) {
        let (quads, rest) = out.as_chunks_mut::<4>();
        for (b, o) in quads.iter_mut().enumerate() {
            let u0 = 4 * b;
            let acc = dot4_i8(row, &w[u0 * depth..(u0 + 4) * depth], depth, offset);
            requantize4(q, u0, acc, bias, o);
        }
        for (i, o) in rest.iter_mut().enumerate() {
            let u = 4 * quads.len() + i;
            *o = requantize(q, u, dot_i8(0, row, filter(u), offset), bias[u]);
        }
    }
}

/// [`requantize`] of the four output channels from `c0`, with one bounds check and one
/// per-tensor or per-channel choice for the four.
#[inline(always)]
fn requantize4(q: &Int8Params, c0: usize, acc: [i32; 4], bias: &[i32], out: &mut [i8; 4]) {
    let bias = &bias[c0..][..4];
    match q.requant {
        [one] => {
            for k in 0..4 {
                out[k] = requantize_with(q, *one, acc[k], bias[k]);
            }
        }
        all => {
            let r = &all[c0..][..4];
            for k in 0..4 {
                out[k] = requantize_with(q, r[k], acc[k], bias[k]);
            }
        }
    }
}

/// Largest filter (`KH × KW × Cin` bytes) that [`conv2d_i8`] gathers on the stack for inputs
/// with few channels.
const GATHER_BYTES: usize = 128;

/// [`super::conv2d::conv2d_i8`] with the `SMLAD` inner product:
/// - a 1×1 convolution with stride 1 and no padding is a fully connected layer over the pixels;
/// - with fewer than 4 input channels (first layers), each window is gathered into one
///   contiguous row of `KH × KW × Cin` values on the stack, padding filled with the input zero
///   point (which contributes 0, as a skipped tap does in the reference), and multiplied as a
///   fully connected layer of one row;
/// - otherwise four output channels per pass over each window, one four-filter inner product
///   per run of taps (the activations extended once for the four), the last `Cout mod 4`
///   channels one at a time.
pub fn conv2d_i8(g: &ConvGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let offset = q.input_zero_point.wrapping_neg();
    let dot = |acc, xs: &[i8], ws: &[i8]| dot_i8(acc, xs, ws, offset);
    let (cin, cout) = (g.input.c, g.output.c);
    let filter_len = g.kernel[0] * g.kernel[1] * cin;
    if g.kernel == [1, 1] && g.stride == [1, 1] && g.pad == [0, 0] {
        let fc = FcGeometry { rows: g.input.len() / cin.max(1), depth: cin, units: cout };
        fully_connected_i8(&fc, q, x, w, bias, out);
    } else if cin < 4 && filter_len <= GATHER_BYTES {
        let mut gathered = [0i8; GATHER_BYTES];
        let column = &mut gathered[..filter_len];
        // In range: the loader checks zero points are int8.
        let zero_point = q.input_zero_point as i8;
        let cells = g.kernel[0] * g.kernel[1];
        for_each_window(g, |window, pixel| {
            // Only windows that overhang the input have padding cells to fill.
            if window.len() < cells {
                column.fill(zero_point);
            }
            // At most three bytes per cell: byte moves, not a `memcpy` call per cell.
            window.for_each_cell(|tap, px| {
                for (d, s) in column[tap * cin..][..cin].iter_mut().zip(&x[px * cin..][..cin]).take(3) {
                    *d = *s;
                }
            });
            let fc = FcGeometry { rows: 1, depth: filter_len, units: cout };
            fully_connected_i8(&fc, q, column, w, bias, &mut out[pixel * cout..][..cout]);
        });
    } else {
        for_each_window(g, |window, pixel| {
            let out = &mut out[pixel * cout..][..cout];
            let (quads, rest) = out.as_chunks_mut::<4>();
            for (b, o) in quads.iter_mut().enumerate() {
                let oc = 4 * b;
                let mut acc = [0i32; 4];
                for (tap, px, count) in window.runs() {
                    let (start, len) = (oc * filter_len + tap * cin, count * cin);
                    let sums = dot4_i8(
                        &x[px * cin..][..len],
                        &w[start..start + 3 * filter_len + len],
                        filter_len,
                        offset,
                    );
                    for (a, s) in acc.iter_mut().zip(sums) {
                        *a = a.wrapping_add(s);
                    }
                }
                requantize4(q, oc, acc, bias, o);
            }
            for (i, o) in rest.iter_mut().enumerate() {
                let oc = 4 * quads.len() + i;
                let filter = &w[oc * filter_len..][..filter_len];
                let acc = window.runs().fold(0, |acc, (tap, px, count)| {
                    dot(acc, &x[px * cin..][..count * cin], &filter[tap * cin..][..count * cin])
                });
                *o = requantize(q, oc, acc, bias[oc]);
            }
        });
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
    // Windows that lie wholly inside the input share one table of offsets from their top-left
    // pixel; the others (at the borders) get their own.
    let [kh, kw] = g.kernel;
    let mut full = [(0usize, 0usize); DEPTHWISE_CELLS];
    for (tap, cell) in full.iter_mut().enumerate().take(kh * kw) {
        let (ky, kx) = (tap / kw, tap % kw);
        *cell = ((ky * g.dilation[0] * g.input.w + kx * g.dilation[1]) * c, tap * c);
    }
    let full = &full[..kh * kw];
    let mut border = [(0usize, 0usize); DEPTHWISE_CELLS];
    for_each_window(g, |window, pixel| {
        let (base, cells) = if window.len() == full.len() {
            (window.first_pixel() * c, full)
        } else {
            let mut n = 0;
            window.for_each_cell(|tap, px| {
                if let Some(cell) = border.get_mut(n) {
                    *cell = (px * c, tap * c);
                    n += 1;
                }
            });
            (0, &border[..n])
        };
        // Every load below reads 4 bytes at base + a cell's offset + c0 with c0 ≤ quads − 4: in
        // bounds when the largest offsets plus `quads` are (the loader's geometry checks make
        // them so; cells are in increasing order of both offsets).
        let fits = cells.last().is_none_or(|&(xo, wo)| base + xo + quads <= x.len() && wo + quads <= w.len());
        let out = &mut out[pixel * c..][..c];
        if !fits {
            return;
        }
        let x = &x[base..];
        let (out_quads, _) = out.as_chunks_mut::<4>();
        for (b, o) in out_quads.iter_mut().enumerate() {
            let c0 = 4 * b;
            // SAFETY: `fits` bounds every offset + c0 + 4 ≤ offset + quads by the buffer lengths.
            let acc = unsafe { quad_taps(x.as_ptr().add(c0), w.as_ptr().add(c0), cells, offsets) };
            requantize4(q, c0, acc, bias, o);
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
