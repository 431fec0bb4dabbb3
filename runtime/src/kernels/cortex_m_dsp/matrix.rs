//! Convolutions and fully connected layers as matrix products over 16-bit activation columns.
//!
//! A column is one output pixel's window (`KH × KW × Cin` activations in the filters' order),
//! offset by the input zero point and sign-extended to 16-bit lanes once, then multiplied with
//! every filter. Two columns are built at a time, interleaved per four elements, so the inner
//! loop loads both columns' next four elements with one `LDM`, then each of two filters' next
//! four weights with one `LDR`, and accumulates 2 channels × 2 columns with eight `SMLAD`s:
//! 16 multiply-accumulates in 15 instructions. A single-row fully connected layer has one
//! column and takes four filters per pass instead. Filters laid out at export in pairs of
//! zero-padded groups (`WeightLayout::DspPairs`, `DspPairsWide`) are read in place with no
//! partial last group: one `LDRD` loads both filters' words (14 instructions per 16
//! multiply-accumulates), or, already in 16-bit lanes, one filter's two words (11).
//!
//! The kernels take the layout as a const parameter `L` (`WeightLayout as u8`): each
//! instantiation holds only its own layout's assembly, so a firmware links the layouts its
//! model's weights use (`Kernels::LAYOUTS`).

use super::output::{Output, Short};
use super::{extend_activations, lanes, padded_word, smlad_word};
use crate::format::layout::WeightLayout;
use crate::kernels::conv2d::{self, for_each_window, Window};
use crate::kernels::scratch::Scratch;
use crate::kernels::{fully_connected, weight_layout, ConvGeometry, FcGeometry, Int8Params, LaidOut, Nhwc};
use crate::quant::Requant;

/// The inner loops of the [`tile`]s and [`pairs_asm`]s: r0–r3 += (A·f0, A·f1, B·f0, B·f1) over
/// the groups from r4 to lr (columns) with filters f0 and f1 in the layout the group names:
/// `standard` reads them at r5 and r12, `pairs` (`WeightLayout::DspPairs`) and `wide`
/// (`WeightLayout::DspPairsWide`) both at r5, r12 then being a temporary. r8–r11 hold a group
/// of both columns and r6, r7 weight lanes.
macro_rules! two_by_two {
    // Two groups per iteration; an odd count enters at the second.
    (loop $group:ident) => {
        concat!(
            "sub r6, lr, r4\n",
            "tst r6, #16\n",
            "bne 5f\n",
            "2:\n",
            two_by_two!($group),
            "5:\n",
            two_by_two!($group),
            "cmp r4, lr\n",
            "bne 2b",
        )
    };
    // Eight groups per iteration, entered at the group that leaves a multiple of eight (every
    // instruction of a group is 32-bit, so a group is 4 bytes per instruction: the `$bytes` of
    // its `pairs_asm!`).
    (unrolled $group:ident) => {
        concat!(
            "2:\n",
            two_by_two!($group),
            two_by_two!($group),
            two_by_two!($group),
            two_by_two!($group),
            two_by_two!($group),
            two_by_two!($group),
            two_by_two!($group),
            two_by_two!($group),
            "cmp r4, lr\n",
            "bne 2b",
        )
    };
    // 15 instructions: each filter's word, sign-extended to lanes.
    (standard) => {
        concat!(
            "ldm r4!, {{r8, r9, r10, r11}}\n",
            "ldr r6, [r5], #4\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r0, r8, r7, r0\n",
            "smlad r0, r9, r6, r0\n",
            "smlad r2, r10, r7, r2\n",
            "smlad r2, r11, r6, r2\n",
            "ldr r6, [r12], #4\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r1, r8, r7, r1\n",
            "smlad r1, r9, r6, r1\n",
            "smlad r3, r10, r7, r3\n",
            "smlad r3, r11, r6, r3\n",
        )
    };
    // 14 instructions: both filters' words with one `LDRD`.
    (pairs) => {
        concat!(
            "ldm r4!, {{r8, r9, r10, r11}}\n",
            "ldrd r6, r12, [r5], #8\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r0, r8, r7, r0\n",
            "smlad r0, r9, r6, r0\n",
            "smlad r2, r10, r7, r2\n",
            "smlad r2, r11, r6, r2\n",
            "sxtb16 r7, r12\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r1, r8, r7, r1\n",
            "smlad r1, r9, r12, r1\n",
            "smlad r3, r10, r7, r3\n",
            "smlad r3, r11, r12, r3\n",
        )
    };
    // 11 instructions: each filter's lanes with one `LDRD`.
    (wide) => {
        concat!(
            "ldm r4!, {{r8, r9, r10, r11}}\n",
            "ldrd r6, r7, [r5], #8\n",
            "smlad r0, r8, r6, r0\n",
            "smlad r0, r9, r7, r0\n",
            "smlad r2, r10, r6, r2\n",
            "smlad r2, r11, r7, r2\n",
            "ldrd r6, r7, [r5], #8\n",
            "smlad r1, r8, r6, r1\n",
            "smlad r1, r9, r7, r1\n",
            "smlad r3, r10, r6, r3\n",
            "smlad r3, r11, r7, r3\n",
        )
    };
}

