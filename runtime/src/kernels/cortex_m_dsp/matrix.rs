//! Convolutions and fully connected layers as matrix products over 16-bit activation columns.
//!
//! A column is one output pixel's window (`KH × KW × Cin` activations in the filters' order),
//! offset by the input zero point and sign-extended to 16-bit lanes once, then multiplied with
//! every filter. Two columns are built at a time, interleaved per four elements, so the inner
//! loop loads both columns' next four elements with one `LDM`, then each of two filters' next
//! four weights with one `LDR`, and accumulates 2 channels × 2 columns with eight `SMLAD`s:
//! 16 multiply-accumulates in 15 instructions. A single-row fully connected layer has one
//! column and takes four filters per pass instead.

use super::output::Output;
use super::{extend_activations, lanes, padded_word, smlad_word, word};
use crate::kernels::conv2d::{self, for_each_window, Window};
use crate::kernels::{fully_connected, ConvGeometry, FcGeometry, Int8Params, Nhwc};

/// Most elements per column (`KH × KW × Cin`, or a fully connected layer's depth) the matrix
/// path handles (its columns live on the stack: 4 bytes per element); deeper layers take the
/// reference kernels.
const MAX_DEPTH: usize = 640;

/// Two columns of offset activations in 16-bit lanes, interleaved per group of four elements
/// `k..k + 4`: words `k..k + 4` hold column A's (k, k + 2) and (k + 1, k + 3), then column B's.
struct Columns {
    words: [u32; MAX_DEPTH],
}

impl Columns {
    /// Writes `src` as elements `start..` of column `slot` (0 or 1); `start` is a multiple of 4
    /// and a last partial group is padded with `fill`, the input zero point (0 once offset).
    #[inline(always)]
    fn extend(&mut self, slot: usize, start: usize, src: &[i8], offsets: u32, fill: i8) {
        let Some(dst) = self.words.get_mut(start + 2 * slot..) else { return };
        let (fours, tail) = src.as_chunks::<4>();
        let mut groups = dst.chunks_mut(4);
        // `fours` first: `zip` stops on it without taking the tail's group.
        for (s, d) in fours.iter().zip(groups.by_ref()) {
            if let [e, o, ..] = d {
                (*e, *o) = extend_activations(word(s), offsets);
            }
        }
        if let (Some([e, o, ..]), false) = (groups.next(), tail.is_empty()) {
            (*e, *o) = extend_activations(padded_word(tail, fill), offsets);
        }
    }

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
        let d = &self.words[4 * g..][..4];
        [d[0], d[1], d[2], d[3]]
    }
}

/// [`conv2d::conv2d_i8`] as a matrix product: output pixels in pairs, each pair's windows
/// built as two [`Columns`] (channels in fours are extended straight from the input's runs;
/// other channel counts are first gathered into a row of bytes, padding filled with the input
/// zero point), then two output channels per pass over them. A last odd pixel or channel is
/// computed twice and stored once. Columns deeper than [`MAX_DEPTH`] take the reference kernel.
pub fn conv2d_i8(g: &ConvGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let (cin, cout) = (g.input.c, g.output.c);
    let cells = g.kernel[0] * g.kernel[1];
    let depth = cells * cin;
    let stage = Output::new(q, bias, depth, cout);
    let Some(stage) = stage.filter(|_| depth > 0 && depth <= MAX_DEPTH && cout > 0) else {
        return conv2d::conv2d_i8(g, q, x, w, bias, out);
    };
    let offsets = lanes(q.input_zero_point.wrapping_neg());
    // In range: the loader checks zero points are int8.
    let zero_point = q.input_zero_point as i8;
    let groups = depth.div_ceil(4);
    let mut columns = Columns { words: [0; MAX_DEPTH] };
    let mut gathered = [0i8; MAX_DEPTH];
    let mut fill = |columns: &mut Columns, slot: usize, window: Window| {
        if cin % 4 == 0 {
            if window.len() < cells {
                columns.clear(slot, groups);
            }
            for (tap, px, count) in window.runs() {
                columns.extend(slot, tap * cin, &x[px * cin..][..count * cin], offsets, zero_point);
            }
        } else {
            let row = &mut gathered[..depth];
            // Only windows that overhang the input have padding cells to fill.
            if window.len() < cells {
                row.fill(zero_point);
            }
            window.for_each_cell(|tap, px| row[tap * cin..][..cin].copy_from_slice(&x[px * cin..][..cin]));
            columns.extend(slot, 0, row, offsets, zero_point);
        }
    };
    let filters = Filters { w, depth, count: cout };
    let mut pending = None;
    for_each_window(g, |window, pixel| match pending.take() {
        None => {
            fill(&mut columns, 0, window);
            pending = Some(pixel);
        }
        Some(first) => {
            fill(&mut columns, 1, window);
            multiply(&columns, &filters, &stage, &mut out[first * cout..(pixel + 1) * cout]);
        }
    });
    if let Some(last) = pending {
        columns.duplicate(groups);
        multiply(&columns, &filters, &stage, &mut out[last * cout..][..cout]);
    }
}

