//! f32 convolution and fully connected layer (f32 or f16 weights) with Helium (MVE), bit-exact
//! with the reference kernels but for NaN payloads.
//!
//! The reference adds each output's products one at a time, `acc = acc + x × w` (a multiply then
//! an add: Rust never fuses them), over the taps in window order, padded taps skipped. A sum
//! reordered or fused would round differently, so these kernels vectorize across output channels
//! instead of along the sum: each of four lanes is one output channel and adds its products in
//! the reference's order with `VMUL.F32` by a scalar (the input value) then `VADD.F32` (never
//! `VFMA`). Weights are `[Cout, K]`, so each step gathers the `k`-th weight of four filters with
//! one `VLDRW.U32` (or `VLDRH.U32` and `VCVTB.F32.F16` for f16 weights: an exact widening, f16
//! subnormals included, as [`Weight::to_f32`]) from a vector of the filters' offsets, and
//! multiplies it by the values of four input rows at once, each row with its own accumulators:
//! fully connected rows, the pixels of a pointwise convolution, or four windows wholly inside
//! the input (one window's input is another's moved, so their taps pair up; the asm walks a
//! window's rows itself). Windows cut by the padding are summed one at a time over their runs of
//! taps, as the reference does. Bias and activation follow [`ClampF32::apply`] four lanes at a
//! time: `VADD.F32`, then `VCMP.F32` with each bound and `VPSEL` (NaN passes). No scratch memory:
//! the accumulators of a block of rows (92 bytes with their offsets and lines) live on the stack.
//!
//! MVE float arithmetic is not the scalar FPU's: it always runs with the "standard" FPSCR value,
//! flush-to-zero and default NaN (Armv8.1-M; QEMU models it so, `-cpu cortex-m55`: `VMUL.F32` of
//! a subnormal gives 0 where the FPU, with `FPSCR.FZ` = 0 as after reset, keeps it). Rounding is
//! to nearest even in both. A flush is never silent: an input flushed sets `FPSCR.IDC`, a tiny
//! result flushed sets `FPSCR.UFC` (`VCVTB` widens f16 subnormals exactly; a core that flushed
//! them would set `IDC`). So each call clears both flags, runs, and when either is set afterwards
//! (a subnormal input, weight or bias, or a product or sum that underflowed, which trained models
//! almost never have) computes its outputs again with the reference kernel; the flags the caller
//! had are put back. Without a flush every vector operation equals the FPU's, so every output
//! equals the reference's bits, ±0 and ±inf included; a NaN output is NaN where the reference's
//! is, its sign and payload may differ (MVE makes the default NaN; see also `kernels::neon::float`).
//! Under a rounding mode other than to nearest, or the alternative f16 format (`FPSCR.AHP`),
//! which MVE would not follow as the reference does, the reference kernel runs instead.

use core::arch::asm;

use crate::kernels::conv2d::{self, for_each_window, Window};
use crate::kernels::fully_connected;
use crate::kernels::{ClampF32, ConvGeometry, FcGeometry, Weight};

/// `FPSCR.IDC` (bit 7, an input flushed to zero) and `FPSCR.UFC` (bit 3, a result flushed).
const FLUSHED: u32 = 1 << 7 | 1 << 3;

/// `FPSCR.RMode` (bits 23:22) and `FPSCR.AHP` (bit 26): MVE rounds to nearest whatever `RMode`
/// says, and its `VCVTB` reads f16 in the alternative format when `AHP` is set, where the
/// reference follows `RMode` and always reads IEEE f16.
const MODES: u32 = 0b11 << 22 | 1 << 26;

