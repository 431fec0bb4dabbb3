//! The Helium f32 kernels (`ember::kernels::helium::float`) against the reference kernels, with
//! f32 and f16 weights: every output has the reference's bits, or both are NaN (whose bits
//! neither kernel promises). Values are plain (in [-1, 1), so MVE flushes nothing and the vector
//! path's outputs stand), or mixed with ±0, ±inf, NaN, huge values and random bit patterns, or
//! tiny (subnormals, and normals whose products or sums underflow, so MVE flushes and the kernels
//! must notice and take the reference's outputs). f16 weights are the f32 ones rounded, or
//! random bit patterns (f16 subnormals, infinities and NaNs among them). In one case in eight
//! the Helium kernel runs with `FPSCR.AHP` set, where MVE would read f16 weights differently
//! from the reference (the kernel must leave them to the reference).

use super::super::{axis, Rng};
use ember::kernels::helium::float;
use ember::kernels::{conv2d, fully_connected, Weight};
use ember::kernels::{ClampF32, ConvGeometry, FcGeometry, Nhwc};
use ember_bench::firmware::exit;
use half::f16;

/// Random cases drawn per kernel (those that do not fit the buffers are skipped and not counted).
const CASES: u32 = 600;
/// Largest channel counts, fully connected depth and units.
const MAX_CIN: usize = 20;
const MAX_COUT: usize = 20;
const MAX_DEPTH: usize = 100;
const MAX_UNITS: usize = 40;
/// Largest weight count: `MAX_COUT` filters of 4×4 windows of `MAX_CIN` channels.
const MAX_WEIGHTS: usize = MAX_COUT * 16 * MAX_CIN;

/// Inputs of the largest case.
struct Inputs {
    x: [f32; 9 * 9 * MAX_CIN],
    w: [f32; MAX_WEIGHTS],
    w16: [f16; MAX_WEIGHTS],
    bias: [f32; MAX_UNITS],
}

/// Outputs of the largest case.
struct Outputs {
    reference: [f32; 9 * 9 * MAX_COUT],
    optimized: [f32; 9 * 9 * MAX_COUT],
}

/// Which values a case draws.
#[derive(Clone, Copy, PartialEq, defmt::Format)]
enum Values {
    /// In [-1, 1).
    Plain,
    /// Mostly plain, with ±0, ±inf, NaN, the largest finite values and random bit patterns.
    Special,
    /// Mostly plain, with subnormals and normals near the smallest whose products or sums
    /// underflow.
    Tiny,
}

impl Values {
    fn draw(rng: &mut Rng) -> Self {
        match rng.next() % 4 {
            0 | 1 => Values::Plain,
            2 => Values::Special,
            _ => Values::Tiny,
        }
    }

    fn value(self, rng: &mut Rng) -> f32 {
        let plain = (rng.next() >> 8) as f32 / (1 << 23) as f32 - 1.0;
        let sign = if rng.next().is_multiple_of(2) { 1.0 } else { -1.0 };
        match (self, rng.next() % 8) {
            (Values::Plain, _) | (_, 1..) => plain,
            (Values::Special, _) => match rng.next() % 6 {
                0 => 0.0 * sign,
                1 => f32::INFINITY * sign,
                2 => f32::NAN,
                3 => f32::MAX * sign,
                _ => f32::from_bits(rng.next()),
            },
            (Values::Tiny, _) => match rng.next() % 4 {
                // Subnormal.
                0 => f32::from_bits(rng.next() % 0x0080_0000) * sign,
                // Products of two of these underflow.
                1 => 1e-20 * plain,
                // Sums of these and the subnormals' neighbours cancel into subnormals.
                2 => f32::MIN_POSITIVE * (1.0 + plain.abs()) * sign,
                _ => f32::MIN_POSITIVE * 2.0 * sign,
            },
        }
    }

    fn fill(self, rng: &mut Rng, out: &mut [f32]) {
        out.iter_mut().for_each(|v| *v = self.value(rng));
    }
}

/// No activation, ReLU, ReLU6 or random bounds.
fn activation(rng: &mut Rng) -> ClampF32 {
    let bound = |rng: &mut Rng| (rng.next() >> 8) as f32 / (1 << 22) as f32 - 2.0;
    match rng.next() % 4 {
        0 => ClampF32::NONE,
        1 => ClampF32 { min: 0.0, max: f32::INFINITY },
        2 => ClampF32 { min: 0.0, max: 6.0 },
        _ => {
            let (a, b) = (bound(rng), bound(rng));
            ClampF32 { min: a.min(b), max: a.max(b) }
        }
    }
}

