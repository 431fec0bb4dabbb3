//! 3×3 depthwise windows (dilation 1, stride 1 or 2 along the longer output side) of channels in
//! fours: two output pixels of a line per pass, each window row's three taps as one `SMLAD` of a
//! pair of taps and one single product.
//!
//! Output pixels are swept along lines: rows, or columns when the output has more rows than
//! columns (KWS's 25 × 5), the window then read transposed. Per quad of channels, the input lines
//! a chunk of up to [`CHUNK`] output pixels reads are sign-extended once, minus the input zero
//! point, into *tile rows*: tile column pair `k` holds, per channel, the activations of pixels
//! `2k` and `2k + 1` of the chunk in the two 16-bit lanes of one word. Padding pixels and lines
//! are 0 (an activation at the zero point), so every window is whole. The tile (in the op's
//! planned scratch, [`TILE_WORDS`]) holds as many consecutive lines as fit, at a fixed pitch ([`TILE_ROW`]) so
//! that one pointer and immediate offsets reach a window's three rows; one assembly call runs
//! every output line whose windows lie in them, then the lines the next ones still read move to
//! its top. The quad's weights are paired the same way, `(w0, w1)` and `(w1, w2)` of each window
//! row, doubled ([`QUAD_WORDS`] words, see [`Weights`]): read in place where `ember-quantize`
//! laid them out so (`WeightLayout::DspDepthwiseRows`, or `DspDepthwiseColumns` for the
//! transposed sweep), built per quad and call from the standard layout. Its biases are doubled
//! too (copied with the output stage's factors into the assembly's stack frame): the
//! accumulators hold `2t`, which the output stage multiplies. Two pixels side by side then take,
//! per window row and pair of channels, four `LDRD` and eight multiplies for twelve products
//! (stride 1: `SMLAD` of column pair `k` with `(w0, w1)` and `SMLABT` of `k + 1`'s low lane with
//! `w2` for the left pixel, `SMLATB` of `k`'s high lane with `w0` and `SMLAD` of `k + 1` with
//! `(w1, w2)` for the right one). Lines shorter than [`MIN_PIXELS`] are left to the general
//! kernel (the reference one for laid-out weights), whose costs per pixel are shared by all
//! channels.
//!
//! The output stage is the short one of [`super::super::output`] in four instructions:
//! there `(((y + (y >> 31)) >> (e − 1)) + 1 + 2z) >> 1` with `y = SMMULR(2t, m)`; adding
//! `K = (1 + 2z) << (e − 1)` before the shift instead gives `(y + (y >> 31) + K) >> e` (exact
//! while `|K| < 2^29`, so for `e ≤ `[`MAX_SHIFT`]), `SMMLAR(2t, m, K)` is `y + K`, and the sign of
//! `y` may be taken from `2t`'s (they differ only where `y = 0 > t`, and there both give `z`).

use super::super::{extend_activations, lanes};
use super::Output;
use crate::kernels::{dsp_depthwise, ConvGeometry, Int8Params};

/// Words of a quad's weights: per window row, `(w0, w1)` of channels 0 and 1, `(w1, w2)` of
/// channels 0 and 1, then the same of channels 2 and 3 (doubled, in 16-bit lanes, low first).
const QUAD_WORDS: usize = 24;