/// Runs `vector` with [`FLUSHED`] clear and says whether MVE flushed nothing meanwhile; the
/// caller's flags are put back. With a rounding mode other than to nearest, or `AHP` set (see
/// [`MODES`]), runs nothing and says `false`.
#[inline(always)]
fn without_flush(vector: impl FnOnce()) -> bool {
    let before: u32;
    // SAFETY: reads FPSCR and, in the default modes, writes it back with two cumulative flags
    // cleared; no memory is touched, but the block is not `nomem` so that it stays ordered
    // with the kernels' asm.
    unsafe {
        asm!(
            "vmrs {before}, fpscr",
            "tst {before}, {modes}",
            "bne 2f",
            "bic {t}, {before}, {flushed}",
            "vmsr fpscr, {t}",
            "2:",
            before = out(reg) before,
            modes = in(reg) MODES,
            flushed = in(reg) FLUSHED,
            t = out(reg) _,
            options(nostack),
        );
    }
    if before & MODES != 0 {
        return false;
    }
    vector();
    let after: u32;
    // SAFETY: as above, setting the flags the caller had again.
    unsafe {
        asm!(
            "vmrs {after}, fpscr",
            "orr {t}, {after}, {kept}",
            "vmsr fpscr, {t}",
            after = out(reg) after,
            kept = in(reg) before & FLUSHED,
            t = out(reg) _,
            options(nostack),
        );
    }
    after & FLUSHED == 0
}

/// `$q` widened from f16 (bottom halves) to f32 for `F16` weights; nothing for `F32`.
macro_rules! widen {
    (F32, $q:literal) => {
        ""
    };
    (F16, $q:literal) => {
        concat!("vcvtb.f32.f16 ", $q, ", ", $q, "\n")
    };
}

/// One step of [`dots`]: the weights at `{w}` plus the offsets in `$offsets` (gathered with
/// `$load`, widened as `$kind` needs) times the input value in `$x`, added to `q0`.
#[rustfmt::skip]
macro_rules! step {
    ($kind:ident, $load:literal, $q:literal, $offsets:literal, $x:literal) => {
        concat!(
            $load, " ", $q, ", [{w}, ", $offsets, "]\n",
            widen!($kind, $q),
            "vmul.f32 ", $q, ", ", $q, ", ", $x, "\n",
            "vadd.f32 q0, q0, ", $q, "\n",
        )
    };
}

/// The asm of [`dots`] for weights `$kind`, gathered with `$load`: four steps per iteration,
/// then one at a time.
macro_rules! dots {
    ($kind:ident, $load:literal, $acc:expr, $x:expr, $w:expr, $offsets:expr, $n:expr, $size:expr) => {
        asm!(
            "vldrw.u32 q0, [{acc}]",
            "vldrw.u32 q4, [{offsets}]",
            "vadd.i32 q5, q4, {size}",
            "vadd.i32 q6, q5, {size}",
            "vadd.i32 q7, q6, {size}",
            "lsrs {chunks}, {n}, #2",
            "wls lr, {chunks}, 2f",
            "1:",
            "ldrd {a}, {b}, [{x}], #8",
            step!($kind, $load, "q2", "q4", "{a}"),
            step!($kind, $load, "q3", "q5", "{b}"),
            "ldrd {a}, {b}, [{x}], #8",
            step!($kind, $load, "q2", "q6", "{a}"),
            step!($kind, $load, "q3", "q7", "{b}"),
            "add.w {w}, {w}, {size}, lsl #2",
            "le lr, 1b",
            "2:",
            "and {n}, {n}, #3",
            "wls lr, {n}, 4f",
            "3:",
            "ldr {a}, [{x}], #4",
            step!($kind, $load, "q2", "q4", "{a}"),
            "add {w}, {w}, {size}",
            "le lr, 3b",
            "4:",
            "vstrw.32 q0, [{acc}]",
            acc = in(reg) $acc,
            offsets = in(reg) $offsets,
            x = inout(reg) $x => _,
            w = inout(reg) $w => _,
            n = inout(reg) $n => _,
            size = in(reg) $size,
            chunks = out(reg) _,
            a = out(reg) _,
            b = out(reg) _,
            out("lr") _,
            out("q0") _,
            out("q2") _,
            out("q3") _,
            out("q4") _,
            out("q5") _,
            out("q6") _,
            out("q7") _,
            options(nostack),
        )
    };
}