/// The inner loops of the [`column_tile`]s and [`quads_asm`]s: r0–r3 += (A·f0, A·f1, A·f2, A·f3)
/// over column A's groups from r4 to r11 with filters f0–f3 in the layout the group names:
/// `standard` reads them at r5, r8, r9, r10; `pairs` and `wide` read the pair (f0, f1) at r5
/// and (f2, f3) at r8, r9 and r10 then being temporaries. r12 and lr hold a group of the
/// column and r6, r7 (and r9, r10) weight lanes.
macro_rules! four_by_one {
    // Two groups per iteration; an odd count enters at the second.
    (loop $group:ident) => {
        concat!(
            "sub r6, r11, r4\n",
            "tst r6, #8\n",
            "bne 5f\n",
            "2:\n",
            four_by_one!($group),
            "5:\n",
            four_by_one!($group),
            "cmp r4, r11\n",
            "bne 2b",
        )
    };
    (standard) => {
        concat!(
            "ldrd r12, lr, [r4], #8\n",
            "ldr r6, [r5], #4\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r0, r12, r7, r0\n",
            "smlad r0, lr, r6, r0\n",
            "ldr r6, [r8], #4\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r1, r12, r7, r1\n",
            "smlad r1, lr, r6, r1\n",
            "ldr r6, [r9], #4\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r2, r12, r7, r2\n",
            "smlad r2, lr, r6, r2\n",
            "ldr r6, [r10], #4\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r3, r12, r7, r3\n",
            "smlad r3, lr, r6, r3\n",
        )
    };
    (pairs) => {
        concat!(
            "ldrd r12, lr, [r4], #8\n",
            "ldrd r6, r9, [r5], #8\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r0, r12, r7, r0\n",
            "smlad r0, lr, r6, r0\n",
            "sxtb16 r10, r9\n",
            "sxtb16 r9, r9, ror #8\n",
            "smlad r1, r12, r10, r1\n",
            "smlad r1, lr, r9, r1\n",
            "ldrd r6, r9, [r8], #8\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r2, r12, r7, r2\n",
            "smlad r2, lr, r6, r2\n",
            "sxtb16 r10, r9\n",
            "sxtb16 r9, r9, ror #8\n",
            "smlad r3, r12, r10, r3\n",
            "smlad r3, lr, r9, r3\n",
        )
    };
    (wide) => {
        concat!(
            "ldrd r12, lr, [r4], #8\n",
            "ldm r5!, {{r6, r7, r9, r10}}\n",
            "smlad r0, r12, r6, r0\n",
            "smlad r0, lr, r7, r0\n",
            "smlad r1, r12, r9, r1\n",
            "smlad r1, lr, r10, r1\n",
            "ldm r8!, {{r6, r7, r9, r10}}\n",
            "smlad r2, r12, r6, r2\n",
            "smlad r2, lr, r7, r2\n",
            "smlad r3, r12, r9, r3\n",
            "smlad r3, lr, r10, r3\n",
        )
    };
}

/// `N` (1 or 2) columns of offset activations in 16-bit lanes, interleaved per group of four
/// elements `k..k + 4`: group `g`'s `2 × N` words hold column A's (k, k + 2) and (k + 1, k + 3),
/// then column B's. They live in the op's planned scratch: `2 × N × ⌈depth / 4⌉` words.
struct Columns<'a, const N: usize> {
    words: &'a mut [u32],
}

impl<'a, const N: usize> Columns<'a, N> {
    /// The columns of `depth` elements, from `scratch`.
    fn take(scratch: &mut Scratch<'a>, depth: usize) -> Option<Self> {
        scratch.take(2 * N * depth.div_ceil(4)).map(|words| Self { words })
    }

    /// Writes `src` as elements `start..` of column `slot` (below `N`); `start` is a multiple
    /// of 4 and a last partial group is padded with `fill`, the input zero point (0 once offset).
    #[inline(always)]
    fn extend(&mut self, slot: usize, start: usize, src: &[i8], offsets: u32, fill: i8) {
        let Some(dst) = self.words.get_mut(start / 4 * 2 * N + 2 * slot..) else { return };
        let full = src.len() / 4;
        // Group g's two words are dst[2Ng] and dst[2Ng + 1].
        if full > 0 && dst.len() >= 2 * N * (full - 1) + 2 {
            // SAFETY: `src` holds 4 × full bytes and `dst` the 2N × (full − 1) + 2 words written.
            unsafe { extend_words::<N>(src.as_ptr(), dst.as_mut_ptr(), full, offsets) };
        }
        if let (Some([e, o, ..]), false) = (dst.get_mut(2 * N * full..), src.len() == 4 * full) {
            (*e, *o) = extend_activations(padded_word(&src[4 * full..], fill), offsets);
        }
    }

    /// Column `slot`'s two extended words of group `g`.
    fn words(&self, slot: usize, g: usize) -> [u32; 2] {
        let d = &self.words[2 * N * g + 2 * slot..][..2];
        [d[0], d[1]]
    }
}

impl Columns<'_, 2> {
    /// Sets the first `groups` groups of column `slot` to zero.
    fn clear(&mut self, slot: usize, groups: usize) {
        for d in self.words.chunks_mut(4).take(groups) {
            d[2 * slot..2 * slot + 2].fill(0);
        }
    }

    /// Copies column A over column B for the first `groups` groups.
    fn duplicate(&mut self, groups: usize) {
        for d in self.words.chunks_mut(4).take(groups) {
            (d[2], d[3]) = (d[0], d[1]);
        }
    }

    /// Column A's and column B's extended words of group `g`.
    fn group(&self, g: usize) -> [u32; 4] {
        let ([a0, a1], [b0, b1]) = (self.words(0, g), self.words(1, g));
        [a0, a1, b0, b1]
    }
}

/// `to.copy_from_slice(from)` for the short runs of a window's row: words, then bytes, without
/// a `memcpy` call.
#[inline(always)]
fn copy(to: &mut [i8], from: &[i8]) {
    let n = to.len().min(from.len());
    let (words, bytes) = (n / 4, n % 4);
    // SAFETY: both slices hold n = 4 × words + bytes bytes; the loads and stores stay inside
    // them (unaligned `LDR`/`STR` are allowed on these cores).
    unsafe {
        core::arch::asm!(
            "cbz {words}, 3f",
            "2:",
            "ldr {t}, [{src}], #4",
            "str {t}, [{dst}], #4",
            "subs {words}, #1",
            "bne 2b",
            "3:",
            "cbz {bytes}, 5f",
            "4:",
            "ldrb {t}, [{src}], #1",
            "strb {t}, [{dst}], #1",
            "subs {bytes}, #1",
            "bne 4b",
            "5:",
            src = inout(reg) from.as_ptr() => _,
            dst = inout(reg) to.as_mut_ptr() => _,
            words = inout(reg) words => _,
            bytes = inout(reg) bytes => _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// The words of `groups` groups of four int8 activations from `src`, offset and extended as
/// [`extend_activations`] does, stored two per group at `dst`, `dst + 2N`, `dst + 4N`, ... (words)
///
/// # Safety
/// `src` must be readable for `4 × groups` bytes and `dst` writable for `2N × (groups − 1) + 2`
/// words (4-aligned); `groups ≥ 1`.
#[inline(always)]
unsafe fn extend_words<const N: usize>(src: *const i8, dst: *mut u32, groups: usize, offsets: u32) {
    // SAFETY: the loads and stores stay in the ranges the caller guarantees (unaligned `LDR`
    // is allowed on these cores; `STRD` stores to the 4-aligned words).
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr {x}, [{src}], #4",
            "sxtab16 {e}, {off}, {x}",
            "sxtab16 {o}, {off}, {x}, ror #8",
            "strd {e}, {o}, [{dst}], #{step}",
            "subs {n}, #1",
            "bne 2b",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            n = inout(reg) groups => _,
            off = in(reg) offsets,
            step = const 8 * N,
            x = out(reg) _,
            e = out(reg) _,
            o = out(reg) _,
            options(nostack),
        );
    }
}

/// [`conv2d::conv2d_i8`] as a matrix product: [`conv2d_i8_laid_out`] with the filters in the
/// standard layout.
#[inline(always)]
pub fn conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    scratch: Scratch,
) {
    conv2d_i8_laid_out::<{ WeightLayout::Standard as u8 }>(g, q, x, w, bias, out, scratch)
}

