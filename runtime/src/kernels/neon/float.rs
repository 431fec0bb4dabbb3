//! f32 kernels (f32 or f16 weights) for aarch64 with NEON, bit-exact with the reference kernels.
//!
//! The reference adds each output's products one at a time, `acc = acc + x × w` (a multiply then
//! an add: Rust never fuses them), over the taps in window order, padded taps skipped. A sum
//! reordered or fused would round differently, so these kernels vectorize across output channels
//! instead of along the sum: each of four lanes is one output channel and adds its products in
//! the reference's order with `FMUL` then `FADD` (never `FMLA`). Fully connected and convolution
//! weights are `[Cout, K]`, so four consecutive `k` of four filters are loaded transposed (`LD4`
//! to a lane, one per filter), then each column is multiplied by one input value (`FMUL` by
//! element) and added. The transposed weights serve four input rows at once: fully connected
//! rows, the pixels of a 1×1 convolution, whole windows of a small filter gathered into rows on
//! the stack, or four consecutive windows with the same runs of taps; windows cut by the padding
//! are summed over their runs of taps, as the reference does. Depthwise weights are already
//! channel-minor and load directly, 32 channels per pass over a window. Bias and activation are
//! applied four lanes at a time with the reference's comparisons. f16 weights are widened four at
//! a time by `FCVTL` (exact, as [`Weight::to_f32`]) and transposed in registers.
//!
//! NaN results are NaN where the reference's are, but their sign and payload bits may differ:
//! which NaN operand an IEEE operation propagates is not specified, Rust does not promise NaN
//! bits (LLVM may swap the operands of an addition or multiplication), and x86 and Arm create
//! different default NaNs. Every other result, ±0 and ±inf included, equals the reference bit
//! for bit.

use core::arch::aarch64::{
    float32x4_t, float32x4x4_t, vaddq_f32, vbslq_f32, vcgtq_f32, vcltq_f32, vdupq_n_f32, vld1_u16, vld1q_f32,
    vld4q_lane_f32, vmulq_f32, vmulq_laneq_f32, vmulq_n_f32, vreinterpretq_f32_f64, vreinterpretq_f64_f32,
    vst1q_f32, vtrn1q_f32, vtrn1q_f64, vtrn2q_f32, vtrn2q_f64,
};
use core::arch::asm;

use crate::kernels::conv2d::{for_each_window, Window};
use crate::kernels::scratch::Scratch;
use crate::kernels::{depthwise_conv2d, ClampF32, ConvGeometry, FcGeometry, Weight};

/// Input rows that share one transposed block of weights.
const ROWS: usize = 4;

/// Four weights as f32.
#[target_feature(enable = "neon")]
#[inline]
fn widen<W: Weight>(w: &[W; 4]) -> float32x4_t {
    if let Some(f32s) = W::as_f32(w) {
        load(four(f32s, 0))
    } else if let Some(bits) = W::as_f16_bits(w) {
        widen_f16(four(bits, 0))
    } else {
        load(&w.map(W::to_f32))
    }
}

