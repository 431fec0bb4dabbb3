//! Depthwise cases drawn for the DSP kernel's 3×3 path (`cortex_m_dsp/depthwise/three_by_three.rs`):
//! mostly 3×3 windows of dilation 1 and strides 1 or 2 over channels in fours, on lines long
//! enough to span several chunks (either side the longer, so both sweeps run), more lines than
//! the tile holds, batches of two, odd line lengths, every padding, zero points at the extremes,
//! right shifts on both sides of the path's limit, now and then what the path leaves to the
//! general kernel. The 3×3 weights over channels in fours are also laid out in both depthwise
//! layouts (`dsp-depthwise-rows`, `-columns`): `cortex_m_dsp::depthwise_conv2d_i8_laid_out`
//! must give the standard reference's output, take the 3×3 path (reading the weights in place)
//! wherever `ember-quantize` would lay the layer out so, and never with the layout's
//! orientation other than the sweep's or unaligned weights.

use super::laid_out::pack;
use super::{PlannedScratch, Rng};
use ember::format::layout::WeightLayout;
use ember::kernels::scratch::{Scratch, ScratchOp, Target};
use ember::kernels::{cortex_m_dsp, depthwise_conv2d, dsp_depthwise};
use ember::kernels::{ClampI8, ConvGeometry, Int8Params, LaidOut, Nhwc};
use ember::quant::{Requant, Rounding};
use ember_bench::firmware::exit;

/// Random cases drawn (those that do not fit the buffers are skipped and not counted).
const CASES: u32 = 1500;
/// Largest channel count, input and output bytes.
const MAX_C: usize = 16;
const MAX_X: usize = 2400;
const MAX_OUT: usize = 2400;

/// The depthwise layouts and the kernels' const parameters for them.
const LAYOUTS: [WeightLayout; 2] = [WeightLayout::DspDepthwiseRows, WeightLayout::DspDepthwiseColumns];
const ROWS: u8 = WeightLayout::DspDepthwiseRows as u8;
const COLUMNS: u8 = WeightLayout::DspDepthwiseColumns as u8;

/// Laid-out weights: 16-aligned as the format's constants are, 3 bytes more for unaligned ones.
#[repr(C, align(16))]
struct Aligned([i8; 24 * MAX_C + 3]);

/// Buffers for the largest case.
struct Buffers {
    scratch: PlannedScratch,
    x: [i8; MAX_X],
    w: [i8; 4 * 4 * MAX_C],
    laid: Aligned,
    bias: [i32; MAX_C],
    requant: [Requant; MAX_C],
    reference: [i8; MAX_OUT],
    laid_reference: [i8; MAX_OUT],
    optimized: [i8; MAX_OUT],
}

/// Laid-out cases per layout: checked, on the 3×3 path, with the other orientation than the
/// sweep's (which the reference kernel runs), with unaligned weights (likewise).
#[derive(Default)]
struct LaidOutCounts {
    checked: [u32; 2],
    fast: [u32; 2],
    crossed: [u32; 2],
    unaligned: [u32; 2],
}

/// A zero point: one of the int8 extremes in one case of four.
fn zero_point(rng: &mut Rng) -> i32 {
    match rng.next() % 8 {
        0 => -128,
        1 => 127,
        _ => rng.range(-128, 127),
    }
}

/// One axis: (input, kernel, stride, dilation, pad before, output) with the input up to `max`,
/// or `None` if the window does not fit the padded input.
fn axis(rng: &mut Rng, max: usize, kernel: usize, dilation: usize) -> Option<[usize; 6]> {
    let (input, stride) = (rng.size(1, max), rng.size(1, 2));
    let span = dilation * (kernel - 1) + 1;
    let (before, after) = (rng.size(0, span - 1), rng.size(0, span - 1));
    let padded = input + before + after;
    (padded >= span).then(|| [input, kernel, stride, dilation, before, (padded - span) / stride + 1])
}

