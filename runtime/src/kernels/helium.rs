//! int8 kernels for Cortex-M cores with Helium (MVE: Cortex-M55, M85), bit-exact with the
//! reference kernels.
//!
//! Rust has no MVE intrinsics, so the vector code is `asm!`:
//! - inner products with `VMLADAVA.S8` (16 int8 products summed into a 32-bit register), one
//!   row of activations against four filters per pass, in tail-predicated loops (`WLSTP`/`LETP`)
//!   that need no scalar remainder. The input zero point leaves the loop: in the reference's
//!   wrapping i32 arithmetic `Σ (x − zp)·w = Σ x·w − zp·Σ w` exactly, so the raw activations
//!   multiply and `−zp·Σ w` joins each channel's bias, summed once per call (`VADDVA.S8`; a
//!   layer of one row sums the weights in the same pass as the inner products);
//! - convolutions gather each window into one column in the scratch (padding filled with the
//!   input zero point, whose products the folded bias cancels) and multiply it as a row; 1×1
//!   windows read their pixel in place;
//! - depthwise convolutions take 16 channels per pass: activations and weights widened to 16-bit
//!   lanes, products widened to 32 bits (`VMULLB`/`VMULLT`), the zero point folded into the bias
//!   as above (cells outside the input read a buffer of zero points);
//! - the output stage runs four channels at once: `VQRDMULH` is TFLite's saturating rounding
//!   doubling high multiply, and gemmlowp's fix-up (subtract 1 from negative values) before the
//!   rounding shift `VRSHL` makes it round half away from zero as `RoundingDivideByPOT`. Rounding
//!   once is `VQDMULH` (truncating) then `VRSHL`, exact when the shift is at least 1 to the right;
//! - add (same-shape operands) and average pool run four and eight elements per step.
//!
//! A convolution's gathered column lives in the op's planned scratch (`scratch::Target::bytes`);
//! the other working sets are fixed and small (the constants below). What these paths do not
//! cover (a channel multiplier other than 1, windows of more than [`DEPTHWISE_CELLS`] cells,
//! rounding once with a non-negative shift, broadcasting add) runs the Cortex-M DSP kernels,
//! or the reference kernels where those have no path.

pub mod float;

use super::add::AddParams;
use super::conv2d::{for_each_window, Window};
use super::cortex_m_dsp;
use super::pool::{self, rounded_div};
use super::scratch::Scratch;
use super::{ClampI8, ConvGeometry, FcGeometry, Input, Int8Params};
use crate::quant::{Requant, Rounding};

/// Output channels whose output-stage factors one [`Factors`] table holds (64 bytes per four,
/// on the stack).
const BLOCK: usize = 64;

/// Most window cells (`KH × KW`) [`depthwise_conv2d_i8`] takes (8 bytes each, on the stack).
const DEPTHWISE_CELLS: usize = 25;

/// How the output stage rounds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Left shift, `VQRDMULH`, then the rounding right shift with the fix-up of negative values.
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
    /// The bias, minus `zp·Σ w`.
    bias: [i32; 4],
    /// Q31 multiplier.
    multiplier: [i32; 4],
    /// Left shift before the multiply (0..=30).
    left: [i32; 4],
    /// Right shift after it, as the negative count `VRSHL` takes.
    right: [i32; 4],
}

/// The output stage of `4 × QUADS` lanes, in the layout the output stage loads: the output
/// zero point, activation minimum and maximum (four lanes each, 48 bytes), then the quads.
#[repr(C)]
struct Factors<const QUADS: usize> {
    zero_point: [i32; 4],
    min: [i32; 4],
    max: [i32; 4],
    quads: [Quad; QUADS],
    stage: Stage,
}