/// A layer's 3×3 weights as the path reads them.
#[derive(Clone, Copy)]
pub(super) enum Weights<'a> {
    /// `[3, 3, C]` row-major: each quad's words are built per call.
    Standard(&'a [i8]),
    /// [`QUAD_WORDS`] words per quad, read in place: window rows the weights' rows
    /// (`WeightLayout::DspDepthwiseRows`), or their columns if `transposed` (`…Columns`).
    LaidOut { words: &'a [u32], transposed: bool },
}

/// Most output columns per chunk, by horizontal stride (1, 2): a tile row holds
/// [`TILE_PAIRS`] column pairs, the chunk's columns and the right pixel of a last odd one.
const CHUNK: [usize; 2] = [32, 16];

/// Fewest output pixels per line for which the path beats the general kernel on the emulated M4
/// (VWW's lines of 6 do, of 3 do not: the costs per quad and line are shared by fewer products).
const MIN_PIXELS: usize = dsp_depthwise::MIN_PIXELS;

/// Most column pairs in a tile row.
const TILE_PAIRS: usize = 17;

/// Words from a tile row to the next, for lines of up to [`TILE_PAIRS`] column pairs and of up
/// to 8: the assembly reaches a window's three rows from one pointer with immediate offsets.
const TILE_ROW: [usize; 2] = [4 * TILE_PAIRS, 32];

/// Words of the tile: 7 long rows (KWS's transposed sweep reads 5 lines and their padding), 14
/// short ones; the scratch `ember-quantize` plans for the layers this path may take.
pub(super) const TILE_WORDS: usize = 7 * TILE_ROW[0];

const _: () = assert!(TILE_WORDS == dsp_depthwise::TILE_WORDS);

/// Largest right shift `e` whose `K` fits (see the module docs).
const MAX_SHIFT: i32 = dsp_depthwise::MAX_SHIFT;

/// How a layer's output pixels are swept: along rows (`line` = output row, `pixel` = column), or
/// along columns when there are more rows than columns (the image transposed).
struct Sweep {
    /// Lines of the input and output, pixels per input and output line.
    lines: [usize; 2],
    pixels: [usize; 2],
    /// Elements from an input line (pixel) to the next, and the same in the output.
    input_step: [usize; 2],
    output_step: [usize; 2],
    /// Stride and padding before the first line, and pixel.
    stride: [usize; 2],
    pad: [usize; 2],
    /// Whether window rows are the weights' columns.
    transposed: bool,
}

impl Sweep {
    /// The sweep of `g` along its longer output side, if that side's stride is 1 or 2 and it has
    /// at least [`MIN_PIXELS`] pixels.
    fn of(g: &ConvGeometry) -> Option<Self> {
        let (i, o, c) = (g.input, g.output, g.input.c);
        let transposed = o.h > o.w;
        let sweep = if transposed {
            Sweep {
                lines: [i.w, o.w],
                pixels: [i.h, o.h],
                input_step: [c, i.w * c],
                output_step: [c, o.w * c],
                stride: [g.stride[1], g.stride[0]],
                pad: [g.pad[1], g.pad[0]],
                transposed,
            }
        } else {
            Sweep {
                lines: [i.h, o.h],
                pixels: [i.w, o.w],
                input_step: [i.w * c, c],
                output_step: [o.w * c, c],
                stride: g.stride,
                pad: g.pad,
                transposed,
            }
        };
        let s = sweep.stride[1];
        ((1..=2).contains(&s) && sweep.pixels[1] >= MIN_PIXELS).then_some(sweep)
    }
}

/// [`super::depthwise_conv2d_i8`] for a 3×3 window of dilation 1, stride 1 or 2 along the longer
/// output side (of at least [`MIN_PIXELS`]) and channels in fours on the short output stage
/// (rounding twice, every right shift at most [`MAX_SHIFT`]), in `tile` ([`TILE_WORDS`]);
/// `false`, with `out` untouched, for other layers and for laid-out weights too short or
/// transposed otherwise than the sweep.
pub(super) fn depthwise_conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    stage: &Output,
    x: &[i8],
    w: Weights,
    out: &mut [i8],
    tile: &mut [u32],
) -> bool {
    let c = g.input.c;
    let sweep = Sweep::of(g).filter(|_| g.kernel == [3, 3] && g.dilation == [1, 1]);
    let sized = x.len() >= g.input.len() && out.len() >= g.output.len();
    let channels = c > 0 && c.is_multiple_of(4) && g.output.c == c && g.output.n <= g.input.n;
    let Some(tile) = tile.get_mut(..TILE_WORDS) else { return false };
    let (Some(sweep), true, true, Some(_)) = (sweep, sized, channels, stage.short()) else {
        return false;
    };
    let weights_fit = match w {
        Weights::Standard(w) => w.len() >= 9 * c,
        Weights::LaidOut { words, transposed } => {
            words.len() >= c / 4 * QUAD_WORDS && transposed == sweep.transposed
        }
    };
    if !weights_fit {
        return false;
    }
    // SAFETY (all `stage` calls below): ch < c, the layer's channels.
    if !(0..c).all(|ch| factor(unsafe { stage.factor(ch) }, q.output_zero_point).is_some()) {
        return false;
    }
    let Sweep { lines, pixels, input_step, output_step, stride, pad, transposed } = sweep;
    let s = stride[1];
    let chunk = CHUNK[s - 1];
    let bytes = |v: i32| u32::from(v as u8) * 0x0101_0101;
    let (min, max) = (bytes(q.act.min), bytes(q.act.max));
    let clamp = if min != 0x8080_8080 { 2 } else { u32::from(max != 0x7F7F_7F7F) };
    // The right pixel of a line's last pair is written here when the line has an odd length.
    let mut spill = [0i8; 4];
    let out_at = out.as_mut_ptr();
    let (image_in, image_out) = (g.input.h * g.input.w * c, g.output.h * g.output.w * c);
    let mut paired = [0; QUAD_WORDS];
    for quad in 0..c / 4 {
        // SAFETY: quad < c / 4.
        let constants = unsafe { Constants::new(stage, q.output_zero_point, quad) };
        // The quad's words: in `paired`, or in place in the laid-out weights.
        let weights = match w {
            // SAFETY: `weights_fit` and quad < c / 4.
            Weights::Standard(w) => unsafe {
                pair_taps(&mut paired, w, c, quad, transposed);
                paired.as_ptr()
            },
            Weights::LaidOut { words, .. } => words[quad * QUAD_WORDS..].as_ptr(),
        };
        for px0 in (0..pixels[1]).step_by(chunk) {
            let n = chunk.min(pixels[1] - px0);
            let pairs = n.div_ceil(2);
            let built = if s == 1 { pairs + 1 } else { 2 * pairs + 1 };
            // Tile rows: padded input lines `top..top + capacity` (line `p` is input line
            // `p − pad`, or padding), `built` column pairs of each, `pitch` words apart.
            let short = built <= TILE_ROW[1] / 4;
            let pitch = TILE_ROW[usize::from(short)];
            let capacity = TILE_WORDS / pitch;
            let ix0 = (px0 * s) as isize - pad[1] as isize;
            let line = Line::new(pixels[0], input_step[1], ix0, built, q.input_zero_point);
            for b in 0..g.output.n {
                // Output lines from `first`, their window's padded lines from `top`, built up to
                // `filled`.
                let (mut first, mut filled) = (0, 0);
                while first < lines[1] {
                    let top = first * stride[0];
                    let last = (lines[1] - 1).min(first + (capacity - 3) / stride[0]);
                    let end = last * stride[0] + 3;
                    for p in filled.max(top)..end {
                        let row = &mut tile[(p - top) * pitch..][..4 * built];
                        match p.checked_sub(pad[0]).filter(|&l| l < lines[0]) {
                            // SAFETY: the line's pixels lie in `x` (`sized`), 4 bytes from the
                            // quad's first channel each; `row` holds its column pairs.
                            Some(l) => unsafe {
                                let at = b * image_in + l * input_step[0] + 4 * quad;
                                line.build(row.as_mut_ptr(), x.as_ptr().add(at))
                            },
                            None => row.fill(0),
                        }
                    }
                    let out_a = out_at.wrapping_add(
                        b * image_out + first * output_step[0] + px0 * output_step[1] + 4 * quad,
                    );
                    let step = 2 * output_step[1];
                    let advance = 16 * s;
                    let mut pass = Pass {
                        row: tile.as_ptr(),
                        out_a,
                        out_b: out_a.wrapping_add(output_step[1]),
                        pairs,
                        min,
                        max,
                        step,
                        clamp,
                        lines: last + 1 - first,
                        odd: n % 2,
                        spill: spill.as_mut_ptr(),
                        row_skip: (4 * pitch * stride[0]).wrapping_sub(advance * pairs),
                        out_skip: output_step[0].wrapping_sub(step * pairs),
                        pixel_step: output_step[1],
                        constants: &constants,
                        weights,
                    };
                    // SAFETY: the tile rows of the lines' windows hold `built` column pairs,
                    // which their pairs read (see `CHUNK`); `weights` are the quad's
                    // `QUAD_WORDS` words (`paired`, or in the laid-out words: `weights_fit`),
                    // 4-aligned as `u32`; the outputs of each line's `n` pixels lie in `out`,
                    // and the right pixel of a last odd pair goes to `spill`.
                    unsafe { pass.run(s, short) };
                    // The next window starts with the lines already built that it reads.
                    first = last + 1;
                    let keep = if first < lines[1] { first * stride[0] } else { end };
                    for (to, from) in (keep..end).map(|p| p - top).enumerate() {
                        // Rows move up (to < from): a copy between disjoint rows.
                        let (head, tail) = tile.split_at_mut(from * pitch);
                        head[to * pitch..][..4 * built].copy_from_slice(&tail[..4 * built]);
                    }
                    filled = end;
                }
            }
        }
    }
    true
}