/// Two steps of row `$x` in [`dots_rows`]: its next two input values times the weight vectors
/// `q4` and `q5`, added to `$acc` one at a time.
#[rustfmt::skip]
macro_rules! row2 {
    ($acc:literal, $x:literal) => {
        concat!(
            "ldrd {a}, {b}, [", $x, "], #8\n",
            "vmul.f32 q7, q4, {a}\n",
            "vadd.f32 ", $acc, ", ", $acc, ", q7\n",
            "vmul.f32 q7, q5, {b}\n",
            "vadd.f32 ", $acc, ", ", $acc, ", q7\n",
        )
    };
}

/// The last step of a line of row `$x` in [`dots_rows`] (weights in `q4`).
#[rustfmt::skip]
macro_rules! row1 {
    ($acc:literal, $x:literal) => {
        concat!(
            "ldr {a}, [", $x, "], #4\n",
            "vmul.f32 q7, q4, {a}\n",
            "vadd.f32 ", $acc, ", ", $acc, ", q7\n",
        )
    };
}

/// The asm of [`dots_rows`] for weights `$kind`, gathered with `$load`: per line, two steps per
/// iteration (each weight vector multiplied by the four rows' values), then a last one; then the
/// rows move on to their next line.
#[rustfmt::skip]
macro_rules! dots_rows {
    ($kind:ident, $load:literal, $block:expr, $x:expr, $w:expr, $size:expr) => {
        asm!(
            "vldrw.u32 q0, [{block}]",
            "vldrw.u32 q1, [{block}, #16]",
            "vldrw.u32 q2, [{block}, #32]",
            "vldrw.u32 q3, [{block}, #48]",
            "vldrw.u32 q6, [{block}, #64]",
            "5:",
            "ldr {n}, [{block}, #80]",
            "lsrs {a}, {n}, #1",
            "wls lr, {a}, 2f",
            "1:",
            concat!($load, " q4, [{w}, q6]"),
            "add {w}, {w}, {size}",
            concat!($load, " q5, [{w}, q6]"),
            "add {w}, {w}, {size}",
            widen!($kind, "q4"),
            widen!($kind, "q5"),
            row2!("q0", "{x0}"),
            row2!("q1", "{x1}"),
            row2!("q2", "{x2}"),
            row2!("q3", "{x3}"),
            "le lr, 1b",
            "2:",
            "lsls {n}, {n}, #31",
            "beq 3f",
            concat!($load, " q4, [{w}, q6]"),
            "add {w}, {w}, {size}",
            widen!($kind, "q4"),
            row1!("q0", "{x0}"),
            row1!("q1", "{x1}"),
            row1!("q2", "{x2}"),
            row1!("q3", "{x3}"),
            "3:",
            "ldrd {a}, {b}, [{block}, #84]",
            "add {x0}, {x0}, {a}",
            "add {x1}, {x1}, {a}",
            "add {x2}, {x2}, {a}",
            "add {x3}, {x3}, {a}",
            "subs {b}, {b}, #1",
            "str {b}, [{block}, #88]",
            "bne 5b",
            "vstrw.32 q0, [{block}]",
            "vstrw.32 q1, [{block}, #16]",
            "vstrw.32 q2, [{block}, #32]",
            "vstrw.32 q3, [{block}, #48]",
            block = in(reg) $block,
            x0 = inout(reg) $x[0] => _,
            x1 = inout(reg) $x[1] => _,
            x2 = inout(reg) $x[2] => _,
            x3 = inout(reg) $x[3] => _,
            w = inout(reg) $w => _,
            size = in(reg) $size,
            n = out(reg) _,
            a = out(reg) _,
            b = out(reg) _,
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
        )
    };
}

/// Whether [`dots`] has a vector path for weights `W` (f32 and f16).
#[inline(always)]
fn vector<W: Weight>() -> bool {
    W::as_f32(&[]).is_some() || W::as_f16_bits(&[]).is_some()
}

