//! Average pooling cases for the DSP kernel (`cortex_m_dsp/pool.rs`): windows up to the whole
//! input (as global pooling has, up to 256 cells and past them), every stride and padding
//! (windows partly or wholly in the padding), channels in fours and not, batches of two, values
//! at the int8 extremes (the 16-bit lane sums' limits) and activation bounds.

use super::Rng;
use ember::kernels::{cortex_m_dsp, pool};
use ember::kernels::{ClampI8, ConvGeometry, Nhwc};
use ember_bench::firmware::exit;

/// Random cases drawn (those that do not fit the buffers are skipped and not counted).
const CASES: u32 = 1500;
/// Largest input and output bytes.
const MAX_X: usize = 4096;
const MAX_OUT: usize = 1024;

/// One case: `Some(equal)`, or `None` if it does not fit the buffers.
fn check_case(
    rng: &mut Rng,
    x: &mut [i8; MAX_X],
    reference: &mut [i8],
    optimized: &mut [i8],
) -> Option<bool> {
    let c = if rng.next().is_multiple_of(4) { rng.size(1, 12) } else { 4 * rng.size(1, 6) };
    let (n, h, w) = (rng.size(1, 2), rng.size(1, 20), rng.size(1, 20));
    let global = rng.next().is_multiple_of(3);
    let kernel = if global { [h, w] } else { [rng.size(1, h.min(6)), rng.size(1, w.min(6))] };
    let stride = [rng.size(1, 3), rng.size(1, 3)];
    let pad = [rng.size(0, kernel[0] - 1), rng.size(0, kernel[1] - 1)];
    let out = |size: usize, k: usize, s: usize, p: usize| (size + 2 * p - k) / s + 1;
    let (oh, ow) = (out(h, kernel[0], stride[0], pad[0]), out(w, kernel[1], stride[1], pad[1]));
    let input = Nhwc { n, h, w, c };
    let output = Nhwc { n, h: oh, w: ow, c };
    if input.len() > MAX_X || output.len() > MAX_OUT {
        return None;
    }
    let g = ConvGeometry { input, output, kernel, stride, dilation: [1, 1], pad };
    let x = &mut x[..input.len()];
    match rng.next() % 4 {
        0 => x.fill(-128),
        1 => x.fill(127),
        _ => rng.fill(x, -128, 127),
    }
    let min = rng.range(-128, 127);
    let act =
        if rng.next().is_multiple_of(2) { ClampI8::FULL } else { ClampI8 { min, max: rng.range(min, 127) } };
    let (reference, optimized) = (&mut reference[..output.len()], &mut optimized[..output.len()]);
    pool::average_pool_i8(&g, x, act, reference);
    optimized.fill(0x55);
    cortex_m_dsp::average_pool_i8(&g, x, act, optimized);
    let equal = reference == optimized;
    if !equal {
        defmt::println!(
            "average_pool differs: {=usize}x{=usize}x{=usize}x{=usize}, window {=usize}x{=usize}, stride {=usize} {=usize}, pad {=usize} {=usize}",
            n, h, w, c, kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1]
        );
    }
    Some(equal)
}

/// Runs [`CASES`] random cases; exits with status 1 at the first difference.
pub fn check(rng: &mut Rng) {
    let (x, reference, optimized) = cortex_m::singleton!(: ([i8; MAX_X], [i8; MAX_OUT], [i8; MAX_OUT]) =
        ([0; MAX_X], [0; MAX_OUT], [0; MAX_OUT]))
    .expect("check runs once");
    let mut checked = 0u32;
    for _ in 0..CASES {
        match check_case(rng, x, reference, optimized) {
            Some(true) => checked += 1,
            Some(false) => exit(false),
            None => {}
        }
    }
    defmt::println!(
        "kernel-check: every output equal to the reference in {=u32} average_pool random cases",
        checked
    );
}