/// The output stage's `(m, K, e)` of a channel with factor `r` (see the module docs), or `None`
/// if its `K` does not fit. A zero factor gives the output zero point: `(0, 1 + 2z, 1)`.
fn factor(r: crate::quant::Requant, zero_point: i32) -> Option<[i32; 3]> {
    let rounding = zero_point.wrapping_mul(2).wrapping_add(1);
    if r.multiplier == 0 {
        return Some([0, rounding, 1]);
    }
    // On the short path every nonzero factor has a shift in −31..=−1.
    let e = r.shift.wrapping_neg();
    (1..=MAX_SHIFT).contains(&e).then(|| [r.multiplier, rounding << (e - 1), e])
}

/// The column pair of the pixel words in r4 and r5 (offsets in r12) stored at r2 (advanced);
/// the count in r3 decremented, setting the flags.
#[rustfmt::skip]
macro_rules! pair_words {
    () => {
        concat!(
            "sxtab16 r8, r12, r4\n",
            "sxtab16 r9, r12, r4, ror #8\n",
            "sxtab16 r10, r12, r5\n",
            "sxtab16 r11, r12, r5, ror #8\n",
            "pkhbt r4, r8, r10, lsl #16\n",
            "pkhbt r5, r9, r11, lsl #16\n",
            "pkhtb r10, r10, r8, asr #16\n",
            "pkhtb r11, r11, r9, asr #16\n",
            "stm r2!, {{r4, r5, r10, r11}}\n",
            "subs r3, #1",
        )
    };
}

