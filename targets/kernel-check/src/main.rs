//! Randomized bit-exactness checks, run under QEMU: every hand-written kernel of this target
//! (`ember::kernels::cortex_m_dsp`, with weights laid out at export in `laid_out.rs` and the 3×3
//! depthwise ones in `depthwise.rs`, and `helium` on the M55: `helium.rs`) against its reference
//! kernel, byte for byte, on random shapes, strides, dilations, paddings, channel multipliers, zero points, per-tensor and
//! per-channel requantization and activation bounds. Prints a summary through defmt and exits with status 0, or prints the
//! first differing case and exits with status 1.
#![no_std]
#![no_main]

use defmt_semihosting as _;
use ember::kernels::add::{self, AddParams};
use ember::kernels::scratch::{Scratch, ScratchOp, Target};
use ember::kernels::{conv2d, cortex_m_dsp, depthwise_conv2d, fully_connected, scan};
use ember::kernels::{ClampI8, ConvGeometry, FcGeometry, Input, Int8Params, Nhwc};
use ember::quant::{Requant, Rounding};
use ember_bench::firmware::exit;
use panic_probe as _;

mod depthwise;
#[cfg(helium)]
mod helium;
mod laid_out;
mod pool;

/// Random cases drawn per kernel (those that do not fit the buffers are skipped and not counted).
const CASES: u32 = 1500;
/// Largest input height and width, channels, kernel side.
const MAX_HW: usize = 9;
const MAX_CIN: usize = 12;
const MAX_COUT: usize = 8;
const MAX_K: usize = 4;

/// xorshift32: a fixed seed, so every run checks the same cases.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u32) as i32
    }

    fn size(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as i32, hi as i32) as usize
    }

    fn fill(&mut self, out: &mut [i8], lo: i32, hi: i32) {
        out.iter_mut().for_each(|v| *v = self.range(lo, hi) as i8);
    }
}

/// Largest scratch a case plans.
const SCRATCH_BYTES: usize = 4096;

/// An op's scratch as `ember-quantize` plans it: exactly [`Target::bytes`]. A kernel given too
/// little runs the reference kernel, which the comparison cannot tell from its own, so
/// [`PlannedScratch::run`] also checks that the kernel's takes reached the last planned byte.
struct PlannedScratch {
    bytes: [u8; SCRATCH_BYTES],
}

impl PlannedScratch {
    /// Zeroed.
    const fn new() -> Self {
        Self { bytes: [0; SCRATCH_BYTES] }
    }

    /// The scratch `target` plans for `op`, unchecked (the Helium kernels take less than the
    /// DSP kernels they fall back to, whose needs they plan), or `None` if it exceeds
    /// [`SCRATCH_BYTES`].
    #[cfg(helium)]
    fn plan(&mut self, target: Target, op: ScratchOp) -> Option<Scratch<'_>> {
        self.bytes.get_mut(..target.bytes(&op)).map(Scratch::new)
    }

    /// Runs `kernel` on the scratch `target` plans for `op` twice, over bytes first marked
    /// `0xa5`, then `0x5a`; `None` if the plan exceeds [`SCRATCH_BYTES`]. `Scratch::take`
    /// zeroes what it takes before the kernel writes there, so the last planned byte holds the
    /// mark after both runs only if no take reached it: then this prints `what` and gives
    /// `Some(false)`.
    fn run(
        &mut self,
        target: Target,
        op: ScratchOp,
        what: &str,
        mut kernel: impl FnMut(Scratch),
    ) -> Option<bool> {
        let len = target.bytes(&op);
        let bytes = self.bytes.get_mut(..len)?;
        let mut untaken = true;
        for mark in [0xa5, 0x5a] {
            bytes.fill(mark);
            kernel(Scratch::new(bytes));
            untaken &= bytes.last().is_some_and(|&b| b == mark);
        }
        if untaken {
            defmt::println!(
                "{=str} did not take all its planned scratch: Target::bytes and its takes disagree",
                what
            );
        }
        Some(!untaken)
    }
}

/// Buffers for the largest case.
struct Buffers {
    scratch: PlannedScratch,
    x: [i8; MAX_HW * MAX_HW * MAX_CIN],
    w: [i8; MAX_COUT * 2 * MAX_K * MAX_K * MAX_CIN],
    bias: [i32; MAX_COUT * 2],
    requant: [Requant; MAX_COUT * 2],
    reference: [i8; MAX_HW * MAX_HW * MAX_COUT * 2],
    optimized: [i8; MAX_HW * MAX_HW * MAX_COUT * 2],
}