/// The f16 weights: the f32 ones rounded, or (one case in four) random bit patterns.
fn widen(rng: &mut Rng, w: &[f32], w16: &mut [f16]) {
    let random = rng.next().is_multiple_of(4);
    for (h, &v) in w16.iter_mut().zip(w) {
        *h = if random { f16::from_bits(rng.next() as u16) } else { f16::from_f32(v) };
    }
}

/// Whether `optimized` equals `reference` (NaN where the reference's are), printing the first
/// difference.
fn same(optimized: &[f32], reference: &[f32], what: &str, values: Values) -> bool {
    let outputs = optimized.iter().zip(reference);
    match outputs.enumerate().find(|(_, (o, r))| o.to_bits() != r.to_bits() && !(o.is_nan() && r.is_nan())) {
        None => true,
        Some((i, (o, r))) => {
            defmt::println!(
                "helium {=str} differs ({}): output {=usize} is {=u32:#010x}, reference {=u32:#010x}",
                what,
                values,
                i,
                o.to_bits(),
                r.to_bits()
            );
            false
        }
    }
}

/// What a case checks, for the report of a difference.
#[derive(Clone, Copy)]
struct Case {
    what: &'static str,
    values: Values,
    act: ClampF32,
    /// Whether the Helium kernel runs with `FPSCR.AHP` set (the alternative f16 format, which
    /// MVE's `VCVTB` would follow and the reference does not).
    ahp: bool,
}

/// Runs `f` with `FPSCR.AHP` set as `ahp` says, then puts FPSCR back.
fn with_ahp(ahp: bool, f: impl FnOnce()) {
    let saved: u32;
    // SAFETY: sets one mode bit of FPSCR; no memory.
    unsafe {
        core::arch::asm!(
            "vmrs {saved}, fpscr",
            "orr {t}, {saved}, {ahp}",
            "vmsr fpscr, {t}",
            saved = out(reg) saved,
            ahp = in(reg) u32::from(ahp) << 26,
            t = out(reg) _,
            options(nostack),
        );
    }
    f();
    // SAFETY: restores FPSCR.
    unsafe { core::arch::asm!("vmsr fpscr, {saved}", saved = in(reg) saved, options(nostack)) };
}

/// Runs the reference and Helium fully connected layer with weights `w` and compares them.
fn fully_connected_with<W: Weight>(i: &Inputs, o: &mut Outputs, g: &FcGeometry, w: &[W], case: Case) -> bool {
    let (x, bias, len) = (&i.x[..g.rows * g.depth], &i.bias[..g.units], g.rows * g.units);
    let (reference, optimized) = (&mut o.reference[..len], &mut o.optimized[..len]);
    fully_connected::fully_connected_f32(g, x, w, bias, case.act, reference);
    optimized.fill(1.5);
    with_ahp(case.ahp, || float::fully_connected_f32(g, x, w, bias, case.act, optimized));
    same(optimized, reference, case.what, case.values)
}

/// One fully connected case, f32 then f16 weights; `None` if it does not fit.
fn check_fully_connected(rng: &mut Rng, i: &mut Inputs, o: &mut Outputs) -> Option<bool> {
    let g = FcGeometry { rows: rng.size(1, 6), depth: rng.size(1, MAX_DEPTH), units: rng.size(1, MAX_UNITS) };
    let (x_len, w_len, out_len) = (g.rows * g.depth, g.units * g.depth, g.rows * g.units);
    if x_len > i.x.len() || w_len > i.w.len() || out_len > o.reference.len() {
        return None;
    }
    let values = Values::draw(rng);
    values.fill(rng, &mut i.x[..x_len]);
    values.fill(rng, &mut i.w[..w_len]);
    values.fill(rng, &mut i.bias[..g.units]);
    let ahp = rng.next().is_multiple_of(8);
    let mut case = Case { what: "fully_connected f32", values, act: activation(rng), ahp };
    if !fully_connected_with(i, o, &g, &i.w[..w_len], case) {
        return Some(false);
    }
    widen(rng, &i.w[..w_len], &mut i.w16[..w_len]);
    case.what = "fully_connected f16";
    Some(fully_connected_with(i, o, &g, &i.w16[..w_len], case))
}