/// Four f16 (bit patterns) widened to f32 by `FCVTL`: exact, as [`Weight::to_f32`] (a NaN
/// keeps its sign and payload, made quiet).
#[target_feature(enable = "neon")]
#[inline]
fn widen_f16(bits: &[u16; 4]) -> float32x4_t {
    // SAFETY: reads the four u16 `bits` refers to (no alignment needed).
    let h = unsafe { vld1_u16(bits.as_ptr()) };
    let f: float32x4_t;
    // SAFETY: one register-only Advanced SIMD instruction (Armv8.0); no memory, stack or flags.
    unsafe {
        asm!(
            "fcvtl {f:v}.4s, {h:v}.4h",
            f = lateout(vreg) f,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    f
}

/// Four input values.
#[target_feature(enable = "neon")]
#[inline]
fn load(x: &[f32; 4]) -> float32x4_t {
    // SAFETY: reads the four f32 `x` refers to (no alignment needed).
    unsafe { vld1q_f32(x.as_ptr()) }
}

/// The four elements of `s` from `at`.
#[inline(always)]
fn four<T>(s: &[T], at: usize) -> &[T; 4] {
    &s[at..].as_chunks::<4>().0[0]
}

/// `c` with lane `u` of its four vectors replaced by the four weights of `w[u]` as f32, one
/// vector per weight: `w` transposed, by `LD4` to a lane for f32 weights, else widened and
/// transposed in registers.
#[target_feature(enable = "neon")]
#[inline]
fn transpose<W: Weight>(c: float32x4x4_t, w: [&[W; 4]; 4]) -> float32x4x4_t {
    let [Some(r0), Some(r1), Some(r2), Some(r3)] = w.map(|w| W::as_f32(w)) else {
        return transpose_rows(w.map(|w| widen(w)));
    };
    // SAFETY: each load reads four f32 of `w`.
    unsafe {
        let c = vld4q_lane_f32::<0>(r0.as_ptr(), c);
        let c = vld4q_lane_f32::<1>(r1.as_ptr(), c);
        let c = vld4q_lane_f32::<2>(r2.as_ptr(), c);
        vld4q_lane_f32::<3>(r3.as_ptr(), c)
    }
}

/// The columns of the 4×4 matrix whose rows are `r` (for weights widened in registers).
#[target_feature(enable = "neon")]
#[inline]
fn transpose_rows(r: [float32x4_t; 4]) -> float32x4x4_t {
    let pairs = |a, b| (vreinterpretq_f64_f32(vtrn1q_f32(a, b)), vreinterpretq_f64_f32(vtrn2q_f32(a, b)));
    let ((t0, t1), (t2, t3)) = (pairs(r[0], r[1]), pairs(r[2], r[3]));
    float32x4x4_t(
        vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
        vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
    )
}

/// `acc[r]` plus, in lane `u`, the products `x[r][k] × w[u][k]` for `k = 0, 1, …` over the
/// length of `x[0]` (the other rows and the filters at least as long), added one at a time.
#[target_feature(enable = "neon")]
#[inline]
fn dots<W: Weight, const R: usize>(
    mut acc: [float32x4_t; R],
    x: [&[f32]; R],
    w: [&[W]; 4],
) -> [float32x4_t; R] {
    let n = x[0].len();
    let chunks = n / 4;
    let x4 = x.map(|x| &x[..n].as_chunks::<4>().0[..chunks]);
    let w4 = w.map(|w| &w[..n].as_chunks::<4>().0[..chunks]);
    // Every lane is loaded before it is used: the zeros only start the chain of loads.
    let mut c = float32x4x4_t(vdupq_n_f32(0.0), vdupq_n_f32(0.0), vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    for i in 0..chunks {
        c = transpose(c, w4.map(|w| &w[i]));
        for (acc, x4) in acc.iter_mut().zip(x4) {
            let xv = load(&x4[i]);
            *acc = vaddq_f32(*acc, vmulq_laneq_f32::<0>(c.0, xv));
            *acc = vaddq_f32(*acc, vmulq_laneq_f32::<1>(c.1, xv));
            *acc = vaddq_f32(*acc, vmulq_laneq_f32::<2>(c.2, xv));
            *acc = vaddq_f32(*acc, vmulq_laneq_f32::<3>(c.3, xv));
        }
    }
    for k in 4 * chunks..n {
        let c = widen(&w.map(|w| w[k]));
        for (acc, x) in acc.iter_mut().zip(x) {
            *acc = vaddq_f32(*acc, vmulq_n_f32(c, x[k]));
        }
    }
    acc
}

/// Fused activation bounds in every lane.
#[derive(Clone, Copy)]
struct Clamp {
    min: float32x4_t,
    max: float32x4_t,
}

impl Clamp {
    /// `act`'s bounds.
    #[target_feature(enable = "neon")]
    #[inline]
    fn new(act: ClampF32) -> Self {
        Self { min: vdupq_n_f32(act.min), max: vdupq_n_f32(act.max) }
    }

    /// [`ClampF32::apply`] in each lane: the same comparisons and selections (NaN passes).
    #[target_feature(enable = "neon")]
    #[inline]
    fn apply(self, v: float32x4_t) -> float32x4_t {
        vbslq_f32(vcltq_f32(v, self.min), self.min, vbslq_f32(vcgtq_f32(v, self.max), self.max, v))
    }
}

/// Writes `act(acc + bias)` of the first `out.len()` (at most four, as `bias`) lanes.
#[target_feature(enable = "neon")]
#[inline]
fn finish(acc: float32x4_t, bias: &[f32], act: Clamp, out: &mut [f32]) {
    let bias = match bias.as_chunks::<4>() {
        ([b], _) => load(b),
        (_, part) => {
            let mut b = [0.0; 4];
            b[..part.len()].copy_from_slice(part);
            load(&b)
        }
    };
    let v = act.apply(vaddq_f32(acc, bias));
    match out.as_chunks_mut::<4>() {
        ([o], _) => store(o, v),
        (_, part) => {
            let mut o = [0.0; 4];
            store(&mut o, v);
            part.copy_from_slice(&o[..part.len()]);
        }
    }
}

/// Writes the four lanes of `v` to `out`.
#[target_feature(enable = "neon")]
#[inline]
fn store(out: &mut [f32; 4], v: float32x4_t) {
    // SAFETY: writes the four f32 `out` refers to (no alignment needed).
    unsafe { vst1q_f32(out.as_mut_ptr(), v) }
}

/// The four filters (each `len` weights) of output channels `first..first + 4`, the last one
/// repeated past `units` (its lanes are computed but not written).
#[inline(always)]
fn quad<W: Weight>(w: &[W], len: usize, units: usize, first: usize) -> [&[W]; 4] {
    core::array::from_fn(|i| &w[(first + i).min(units - 1) * len..][..len])
}

/// [`crate::kernels::fully_connected::fully_connected_f32`] with NEON.
pub fn fully_connected_f32<W: Weight>(
    g: &FcGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    // SAFETY: this module is compiled only for targets with NEON (`ember_neon`, build.rs).
    unsafe { fully_connected_neon(g, x, w, bias, act, out) }
}

/// [`fully_connected_f32`]: [`ROWS`] rows at a time, then one at a time.
#[target_feature(enable = "neon")]
fn fully_connected_neon<W: Weight>(
    g: &FcGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let act = Clamp::new(act);
    let grouped = g.rows / ROWS * ROWS;
    for r in (0..grouped).step_by(ROWS) {
        fully_connected_rows::<W, ROWS>(g, r, x, w, bias, act, out);
    }
    for r in grouped..g.rows {
        fully_connected_rows::<W, 1>(g, r, x, w, bias, act, out);
    }
}

/// Rows `first..first + R` of the fully connected layer.
#[target_feature(enable = "neon")]
#[inline]
fn fully_connected_rows<W: Weight, const R: usize>(
    g: &FcGeometry,
    first: usize,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: Clamp,
    out: &mut [f32],
) {
    let (depth, units) = (g.depth, g.units);
    let rows = core::array::from_fn(|i| &x[(first + i) * depth..][..depth]);
    matrix_rows::<W, R>(rows, w, units, bias, act, out, core::array::from_fn(|i| (first + i) * units));
}

/// Writes `act(row · filter + bias)` for the `R` rows (of equal length) and every filter of `w`
/// (`units` of them, each as long as a row) to `out[at[r]..][..units]`.
#[target_feature(enable = "neon")]
#[inline]
fn matrix_rows<W: Weight, const R: usize>(
    rows: [&[f32]; R],
    w: &[W],
    units: usize,
    bias: &[f32],
    act: Clamp,
    out: &mut [f32],
    at: [usize; R],
) {
    let depth = rows[0].len();
    for u in (0..units).step_by(4) {
        let acc = dots([vdupq_n_f32(0.0); R], rows, quad(w, depth, units, u));
        let n = (units - u).min(4);
        for (&acc, &at) in acc.iter().zip(&at) {
            finish(acc, &bias[u..][..n], act, &mut out[at + u..][..n]);
        }
    }
}

/// [`crate::kernels::conv2d::conv2d_f32`] with NEON: a pointwise convolution
/// ([`ConvGeometry::is_pointwise`]) is a fully connected layer over the pixels; other filters are
/// applied to whole windows gathered into [`ROWS`] rows in `scratch`, four at a time, and to
/// the others' runs of taps; without that much scratch, each window's runs of taps are summed.
pub fn conv2d_f32<W: Weight>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
    mut scratch: Scratch,
) {
    let (cin, cout) = (g.input.c, g.output.c);
    if g.is_pointwise() {
        let fc = FcGeometry { rows: g.input.len() / cin.max(1), depth: cin, units: cout };
        return fully_connected_f32(&fc, x, w, bias, act, out);
    }
    let rows = scratch.take::<f32>(ROWS * g.kernel[0] * g.kernel[1] * cin);
    // SAFETY: this module is compiled only for targets with NEON (`ember_neon`, build.rs).
    unsafe {
        match rows {
            Some(rows) => conv2d_gathered(g, x, w, bias, act, out, rows),
            None => conv2d_windows(g, x, w, bias, act, out),
        }
    }
}

/// [`conv2d_f32`] with each window gathered into a row (the reference's order: cells row-major,
/// then channels), [`ROWS`] rows against each block of transposed weights.
///
/// A window cut by the padding is gathered with +0 in the padding when every weight is finite:
/// the reference skips those taps, and adding their products (±0) changes nothing, because a
/// sum that starts at +0 is never −0 (+0 + −0 is +0, and a nonzero sum cannot round to 0), and
/// `s + ±0 = s` for every other `s`, NaN and inf included. An infinite or NaN weight would make
/// a NaN product, so with one the cut windows go by [`Shapes`] over their runs of taps.
/// `rows` holds [`ROWS`] rows of `KH × KW × Cin` values.
#[target_feature(enable = "neon")]
fn conv2d_gathered<W: Weight>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
    rows: &mut [f32],
) {
    let (cin, cout, taps) = (g.input.c, g.output.c, g.kernel[0] * g.kernel[1]);
    let len = taps * cin;
    let mut chunks = rows.chunks_exact_mut(len.max(1));
    let mut rows: [&mut [f32]; ROWS] = core::array::from_fn(|_| chunks.next().unwrap_or_default());
    if rows.iter().any(|r| r.len() != len) {
        return conv2d_windows(g, x, w, bias, act, out);
    }
    let act = Clamp::new(act);
    let mut at = [0; ROWS];
    let mut pending = 0;
    let mut shapes = Shapes::new();
    let zero_padded = all_finite(w);
    for_each_window(g, |window, pixel| {
        let row = &mut rows[pending];
        if window.len() < taps {
            if !zero_padded {
                return shapes.push((window, pixel), |group| conv2d_group(g, group, x, w, bias, act, out));
            }
            row[..len].fill(0.0);
        }
        for (tap, px, count) in window.runs() {
            row[tap * cin..][..count * cin].copy_from_slice(&x[px * cin..][..count * cin]);
        }
        at[pending] = pixel * cout;
        pending += 1;
        if pending == ROWS {
            pending = 0;
            matrix_rows(rows.each_ref().map(|r| &r[..len]), w, cout, bias, act, out, at);
        }
    });
    for (row, &at) in rows.iter().zip(&at).take(pending) {
        matrix_rows([&row[..len]], w, cout, bias, act, out, [at]);
    }
    shapes.flush(|group| conv2d_group(g, group, x, w, bias, act, out));
}

/// Whether every weight is finite (neither infinite nor NaN).
fn all_finite<W: Weight>(w: &[W]) -> bool {
    match W::as_f16_bits(w) {
        Some(bits) => bits.iter().all(|&b| b & 0x7c00 != 0x7c00),
        None => w.iter().all(|&w| w.to_f32().is_finite()),
    }
}

/// [`conv2d_f32`] over the windows grouped by [`Shapes`].
#[target_feature(enable = "neon")]
fn conv2d_windows<W: Weight>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let act = Clamp::new(act);
    let mut shapes = Shapes::new();
    for_each_window(g, |window, pixel| {
        shapes.push((window, pixel), |group| conv2d_group(g, group, x, w, bias, act, out));
    });
    shapes.flush(|group| conv2d_group(g, group, x, w, bias, act, out));
}