/// Adds `x[k] × w_i[k]` for `k` in `0..n`, one at a time, to `acc[i]`, where filter `w_i` starts
/// `offsets[i]` bytes after `w`.
///
/// # Safety
/// `x` must be readable for `n` values, each filter for `n` weights, all 4-aligned (2 for f16);
/// `W` is f32 or f16 ([`vector`]).
#[inline(always)]
unsafe fn dots<W: Weight>(acc: &mut [f32; 4], x: *const f32, w: *const W, offsets: &[u32; 4], n: usize) {
    let (acc, offsets, size) = (acc.as_mut_ptr(), offsets.as_ptr(), size_of::<W>());
    // SAFETY: the gathers read weights k of the four filters for k < n, the scalar loads x[k],
    // which the caller guarantees; the accumulators and offsets are 16 bytes each. Word gathers
    // and LDRD need 4-aligned addresses, halfword gathers 2-aligned.
    unsafe {
        if W::as_f32(&[]).is_some() {
            dots!(F32, "vldrw.u32", acc, x, w, offsets, n, size);
        } else {
            dots!(F16, "vldrh.u32", acc, x, w, offsets, n, size);
        }
    }
}

/// Input rows that share each gathered weight vector: fully connected rows, the pixels of a
/// pointwise convolution, or the windows of four pixels that lie wholly inside the input.
const ROWS: usize = 4;

/// The accumulators of [`ROWS`] rows (four lanes each), the filters' byte offsets and the rows'
/// lines, in the layout [`dots_rows`] loads.
#[repr(C)]
struct Block {
    acc: [[f32; 4]; ROWS],
    offsets: [u32; 4],
    /// Values per line.
    len: u32,
    /// Bytes from the end of a row's line to the start of its next.
    skip: u32,
    /// Lines (at least 1), counted down by [`dots_rows`].
    lines: u32,
}

impl Block {
    /// Zero sums over `lines` lines of `len` values, `skip` bytes apart.
    fn new(offsets: [u32; 4], len: usize, skip: usize, lines: usize) -> Self {
        let (len, skip, lines) = (len as u32, skip as u32, lines as u32);
        Self { acc: [[0.0; 4]; ROWS], offsets, len, skip, lines }
    }
}

/// [`dots`] for [`ROWS`] rows at once, into `block.acc[r]`, each gathered weight vector
/// multiplied by every row's value: row `r` is `block.lines` lines of `block.len` values from
/// `x[r]`, each line `block.skip` bytes after the end of the one before; the filters (at
/// `block.offsets` from `w`) go on from line to line without a gap.
///
/// # Safety
/// As for [`dots`], for each row's lines and the filters' `lines × len` weights; `block.lines`
/// must be at least 1.
#[inline(always)]
unsafe fn dots_rows<W: Weight>(block: &mut Block, x: [*const f32; ROWS], w: *const W) {
    let (block, size) = (core::ptr::from_mut(block), size_of::<W>());
    // SAFETY: as in `dots`, for the four rows' lines; `block` is 92 bytes, word-aligned.
    unsafe {
        if W::as_f32(&[]).is_some() {
            dots_rows!(F32, "vldrw.u32", block, x, w, size);
        } else {
            dots_rows!(F16, "vldrh.u32", block, x, w, size);
        }
    }
}

/// Byte offsets from filter `first` of filters `first..first + 4` (each `len` weights `W`), the
/// last of `units` repeated past it (its lanes are computed but not written).
#[inline(always)]
fn offsets<W>(first: usize, len: usize, units: usize) -> [u32; 4] {
    core::array::from_fn(|i| (((first + i).min(units - 1) - first) * len * size_of::<W>()) as u32)
}

/// Writes `act(acc[i] + bias[i])` to `out[i]` for the first `out.len()` (1..=4) lanes, as
/// [`ClampF32::apply`] does: the sum, then the bounds chosen by comparisons (`VCMP`, `VPSEL`: below
/// the minimum gives the minimum, else above the maximum the maximum; NaN passes, as every
/// comparison with it is false).
#[inline(always)]
fn finish(acc: &[f32; 4], bias: &[f32], act: ClampF32, out: &mut [f32]) {
    let n = out.len().min(bias.len()).min(4);
    // SAFETY: predicated to the first `n` lanes, the loads read `n` biases and the store writes
    // `n` outputs; `acc` is 16 bytes. All word-aligned.
    unsafe {
        asm!(
            "vldrw.u32 q0, [{acc}]",
            "vctp.32 {n}",
            "vpstt",
            "vldrwt.u32 q1, [{bias}]",
            "vaddt.f32 q0, q0, q1",
            "vdup.32 q2, {max}",
            "vcmp.f32 gt, q0, {max}",
            "vpsel q1, q2, q0",
            // `min > x`, not `x < min`: `LT` holds for unordered operands (NaN), `GT` does not.
            "vdup.32 q2, {min}",
            "vcmp.f32 gt, q2, q0",
            "vpsel q1, q2, q1",
            "vctp.32 {n}",
            "vpst",
            "vstrwt.32 q1, [{out}]",
            acc = in(reg) acc.as_ptr(),
            bias = in(reg) bias.as_ptr(),
            out = in(reg) out.as_mut_ptr(),
            n = in(reg) n,
            min = in(reg) act.min.to_bits(),
            max = in(reg) act.max.to_bits(),
            out("q0") _,
            out("q1") _,
            out("q2") _,
            options(nostack),
        );
    }
}