/// Checks one random case: `Some(equal)` (and nothing written past the output; in both
/// depthwise layouts too, counted in `counts`, for 3×3 weights over channels in fours), or
/// `None` when it does not fit the buffers.
fn check_case(rng: &mut Rng, b: &mut Buffers, counts: &mut LaidOutCounts) -> Option<bool> {
    let (kernel, dilation) = match rng.next() % 16 {
        0 => (rng.size(1, 4), 1),
        1 => (3, 2),
        _ => (3, 1),
    };
    // One side long (up to 40 pixels: two chunks at stride 1, three at stride 2), the other
    // short, or up to 20 (more lines than the tile holds at once).
    let long_rows = rng.next().is_multiple_of(2);
    let short = if rng.next().is_multiple_of(4) { 20 } else { 6 };
    let (h, w) = if long_rows {
        (axis(rng, 40, kernel, dilation)?, axis(rng, short, kernel, dilation)?)
    } else {
        (axis(rng, short, kernel, dilation)?, axis(rng, 40, kernel, dilation)?)
    };
    let c = if rng.next().is_multiple_of(4) { rng.size(1, MAX_C) } else { 4 * rng.size(1, MAX_C / 4) };
    let n = if rng.next().is_multiple_of(4) { 2 } else { 1 };
    let g = ConvGeometry {
        input: Nhwc { n, h: h[0], w: w[0], c },
        output: Nhwc { n, h: h[5], w: w[5], c },
        kernel: [h[1], w[1]],
        stride: [h[2], w[2]],
        dilation: [h[3], w[3]],
        pad: [h[4], w[4]],
    };
    let (x_len, w_len, out_len) = (g.input.len(), h[1] * w[1] * c, g.output.len());
    if x_len > MAX_X || out_len > MAX_OUT {
        return None;
    }
    rng.fill(&mut b.x[..x_len], -128, 127);
    rng.fill(&mut b.w[..w_len], -127, 127);
    let used = if rng.next().is_multiple_of(2) { 1 } else { c };
    for r in &mut b.requant[..used] {
        let multiplier = if rng.next().is_multiple_of(16) { 0 } else { rng.range(1 << 30, i32::MAX) };
        let shift = match rng.next() % 16 {
            0 => rng.range(0, 2),
            1..=3 => rng.range(-31, -13),
            _ => rng.range(-12, -1),
        };
        *r = Requant { multiplier, shift };
    }
    // Moderate biases, now and then anywhere, or one of 2^30 (a channel the short output stage
    // leaves out when its output is constant).
    match rng.next() % 16 {
        0 => b.bias[..c].iter_mut().for_each(|v| *v = rng.next() as i32),
        1 => {
            b.bias[..c].iter_mut().for_each(|v| *v = rng.range(-50_000, 50_000));
            b.bias[rng.size(0, c - 1)] = if rng.next().is_multiple_of(2) { 1 << 30 } else { -(1 << 30) };
        }
        _ => b.bias[..c].iter_mut().for_each(|v| *v = rng.range(-50_000, 50_000)),
    }
    // int8's bounds, a ReLU's (only the upper one clamps), or any.
    let act = match rng.next() % 3 {
        0 => ClampI8::FULL,
        1 => ClampI8 { min: -128, max: rng.range(-128, 127) },
        _ => {
            let min = rng.range(-128, 127);
            ClampI8 { min, max: rng.range(min, 127) }
        }
    };
    let q = Int8Params {
        input_zero_point: zero_point(rng),
        output_zero_point: zero_point(rng),
        requant: &b.requant[..used],
        act,
        rounding: if rng.next().is_multiple_of(8) { Rounding::Single } else { Rounding::Double },
    };
    let (x, wt, bias) = (&b.x[..x_len], &b.w[..w_len], &b.bias[..c]);
    // The bytes after the output must stay as they are.
    b.optimized[out_len..].fill(0x5a);
    let (reference, optimized) = (&mut b.reference[..out_len], &mut b.optimized[..out_len]);
    depthwise_conv2d::depthwise_conv2d_i8(&g, &q, x, wt, bias, reference);
    let run = |s: Scratch| cortex_m_dsp::depthwise_conv2d_i8(&g, &q, x, wt, bias, optimized, s);
    let took = b.scratch.run(Target::CortexMDsp, ScratchOp::DepthwiseI8(g), "depthwise_conv2d", run)?;
    let equal = took
        && b.reference[..out_len] == b.optimized[..out_len]
        && b.optimized[out_len..].iter().all(|&v| v == 0x5a);
    if !equal {
        defmt::println!(
            "depthwise_conv2d (3x3 cases) differs: batch {=usize} input {=usize}x{=usize}x{=usize} output {=usize}x{=usize} kernel {=usize}x{=usize} stride {=usize},{=usize} dilation {=usize},{=usize} pad {=usize},{=usize} zero points {=i32}/{=i32}",
            n, g.input.h, g.input.w, c, g.output.h, g.output.w, g.kernel[0], g.kernel[1],
            g.stride[0], g.stride[1], g.dilation[0], g.dilation[1], g.pad[0], g.pad[1],
            q.input_zero_point, q.output_zero_point
        );
    }
    if !equal || g.kernel != [3, 3] || !c.is_multiple_of(4) {
        return Some(equal);
    }
    let op = ScratchOp::DepthwiseI8(g);
    for (i, layout) in LAYOUTS.into_iter().enumerate() {
        // 4-aligned as in a model, or in one case of eight not (the reference kernel runs).
        let skew = if rng.next().is_multiple_of(8) { rng.size(1, 3) } else { 0 };
        let len = pack(layout, wt, 1, 9 * c, &mut b.laid.0[skew..])?;
        let laid = &b.laid.0[skew..][..len];
        let reference = &b.reference[..out_len];
        let laid_reference = &mut b.laid_reference[..out_len];
        let laid_out = LaidOut { bytes: laid, layout, depth: 9 * c };
        depthwise_conv2d::depthwise_conv2d_i8_laid_out(&g, &q, x, laid_out, bias, laid_reference);
        // Every output byte differs from the reference's until the kernel writes it.
        for (o, r) in b.optimized.iter_mut().zip(reference) {
            *o = !*r;
        }
        let optimized = &mut b.optimized[..out_len];
        let run = |s: Scratch| match layout {
            WeightLayout::DspDepthwiseRows => {
                cortex_m_dsp::depthwise_conv2d_i8_laid_out::<ROWS>(&g, &q, x, laid, bias, optimized, s)
            }
            _ => cortex_m_dsp::depthwise_conv2d_i8_laid_out::<COLUMNS>(&g, &q, x, laid, bias, optimized, s),
        };
        let took = b.scratch.run(Target::CortexMDsp, op, "depthwise_conv2d_i8_laid_out", run)?;
        // The 3×3 path builds its tile in the scratch, which `Scratch::take` zeroed.
        let fast = b.scratch.bytes[..Target::CortexMDsp.bytes(&op)].iter().any(|&v| v != 0);
        // The 3×3 path only for a geometry it suits, swept as laid out, from aligned weights;
        // and wherever the writer lays the layer out so (aligned).
        let columns = dsp_depthwise::sweeps_columns(&g);
        let crossed = columns == Some(layout != WeightLayout::DspDepthwiseColumns);
        let suits = columns == Some(layout == WeightLayout::DspDepthwiseColumns);
        let promised = dsp_depthwise::weight_layout(&g, q.requant, bias, q.rounding) == Some(layout);
        let path = if fast { suits && skew == 0 } else { !promised || skew != 0 };
        let packed = b.laid_reference[..out_len] == b.reference[..out_len];
        let equal = took
            && packed
            && path
            && b.optimized[..out_len] == b.reference[..out_len]
            && b.optimized[out_len..].iter().all(|&v| v == 0x5a);
        if !equal {
            defmt::println!(
                "depthwise_conv2d_i8_laid_out in {=str} differs{=str}: batch {=usize} input {=usize}x{=usize}x{=usize} output {=usize}x{=usize} stride {=usize},{=usize} pad {=usize},{=usize} zero points {=i32}/{=i32}, weights {=usize} bytes past alignment, 3x3 path taken {=bool} (the writer's layout: {=bool})",
                layout.name(), if packed { "" } else { " (the reference kernels too: packing)" },
                n, g.input.h, g.input.w, c, g.output.h, g.output.w, g.stride[0], g.stride[1],
                g.pad[0], g.pad[1], q.input_zero_point, q.output_zero_point, skew, fast, promised
            );
            if let Some(at) = (0..out_len).find(|&at| b.reference[at] != b.optimized[at]) {
                defmt::println!(
                    "  first at output {=usize}: {=i8}, the kernel {=i8}",
                    at,
                    b.reference[at],
                    b.optimized[at]
                );
            }
            return Some(false);
        }
        counts.checked[i] += 1;
        counts.fast[i] += u32::from(fast);
        counts.crossed[i] += u32::from(crossed);
        counts.unaligned[i] += u32::from(skew != 0);
    }
    Some(true)
}