/// [`conv2d::conv2d_i8_laid_out`] for filters `w` in the layout `L` names (`WeightLayout as
/// u8`), as a matrix product: output pixels in pairs, each pair's windows built as two
/// [`Columns`] (unpadded 1×1 convolutions straight from the input pixels; channels in fours
/// extended from the window's runs; other channel counts first gathered into a row of bytes,
/// padding filled with the input zero point), then two output channels per pass over them: on
/// the short output stage in the assembly loop of the layout's [`pairs_asm`] (a [`Plan`] per
/// layer), otherwise with its [`tile`] and [`Output::apply`]. A last odd pixel is computed
/// twice and stored once; a last odd channel too (standard layout) or with its zero partner
/// filter (DSP layouts). The columns and the gathered row live in `scratch`
/// (`scratch::dsp::conv2d_i8` bytes); with less, the reference kernel runs.
pub fn conv2d_i8_laid_out<const L: u8>(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    mut scratch: Scratch,
) {
    let (cin, cout) = (g.input.c, g.output.c);
    let cells = g.kernel[0] * g.kernel[1];
    let depth = cells * cin;
    let stage = Output::new(q, bias, depth, cout);
    // Unpadded 1×1 windows are the input's pixels (any stride).
    let pointwise = g.kernel == [1, 1] && g.pad == [0, 0];
    let columns = Columns::<2>::take(&mut scratch, depth);
    let gathered =
        if pointwise || cin.is_multiple_of(4) { Some(&mut [][..]) } else { scratch.take::<i8>(depth) };
    let (Some(stage), Some(mut columns), Some(gathered), Some(filters)) =
        (stage.filter(|_| depth > 0 && cout > 0), columns, gathered, Filters::<L>::new(w, depth, cout))
    else {
        return match Filters::<L>::LAYOUT {
            WeightLayout::Standard => conv2d::conv2d_i8(g, q, x, w, bias, out),
            layout => conv2d::conv2d_i8_laid_out(g, q, x, LaidOut { bytes: w, layout, depth }, bias, out),
        };
    };
    let offsets = lanes(q.input_zero_point.wrapping_neg());
    // In range: the loader checks zero points are int8.
    let zero_point = q.input_zero_point as i8;
    let groups = depth.div_ceil(4);
    let mut fill = |columns: &mut Columns<2>, slot: usize, window: Window| {
        if cin.is_multiple_of(4) {
            if window.len() < cells {
                columns.clear(slot, groups);
            }
            window.for_each_run(|tap, px, count| {
                columns.extend(slot, tap * cin, &x[px * cin..][..count * cin], offsets, zero_point);
            });
        } else {
            let row = &mut gathered[..];
            // Only windows that overhang the input have padding cells to fill.
            if window.len() < cells {
                row.fill(zero_point);
            }
            window.for_each_run(|tap, px, count| {
                copy(&mut row[tap * cin..][..count * cin], &x[px * cin..][..count * cin]);
            });
            columns.extend(slot, 0, row, offsets, zero_point);
        }
    };
    let mut padded = [0i8; 2 * PADDED_DEPTH];
    let filters = filters.pad_last_pair(&mut padded);
    let mut one_factor = [Requant::default(); 2];
    let plan = Plan::new(&filters, &stage, &mut one_factor);
    if pointwise {
        // Every column is one input pixel's channels: no windows to walk.
        let (input, output, [sy, sx]) = (g.input, g.output, g.stride);
        let mut pending = None;
        let mut pixel = 0;
        for b in 0..output.n {
            for oy in 0..output.h {
                let row = (b * input.h + oy * sy) * input.w;
                for ox in 0..output.w {
                    let src = &x[(row + ox * sx) * cin..][..cin];
                    match pending.take() {
                        None => {
                            columns.extend(0, 0, src, offsets, zero_point);
                            pending = Some(pixel);
                        }
                        Some(first) => {
                            columns.extend(1, 0, src, offsets, zero_point);
                            multiply(
                                &columns,
                                &filters,
                                &stage,
                                &plan,
                                &mut out[first * cout..(pixel + 1) * cout],
                            );
                        }
                    }
                    pixel += 1;
                }
            }
        }
        if let Some(last) = pending {
            columns.duplicate(groups);
            multiply(&columns, &filters, &stage, &plan, &mut out[last * cout..][..cout]);
        }
        return stage.fix_constants(out, cout);
    }
    let mut pending = None;
    for_each_window(g, |window, pixel| match pending.take() {
        None => {
            fill(&mut columns, 0, window);
            pending = Some(pixel);
        }
        Some(first) => {
            fill(&mut columns, 1, window);
            multiply(&columns, &filters, &stage, &plan, &mut out[first * cout..(pixel + 1) * cout]);
        }
    });
    if let Some(last) = pending {
        columns.duplicate(groups);
        multiply(&columns, &filters, &stage, &plan, &mut out[last * cout..][..cout]);
    }
    stage.fix_constants(out, cout);
}

/// A layer's assembly passes over the channel pairs, worked out once: the pairs read in place
/// and (standard layout) the padded last pair, each a [`Pairs`] template (with its first
/// channel) whose outputs (and columns) every pixel pair sets, run by the layout's
/// [`pairs_asm`]; the channels from `rest` on take the Rust tile.
struct Plan {
    passes: [Option<(usize, Pairs)>; 2],
    rest: usize,
}