/// A window and its output pixel.
type Pixel = (Window, usize);

/// Window shapes (runs of taps) that [`Shapes`] keeps pixels of at once.
const SHAPES: usize = 4;

/// Pixels waiting, by the shape of their windows, until [`ROWS`] of one shape can share each
/// block of transposed weights: all but the windows at the edges have one shape, and each edge
/// repeats its few shapes. A new shape with every slot taken sends the pixels of the slot taken
/// longest ago on their own.
struct Shapes {
    /// Each slot's pixels, `len` of them.
    slots: [[Option<Pixel>; ROWS]; SHAPES],
    len: [usize; SHAPES],
    /// The slot to free next.
    oldest: usize,
}

impl Shapes {
    fn new() -> Self {
        Self { slots: [[None; ROWS]; SHAPES], len: [0; SHAPES], oldest: 0 }
    }

    /// Adds `p`; `apply` gets each group of pixels that is ready ([`ROWS`] of one shape, or
    /// fewer sent on their own).
    #[inline(always)]
    fn push(&mut self, p: Pixel, mut apply: impl FnMut(&[Option<Pixel>])) {
        let shape = |window: Window| window.runs().map(|(tap, _, count)| (tap, count));
        let same =
            |slot: &[Option<Pixel>; ROWS]| slot[0].is_some_and(|(window, _)| shape(window).eq(shape(p.0)));
        let s = match (0..SHAPES).find(|&s| self.len[s] > 0 && same(&self.slots[s])) {
            Some(s) => s,
            None => match (0..SHAPES).find(|&s| self.len[s] == 0) {
                Some(s) => s,
                None => {
                    let s = self.oldest;
                    self.oldest = (s + 1) % SHAPES;
                    apply(&self.slots[s][..self.len[s]]);
                    self.len[s] = 0;
                    s
                }
            },
        };
        self.slots[s][self.len[s]] = Some(p);
        self.len[s] += 1;
        if self.len[s] == ROWS {
            apply(&self.slots[s]);
            self.len[s] = 0;
        }
    }