/// [`pair_words`] of pixels r6 and r6 + 1 at r0 (both advanced), each read only if below the
/// line's length in lr, else the zero points in r7.
#[rustfmt::skip]
macro_rules! edge_pair {
    () => {
        concat!(
            "cmp r6, lr\n",
            "ite lo\n",
            "ldrlo r4, [r0]\n",
            "movhs r4, r7\n",
            "add r6, #1\n",
            "cmp r6, lr\n",
            "ite lo\n",
            "ldrlo r5, [r0, r1]\n",
            "movhs r5, r7\n",
            "add r6, #1\n",
            "add r0, r0, r1, lsl #1\n",
            pair_words!(),
        )
    };
}

/// Where a chunk's tile rows come from: input lines of `len` pixels `step` elements apart, from
/// pixel `ix0` on, column pairs in three runs: some reading a pixel outside the line, all inside,
/// some outside again.
struct Line {
    len: usize,
    step: usize,
    /// The first pixel, the input zero point in every byte, and the runs' column pairs.
    runs: [u32; 5],
    /// The input offset in both 16-bit lanes.
    offsets: u32,
}

impl Line {
    /// The lines of `len` pixels `step` elements apart for `pairs` (≤ [`TILE_PAIRS`]) column
    /// pairs from pixel `ix0`.
    fn new(len: usize, step: usize, ix0: isize, pairs: usize, zero_point: i32) -> Self {
        // Column pairs wholly inside the line: from the first one at or after pixel 0.
        let first = usize::try_from(-ix0).map_or(0, |before| before.div_ceil(2)).min(pairs);
        let end = usize::try_from(len as isize - ix0).map_or(0, |to| to / 2).clamp(first, pairs);
        let zero_points = u32::from(zero_point as u8) * 0x0101_0101;
        let runs = [first, end - first, pairs - end].map(|n| n as u32);
        Line {
            len,
            step,
            runs: [ix0 as u32, zero_points, runs[0], runs[1], runs[2]],
            offsets: lanes(zero_point.wrapping_neg()),
        }
    }