impl Plan {
    /// The passes for `filters` on the short output stage (none off it). `one_factor` holds a
    /// per-tensor factor twice for the templates to point at.
    fn new<const L: u8>(filters: &Filters<L>, stage: &Output, one_factor: &mut [Requant; 2]) -> Self {
        let (w, depth, count) = (filters.w, filters.depth, filters.count);
        let mut plan = Self { passes: [None, None], rest: 0 };
        let (Some(short), true) = (stage.short(), count >= 2) else {
            return plan;
        };
        let groups = depth.div_ceil(4);
        let mut pairs = count / 2;
        // Standard filters: filter 1 of a pair is `depth` bytes after filter 0, and the next
        // pair's filter 0 `2 × depth` bytes after this one's. A DSP layout's pair is one run of
        // groups, the next pair's right after it (the assembly's second pointer is unused).
        let (apart, skip) = match Filters::<L>::PAIRING {
            Pairing::Standard => (depth, (2 * depth).wrapping_sub(4 * groups)),
            _ => (0, 0),
        };
        if Filters::<L>::PAIRING == Pairing::Standard {
            // Whole pairs whose weight loads (`4 × groups ≤ depth + 3` bytes per filter) stay
            // inside the weights.
            while pairs > 0 && (2 * pairs - 1) * depth + 4 * groups > w.len() {
                pairs -= 1;
            }
        }
        // SAFETY: channels 0 and 1 exist (count ≥ 2).
        let factor_step = match unsafe { [stage.factor(0), stage.factor(1)] } {
            _ if stage.per_channel() => 2 * size_of::<Requant>(),
            [one, _] => {
                *one_factor = [one; 2];
                0
            }
        };
        let pass = |c0: usize, w0: *const i8, apart: usize, pairs: usize| Pairs {
            out: core::ptr::null_mut(),
            bias: stage.biases().wrapping_add(c0),
            second: 0,
            out_end: core::ptr::null_mut(),
            skip,
            apart,
            columns: core::ptr::null(),
            factors: match factor_step {
                0 => one_factor.as_ptr(),
                _ => stage.factors().wrapping_add(c0),
            },
            factor_step,
            short,
            w0,
            end: core::ptr::null(),
            pairs,
        };
        if pairs > 0 {
            // Standard filter c of the pairs reads bytes c × depth .. c × depth + 4 × groups,
            // inside `w` by the loop above; a DSP layout's first `pairs` pairs are inside it
            // (`Filters::new`).
            plan.passes[0] = Some((0, pass(0, w.as_ptr(), apart, pairs)));
            plan.rest = 2 * pairs;
        }
        if let (Some(padded), true) = (filters.last_pair, plan.rest + 2 == count) {
            // Both padded filters hold 4 × groups bytes, one after the other.
            if padded.len() >= 8 * groups {
                plan.passes[1] = Some((plan.rest, pass(plan.rest, padded.as_ptr(), 4 * groups, 1)));
                plan.rest = count;
            }
        }
        plan
    }
}

/// Longest filter of the last pair [`conv2d_i8_laid_out`] copies padded (see
/// `Filters::last_pair`).
const PADDED_DEPTH: usize = 128;

/// The filter layouts the kernels read: [`WeightLayout::Standard`], [`WeightLayout::DspPairs`],
/// [`WeightLayout::DspPairsWide`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pairing {
    Standard,
    Pairs,
    Wide,
}

/// The layer's filters: `count` filters of `depth` int8 weights in the layout `L` names
/// ([`Filters::LAYOUT`]).
struct Filters<'a, const L: u8> {
    /// Exactly the layout's bytes for the filters.
    w: &'a [i8],
    depth: usize,
    count: usize,
    /// Standard layout: the last two filters, each padded with zeros to `4 × ⌈depth / 4⌉` bytes.
    last_pair: Option<&'a [i8]>,
}

impl<'a, const L: u8> Filters<'a, L> {
    /// The filters' layout (another `L` does not compile).
    const LAYOUT: WeightLayout = weight_layout(L);

    /// How the kernels pair them (a layout of depthwise weights does not compile).
    #[allow(clippy::panic)] // Evaluated at compile time, where the panic is a compile error.
    const PAIRING: Pairing = match Self::LAYOUT {
        WeightLayout::Standard => Pairing::Standard,
        WeightLayout::DspPairs => Pairing::Pairs,
        WeightLayout::DspPairsWide => Pairing::Wide,
        WeightLayout::DspDepthwiseRows | WeightLayout::DspDepthwiseColumns => panic!("not a filter layout"),
    };

    /// `count` filters of `depth` weights from `w`, or `None` if `w` does not hold them (which
    /// the loader rules out) or a DSP layout's are not 4-aligned for `LDRD` and `LDM` (the
    /// format aligns constants to 16).
    fn new(w: &'a [i8], depth: usize, count: usize) -> Option<Self> {
        let aligned = Self::PAIRING == Pairing::Standard || w.as_ptr().addr().is_multiple_of(4);
        let bytes = w.get(..Self::LAYOUT.byte_len(count, depth)?)?;
        aligned.then_some(Self { w: bytes, depth, count, last_pair: None })
    }

    /// With `depth mod 4 ≠ 0` the last standard pair's weight loads would pass the weights' end
    /// by up to 3 bytes: it reads a copy in `padded`, padded with zeros (for an even channel
    /// count and a short depth, as first layers have; otherwise it takes the Rust tile).
    fn pad_last_pair(self, padded: &'a mut [i8; 2 * PADDED_DEPTH]) -> Self {
        let (depth, count, groups) = (self.depth, self.count, self.depth.div_ceil(4));
        if Self::PAIRING != Pairing::Standard
            || depth.is_multiple_of(4)
            || count < 2
            || !count.is_multiple_of(2)
            || groups * 4 > PADDED_DEPTH
        {
            return self;
        }
        let (a, b) = padded.split_at_mut(groups * 4);
        a[..depth].copy_from_slice(&self.w[(count - 2) * depth..][..depth]);
        b[..depth].copy_from_slice(&self.w[(count - 1) * depth..][..depth]);
        let padded: &'a [i8] = padded;
        Self { last_pair: Some(padded), ..self }
    }

    /// Bytes of one pair of filters in a DSP layout.
    fn pair_bytes(&self) -> usize {
        Self::LAYOUT.byte_len(2, self.depth).unwrap_or(0)
    }

    /// Pair `p`'s groups in a DSP layout.
    fn pair(&self, p: usize) -> *const i8 {
        let n = self.pair_bytes();
        self.w[p * n..][..n].as_ptr()
    }

