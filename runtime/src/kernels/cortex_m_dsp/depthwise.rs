//! Depthwise convolution four channels per pass: 3×3 windows on lines of pixels from tiles of
//! sign-extended activations ([`three_by_three`]), other windows per output pixel.

mod three_by_three;

use super::lanes;
use super::output::{Output, Short};
use crate::format::layout::WeightLayout;
use crate::kernels::conv2d::for_each_window;
use crate::kernels::scratch::{self, Scratch};
use crate::kernels::{depthwise_conv2d, weight_layout, ConvGeometry, Int8Params, LaidOut};
use crate::quant::Requant;
use three_by_three::Weights;

/// [`depthwise_conv2d_i8`] for weights `w` in the layout `L` names (`WeightLayout as u8`): the
/// depthwise layouts take [`three_by_three`], reading them in place, when it takes the layer,
/// sweeps the way they are laid out and they are 4-aligned and long enough; the reference kernel
/// otherwise.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_i8_laid_out<const L: u8>(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    mut scratch: Scratch,
) {
    let layout = const { weight_layout(L) };
    if layout == WeightLayout::Standard {
        return depthwise_conv2d_i8(g, q, x, w, bias, out, scratch);
    }
    let (c, tile) = (g.output.c, tile(g, &mut scratch));
    let transposed = layout == WeightLayout::DspDepthwiseColumns;
    let stage = Output::new(q, bias, g.kernel[0] * g.kernel[1], c);
    if let (Some(stage), Ok(words)) = (stage, bytemuck::try_cast_slice(w)) {
        let w = Weights::LaidOut { words, transposed };
        if three_by_three::depthwise_conv2d_i8(g, q, &stage, x, w, out, tile) {
            return stage.fix_constants(out, c);
        }
    }
    let depth = g.kernel[0] * g.kernel[1] * c;
    depthwise_conv2d::depthwise_conv2d_i8_laid_out(g, q, x, LaidOut { bytes: w, layout, depth }, bias, out)
}

/// The tile of [`three_by_three`] in `scratch`, for the layers that may take it (as the plan
/// sized it); empty for the others, or if the scratch is too short.
fn tile<'a>(g: &ConvGeometry, scratch: &mut Scratch<'a>) -> &'a mut [u32] {
    match scratch::dsp::depthwise_i8(g) {
        0 => &mut [],
        _ => scratch.take::<u32>(three_by_three::TILE_WORDS).unwrap_or_default(),
    }
}

/// Most window cells (`KH × KW`) [`depthwise_conv2d_i8`] handles; larger windows take the
/// reference path. 25 covers 5×5 (the table lives on the stack: 8 bytes per cell).
const DEPTHWISE_CELLS: usize = 25;