/// The output stage of the four sums in `$acc` (a Q register), whose [`Quad`] lies at
/// `[$quad, #$bias]` (`#$multiplier`, `#$left`, `#$right`), to clamped outputs in `$acc`.
/// Expects the output zero point in `r4` and the activation bounds in `q4`, `q5` (see
/// [`constants`]); `q6` and `q7` are scratch.
#[rustfmt::skip]
macro_rules! stage {
    (Double, $acc:literal, $quad:literal,
     $bias:literal, $multiplier:literal, $left:literal, $right:literal) => {
        concat!(
            stage!(Load, $quad, $bias), "vadd.i32 ", $acc, ", ", $acc, ", q6\n",
            stage!(Load, $quad, $left), "vshl.s32 ", $acc, ", ", $acc, ", q6\n",
            stage!(Load, $quad, $multiplier), "vqrdmulh.s32 ", $acc, ", ", $acc, ", q6\n",
            // Rounding right shift, half away from zero: negative values lose 1 where the shift
            // is not 0, then VRSHL rounds half up.
            stage!(Load, $quad, $right),
            "vand q7, ", $acc, ", q6\n",
            "vshr.s32 q7, q7, #31\n",
            "vqadd.s32 ", $acc, ", ", $acc, ", q7\n",
            "vrshl.s32 ", $acc, ", ", $acc, ", q6\n",
            stage!(Clamp, $acc),
        )
    };
    (Single, $acc:literal, $quad:literal,
     $bias:literal, $multiplier:literal, $left:literal, $right:literal) => {
        concat!(
            stage!(Load, $quad, $bias), "vadd.i32 ", $acc, ", ", $acc, ", q6\n",
            stage!(Load, $quad, $multiplier), "vqdmulh.s32 ", $acc, ", ", $acc, ", q6\n",
            stage!(Load, $quad, $right), "vrshl.s32 ", $acc, ", ", $acc, ", q6\n",
            stage!(Clamp, $acc),
        )
    };
    // Four factors into q6.
    (Load, $quad:literal, $offset:literal) => {
        concat!("vldrw.u32 q6, [", $quad, ", #", $offset, "]\n")
    };
    (Clamp, $acc:literal) => {
        concat!(
            "vadd.i32 ", $acc, ", ", $acc, ", r4\n",
            "vmax.s32 ", $acc, ", ", $acc, ", q4\n",
            "vmin.s32 ", $acc, ", ", $acc, ", q5\n",
        )
    };
}

/// Loads the output stage's constants from the [`Factors`] at `{f}` (see [`stage`]).
macro_rules! constants {
    () => {
        concat!("ldr r4, [{f}]\n", "vldrw.u32 q4, [{f}, #16]\n", "vldrw.u32 q5, [{f}, #32]\n")
    };
}

