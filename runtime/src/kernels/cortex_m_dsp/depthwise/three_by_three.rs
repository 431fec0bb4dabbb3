//! 3×3 depthwise windows (dilation 1, stride 1 or 2 along the longer output side) of channels in
//! fours: two output pixels of a line per pass, each window row's three taps as one `SMLAD` of a
//! pair of taps and one single product.
//!
//! Output pixels are swept along lines: rows, or columns when the output has more rows than
//! columns (KWS's 25 × 5), the window then read transposed. Per quad of channels, the input lines
//! a chunk of up to [`CHUNK`] output pixels reads are sign-extended once, minus the input zero
//! point, into *tile rows* (a ring of three on the stack, each input line built once per quad and
//! chunk): tile column pair `k` holds, per channel, the activations of pixels `2k` and `2k + 1` of
//! the chunk in the two 16-bit lanes of one word. Padding pixels and lines are 0 (an activation
//! at the zero point), so every window is whole. The quad's weights are paired the same way,
//! `(w0, w1)` and `(w1, w2)` of each window row, doubled, as are its biases: the accumulators hold
//! `2t`, which the output stage multiplies. Two pixels side by side then take, per window row and
//! pair of channels, four `LDRD` and eight multiplies for twelve products (stride 1: `SMLAD` of
//! column pair `k` with `(w0, w1)` and `SMLABT` of `k + 1`'s low lane with `w2` for the left
//! pixel, `SMLATB` of `k`'s high lane with `w0` and `SMLAD` of `k + 1` with `(w1, w2)` for the
//! right one). Lines shorter than [`MIN_PIXELS`] are left to the general kernel, whose costs
//! per pixel are shared by all channels.
//!
//! The output stage is the short one of [`super::super::output`] in four instructions:
//! there `(((y + (y >> 31)) >> (e − 1)) + 1 + 2z) >> 1` with `y = SMMULR(2t, m)`; adding
//! `K = (1 + 2z) << (e − 1)` before the shift instead gives `(y + (y >> 31) + K) >> e` (exact
//! while `|K| < 2^29`, so for `e ≤ `[`MAX_SHIFT`]), `SMMLAR(2t, m, K)` is `y + K`, and the sign of
//! `y` may be taken from `2t`'s (they differ only where `y = 0 > t`, and there both give `z`).

use super::super::{extend_activations, lanes};
use super::Output;
use crate::kernels::{ConvGeometry, Int8Params};

/// Most output columns per chunk, by horizontal stride (1, 2): a tile row holds
/// [`TILE_PAIRS`] column pairs, the chunk's columns and the right pixel of a last odd one.
const CHUNK: [usize; 2] = [32, 16];

/// Fewest output pixels per line, by stride along it (1, 2), for which the path beats the
/// general kernel on the emulated M4 (its costs per quad and line are shared by fewer products).
const MIN_PIXELS: [usize; 2] = [6, 8];

/// Column pairs in a tile row.
const TILE_PAIRS: usize = 17;

/// Words in a tile row: four channels per column pair.
const TILE_WORDS: usize = 4 * TILE_PAIRS;

/// Largest right shift `e` whose `K` fits (see the module docs).
const MAX_SHIFT: i32 = 22;

/// The tile row of a window row outside the input.
static ZERO_ROW: [u32; TILE_WORDS] = [0; TILE_WORDS];

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
        ((1..=2).contains(&s) && sweep.pixels[1] >= MIN_PIXELS[s - 1]).then_some(sweep)
    }
}