/// [`depthwise_conv2d::depthwise_conv2d_i8`] four channels at a time for a channel
/// multiplier of 1. 3×3 windows of stride 1 or 2 over channels in fours take [`three_by_three`]
/// where it applies (two pixels per pass, see there). Otherwise, per output pixel, the window's
/// cells inside the input become a table of (activation, weight) offsets, checked against the
/// buffers once; then for every four channels one pass over the table does, per cell, one word
/// load each of activations and weights, sign-extends them to 16-bit lanes and accumulates four
/// channels with `SMLABB`/`SMLATT`; on the short output stage the quads and their
/// requantization run in one assembly loop. Other multipliers and windows of more than
/// [`DEPTHWISE_CELLS`] cells take the reference kernel; the last `C mod 4` channels are summed
/// one at a time. The 3×3 path's tile is in `scratch` (`scratch::dsp::depthwise_i8` bytes).
pub fn depthwise_conv2d_i8(
    g: &ConvGeometry,
    q: &Int8Params,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    out: &mut [i8],
    mut scratch: Scratch,
) {
    let c = g.input.c;
    let [kh, kw] = g.kernel;
    let tile = tile(g, &mut scratch);
    let stage = Output::new(q, bias, kh * kw, c);
    let Some(stage) = stage.filter(|_| g.output.c == c && kh * kw <= DEPTHWISE_CELLS) else {
        return depthwise_conv2d::depthwise_conv2d_i8(g, q, x, w, bias, out);
    };
    if three_by_three::depthwise_conv2d_i8(g, q, &stage, x, Weights::Standard(w), out, tile) {
        return stage.fix_constants(out, c);
    }
    let offset = q.input_zero_point.wrapping_neg();
    let offsets = lanes(offset);
    let quads = c / 4 * 4;
    // Windows that lie wholly inside the input share one table of offsets from their top-left
    // pixel; the others (at the borders) get their own.
    let mut full = [(0usize, 0usize); DEPTHWISE_CELLS];
    for (tap, cell) in full.iter_mut().enumerate().take(kh * kw) {
        let (ky, kx) = (tap / kw, tap % kw);
        *cell = ((ky * g.dilation[0] * g.input.w + kx * g.dilation[1]) * c, tap * c);
    }
    let full = &full[..kh * kw];
    let mut border = [(0usize, 0usize); DEPTHWISE_CELLS];
    // The assembly's per-layer state: the short output stage and the first quad's factors.
    let short = stage.short().filter(|_| quads >= 4);
    let mut one_factor = [Requant::default(); 4];
    let factor_step = if stage.per_channel() {
        4 * size_of::<Requant>()
    } else {
        if c > 0 {
            // SAFETY: channel 0 exists.
            one_factor = [unsafe { stage.factor(0) }; 4];
        }
        0
    };
    let factors = if factor_step == 0 { one_factor.as_ptr() } else { stage.factors() };
    let layer =
        Layer { x, w, bias: stage.biases(), factors, factor_step, offsets, quads, c, step: g.stride[1] * c };
    let step = layer.step;
    let whole_quads = quads == c;
    // A run of full windows not yet computed: (first pixel, its base, pixels).
    let mut run: Option<(usize, usize, usize)> = None;
    for_each_window(g, |window, pixel| {
        if let (Some(short), true, true) = (short, whole_quads, window.len() == full.len()) {
            let base = window.first_pixel() * c;
            match &mut run {
                Some((first, first_base, n)) if pixel == *first + *n && base == *first_base + *n * step => {
                    *n += 1
                }
                _ => {
                    if let Some((first, first_base, n)) = run.replace((pixel, base, 1)) {
                        layer.launch(out, short, first, first_base, full, n);
                    }
                }
            }
            return;
        }
        if let (Some((first, first_base, n)), Some(short)) = (run.take(), short) {
            layer.launch(out, short, first, first_base, full, n);
        }
        let (base, cells) = if window.len() == full.len() {
            (window.first_pixel() * c, full)
        } else {
            let mut n = 0;
            window.for_each_cell(|tap, px| {
                if let Some(cell) = border.get_mut(n) {
                    *cell = (px * c, tap * c);
                    n += 1;
                }
            });
            (0, &border[..n])
        };
        let fits = cells.last().is_none_or(|&(xo, wo)| base + xo + c <= x.len() && wo + c <= w.len());
        if !fits {
            return;
        }
        if let (Some(short), true) = (short, quads > 0) {
            layer.launch(out, short, pixel, base, cells, 1);
        } else {
            let (out_quads, _) = out[pixel * c..][..c].as_chunks_mut::<4>();
            quads_with(&stage, &x[base..], w, cells, offsets, out_quads);
        }
        let (x, out) = (&x[base..], &mut out[pixel * c..][..c]);
        for ch in quads..c {
            // SAFETY: ch < c, the layer's channels.
            let (mut acc, r) = unsafe { (stage.bias(ch), stage.factor(ch)) };
            for &(xo, wo) in cells {
                let xv = i32::from(x[xo + ch]).wrapping_add(offset);
                acc = acc.wrapping_add(xv.wrapping_mul(i32::from(w[wo + ch])));
            }
            out[ch] = stage.apply(r, acc);
        }
    });
    if let (Some((first, first_base, n)), Some(short)) = (run, short) {
        layer.launch(out, short, first, first_base, full, n);
    }
    stage.fix_constants(out, c);
}

/// What [`Layer::launch`] needs of a depthwise layer.
struct Layer<'a> {
    x: &'a [i8],
    w: &'a [i8],
    bias: *const i32,
    factors: *const Requant,
    factor_step: usize,
    offsets: u32,
    /// Channels in whole quads, and all channels.
    quads: usize,
    c: usize,
    /// Bytes from a window to the next one in the row.
    step: usize,
}