/// Runs [`CASES`] cases and prints how many were checked, or exits with status 1 at the first
/// difference.
pub fn check(rng: &mut Rng) {
    let b = cortex_m::singleton!(: Buffers = Buffers {
        scratch: PlannedScratch::new(),
        x: [0; MAX_X],
        w: [0; 4 * 4 * MAX_C],
        laid: Aligned([0; 24 * MAX_C + 3]),
        bias: [0; MAX_C],
        requant: [Requant { multiplier: 0, shift: 0 }; MAX_C],
        reference: [0; MAX_OUT],
        laid_reference: [0; MAX_OUT],
        optimized: [0; MAX_OUT],
    })
    .expect("check runs once");
    let (mut checked, mut counts) = (0u32, LaidOutCounts::default());
    for _ in 0..CASES {
        match check_case(rng, b, &mut counts) {
            Some(true) => checked += 1,
            Some(false) => exit(false),
            None => {}
        }
    }
    defmt::println!(
        "kernel-check: every output equal to the reference in {=u32} depthwise_conv2d 3x3-path random cases",
        checked
    );
    for (i, layout) in LAYOUTS.into_iter().enumerate() {
        defmt::println!(
            "kernel-check: every output equal to the reference in {=u32} depthwise_conv2d {=str} laid-out cases: {=u32} on the 3x3 path (weights read in place), the reference kernel for the others ({=u32} with the other orientation than the sweep's, {=u32} unaligned)",
            counts.checked[i],
            layout.name(),
            counts.fast[i],
            counts.crossed[i],
            counts.unaligned[i]
        );
    }
}
