//! Depthwise convolution four channels per pass.

use super::lanes;
use super::output::Output;
use crate::kernels::conv2d::for_each_window;
use crate::kernels::{depthwise_conv2d, ConvGeometry, Int8Params};

/// Most window cells (`KH × KW`) [`depthwise_conv2d_i8`] handles; larger windows take the
/// reference path. 25 covers 5×5 (the table lives on the stack: 8 bytes per cell).
const DEPTHWISE_CELLS: usize = 25;

/// [`depthwise_conv2d::depthwise_conv2d_i8`] four channels at a time for a channel
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
    let [kh, kw] = g.kernel;
    let stage = Output::new(q, bias, kh * kw, c);
    let Some(stage) = stage.filter(|_| g.output.c == c && kh * kw <= DEPTHWISE_CELLS) else {
        return depthwise_conv2d::depthwise_conv2d_i8(g, q, x, w, bias, out);
    };
    let offset = q.input_zero_point.wrapping_neg();
    let offsets = lanes(offset);
    let quads = c / 4 * 4;
    // Windows that lie wholly inside the input share one table of offsets from their top-left
    // pixel; the others (at the borders) get their own.
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
            // SAFETY: c0 + 3 < quads ≤ c, the layer's channels; `fits` bounds every offset + c0 +
            // 4 ≤ offset + quads by the buffer lengths.
            unsafe {
                let acc = [0, 1, 2, 3].map(|k| stage.bias(c0 + k));
                let acc = quad_taps(acc, x.as_ptr().add(c0), w.as_ptr().add(c0), cells, offsets);
                for (k, o) in o.iter_mut().enumerate() {
                    *o = stage.apply(stage.factor(c0 + k), acc[k]);
                }
            }
        }
        for ch in quads..c {
            // SAFETY: ch < c, the layer's channels.
            let (mut acc, r) = unsafe { (stage.bias(ch), stage.factor(ch)) };
            for &(xo, wo) in cells {
                let xv = i32::from(x[xo + ch]).wrapping_add(offset);
                acc = acc.wrapping_add(xv.wrapping_mul(i32::from(w[wo + ch])));
            }
            out[ch] = stage.apply(r, acc);
        }
    });
}

/// Four channels' sums `acc[k] + Σ (x[xo + k] + offset) × w[wo + k]` (k = 0..4) over the `cells`
/// (`offsets` holds the input offset in both 16-bit lanes).
///
/// # Safety
/// For every cell, `x + xo .. x + xo + 4` and `w + wo .. w + wo + 4` must be readable.
#[inline(always)]
unsafe fn quad_taps(
    acc: [i32; 4],
    x: *const i8,
    w: *const i8,
    cells: &[(usize, usize)],
    offsets: u32,
) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    for &(xo, wo) in cells {
        // SAFETY: the caller guarantees both words are readable; Cortex-M loads unaligned words.
        let (xv, wv) =
            unsafe { (x.add(xo).cast::<u32>().read_unaligned(), w.add(wo).cast::<u32>().read_unaligned()) };
        // SAFETY: register-only DSP instructions, as in `super::extend_activations`.
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