/// [`super::depthwise_conv2d_i8`] for a 3×3 window of dilation 1, stride 1 or 2 along the longer
/// output side (of at least [`MIN_PIXELS`]) and channels in fours on the short output stage
/// (rounding twice, every right shift at most [`MAX_SHIFT`]); `false`, with `out` untouched, for
/// other layers.
pub(super) fn depthwise_conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    stage: &Output,
    x: &[i8],
    w: &[i8],
    out: &mut [i8],
) -> bool {
    let c = g.input.c;
    let sweep = Sweep::of(g).filter(|_| g.kernel == [3, 3] && g.dilation == [1, 1]);
    let sized = x.len() >= g.input.len() && out.len() >= g.output.len() && w.len() >= 9 * c;
    let channels = c > 0 && c.is_multiple_of(4) && g.output.c == c && g.output.n <= g.input.n;
    let (Some(sweep), true, true, Some(_)) = (sweep, sized, channels, stage.short()) else {
        return false;
    };
    // SAFETY (all `stage` calls below): ch < c, the layer's channels.
    if !(0..c).all(|ch| factor(unsafe { stage.factor(ch) }, q.output_zero_point).is_some()) {
        return false;
    }
    let Sweep { lines, pixels, input_step, output_step, stride, pad, transposed } = sweep;
    let s = stride[1];
    let chunk = CHUNK[s - 1];
    let offsets = lanes(q.input_zero_point.wrapping_neg());
    let bytes = |v: i32| u32::from(v as u8) * 0x0101_0101;
    let (min, max) = (bytes(q.act.min), bytes(q.act.max));
    let clamp = u32::from((min, max) != (0x8080_8080, 0x7F7F_7F7F));
    let mut tile = [[0u32; TILE_WORDS]; 3];
    // The right pixel of a chunk's last odd pair is written here.
    let mut spill = [0i8; 4];
    let out_at = out.as_mut_ptr();
    let (image_in, image_out) = (g.input.h * g.input.w * c, g.output.h * g.output.w * c);
    for quad in 0..c / 4 {
        let weights = Quad::new(stage, q.output_zero_point, w, c, quad, transposed);
        for px0 in (0..pixels[1]).step_by(chunk) {
            let n = chunk.min(pixels[1] - px0);
            let pairs = n / 2;
            let built = if s == 1 { n.div_ceil(2) + 1 } else { 2 * n.div_ceil(2) + 1 };
            let ix0 = (px0 * s) as isize - pad[1] as isize;
            let line = Line { len: pixels[0], step: input_step[1], ix0, pairs: built, offsets };
            // The input line (batch × lines + line) each tile row holds: line l in tile row
            // l mod 3 (a window's three lines are consecutive).
            let mut held = [usize::MAX; 3];
            for b in 0..g.output.n {
                for out_line in 0..lines[1] {
                    let top = (out_line * stride[0]) as isize - pad[0] as isize;
                    let mut rows = [ZERO_ROW.as_ptr(); 3];
                    for (ky, row) in rows.iter_mut().enumerate() {
                        let l = (top + ky as isize) as usize;
                        if l >= lines[0] {
                            continue;
                        }
                        let (key, i) = (b * lines[0] + l, (b * lines[0] + l) % 3);
                        if held[i] != key {
                            let start = b * image_in + l * input_step[0] + 4 * quad;
                            // SAFETY: the line's pixels lie in `x` (`sized`), 4 bytes from the
                            // quad's first channel each.
                            unsafe { line.build(&mut tile[i], x.as_ptr().add(start)) };
                            held[i] = key;
                        }
                        *row = tile[i].as_ptr();
                    }
                    let first = b * image_out + out_line * output_step[0] + px0 * output_step[1] + 4 * quad;
                    let out_a = out_at.wrapping_add(first);
                    let out_b = out_a.wrapping_add(output_step[1]);
                    let step = 2 * output_step[1];
                    let mut pass = Pass { rows, out_a, out_b, pairs, min, max, step, clamp, quad: &weights };
                    // SAFETY: every tile row holds `built` column pairs, which the passes' pairs
                    // read (see `CHUNK`); the outputs of the line's `n` pixels lie in `out`, and
                    // the right pixel of a last odd pair goes to `spill`.
                    unsafe {
                        if pairs > 0 {
                            pass.run(s);
                        }
                        if n % 2 == 1 {
                            pass.rows = rows.map(|r| r.wrapping_add(4 * s * pairs));
                            pass.out_a = out_a.wrapping_add(step * pairs);
                            pass.out_b = spill.as_mut_ptr();
                            pass.pairs = 1;
                            pass.run(s);
                        }
                    }
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

/// Where a chunk's tile rows come from: input lines of `len` pixels `step` elements apart, from
/// pixel `ix0` on, `pairs` column pairs; the input offset in both 16-bit lanes.
struct Line {
    len: usize,
    step: usize,
    ix0: isize,
    pairs: usize,
    offsets: u32,
}

impl Line {
    /// Fills `row` from the input line at `x` (its first pixel's quad): 0 outside the line, else
    /// the activations minus the zero point.
    ///
    /// # Safety
    /// Four bytes at `x + ix × step` must be readable for every `ix` in `0..len`.
    unsafe fn build(&self, row: &mut [u32; TILE_WORDS], x: *const i8) {
        let Line { len, step, ix0, pairs, offsets } = *self;
        let pairs = pairs.min(TILE_PAIRS);
        // Column pairs wholly inside the line: `inside`, from the first one at or after pixel 0.
        let first = usize::try_from(-ix0).map_or(0, |before| before.div_ceil(2)).min(pairs);
        let end = usize::try_from(len as isize - ix0).map_or(0, |to| to / 2).clamp(first, pairs);
        let column = |ix: isize| {
            if (ix as usize) < len {
                // SAFETY: ix < len; Cortex-M loads unaligned words.
                let v = unsafe { x.add(ix as usize * step).cast::<u32>().read_unaligned() };
                extend_activations(v, offsets)
            } else {
                (0, 0)
            }
        };
        let (words, _) = row.as_chunks_mut::<4>();
        for k in (0..first).chain(end..pairs) {
            let ix = ix0 + 2 * k as isize;
            let ((e0, o0), (e1, o1)) = (column(ix), column(ix + 1));
            words[k] = [
                (e0 & 0xFFFF) | (e1 << 16),
                (o0 & 0xFFFF) | (o1 << 16),
                (e0 >> 16) | (e1 & 0xFFFF_0000),
                (o0 >> 16) | (o1 & 0xFFFF_0000),
            ];
        }
        if first < end {
            // SAFETY: pixels ix0 + 2 first .. ix0 + 2 end lie in the line, the words of column pairs
            // first..end in `row`; register-only DSP instructions otherwise.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldr r4, [r0]",
                    "ldr r5, [r0, r1]",
                    "add r0, r0, r1, lsl #1",
                    "sxtab16 r8, r12, r4",
                    "sxtab16 r9, r12, r4, ror #8",
                    "sxtab16 r10, r12, r5",
                    "sxtab16 r11, r12, r5, ror #8",
                    "pkhbt r4, r8, r10, lsl #16",
                    "pkhbt r5, r9, r11, lsl #16",
                    "pkhtb r10, r10, r8, asr #16",
                    "pkhtb r11, r11, r9, asr #16",
                    "stm r2!, {{r4, r5, r10, r11}}",
                    "subs r3, #1",
                    "bne 2b",
                    inout("r0") x.offset((ix0 + 2 * first as isize) * step as isize) => _,
                    in("r1") step,
                    inout("r2") words.as_mut_ptr().add(first) => _,
                    inout("r3") end - first => _,
                    in("r12") offsets,
                    out("r4") _,
                    out("r5") _,
                    out("r8") _,
                    out("r9") _,
                    out("r10") _,
                    out("r11") _,
                    options(nostack),
                );
            }
        }
    }
}

/// A quad's doubled biases, paired doubled weights and output factors, in the order the
/// assembly reads them.
#[repr(C)]
struct Quad {
    /// `2 × bias` per channel.
    bias: [i32; 4],
    /// Per window row: `(w0, w1)` of channels 0 and 1, `(w1, w2)` of channels 0 and 1, then the
    /// same of channels 2 and 3 (16-bit lanes, low first).
    weights: [[u32; 8]; 3],
    /// `(m, K, e)` per channel.
    factors: [[i32; 3]; 4],
}

const _: () =
    assert!(core::mem::offset_of!(Quad, weights) == 16 && core::mem::offset_of!(Quad, factors) == 112);

impl Quad {
    /// Quad `quad` of a layer of `c` channels (`factor` of each is `Some`); window rows are the
    /// weights' columns if `transposed`.
    fn new(stage: &Output, zero_point: i32, w: &[i8], c: usize, quad: usize, transposed: bool) -> Self {
        let mut this = Quad { bias: [0; 4], weights: [[0; 8]; 3], factors: [[0; 3]; 4] };
        // Per tap (window row × 3 + column), the quad's doubled weights as 16-bit lanes.
        let taps: [[u32; 4]; 9] = core::array::from_fn(|t| {
            let (ky, kx) = (t / 3, t % 3);
            let at = if transposed { 3 * kx + ky } else { t } * c + 4 * quad;
            let v = w.get(at..at + 4).and_then(|v| <&[i8; 4]>::try_from(v).ok()).copied().unwrap_or_default();
            v.map(|v| (i32::from(v) * 2) as u32 & 0xFFFF)
        });
        for (ky, row) in this.weights.iter_mut().enumerate() {
            let [t0, t1, t2] = [taps[3 * ky], taps[3 * ky + 1], taps[3 * ky + 2]];
            for k in 0..4 {
                let at = 4 * (k / 2) + k % 2;
                row[at] = t0[k] | (t1[k] << 16);
                row[at + 2] = t1[k] | (t2[k] << 16);
            }
        }
        for k in 0..4 {
            // SAFETY: the channel is below c, the layer's channels.
            let (bias, r) = unsafe { (stage.bias(4 * quad + k), stage.factor(4 * quad + k)) };
            this.bias[k] = bias.wrapping_mul(2);
            this.factors[k] = factor(r, zero_point).unwrap_or_default();
        }
        this
    }
}

/// The state of one assembly call: its first ten words are copied to the stack in this order.
#[repr(C)]
struct Pass {
    /// Per window row, the tile row from the pass's first column pair.
    rows: [*const u32; 3],
    /// The first pair's outputs (left and right pixel).
    out_a: *mut i8,
    out_b: *mut i8,
    /// Pairs of pixels (at least 1).
    pairs: usize,
    /// Activation bounds, in every byte.
    min: u32,
    max: u32,
    /// Bytes from a pair's outputs to the next pair's.
    step: usize,
    /// Whether the bounds clamp more than int8 does (0: no).
    clamp: u32,
    quad: *const Quad,
}

/// One window row of both pixels of a pair at horizontal stride 1: tile row at `[sp, $row]`,
/// weights of the row at `[lr, $w]` (see [`Quad`]); accumulators r0–r3 (left pixel) and r4–r7.
#[rustfmt::skip]
macro_rules! row_stride1 {
    ($row:literal, $w0:literal, $w1:literal, $w2:literal, $w3:literal) => {
        concat!(
            "ldr r12, [sp, #", $row, "]\n",
            "ldrd r8, r9, [lr, #", $w0, "]\n",
            "ldrd r10, r11, [r12]\n",
            "smlad r0, r10, r8, r0\n",
            "smlad r1, r11, r9, r1\n",
            "smlatb r4, r10, r8, r4\n",
            "smlatb r5, r11, r9, r5\n",
            "ldrd r8, r9, [lr, #", $w1, "]\n",
            "ldrd r10, r11, [r12, #16]\n",
            "smlabt r0, r10, r8, r0\n",
            "smlabt r1, r11, r9, r1\n",
            "smlad r4, r10, r8, r4\n",
            "smlad r5, r11, r9, r5\n",
            "ldrd r8, r9, [lr, #", $w2, "]\n",
            "ldrd r10, r11, [r12, #8]\n",
            "smlad r2, r10, r8, r2\n",
            "smlad r3, r11, r9, r3\n",
            "smlatb r6, r10, r8, r6\n",
            "smlatb r7, r11, r9, r7\n",
            "ldrd r8, r9, [lr, #", $w3, "]\n",
            "ldrd r10, r11, [r12, #24]\n",
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
            "ldr r12, [sp, #", $row, "]\n",
            "ldrd r8, r9, [lr, #", $w0, "]\n",
            "ldrd r10, r11, [r12]\n",
            "smlad r0, r10, r8, r0\n",
            "smlad r1, r11, r9, r1\n",
            "ldrd r10, r11, [r12, #16]\n",
            "smlad r4, r10, r8, r4\n",
            "smlad r5, r11, r9, r5\n",
            "ldrd r8, r9, [lr, #", $w1, "]\n",
            "smlabt r0, r10, r8, r0\n",
            "smlabt r1, r11, r9, r1\n",
            "ldrd r10, r11, [r12, #32]\n",
            "smlabt r4, r10, r8, r4\n",
            "smlabt r5, r11, r9, r5\n",
            "ldrd r8, r9, [lr, #", $w2, "]\n",
            "ldrd r10, r11, [r12, #8]\n",
            "smlad r2, r10, r8, r2\n",
            "smlad r3, r11, r9, r3\n",
            "ldrd r10, r11, [r12, #24]\n",
            "smlad r6, r10, r8, r6\n",
            "smlad r7, r11, r9, r7\n",
            "ldrd r8, r9, [lr, #", $w3, "]\n",
            "smlabt r2, r10, r8, r2\n",
            "smlabt r3, r11, r9, r3\n",
            "ldrd r10, r11, [r12, #40]\n",
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

/// The assembly of [`Pass::run`] with the window rows `$row` (one of the macros above) and
/// `$advance` bytes from a pair's column pairs to the next pair's.
macro_rules! pass_asm {
    ($pass:expr, $row:ident, $advance:literal) => {
        core::arch::asm!(
            "push {{r6, r7}}",
            "ldr lr, [r0, #40]",
            "ldm r0, {{r1, r2, r3, r4, r5, r6, r7, r8, r9, r10}}",
            "push {{r1, r2, r3, r4, r5, r6, r7, r8, r9, r10}}",
            "2:",
            "ldm lr, {{r0, r1, r2, r3}}",
            "ldm lr, {{r4, r5, r6, r7}}",
            $row!("0", "16", "24", "32", "40"),
            $row!("4", "48", "56", "64", "72"),
            $row!("8", "80", "88", "96", "104"),
            "add r12, lr, #112",
            output2!("r0", "r4"),
            output2!("r1", "r5"),
            output2!("r2", "r6"),
            output2!("r3", "r7"),
            // Both pixels' four bytes, clamped to the activation bounds (unless they are int8's), stored.
            "bfi r0, r1, #8, #8",
            "bfi r0, r2, #16, #8",
            "bfi r0, r3, #24, #8",
            "bfi r4, r5, #8, #8",
            "bfi r4, r6, #16, #8",
            "bfi r4, r7, #24, #8",
            "ldr r8, [sp, #36]",
            "cmp r8, #0",
            "beq 3f",
            "ldrd r8, r9, [sp, #24]",
            "ssub8 r10, r0, r8",
            "sel r0, r0, r8",
            "ssub8 r10, r9, r0",
            "sel r0, r0, r9",
            "ssub8 r10, r4, r8",
            "sel r4, r4, r8",
            "ssub8 r10, r9, r4",
            "sel r4, r4, r9",
            "3:",
            "ldrd r8, r9, [sp, #12]",
            "str r0, [r8]",
            "str r4, [r9]",
            "ldr r10, [sp, #32]",
            "add r8, r10",
            "add r9, r10",
            "strd r8, r9, [sp, #12]",
            // The next pair: its column pairs, then the count.
            "ldm sp, {{r8, r9, r10}}",
            concat!("add r8, #", $advance),
            concat!("add r9, #", $advance),
            concat!("add r10, #", $advance),
            "stm sp, {{r8, r9, r10}}",
            "ldr r8, [sp, #20]",
            "subs r8, #1",
            "str r8, [sp, #20]",
            "bne 2b",
            "add sp, #40",
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
    /// Both pixels of every pair: the window rows' products, the output stage, the stores.
    ///
    /// # Safety
    /// `pairs ≥ 1`; every row must hold the column pairs the pairs read (`2 + pairs − 1`
    /// from the first at stride 1, `3 + 2 (pairs − 1)` at stride 2, `stride` the horizontal
    /// stride), `quad` a [`Quad`], and four bytes at `out_a` and `out_b`, then at every `step`
    /// bytes further for each pair, must be writable.
    unsafe fn run(&mut self, stride: usize) {
        let pass = core::ptr::from_mut(self);
        // SAFETY: the loads and stores stay inside what the caller guarantees (LDRD reads
        // word-aligned `u32` arrays); the state is copied to the stack and dropped from it at
        // the end; r6 and r7 (which Rust does not hand out as operands) are saved and restored.
        unsafe {
            if stride == 1 {
                pass_asm!(pass, row_stride1, "16");
            } else {
                pass_asm!(pass, row_stride2, "32");
            }
        }
    }
}