    /// `acc + [A·f0, A·f1, B·f0, B·f1]` over both columns for channels `c0` (even) and `c1`
    /// (`c0 + 1`, or `c0` for a last odd channel, whose DSP layout partner is zeros).
    fn two(&self, acc: [i32; 4], columns: &Columns<2>, c0: usize, c1: usize) -> [i32; 4] {
        let (depth, at) = (self.depth, columns.words.as_ptr());
        let groups = depth.div_ceil(4);
        let pair = || [self.pair(c0 / 2); 2];
        match Self::PAIRING {
            Pairing::Standard => {
                let full = depth / 4;
                let (f0, f1) = (&self.w[c0 * depth..][..depth], &self.w[c1 * depth..][..depth]);
                let mut acc = acc;
                if full > 0 {
                    // SAFETY: both filters hold `depth ≥ 4 × full` bytes and `columns` holds
                    // `⌈depth / 4⌉ ≥ full` groups of 4 words (`Columns::take`), as `tile` reads.
                    acc = unsafe { tile(acc, at, [f0.as_ptr(), f1.as_ptr()], full) };
                }
                if full * 4 < depth {
                    acc = tail(acc, columns.group(full), [&f0[full * 4..], &f1[full * 4..]]);
                }
                acc
            }
            // SAFETY: the pair holds `groups` groups of both filters, 4-aligned
            // (`Filters::new`), and `columns` `groups` groups of 4 words (`Columns::take`).
            Pairing::Pairs => unsafe { tile_pairs(acc, at, pair(), groups) },
            // SAFETY: as above.
            Pairing::Wide => unsafe { tile_wide(acc, at, pair(), groups) },
        }
    }

    /// `acc + [A·f0, A·f1, A·f2, A·f3]` over column A for units `u`: four from a multiple of 4,
    /// those past the last repeating it.
    fn four(&self, acc: [i32; 4], column: &Columns<1>, u: [usize; 4]) -> [i32; 4] {
        let (depth, at) = (self.depth, column.words.as_ptr());
        let groups = depth.div_ceil(4);
        // Pairs (u0, u1) and (u2, u3), the second the first again past the last unit.
        let pairs = || {
            let [p, q] = [u[0] / 2, u[2] / 2].map(|p| self.pair(p));
            [p, q, p, q]
        };
        match Self::PAIRING {
            Pairing::Standard => {
                let full = depth / 4;
                let f = u.map(|u| &self.w[u * depth..][..depth]);
                let mut acc = acc;
                if full > 0 {
                    // SAFETY: the four filters hold `depth ≥ 4 × full` bytes and the column
                    // holds `⌈depth / 4⌉ ≥ full` groups of 2 words (`Columns::take`), as
                    // `column_tile` reads.
                    acc = unsafe { column_tile(acc, at, f.map(<[i8]>::as_ptr), full) };
                }
                if full * 4 < depth {
                    let [e, o] = column.words(0, full);
                    for (a, f) in acc.iter_mut().zip(f) {
                        *a = smlad_word(*a, e, o, padded_word(&f[full * 4..], 0));
                    }
                }
                acc
            }
            // SAFETY: both pairs hold `groups` groups of both filters, 4-aligned
            // (`Filters::new`), and the column `groups` groups of 2 words (`Columns::take`).
            Pairing::Pairs => unsafe { column_tile_pairs(acc, at, pairs(), groups) },
            // SAFETY: as above.
            Pairing::Wide => unsafe { column_tile_wide(acc, at, pairs(), groups) },
        }
    }
}

/// Both columns times every filter: `out[c]` and `out[count + c]` for every channel `c`; `out`
/// holds the two pixels' outputs, or one pixel's when column B duplicates column A.
#[inline(never)]
fn multiply<const L: u8>(
    columns: &Columns<2>,
    filters: &Filters<L>,
    stage: &Output,
    plan: &Plan,
    out: &mut [i8],
) {
    let (depth, count) = (filters.depth, filters.count);
    let (first, second) = out.split_at_mut(count.min(out.len()));
    let mut second = second.get_mut(..count);
    if first.len() < count {
        return;
    }
    for (c0, template) in plan.passes.iter().flatten() {
        let out = first.as_mut_ptr().wrapping_add(*c0);
        let args = Pairs {
            out,
            // Pixel B's outputs are `count` bytes after pixel A's (none apart for one pixel),
            // reached from pixel A's next pair.
            second: if second.is_some() { count } else { 0 }.wrapping_sub(2),
            out_end: out.wrapping_add(2 * template.pairs),
            // The columns change between calls: their address is taken afresh.
            columns: columns.words.as_ptr(),
            end: columns.words.as_ptr().wrapping_add(4 * depth.div_ceil(4)),
            ..*template
        };
        // SAFETY: `Plan::new` keeps every load of the passes inside the columns, filters,
        // biases and factors (in the layout `L` names); both pixels' outputs hold
        // `count ≥ c0 + 2 × pairs` bytes.
        unsafe {
            match Filters::<L>::PAIRING {
                Pairing::Standard => pairs_asm(&args),
                Pairing::Pairs => pairs_asm_pairs(&args),
                Pairing::Wide => pairs_asm_wide(&args),
            }
        };
    }
    for c0 in (plan.rest..count).step_by(2) {
        // A last odd channel is computed twice, or with a zero filter.
        let c1 = (c0 + 1).min(count - 1);
        // SAFETY: c0 ≤ c1 < count, the layer's channels.
        let (b0, b1, r0, r1) =
            unsafe { (stage.bias(c0), stage.bias(c1), stage.factor(c0), stage.factor(c1)) };
        let acc = filters.two([b0, b1, b0, b1], columns, c0, c1);
        // Channel c1 first: for a last odd channel (c1 = c0) channel c0's own result stays.
        first[c1] = stage.apply(r1, acc[1]);
        first[c0] = stage.apply(r0, acc[0]);
        if let Some(second) = second.as_deref_mut() {
            second[c1] = stage.apply(r1, acc[3]);
            second[c0] = stage.apply(r0, acc[2]);
        }
    }
}

/// The state of a [`pairs_asm`], copied to its stack frame (the assembly reads the fields at
/// their offsets there) and advanced there pair by pair.
#[derive(Clone, Copy)]
#[repr(C)]
struct Pairs {
    /// Pixel A's output of the pair's first channel.
    out: *mut i8,
    /// Bias of the pair's first channel.
    bias: *const i32,
    /// Bytes from pixel A's output of the next pair to pixel B's of this pair.
    second: usize,
    /// Pixel A's output past the last pair.
    out_end: *mut i8,
    /// Bytes from the end of a pair's first filter's loads to the next pair's first filter.
    skip: usize,
    /// Bytes from a pair's first filter to its second (standard layout).
    apart: usize,
    /// Both columns (as [`Columns`] interleaves them).
    columns: *const u32,
    /// The pair's two factors, and the bytes to the next pair's (0 for one factor).
    factors: *const Requant,
    factor_step: usize,
    /// The short output stage's constants.
    short: Short,
    /// The first pair's first filter.
    w0: *const i8,
    /// One past the columns' last group.
    end: *const u32,
    /// Pairs (at least 1; read by the caller only).
    pairs: usize,
}

