//! The Helium kernels (`ember::kernels::helium`, Cortex-M55) against the reference kernels,
//! byte for byte: shapes wider than the DSP checks draw (depths of several 16-byte vectors and
//! their tails, more than one 64-channel block, 16-channel depthwise passes with partial tails,
//! 1×1 windows with strides and padding), and the output stage on extreme accumulators with
//! every shift and corner multipliers, rounding once and twice.

mod float;

use super::{axis, corner_quantization, extreme, quantization, PlannedScratch, Rng};
use ember::kernels::add::{self, AddParams};
use ember::kernels::scratch::{Scratch, ScratchOp, Target};
use ember::kernels::{conv2d, depthwise_conv2d, fully_connected, helium, pool};
use ember::kernels::{ClampI8, ConvGeometry, FcGeometry, Input, Nhwc};
use ember::quant::Requant;
use ember_bench::firmware::exit;

/// Random cases drawn per kernel (those that do not fit the buffers are skipped and not counted).
const CASES: u32 = 800;
/// Largest channel counts and fully connected depth.
const MAX_CIN: usize = 40;
const MAX_COUT: usize = 72;
const MAX_UNITS: usize = 140;
const MAX_DEPTH: usize = 100;

/// Buffers for the largest case.
struct Buffers {
    scratch: PlannedScratch,
    x: [i8; 9 * 9 * MAX_CIN],
    w: [i8; MAX_COUT * 16 * MAX_CIN],
    bias: [i32; MAX_UNITS],
    requant: [Requant; MAX_UNITS],
    reference: [i8; 9 * 9 * MAX_COUT],
    optimized: [i8; 9 * 9 * MAX_COUT],
}

/// Compares the two output buffers over `len`, printing `what` when they differ.
fn same(b: &Buffers, len: usize, what: &str, shape: [usize; 3]) -> bool {
    let equal = b.reference[..len] == b.optimized[..len];
    if !equal {
        defmt::println!(
            "helium {=str} differs: {=usize} {=usize} {=usize}",
            what,
            shape[0],
            shape[1],
            shape[2]
        );
    }
    equal
}

/// One fully connected case (`corners`: extreme biases, every shift); `None` if it does not fit.
fn check_fully_connected(rng: &mut Rng, b: &mut Buffers, corners: bool) -> Option<bool> {
    let g = if corners {
        FcGeometry { rows: rng.size(1, 3), depth: rng.size(1, 3), units: rng.size(1, 9) }
    } else {
        FcGeometry { rows: rng.size(1, 4), depth: rng.size(1, MAX_DEPTH), units: rng.size(1, MAX_UNITS) }
    };
    let (x_len, w_len, out_len) = (g.rows * g.depth, g.units * g.depth, g.rows * g.units);
    if x_len > b.x.len() || w_len > b.w.len() || out_len > b.reference.len() {
        return None;
    }
    rng.fill(&mut b.x[..x_len], -128, 127);
    rng.fill(&mut b.w[..w_len], -128, 127);
    let q = if corners {
        b.bias[..g.units].iter_mut().for_each(|v| *v = extreme(rng));
        corner_quantization(rng, &mut b.requant, g.units)
    } else {
        b.bias[..g.units].iter_mut().for_each(|v| *v = rng.range(-50_000, 50_000));
        quantization(rng, &mut b.requant, g.units)
    };
    let (x, w, bias) = (&b.x[..x_len], &b.w[..w_len], &b.bias[..g.units]);
    fully_connected::fully_connected_i8(&g, &q, x, w, bias, &mut b.reference[..out_len]);
    let scratch = b.scratch.plan(Target::Helium, ScratchOp::FullyConnectedI8(g))?;
    helium::fully_connected_i8(&g, &q, x, w, bias, &mut b.optimized[..out_len], scratch);
    Some(same(b, out_len, "fully_connected", [g.rows, g.depth, g.units]))
}