    /// Sends every waiting pixel.
    fn flush(&mut self, mut apply: impl FnMut(&[Option<Pixel>])) {
        for (slot, len) in self.slots.iter().zip(&mut self.len) {
            apply(&slot[..*len]);
            *len = 0;
        }
    }
}

/// The outputs of a group from [`Shapes`]: [`ROWS`] pixels together, fewer one at a time.
#[target_feature(enable = "neon")]
fn conv2d_group<W: Weight>(
    g: &ConvGeometry,
    group: &[Option<Pixel>],
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: Clamp,
    out: &mut [f32],
) {
    if let (Ok(full), Some(Some(first))) = (<&[Option<Pixel>; ROWS]>::try_from(group), group.first()) {
        return conv2d_pixels(g, full.map(|p| p.unwrap_or(*first)), x, w, bias, act, out);
    }
    for &p in group.iter().flatten() {
        conv2d_pixels(g, [p], x, w, bias, act, out);
    }
}

/// The outputs of `R` pixels `(window, output pixel)` whose windows have the same runs of taps,
/// four output channels at a time, each window's runs in the reference's order.
#[target_feature(enable = "neon")]
#[inline]
fn conv2d_pixels<W: Weight, const R: usize>(
    g: &ConvGeometry,
    pixels: [(Window, usize); R],
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: Clamp,
    out: &mut [f32],
) {
    let (cin, cout) = (g.input.c, g.output.c);
    let filter_len = g.kernel[0] * g.kernel[1] * cin;
    for u in (0..cout).step_by(4) {
        let filters = quad(w, filter_len, cout, u);
        let mut acc = [vdupq_n_f32(0.0); R];
        let mut runs = pixels.map(|(window, _)| window.runs());
        loop {
            let next = runs.each_mut().map(Iterator::next);
            let Some((tap, _, count)) = next[0] else { break };
            let len = count * cin;
            let xs = next.map(|run| &x[run.map_or(0, |(_, px, _)| px) * cin..][..len]);
            acc = dots(acc, xs, filters.map(|f| &f[tap * cin..][..len]));
        }
        let n = (cout - u).min(4);
        for (&acc, &(_, pixel)) in acc.iter().zip(&pixels) {
            finish(acc, &bias[u..][..n], act, &mut out[pixel * cout + u..][..n]);
        }
    }
}