const _: () = assert!(
    core::mem::offset_of!(Pairs, factors) == 28
        && core::mem::offset_of!(Pairs, short) == 36
        && core::mem::offset_of!(Pairs, w0) == 48
);

/// Defines `$name`, which for every pair of channels of `args` runs the `$group` groups of
/// [`two_by_two!`] (`$bytes` bytes of code each) over the columns, then the short output stage
/// ([`Output::apply`]) of its four accumulators, stored as pixel A's and pixel B's outputs.
macro_rules! pairs_asm {
    ($(#[$doc:meta])* $name:ident, $group:ident, $bytes:literal) => {
$(#[$doc])*
///
/// # Safety
/// `args` must describe `pairs ≥ 1` pairs whose biases, factors, weights (`16 × groups` bytes
/// of columns, `groups` groups of each filter in the layout, 4-aligned in a DSP layout) and
/// outputs are all inside their buffers.
#[inline(never)]
unsafe fn $name(args: &Pairs) {
    // SAFETY: the loads and stores stay inside the buffers the caller guarantees; the state is
    // copied to 52 bytes below the stack pointer and the stack restored. r6 and r7 (which Rust
    // does not hand out as operands) are saved on the stack and restored.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "sub sp, #52",
            "ldm r0!, {{r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}}",
            "stm sp, {{r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}}",
            // r4 = columns, r5 and r12 = the filters, lr = the columns' end.
            "mov r4, r7",
            "ldrd r5, lr, [r0]",
            "add r12, r5, r6",
            // The inner loop's entry, kept at [sp, #48]: 2f + bytes × ((−groups) mod 8), with
            // the Thumb bit (`ADR.W`: the 16-bit form reaches word-aligned labels only, and the
            // assembler has picked it for a label that was not).
            "sub r6, r4, lr",
            "ubfx r6, r6, #4, #3",
            "movw r7, #{bytes}",
            "smulbb r6, r6, r7",
            "adr.w r7, 2f",
            "add r7, r7, r6",
            "orr r7, r7, #1",
            "str r7, [sp, #48]",
            "ldrd r0, r1, [r2], #8",
            "str r2, [sp, #4]",
            "mov r2, r0",
            "mov r3, r1",
            "bx r7",
            // The loop 4-aligned, which also raises the function's alignment to 4: the
            // assembler resolves `ADR.W` (whose base is the PC rounded down to 4) assuming the
            // function is placed at its alignment, by default 2 (the loop was otherwise entered
            // two bytes late in functions the linker placed at 2 mod 4).
            ".p2align 2",
            two_by_two!(unrolled $group),
            // Factors: r8, r9 = m0, shift0; r10, r11 = m1, shift1; r9, r11 become e − 1 = !shift.
            "ldrd r4, r6, [sp, #28]",
            "ldm r4, {{r8, r9, r10, r11}}",
            "add r4, r6",
            "str r4, [sp, #28]",
            "ldr r12, [sp, #36]",
            "mvn r9, r9",
            "mvn r11, r11",
            rescale!("r0", "r8", "r9"),
            rescale!("r2", "r8", "r9"),
            rescale!("r1", "r10", "r11"),
            rescale!("r3", "r10", "r11"),
            "ldrd r8, r9, [sp, #40]",
            clamp4!("r4", "r8", "r9"),
            // r0's bytes: pixel A's two outputs, then pixel B's.
            "ldm sp, {{r4, r6, r7, r8, r9, r10, r11}}",
            "strh r0, [r4], #2",
            "lsr r0, r0, #16",
            "strh r0, [r4, r7]",
            "cmp r4, r8",
            "beq 4f",
            "ldrd r2, r3, [r6]",
            "ldrd r0, r1, [r6], #8",
            "strd r4, r6, [sp]",
            "add r5, r9",
            "add r12, r5, r10",
            "mov r4, r11",
            "ldr pc, [sp, #48]",
            "4:",
            "add sp, #52",
            "pop {{r6, r7}}",
            bytes = const $bytes,
            inout("r0") core::ptr::from_ref(args) => _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
        );
    }
}
    };
}

pairs_asm!(
    /// The pairs of standard filters (60-byte groups).
    pairs_asm,
    standard,
    60
);
pairs_asm!(
    /// The pairs of `WeightLayout::DspPairs` filters (56-byte groups).
    pairs_asm_pairs,
    pairs,
    56
);
pairs_asm!(
    /// The pairs of `WeightLayout::DspPairsWide` filters (44-byte groups).
    pairs_asm_wide,
    wide,
    44
);

/// `acc` plus the products of the last partial group (`words` as [`Columns::group`] gives
/// them) with the filters' last `depth mod 4` weights.
#[inline(never)]
fn tail(acc: [i32; 4], words: [u32; 4], f: [&[i8]; 2]) -> [i32; 4] {
    let [ae, ao, be, bo] = words;
    let (w0, w1) = (padded_word(f[0], 0), padded_word(f[1], 0));
    [
        smlad_word(acc[0], ae, ao, w0),
        smlad_word(acc[1], ae, ao, w1),
        smlad_word(acc[2], be, bo, w0),
        smlad_word(acc[3], be, bo, w1),
    ]
}

/// Defines `$name`: `acc + [A·f0, A·f1, B·f0, B·f1]` over the first `groups` groups of the
/// columns at `columns` (A and B as [`Columns`] interleaves them) and the filters `f` read as
/// [`two_by_two!`]'s `$group` does.
macro_rules! tile {
    ($(#[$doc:meta])* $name:ident, $group:ident) => {
$(#[$doc])*
///
/// # Safety
/// `columns` must be readable for `16 × groups` bytes (4-aligned) and the filters for `groups`
/// groups in their layout (4-aligned in a DSP layout); `groups ≥ 1`.
#[inline(always)]
unsafe fn $name(acc: [i32; 4], columns: *const u32, f: [*const i8; 2], groups: usize) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    let end = columns.wrapping_add(4 * groups);
    // SAFETY: every load lies in the ranges the caller guarantees (`LDM` from the 4-aligned
    // columns, `LDRD` of 4-aligned weights, unaligned `LDR` of weights, which these cores
    // allow). Every other register is an operand, so the two temporaries are r6 and r7 (which
    // Rust does not hand out as operands), saved on the stack and restored.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            two_by_two!(loop $group),
            "pop {{r6, r7}}",
            inout("r0") a0,
            inout("r1") a1,
            inout("r2") a2,
            inout("r3") a3,
            inout("r4") columns => _,
            inout("r5") f[0] => _,
            inout("r12") f[1] => _,
            in("lr") end,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            options(readonly),
        );
    }
    [a0, a1, a2, a3]
}
    };
}

