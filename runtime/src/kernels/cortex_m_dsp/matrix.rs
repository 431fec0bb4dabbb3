//! Convolutions and fully connected layers as matrix products over 16-bit activation columns.
//!
//! A column is one output pixel's window (`KH × KW × Cin` activations in the filters' order),
//! offset by the input zero point and sign-extended to 16-bit lanes once, then multiplied with
//! every filter. Two columns are built at a time, interleaved per four elements, so the inner
//! loop loads both columns' next four elements with one `LDM`, then each of two filters' next
//! four weights with one `LDR`, and accumulates 2 channels × 2 columns with eight `SMLAD`s:
//! 16 multiply-accumulates in 15 instructions. A single-row fully connected layer has one
//! column and takes four filters per pass instead.

use super::output::{Output, Short};
use super::{extend_activations, lanes, padded_word, smlad_word};
use crate::kernels::conv2d::{self, for_each_window, Window};
use crate::kernels::scratch::Scratch;
use crate::kernels::{fully_connected, ConvGeometry, FcGeometry, Int8Params, LaidOut, Nhwc};
use crate::quant::Requant;

/// The inner loop of [`tile`] and [`pairs_asm`]: r0–r3 += (A·f0, A·f1, B·f0, B·f1) over the groups
/// from r4 to lr (columns), with the filters at r5 and r12; r8–r11 hold a group of both
/// columns and r6, r7 a weight word's lanes.
macro_rules! two_by_two {
    () => {
        concat!(
            // Two groups per iteration; an odd count enters at the second.
            "sub r6, lr, r4\n",
            "tst r6, #16\n",
            "bne 5f\n",
            "2:\n",
            two_by_two!(group),
            "5:\n",
            two_by_two!(group),
            "cmp r4, lr\n",
            "bne 2b",
        )
    };
    // Eight groups per iteration, entered at the group that leaves a multiple of eight (each
    // group is 15 four-byte instructions: 60 bytes).
    (unrolled) => {
        concat!(
            "2:\n",
            two_by_two!(group),
            two_by_two!(group),
            two_by_two!(group),
            two_by_two!(group),
            two_by_two!(group),
            two_by_two!(group),
            two_by_two!(group),
            two_by_two!(group),
            "cmp r4, lr\n",
            "bne 2b",
        )
    };
    (group) => {
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
}

/// The inner loop of [`column_tile`] and [`quads_asm`]: r0–r3 += (A·f0, A·f1, A·f2, A·f3)
/// over column A's groups from r4 to r11, with the filters at r5, r8, r9, r10; r12 and lr hold
/// a group of the column and r6, r7 a weight word's lanes.
macro_rules! four_by_one {
    () => {
        concat!(
            // Two groups per iteration; an odd count enters at the second.
            "sub r6, r11, r4\n",
            "tst r6, #8\n",
            "bne 5f\n",
            "2:\n",
            four_by_one!(group),
            "5:\n",
            four_by_one!(group),
            "cmp r4, r11\n",
            "bne 2b",
        )
    };
    (group) => {
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

/// [`conv2d::conv2d_i8`] as a matrix product: output pixels in pairs, each pair's windows
/// built as two [`Columns`] (unpadded 1×1 convolutions straight from the input pixels; channels
/// in fours extended from the window's runs; other channel counts first gathered into a row of
/// bytes, padding filled with the input zero point), then two output channels per pass over
/// them: on the short output stage in the assembly loop of [`pairs_asm`] (a [`Plan`] per
/// layer), otherwise with [`tile`] and [`Output::apply`]. A last odd pixel or channel is
/// computed twice and stored once. The columns and the gathered row live in `scratch`
/// (`scratch::dsp::conv2d_i8` bytes); with less, the reference kernel runs.
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
    let cells = g.kernel[0] * g.kernel[1];
    let depth = cells * cin;
    let stage = Output::new(q, bias, depth, cout);
    // Unpadded 1×1 windows are the input's pixels (any stride).
    let pointwise = g.kernel == [1, 1] && g.pad == [0, 0];
    let columns = Columns::<2>::take(&mut scratch, depth);
    let gathered =
        if pointwise || cin.is_multiple_of(4) { Some(&mut [][..]) } else { scratch.take::<i8>(depth) };
    let (Some(stage), Some(mut columns), Some(gathered)) =
        (stage.filter(|_| depth > 0 && cout > 0), columns, gathered)
    else {
        return conv2d::conv2d_i8(g, q, x, w, bias, out);
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
    // With `depth mod 4 ≠ 0` the last pair's weight loads would pass the weights' end by up to
    // 3 bytes: it reads a copy padded with zeros (for an even channel count and a short depth,
    // as first layers have; otherwise it takes the Rust tile).
    let mut padded = [0i8; 2 * PADDED_DEPTH];
    let last_pair =
        (!depth.is_multiple_of(4) && cout.is_multiple_of(2) && groups * 4 <= PADDED_DEPTH).then(|| {
            let (a, b) = padded.split_at_mut(groups * 4);
            a[..depth].copy_from_slice(&w[(cout - 2) * depth..][..depth]);
            b[..depth].copy_from_slice(&w[(cout - 1) * depth..][..depth]);
            &padded[..]
        });
    let filters = Filters { w, depth, count: cout, last_pair };
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
/// and the padded last pair, each a [`Pairs`] template (with its first channel) whose outputs
/// (and columns) every pixel pair sets; the channels from `rest` on take the Rust tile.
struct Plan {
    passes: [Option<(usize, Pairs)>; 2],
    rest: usize,
}

impl Plan {
    /// The passes for `filters` on the short output stage (none off it). `one_factor` holds a
    /// per-tensor factor twice for the templates to point at.
    fn new(filters: &Filters, stage: &Output, one_factor: &mut [Requant; 2]) -> Self {
        let (depth, count) = (filters.depth, filters.count);
        let mut plan = Self { passes: [None, None], rest: 0 };
        let (Some(short), Some(w), true) = (stage.short(), filters.w.get(..count * depth), count >= 2) else {
            return plan;
        };
        // Whole pairs whose weight loads (`4 × groups ≤ depth + 3` bytes per filter) stay
        // inside the weights.
        let groups = depth.div_ceil(4);
        let mut pairs = count / 2;
        while pairs > 0 && (2 * pairs - 1) * depth + 4 * groups > w.len() {
            pairs -= 1;
        }
        // SAFETY: channels 0 and 1 exist (count ≥ 2).
        let factor_step = match unsafe { [stage.factor(0), stage.factor(1)] } {
            _ if stage.per_channel() => 2 * size_of::<Requant>(),
            [one, _] => {
                *one_factor = [one; 2];
                0
            }
        };
        // Filter 1 of a pair is `apart` bytes after filter 0; the next pair's filter 0 is
        // `2 × depth` bytes after this one's.
        let pass = |c0: usize, w0: *const i8, apart: usize, pairs: usize| Pairs {
            out: core::ptr::null_mut(),
            bias: stage.biases().wrapping_add(c0),
            second: 0,
            out_end: core::ptr::null_mut(),
            skip: (2 * depth).wrapping_sub(4 * groups),
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
            // Filter c of the pairs reads bytes c × depth .. c × depth + 4 × groups, inside `w`
            // by the loop above.
            plan.passes[0] = Some((0, pass(0, w.as_ptr(), depth, pairs)));
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

/// Longest filter of the last pair [`conv2d_i8`] copies padded (see `Filters::last_pair`).
const PADDED_DEPTH: usize = 128;

/// The layer's filters: `count` rows of `depth` int8 weights.
struct Filters<'a> {
    w: &'a [i8],
    depth: usize,
    count: usize,
    /// The last two filters, each padded with zeros to `4 × ⌈depth / 4⌉` bytes.
    last_pair: Option<&'a [i8]>,
}

impl Filters<'_> {
    /// Filter `c`'s weights (empty if the weights are short, which the loader rules out).
    #[inline(always)]
    fn row(&self, c: usize) -> &[i8] {
        self.w.get(c * self.depth..).and_then(|f| f.get(..self.depth)).unwrap_or(&[])
    }
}

/// Both columns times every filter: `out[c]` and `out[count + c]` for every channel `c`; `out`
/// holds the two pixels' outputs, or one pixel's when column B duplicates column A.
#[inline(never)]
fn multiply(columns: &Columns<2>, filters: &Filters, stage: &Output, plan: &Plan, out: &mut [i8]) {
    let (depth, count) = (filters.depth, filters.count);
    let full = depth / 4;
    let Some(w) = filters.w.get(..count * depth) else { return };
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
        // biases and factors; both pixels' outputs hold `count ≥ c0 + 2 × pairs` bytes.
        unsafe { pairs_asm(&args) };
    }
    let done = plan.rest;
    for c0 in (done..count).step_by(2) {
        // A last odd channel is computed twice.
        let c1 = (c0 + 1).min(count - 1);
        let (f0, f1) = (&w[c0 * depth..][..depth], &w[c1 * depth..][..depth]);
        // SAFETY: c0 ≤ c1 < count, the layer's channels.
        let (b0, b1, r0, r1) =
            unsafe { (stage.bias(c0), stage.bias(c1), stage.factor(c0), stage.factor(c1)) };
        let mut acc = [b0, b1, b0, b1];
        if full > 0 {
            // SAFETY: both filters hold `depth ≥ 4 × full` bytes and `columns` holds
            // `⌈depth / 4⌉ ≥ full` groups of 4 words (`Columns::take`), as `tile` reads.
            acc = unsafe { tile(acc, columns.words.as_ptr(), [f0.as_ptr(), f1.as_ptr()], full) };
        }
        if full * 4 < depth {
            acc = tail(acc, columns.group(full), [&f0[full * 4..], &f1[full * 4..]]);
        }
        first[c0] = stage.apply(r0, acc[0]);
        first[c1] = stage.apply(r1, acc[1]);
        if let Some(second) = second.as_deref_mut() {
            second[c0] = stage.apply(r0, acc[2]);
            second[c1] = stage.apply(r1, acc[3]);
        }
    }
}

/// The state of [`pairs_asm`], copied to its stack frame (the assembly reads the fields at
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
    /// Bytes from a pair's first filter to its second.
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

/// For every pair of channels of `args`: [`tile`] over the columns, then the short output stage
/// ([`Output::apply`]) of its four accumulators, stored as pixel A's and pixel B's outputs.
///
/// # Safety
/// `args` must describe `pairs ≥ 1` pairs whose biases, factors, weights (`16 × groups` bytes
/// of columns, `4 × groups` bytes per filter) and outputs are all inside their buffers.
unsafe fn pairs_asm(args: &Pairs) {
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
            // The inner loop's entry, kept at [sp, #48]: 2f + 60 × ((−groups) mod 8), with
            // the Thumb bit (`ADR.W`: the 16-bit form reaches word-aligned labels only, and the
            // assembler has picked it for a label that was not).
            "sub r6, r4, lr",
            "ubfx r6, r6, #4, #3",
            "rsb r6, r6, r6, lsl #4",
            "adr.w r7, 2f",
            "add r7, r7, r6, lsl #2",
            "orr r7, r7, #1",
            "str r7, [sp, #48]",
            "ldrd r0, r1, [r2], #8",
            "str r2, [sp, #4]",
            "mov r2, r0",
            "mov r3, r1",
            "bx r7",
            two_by_two!(unrolled),
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

/// `acc + [A·f0, A·f1, B·f0, B·f1]` over the first `groups` groups of the columns at `columns`
/// (A and B as [`Columns`] interleaves them) and the filters `f`.
///
/// # Safety
/// `columns` must be readable for `16 × groups` bytes (4-aligned) and each filter for
/// `4 × groups` bytes; `groups ≥ 1`.
#[inline(always)]
unsafe fn tile(acc: [i32; 4], columns: *const u32, f: [*const i8; 2], groups: usize) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    let end = columns.wrapping_add(4 * groups);
    // SAFETY: every load lies in the ranges the caller guarantees (`LDM` from the 4-aligned
    // columns, unaligned `LDR` of weights, which these cores allow). Every other register is an
    // operand, so the two temporaries are r6 and r7 (which Rust does not hand out as operands),
    // saved on the stack and restored.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            two_by_two!(),
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

/// [`fully_connected::fully_connected_i8`] with `SMLAD`: a single row (a batch of one) is
/// extended to one column and multiplied with four filters per pass; several rows are a 1×1
/// convolution over that many pixels. The column lives in `scratch`
/// (`scratch::dsp::fully_connected_i8` bytes); with less, the reference kernel runs.
pub fn fully_connected_i8(
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    mut scratch: Scratch,
) {
    let (depth, units) = (g.depth, g.units);
    let stage = Output::new(q, bias, depth, units);
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
        return conv2d_i8(&geometry, q, x, w, bias, out, scratch);
    }
    let (Some(stage), Some(mut columns)) =
        (stage.filter(|_| depth > 0 && units > 0), Columns::<1>::take(&mut scratch, depth))
    else {
        return fully_connected::fully_connected_i8(g, q, x, w, bias, out);
    };
    // In range: the loader checks zero points are int8.
    columns.extend(0, 0, &x[..depth], lanes(q.input_zero_point.wrapping_neg()), q.input_zero_point as i8);
    let filters = Filters { w, depth, count: units, last_pair: None };
    let Some(w) = w.get(..units * depth) else { return };
    let out = &mut out[..units];
    let (full, groups) = (depth / 4, depth.div_ceil(4));
    let mut done = 0;
    let short = match (stage.short(), stage.short_once()) {
        (Some(short), _) => Some((short, quads_asm as unsafe fn(&mut Quads))),
        (None, Some(short)) => Some((short, quads_once_asm as unsafe fn(&mut Quads))),
        (None, None) => None,
    };
    if let Some((short, quads)) = short {
        // Whole blocks of four units whose weight loads stay inside the weights.
        let mut blocks = units / 4;
        while blocks > 0 && (4 * blocks - 1) * depth + 4 * groups > w.len() {
            blocks -= 1;
        }
        if blocks > 0 {
            // SAFETY: channels 0..4 exist (blocks ≥ 1).
            let (factors, factor_step) = match unsafe { [0, 1, 2, 3].map(|c| stage.factor(c)) } {
                all if stage.per_channel() => (all, 4 * size_of::<Requant>()),
                [one, ..] => ([one; 4], 0),
            };
            let w0 = w.as_ptr();
            let mut args = Quads {
                bias: stage.biases(),
                columns: columns.words.as_ptr(),
                w: [0, 1, 2, 3].map(|k| w0.wrapping_add(k * depth)),
                end: columns.words.as_ptr().wrapping_add(2 * groups),
                factors: if factor_step == 0 { factors.as_ptr() } else { stage.factors() },
                factor_step,
                out: out.as_mut_ptr(),
                step: 4 * depth,
                blocks,
                short,
            };
            // SAFETY: `columns` holds `groups` groups (`Columns::take`); unit u of the blocks
            // reads bytes u × depth .. u × depth + 4 × groups, inside `w` by the loop above;
            // the bias and factors hold `units` entries (or one factor, repeated with step 0),
            // and `out` `units` bytes.
            unsafe { quads(&mut args) };
            done = 4 * blocks;
        }
    }
    for (b, o) in out[done..].chunks_mut(4).enumerate() {
        let u0 = done + 4 * b;
        // Units past the last repeat it; their results are not stored.
        let u = [0, 1, 2, 3].map(|k| (u0 + k).min(units - 1));
        let f = u.map(|u| filters.row(u));
        if f.iter().any(|f| f.len() < depth) {
            return;
        }
        // SAFETY: every u < units, the layer's channels.
        let (mut acc, r) = unsafe { (u.map(|u| stage.bias(u)), u.map(|u| stage.factor(u))) };
        if full > 0 {
            // SAFETY: the four filters hold `depth ≥ 4 × full` bytes and the column holds
            // `⌈depth / 4⌉ ≥ full` groups of 2 words (`Columns::take`), as `column_tile` reads.
            acc = unsafe { column_tile(acc, columns.words.as_ptr(), f.map(<[i8]>::as_ptr), full) };
        }
        if full * 4 < depth {
            let [e, o] = columns.words(0, full);
            for (a, f) in acc.iter_mut().zip(f) {
                *a = smlad_word(*a, e, o, padded_word(&f[full * 4..], 0));
            }
        }
        for (k, o) in o.iter_mut().enumerate() {
            *o = stage.apply(r[k], acc[k]);
        }
    }
    stage.fix_constants(out, units);
}

/// The state of [`quads_asm`], which it advances block by block; the first seven words are
/// loaded with one `LDM` in this order, the others at the offsets the assembly names.
#[repr(C)]
struct Quads {
    /// Bias of the block's first unit.
    bias: *const i32,
    /// The column (column A of [`Columns`]).
    columns: *const u32,
    /// The block's four filters.
    w: [*const i8; 4],
    /// One past the column's last group.
    end: *const u32,
    /// The block's four factors, and the bytes to the next block's (0 for one factor).
    factors: *const Requant,
    factor_step: usize,
    /// The block's first output.
    out: *mut i8,
    /// Bytes from a filter to the next block's.
    step: usize,
    /// Blocks left.
    blocks: usize,
    /// The short output stage's constants.
    short: Short,
}

const _: () =
    assert!(core::mem::offset_of!(Quads, factors) == 28 && core::mem::offset_of!(Quads, short) == 48);

/// Defines `$name`, which for every block of four units of `args` runs [`column_tile`] over the
/// column, then the short output stage ([`Output::apply`]) of its four accumulators with
/// `$rescale` (rounding twice: [`rescale!`], once: [`rescale_once!`]), and stores them.
macro_rules! quads_asm {
    ($(#[$doc:meta])* $name:ident, $rescale:ident) => {
$(#[$doc])*
///
/// # Safety
/// `args` must describe `blocks ≥ 1` blocks whose biases, factors, weights (`8 × groups`
/// bytes of the column, `4 × groups` bytes per filter) and outputs are all inside their buffers.
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
            four_by_one!(),
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
    /// [`column_tile`] and the output stage rounding twice, for every block of four units.
    quads_asm,
    rescale
);
quads_asm!(
    /// [`column_tile`] and the output stage rounding once, for every block of four units.
    quads_once_asm,
    rescale_once
);

/// `acc + [A·f0, A·f1, A·f2, A·f3]` over the first `groups` groups of column A at `columns`.
///
/// # Safety
/// `columns` must be readable for `8 × groups` bytes (one column, 4-aligned) and each filter
/// for `4 × groups` bytes.
#[inline(always)]
unsafe fn column_tile(acc: [i32; 4], columns: *const u32, f: [*const i8; 4], groups: usize) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    let end = columns.wrapping_add(2 * groups);
    // SAFETY: as in `tile`.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            four_by_one!(),
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

/// [`conv2d::conv2d_i8_laid_out`] for the DSP layouts.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_laid_out(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: LaidOut,
    bias: &[i32],
    out: &mut [i8],
    _scratch: Scratch,
) {
    conv2d::conv2d_i8_laid_out(g, q, x, w, bias, out)
}

/// [`fully_connected::fully_connected_i8_laid_out`] for the DSP layouts.
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_i8_laid_out(
    g: &FcGeometry,
    q: &Int8Params,
    x: &[i8],
    w: LaidOut,
    bias: &[i32],
    out: &mut [i8],
    _scratch: Scratch,
) {
    fully_connected::fully_connected_i8_laid_out(g, q, x, w, bias, out)
}