impl<const QUADS: usize> Factors<QUADS> {
    fn new(q: &Int8Params, stage: Stage) -> Self {
        Self {
            zero_point: [q.output_zero_point; 4],
            min: [q.act.min; 4],
            max: [q.act.max; 4],
            quads: [Quad::default(); QUADS],
            stage,
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

    /// Sets the first `n` lanes (`n ≤ 4 × QUADS`) to output channels `c0..c0 + n`, whose filters
    /// are the consecutive `len`-byte rows of `w`, the input zero point folded into the biases.
    fn set_filters(&mut self, q: &Int8Params, bias: &[i32], w: &[i8], len: usize, c0: usize, n: usize) {
        for (slot, c) in (c0..c0 + n).enumerate() {
            let filter = &w[c * len..][..len];
            // SAFETY: `filter` holds `len` bytes.
            let sum = unsafe { sum_i8(filter.as_ptr(), len) };
            self.set(slot, q.channel(c), bias[c].wrapping_sub(q.input_zero_point.wrapping_mul(sum)));
        }
    }

    /// Requantizes the four sums `acc` with quad `quad`'s factors, adds the output zero point,
    /// clamps, and stores the first `lanes` (1..=4) as int8 at `out`.
    ///
    /// # Safety
    /// `out` must be writable for `lanes` bytes.
    #[inline(always)]
    unsafe fn store(&self, acc: [i32; 4], quad: usize, out: *mut i8, lanes: usize) {
        macro_rules! run {
            ($stage:ident, [$($store:literal),*] $($operands:tt)*) => {
                // SAFETY: word-aligned 16-byte loads of the factors; the store writes the first
                // `lanes` bytes at `out`, which the caller guarantees are writable. A narrowing
                // store needs a low register (`r1`).
                unsafe {
                    core::arch::asm!(
                        constants!(),
                        "vmov q0[2], q0[0], {a0}, {a2}",
                        "vmov q0[3], q0[1], {a1}, {a3}",
                        stage!($stage, "q0", "{q}", "0", "16", "32", "48"),
                        $($store,)*
                        f = in(reg) core::ptr::from_ref(self),
                        q = in(reg) core::ptr::from_ref(&self.quads[quad]),
                        a0 = in(reg) acc[0],
                        a1 = in(reg) acc[1],
                        a2 = in(reg) acc[2],
                        a3 = in(reg) acc[3],
                        in("r1") out,
                        $($operands)*
                        out("r4") _,
                        out("q0") _,
                        out("q4") _,
                        out("q5") _,
                        out("q6") _,
                        out("q7") _,
                        options(nostack),
                    )
                }
            };
        }
        match (self.stage, lanes) {
            (Stage::Double, 4) => run!(Double, ["vstrb.32 q0, [r1]"]),
            (Stage::Double, _) => {
                run!(Double, ["vctp.32 {lanes}", "vpst", "vstrbt.32 q0, [r1]"] lanes = in(reg) lanes,)
            }
            (Stage::Single, 4) => run!(Single, ["vstrb.32 q0, [r1]"]),
            (Stage::Single, _) => {
                run!(Single, ["vctp.32 {lanes}", "vpst", "vstrbt.32 q0, [r1]"] lanes = in(reg) lanes,)
            }
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

/// `Σ x[i]·w_k[i]` over `i < n` for the four consecutive `n`-byte filters `w_k` from `w`, in
/// wrapping i32 arithmetic.
///
/// # Safety
/// `x` must be readable for `n` bytes, `w` for `4 × n`.
#[inline(always)]
unsafe fn dot4(x: *const i8, w: *const i8, n: usize) -> [i32; 4] {
    let (a0, a1, a2, a3): (i32, i32, i32, i32);
    // SAFETY: the tail-predicated loop reads `n` bytes from `x` and from each filter, which
    // the caller guarantees. `VMLADAVA` needs even-numbered registers.
    unsafe {
        core::arch::asm!(
            "add {w1}, {w0}, {n}",
            "add {w2}, {w1}, {n}",
            "add {w3}, {w2}, {n}",
            "movs r0, #0",
            "movs r2, #0",
            "movs r4, #0",
            "movs r8, #0",
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
            w0 = inout(reg) w => _,
            w1 = out(reg) _,
            w2 = out(reg) _,
            w3 = out(reg) _,
            out("r0") a0,
            out("r2") a1,
            out("r4") a2,
            out("r8") a3,
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

/// `[Σ x[i]·w0[i], Σ x[i]·w1[i], Σ w0[i], Σ w1[i]]` over `i < n`, in wrapping i32 arithmetic.
///
/// # Safety
/// `x`, `w0` and `w1` must be readable for `n` bytes.
#[inline(always)]
unsafe fn dot2_sums(x: *const i8, w: [*const i8; 2], n: usize) -> [i32; 4] {
    let (mut a0, mut a1, mut s0, mut s1) = (0i32, 0i32, 0i32, 0i32);
    // SAFETY: the tail-predicated loop reads `n` bytes from each pointer, which the caller
    // guarantees. `VMLADAVA` and `VADDVA` need even-numbered registers.
    unsafe {
        core::arch::asm!(
            "wlstp.8 lr, {n}, 2f",
            "1:",
            "vldrb.u8 q0, [{x}], #16",
            "vldrb.u8 q1, [{w0}], #16",
            "vldrb.u8 q2, [{w1}], #16",
            "vmladava.s8 r0, q0, q1",
            "vaddva.s8 r4, q1",
            "vmladava.s8 r2, q0, q2",
            "vaddva.s8 r8, q2",
            "letp lr, 1b",
            "2:",
            n = in(reg) n,
            x = inout(reg) x => _,
            w0 = inout(reg) w[0] => _,
            w1 = inout(reg) w[1] => _,
            inout("r0") a0,
            inout("r2") a1,
            inout("r4") s0,
            inout("r8") s1,
            out("lr") _,
            out("q0") _,
            out("q1") _,
            out("q2") _,
            options(nostack, readonly),
        );
    }
    [a0, a1, s0, s1]
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
/// from `out`, four filters per pass (a last partial pass takes the last four filters, or the
/// two-filter inner products when there are fewer, and stores only its own lanes).
///
/// # Safety
/// `x` must be readable for `depth` bytes, `w` for `n × depth`, `out` writable for `n`;
/// `n ≤ 4 × QUADS`.
#[inline(always)]
unsafe fn row_times_filters<const QUADS: usize>(
    x: *const i8,
    w: *const i8,
    depth: usize,
    n: usize,
    f: &Factors<QUADS>,
    out: *mut i8,
) {
    // SAFETY (both blocks): pass `quad` reads filters 4·quad.. + 4 ≤ n and writes outputs
    // 4·quad.. + 4 ≤ n; the last, partial one (n mod 4 = lanes) reads the last four filters
    // (n ≥ 4) or the first n, and writes its own `lanes` outputs.
    for quad in 0..n / 4 {
        unsafe { f.store(dot4(x, w.add(4 * quad * depth), depth), quad, out.add(4 * quad), 4) };
    }
    let (quad, lanes) = (n / 4, n % 4);
    if lanes > 0 {
        unsafe {
            let acc = if n >= 4 {
                let last = dot4(x, w.add((n - 4) * depth), depth);
                core::array::from_fn(|k| last[(4 - lanes + k).min(3)])
            } else {
                let filter = |k: usize| w.add(k.min(n - 1) * depth);
                let [a0, a1, _, _] = dot2_sums(x, [filter(0), filter(1)], depth);
                [a0, a1, dot2_sums(x, [filter(2), filter(2)], depth)[0], 0]
            };
            f.store(acc, quad, out.add(4 * quad), lanes);
        }
    }
}

/// [`row_times_filters`] for a layer of one row, which reads each filter once: the weight sums
/// come with the inner products (two filters per pass) instead of from a pass of their own, and
/// `−zp·Σ w` joins the sums rather than the biases (`f` holds the plain biases).
///
/// # Safety
/// As for [`row_times_filters`].
#[inline(always)]
unsafe fn one_row_times_filters<const QUADS: usize>(
    x: *const i8,
    w: *const i8,
    depth: usize,
    n: usize,
    zero_point: i32,
    f: &Factors<QUADS>,
    out: *mut i8,
) {
    for quad in 0..n.div_ceil(4) {
        let (k0, lanes) = (4 * quad, (n - 4 * quad).min(4));
        // SAFETY (both blocks): pass `quad` reads filters k0.. < n (the last partial one
        // repeating filter n − 1) and writes outputs k0.. < k0 + lanes ≤ n.
        let filter = |k: usize| unsafe { w.add((k0 + k.min(lanes - 1)) * depth) };
        unsafe {
            let [a0, a1, s0, s1] = dot2_sums(x, [filter(0), filter(1)], depth);
            let [a2, a3, s2, s3] = dot2_sums(x, [filter(2), filter(3)], depth);
            let fold = |a: i32, s: i32| a.wrapping_sub(zero_point.wrapping_mul(s));
            f.store([fold(a0, s0), fold(a1, s1), fold(a2, s2), fold(a3, s3)], quad, out.add(k0), lanes);
        }
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
/// [`BLOCK`] units, the folded biases, then every row against the block's filters (a single row
/// sums the weights on the way).
pub fn fully_connected_i8(
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    scratch: Scratch,
) {
    let (rows, depth, units) = (g.rows, g.depth, g.units);
    let stage = Stage::of(q);
    let sized = x.len() >= rows * depth && fits(q, w, bias, depth, units, out, rows * units);
    let (Some(stage), true, false) = (stage, sized, depth == 0) else {
        return cortex_m_dsp::fully_connected_i8(g, q, x, w, bias, out, scratch);
    };
    let mut f = Factors::<{ BLOCK / 4 }>::new(q, stage);
    for c0 in (0..units).step_by(BLOCK) {
        let n = (units - c0).min(BLOCK);
        if rows == 1 {
            for (slot, c) in (c0..c0 + n).enumerate() {
                f.set(slot, q.channel(c), bias[c]);
            }
            // SAFETY: as below, for the one row.
            unsafe {
                let (w, out) = (w.as_ptr().add(c0 * depth), out.as_mut_ptr().add(c0));
                one_row_times_filters(x.as_ptr(), w, depth, n, q.input_zero_point, &f, out);
            }
            continue;
        }
        f.set_filters(q, bias, w, depth, c0, n);
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
/// column in `scratch`) multiplied by the block's filters.
pub fn conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    mut scratch: Scratch,
) {
    let (cin, cout) = (g.input.c, g.output.c);
    let filter_len = g.kernel[0] * g.kernel[1] * cin;
    let sized = x.len() >= g.input.len()
        && g.output.n <= g.input.n
        && fits(q, w, bias, filter_len, cout, out, g.output.len());
    let (Some(stage), true, false) = (Stage::of(q), sized, filter_len == 0) else {
        return cortex_m_dsp::conv2d_i8(g, q, x, w, bias, out, scratch);
    };
    if g.kernel == [1, 1] && g.stride == [1, 1] && g.pad == [0, 0] {
        let fc = FcGeometry { rows: g.input.len() / cin, depth: cin, units: cout };
        return fully_connected_i8(&fc, q, x, w, bias, out, scratch);
    }
    let Some(column) = scratch.take::<i8>(filter_len) else {
        return cortex_m_dsp::conv2d_i8(g, q, x, w, bias, out, scratch);
    };
    let cells = g.kernel[0] * g.kernel[1];
    let rows =
        (g.dilation[1] == 1).then_some([g.kernel[0], g.kernel[1] * cin, g.dilation[0] * g.input.w * cin]);
    // In range: the loader checks zero points are int8.
    let zero_point = q.input_zero_point as i8;
    let mut f = Factors::<{ BLOCK / 4 }>::new(q, stage);
    for c0 in (0..cout).step_by(BLOCK) {
        let n = (cout - c0).min(BLOCK);
        f.set_filters(q, bias, w, filter_len, c0, n);
        for_each_window(g, |window, pixel| {
            let row = if cells == 1 && window.len() == 1 {
                // SAFETY: the window's pixel lies in the input, which `x` holds.
                unsafe { x.as_ptr().add(window.first_pixel() * cin) }
            } else {
                gather(window, x, cin, cells, rows, zero_point, column);
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
/// the input filled with `zero_point`. A window wholly inside the input copies its `rows`
/// (count, bytes, input stride in bytes) when they are contiguous.
#[inline(always)]
fn gather(
    window: Window,
    x: &[i8],
    cin: usize,
    cells: usize,
    rows: Option<[usize; 3]>,
    zero_point: i8,
    column: &mut [i8],
) {
    if let (true, Some([count, len, stride])) = (window.len() == cells, rows) {
        let first = window.first_pixel() * cin;
        for (row, dst) in column.chunks_exact_mut(len).take(count).enumerate() {
            let src = &x[first + row * stride..][..len];
            // SAFETY: both slices hold `len` bytes.
            unsafe { copy_i8(dst.as_mut_ptr(), src.as_ptr(), len) };
        }
        return;
    }
    if window.len() < cells {
        column.fill(zero_point);
    }
    for (tap, px, count) in window.runs() {
        let (dst, src) = (&mut column[tap * cin..][..count * cin], &x[px * cin..][..count * cin]);
        // SAFETY: both slices hold `count × cin` bytes.
        unsafe { copy_i8(dst.as_mut_ptr(), src.as_ptr(), dst.len()) };
    }
}

/// [`super::depthwise_conv2d::depthwise_conv2d_i8`] for a channel multiplier of 1: per block of
/// up to [`BLOCK`] channels, per output pixel, the window's cells become a table of (activation
/// address, weight offset) pairs, and one asm block per 16 channels (then at most 8) loops over
/// it, accumulating products in 32-bit lanes, then runs the output stage of its channels. Every
/// window takes all its cells (those outside the input read a buffer of input zero points), so
/// `−zp·Σ w` over the whole filter joins each channel's bias. Other multipliers and windows of
/// more than [`DEPTHWISE_CELLS`] cells run the DSP kernel.
pub fn depthwise_conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    scratch: Scratch,
) {
    let c = g.input.c;
    let [kh, kw] = g.kernel;
    let cells = kh * kw;
    let sized = x.len() >= g.input.len()
        && g.output.n <= g.input.n
        && fits(q, w, bias, cells, c, out, g.output.len());
    let (Some(stage), true, true) = (Stage::of(q), sized, g.output.c == c && cells <= DEPTHWISE_CELLS) else {
        return cortex_m_dsp::depthwise_conv2d_i8(g, q, x, w, bias, out, scratch);
    };
    // In range: the loader checks zero points are int8. A pass reads at most 16 bytes from
    // its offset in the block.
    let padding = [q.input_zero_point as i8; BLOCK];
    // Cells of a window wholly inside the input: offsets from its top-left pixel.
    let mut inside = [[0u32; 2]; DEPTHWISE_CELLS];
    for (tap, cell) in inside.iter_mut().enumerate().take(cells) {
        let (ky, kx) = (tap / kw, tap % kw);
        *cell = [((ky * g.dilation[0] * g.input.w + kx * g.dilation[1]) * c) as u32, (tap * c) as u32];
    }
    let inside = &inside[..cells];
    // Cells of a window at the border: addresses (of the block's first channel), of the
    // padding where outside the input.
    let mut border = [[0u32; 2]; DEPTHWISE_CELLS];
    let (x_at, w_at, out_at) = (x.as_ptr() as usize, w.as_ptr(), out.as_mut_ptr());
    for b0 in (0..c).step_by(BLOCK) {
        let block = (c - b0).min(BLOCK);
        // Passes (first channel in the block, channels): 16 channels, then at most 8. The pass
        // from p0 owns quads p0 / 4..: quad j of it holds channels p0 + 8(j / 2) + j % 2 + 2k
        // (k = 0..4), the even and odd lanes of each half, as VMULLB and VMULLT leave them.
        let mut passes = [(0usize, 0usize); BLOCK / 8];
        let (mut count, mut p0) = (0, 0);
        let mut f = Factors::<{ BLOCK / 4 }>::new(q, stage);
        // Each channel's weights summed over the window, one tap (a row of channels) at a time.
        let mut sums = [0i32; BLOCK];
        for tap in w.chunks_exact(c).take(cells) {
            for (sum, &v) in sums.iter_mut().zip(&tap[b0..b0 + block]) {
                *sum = sum.wrapping_add(i32::from(v));
            }
        }
        while p0 < block {
            let lanes = if block - p0 >= 16 { 16 } else { (block - p0).min(8) };
            for (j, k) in (0..4).flat_map(|j| (0..4).map(move |k| (j, k))) {
                let at = p0 + 8 * (j / 2) + j % 2 + 2 * k;
                if at < p0 + lanes {
                    let ch = b0 + at;
                    let folded = bias[ch].wrapping_sub(q.input_zero_point.wrapping_mul(sums[at]));
                    f.set(p0 + 4 * j + k, q.channel(ch), folded);
                }
            }
            passes[count] = (p0, lanes);
            count += 1;
            p0 += lanes;
        }
        let passes = &passes[..count];
        for_each_window(g, |window, pixel| {
            let (x, table) = if window.len() == cells {
                (x_at + window.first_pixel() * c + b0, inside)
            } else {
                for (tap, cell) in border.iter_mut().enumerate().take(cells) {
                    *cell = [padding.as_ptr() as u32, (tap * c) as u32];
                }
                window.for_each_cell(|tap, px| border[tap][0] = (x_at + px * c + b0) as u32);
                (0, &border[..cells])
            };
            for &(p0, lanes) in passes {
                // SAFETY: every cell's activations (an input pixel's channels b0 + p0.., or the
                // padding from p0) and weights w[wo + b0 + p0..] hold `lanes` bytes, and so
                // does the output from pixel × c + b0 + p0 (cells come from the window walker;
                // `sized` checks the lengths); the pass's quads are within `f`.
                unsafe {
                    let (w, out) = (w_at.add(b0 + p0), out_at.add(pixel * c + b0 + p0));
                    if lanes == 16 {
                        f.taps16(p0 / 4, x + p0, w, table, out);
                    } else {
                        f.taps8(p0 / 4, x + p0, w, table, out, lanes);
                    }
                }
            }
        });
    }
}

/// The depthwise pass over the cells `[xo, wo]` of `{table}` (`{cells}` of them): sums of the
/// products of the activations at `{x} + xo` and the weights at `{w} + wo`, the even and odd
/// channels of the first 8 in `q0`, `q1` (`$low`: their loads into `q5`, `q6`) and of the next
/// 8 in `q2`, `q3` (`$high`), then the output stage of every quad (`$quads`: accumulator and
/// the offsets of its factors) and `$store`. Widening loads need low registers: `r4`, `r5` hold
/// the cell's addresses, `r3` the output.
macro_rules! depthwise_pass {
    ($stage:ident, [$($setup:literal),*], [$($low:literal),*], [$($high:literal),*],
     [$(($acc:literal, $b:literal, $m:literal, $l:literal, $r:literal)),*], [$($store:literal),*],
     $table:expr, $x:expr, $w:expr, $f:expr, $quad:expr, $out:expr, $($operands:tt)*) => {
        core::arch::asm!(
            "vmov.i32 q0, #0",
            "vmov.i32 q1, #0",
            "vmov.i32 q2, #0",
            "vmov.i32 q3, #0",
            $($setup,)*
            "wls lr, {cells}, 2f",
            "1:",
            "ldrd r4, r5, [{table}], #8",
            "add r4, r4, {x}",
            "add r5, r5, {w}",
            $($low,)*
            "vmullb.s16 q7, q5, q6",
            "vadd.i32 q0, q0, q7",
            "vmullt.s16 q7, q5, q6",
            "vadd.i32 q1, q1, q7",
            $($high,)*
            "le lr, 1b",
            "2:",
            constants!(),
            $(stage!($stage, $acc, "{q}", $b, $m, $l, $r),)*
            $($store,)*
            cells = in(reg) $table.len(),
            table = inout(reg) $table.as_ptr() => _,
            x = in(reg) $x,
            w = in(reg) $w,
            f = in(reg) core::ptr::from_ref($f),
            q = in(reg) $quad,
            in("r3") $out,
            $($operands)*
            out("r4") _,
            out("r5") _,
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

/// [`depthwise_pass`] of 16 channels.
macro_rules! depthwise16 {
    ($stage:ident, $table:expr, $x:expr, $w:expr, $f:expr, $quad:expr, $out:expr) => {
        depthwise_pass!(
            $stage,
            [],
            ["vldrb.s16 q5, [r4]", "vldrb.s16 q6, [r5]"],
            [
                "vldrb.s16 q5, [r4, #8]",
                "vldrb.s16 q6, [r5, #8]",
                "vmullb.s16 q7, q5, q6",
                "vadd.i32 q2, q2, q7",
                "vmullt.s16 q7, q5, q6",
                "vadd.i32 q3, q3, q7"
            ],
            [
                ("q0", "0", "16", "32", "48"),
                ("q1", "64", "80", "96", "112"),
                ("q2", "128", "144", "160", "176"),
                ("q3", "192", "208", "224", "240")
            ],
            // Channel pairs into 16-bit lanes, in order, then their low bytes.
            ["vmovnt.i32 q0, q1", "vmovnt.i32 q2, q3", "vstrb.16 q0, [r3]", "vstrb.16 q2, [r3, #8]"],
            $table,
            $x,
            $w,
            $f,
            $quad,
            $out,
        )
    };
}

/// [`depthwise_pass`] of the first `{lanes}` (≤ 8) channels: predicated loads (the others
/// read as 0) and store.
macro_rules! depthwise8 {
    ($stage:ident, $table:expr, $x:expr, $w:expr, $f:expr, $quad:expr, $out:expr, $lanes:expr) => {
        depthwise_pass!(
            $stage,
            ["vctp.16 {lanes}"],
            ["vpstt", "vldrbt.s16 q5, [r4]", "vldrbt.s16 q6, [r5]"],
            [],
            [("q0", "0", "16", "32", "48"), ("q1", "64", "80", "96", "112")],
            ["vmovnt.i32 q0, q1", "vctp.16 {lanes}", "vpst", "vstrbt.16 q0, [r3]"],
            $table,
            $x,
            $w,
            $f,
            $quad,
            $out,
            lanes = in(reg) $lanes,
        )
    };
}

impl Factors<{ BLOCK / 4 }> {
    /// The depthwise pass of 16 channels over the cells of `table` with the quads from `quad`:
    /// activations from `x` (an address, or an offset when the table holds addresses), weights
    /// from `w`; outputs at `out`.
    ///
    /// # Safety
    /// Every cell's 16 activations and weights must be readable, `out` writable for 16 bytes,
    /// `quad + 4 ≤ BLOCK / 4`.
    #[inline(always)]
    unsafe fn taps16(&self, quad: usize, x: usize, w: *const i8, table: &[[u32; 2]], out: *mut i8) {
        // SAFETY: the loads read what the caller guarantees; the factor loads are word-aligned
        // within `self`; the stores write the 16 output bytes.
        unsafe {
            let quad = self.quads.as_ptr().add(quad);
            match self.stage {
                Stage::Double => depthwise16!(Double, table, x, w, self, quad, out),
                Stage::Single => depthwise16!(Single, table, x, w, self, quad, out),
            }
        }
    }

    /// [`Factors::taps16`] of the first `lanes` (≤ 8) channels.
    ///
    /// # Safety
    /// Every cell's `lanes` activations and weights must be readable, `out` writable for
    /// `lanes` bytes, `quad + 2 ≤ BLOCK / 4`.
    #[inline(always)]
    unsafe fn taps8(
        &self,
        quad: usize,
        x: usize,
        w: *const i8,
        table: &[[u32; 2]],
        out: *mut i8,
        lanes: usize,
    ) {
        // SAFETY: as in `taps16`, predicated to `lanes` bytes.
        unsafe {
            let quad = self.quads.as_ptr().add(quad);
            match self.stage {
                Stage::Double => depthwise8!(Double, table, x, w, self, quad, out, lanes),
                Stage::Single => depthwise8!(Single, table, x, w, self, quad, out, lanes),
            }
        }
    }
}

/// [`AddParams`]' per-tensor constants, in the layout [`add_i8`] loads them.
#[repr(C)]
struct AddConstants {
    /// Right shifts (negative counts) of `a`, `b` and the sum, and the activation bounds, four
    /// lanes each.
    right_a: [i32; 4],
    right_b: [i32; 4],
    right_out: [i32; 4],
    min: [i32; 4],
    max: [i32; 4],
    a_offset: i32,
    b_offset: i32,
    a_multiplier: i32,
    b_multiplier: i32,
    out_multiplier: i32,
    zero_point: i32,
    left_out: i32,
}

/// [`super::add::add_i8`] four elements at a time when both inputs have the output's shape,
/// TFLite's int8 left shift (20) and factors below 1 for the inputs (every model's): each input
/// offset, shifted and requantized, the sum requantized, offset and clamped, in one
/// tail-predicated loop. Other cases run the reference kernel.
#[allow(clippy::too_many_arguments)]
pub fn add_i8(
    out_shape: &[usize],
    a_shape: &[usize],
    a: Input<i8>,
    b_shape: &[usize],
    b: Input<i8>,
    p: &AddParams,
    out: &mut [i8],
    _: Scratch,
) {
    let (n, out_at) = (out.len(), out.as_mut_ptr());
    let operand = |x: Input<i8>| match x {
        Input::Separate(x) => (x.len() >= n).then_some(x.as_ptr()),
        Input::InPlace => Some(out_at.cast_const()),
    };
    let same_shapes =
        a_shape == out_shape && b_shape == out_shape && out_shape.iter().product::<usize>() == n;
    let vector = same_shapes && p.left_shift == 20 && p.a.shift <= 0 && p.b.shift <= 0;
    let (true, Some(a_at), Some(b_at)) = (vector, operand(a), operand(b)) else {
        return super::add::add_i8(out_shape, a_shape, a, b_shape, b, p, out);
    };
    let right = |r: Requant| [r.shift.clamp(-31, 0); 4];
    let k = AddConstants {
        right_a: right(p.a),
        right_b: right(p.b),
        right_out: right(p.output),
        min: [p.act.min; 4],
        max: [p.act.max; 4],
        a_offset: p.a_offset,
        b_offset: p.b_offset,
        a_multiplier: p.a.multiplier,
        b_multiplier: p.b.multiplier,
        out_multiplier: p.output.multiplier,
        zero_point: p.output_offset,
        left_out: p.output.shift.max(0),
    };
    // SAFETY: the tail-predicated loop reads `n` bytes from each operand (checked above, or the
    // output itself, each element read before it is overwritten) and writes the `n` output
    // bytes; the constants are word-aligned loads of `k`. Widening loads and narrowing stores
    // need low registers (`r0`..`r2`); the constants loaded after `WLSTP` are scalar, which
    // tail predication leaves alone.
    unsafe {
        core::arch::asm!(
            "vldrw.u32 q3, [{k}]",
            "vldrw.u32 q4, [{k}, #16]",
            "vldrw.u32 q5, [{k}, #32]",
            "vldrw.u32 q6, [{k}, #48]",
            "vldrw.u32 q7, [{k}, #64]",
            "wlstp.32 lr, {n}, 2f",
            "ldrd {ao}, {bo}, [{k}, #80]",
            "ldrd {ma}, {mb}, [{k}, #88]",
            "ldrd {n}, {zp}, [{k}, #96]",
            "ldr {k}, [{k}, #104]",
            "1:",
            "vldrb.s32 q0, [r0], #4",
            "vldrb.s32 q1, [r1], #4",
            "vadd.i32 q0, q0, {ao}",
            "vadd.i32 q1, q1, {bo}",
            "vshl.i32 q0, q0, #20",
            "vshl.i32 q1, q1, #20",
            "vqrdmulh.s32 q0, q0, {ma}",
            "vand q2, q0, q3",
            "vshr.s32 q2, q2, #31",
            "vqadd.s32 q0, q0, q2",
            "vrshl.s32 q0, q0, q3",
            "vqrdmulh.s32 q1, q1, {mb}",
            "vand q2, q1, q4",
            "vshr.s32 q2, q2, #31",
            "vqadd.s32 q1, q1, q2",
            "vrshl.s32 q1, q1, q4",
            "vadd.i32 q0, q0, q1",
            "vshl.s32 q0, {k}",
            "vqrdmulh.s32 q0, q0, {n}",
            "vand q2, q0, q5",
            "vshr.s32 q2, q2, #31",
            "vqadd.s32 q0, q0, q2",
            "vrshl.s32 q0, q0, q5",
            "vadd.i32 q0, q0, {zp}",
            "vmax.s32 q0, q0, q6",
            "vmin.s32 q0, q0, q7",
            "vstrb.32 q0, [r2], #4",
            "letp lr, 1b",
            "2:",
            n = inout(reg) n => _,
            k = inout(reg) &k => _,
            ao = out(reg) _,
            bo = out(reg) _,
            ma = out(reg) _,
            mb = out(reg) _,
            zp = out(reg) _,
            inout("r0") a_at => _,
            inout("r1") b_at => _,
            inout("r2") out_at => _,
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
}

/// [`super::pool::average_pool_i8`] with the window sums 8 channels at a time in 16-bit lanes
/// (one asm loop per run of the window's pixels), then TFLite's rounded division per channel.
/// Windows the lanes cannot sum ([`pool::lane_sums_fit`]) run the reference kernel.
pub fn average_pool_i8(g: &ConvGeometry, x: &[i8], act: ClampI8, out: &mut [i8]) {
    let c = g.output.c;
    if !pool::lane_sums_fit(g, x, out) {
        return pool::average_pool_i8(g, x, act, out);
    }
    for_each_window(g, |window, pixel| {
        for c0 in (0..c).step_by(8) {
            let lanes = (c - c0).min(8);
            let mut sums = [0i16; 8];
            for (_, px, count) in window.runs() {
                // SAFETY: the run's `count` consecutive pixels from px lie in the input; the
                // loads read their channels c0..c0 + lanes; `sums` is 16 bytes.
                unsafe {
                    core::arch::asm!(
                        "vldrh.u16 q0, [{sums}]",
                        "vctp.16 {lanes}",
                        "wls lr, {count}, 2f",
                        "1:",
                        "vpst",
                        "vldrbt.s16 q1, [r4]",
                        "add r4, r4, {step}",
                        "vadd.i16 q0, q0, q1",
                        "le lr, 1b",
                        "2:",
                        "vstrh.16 q0, [{sums}]",
                        sums = in(reg) sums.as_mut_ptr(),
                        lanes = in(reg) lanes,
                        count = in(reg) count,
                        step = in(reg) c,
                        inout("r4") x.as_ptr().add(px * c + c0) => _,
                        out("lr") _,
                        out("q0") _,
                        out("q1") _,
                        options(nostack),
                    );
                }
            }
            let outputs = &mut out[pixel * c + c0..][..lanes];
            for (o, &sum) in outputs.iter_mut().zip(&sums) {
                *o = act.apply(rounded_div(i32::from(sum), window.len()));
            }
        }
    });
}
