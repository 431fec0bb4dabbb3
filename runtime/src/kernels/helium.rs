//! int8 kernels for Cortex-M cores with Helium (MVE: Cortex-M55, M85), bit-exact with the
//! reference kernels.
//!
//! Rust has no MVE intrinsics, so the vector code is `asm!`:
//! - inner products with `VMLADAVA.S8` (16 int8 products summed into a 32-bit register), one
//!   row of activations against four filters per pass, in tail-predicated loops (`WLSTP`/`LETP`)
//!   that need no scalar remainder. The input zero point leaves the loop: in the reference's
//!   wrapping i32 arithmetic `Σ (x − zp)·w = Σ x·w − zp·Σ w` exactly, so the raw activations
//!   multiply and `−zp·Σ w` joins each channel's bias, summed once per call (`VADDVA.S8`);
//! - convolutions gather each window into one column on the stack (padding filled with the
//!   input zero point, which contributes 0 to `Σ (x − zp)·w`) and multiply it as a row; 1×1
//!   windows read their pixel in place;
//! - depthwise convolutions take 16 channels per pass: activations and weights widened to 16-bit
//!   lanes (the offset added to the activations), products widened to 32 bits (`VMULLB`/`VMULLT`);
//! - the output stage runs four channels at once: `VQRDMULH` is TFLite's saturating rounding
//!   doubling high multiply, and gemmlowp's fix-up (subtract 1 from negative values) before the
//!   rounding shift `VRSHL` makes it round half away from zero as `RoundingDivideByPOT`. Rounding
//!   once is `VQDMULH` (truncating) then `VRSHL`, exact when the shift is at least 1 to the right.
//!
//! What these paths do not cover (a channel multiplier other than 1, windows larger than the
//! stack buffers, rounding once with a non-negative shift) runs the Cortex-M DSP kernels.

use super::conv2d::{for_each_window, Window};
use super::cortex_m_dsp;
use super::{ConvGeometry, FcGeometry, Int8Params};
use crate::quant::{Requant, Rounding};

/// Output channels whose output-stage factors one [`Factors`] table holds (16 bytes each, on
/// the stack).
const BLOCK: usize = 64;

/// Largest window (`KH × KW × Cin` bytes) [`conv2d_i8`] gathers into a column on the stack.
const COLUMN_BYTES: usize = 1152;

/// Most window cells (`KH × KW`) [`depthwise_conv2d_i8`] takes (8 bytes each, on the stack).
const DEPTHWISE_CELLS: usize = 25;

/// Channels per pass of [`depthwise_conv2d_i8`].
const DEPTHWISE_LANES: usize = 16;

/// Byte offsets of four consecutive int8 outputs, and of every other one.
static CONSECUTIVE: [u32; 4] = [0, 1, 2, 3];
static EVERY_OTHER: [u32; 4] = [0, 2, 4, 6];

/// How the output stage rounds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `VQRDMULH`, then the rounding right shift with the fix-up of negative values.
    Double,
    /// `VQDMULH`, then the rounding right shift.
    Single,
}

impl Stage {
    /// The stage that computes `q`'s requantization exactly: rounding once needs every shift
    /// to be negative (a right shift of at least 1 after the truncating multiply).
    fn of(q: &Int8Params) -> Option<Self> {
        match q.rounding {
            Rounding::Double => Some(Self::Double),
            Rounding::Single => q.requant.iter().all(|r| r.shift < 0).then_some(Self::Single),
        }
    }
}

/// Output-stage factors of four lanes, in the layout the output stage loads.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Quad {
    /// The bias, plus `−zp·Σ w` where the sums leave the zero point out.
    bias: [i32; 4],
    /// Q31 multiplier.
    multiplier: [i32; 4],
    /// Left shift before the multiply (0..=30).
    left: [i32; 4],
    /// Right shift after it, as the negative count `VRSHL` takes.
    right: [i32; 4],
}

