//! int8 kernels for aarch64 with Advanced SIMD (NEON, always present there) and, on cores with
//! the dot-product extension (FEAT_DotProd), `SDOT`; bit-exact with the reference kernels.
//!
//! An inner product `Σ (x + offset) × w` (`offset` the negated input zero point) is computed as
//! `Σ x × w + offset × Σ w`, equal in the wrapping 32-bit arithmetic the reference uses, so that
//! both sums multiply int8 by int8: NEON with `SMULL` (16-bit products, exact for int8) and
//! `SADALP` (pairwise add into 32-bit lanes), `SDOT` with four products per 32-bit lane. Output
//! channels go four at a time against one input row (fully connected; a 1×1 convolution over its
//! pixels; other convolutions over each window gathered into one row), so each input load feeds
//! four filters, and each filter's weight sum is computed once per layer (once per run of taps for
//! filters too large to gather). The output stage is the reference's (`fully_connected::requantize`).
//!
//! Compiled for aarch64 targets with NEON (`ember_neon`, see `runtime/build.rs`). `SDOT` is used
//! when the target enables `dotprod` at compile time or, with `std`, when the CPU reports it at run
//! time. Depthwise convolution adds products of different channels into different lanes, where
//! `SDOT` does not help: it widens to 16 bits and accumulates with `SMLAL` on every core.
//!
//! The f32 kernels (f32 or f16 weights) are in [`float`], average pooling in [`pool`].

use core::arch::aarch64::{
    int16x8_t, int32x4_t, int8x16_t, int8x8_t, vaddvq_s32, vaddw_s8, vdupq_n_s16, vdupq_n_s32, vget_low_s16,
    vget_low_s8, vgetq_lane_s32, vld1_s8, vld1q_s8, vmlal_high_s16, vmlal_s16, vmovl_s8, vmull_high_s8,
    vmull_s8, vpadalq_s16,
};
use core::arch::asm;
use core::ops::Range;

use super::conv2d::{conv2d_i8_with, for_each_window, Window};
use super::depthwise_conv2d;
use super::fully_connected::{mac_i8, requantize};
use super::scratch::Scratch;
use super::{ConvGeometry, FcGeometry, Int8Params};

pub mod float;
pub mod pool;

pub use float::{conv2d_f32, depthwise_conv2d_f32, fully_connected_f32};
pub use pool::average_pool_i8;

/// How int8 inner products are computed: [`Neon`] or [`Sdot`].
trait Engine: Copy {
    /// `Σ x[i] × w[u][i]` over the common length for each of the `U` filters `w`, in wrapping
    /// 32-bit arithmetic.
    fn dots<const U: usize>(self, x: &[i8], w: [&[i8]; U]) -> [i32; U];
}

/// `SMULL` + `SADALP`, on every aarch64 core.
#[derive(Clone, Copy, Debug)]
struct Neon;

/// `SDOT`; a value exists only where the CPU has FEAT_DotProd ([`Sdot::detect`]).
#[derive(Clone, Copy, Debug)]
struct Sdot(());

impl Sdot {
    /// `Some` when the target enables `dotprod`.
    #[cfg(target_feature = "dotprod")]
    fn detect() -> Option<Self> {
        Some(Self(()))
    }

    /// `Some` when the CPU reports FEAT_DotProd (a cached flag after the first call).
    #[cfg(all(not(target_feature = "dotprod"), any(test, feature = "std")))]
    fn detect() -> Option<Self> {
        std::arch::is_aarch64_feature_detected!("dotprod").then_some(Self(()))
    }

    /// `None`: without `std` there is no run-time detection.
    #[cfg(all(not(target_feature = "dotprod"), not(any(test, feature = "std"))))]
    fn detect() -> Option<Self> {
        None
    }
}

impl Engine for Neon {
    #[inline(always)]
    fn dots<const U: usize>(self, x: &[i8], w: [&[i8]; U]) -> [i32; U] {
        // SAFETY: this module is compiled only for targets with NEON (`ember_neon`, build.rs).
        unsafe { neon_dots(x, w) }
    }
}