/// One convolution (`depthwise`: multiplier 1) case; `None` if it does not fit.
fn check_windowed(rng: &mut Rng, b: &mut Buffers, depthwise: bool) -> Option<bool> {
    let one_by_one = rng.next().is_multiple_of(3);
    let (h, w) = (axis(rng, false)?, axis(rng, false)?);
    // 1×1 windows with the drawn strides and paddings (the DSP checks draw them unpadded).
    let (h, w) = if one_by_one && !depthwise {
        let one = |a: [usize; 6]| {
            let padded = a[0] + 2 * a[4].min(1);
            [a[0], 1, a[2], 1, a[4].min(1), (padded - 1) / a[2] + 1]
        };
        (one(h), one(w))
    } else {
        (h, w)
    };
    // Depthwise passes go up to 64 channels per block: draw past one.
    let cin = rng.size(1, if depthwise { MAX_COUT } else { MAX_CIN });
    let (cout, w_len) = if depthwise {
        (cin, h[1] * w[1] * cin)
    } else {
        let c = rng.size(1, MAX_COUT);
        (c, c * h[1] * w[1] * cin)
    };
    let g = ConvGeometry {
        input: Nhwc { n: 1, h: h[0], w: w[0], c: cin },
        output: Nhwc { n: 1, h: h[5], w: w[5], c: cout },
        kernel: [h[1], w[1]],
        stride: [h[2], w[2]],
        dilation: [h[3], w[3]],
        pad: [h[4], w[4]],
    };
    let (x_len, out_len) = (g.input.len(), g.output.len());
    if x_len > b.x.len() || w_len > b.w.len() || out_len > b.reference.len() || cout > b.bias.len() {
        return None;
    }
    rng.fill(&mut b.x[..x_len], -128, 127);
    rng.fill(&mut b.w[..w_len], -128, 127);
    b.bias[..cout].iter_mut().for_each(|v| *v = rng.range(-50_000, 50_000));
    let q = quantization(rng, &mut b.requant, cout);
    let (x, wt, bias) = (&b.x[..x_len], &b.w[..w_len], &b.bias[..cout]);
    let (reference, optimized) = (&mut b.reference[..out_len], &mut b.optimized[..out_len]);
    if depthwise {
        depthwise_conv2d::depthwise_conv2d_i8(&g, &q, x, wt, bias, reference);
        let scratch = b.scratch.plan(Target::Helium, ScratchOp::DepthwiseI8(g))?;
        helium::depthwise_conv2d_i8(&g, &q, x, wt, bias, optimized, scratch);
    } else {
        conv2d::conv2d_i8(&g, &q, x, wt, bias, reference);
        let scratch = b.scratch.plan(Target::Helium, ScratchOp::Conv2dI8(g))?;
        helium::conv2d_i8(&g, &q, x, wt, bias, optimized, scratch);
    }
    let what = if depthwise { "depthwise_conv2d" } else { "conv2d" };
    let equal = same(b, out_len, what, [cin, cout, g.kernel[0] * 10 + g.kernel[1]]);
    if !equal {
        defmt::println!(
            "input {=usize}x{=usize} stride {=usize},{=usize} dilation {=usize},{=usize} pad {=usize},{=usize}",
            g.input.h, g.input.w, g.stride[0], g.stride[1], g.dilation[0], g.dilation[1], g.pad[0], g.pad[1]
        );
    }
    Some(equal)
}

/// A random positive scale between 2^-12 and 2.
fn scale(rng: &mut Rng) -> f32 {
    rng.range(1, 1 << 12) as f32 / (1 << rng.range(0, 12)) as f32 / 2048.0
}