/// The layer's filters: `count` rows of `depth` int8 weights.
struct Filters<'a> {
    w: &'a [i8],
    depth: usize,
    count: usize,
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
fn multiply(columns: &Columns, filters: &Filters, stage: &Output, out: &mut [i8]) {
    let (depth, count) = (filters.depth, filters.count);
    let full = depth / 4;
    let Some(w) = filters.w.get(..count * depth) else { return };
    let (first, second) = out.split_at_mut(count.min(out.len()));
    let mut second = second.get_mut(..count);
    for c0 in (0..count).step_by(2) {
        // A last odd channel is computed twice.
        let c1 = (c0 + 1).min(count - 1);
        let (f0, f1) = (&w[c0 * depth..][..depth], &w[c1 * depth..][..depth]);
        // SAFETY: c0 ≤ c1 < count, the layer's channels.
        let (b0, b1, r0, r1) =
            unsafe { (stage.bias(c0), stage.bias(c1), stage.factor(c0), stage.factor(c1)) };
        let mut acc = [b0, b1, b0, b1];
        if full > 0 {
            // SAFETY: both filters hold `depth ≥ 4 × full` bytes and `columns` holds
            // `MAX_DEPTH ≥ depth` groups of 4 words, as `tile` reads.
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
            "2:",
            "ldm r4!, {{r8, r9, r10, r11}}",
            "ldr r6, [r5], #4",
            "sxtb16 r7, r6",
            "sxtb16 r6, r6, ror #8",
            "smlad r0, r8, r7, r0",
            "smlad r0, r9, r6, r0",
            "smlad r2, r10, r7, r2",
            "smlad r2, r11, r6, r2",
            "ldr r6, [r12], #4",
            "sxtb16 r7, r6",
            "sxtb16 r6, r6, ror #8",
            "smlad r1, r8, r7, r1",
            "smlad r1, r9, r6, r1",
            "smlad r3, r10, r7, r3",
            "smlad r3, r11, r6, r3",
            "cmp r4, lr",
            "bne 2b",
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
/// convolution over that many pixels. Rows deeper than [`MAX_DEPTH`] take the reference kernel.
pub fn fully_connected_i8(g: &FcGeometry, q: &Int8Params, x: &[i8], w: &[i8], bias: &[i32], out: &mut [i8]) {
    let (depth, units) = (g.depth, g.units);
    let stage = Output::new(q, bias, depth, units);
    let Some(stage) = stage.filter(|_| depth > 0 && depth <= MAX_DEPTH && units > 0) else {
        return fully_connected::fully_connected_i8(g, q, x, w, bias, out);
    };
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
        return conv2d_i8(&geometry, q, x, w, bias, out);
    }
    let mut columns = Columns { words: [0; MAX_DEPTH] };
    // In range: the loader checks zero points are int8.
    columns.extend(0, 0, &x[..depth], lanes(q.input_zero_point.wrapping_neg()), q.input_zero_point as i8);
    let filters = Filters { w, depth, count: units };
    let full = depth / 4;
    for (b, o) in out[..units].chunks_mut(4).enumerate() {
        // Units past the last repeat it; their results are not stored.
        let u = [0, 1, 2, 3].map(|k| (4 * b + k).min(units - 1));
        let f = u.map(|u| filters.row(u));
        if f.iter().any(|f| f.len() < depth) {
            return;
        }
        // SAFETY: every u < units, the layer's channels.
        let (mut acc, r) = unsafe { (u.map(|u| stage.bias(u)), u.map(|u| stage.factor(u))) };
        if full > 0 {
            // SAFETY: the four filters hold `depth ≥ 4 × full` bytes and `columns` holds
            // `MAX_DEPTH ≥ depth` groups of 4 words, as `column_tile` reads.
            acc = unsafe { column_tile(acc, columns.words.as_ptr(), f.map(<[i8]>::as_ptr), full) };
        }
        if full * 4 < depth {
            let [e, o, ..] = columns.group(full);
            for (a, f) in acc.iter_mut().zip(f) {
                *a = smlad_word(*a, e, o, padded_word(&f[full * 4..], 0));
            }
        }
        for (k, o) in o.iter_mut().enumerate() {
            *o = stage.apply(r[k], acc[k]);
        }
    }
}

/// `acc + [A·f0, A·f1, A·f2, A·f3]` over the first `groups` groups of column A at `columns`.
///
/// # Safety
/// As [`tile`], for four filters.
#[inline(always)]
unsafe fn column_tile(acc: [i32; 4], columns: *const u32, f: [*const i8; 4], groups: usize) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    let end = columns.wrapping_add(4 * groups);
    // SAFETY: as in `tile`.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "2:",
            "ldrd r12, lr, [r4], #16",
            "ldr r6, [r5], #4",
            "sxtb16 r7, r6",
            "sxtb16 r6, r6, ror #8",
            "smlad r0, r12, r7, r0",
            "smlad r0, lr, r6, r0",
            "ldr r6, [r8], #4",
            "sxtb16 r7, r6",
            "sxtb16 r6, r6, ror #8",
            "smlad r1, r12, r7, r1",
            "smlad r1, lr, r6, r1",
            "ldr r6, [r9], #4",
            "sxtb16 r7, r6",
            "sxtb16 r6, r6, ror #8",
            "smlad r2, r12, r7, r2",
            "smlad r2, lr, r6, r2",
            "ldr r6, [r10], #4",
            "sxtb16 r7, r6",
            "sxtb16 r6, r6, ror #8",
            "smlad r3, r12, r7, r3",
            "smlad r3, lr, r6, r3",
            "cmp r4, r11",
            "bne 2b",
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