/// [`Engine::dots`] with `SMULL` + `SADALP`.
#[target_feature(enable = "neon")]
fn neon_dots<const U: usize>(x: &[i8], w: [&[i8]; U]) -> [i32; U] {
    dots_with(x, w, |acc, a, b| {
        vpadalq_s16(vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b))), vmull_high_s8(a, b))
    })
}

impl Engine for Sdot {
    #[inline(always)]
    fn dots<const U: usize>(self, x: &[i8], w: [&[i8]; U]) -> [i32; U] {
        // SAFETY: an `Sdot` exists only when the CPU has FEAT_DotProd (`Sdot::detect`).
        unsafe { sdot_dots(x, w) }
    }
}

/// [`Engine::dots`] with `SDOT`, compiled with `dotprod` enabled so that `sdot` inlines.
#[target_feature(enable = "dotprod")]
fn sdot_dots<const U: usize>(x: &[i8], w: [&[i8]; U]) -> [i32; U] {
    dots_with(x, w, |acc, a, b| sdot(acc, a, b))
}

/// `acc` plus, in each 32-bit lane, the products of four int8 pairs of `a` and `b` (`SDOT`).
#[target_feature(enable = "dotprod")]
#[inline]
fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: one register-only instruction of FEAT_DotProd, enabled for this function (whose
    // callers therefore run on a CPU with it); no memory, stack or flags.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Sixteen int8 values.
#[target_feature(enable = "neon")]
#[inline]
fn load16(v: &[i8; 16]) -> int8x16_t {
    // SAFETY: reads the 16 bytes `v` refers to (no alignment needed).
    unsafe { vld1q_s8(v.as_ptr()) }
}

/// [`Engine::dots`] given `step(acc, a, b)`, which adds the 16 products `a[i] × b[i]` to the
/// four lanes of `acc` in any grouping: 16 bytes per step, then the tail one product at a time.
#[target_feature(enable = "neon")]
#[inline]
fn dots_with<const U: usize>(
    x: &[i8],
    w: [&[i8]; U],
    step: impl Fn(int32x4_t, int8x16_t, int8x16_t) -> int32x4_t,
) -> [i32; U] {
    let n = w.iter().fold(x.len(), |n, w| n.min(w.len()));
    let (x16, x_tail) = x[..n].as_chunks::<16>();
    let w16 = w.map(|w| w[..n].as_chunks::<16>().0);
    let mut acc = [vdupq_n_s32(0); U];
    for (i, xc) in x16.iter().enumerate() {
        let xv = load16(xc);
        for u in 0..U {
            acc[u] = step(acc[u], xv, load16(&w16[u][i]));
        }
    }
    let (tail, mac) = (n - x_tail.len(), mac_i8(0));
    core::array::from_fn(|u| {
        x_tail.iter().zip(&w[u][tail..n]).fold(vaddvq_s32(acc[u]), |acc, (&x, &w)| mac(acc, x, w))
    })
}

/// `Σ w` in wrapping 32-bit arithmetic.
fn weight_sum(w: &[i8]) -> i32 {
    w.iter().fold(0i32, |s, &v| s.wrapping_add(i32::from(v)))
}

/// Output channels per [`Filters`] block (their weight sums live on the stack).
const BLOCK: usize = 64;

/// The output channels `0..units` in blocks of at most [`BLOCK`].
fn blocks(units: usize) -> impl Iterator<Item = Range<usize>> {
    (0..units).step_by(BLOCK).map(move |first| first..(first + BLOCK).min(units))
}

/// A block of output channels of a weight matrix `[units, depth]` with each filter's weight sum.
struct Filters<'a> {
    /// The block's output channels.
    units: Range<usize>,
    /// The block's filters, `depth` weights each.
    w: &'a [i8],
    /// Weights per filter.
    depth: usize,
    /// `Σ w` of each filter of the block.
    sums: [i32; BLOCK],
}

impl<'a> Filters<'a> {
    /// The filters of output channels `units` (at most [`BLOCK`]) of `w`.
    fn new(w: &'a [i8], depth: usize, units: Range<usize>) -> Self {
        let w = &w[units.start * depth..units.end * depth];
        let mut sums = [0; BLOCK];
        for (k, s) in sums[..units.len()].iter_mut().enumerate() {
            *s = weight_sum(&w[k * depth..][..depth]);
        }
        Self { units, w, depth, sums }
    }