/// Random quantization for `channels` output channels: zero points, per-tensor or per-channel
/// requantization (right and left shifts, now and then the extreme ones, or a zero factor with
/// any shift as a dead channel has; rounding once or twice), activation bounds (or none).
fn quantization<'a>(rng: &mut Rng, requant: &'a mut [Requant], channels: usize) -> Int8Params<'a> {
    let used = if rng.next().is_multiple_of(2) { 1 } else { channels };
    for r in &mut requant[..used] {
        *r = match rng.next() % 16 {
            0 => Requant { multiplier: 0, shift: rng.range(-40, 10) },
            1 => Requant { multiplier: rng.range(1 << 30, i32::MAX), shift: rng.range(-31, 1) },
            // Small right shifts, where a rounding step's error is most often visible.
            2 | 3 => Requant { multiplier: rng.range(1 << 30, i32::MAX), shift: rng.range(-3, -1) },
            _ => Requant { multiplier: rng.range(1 << 30, i32::MAX), shift: rng.range(-12, 1) },
        };
    }
    let min = rng.range(-128, 0);
    // One case in four without activation bounds (which an optimized kernel may skip).
    let act =
        if rng.next().is_multiple_of(4) { ClampI8::FULL } else { ClampI8 { min, max: rng.range(min, 127) } };
    Int8Params {
        input_zero_point: rng.range(-128, 127),
        output_zero_point: rng.range(-128, 127),
        requant: &requant[..used],
        act,
        rounding: if rng.next().is_multiple_of(2) { Rounding::Double } else { Rounding::Single },
    }
}

/// Accumulator-sized values the output stage must get right: the i32 extremes, powers of two
/// and their neighbours.
fn extreme(rng: &mut Rng) -> i32 {
    let power = 1i32.wrapping_shl(rng.next() % 32);
    match rng.next() % 4 {
        0 => [i32::MIN, i32::MIN + 1, i32::MAX, i32::MAX - 1, -1, 0, 1][(rng.next() % 7) as usize],
        1 => power.wrapping_add(rng.range(-1, 1)),
        2 => power.wrapping_neg().wrapping_add(rng.range(-1, 1)),
        _ => rng.next() as i32,
    }
}

/// Quantization for the output-stage cases: every shift, corner multipliers.
fn corner_quantization<'a>(rng: &mut Rng, requant: &'a mut [Requant], channels: usize) -> Int8Params<'a> {
    let used = if rng.next().is_multiple_of(2) { 1 } else { channels };
    for r in &mut requant[..used] {
        let multiplier = match rng.next() % 4 {
            0 => [0, 1, 1 << 30, (1 << 30) + 1, i32::MAX][(rng.next() % 5) as usize],
            _ => rng.range(1 << 30, i32::MAX),
        };
        *r = Requant { multiplier, shift: rng.range(-31, 30) };
    }
    let min = rng.range(-128, 127);
    Int8Params {
        input_zero_point: rng.range(-128, 127),
        output_zero_point: rng.range(-128, 127),
        requant: &requant[..used],
        act: ClampI8 { min, max: rng.range(min, 127) },
        rounding: if rng.next().is_multiple_of(2) { Rounding::Double } else { Rounding::Single },
    }
}

/// Random biases: mostly moderate, in one case of eight anywhere in the i32 range (so
/// accumulators can exceed the optimized output stage's bound, or wrap).
fn biases(rng: &mut Rng, bias: &mut [i32]) {
    let wide = rng.next().is_multiple_of(8);
    for b in bias {
        *b = if wide { rng.next() as i32 } else { rng.range(-50_000, 50_000) };
    }
}