    /// Fills a tile row from the input line at `x` (its first pixel's quad): 0 outside the line
    /// (the zero point sign-extended with the offset), else the activations minus the zero point.
    ///
    /// # Safety
    /// Four bytes at `x + ix × step` must be readable for every `ix` in `0..len`; `row` must
    /// hold the column pairs.
    unsafe fn build(&self, row: *mut u32, x: *const i8) {
        // SAFETY: the loads of the inner run read pixels inside the line; those of the edge runs
        // read a pixel only when it is inside (else the zero points); the stores write the
        // column pairs; r6 and r7 are saved and restored, the counts pushed and popped.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "ldrd r6, r7, [r3]",
                "ldr r4, [r3, #12]",
                "ldr r5, [r3, #16]",
                "push {{r4, r5}}",
                "ldr r3, [r3, #8]",
                "cbz r3, 4f",
                "3:",
                edge_pair!(),
                "bne 3b",
                "4:",
                "pop {{r3}}",
                "cbz r3, 6f",
                "add r6, r6, r3, lsl #1",
                "5:",
                "ldr r4, [r0]",
                "ldr r5, [r0, r1]",
                "add r0, r0, r1, lsl #1",
                pair_words!(),
                "bne 5b",
                "6:",
                "pop {{r3}}",
                "cbz r3, 8f",
                "7:",
                edge_pair!(),
                "bne 7b",
                "8:",
                "pop {{r6, r7}}",
                inout("r0") x.wrapping_offset(self.runs[0] as i32 as isize * self.step as isize) => _,
                in("r1") self.step,
                inout("r2") row => _,
                inout("r3") self.runs.as_ptr() => _,
                in("r12") self.offsets,
                in("lr") self.len,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
            );
        }
    }
}

/// A quad's doubled biases and output factors, in the order of the assembly's stack frame.
#[repr(C)]
struct Constants {
    /// `2 × bias` per channel.
    bias: [i32; 4],
    /// `(m, K, e)` per channel.
    factors: [[i32; 3]; 4],
}

const _: () = assert!(size_of::<Constants>() == 64 && core::mem::offset_of!(Constants, factors) == 16);
const _: () = assert!(4 * TILE_ROW[0] == 272 && 4 * TILE_ROW[1] == 128);

impl Constants {
    /// Those of quad `quad` of the layer of `stage` (`factor` of each of its channels is
    /// `Some`).
    ///
    /// # Safety
    /// `4 × quad + 4` must not exceed the layer's channels.
    unsafe fn new(stage: &Output, zero_point: i32, quad: usize) -> Self {
        let mut constants = Constants { bias: [0; 4], factors: [[0; 3]; 4] };
        for k in 0..4 {
            // SAFETY: the channel is below the layer's channels.
            let (bias, r) = unsafe { (stage.bias(4 * quad + k), stage.factor(4 * quad + k)) };
            constants.bias[k] = bias.wrapping_mul(2);
            constants.factors[k] = factor(r, zero_point).unwrap_or_default();
        }
        constants
    }
}

/// Writes quad `quad`'s [`QUAD_WORDS`] words of standard-layout weights `w` of `c` channels to
/// `words`: window rows the weights' columns if `transposed`.
///
/// # Safety
/// `w` must hold `9 × c` weights and `4 × quad + 4 ≤ c`.
unsafe fn pair_taps(words: &mut [u32; QUAD_WORDS], w: &[i8], c: usize, quad: usize, transposed: bool) {
    // The quad's weights at tap `t` of the weights' layout (row × 3 + column), doubled in 16-bit
    // lanes: channels 0 and 2, 1 and 3.
    let tap = |t: usize| {
        // SAFETY: t < 9, so the word lies in the `9 × c` weights; Cortex-M loads unaligned words.
        let v = unsafe { w.as_ptr().add(t * c + 4 * quad).cast::<u32>().read_unaligned() };
        let (even, odd) = extend_activations(v, 0);
        (double(even), double(odd))
    };
    let (rows, _) = words.as_chunks_mut::<8>();
    for (ky, row) in rows.iter_mut().enumerate() {
        let at = |kx: usize| if transposed { 3 * kx + ky } else { 3 * ky + kx };
        let [(e0, o0), (e1, o1), (e2, o2)] = [tap(at(0)), tap(at(1)), tap(at(2))];
        let low = |a: u32, b: u32| (a & 0xFFFF) | (b << 16);
        let high = |a: u32, b: u32| (a >> 16) | (b & 0xFFFF_0000);
        *row = [
            low(e0, e1),
            low(o0, o1),
            low(e1, e2),
            low(o1, o2),
            high(e0, e1),
            high(o0, o1),
            high(e1, e2),
            high(o1, o2),
        ];
    }
}