tile!(
    /// Standard filters at `f`.
    tile,
    standard
);
tile!(
    /// A pair of `WeightLayout::DspPairs` filters at `f[0]` (`f[1]` unused).
    tile_pairs,
    pairs
);
tile!(
    /// A pair of `WeightLayout::DspPairsWide` filters at `f[0]` (`f[1]` unused).
    tile_wide,
    wide
);

/// [`fully_connected::fully_connected_i8`] with `SMLAD`: [`fully_connected_i8_laid_out`] with the
/// filters in the standard layout.
#[inline(always)]
pub fn fully_connected_i8(
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    scratch: Scratch,
) {
    fully_connected_i8_laid_out::<{ WeightLayout::Standard as u8 }>(g, q, x, w, bias, out, scratch)
}

/// [`fully_connected::fully_connected_i8_laid_out`] for filters `w` in the layout `L` names
/// (`WeightLayout as u8`), with `SMLAD`: a single row (a batch of one) is extended to one
/// column and multiplied with four filters per pass (two pairs in a DSP layout), on the short
/// output stage by the layout's [`quads_asm`]; several rows are a 1×1 convolution over that
/// many pixels. The column lives in `scratch` (`scratch::dsp::fully_connected_i8` bytes); with
/// less, the reference kernel runs.
pub fn fully_connected_i8_laid_out<const L: u8>(
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    mut scratch: Scratch,
) {
    let (depth, units) = (g.depth, g.units);
    if g.rows != 1 {
        let input = Nhwc { n: 1, h: 1, w: g.rows, c: depth };
        let geometry = ConvGeometry {
            input,
            output: Nhwc { c: units, ..input },
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0, 0],
        };
        return conv2d_i8_laid_out::<L>(&geometry, q, x, w, bias, out, scratch);
    }
    let stage = Output::new(q, bias, depth, units);
    let (Some(stage), Some(mut columns), Some(filters)) = (
        stage.filter(|_| depth > 0 && units > 0),
        Columns::<1>::take(&mut scratch, depth),
        Filters::<L>::new(w, depth, units),
    ) else {
        return match Filters::<L>::LAYOUT {
            WeightLayout::Standard => fully_connected::fully_connected_i8(g, q, x, w, bias, out),
            layout => {
                let w = LaidOut { bytes: w, layout, depth };
                fully_connected::fully_connected_i8_laid_out(g, q, x, w, bias, out)
            }
        };
    };
    // In range: the loader checks zero points are int8.
    columns.extend(0, 0, &x[..depth], lanes(q.input_zero_point.wrapping_neg()), q.input_zero_point as i8);
    let out = &mut out[..units];
    let groups = depth.div_ceil(4);
    let mut done = 0;
    let short = match (stage.short(), stage.short_once()) {
        (Some(short), _) => Some((short, false)),
        (None, Some(short)) => Some((short, true)),
        (None, None) => None,
    };
    if let Some((short, once)) = short {
        let quads: unsafe fn(&mut Quads) = match (Filters::<L>::PAIRING, once) {
            (Pairing::Standard, false) => quads_asm,
            (Pairing::Standard, true) => quads_once_asm,
            (Pairing::Pairs, false) => quads_pairs_asm,
            (Pairing::Pairs, true) => quads_pairs_once_asm,
            (Pairing::Wide, false) => quads_wide_asm,
            (Pairing::Wide, true) => quads_wide_once_asm,
        };
        let w0 = filters.w.as_ptr();
        let (blocks, w, step) = match Filters::<L>::PAIRING {
            Pairing::Standard => {
                // Whole blocks of four units whose weight loads stay inside the weights.
                let mut blocks = units / 4;
                while blocks > 0 && (4 * blocks - 1) * depth + 4 * groups > filters.w.len() {
                    blocks -= 1;
                }
                (blocks, [0, 1, 2, 3].map(|k| w0.wrapping_add(k * depth)), 4 * depth)
            }
            // Pairs (f0, f1) and (f2, f3), the last two pointers unused.
            _ => {
                let pair = filters.pair_bytes();
                (units / 4, [0, 1, 0, 1].map(|k| w0.wrapping_add(k * pair)), 2 * pair)
            }
        };
        if blocks > 0 {
            // SAFETY: channels 0..4 exist (blocks ≥ 1).
            let (factors, factor_step) = match unsafe { [0, 1, 2, 3].map(|c| stage.factor(c)) } {
                all if stage.per_channel() => (all, 4 * size_of::<Requant>()),
                [one, ..] => ([one; 4], 0),
            };
            let mut args = Quads {
                bias: stage.biases(),
                columns: columns.words.as_ptr(),
                w,
                end: columns.words.as_ptr().wrapping_add(2 * groups),
                factors: if factor_step == 0 { factors.as_ptr() } else { stage.factors() },
                factor_step,
                out: out.as_mut_ptr(),
                step,
                blocks,
                short,
            };
            // SAFETY: `columns` holds `groups` groups (`Columns::take`); standard unit u of the
            // blocks reads bytes u × depth .. u × depth + 4 × groups, inside the weights by the
            // loop above, and a DSP layout's blocks read the first `2 × blocks` pairs, inside
            // them and 4-aligned (`Filters::new`); the bias and factors hold `units` entries (or
            // one factor, repeated with step 0), and `out` `units` bytes.
            unsafe { quads(&mut args) };
            done = 4 * blocks;
        }
    }
    for (b, o) in out[done..].chunks_mut(4).enumerate() {
        let u0 = done + 4 * b;
        // Units past the last repeat it; their results are not stored.
        let u = [0, 1, 2, 3].map(|k| (u0 + k).min(units - 1));
        // SAFETY: every u < units, the layer's channels.
        let (acc, r) = unsafe { (u.map(|u| stage.bias(u)), u.map(|u| stage.factor(u))) };
        let acc = filters.four(acc, &columns, u);
        for (k, o) in o.iter_mut().enumerate() {
            *o = stage.apply(r[k], acc[k]);
        }
    }
    stage.fix_constants(out, units);
}