impl Layer<'_> {
    /// One assembly call over the quads of `pixels` consecutive output pixels from `pixel`
    /// whose windows read `cells` from `base`, `base + step`, ... (one pixel unless the channels
    /// come in whole quads, so that their outputs follow each other).
    #[inline(never)]
    fn launch(
        &self,
        out: &mut [i8],
        short: Short,
        pixel: usize,
        base: usize,
        cells: &[(usize, usize)],
        pixels: usize,
    ) {
        let (x, w, quads, c, step) = (self.x, self.w, self.quads, self.c, self.step);
        // Every load reads 4 bytes at a pixel's base + a cell's offset + c0 with c0 ≤ quads − 4:
        // in bounds when the last pixel's largest offsets plus `quads` are (the loader's geometry
        // checks make them so; cells are in increasing order of both offsets).
        let last = base + (pixels - 1) * step;
        let fits = cells.last().is_none_or(|&(xo, wo)| last + xo + quads <= x.len() && wo + quads <= w.len());
        let Some(out) = out.get_mut(pixel * c..).and_then(|o| o.get_mut(..(pixels - 1) * c + quads)) else {
            return;
        };
        if !fits || x.len() < base || pixels == 0 {
            return;
        }
        let mut args = Quads {
            bias: self.bias,
            cells: cells.as_ptr(),
            cells_end: cells.as_ptr_range().end,
            x: x.as_ptr().wrapping_add(base),
            w: w.as_ptr(),
            factors: self.factors,
            factor_step: self.factor_step,
            out: out.as_mut_ptr(),
            quads: quads / 4,
            offsets: self.offsets,
            short,
            pixels,
            x_skip: step - quads,
            quads_per_pixel: quads / 4,
            bias0: self.bias,
            factors0: self.factors,
            w0: w.as_ptr(),
        };
        // SAFETY: `fits` bounds every load; the bias and factors hold `c` entries (or one factor,
        // repeated with step 0); `out` holds the pixels' outputs (with several pixels, c = quads).
        unsafe { quads_asm(&mut args) };
    }
}

/// One pixel's quads of channels with [`quad_taps`] and [`Output::apply`] (layers off the
/// short output stage); `x`, `w` and `cells` as [`Quads`] describes them, checked the same way.
fn quads_with(
    stage: &Output,
    x: &[i8],
    w: &[i8],
    cells: &[(usize, usize)],
    offsets: u32,
    out: &mut [[i8; 4]],
) {
    for (b, o) in out.iter_mut().enumerate() {
        let c0 = 4 * b;
        // SAFETY: c0 + 3 < 4 × out.len() ≤ the layer's channels; the caller's bounds check makes
        // every offset + c0 + 4 fit the buffers.
        unsafe {
            let acc = [0, 1, 2, 3].map(|k| stage.bias(c0 + k));
            let acc = quad_taps(acc, x.as_ptr().add(c0), w.as_ptr().add(c0), cells, offsets);
            for (k, o) in o.iter_mut().enumerate() {
                *o = stage.apply(stage.factor(c0 + k), acc[k]);
            }
        }
    }
}

/// The state of [`quads_asm`] for a run of pixels, which it advances quad by quad; the first five
/// words are loaded with one `LDM` in this order, the others at the offsets the assembly names.
#[repr(C)]
struct Quads {
    /// Bias of the quad's first channel.
    bias: *const i32,
    /// The window's (activation, weight) offsets.
    cells: *const (usize, usize),
    cells_end: *const (usize, usize),
    /// Activations and weights at the quad's first channel.
    x: *const i8,
    w: *const i8,
    /// The quad's four factors, and the bytes to the next quad's (0 for one factor).
    factors: *const Requant,
    factor_step: usize,
    /// The quad's first output.
    out: *mut i8,
    /// Quads left.
    quads: usize,
    /// The input offset in both 16-bit lanes.
    offsets: u32,
    /// The short output stage's constants.
    short: Short,
    /// Pixels left, including the current one.
    pixels: usize,
    /// Bytes from the end of a pixel's activations to the next pixel's.
    x_skip: usize,
    /// Each pixel's quads, biases, factors and weights, to start the next pixel from.
    quads_per_pixel: usize,
    bias0: *const i32,
    factors0: *const Requant,
    w0: *const i8,
}

const _: () = assert!(
    core::mem::offset_of!(Quads, factors) == 20
        && core::mem::offset_of!(Quads, short) == 40
        && core::mem::offset_of!(Quads, w0) == 72
);