/// The output stage of up to [`BLOCK`] channels.
struct Factors {
    quads: [Quad; BLOCK / 4],
    stage: Stage,
    /// Output zero point and activation bounds.
    zero_point: i32,
    min: i32,
    max: i32,
}

impl Factors {
    fn new(q: &Int8Params, stage: Stage) -> Self {
        Self {
            quads: [Quad::default(); BLOCK / 4],
            stage,
            zero_point: q.output_zero_point,
            min: q.act.min,
            max: q.act.max,
        }
    }

    /// Sets lane `slot` (quad `slot / 4`) to requantize with `r` after adding `bias`.
    #[inline(always)]
    fn set(&mut self, slot: usize, r: Requant, bias: i32) {
        let (left, right) = match self.stage {
            Stage::Double => (r.shift.max(0), r.shift.clamp(-31, 0)),
            Stage::Single => (0, r.shift.max(-31)),
        };
        let (quad, lane) = (&mut self.quads[slot / 4], slot % 4);
        quad.bias[lane] = bias;
        quad.multiplier[lane] = r.multiplier;
        quad.left[lane] = left;
        quad.right[lane] = right;
    }

    /// The factors of output channels `c0..c0 + n` (`n ≤ BLOCK`) whose filters are the
    /// consecutive `len`-byte rows of `w`, the input zero point folded into the biases.
    fn filters(
        q: &Int8Params,
        stage: Stage,
        bias: &[i32],
        w: &[i8],
        len: usize,
        c0: usize,
        n: usize,
    ) -> Self {
        let mut f = Self::new(q, stage);
        for (slot, c) in (c0..c0 + n).enumerate() {
            let filter = &w[c * len..][..len];
            // SAFETY: `filter` holds `len` bytes.
            let sum = unsafe { sum_i8(filter.as_ptr(), len) };
            f.set(slot, q.channel(c), bias[c].wrapping_sub(q.input_zero_point.wrapping_mul(sum)));
        }
        f
    }

    /// Requantizes the four sums `acc` with quad `quad`'s factors, adds the output zero point,
    /// clamps, and stores the first `lanes` as int8 at `out + offsets[k]`.
    ///
    /// # Safety
    /// `out + offsets[k]` must be writable for every `k < lanes`.
    #[inline(always)]
    unsafe fn store(&self, acc: &[i32; 4], quad: usize, out: *mut i8, offsets: &[u32; 4], lanes: usize) {
        let f = &self.quads[quad];
        macro_rules! stage {
            ($($multiply:literal),*) => {
                // SAFETY: MVE loads of the 16-byte arrays `acc`, `offsets` and `f`'s four (all
                // word-aligned); the store writes only the first `lanes` lanes, which the caller
                // guarantees are writable.
                unsafe {
                    core::arch::asm!(
                        "vldrw.u32 q0, [{acc}]",
                        "vldrw.u32 q1, [{f}]",
                        "vadd.i32 q0, q0, q1",
                        $($multiply,)*
                        "vadd.i32 q0, q0, {zp}",
                        "vdup.32 q1, {min}",
                        "vmax.s32 q0, q0, q1",
                        "vdup.32 q1, {max}",
                        "vmin.s32 q0, q0, q1",
                        "vldrw.u32 q1, [{offsets}]",
                        "vctp.32 {lanes}",
                        "vpst",
                        "vstrbt.32 q0, [{out}, q1]",
                        acc = in(reg) acc.as_ptr(),
                        f = in(reg) core::ptr::from_ref(f),
                        zp = in(reg) self.zero_point,
                        min = in(reg) self.min,
                        max = in(reg) self.max,
                        offsets = in(reg) offsets.as_ptr(),
                        lanes = in(reg) lanes,
                        out = in(reg) out,
                        out("q0") _,
                        out("q1") _,
                        out("q2") _,
                        options(nostack),
                    );
                }
            };
        }
        match self.stage {
            Stage::Double => stage!(
                "vldrw.u32 q1, [{f}, #32]",
                "vshl.s32 q0, q0, q1",
                "vldrw.u32 q1, [{f}, #16]",
                "vqrdmulh.s32 q0, q0, q1",
                "vldrw.u32 q1, [{f}, #48]",
                "vand q2, q0, q1",
                "vshr.s32 q2, q2, #31",
                "vqadd.s32 q0, q0, q2",
                "vrshl.s32 q0, q0, q1"
            ),
            Stage::Single => stage!(
                "vldrw.u32 q1, [{f}, #16]",
                "vqdmulh.s32 q0, q0, q1",
                "vldrw.u32 q1, [{f}, #48]",
                "vrshl.s32 q0, q0, q1"
            ),
        }
    }
}

