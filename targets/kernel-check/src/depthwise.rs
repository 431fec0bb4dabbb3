//! Depthwise cases drawn for the DSP kernel's 3×3 path (`cortex_m_dsp/depthwise/three_by_three.rs`):
//! mostly 3×3 windows of dilation 1 and strides 1 or 2 over channels in fours, on lines long
//! enough to span several chunks (either side the longer, so both sweeps run), more lines than
//! the tile holds, batches of two, odd line lengths, every padding, zero points at the extremes,
//! right shifts on both sides of the path's limit, now and then what the path leaves to the
//! general kernel.

use super::{PlannedScratch, Rng};
use ember::kernels::scratch::{Scratch, ScratchOp, Target};
use ember::kernels::{cortex_m_dsp, depthwise_conv2d};
use ember::kernels::{ClampI8, ConvGeometry, Int8Params, Nhwc};
use ember::quant::{Requant, Rounding};
use ember_bench::firmware::exit;

/// Random cases drawn (those that do not fit the buffers are skipped and not counted).
const CASES: u32 = 1500;
/// Largest channel count, input and output bytes.
const MAX_C: usize = 16;
const MAX_X: usize = 2400;
const MAX_OUT: usize = 2400;

/// Buffers for the largest case.
struct Buffers {
    scratch: PlannedScratch,
    x: [i8; MAX_X],
    w: [i8; 4 * 4 * MAX_C],
    bias: [i32; MAX_C],
    requant: [Requant; MAX_C],
    reference: [i8; MAX_OUT],
    optimized: [i8; MAX_OUT],
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

/// Checks one random case: `Some(equal)` (and nothing written past the output), or `None` when it
/// does not fit the buffers.
fn check_case(rng: &mut Rng, b: &mut Buffers) -> Option<bool> {
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
    Some(equal)
}

/// Runs [`CASES`] cases and prints how many were checked, or exits with status 1 at the first
/// difference.
pub fn check(rng: &mut Rng) {
    let b = cortex_m::singleton!(: Buffers = Buffers {
        scratch: PlannedScratch::new(),
        x: [0; MAX_X],
        w: [0; 4 * 4 * MAX_C],
        bias: [0; MAX_C],
        requant: [Requant { multiplier: 0, shift: 0 }; MAX_C],
        reference: [0; MAX_OUT],
        optimized: [0; MAX_OUT],
    })
    .expect("check runs once");
    let mut checked = 0u32;
    for _ in 0..CASES {
        match check_case(rng, b) {
            Some(true) => checked += 1,
            Some(false) => exit(false),
            None => {}
        }
    }
    defmt::println!(
        "kernel-check: every output equal to the reference in {=u32} depthwise_conv2d 3x3-path random cases",
        checked
    );
}