/// For every quad of channels of every pixel of `args`: [`quad_taps`] over the cells, then the
/// short output stage of its four accumulators, stored.
///
/// # Safety
/// `args` must describe `quads ≥ 1` quads whose biases, factors, loads (4 bytes at every
/// cell's offsets from `x` and `w`, each quad 4 bytes further) and outputs are inside their
/// buffers.
unsafe fn quads_asm(args: &mut Quads) {
    // SAFETY: the loads and stores stay inside the buffers the caller guarantees; `args` is
    // read and advanced through its pointer, kept at [sp]. r6 and r7 (which Rust does not hand
    // out as operands) are saved on the stack and restored.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "push {{r0}}",
            "3:",
            "ldr r7, [sp]",
            "ldm r7, {{r0, r4, r5, r8, r9}}",
            "ldr r10, [r7, #36]",
            "ldm r0, {{r0, r1, r2, r3}}",
            "subs r6, r5, r4",
            "beq 4f",
            // Two cells per iteration; an odd count enters at the second. Per cell: r11, r12 =
            // the offsets, then the activation and weight words.
            "tst r6, #8",
            "bne 5f",
            "2:",
            "ldrd r11, r12, [r4], #8",
            "ldr r11, [r8, r11]",
            "ldr r12, [r9, r12]",
            "sxtb16 r6, r12",
            "sxtab16 r7, r10, r11",
            "smlabb r0, r7, r6, r0",
            "smlatt r2, r7, r6, r2",
            "sxtb16 r6, r12, ror #8",
            "sxtab16 r7, r10, r11, ror #8",
            "smlabb r1, r7, r6, r1",
            "smlatt r3, r7, r6, r3",
            "5:",
            "ldrd r11, r12, [r4], #8",
            "ldr r11, [r8, r11]",
            "ldr r12, [r9, r12]",
            "sxtb16 r6, r12",
            "sxtab16 r7, r10, r11",
            "smlabb r0, r7, r6, r0",
            "smlatt r2, r7, r6, r2",
            "sxtb16 r6, r12, ror #8",
            "sxtab16 r7, r10, r11, ror #8",
            "smlabb r1, r7, r6, r1",
            "smlatt r3, r7, r6, r3",
            "cmp r4, r5",
            "bne 2b",
            "4:",
            "ldr r7, [sp]",
            "ldr r4, [r7, #20]",
            "ldm r4, {{r8, r9, r10, r11}}",
            "mvn r9, r9",
            "mvn r11, r11",
            "ldr r12, [r7, #40]",
            "ldrd r5, r6, [r7, #44]",
            rescale!("r0", "r8", "r9"),
            rescale!("r1", "r10", "r11"),
            "ldrd r8, r9, [r4, #16]",
            "ldrd r10, r11, [r4, #24]",
            "mvn r9, r9",
            "mvn r11, r11",
            rescale!("r2", "r8", "r9"),
            rescale!("r3", "r10", "r11"),
            clamp4!(),
            "ldr lr, [r7, #28]",
            "str r0, [lr], #4",
            "str lr, [r7, #28]",
            "ldr r0, [r7]",
            "add r0, #16",
            "str r0, [r7]",
            "ldrd r8, r9, [r7, #12]",
            "add r8, #4",
            "add r9, #4",
            "strd r8, r9, [r7, #12]",
            "ldrd r4, r5, [r7, #20]",
            "add r4, r5",
            "str r4, [r7, #20]",
            "ldr r4, [r7, #32]",
            "subs r4, #1",
            "str r4, [r7, #32]",
            "bne 3b",
            // The next pixel: its quads, biases, factors and weights from the start again.
            "ldr r4, [r7, #52]",
            "subs r4, #1",
            "beq 6f",
            "str r4, [r7, #52]",
            "ldr r4, [r7, #60]",
            "str r4, [r7, #32]",
            "ldr r4, [r7, #64]",
            "str r4, [r7]",
            "ldr r4, [r7, #68]",
            "str r4, [r7, #20]",
            "ldrd r8, r9, [r7, #12]",
            "ldr r4, [r7, #56]",
            "add r8, r4",
            "ldr r9, [r7, #72]",
            "strd r8, r9, [r7, #12]",
            "b 3b",
            "6:",
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

/// Four channels' sums `acc[k] + Σ (x[xo + k] + offset) × w[wo + k]` (k = 0..4) over the `cells`
/// (`offsets` holds the input offset in both 16-bit lanes).
///
/// # Safety
/// For every cell, `x + xo .. x + xo + 4` and `w + wo .. w + wo + 4` must be readable.
#[inline(always)]
unsafe fn quad_taps(
    acc: [i32; 4],
    x: *const i8,
    w: *const i8,
    cells: &[(usize, usize)],
    offsets: u32,
) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    for &(xo, wo) in cells {
        // SAFETY: the caller guarantees both words are readable; Cortex-M loads unaligned words.
        let (xv, wv) =
            unsafe { (x.add(xo).cast::<u32>().read_unaligned(), w.add(wo).cast::<u32>().read_unaligned()) };
        // SAFETY: register-only DSP instructions, as in `super::extend_activations`.
        unsafe {
            core::arch::asm!(
                "sxtb16 {we}, {wv}",
                "sxtab16 {xe}, {off}, {xv}",
                "smlabb {a0}, {xe}, {we}, {a0}",
                "smlatt {a2}, {xe}, {we}, {a2}",
                "sxtb16 {we}, {wv}, ror #8",
                "sxtab16 {xe}, {off}, {xv}, ror #8",
                "smlabb {a1}, {xe}, {we}, {a1}",
                "smlatt {a3}, {xe}, {we}, {a3}",
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                xv = in(reg) xv,
                wv = in(reg) wv,
                off = in(reg) offsets,
                xe = out(reg) _,
                we = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
    }
    [a0, a1, a2, a3]
}