/// The state of a [`quads_asm`], which it advances block by block; the first seven words are
/// loaded with one `LDM` in this order, the others at the offsets the assembly names.
#[repr(C)]
struct Quads {
    /// Bias of the block's first unit.
    bias: *const i32,
    /// The column (column A of [`Columns`]).
    columns: *const u32,
    /// The block's four filters (standard layout), or its two pairs then two unused pointers
    /// (DSP layouts).
    w: [*const i8; 4],
    /// One past the column's last group.
    end: *const u32,
    /// The block's four factors, and the bytes to the next block's (0 for one factor).
    factors: *const Requant,
    factor_step: usize,
    /// The block's first output.
    out: *mut i8,
    /// Bytes from a filter (or pair) to the next block's.
    step: usize,
    /// Blocks left.
    blocks: usize,
    /// The short output stage's constants.
    short: Short,
}

const _: () =
    assert!(core::mem::offset_of!(Quads, factors) == 28 && core::mem::offset_of!(Quads, short) == 48);

/// Defines `$name`, which for every block of four units of `args` runs the `$group` groups of
/// [`four_by_one!`] over the column, then the short output stage ([`Output::apply`]) of its
/// four accumulators with `$rescale` (rounding twice: [`rescale!`], once: [`rescale_once!`]),
/// and stores them.
macro_rules! quads_asm {
    ($(#[$doc:meta])* $name:ident, $group:ident, $rescale:ident) => {
$(#[$doc])*
///
/// # Safety
/// `args` must describe `blocks ≥ 1` blocks whose biases, factors, weights (`8 × groups`
/// bytes of the column, `groups` groups of each filter in the layout, 4-aligned in a DSP
/// layout) and outputs are all inside their buffers.
unsafe fn $name(args: &mut Quads) {
    // SAFETY: as in `pairs_asm`.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "push {{r0}}",
            "3:",
            "ldr r7, [sp]",
            "ldm r7, {{r0, r4, r5, r8, r9, r10, r11}}",
            "ldm r0, {{r0, r1, r2, r3}}",
            four_by_one!(loop $group),
            "ldr r7, [sp]",
            "ldr r4, [r7, #28]",
            "ldm r4, {{r8, r9, r10, r11}}",
            "mvn r9, r9",
            "mvn r11, r11",
            "ldr r12, [r7, #48]",
            "ldrd r5, r6, [r7, #52]",
            $rescale!("r0", "r8", "r9"),
            $rescale!("r1", "r10", "r11"),
            "ldrd r8, r9, [r4, #16]",
            "ldrd r10, r11, [r4, #24]",
            "mvn r9, r9",
            "mvn r11, r11",
            $rescale!("r2", "r8", "r9"),
            $rescale!("r3", "r10", "r11"),
            clamp4!(),
            "ldr lr, [r7, #36]",
            "str r0, [lr]",
            "add lr, #4",
            "str lr, [r7, #36]",
            "ldm r7, {{r0, r4, r5, r8, r9, r10}}",
            "add r0, #16",
            "ldr r6, [r7, #40]",
            "add r5, r6",
            "add r8, r6",
            "add r9, r6",
            "add r10, r6",
            "stm r7, {{r0, r4, r5, r8, r9, r10}}",
            "ldrd r4, r5, [r7, #28]",
            "add r4, r5",
            "str r4, [r7, #28]",
            "ldr r4, [r7, #44]",
            "subs r4, #1",
            "str r4, [r7, #44]",
            "bne 3b",
            "add sp, #4",
            "pop {{r6, r7}}",
            inout("r0") core::ptr::from_mut(args) => _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
        );
    }
}
    };
}

quads_asm!(
    /// Standard filters, the output stage rounding twice.
    quads_asm,
    standard,
    rescale
);
quads_asm!(
    /// Standard filters, the output stage rounding once.
    quads_once_asm,
    standard,
    rescale_once
);
quads_asm!(
    /// `WeightLayout::DspPairs` filters, the output stage rounding twice.
    quads_pairs_asm,
    pairs,
    rescale
);
quads_asm!(
    /// `WeightLayout::DspPairs` filters, the output stage rounding once.
    quads_pairs_once_asm,
    pairs,
    rescale_once
);
quads_asm!(
    /// `WeightLayout::DspPairsWide` filters, the output stage rounding twice.
    quads_wide_asm,
    wide,
    rescale
);
quads_asm!(
    /// `WeightLayout::DspPairsWide` filters, the output stage rounding once.
    quads_wide_once_asm,
    wide,
    rescale_once
);

/// Defines `$name`: `acc + [A·f0, A·f1, A·f2, A·f3]` over the first `groups` groups of column A
/// at `columns` and the filters `f` read as [`four_by_one!`]'s `$group` does.
macro_rules! column_tile {
    ($(#[$doc:meta])* $name:ident, $group:ident) => {
$(#[$doc])*
///
/// # Safety
/// `columns` must be readable for `8 × groups` bytes (one column, 4-aligned) and the filters
/// for `groups` groups in their layout (4-aligned in a DSP layout); `groups ≥ 1`.
#[inline(always)]
unsafe fn $name(acc: [i32; 4], columns: *const u32, f: [*const i8; 4], groups: usize) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    let end = columns.wrapping_add(2 * groups);
    // SAFETY: as in `tile`.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            four_by_one!(loop $group),
            "pop {{r6, r7}}",
            inout("r0") a0,
            inout("r1") a1,
            inout("r2") a2,
            inout("r3") a3,
            inout("r4") columns => _,
            inout("r5") f[0] => _,
            inout("r8") f[1] => _,
            inout("r9") f[2] => _,
            inout("r10") f[3] => _,
            in("r11") end,
            out("r12") _,
            out("lr") _,
            options(readonly),
        );
    }
    [a0, a1, a2, a3]
}
    };
}

column_tile!(
    /// Standard filters at `f`.
    column_tile,
    standard
);
column_tile!(
    /// Two pairs of `WeightLayout::DspPairs` filters at `f[0]` and `f[1]` (`f[2]`, `f[3]` unused).
    column_tile_pairs,
    pairs
);
column_tile!(
    /// Two pairs of `WeightLayout::DspPairsWide` filters at `f[0]` and `f[1]` (`f[2]`, `f[3]`
    /// unused).
    column_tile_wide,
    wide
);
