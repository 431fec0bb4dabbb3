//! The int8 output stage of the reference ([`requantize_with`]) in fewer instructions where a
//! layer's accumulators are bounded.
//!
//! The reference computes `y = (t × m + 2^30) >> 31` (the doubling high multiply of
//! `t = acc + bias` by the Q31 multiplier `m`), then divides `y` by `2^e` rounding half away
//! from zero, adds the output zero point `z` and clamps. When `|t| < 2^30`, `2t` fits in 32 bits
//! and `y = SMMULR(2t, m) = (2t × m + 2^31) >> 32`, and `|y| ≤ |t|`, so for `e ≥ 1`
//! `(y + z·2^e + 2^(e−1) − [y < 0]) >> e` equals the rounded division plus `z`; it is computed as
//! `(((y + (y >> 31)) >> (e − 1)) + 1 + 2z) >> 1` without overflow.
//!
//! Rounding once (imported per-tensor fully connected layers), the reference computes
//! `(t × m + 2^(30+e)) >> (31 + e)`. The added term is a multiple of `2^31`, so this is
//! `(h + 2^(e−1)) >> e` with `h = (t × m) >> 31 = SMMUL(2t, m)`, the truncated high word, and that
//! plus `z` is `((h >> (e − 1)) + 1 + 2z) >> 1`: the same steps without the rounding of `SMMULR`
//! and the sign correction.
//!
//! A layer takes the short path when every nonzero factor is below 1/2 (shift in −31..=−1) and
//! `depth × 255 × 128 + max |bias| < 2^30` bounds every `t` (over the channels with a nonzero
//! factor: a zero factor gives the output zero point on both paths, whatever its accumulator);
//! otherwise each output takes the reference's steps. A channel whose bias alone breaks the bound
//! (imported models have biases of 2^30) is left out of it when its output is one constant for
//! every accumulator the layer can reach (requantization is monotone, so the two ends decide);
//! the short path computes such a channel wrongly and [`Output::fix_constants`] overwrites it.

use crate::kernels::fully_connected::requantize_with;
use crate::kernels::{ClampI8, Int8Params};
use crate::quant::{Requant, Rounding};

/// The short path's per-layer constants, in the order the assembly of `matrix` reads them.
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct Short {
    /// `1 + 2 × output zero point`.
    rounding_and_zero_point: i32,
    /// Activation bounds, in every byte.
    min: u32,
    max: u32,
}

/// A layer's output stage: accumulators (which start at the bias) to int8 outputs.
#[derive(Clone, Copy)]
pub(super) struct Output<'a> {
    q: &'a Int8Params<'a>,
    bias: &'a [i32],
    /// `usize::MAX` for per-channel factors, 0 for one factor (an index mask).
    per_channel: usize,
    /// Whether the short path is exact for this layer.
    short: bool,
    /// Whether the layer rounds once (the short path's Rust form only).
    single: bool,
    /// `1 + 2 × output zero point`.
    rounding_and_zero_point: i32,
    /// Bound of `|Σ (x + offset) × w|` over an accumulator's products: `depth × 255 × 128`.
    span: u64,
    /// Whether some channel's output is constant and left out of the bound.
    constants: bool,
}

/// Whether a channel's accumulators stay within the short path's bound, and if not, whether
/// its output is one constant.
enum Constant {
    /// Every accumulator `bias ± span` is below 2^30 in magnitude.
    InBound,
    /// Out of the bound, but every accumulator gives this output.
    Yes(i8),
    /// Out of the bound and not constant (or not known to be).
    No,
}

/// [`Constant`] for a channel with a nonzero factor `r` and bias `bias` whose products sum to at
/// most `span` in magnitude.
fn constant(q: &Int8Params, r: Requant, bias: i32, span: u64) -> Constant {
    if span.saturating_add(u64::from(bias.unsigned_abs())) < 1 << 30 {
        return Constant::InBound;
    }
    // Below 1/2 the requantization is monotone (a left shift would wrap), and without wrapping
    // the accumulators are the interval bias ± span: its ends decide.
    let below_half = (-31..=-1).contains(&r.shift) && r.multiplier > 0;
    let ends = i32::try_from(span).ok().filter(|&s| bias.checked_sub(s).and(bias.checked_add(s)).is_some());
    match ends {
        Some(s) if below_half => {
            let low = requantize_with(q, r, -s, bias);
            if low == requantize_with(q, r, s, bias) {
                Constant::Yes(low)
            } else {
                Constant::No
            }
        }
        _ => Constant::No,
    }
}

impl<'a> Output<'a> {
    /// The output stage of a layer of `channels` output channels whose accumulators sum
    /// `depth` products each, or `None` if `bias` or the factors are too short for them (which
    /// the loader rules out).
    pub(super) fn new(q: &'a Int8Params<'a>, bias: &'a [i32], depth: usize, channels: usize) -> Option<Self> {
        let per_channel = q.requant.len() != 1;
        if bias.len() < channels || (per_channel && q.requant.len() < channels) {
            return None;
        }
        // One pass over the channels. Those with a zero factor give the output zero point
        // whatever their accumulator (dead channels' biases are often saturated).
        let span = (depth as u64).saturating_mul(255 * 128);
        let (mut largest_bias, mut factors_below_half) = (0u32, true);
        let mut check = |b: &i32, r: &Requant| {
            if r.multiplier != 0 {
                largest_bias = largest_bias.max(b.unsigned_abs());
                factors_below_half &= (-31..=-1).contains(&r.shift) && r.multiplier > 0;
            }
        };
        match q.requant {
            [one] => bias[..channels].iter().for_each(|b| check(b, one)),
            all => bias[..channels].iter().zip(all).for_each(|(b, r)| check(b, r)),
        }
        let mut bounded = span.saturating_add(u64::from(largest_bias)) < 1 << 30;
        // Out of the bound: a second pass leaves out the channels whose output is constant.
        let mut constants = false;
        if !bounded && factors_below_half {
            let mask = if per_channel { usize::MAX } else { 0 };
            bounded =
                (0..channels).filter(|&c| q.requant[c & mask].multiplier != 0).all(|c| {
                    match constant(q, q.requant[c & mask], bias[c], span) {
                        Constant::InBound => true,
                        Constant::Yes(_) => {
                            constants = true;
                            true
                        }
                        Constant::No => false,
                    }
                });
        }
        Some(Self {
            q,
            bias,
            per_channel: if per_channel { usize::MAX } else { 0 },
            short: bounded && factors_below_half,
            single: q.rounding == Rounding::Single,
            rounding_and_zero_point: q.output_zero_point.wrapping_mul(2).wrapping_add(1),
            span,
            constants,
        })
    }