    /// Filter `k` of the block.
    #[inline(always)]
    fn filter(&self, k: usize) -> &'a [i8] {
        &self.w[k * self.depth..][..self.depth]
    }

    /// Writes the block's outputs for the input row `x` (`depth` values) to `out`, the block's
    /// part of the output row: four filters per pass, then one at a time.
    #[inline(always)]
    fn apply(&self, e: impl Engine, q: &Int8Params, bias: &[i32], x: &[i8], out: &mut [i8]) {
        let offset = q.input_zero_point.wrapping_neg();
        let finish = |k: usize, xw: i32| {
            let (u, acc) = (self.units.start + k, xw.wrapping_add(offset.wrapping_mul(self.sums[k])));
            requantize(q, u, acc, bias[u])
        };
        let (quads, rest) = out[..self.units.len()].as_chunks_mut::<4>();
        for (b, o) in quads.iter_mut().enumerate() {
            let xw = e.dots::<4>(x, core::array::from_fn(|i| self.filter(4 * b + i)));
            for (i, (o, &xw)) in o.iter_mut().zip(&xw).enumerate() {
                *o = finish(4 * b + i, xw);
            }
        }
        for (i, o) in rest.iter_mut().enumerate() {
            let k = 4 * quads.len() + i;
            *o = finish(k, e.dots(x, [self.filter(k)])[0]);
        }
    }
}

/// [`super::fully_connected::fully_connected_i8`] with `SDOT` where the CPU has it, else NEON.
pub fn fully_connected_i8(
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    _: Scratch,
) {
    match Sdot::detect() {
        // SAFETY: an `Sdot` exists only when the CPU has FEAT_DotProd.
        Some(sdot) => unsafe { fully_connected_sdot(sdot, g, q, x, w, bias, out) },
        None => fully_connected_with(Neon, g, q, x, w, bias, out),
    }
}

/// [`fully_connected_with`] with `SDOT`, compiled with `dotprod` so that `SDOT` inlines into its loops.
#[target_feature(enable = "dotprod")]
fn fully_connected_sdot(
    sdot: Sdot,
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
) {
    fully_connected_with(sdot, g, q, x, w, bias, out);
}

/// The fully connected layer with engine `e`.
#[inline(always)]
fn fully_connected_with(
    e: impl Engine,
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
) {
    let (depth, units) = (g.depth, g.units);
    for block in blocks(units) {
        let filters = Filters::new(w, depth, block.clone());
        for r in 0..g.rows {
            filters.apply(e, q, bias, &x[r * depth..][..depth], &mut out[r * units..][block.clone()]);
        }
    }
}

/// [`super::conv2d::conv2d_i8`] with `SDOT` where the CPU has it, else NEON; windows are
/// gathered in `scratch` (`scratch::Target::Neon` sizes it).
pub fn conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    scratch: Scratch,
) {
    match Sdot::detect() {
        // SAFETY: an `Sdot` exists only when the CPU has FEAT_DotProd.
        Some(sdot) => unsafe { conv2d_sdot(sdot, g, q, x, w, bias, out, scratch) },
        None => conv2d_with(Neon, g, q, x, w, bias, out, scratch),
    }
}

/// [`conv2d_with`] with `SDOT`, compiled with `dotprod` so that `SDOT` inlines into its loops.
#[target_feature(enable = "dotprod")]
#[allow(clippy::too_many_arguments)]
fn conv2d_sdot(
    sdot: Sdot,
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    scratch: Scratch,
) {
    conv2d_with(sdot, g, q, x, w, bias, out, scratch);
}

/// The convolution with engine `e`:
/// - a pointwise convolution ([`ConvGeometry::is_pointwise`]) is a fully connected layer over
///   the pixels;
/// - otherwise the filter is applied to each window gathered into one row in `scratch`;
/// - without that much scratch, the reference loop runs, one inner product per run of taps.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv2d_with(
    e: impl Engine,
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    mut scratch: Scratch,
) {
    let (cin, cout) = (g.input.c, g.output.c);
    if g.is_pointwise() {
        let fc = FcGeometry { rows: g.input.len() / cin.max(1), depth: cin, units: cout };
        fully_connected_with(e, &fc, q, x, w, bias, out);
    } else if let Some(row) = scratch.take::<i8>(g.kernel[0] * g.kernel[1] * cin) {
        conv2d_gathered(e, g, q, x, w, bias, out, row);
    } else {
        conv2d_runs(e, g, q, x, w, bias, out);
    }
}