/// Runs the reference and Helium convolution with weights `w` and compares them.
fn conv2d_with<W: Weight>(i: &Inputs, o: &mut Outputs, g: &ConvGeometry, w: &[W], case: Case) -> bool {
    let (x, bias, len) = (&i.x[..g.input.len()], &i.bias[..g.output.c], g.output.len());
    let (reference, optimized) = (&mut o.reference[..len], &mut o.optimized[..len]);
    conv2d::conv2d_f32(g, x, w, bias, case.act, reference);
    optimized.fill(1.5);
    with_ahp(case.ahp, || float::conv2d_f32(g, x, w, bias, case.act, optimized));
    same(optimized, reference, case.what, case.values)
}

/// One convolution case (general windows, 1×1 ones strided and padded, or pointwise; first
/// layers of 1–3 channels; a batch of two in one case in four, whose windows the kernel groups
/// across images), f32 then f16 weights; `None` if it does not fit.
fn check_conv2d(rng: &mut Rng, i: &mut Inputs, o: &mut Outputs) -> Option<bool> {
    let kind = rng.next() % 4;
    let (h, w) = (axis(rng, kind == 0)?, axis(rng, kind == 0)?);
    let (h, w) = if kind == 1 {
        let one = |a: [usize; 6]| {
            let padded = a[0] + 2 * a[4].min(1);
            [a[0], 1, a[2], 1, a[4].min(1), (padded - 1) / a[2] + 1]
        };
        (one(h), one(w))
    } else {
        (h, w)
    };
    let cin = if rng.next().is_multiple_of(3) { rng.size(1, 3) } else { rng.size(1, MAX_CIN) };
    let (cout, n) = (rng.size(1, MAX_COUT), if rng.next().is_multiple_of(4) { 2 } else { 1 });
    let g = ConvGeometry {
        input: Nhwc { n, h: h[0], w: w[0], c: cin },
        output: Nhwc { n, h: h[5], w: w[5], c: cout },
        kernel: [h[1], w[1]],
        stride: [h[2], w[2]],
        dilation: [h[3], w[3]],
        pad: [h[4], w[4]],
    };
    let (x_len, w_len, out_len) = (g.input.len(), cout * h[1] * w[1] * cin, g.output.len());
    if x_len > i.x.len() || w_len > i.w.len() || out_len > o.reference.len() {
        return None;
    }
    let values = Values::draw(rng);
    values.fill(rng, &mut i.x[..x_len]);
    values.fill(rng, &mut i.w[..w_len]);
    values.fill(rng, &mut i.bias[..cout]);
    let ahp = rng.next().is_multiple_of(8);
    let mut case = Case { what: "conv2d f32", values, act: activation(rng), ahp };
    let equal = conv2d_with(i, o, &g, &i.w[..w_len], case) && {
        widen(rng, &i.w[..w_len], &mut i.w16[..w_len]);
        case.what = "conv2d f16";
        conv2d_with(i, o, &g, &i.w16[..w_len], case)
    };
    if !equal {
        defmt::println!(
            "input {=usize}x{=usize}x{=usize} output {=usize}x{=usize}x{=usize} kernel {=usize}x{=usize} stride {=usize},{=usize} dilation {=usize},{=usize} pad {=usize},{=usize}",
            g.input.h, g.input.w, cin, g.output.h, g.output.w, cout, g.kernel[0], g.kernel[1],
            g.stride[0], g.stride[1], g.dilation[0], g.dilation[1], g.pad[0], g.pad[1]
        );
    }
    Some(equal)
}

/// Runs every f32 check; exits with status 1 at the first difference.
pub fn check(rng: &mut Rng) {
    let i = cortex_m::singleton!(: Inputs = Inputs {
        x: [0.0; 9 * 9 * MAX_CIN],
        w: [0.0; MAX_WEIGHTS],
        w16: [f16::ZERO; MAX_WEIGHTS],
        bias: [0.0; MAX_UNITS],
    })
    .expect("check runs once");
    let o = cortex_m::singleton!(: Outputs = Outputs {
        reference: [0.0; 9 * 9 * MAX_COUT],
        optimized: [0.0; 9 * 9 * MAX_COUT],
    })
    .expect("check runs once");
    let mut checked = [0u32; 2];
    for (kernel, checked) in checked.iter_mut().enumerate() {
        for _ in 0..CASES {
            let outcome =
                if kernel == 0 { check_fully_connected(rng, i, o) } else { check_conv2d(rng, i, o) };
            match outcome {
                Some(true) => *checked += 1,
                Some(false) => exit(false),
                None => {}
            }
        }
    }
    defmt::println!(
        "kernel-check: Helium f32 outputs (f32 and f16 weights) equal to the reference in {=u32} fully_connected and {=u32} conv2d random cases",
        checked[0],
        checked[1]
    );
}