/// Both 16-bit lanes of `v` doubled.
#[inline(always)]
fn double(v: u32) -> u32 {
    let r;
    // SAFETY: one register-only DSP instruction.
    unsafe {
        core::arch::asm!(
            "sadd16 {r}, {v}, {v}",
            r = lateout(reg) r,
            v = in(reg) v,
            options(pure, nomem, nostack),
        );
    }
    r
}

/// The state of one assembly call. Its stack frame holds the quad's [`Constants`] (copied from
/// `constants`) at `sp + 0`, these fields up to `pixel_step` in this order from `sp + 64`, and
/// `pairs` again at `sp + 120`, to start each line from; lr holds `weights`.
#[repr(C)]
struct Pass {
    /// The first window row's tile row from the pair's first column pair (the others follow
    /// at [`TILE_ROW`] words from each other, the second pitch if `short`).
    row: *const u32,
    /// The pair's outputs (left and right pixel).
    out_a: *mut i8,
    out_b: *mut i8,
    /// Pairs left in the line, the current one included (at least 1).
    pairs: usize,
    /// Activation bounds, in every byte.
    min: u32,
    max: u32,
    /// Bytes from a pair's outputs to the next pair's.
    step: usize,
    /// Which bounds clamp more than int8 does: 0 neither, 1 the upper one, 2 both.
    clamp: u32,
    /// Lines left, the current one included (at least 1).
    lines: usize,
    /// 1 if a line's last pair has no right pixel (which goes to `spill`), else 0.
    odd: usize,
    spill: *mut i8,
    /// Bytes from a line's row pointer after its last pair to the next line's first, and the
    /// same of its outputs.
    row_skip: usize,
    out_skip: usize,
    /// Bytes from a left pixel's outputs to the right one's.
    pixel_step: usize,
    /// The quad's output stage, and its [`QUAD_WORDS`] weights (4-aligned).
    constants: *const Constants,
    weights: *const u32,
}

const _: () = assert!(
    core::mem::offset_of!(Pass, odd) == 36
        && core::mem::offset_of!(Pass, constants) == 56
        && core::mem::offset_of!(Pass, weights) == 60
);

/// One window row of both pixels of a pair at horizontal stride 1: its tile row `$row` bytes
/// from r12, its weights at `[lr, $w]` (see [`QUAD_WORDS`]); accumulators r0–r3 (left pixel) and
/// r4–r7.
#[rustfmt::skip]
macro_rules! row_stride1 {
    ($row:literal, $w0:literal, $w1:literal, $w2:literal, $w3:literal) => {
        concat!(
            "ldrd r8, r9, [lr, #", $w0, "]\n",
            "ldrd r10, r11, [r12, #", $row, "]\n",
            "smlad r0, r10, r8, r0\n",
            "smlad r1, r11, r9, r1\n",
            "smlatb r4, r10, r8, r4\n",
            "smlatb r5, r11, r9, r5\n",
            "ldrd r8, r9, [lr, #", $w1, "]\n",
            "ldrd r10, r11, [r12, #(", $row, " + 16)]\n",
            "smlabt r0, r10, r8, r0\n",
            "smlabt r1, r11, r9, r1\n",
            "smlad r4, r10, r8, r4\n",
            "smlad r5, r11, r9, r5\n",
            "ldrd r8, r9, [lr, #", $w2, "]\n",
            "ldrd r10, r11, [r12, #(", $row, " + 8)]\n",
            "smlad r2, r10, r8, r2\n",
            "smlad r3, r11, r9, r3\n",
            "smlatb r6, r10, r8, r6\n",
            "smlatb r7, r11, r9, r7\n",
            "ldrd r8, r9, [lr, #", $w3, "]\n",
            "ldrd r10, r11, [r12, #(", $row, " + 24)]\n",
            "smlabt r2, r10, r8, r2\n",
            "smlabt r3, r11, r9, r3\n",
            "smlad r6, r10, r8, r6\n",
            "smlad r7, r11, r9, r7",
        )
    };
}