/// [`crate::kernels::depthwise_conv2d::depthwise_conv2d_f32`] with NEON for a channel multiplier
/// of 1 and at least four channels: four channels at a time (the last four ending at the last
/// channel, overlapping the previous ones when the count is not a multiple of four). Others take
/// the reference kernel.
pub fn depthwise_conv2d_f32<W: Weight>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    if g.output.c != g.input.c || g.input.c < 4 {
        return depthwise_conv2d::depthwise_conv2d_f32(g, x, w, bias, act, out);
    }
    // SAFETY: this module is compiled only for targets with NEON (`ember_neon`, build.rs).
    unsafe { depthwise_multiplier1(g, x, w, bias, act, out) }
}

/// Channels per block of [`depthwise_multiplier1`]: one vector accumulator per four.
const DEPTHWISE_BLOCK: usize = 32;

/// [`depthwise_conv2d_f32`] for a channel multiplier of 1 and `C ≥ 4`: blocks of
/// [`DEPTHWISE_BLOCK`] channels, each window cell loaded once per block, then four at a time.
#[target_feature(enable = "neon")]
fn depthwise_multiplier1<W: Weight>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[W],
    bias: &[f32],
    act: ClampF32,
    out: &mut [f32],
) {
    let (c, act) = (g.input.c, Clamp::new(act));
    let blocked = c / DEPTHWISE_BLOCK * DEPTHWISE_BLOCK;
    for_each_window(g, |window, pixel| {
        let out = &mut out[pixel * c..][..c];
        for c0 in (0..blocked).step_by(DEPTHWISE_BLOCK) {
            let acc = depthwise_block::<W, { DEPTHWISE_BLOCK / 4 }>(window, x, w, c, c0);
            for (q, &acc) in acc.iter().enumerate() {
                let c0 = c0 + 4 * q;
                finish(acc, &bias[c0..][..4], act, &mut out[c0..][..4]);
            }
        }
        for c0 in (blocked..c).step_by(4).map(|c0| c0.min(c - 4)) {
            let [acc] = depthwise_block::<W, 1>(window, x, w, c, c0);
            finish(acc, &bias[c0..][..4], act, &mut out[c0..][..4]);
        }
    });
}