/// One ADD case: same-shape operands, separate or in place over either; params derived from
/// random scales as TFLite's `Prepare` does, or drawn raw (any multiplier, every output shift,
/// input factors above 1 that take the reference path).
fn check_add(rng: &mut Rng, b: &mut Buffers) -> Option<bool> {
    let n = rng.size(1, 300);
    let (act_min, zero_points) = (rng.range(-128, 127), [rng.range(-128, 127), rng.range(-128, 127)]);
    let act = ClampI8 { min: act_min, max: rng.range(act_min, 127) };
    let mut p = AddParams::new(
        scale(rng),
        zero_points[0],
        scale(rng),
        zero_points[1],
        scale(rng),
        rng.range(-128, 127),
        act,
    );
    if rng.next().is_multiple_of(3) {
        let mut raw = |lo, hi| Requant { multiplier: rng.range(0, i32::MAX), shift: rng.range(lo, hi) };
        (p.a, p.b, p.output) = (raw(-31, 1), raw(-31, 1), raw(-31, 30));
    }
    let (x, y) = (&mut b.x[..2 * n], &mut b.w[..n]);
    rng.fill(x, -128, 127);
    rng.fill(y, -128, 127);
    let shape = [1, 1, n];
    let place = rng.next() % 3;
    let (reference, optimized) = (&mut b.reference[..n], &mut b.optimized[..n]);
    let (a_in, b_in) = (&x[..n], &y[..n]);
    match place {
        0 => {
            add::add_i8(&shape, &shape, Input::Separate(a_in), &shape, Input::Separate(b_in), &p, reference);
            helium::add_i8(
                &shape,
                &shape,
                Input::Separate(a_in),
                &shape,
                Input::Separate(b_in),
                &p,
                optimized,
                Scratch::none(),
            );
        }
        // In place over `a` (1) or `b` (2): the output buffer starts as that operand.
        _ => {
            let (over, other) = if place == 1 { (a_in, b_in) } else { (b_in, a_in) };
            reference.copy_from_slice(over);
            optimized.copy_from_slice(over);
            let (ia, ib) = if place == 1 {
                (Input::InPlace, Input::Separate(other))
            } else {
                (Input::Separate(other), Input::InPlace)
            };
            add::add_i8(&shape, &shape, ia, &shape, ib, &p, reference);
            helium::add_i8(&shape, &shape, ia, &shape, ib, &p, optimized, Scratch::none());
        }
    }
    Some(same(b, n, "add", [n, place as usize, p.output.shift as usize]))
}

/// One average pool case: windows from the drawn axes, or the whole image (global pooling).
fn check_average_pool(rng: &mut Rng, b: &mut Buffers) -> Option<bool> {
    let (mut h, mut w) = (axis(rng, false)?, axis(rng, false)?);
    if rng.next().is_multiple_of(4) {
        (h, w) = ([h[0], h[0], 1, 1, 0, 1], [w[0], w[0], 1, 1, 0, 1]);
    }
    let c = rng.size(1, MAX_COUT);
    let g = ConvGeometry {
        input: Nhwc { n: 1, h: h[0], w: w[0], c },
        output: Nhwc { n: 1, h: h[5], w: w[5], c },
        kernel: [h[1], w[1]],
        stride: [h[2], w[2]],
        dilation: [h[3], w[3]],
        pad: [h[4], w[4]],
    };
    let (x_len, out_len) = (g.input.len(), g.output.len());
    if x_len > b.x.len() || out_len > b.reference.len() {
        return None;
    }
    rng.fill(&mut b.x[..x_len], -128, 127);
    let min = rng.range(-128, 127);
    let act = ClampI8 { min, max: rng.range(min, 127) };
    pool::average_pool_i8(&g, &b.x[..x_len], act, &mut b.reference[..out_len]);
    helium::average_pool_i8(&g, &b.x[..x_len], act, &mut b.optimized[..out_len]);
    Some(same(b, out_len, "average_pool", [c, g.kernel[0], g.kernel[1]]))
}

/// Runs every Helium check; exits with status 1 at the first difference.
pub fn check(rng: &mut Rng) {
    let b = cortex_m::singleton!(: Buffers = Buffers {
        scratch: PlannedScratch::new(),
        x: [0; 9 * 9 * MAX_CIN],
        w: [0; MAX_COUT * 16 * MAX_CIN],
        bias: [0; MAX_UNITS],
        requant: [Requant { multiplier: 0, shift: 0 }; MAX_UNITS],
        reference: [0; 9 * 9 * MAX_COUT],
        optimized: [0; 9 * 9 * MAX_COUT],
    })
    .expect("check runs once");
    let mut checked = [0u32; 6];
    for (i, checked) in checked.iter_mut().enumerate() {
        for _ in 0..CASES {
            let outcome = match i {
                0 => check_fully_connected(rng, b, true),
                1 => check_fully_connected(rng, b, false),
                2 => check_windowed(rng, b, false),
                3 => check_windowed(rng, b, true),
                4 => check_add(rng, b),
                _ => check_average_pool(rng, b),
            };
            match outcome {
                Some(true) => *checked += 1,
                Some(false) => exit(false),
                None => {}
            }
        }
    }
    defmt::println!(
        "kernel-check: Helium outputs equal to the reference in {=u32} output-stage corner, {=u32} fully_connected, {=u32} conv2d, {=u32} depthwise_conv2d, {=u32} add and {=u32} average_pool random cases",
        checked[0],
        checked[1],
        checked[2],
        checked[3],
        checked[4],
        checked[5]
    );
    float::check(rng);
}