/// The convolution over each window gathered into one row of `KH × KW × Cin` values, padding
/// filled with the input zero point (which contributes 0, as a skipped tap does in the
/// reference); `row` holds `KH × KW × Cin` bytes.
#[allow(clippy::too_many_arguments)]
fn conv2d_gathered(
    e: impl Engine,
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    row: &mut [i8],
) {
    let (cin, cout, taps) = (g.input.c, g.output.c, g.kernel[0] * g.kernel[1]);
    // In range: the loader checks zero points are int8.
    let zero_point = q.input_zero_point as i8;
    for block in blocks(cout) {
        let filters = Filters::new(w, taps * cin, block.clone());
        for_each_window(g, |window, pixel| {
            if window.len() < taps {
                row.fill(zero_point);
            }
            window.for_each_cell(|tap, px| row[tap * cin..][..cin].copy_from_slice(&x[px * cin..][..cin]));
            filters.apply(e, q, bias, row, &mut out[pixel * cout..][block.clone()]);
        });
    }
}

/// The reference convolution loop with the inner product over each run of taps by `e`.
fn conv2d_runs(
    e: impl Engine,
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
) {
    let offset = q.input_zero_point.wrapping_neg();
    conv2d_i8_with(g, q, x, w, bias, out, |acc, xs, ws| {
        acc.wrapping_add(e.dots(xs, [ws])[0])
            .wrapping_add(offset.wrapping_mul(weight_sum(&ws[..xs.len().min(ws.len())])))
    });
}

/// [`super::depthwise_conv2d::depthwise_conv2d_i8`] for a channel multiplier of 1, 16 then 8
/// channels at a time: per tap, the activations plus offset and the weights widened to 16 bits,
/// multiplied and accumulated into 32-bit lanes (`SMLAL`); the last `C mod 8` channels one at a
/// time. Other multipliers take the reference kernel.
pub fn depthwise_conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    _: Scratch,
) {
    if g.output.c != g.input.c {
        return depthwise_conv2d::depthwise_conv2d_i8(g, q, x, w, bias, out);
    }
    // SAFETY: this module is compiled only for targets with NEON (`ember_neon`, build.rs).
    unsafe { depthwise_multiplier1(g, q, x, w, bias, out) }
}

/// [`depthwise_conv2d_i8`] for a channel multiplier of 1.
#[target_feature(enable = "neon")]
fn depthwise_multiplier1(g: &ConvGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let c = g.input.c;
    let offset = q.input_zero_point.wrapping_neg();
    // In range: the loader checks zero points are int8, so the offset is in −127..=128.
    let offsets = vdupq_n_s16(offset as i16);
    let (sixteens, eights) = (c / 16 * 16, c / 8 * 8);
    for_each_window(g, |window, pixel| {
        let out = &mut out[pixel * c..][..c];
        for c0 in (0..sixteens).step_by(16) {
            let acc = depthwise_block::<2>(window, x, w, c, c0, offsets);
            finish_block(q, bias, c0, acc.as_flattened(), &mut out[c0..][..16]);
        }
        for c0 in (sixteens..eights).step_by(8) {
            let acc = depthwise_block::<1>(window, x, w, c, c0, offsets);
            finish_block(q, bias, c0, acc.as_flattened(), &mut out[c0..][..8]);
        }
        let mac = mac_i8(offset);
        for ch in eights..c {
            let mut acc = 0i32;
            window.for_each_cell(|tap, px| acc = mac(acc, x[px * c + ch], w[tap * c + ch]));
            out[ch] = requantize(q, ch, acc, bias[ch]);
        }
    });
}

/// Eight int8 values.
#[target_feature(enable = "neon")]
#[inline]
fn load8(v: &[i8; 8]) -> int8x8_t {
    // SAFETY: reads the 8 bytes `v` refers to (no alignment needed).
    unsafe { vld1_s8(v.as_ptr()) }
}