/// [`row_stride1`] at horizontal stride 2: the left pixel reads column pairs 0 and 1 (low lane),
/// the right one 1 and 2.
#[rustfmt::skip]
macro_rules! row_stride2 {
    ($row:literal, $w0:literal, $w1:literal, $w2:literal, $w3:literal) => {
        concat!(
            "ldrd r8, r9, [lr, #", $w0, "]\n",
            "ldrd r10, r11, [r12, #", $row, "]\n",
            "smlad r0, r10, r8, r0\n",
            "smlad r1, r11, r9, r1\n",
            "ldrd r10, r11, [r12, #(", $row, " + 16)]\n",
            "smlad r4, r10, r8, r4\n",
            "smlad r5, r11, r9, r5\n",
            "ldrd r8, r9, [lr, #", $w1, "]\n",
            "smlabt r0, r10, r8, r0\n",
            "smlabt r1, r11, r9, r1\n",
            "ldrd r10, r11, [r12, #(", $row, " + 32)]\n",
            "smlabt r4, r10, r8, r4\n",
            "smlabt r5, r11, r9, r5\n",
            "ldrd r8, r9, [lr, #", $w2, "]\n",
            "ldrd r10, r11, [r12, #(", $row, " + 8)]\n",
            "smlad r2, r10, r8, r2\n",
            "smlad r3, r11, r9, r3\n",
            "ldrd r10, r11, [r12, #(", $row, " + 24)]\n",
            "smlad r6, r10, r8, r6\n",
            "smlad r7, r11, r9, r7\n",
            "ldrd r8, r9, [lr, #", $w3, "]\n",
            "smlabt r2, r10, r8, r2\n",
            "smlabt r3, r11, r9, r3\n",
            "ldrd r10, r11, [r12, #(", $row, " + 40)]\n",
            "smlabt r6, r10, r8, r6\n",
            "smlabt r7, r11, r9, r7",
        )
    };
}

/// The output stage of channel `$k`'s accumulators `$a` and `$b` (`2t`), its `(m, K, e)` loaded
/// from r12 (advanced): `SSAT(((SMMLAR(2t, m, K) + (2t >> 31)) >> e)`.
#[rustfmt::skip]
macro_rules! output2 {
    ($a:literal, $b:literal) => {
        concat!(
            "ldm r12!, {{r8, r9, r10}}\n",
            "smmlar r11, ", $a, ", r8, r9\n",
            "add r11, r11, ", $a, ", asr #31\n",
            "asr r11, r11, r10\n",
            "ssat ", $a, ", #8, r11\n",
            "smmlar r11, ", $b, ", r8, r9\n",
            "add r11, r11, ", $b, ", asr #31\n",
            "asr r11, r11, r10\n",
            "ssat ", $b, ", #8, r11",
        )
    };
}