/// Checks one random case: `Some(equal)`, or `None` when the drawn shape does not fit the buffers.
fn check_fully_connected(rng: &mut Rng, b: &mut Buffers) -> Option<bool> {
    // One case in eight tries the output stage's corners (biases of extreme values, every
    // shift, corner multipliers), one in eight the roundings: small right shifts `e` (where a
    // rounding step's error shows in one output in 2^(e+1)) and biases of about 2^(e+6), so most
    // outputs fall inside the int8 range; both with accumulators that are mostly the bias. Now
    // and then deeper than the optimized kernels' columns (640), which the reference takes.
    let (corners, in_range) = match rng.next() % 8 {
        0 => (true, false),
        1 => (false, true),
        _ => (false, false),
    };
    let depth = match rng.next() % 16 {
        _ if corners || in_range => rng.size(1, 3),
        0 => rng.size(600, 700),
        _ => rng.size(1, 40),
    };
    // A single row (a batch of one) in half the cases: the kernels' four-unit path.
    let rows = if rng.next().is_multiple_of(2) { 1 } else { rng.size(2, 4) };
    let g = FcGeometry { rows, depth, units: rng.size(1, MAX_COUT) };
    let (x_len, w_len, out_len) = (g.rows * g.depth, g.units * g.depth, g.rows * g.units);
    if x_len > b.x.len() || w_len > b.w.len() || out_len > b.reference.len() {
        return None;
    }
    rng.fill(&mut b.x[..x_len], -128, 127);
    rng.fill(&mut b.w[..w_len], -127, 127);
    let q = if corners {
        b.bias[..g.units].iter_mut().for_each(|v| *v = extreme(rng));
        corner_quantization(rng, &mut b.requant, g.units)
    } else if in_range {
        let e = rng.range(1, 4);
        let k = e + rng.range(4, 7);
        b.bias[..g.units].iter_mut().for_each(|v| *v = rng.range(-(1 << k), 1 << k));
        let used = if rng.next().is_multiple_of(2) { 1 } else { g.units };
        for r in &mut b.requant[..used] {
            *r = Requant { multiplier: rng.range(1 << 30, i32::MAX), shift: -e };
        }
        Int8Params {
            requant: &b.requant[..used],
            act: ClampI8::FULL,
            ..quantization(rng, &mut [Requant { multiplier: 0, shift: 0 }], 1)
        }
    } else {
        biases(rng, &mut b.bias[..g.units]);
        quantization(rng, &mut b.requant, g.units)
    };
    let (x, w, bias) = (&b.x[..x_len], &b.w[..w_len], &b.bias[..g.units]);
    fully_connected::fully_connected_i8(&g, &q, x, w, bias, &mut b.reference[..out_len]);
    let optimized = &mut b.optimized[..out_len];
    let took = b.scratch.run(Target::CortexMDsp, ScratchOp::FullyConnectedI8(g), "fully_connected", |s| {
        cortex_m_dsp::fully_connected_i8(&g, &q, x, w, bias, optimized, s)
    })?;
    let equal = took && b.reference[..out_len] == b.optimized[..out_len];
    if !equal {
        defmt::println!(
            "fully_connected differs: rows={=usize} depth={=usize} units={=usize} zero points {=i32}/{=i32}",
            g.rows,
            g.depth,
            g.units,
            q.input_zero_point,
            q.output_zero_point
        );
    }
    Some(equal)
}

/// One axis: (input, kernel, stride, dilation, pad before, output), or `None` if the window
/// does not fit the padded input.
fn axis(rng: &mut Rng, one_by_one: bool) -> Option<[usize; 6]> {
    let input = rng.size(1, MAX_HW);
    if one_by_one {
        return Some([input, 1, 1, 1, 0, input]);
    }
    let (kernel, stride, dilation) = (rng.size(1, MAX_K), rng.size(1, 2), rng.size(1, 2));
    let span = dilation * (kernel - 1) + 1;
    let (before, after) = (rng.size(0, span - 1), rng.size(0, span - 1));
    let padded = input + before + after;
    (padded >= span).then(|| [input, kernel, stride, dilation, before, (padded - span) / stride + 1])
}

/// Which kernel a case checks.
#[derive(Clone, Copy)]
enum Kernel {
    FullyConnected,
    Windowed(Windowed),
    Add,
    Scan,
}

/// Which windowed kernel a case checks.
#[derive(Clone, Copy, defmt::Format)]
enum Windowed {
    Conv2d,
    /// Depthwise with this channel multiplier.
    Depthwise(usize),
}