/// The depthwise sums of channels `c0..c0 + 4 × Q` over `window` (`c` channels), four per vector.
#[target_feature(enable = "neon")]
#[inline]
fn depthwise_block<W: Weight, const Q: usize>(
    window: Window,
    x: &[f32],
    w: &[W],
    c: usize,
    c0: usize,
) -> [float32x4_t; Q] {
    let mut acc = [vdupq_n_f32(0.0); Q];
    window.for_each_cell(|tap, px| {
        let (xs, ws) = (&x[px * c + c0..][..4 * Q], &w[tap * c + c0..][..4 * Q]);
        for (q, acc) in acc.iter_mut().enumerate() {
            *acc = vaddq_f32(*acc, vmulq_f32(load(four(xs, 4 * q)), widen(four(ws, 4 * q))));
        }
    });
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::scratch::{ScratchOp, Target};
    use crate::kernels::{conv2d, fully_connected, testutil};
    use half::f16;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    /// Random cases per test: every path is reached, and QEMU runs them all in seconds.
    const CASES: u32 = 256;

    /// Checks `check` on random cases drawn from `strategy`.
    fn run<T: core::fmt::Debug>(
        strategy: impl Strategy<Value = T>,
        check: impl Fn(&T) -> Result<(), TestCaseError>,
    ) {
        if let Err(e) = TestRunner::new(Config { failure_persistence: None, ..Config::with_cases(CASES) })
            .run(&strategy, |case| check(&case))
        {
            panic!("{e}");
        }
    }

    /// `len` values: all in [-1, 1), or mixed with ±0, ±inf, NaN and values of any magnitude
    /// (subnormal to the largest finite).
    fn values(len: usize) -> impl Strategy<Value = Vec<f32>> {
        let special = prop_oneof![
            Just(0.0f32),
            Just(-0.0),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(f32::NAN),
            Just(f32::MAX),
            Just(f32::MIN_POSITIVE / 8.0),
        ];
        let mixed = prop_oneof![12 => -1.0f32..1.0, 2 => any::<f32>(), 1 => special];
        prop_oneof![vec(-1.0f32..1.0, len), vec(mixed, len)]
    }

    /// No activation, ReLU, ReLU6 or random bounds.
    fn activation() -> impl Strategy<Value = ClampF32> {
        let bounds =
            (-1.0f32..1.0, -1.0f32..1.0).prop_map(|(a, b)| ClampF32 { min: a.min(b), max: a.max(b) });
        prop_oneof![
            Just(ClampF32::NONE),
            Just(ClampF32 { min: 0.0, max: f32::INFINITY }),
            Just(ClampF32 { min: 0.0, max: 6.0 }),
            bounds
        ]
    }

    /// A random case: geometry, input, weights, bias and activation.
    #[derive(Clone, Debug)]
    struct Case<G> {
        g: G,
        x: Vec<f32>,
        w: Vec<f32>,
        bias: Vec<f32>,
        act: ClampF32,
    }

    fn case<G: Clone + core::fmt::Debug>(
        g: G,
        x_len: usize,
        w_len: usize,
        units: usize,
    ) -> impl Strategy<Value = Case<G>> {
        (values(x_len), values(w_len), values(units), activation()).prop_map(move |(x, w, bias, act)| Case {
            g: g.clone(),
            x,
            w,
            bias,
            act,
        })
    }

    /// Fails the case unless every output has the reference's bits, or both are NaN (whose
    /// bits neither kernel promises: see the module doc).
    fn same(optimized: &[f32], reference: &[f32]) -> Result<(), TestCaseError> {
        for (i, (&o, &r)) in optimized.iter().zip(reference).enumerate() {
            prop_assert!(
                o.to_bits() == r.to_bits() || (o.is_nan() && r.is_nan()),
                "output {i}: {o:e} ({:#010x}), reference {r:e} ({:#010x})",
                o.to_bits(),
                r.to_bits()
            );
        }
        Ok(())
    }

    fn f16s(w: &[f32]) -> Vec<f16> {
        w.iter().map(|&v| f16::from_f32(v)).collect()
    }

    fn fc_cases() -> impl Strategy<Value = Case<FcGeometry>> {
        (1..=9usize, 1..=40usize, 1..=11usize).prop_flat_map(|(rows, depth, units)| {
            case(FcGeometry { rows, depth, units }, rows * depth, units * depth, units)
        })
    }

    /// Convolutions with 1..=20 input and 1..=11 output channels, a third of them 1×1, stride 1,
    /// unpadded (the fully connected path).
    fn conv_cases() -> impl Strategy<Value = Case<ConvGeometry>> {
        (testutil::geometry(2, false), 1..=20usize, 1..=11usize, 0..3).prop_flat_map(
            |(mut g, cin, cout, kind)| {
                if kind == 0 {
                    (g.kernel, g.stride, g.pad) = ([1, 1], [1, 1], [0, 0]);
                    (g.output.h, g.output.w) = (g.input.h, g.input.w);
                }
                (g.input.c, g.output.c) = (cin, cout);
                case(g, g.input.len(), cout * g.kernel[0] * g.kernel[1] * cin, cout)
            },
        )
    }

    /// Depthwise convolutions with 1..=13 channels or, for one in four, 32..=45 (a block and
    /// four at a time); multiplier 1 (or 2: the reference path).
    fn depthwise_cases() -> impl Strategy<Value = Case<ConvGeometry>> {
        let channels = prop_oneof![3 => 1..=13usize, 1 => 32..=45usize];
        (testutil::geometry(2, false), channels, prop_oneof![4 => Just(1usize), 1 => Just(2)]).prop_flat_map(
            |(mut g, c, multiplier)| {
                (g.input.c, g.output.c) = (c, c * multiplier);
                case(g, g.input.len(), g.kernel[0] * g.kernel[1] * g.output.c, g.output.c)
            },
        )
    }

    fn check_fc<W: Weight>(c: &Case<FcGeometry>, w: &[W]) -> Result<(), TestCaseError> {
        let len = c.g.rows * c.g.units;
        let (mut reference, mut optimized) = (vec![0.0; len], vec![1.0; len]);
        fully_connected::fully_connected_f32(&c.g, &c.x, w, &c.bias, c.act, &mut reference);
        fully_connected_f32(&c.g, &c.x, w, &c.bias, c.act, &mut optimized);
        same(&optimized, &reference)
    }

    /// Every convolution path that applies to the case's geometry.
    fn check_conv<W: Weight>(c: &Case<ConvGeometry>, w: &[W]) -> Result<(), TestCaseError> {
        let len = c.g.output.len();
        let (mut reference, mut optimized) = (vec![0.0; len], vec![1.0; len]);
        conv2d::conv2d_f32(&c.g, &c.x, w, &c.bias, c.act, &mut reference);
        let mut scratch = vec![0; Target::Neon.bytes(&ScratchOp::Conv2dF32(c.g))];
        conv2d_f32(&c.g, &c.x, w, &c.bias, c.act, &mut optimized, Scratch::new(&mut scratch));
        same(&optimized, &reference)?;
        optimized.fill(1.0);
        // SAFETY: the tests run on aarch64 with NEON (`ember_neon`).
        unsafe { conv2d_windows(&c.g, &c.x, w, &c.bias, c.act, &mut optimized) };
        same(&optimized, &reference)?;
        optimized.fill(1.0);
        let mut rows = vec![0.0; ROWS * c.g.kernel[0] * c.g.kernel[1] * c.g.input.c];
        // SAFETY: as above.
        unsafe { conv2d_gathered(&c.g, &c.x, w, &c.bias, c.act, &mut optimized, &mut rows) };
        same(&optimized, &reference)
    }

    fn check_depthwise<W: Weight>(c: &Case<ConvGeometry>, w: &[W]) -> Result<(), TestCaseError> {
        let len = c.g.output.len();
        let (mut reference, mut optimized) = (vec![0.0; len], vec![1.0; len]);
        depthwise_conv2d::depthwise_conv2d_f32(&c.g, &c.x, w, &c.bias, c.act, &mut reference);
        depthwise_conv2d_f32(&c.g, &c.x, w, &c.bias, c.act, &mut optimized);
        same(&optimized, &reference)
    }

    #[test]
    fn fully_connected_equals_reference() {
        run(fc_cases(), |c| {
            check_fc(c, &c.w)?;
            check_fc(c, &f16s(&c.w))
        });
    }

    #[test]
    fn conv2d_equals_reference() {
        run(conv_cases(), |c| {
            check_conv(c, &c.w)?;
            check_conv(c, &f16s(&c.w))
        });
    }

    #[test]
    fn depthwise_conv2d_equals_reference() {
        run(depthwise_cases(), |c| {
            check_depthwise(c, &c.w)?;
            check_depthwise(c, &f16s(&c.w))
        });
    }

    /// `FCVTL` widens every f16 bit pattern as the portable conversion does, NaNs included.
    #[test]
    fn f16_widening_equals_to_f32_for_every_pattern() {
        for bits in (0..=u16::MAX).step_by(4) {
            let four = [bits, bits + 1, bits + 2, bits + 3];
            let mut widened = [0.0; 4];
            // SAFETY: the tests run on aarch64 with NEON (`ember_neon`).
            unsafe { store(&mut widened, widen_f16(&four)) };
            assert_eq!(widened.map(f32::to_bits), four.map(|b| f16::from_bits(b).to_f32().to_bits()));
        }
    }

    /// Each lane is its own output channel: inf × 0 is NaN only in the lane whose filter has the
    /// 0; sums start at +0, so products of −0 alone leave +0.
    #[test]
    fn infinities_nans_and_signed_zeros_stay_in_their_lanes() {
        let g = FcGeometry { rows: 1, depth: 5, units: 4 };
        let w = [[1.0, -0.0, 0.0, 1.0, 1.0], [1.0; 5], [-1.0; 5], [0.5, 0.25, -1e-30, 1e30, 1.0]];
        let bias = [-0.0; 4];
        let mut out = [1.0; 4];
        let x = [-0.0, 1.0, f32::INFINITY, 2.0, -0.0];
        fully_connected_f32(&g, &x, w.as_flattened(), &bias, ClampF32::NONE, &mut out);
        assert!(out[0].is_nan());
        assert_eq!(out[1..], [f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        fully_connected_f32(&g, &[-0.0; 5], w.as_flattened(), &bias, ClampF32::NONE, &mut out);
        assert_eq!(out.map(f32::to_bits), [0; 4]);
        let mut reference = [1.0; 4];
        fully_connected::fully_connected_f32(
            &g,
            &[-0.0; 5],
            w.as_flattened(),
            &bias,
            ClampF32::NONE,
            &mut reference,
        );
        assert_eq!(reference.map(f32::to_bits), [0; 4]);
    }
}