/// [`crate::kernels::fully_connected::fully_connected_f32`] with MVE: four units at a time over
/// [`ROWS`] rows, then over each row left (the reference kernel after a flush, see the module
/// doc).
pub fn fully_connected_f32<W: Weight>(
    g: &FcGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let (rows, depth, units) = (g.rows, g.depth, g.units);
    let sized = x.len() >= rows * depth && w.len() >= units * depth && bias.len() >= units;
    let reference = |out: &mut [f32]| fully_connected::fully_connected_f32(g, x, w, bias, act, out);
    if !(sized && out.len() >= rows * units && units > 0 && vector::<W>()) {
        return reference(out);
    }
    let grouped = rows / ROWS * ROWS;
    let exact = without_flush(|| {
        for u in (0..units).step_by(4) {
            let (n, offsets) = ((units - u).min(4), offsets::<W>(u, depth, units));
            // SAFETY (the blocks below): rows r.. hold `depth` values each, filters u..u + 4 (the
            // last repeated past `units`) `depth` weights each (checked by `sized`); slices of
            // f32 and f16 are aligned to their size.
            let filters = unsafe { w.as_ptr().add(u * depth) };
            for r in (0..grouped).step_by(ROWS) {
                let mut block = Block::new(offsets, depth, 0, 1);
                let rows = core::array::from_fn(|i| x[(r + i) * depth..].as_ptr());
                unsafe { dots_rows(&mut block, rows, filters) };
                for (i, acc) in block.acc.iter().enumerate() {
                    finish(acc, &bias[u..][..n], act, &mut out[(r + i) * units + u..][..n]);
                }
            }
            for r in grouped..rows {
                let mut acc = [0.0; 4];
                unsafe { dots(&mut acc, x[r * depth..].as_ptr(), filters, &offsets, depth) };
                finish(&acc, &bias[u..][..n], act, &mut out[r * units + u..][..n]);
            }
        }
    });
    if !exact {
        reference(out);
    }
}

/// [`crate::kernels::conv2d::conv2d_f32`] with MVE: a 1×1 convolution with stride 1 and no padding
/// is a fully connected layer over the pixels; otherwise, four output channels at a time, the
/// windows that lie wholly inside the input [`ROWS`] at a time and the others one by one, each
/// window's runs of taps in the reference's order (the reference kernel after a flush, see the
/// module doc).
pub fn conv2d_f32<W: Weight>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let (cin, cout) = (g.input.c, g.output.c);
    let filter_len = g.kernel[0] * g.kernel[1] * cin;
    let sized = x.len() >= g.input.len()
        && g.output.n <= g.input.n
        && w.len() >= cout * filter_len
        && bias.len() >= cout
        && out.len() >= g.output.len();
    let reference = |out: &mut [f32]| conv2d::conv2d_f32(g, x, w, bias, act, out);
    if !(sized && cin > 0 && cout > 0 && vector::<W>()) {
        return reference(out);
    }
    let same_size = (g.output.h, g.output.w) == (g.input.h, g.input.w);
    if g.kernel == [1, 1] && g.stride == [1, 1] && g.pad == [0, 0] && same_size {
        let fc = FcGeometry { rows: g.input.len() / cin, depth: cin, units: cout };
        return fully_connected_f32(&fc, x, w, bias, act, out);
    }
    let cells = g.kernel[0] * g.kernel[1];
    let exact = without_flush(|| {
        let mut whole = [None; ROWS];
        let mut pending = 0;
        for_each_window(g, |window, pixel| {
            if window.len() < cells {
                return conv2d_window(g, (window, pixel), x, w, bias, act, out);
            }
            whole[pending] = Some((window, pixel));
            pending += 1;
            if let (ROWS, [Some(a), Some(b), Some(c), Some(d)]) = (pending, whole) {
                pending = 0;
                conv2d_whole(g, [a, b, c, d], x, w, bias, act, out);
            }
        });
        for &p in whole.iter().take(pending).flatten() {
            conv2d_window(g, p, x, w, bias, act, out);
        }
    });
    if !exact {
        reference(out);
    }
}