/// Checks one random case of `kind`, as [`check_fully_connected`].
fn check_windowed(rng: &mut Rng, b: &mut Buffers, kind: Windowed) -> Option<bool> {
    let one_by_one = rng.next().is_multiple_of(4);
    let (h, w) = (axis(rng, one_by_one)?, axis(rng, one_by_one)?);
    let (cin, cout, w_len) = match kind {
        Windowed::Conv2d => {
            let (cin, cout) = (rng.size(1, MAX_CIN), rng.size(1, MAX_COUT));
            (cin, cout, cout * h[1] * w[1] * cin)
        }
        Windowed::Depthwise(multiplier) => {
            let cin = rng.size(1, MAX_CIN);
            (cin, cin * multiplier, h[1] * w[1] * cin * multiplier)
        }
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
    rng.fill(&mut b.w[..w_len], -127, 127);
    biases(rng, &mut b.bias[..cout]);
    let q = quantization(rng, &mut b.requant, cout);
    let (x, wt, bias) = (&b.x[..x_len], &b.w[..w_len], &b.bias[..cout]);
    let (reference, optimized) = (&mut b.reference[..out_len], &mut b.optimized[..out_len]);
    match kind {
        Windowed::Conv2d => {
            conv2d::conv2d_i8(&g, &q, x, wt, bias, reference);
            let run = |s: Scratch| cortex_m_dsp::conv2d_i8(&g, &q, x, wt, bias, optimized, s);
            if !b.scratch.run(Target::CortexMDsp, ScratchOp::Conv2dI8(g), "conv2d", run)? {
                return Some(false);
            }
        }
        Windowed::Depthwise(_) => {
            depthwise_conv2d::depthwise_conv2d_i8(&g, &q, x, wt, bias, reference);
            let run = |s: Scratch| cortex_m_dsp::depthwise_conv2d_i8(&g, &q, x, wt, bias, optimized, s);
            if !b.scratch.run(Target::CortexMDsp, ScratchOp::DepthwiseI8(g), "depthwise_conv2d", run)? {
                return Some(false);
            }
        }
    }
    let equal = reference == optimized;
    if !equal {
        defmt::println!(
            "{} differs: input {=usize}x{=usize}x{=usize} output {=usize}x{=usize}x{=usize} kernel {=usize}x{=usize} stride {=usize},{=usize} dilation {=usize},{=usize} pad {=usize},{=usize}",
            kind, g.input.h, g.input.w, g.input.c, g.output.h, g.output.w, g.output.c,
            g.kernel[0], g.kernel[1], g.stride[0], g.stride[1], g.dilation[0], g.dilation[1], g.pad[0], g.pad[1]
        );
    }
    Some(equal)
}

/// One ADD case: same-shape operands (or, in one case of eight, `b` broadcast over the last
/// axis, which the reference takes), separate or in place over either; factors from random
/// scales as TFLite's `Prepare` derives them, or drawn raw (every shift, factors above 1).
fn check_add(rng: &mut Rng, b: &mut Buffers) -> Option<bool> {
    let n = rng.size(1, 300);
    let scale = |rng: &mut Rng| rng.range(1, 1 << 12) as f32 / (1 << rng.range(0, 12)) as f32 / 2048.0;
    let min = rng.range(-128, 127);
    let act = ClampI8 { min, max: rng.range(min, 127) };
    let (a_scale, a_zero_point, b_scale) = (scale(rng), rng.range(-128, 127), scale(rng));
    let (b_zero_point, out_scale) = (rng.range(-128, 127), scale(rng));
    let mut p =
        AddParams::new(a_scale, a_zero_point, b_scale, b_zero_point, out_scale, rng.range(-128, 127), act);
    if rng.next().is_multiple_of(3) {
        let mut raw = |lo, hi| Requant { multiplier: rng.range(0, i32::MAX), shift: rng.range(lo, hi) };
        (p.a, p.b, p.output) = (raw(-31, 1), raw(-31, 1), raw(-31, 30));
    }
    let broadcast = rng.next().is_multiple_of(8);
    let (x, y) = (&mut b.x[..n], &mut b.w[..n]);
    rng.fill(x, -128, 127);
    rng.fill(y, -128, 127);
    let (out_shape, b_shape) = ([1, n], if broadcast { [1, 1] } else { [1, n] });
    let (reference, optimized) = (&mut b.reference[..n], &mut b.optimized[..n]);
    // In place over `a` (1) or `b` (2, same shapes only): the output starts as that operand.
    let (ia, ib) = match rng.next() % 3 {
        1 => {
            reference.copy_from_slice(x);
            optimized.copy_from_slice(x);
            (Input::InPlace, Input::Separate(&y[..b_shape[1]]))
        }
        2 if !broadcast => {
            reference.copy_from_slice(y);
            optimized.copy_from_slice(y);
            (Input::Separate(&x[..]), Input::InPlace)
        }
        _ => (Input::Separate(&x[..]), Input::Separate(&y[..b_shape[1]])),
    };
    add::add_i8(&out_shape, &out_shape, ia, &b_shape, ib, &p, reference);
    let start = match ia {
        Input::InPlace => Some(&x[..]),
        Input::Separate(_) => matches!(ib, Input::InPlace).then_some(&y[..]),
    };
    let run = |s: Scratch| {
        // In place, every run starts from the operand.
        if let Some(start) = start {
            optimized.copy_from_slice(start);
        }
        cortex_m_dsp::add_i8(&out_shape, &out_shape, ia, &b_shape, ib, &p, optimized, s)
    };
    let took = b.scratch.run(Target::CortexMDsp, ScratchOp::AddI8 { broadcast }, "add", run)?;
    let equal = took && reference == optimized;
    if !equal {
        defmt::println!(
            "add differs: {=usize} elements, shifts {=i32} {=i32} {=i32}",
            n,
            p.a.shift,
            p.b.shift,
            p.output.shift
        );
    }
    Some(equal)
}

/// One case of the telemetry scans: up to 1000 bytes from any offset (unaligned words), mostly
/// the value counted or its neighbours, the rest anywhere; their count and their range.
fn check_scan(rng: &mut Rng) -> Option<bool> {
    let mut buffer = [0u8; 1003];
    let (start, n, value) = (rng.size(0, 3), rng.size(0, 1000), rng.next() as u8);
    let bytes = &mut buffer[start..start + n];
    for v in bytes.iter_mut() {
        *v = match rng.next() % 4 {
            0 | 1 => value,
            2 => value.wrapping_add(if rng.next().is_multiple_of(2) { 1 } else { 255 }),
            _ => rng.next() as u8,
        };
    }
    let values: [i8; 1003] = buffer.map(|b| b as i8);
    let values = &values[start..start + n];
    let bytes = &buffer[start..start + n];
    let count = (scan::count_equal(bytes, value), cortex_m_dsp::count_equal(bytes, value));
    let range = (scan::range_i8(values), cortex_m_dsp::range_i8(values));
    let equal = count.0 == count.1 && range.0 == range.1;
    if !equal {
        defmt::println!("scans differ: {=usize} bytes from offset {=usize}, value {=u8}", n, start, value);
    }
    Some(equal)
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let buffers = cortex_m::singleton!(: Buffers = Buffers {
        scratch: PlannedScratch::new(),
        x: [0; MAX_HW * MAX_HW * MAX_CIN],
        w: [0; MAX_COUT * 2 * MAX_K * MAX_K * MAX_CIN],
        bias: [0; MAX_COUT * 2],
        requant: [Requant { multiplier: 0, shift: 0 }; MAX_COUT * 2],
        reference: [0; MAX_HW * MAX_HW * MAX_COUT * 2],
        optimized: [0; MAX_HW * MAX_HW * MAX_COUT * 2],
    })
    .expect("main runs once");
    let mut rng = Rng(0x2545_f491);
    let mut checked = [0u32; 6];
    for (i, kind) in [
        Kernel::FullyConnected,
        Kernel::Windowed(Windowed::Conv2d),
        Kernel::Windowed(Windowed::Depthwise(1)),
        Kernel::Windowed(Windowed::Depthwise(2)),
        Kernel::Add,
        Kernel::Scan,
    ]
    .into_iter()
    .enumerate()
    {
        for _ in 0..CASES {
            let outcome = match kind {
                Kernel::FullyConnected => check_fully_connected(&mut rng, buffers),
                Kernel::Windowed(kind) => check_windowed(&mut rng, buffers, kind),
                Kernel::Add => check_add(&mut rng, buffers),
                Kernel::Scan => check_scan(&mut rng),
            };
            match outcome {
                Some(true) => checked[i] += 1,
                Some(false) => exit(false),
                None => {}
            }
        }
    }
    depthwise::check(&mut rng);
    laid_out::check(&mut rng);
    pool::check(&mut rng);
    #[cfg(helium)]
    helium::check(&mut rng);
    defmt::println!(
        "kernel-check: every output equal to the reference in {=u32} fully_connected, {=u32} conv2d, {=u32} depthwise_conv2d (multiplier 1), {=u32} (multiplier 2), {=u32} add and {=u32} telemetry scan random cases",
        checked[0],
        checked[1],
        checked[2],
        checked[3],
        checked[4],
        checked[5]
    );
    exit(true)
}