/// `Σ w[i]` over `i < n`.
///
/// # Safety
/// `w` must be readable for `n` bytes.
#[inline(always)]
unsafe fn sum_i8(w: *const i8, n: usize) -> i32 {
    let mut sum = 0i32;
    // SAFETY: the tail-predicated loop reads `n` bytes from `w`, which the caller guarantees.
    // `VADDVA` needs an even-numbered register.
    unsafe {
        core::arch::asm!(
            "wlstp.8 lr, {n}, 2f",
            "1:",
            "vldrb.u8 q0, [{w}], #16",
            "vaddva.s8 r0, q0",
            "letp lr, 1b",
            "2:",
            n = in(reg) n,
            w = inout(reg) w => _,
            inout("r0") sum,
            out("lr") _,
            out("q0") _,
            options(nostack, readonly),
        );
    }
    sum
}

/// `Σ x[i]·w_k[i]` over `i < n` for the four filters `w_k`, in wrapping i32 arithmetic.
///
/// # Safety
/// `x` and every `w_k` must be readable for `n` bytes.
#[inline(always)]
unsafe fn dot4(x: *const i8, w: [*const i8; 4], n: usize) -> [i32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    // SAFETY: the tail-predicated loop reads `n` bytes from each pointer, which the caller
    // guarantees. `VMLADAVA` needs even-numbered registers.
    unsafe {
        core::arch::asm!(
            "wlstp.8 lr, {n}, 2f",
            "1:",
            "vldrb.u8 q0, [{x}], #16",
            "vldrb.u8 q1, [{w0}], #16",
            "vldrb.u8 q2, [{w1}], #16",
            "vmladava.s8 r0, q0, q1",
            "vldrb.u8 q3, [{w2}], #16",
            "vmladava.s8 r2, q0, q2",
            "vldrb.u8 q4, [{w3}], #16",
            "vmladava.s8 r4, q0, q3",
            "vmladava.s8 r8, q0, q4",
            "letp lr, 1b",
            "2:",
            n = in(reg) n,
            x = inout(reg) x => _,
            w0 = inout(reg) w[0] => _,
            w1 = inout(reg) w[1] => _,
            w2 = inout(reg) w[2] => _,
            w3 = inout(reg) w[3] => _,
            inout("r0") a0,
            inout("r2") a1,
            inout("r4") a2,
            inout("r8") a3,
            out("lr") _,
            out("q0") _,
            out("q1") _,
            out("q2") _,
            out("q3") _,
            out("q4") _,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// `src` must be readable and `dst` writable for `n` bytes.
#[inline(always)]
unsafe fn copy_i8(dst: *mut i8, src: *const i8, n: usize) {
    // SAFETY: the tail-predicated loop reads and writes `n` bytes, which the caller guarantees.
    unsafe {
        core::arch::asm!(
            "wlstp.8 lr, {n}, 2f",
            "1:",
            "vldrb.u8 q0, [{src}], #16",
            "vstrb.8 q0, [{dst}], #16",
            "letp lr, 1b",
            "2:",
            n = in(reg) n,
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            out("lr") _,
            out("q0") _,
            options(nostack),
        );
    }
}

/// One row `x` of `depth` bytes against the `n` filters from `w` (`f`'s channels): `n` outputs
/// from `out`, four filters per pass (a last partial pass repeats its last filter and stores
/// only its own lanes).
///
/// # Safety
/// `x` must be readable for `depth` bytes, `w` for `n × depth`, `out` writable for `n`;
/// `n ≤ BLOCK`.
#[inline(always)]
unsafe fn row_times_filters(x: *const i8, w: *const i8, depth: usize, n: usize, f: &Factors, out: *mut i8) {
    for quad in 0..n.div_ceil(4) {
        let k0 = 4 * quad;
        let lanes = (n - k0).min(4);
        // SAFETY (all three): `k0 + k.min(lanes − 1) < n` filters, and `k0 + lanes ≤ n` outputs.
        let filter = |k: usize| unsafe { w.add((k0 + k.min(lanes - 1)) * depth) };
        let acc = unsafe { dot4(x, [filter(0), filter(1), filter(2), filter(3)], depth) };
        unsafe { f.store(&acc, quad, out.add(k0), &CONSECUTIVE, lanes) };
    }
}

/// Whether the weights, bias, requantization and output of a layer with `units` channels of
/// `len`-byte filters and `outputs` output values have the lengths the kernels read and write.
fn fits(
    q: &Int8Params,
    w: &[i8],
    bias: &[i32],
    len: usize,
    units: usize,
    out: &[i8],
    outputs: usize,
) -> bool {
    w.len() >= units * len
        && bias.len() >= units
        && (q.requant.len() == 1 || q.requant.len() >= units)
        && out.len() >= outputs
}

/// [`super::fully_connected::fully_connected_i8`] with `VMLADAVA`: per block of up to
/// [`BLOCK`] units, the folded biases, then every row against the block's filters.
pub fn fully_connected_i8(g: &FcGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let (rows, depth, units) = (g.rows, g.depth, g.units);
    let stage = Stage::of(q);
    let sized = x.len() >= rows * depth && fits(q, w, bias, depth, units, out, rows * units);
    let (Some(stage), true, false) = (stage, sized, depth == 0) else {
        return cortex_m_dsp::fully_connected_i8(g, q, x, w, bias, out);
    };
    for c0 in (0..units).step_by(BLOCK) {
        let n = (units - c0).min(BLOCK);
        let f = Factors::filters(q, stage, bias, w, depth, c0, n);
        for r in 0..rows {
            // SAFETY: row r holds `depth` bytes of `x`, filters c0..c0 + n lie in `w` and outputs
            // r × units + c0.. + n in `out` (all checked by `sized`).
            unsafe {
                row_times_filters(
                    x.as_ptr().add(r * depth),
                    w.as_ptr().add(c0 * depth),
                    depth,
                    n,
                    &f,
                    out.as_mut_ptr().add(r * units + c0),
                );
            }
        }
    }
}

/// [`super::conv2d::conv2d_i8`] with `VMLADAVA`: a 1×1 convolution with stride 1 and no padding
/// is a fully connected layer over the pixels; otherwise, per block of up to [`BLOCK`] output
/// channels, each window is a row (its pixel in place for 1×1 windows, else gathered into a
/// column) multiplied by the block's filters.
pub fn conv2d_i8(g: &ConvGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let (cin, cout) = (g.input.c, g.output.c);
    let filter_len = g.kernel[0] * g.kernel[1] * cin;
    let sized = x.len() >= g.input.len()
        && g.output.n <= g.input.n
        && fits(q, w, bias, filter_len, cout, out, g.output.len());
    let (Some(stage), true, false) = (Stage::of(q), sized, filter_len == 0 || filter_len > COLUMN_BYTES)
    else {
        return cortex_m_dsp::conv2d_i8(g, q, x, w, bias, out);
    };
    if g.kernel == [1, 1] && g.stride == [1, 1] && g.pad == [0, 0] {
        let fc = FcGeometry { rows: g.input.len() / cin, depth: cin, units: cout };
        return fully_connected_i8(&fc, q, x, w, bias, out);
    }
    let mut column = [0i8; COLUMN_BYTES];
    let cells = g.kernel[0] * g.kernel[1];
    // In range: the loader checks zero points are int8.
    let zero_point = q.input_zero_point as i8;
    for c0 in (0..cout).step_by(BLOCK) {
        let n = (cout - c0).min(BLOCK);
        let f = Factors::filters(q, stage, bias, w, filter_len, c0, n);
        for_each_window(g, |window, pixel| {
            let row = if cells == 1 && window.len() == 1 {
                // SAFETY: the window's pixel lies in the input, which `x` holds.
                unsafe { x.as_ptr().add(window.first_pixel() * cin) }
            } else {
                gather(window, x, cin, cells, zero_point, &mut column[..filter_len]);
                column.as_ptr()
            };
            // SAFETY: `row` holds `filter_len` bytes, filters c0..c0 + n lie in `w` and the
            // pixel's outputs c0..c0 + n in `out` (checked by `sized`).
            unsafe {
                row_times_filters(
                    row,
                    w.as_ptr().add(c0 * filter_len),
                    filter_len,
                    n,
                    &f,
                    out.as_mut_ptr().add(pixel * cout + c0),
                );
            }
        });
    }
}

/// Gathers `window`'s cells (`cin` channels each) into `column` in filter order, cells outside
/// the input filled with `zero_point`.
#[inline(always)]
fn gather(window: Window, x: &[i8], cin: usize, cells: usize, zero_point: i8, column: &mut [i8]) {
    if window.len() < cells {
        column.fill(zero_point);
    }
    for (tap, px, count) in window.runs() {
        let (dst, src) = (&mut column[tap * cin..][..count * cin], &x[px * cin..][..count * cin]);
        // SAFETY: both slices hold `count × cin` bytes.
        unsafe { copy_i8(dst.as_mut_ptr(), src.as_ptr(), dst.len()) };
    }
}

/// [`super::depthwise_conv2d::depthwise_conv2d_i8`] for a channel multiplier of 1, 16 channels
/// per pass. Per output pixel, the window's cells inside the input become a table of
/// (activation, weight) offsets (windows wholly inside the input share one); per 16 channels one
/// pass over the table accumulates `(x − zp)·w` in 32-bit lanes. Other multipliers and windows
/// of more than [`DEPTHWISE_CELLS`] cells run the DSP kernel.
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
    let cells = kh * kw;
    let sized = x.len() >= g.input.len()
        && g.output.n <= g.input.n
        && fits(q, w, bias, cells, c, out, g.output.len());
    let (Some(stage), true, true) = (Stage::of(q), sized, g.output.c == c && cells <= DEPTHWISE_CELLS) else {
        return cortex_m_dsp::depthwise_conv2d_i8(g, q, x, w, bias, out);
    };
    // Offsets of the cells of a window wholly inside the input from its top-left pixel.
    let mut full = [[0u32; 2]; DEPTHWISE_CELLS];
    for (tap, cell) in full.iter_mut().enumerate().take(cells) {
        let (ky, kx) = (tap / kw, tap % kw);
        *cell = [((ky * g.dilation[0] * g.input.w + kx * g.dilation[1]) * c) as u32, (tap * c) as u32];
    }
    let full = &full[..cells];
    let mut border = [[0u32; 2]; DEPTHWISE_CELLS];
    let offset = q.input_zero_point.wrapping_neg();
    for c0 in (0..c).step_by(DEPTHWISE_LANES) {
        let lanes = (c - c0).min(DEPTHWISE_LANES);
        // Quad j holds channels c0 + first(j) + 2k (k = 0..4): the even and odd lanes of each
        // half, as VMULLB and VMULLT leave them.
        let first = |j: usize| 8 * (j / 2) + j % 2;
        let mut f = Factors::new(q, stage);
        for j in 0..4 {
            for k in 0..4 {
                let ch = c0 + first(j) + 2 * k;
                if ch < c {
                    f.set(4 * j + k, q.channel(ch), bias[ch]);
                }
            }
        }
        for_each_window(g, |window, pixel| {
            let (base, table) = if window.len() == cells {
                (window.first_pixel() * c, full)
            } else {
                let mut n = 0;
                window.for_each_cell(|tap, px| {
                    border[n] = [(px * c) as u32, (tap * c) as u32];
                    n += 1;
                });
                (0, &border[..n])
            };
            // SAFETY: every cell's activations x[base + xo + c0..][..lanes] lie in the input and
            // its weights w[wo + c0..][..lanes] in the filter (cells come from the window
            // walker; `sized` checks the lengths).
            let acc = unsafe { taps16(x.as_ptr().add(base + c0), w.as_ptr().add(c0), table, lanes, offset) };
            for (j, acc) in acc.iter().enumerate() {
                let stored = lanes.saturating_sub(first(j)).div_ceil(2).min(4);
                if stored > 0 {
                    let at = pixel * c + c0 + first(j);
                    // SAFETY: lanes k < stored are channels below c0 + lanes of this pixel.
                    unsafe {
                        f.store(acc, j, out.as_mut_ptr().add(at), &EVERY_OTHER, stored);
                    }
                }
            }
        });
    }
}

/// Sums `(x[xo + i] + offset)·w[wo + i]` over the cells `(xo, wo)` of `table` for the channels
/// `i < lanes` (`lanes ≤ 16`), in the order quad j, lane k = channel `8(j / 2) + j % 2 + 2k`.
///
/// # Safety
/// For every cell, `x + xo` and `w + wo` must be readable for `lanes` bytes.
#[inline(always)]
unsafe fn taps16(x: *const i8, w: *const i8, table: &[[u32; 2]], lanes: usize, offset: i32) -> [[i32; 4]; 4] {
    let mut acc = [[0i32; 4]; 4];
    // SAFETY: the loads are predicated to the first `lanes.min(8)` bytes and the next
    // `lanes − 8` of each cell's activations and weights, which the caller guarantees are
    // readable; the stores fill `acc`, word-aligned.
    unsafe {
        core::arch::asm!(
            "vmov.i32 q0, #0",
            "vmov.i32 q1, #0",
            "vmov.i32 q2, #0",
            "vmov.i32 q3, #0",
            "vdup.16 q4, {offset}",
            "wls lr, {cells}, 2f",
            "1:",
            "ldrd {xo}, {wo}, [{table}], #8",
            "add {xo}, {xo}, {x}",
            "add {wo}, {wo}, {w}",
            "vctp.16 {low}",
            "vpstt",
            "vldrbt.s16 q5, [{xo}]",
            "vldrbt.s16 q6, [{wo}]",
            "vadd.i16 q5, q5, q4",
            "vmullb.s16 q7, q5, q6",
            "vadd.i32 q0, q0, q7",
            "vmullt.s16 q7, q5, q6",
            "vadd.i32 q1, q1, q7",
            "vctp.16 {high}",
            "vpstt",
            "vldrbt.s16 q5, [{xo}, #8]",
            "vldrbt.s16 q6, [{wo}, #8]",
            "vadd.i16 q5, q5, q4",
            "vmullb.s16 q7, q5, q6",
            "vadd.i32 q2, q2, q7",
            "vmullt.s16 q7, q5, q6",
            "vadd.i32 q3, q3, q7",
            "le lr, 1b",
            "2:",
            "vstrw.32 q0, [{acc}]",
            "vstrw.32 q1, [{acc}, #16]",
            "vstrw.32 q2, [{acc}, #32]",
            "vstrw.32 q3, [{acc}, #48]",
            offset = in(reg) offset,
            cells = in(reg) table.len(),
            table = inout(reg) table.as_ptr() => _,
            x = in(reg) x,
            w = in(reg) w,
            low = in(reg) lanes.min(8),
            high = in(reg) lanes.saturating_sub(8),
            acc = in(reg) acc.as_mut_ptr(),
            xo = out(reg) _,
            wo = out(reg) _,
            out("lr") _,
            out("q0") _,
            out("q1") _,
            out("q2") _,
            out("q3") _,
            out("q4") _,
            out("q5") _,
            out("q6") _,
            out("q7") _,
            options(nostack),
        );
    }
    acc
}