/// The outputs of [`ROWS`] pixels `(window, output pixel)` whose windows lie wholly inside the
/// input (so each window's input is the first one's, moved), four output channels at a time:
/// with a column dilation of 1 a window's rows are the lines of [`dots_rows`] (`KW × Cin` values,
/// the next `dilation × W × Cin` values further), else each cell is.
#[inline(always)]
fn conv2d_whole<W: Weight>(
    g: &ConvGeometry,
    pixels: [(Window, usize); ROWS],
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let (cin, cout, [kh, kw]) = (g.input.c, g.output.c, g.kernel);
    let filter_len = kh * kw * cin;
    let (window, first) = (pixels[0].0, pixels[0].0.first_pixel());
    // Each window's first pixel after the first window's.
    let shifts = pixels.map(|(window, _)| window.first_pixel() - first);
    for u in (0..cout).step_by(4) {
        let (n, offsets) = ((cout - u).min(4), offsets::<W>(u, filter_len, cout));
        // SAFETY (every block below): each window's cells lie in the input (the window walker's,
        // `sized`), `Cin` values each, and its taps in filters u..u + 4 (the last repeated past
        // `cout`).
        let filters = unsafe { w.as_ptr().add(u * filter_len) };
        let at = |px: usize| shifts.map(|shift| unsafe { x.as_ptr().add((px + shift) * cin) });
        let acc = if g.dilation[1] == 1 {
            let skip = (g.dilation[0] * g.input.w - kw) * cin * size_of::<f32>();
            let mut block = Block::new(offsets, kw * cin, skip, kh);
            unsafe { dots_rows(&mut block, at(first), filters) };
            block.acc
        } else {
            let mut block = Block::new(offsets, cin, 0, 1);
            window.for_each_cell(|tap, px| {
                block.lines = 1;
                unsafe { dots_rows(&mut block, at(px), filters.add(tap * cin)) };
            });
            block.acc
        };
        for (acc, &(_, pixel)) in acc.iter().zip(&pixels) {
            finish(acc, &bias[u..][..n], act, &mut out[pixel * cout + u..][..n]);
        }
    }
}

/// The outputs of one pixel `(window, output pixel)`, four output channels at a time, summed
/// over the runs of the window's taps that lie inside the input.
#[inline(always)]
fn conv2d_window<W: Weight>(
    g: &ConvGeometry,
    (window, pixel): (Window, usize),
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let (cin, cout) = (g.input.c, g.output.c);
    let filter_len = g.kernel[0] * g.kernel[1] * cin;
    for u in (0..cout).step_by(4) {
        let (n, offsets) = ((cout - u).min(4), offsets::<W>(u, filter_len, cout));
        let mut acc = [0.0; 4];
        window.for_each_run(|tap, px, count| {
            // SAFETY: the run's `count` pixels from `px` lie in the input (the window walker's
            // cells, `sized`), and its taps in filters u..u + 4 (the last repeated past `cout`):
            // `count × cin` values each.
            unsafe {
                let filters = w.as_ptr().add(u * filter_len + tap * cin);
                dots(&mut acc, x.as_ptr().add(px * cin), filters, &offsets, count * cin);
            }
        });
        finish(&acc, &bias[u..][..n], act, &mut out[pixel * cout + u..][..n]);
    }
}