/// The depthwise sums of the `8 × G` channels from `c0` over `window` (`c` channels, `offsets`
/// the input offset in every 16-bit lane), as `[first four, last four]` per eight channels.
#[target_feature(enable = "neon")]
#[inline]
fn depthwise_block<const G: usize>(
    window: Window,
    x: &[i8],
    w: &[i8],
    c: usize,
    c0: usize,
    offsets: int16x8_t,
) -> [[int32x4_t; 2]; G] {
    let mut acc = [[vdupq_n_s32(0); 2]; G];
    window.for_each_cell(|tap, px| {
        let (x8, w8) =
            (x[px * c + c0..][..8 * G].as_chunks::<8>().0, w[tap * c + c0..][..8 * G].as_chunks::<8>().0);
        for (a, (xs, ws)) in acc.iter_mut().zip(x8.iter().zip(w8)) {
            let (xv, wv) = (vaddw_s8(offsets, load8(xs)), vmovl_s8(load8(ws)));
            a[0] = vmlal_s16(a[0], vget_low_s16(xv), vget_low_s16(wv));
            a[1] = vmlal_high_s16(a[1], xv, wv);
        }
    });
    acc
}

/// Writes the outputs of the channels from `c0` whose sums are `acc` (four per vector).
#[target_feature(enable = "neon")]
#[inline]
fn finish_block(q: &Int8Params, bias: &[i32], c0: usize, acc: &[int32x4_t], out: &mut [i8]) {
    for (k, (&a, out)) in acc.iter().zip(out.chunks_exact_mut(4)).enumerate() {
        let lanes =
            [vgetq_lane_s32::<0>(a), vgetq_lane_s32::<1>(a), vgetq_lane_s32::<2>(a), vgetq_lane_s32::<3>(a)];
        for (i, (o, l)) in out.iter_mut().zip(lanes).enumerate() {
            let ch = c0 + 4 * k + i;
            *o = requantize(q, ch, l, bias[ch]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::scratch::{ScratchOp, Target};
    use crate::kernels::{conv2d, fully_connected, testutil, ClampI8};
    use crate::quant::{Requant, Rounding};
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

    /// Fails the case unless the optimized output equals the reference byte for byte.
    fn same(optimized: &[i8], reference: &[i8]) -> Result<(), TestCaseError> {
        prop_assert_eq!(optimized, reference);
        Ok(())
    }

    /// The `SDOT` engine, or `None` on a CPU without FEAT_DotProd, said on stderr (and a failure
    /// when `EMBER_EXPECT_DOTPROD` is set: CI sets it on the CPU model that has it).
    fn sdot_or_skip(test: &str) -> Option<Sdot> {
        let sdot = Sdot::detect();
        if sdot.is_none() {
            assert!(
                std::env::var_os("EMBER_EXPECT_DOTPROD").is_none(),
                "EMBER_EXPECT_DOTPROD is set, but this CPU has no dotprod"
            );
            eprintln!(
                "{test}: SKIPPED: this CPU has no dotprod (FEAT_DotProd), so the SDOT kernels cannot run"
            );
        }
        sdot
    }

    /// Quantization of a random case: zero points over the whole int8 range, per-tensor or
    /// per-channel requantization (right and left shifts, rounding once or twice), random
    /// activation bounds.
    #[derive(Clone, Debug)]
    struct Quantization {
        requant: Vec<Requant>,
        input_zero_point: i32,
        output_zero_point: i32,
        act: ClampI8,
        rounding: Rounding,
    }

    impl Quantization {
        fn params(&self) -> Int8Params<'_> {
            Int8Params {
                input_zero_point: self.input_zero_point,
                output_zero_point: self.output_zero_point,
                requant: &self.requant,
                act: self.act,
                rounding: self.rounding,
            }
        }
    }

    fn quantization(channels: usize) -> impl Strategy<Value = Quantization> {
        let requant =
            (1i32 << 30..=i32::MAX, -16i32..=1).prop_map(|(multiplier, shift)| Requant { multiplier, shift });
        let requants = prop_oneof![vec(requant.clone(), 1), vec(requant, channels)];
        let rounding = prop_oneof![Just(Rounding::Double), Just(Rounding::Single)];
        (requants, any::<i8>(), any::<i8>(), any::<i8>(), any::<i8>(), rounding).prop_map(
            |(requant, zx, zy, a, b, rounding)| {
                let act = ClampI8 { min: a.min(b).into(), max: a.max(b).into() };
                Quantization {
                    requant,
                    input_zero_point: zx.into(),
                    output_zero_point: zy.into(),
                    act,
                    rounding,
                }
            },
        )
    }

    /// A random weighted-op case: geometry, quantization, input, weights (any int8, −128
    /// included) and bias.
    #[derive(Clone, Debug)]
    struct Case<G> {
        g: G,
        q: Quantization,
        x: Vec<i8>,
        w: Vec<i8>,
        bias: Vec<i32>,
    }

    fn case<G: Clone + core::fmt::Debug>(
        g: G,
        x_len: usize,
        w_len: usize,
        channels: usize,
    ) -> impl Strategy<Value = Case<G>> {
        let data = (
            quantization(channels),
            vec(any::<i8>(), x_len),
            vec(any::<i8>(), w_len),
            vec(-50_000i32..50_000, channels),
        );
        data.prop_map(move |(q, x, w, bias)| Case { g: g.clone(), q, x, w, bias })
    }

    fn fc_cases() -> impl Strategy<Value = Case<FcGeometry>> {
        (1..=3usize, 1..=70usize, 1..=70usize).prop_flat_map(|(rows, depth, units)| {
            case(FcGeometry { rows, depth, units }, rows * depth, units * depth, units)
        })
    }

    /// Convolutions with 1..=40 input channels and 1..=9 output channels or, for one in five,
    /// 60..=70 (two blocks of filters); a third of them 1×1, stride 1, unpadded (the fully
    /// connected path).
    fn conv_cases() -> impl Strategy<Value = Case<ConvGeometry>> {
        let cout = prop_oneof![4 => 1..=9usize, 1 => 60..=70usize];
        (testutil::geometry(2, false), 1..=40usize, cout, 0..3).prop_flat_map(|(mut g, cin, cout, kind)| {
            if kind == 0 {
                (g.kernel, g.stride, g.pad) = ([1, 1], [1, 1], [0, 0]);
                (g.output.h, g.output.w) = (g.input.h, g.input.w);
            }
            (g.input.c, g.output.c) = (cin, cout);
            case(g, g.input.len(), cout * g.kernel[0] * g.kernel[1] * cin, cout)
        })
    }

    /// Depthwise convolutions with 1..=40 channels, multiplier 1 (or 2: the reference path).
    fn depthwise_cases() -> impl Strategy<Value = Case<ConvGeometry>> {
        (testutil::geometry(2, false), 1..=40usize, prop_oneof![4 => Just(1usize), 1 => Just(2)])
            .prop_flat_map(|(mut g, c, multiplier)| {
                (g.input.c, g.output.c) = (c, c * multiplier);
                case(g, g.input.len(), g.kernel[0] * g.kernel[1] * g.output.c, g.output.c)
            })
    }

    /// Inner products of random lengths against four filters, by `e` and one product at a time.
    fn check_dots(e: impl Engine) {
        let cases =
            (0..=70usize).prop_flat_map(|n| (vec(any::<i8>(), n), vec(vec(any::<i8>(), n..=n + 3), 4)));
        run(cases, |(x, w)| {
            let exact = |w: &[i8]| {
                x.iter().zip(w).fold(0i32, |s, (&a, &b)| s.wrapping_add(i32::from(a) * i32::from(b)))
            };
            let four = e.dots::<4>(x, core::array::from_fn(|u| &w[u][..]));
            prop_assert_eq!(four, core::array::from_fn(|u| exact(&w[u])));
            prop_assert_eq!(e.dots::<1>(x, [&w[0]]), [exact(&w[0])]);
            Ok(())
        });
    }

    fn check_fc(e: impl Engine, c: &Case<FcGeometry>) -> Result<(), TestCaseError> {
        let (q, len) = (c.q.params(), c.g.rows * c.g.units);
        let (mut reference, mut optimized) = (vec![0; len], vec![0; len]);
        fully_connected::fully_connected_i8(&c.g, &q, &c.x, &c.w, &c.bias, &mut reference);
        fully_connected_with(e, &c.g, &q, &c.x, &c.w, &c.bias, &mut optimized);
        same(&optimized, &reference)
    }

    /// Every convolution path that applies to the case's geometry.
    fn check_conv(e: impl Engine, c: &Case<ConvGeometry>) -> Result<(), TestCaseError> {
        let (q, g) = (c.q.params(), &c.g);
        let mut reference = vec![0; g.output.len()];
        conv2d::conv2d_i8(g, &q, &c.x, &c.w, &c.bias, &mut reference);
        let mut optimized = vec![0; g.output.len()];
        let mut scratch = vec![0; Target::Neon.bytes(&ScratchOp::Conv2dI8(*g))];
        conv2d_with(e, g, &q, &c.x, &c.w, &c.bias, &mut optimized, Scratch::new(&mut scratch));
        same(&optimized, &reference)?;
        conv2d_runs(e, g, &q, &c.x, &c.w, &c.bias, &mut optimized);
        same(&optimized, &reference)?;
        let mut row = vec![0; g.kernel[0] * g.kernel[1] * g.input.c];
        conv2d_gathered(e, g, &q, &c.x, &c.w, &c.bias, &mut optimized, &mut row);
        same(&optimized, &reference)
    }

    #[test]
    fn neon_dots_are_exact() {
        check_dots(Neon);
    }

    #[test]
    fn sdot_dots_are_exact() {
        if let Some(sdot) = sdot_or_skip("sdot_dots_are_exact") {
            check_dots(sdot);
        }
    }

    #[test]
    fn neon_fully_connected_equals_reference() {
        run(fc_cases(), |c| check_fc(Neon, c));
    }

    #[test]
    fn sdot_fully_connected_equals_reference() {
        if let Some(sdot) = sdot_or_skip("sdot_fully_connected_equals_reference") {
            run(fc_cases(), |c| check_fc(sdot, c));
        }
    }

    #[test]
    fn neon_conv2d_equals_reference() {
        run(conv_cases(), |c| check_conv(Neon, c));
    }

    #[test]
    fn sdot_conv2d_equals_reference() {
        if let Some(sdot) = sdot_or_skip("sdot_conv2d_equals_reference") {
            run(conv_cases(), |c| check_conv(sdot, c));
        }
    }

    #[test]
    fn depthwise_conv2d_equals_reference() {
        run(depthwise_cases(), |c| {
            let (q, g) = (c.q.params(), &c.g);
            let (mut reference, mut optimized) = (vec![0; g.output.len()], vec![0; g.output.len()]);
            depthwise_conv2d::depthwise_conv2d_i8(g, &q, &c.x, &c.w, &c.bias, &mut reference);
            depthwise_conv2d_i8(g, &q, &c.x, &c.w, &c.bias, &mut optimized, Scratch::none());
            same(&optimized, &reference)
        });
    }

    /// The public kernels (the engine this CPU selects) on the same cases.
    #[test]
    fn selected_engine_equals_reference() {
        run(fc_cases(), |c| {
            let (q, len) = (c.q.params(), c.g.rows * c.g.units);
            let (mut reference, mut optimized) = (vec![0; len], vec![0; len]);
            fully_connected::fully_connected_i8(&c.g, &q, &c.x, &c.w, &c.bias, &mut reference);
            fully_connected_i8(&c.g, &q, &c.x, &c.w, &c.bias, &mut optimized, Scratch::none());
            same(&optimized, &reference)
        });
        run(conv_cases(), |c| {
            let (q, g) = (c.q.params(), &c.g);
            let (mut reference, mut optimized) = (vec![0; g.output.len()], vec![0; g.output.len()]);
            conv2d::conv2d_i8(g, &q, &c.x, &c.w, &c.bias, &mut reference);
            let mut scratch = vec![0; Target::Neon.bytes(&ScratchOp::Conv2dI8(*g))];
            conv2d_i8(g, &q, &c.x, &c.w, &c.bias, &mut optimized, Scratch::new(&mut scratch));
            same(&optimized, &reference)
        });
    }
}