    /// Writes the constant channels' output into every row of `channels` outputs of `out`
    /// (after the layer's outputs are computed, on either path).
    pub(super) fn fix_constants(&self, out: &mut [i8], channels: usize) {
        if !self.constants {
            return;
        }
        // Channels whose bias keeps them in the bound are not constant: one compare each.
        let limit = (1u64 << 30).saturating_sub(self.span);
        for c in 0..channels {
            // SAFETY: c < channels, the layer's channels.
            let bias = unsafe { self.bias(c) };
            if u64::from(bias.unsigned_abs()) < limit {
                continue;
            }
            // SAFETY: as above.
            let r = unsafe { self.factor(c) };
            if let Constant::Yes(v) = constant(self.q, r, bias, self.span) {
                out.chunks_exact_mut(channels).for_each(|row| row[c] = v);
            }
        }
    }

    /// The short path's constants, if the layer takes it and rounds twice.
    pub(super) fn short(&self) -> Option<Short> {
        self.short_rounding(false)
    }

    /// The short path's constants, if the layer takes it and rounds once.
    pub(super) fn short_once(&self) -> Option<Short> {
        self.short_rounding(true)
    }

    /// The short path's constants, if the layer takes it and rounds once (`single`) or twice.
    fn short_rounding(&self, single: bool) -> Option<Short> {
        let ClampI8 { min, max } = self.q.act;
        let bytes = |v: i32| u32::from(v as u8) * 0x0101_0101;
        (self.short && self.single == single).then_some(Short {
            rounding_and_zero_point: self.rounding_and_zero_point,
            min: bytes(min),
            max: bytes(max),
        })
    }

    /// Whether each channel has its own factor.
    pub(super) fn per_channel(&self) -> bool {
        self.per_channel != 0
    }

    /// The biases, one per channel.
    pub(super) fn biases(&self) -> *const i32 {
        self.bias.as_ptr()
    }

    /// The factors, one per channel or one for all.
    pub(super) fn factors(&self) -> *const Requant {
        self.q.requant.as_ptr()
    }

    /// The starting accumulator of output channel `c`: its bias.
    ///
    /// # Safety
    /// `c` must be below the `channels` given to [`Output::new`].
    #[inline(always)]
    pub(super) unsafe fn bias(&self, c: usize) -> i32 {
        // SAFETY: `new` checked `bias` holds `channels` values.
        unsafe { *self.bias.get_unchecked(c) }
    }

    /// Output channel `c`'s factor, for [`Output::apply`].
    ///
    /// # Safety
    /// As [`Output::bias`].
    #[inline(always)]
    pub(super) unsafe fn factor(&self, c: usize) -> Requant {
        // SAFETY: `new` checked the factors hold one, or `channels`, entries.
        unsafe { *self.q.requant.get_unchecked(c & self.per_channel) }
    }

    /// The int8 output for the accumulator `acc` (bias included) of a channel with factor `r`.
    #[inline(always)]
    pub(super) fn apply(&self, r: Requant, acc: i32) -> i8 {
        if !self.short {
            return reference(self.q, r, acc);
        }
        // In 0..=30 on the short path.
        let e1 = (!r.shift) as u32 & 31;
        let scaled = if self.single {
            smmul(acc.wrapping_shl(1), r.multiplier)
        } else {
            let y = smmulr(acc.wrapping_shl(1), r.multiplier);
            y.wrapping_add(y >> 31)
        };
        let divided = (scaled >> e1).wrapping_add(self.rounding_and_zero_point) >> 1;
        self.q.act.apply(divided)
    }
}

/// The reference's steps, out of line (layers off the short path are rare).
#[cold]
#[inline(never)]
fn reference(q: &Int8Params, r: Requant, acc: i32) -> i8 {
    requantize_with(q, r, acc, 0)
}

/// `(a × b + 2^31) >> 32`: the rounded high word of the product.
#[inline(always)]
pub(super) fn smmulr(a: i32, b: i32) -> i32 {
    let r;
    // SAFETY: one register-only multiply (no memory, no stack, no flags), on every core this
    // module is compiled for.
    unsafe {
        core::arch::asm!(
            "smmulr {r}, {a}, {b}",
            r = lateout(reg) r,
            a = in(reg) a,
            b = in(reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    r
}

/// `(a × b) >> 32`: the truncated high word of the product (`SMMUL`, which LLVM emits for
/// this 64-bit form).
#[inline(always)]
fn smmul(a: i32, b: i32) -> i32 {
    ((i64::from(a) * i64::from(b)) >> 32) as i32
}