/// The assembly of [`Pass::run`] with the window rows `$row` (one of the macros above),
/// `$advance` bytes from a pair's column pairs to the next pair's and `$pitch` bytes from a tile
/// row to the next (`$pitch2` twice that). lr holds the weights; the frame (see [`Pass`]) the
/// biases, which start both pixels' accumulators, the factors and the state.
macro_rules! pass_asm {
    ($pass:expr, $row:ident, $advance:literal, $pitch:literal, $pitch2:literal) => {
        core::arch::asm!(
            "push {{r6, r7}}",
            "sub sp, #124",
            "ldrd r1, lr, [r0, #56]",
            "ldm r1!, {{r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}}",
            "stm sp, {{r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}}",
            "ldm r1, {{r2, r3, r4, r5, r6}}",
            "add r1, sp, #44",
            "stm r1!, {{r2, r3, r4, r5, r6}}",
            "ldm r0!, {{r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}}",
            "stm r1!, {{r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}}",
            "ldm r0, {{r2, r3, r4}}",
            "stm r1, {{r2, r3, r4}}",
            "ldr r1, [sp, #76]",
            "str r1, [sp, #120]",
            "2:",
            "ldm sp, {{r0, r1, r2, r3}}",
            "ldm sp, {{r4, r5, r6, r7}}",
            "ldr r12, [sp, #64]",
            $row!("0", "0", "8", "16", "24"),
            $row!($pitch, "32", "40", "48", "56"),
            $row!($pitch2, "64", "72", "80", "88"),
            "add r12, sp, #16",
            output2!("r0", "r4"),
            output2!("r1", "r5"),
            output2!("r2", "r6"),
            output2!("r3", "r7"),
            // Both pixels' four bytes, clamped to the activation bounds where they are not
            // int8's, stored.
            "bfi r0, r1, #8, #8",
            "bfi r0, r2, #16, #8",
            "bfi r0, r3, #24, #8",
            "bfi r4, r5, #8, #8",
            "bfi r4, r6, #16, #8",
            "bfi r4, r7, #24, #8",
            "ldr r10, [sp, #92]",
            "cmp r10, #1",
            "blo 3f",
            "ldr r9, [sp, #84]",
            "ssub8 r8, r9, r0",
            "sel r0, r0, r9",
            "ssub8 r8, r9, r4",
            "sel r4, r4, r9",
            "beq 3f",
            "ldr r9, [sp, #80]",
            "ssub8 r8, r0, r9",
            "sel r0, r0, r9",
            "ssub8 r8, r4, r9",
            "sel r4, r4, r9",
            "3:",
            // The right pixel of a line's last pair goes to the spill if the line is odd.
            "ldrd r8, r9, [sp, #68]",
            "ldr r10, [sp, #76]",
            "str r0, [r8]",
            "cmp r10, #1",
            "bne 4f",
            "ldr r11, [sp, #100]",
            "cmp r11, #0",
            "it ne",
            "ldrne r9, [sp, #104]",
            "4:",
            "str r4, [r9]",
            "ldr r11, [sp, #88]",
            "add r8, r11",
            "add r9, r11",
            "strd r8, r9, [sp, #68]",
            // The next pair: its column pairs, then the count.
            "ldr r8, [sp, #64]",
            concat!("add r8, #", $advance),
            "str r8, [sp, #64]",
            "subs r10, #1",
            "str r10, [sp, #76]",
            "bne 2b",
            // The next line: its column pairs and outputs, its pairs.
            "ldr r8, [sp, #64]",
            "ldr r10, [sp, #108]",
            "add r8, r10",
            "str r8, [sp, #64]",
            "ldrd r8, r9, [sp, #112]",
            "ldr r10, [sp, #68]",
            "add r10, r8",
            "add r9, r10",
            "strd r10, r9, [sp, #68]",
            "ldr r9, [sp, #120]",
            "str r9, [sp, #76]",
            "ldr r8, [sp, #96]",
            "subs r8, #1",
            "str r8, [sp, #96]",
            "bne 2b",
            "add sp, #124",
            "pop {{r6, r7}}",
            inout("r0") $pass => _,
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
        )
    };
}

impl Pass {
    /// Both pixels of every pair of every line: the window rows' products, the output stage,
    /// the stores.
    ///
    /// # Safety
    /// `pairs ≥ 1`, `lines ≥ 1`; the three rows of every line's windows (from `row`, then
    /// `row_skip` bytes further than where a line's pairs leave it; [`TILE_ROW`] apart, the
    /// second pitch if `short`) must hold the column pairs its pairs read (`pairs + 1` from the
    /// first at `stride` 1 along the line, `2 pairs + 1` at 2), `constants` must be a
    /// [`Constants`] and `weights` [`QUAD_WORDS`] 4-aligned words, and four bytes must be
    /// writable at every pair's outputs: `out_a` and
    /// `out_b`, `step` bytes further for each pair, `out_skip` further for each line (the
    /// right pixel `pixel_step` from the left one), `spill` for a line's last pair if `odd`.
    unsafe fn run(&mut self, stride: usize, short: bool) {
        let pass = core::ptr::from_mut(self);
        // SAFETY: the loads and stores stay inside what the caller guarantees (LDRD reads
        // word-aligned `u32` arrays: the tile and the weights); the constants and the state are
        // copied to the stack and dropped from it at the end; r6 and r7 (which Rust does not
        // hand out as operands) are saved and restored.
        unsafe {
            match (stride, short) {
                (1, false) => pass_asm!(pass, row_stride1, "16", "272", "544"),
                (1, true) => pass_asm!(pass, row_stride1, "16", "128", "256"),
                (_, false) => pass_asm!(pass, row_stride2, "32", "272", "544"),
                (_, true) => pass_asm!(pass, row_stride2, "32", "128", "256"),
            }
        }
    }
}
