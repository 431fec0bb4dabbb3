//! The DSP kernels for filters laid out at export (`cortex_m_dsp::conv2d_i8_laid_out`,
//! `fully_connected_i8_laid_out`; the depthwise layouts are checked in `depthwise.rs`, with the
//! [`pack`] here) against the reference kernels reading the same bytes, in both filter layouts: odd filter counts (a last filter paired with zeros), depths not a multiple of 4
//! (zero-padded groups), channels in fours and not, 1×1 convolutions with strides, padding,
//! per-tensor and per-channel requantization on and off the short output stage, fully connected
//! layers of one row and of several. The reference laid-out kernels are also checked against
//! the standard one on the filters before packing (which checks [`pack`] too).

use super::{biases, corner_quantization, extreme, quantization, PlannedScratch, Rng};
use ember::format::layout::WeightLayout;
use ember::kernels::scratch::{Scratch, ScratchOp, Target};
use ember::kernels::{conv2d, cortex_m_dsp, fully_connected};
use ember::kernels::{ConvGeometry, FcGeometry, LaidOut, Nhwc};
use ember::quant::Requant;
use ember_bench::firmware::exit;

/// Random cases drawn per kernel and layout (those that do not fit the buffers are skipped and
/// not counted).
const CASES: u32 = 1000;
/// Largest filter count, input, standard weights, laid-out weights and output.
const MAX_COUT: usize = 13;
const MAX_X: usize = 3300;
const MAX_W: usize = 9000;
const MAX_LAID: usize = 2 * 8 * 7 * 190;
const MAX_OUT: usize = 1100;

/// The kernels' const parameters of the DSP layouts.
const PAIRS: u8 = WeightLayout::DspPairs as u8;
const WIDE: u8 = WeightLayout::DspPairsWide as u8;

/// Laid-out weights: 4-aligned, as the format's 16-aligned constants are.
#[repr(C, align(16))]
struct Aligned([i8; MAX_LAID]);

/// Buffers for the largest case.
struct Buffers {
    scratch: PlannedScratch,
    x: [i8; MAX_X],
    w: [i8; MAX_W],
    laid: Aligned,
    bias: [i32; MAX_COUT],
    requant: [Requant; MAX_COUT],
    standard: [i8; MAX_OUT],
    reference: [i8; MAX_OUT],
    optimized: [i8; MAX_OUT],
}

/// Writes `filters` standard filters `w` of `depth` weights to `out` in `layout`, as
/// `WeightLayout`'s documentation gives the order (its own `pack` is compiled with `std` only):
/// pairs `p` of filters (an odd last one paired with zeros), each filter's depth in groups `g`
/// of four (the last padded with zeros); per pair and group, filter `2p`'s group then filter
/// `2p + 1`'s: four bytes (`DspPairs`), or the weights as little-endian i16 lanes `(k, k + 2)`
/// then `(k + 1, k + 3)` (`DspPairsWide`); the depthwise layouts as [`pack_depthwise`] writes
/// them. Returns the bytes written, `None` if they do not fit.
pub fn pack(layout: WeightLayout, w: &[i8], filters: usize, depth: usize, out: &mut [i8]) -> Option<usize> {
    let len = layout.byte_len(filters, depth)?;
    let out = out.get_mut(..len)?;
    out.fill(0);
    if layout.is_depthwise() {
        pack_depthwise(w, depth / 9, layout == WeightLayout::DspDepthwiseColumns, out);
        return Some(len);
    }
    let groups = depth.div_ceil(4);
    for f in 0..filters {
        for k in 0..depth {
            let v = w[f * depth + k];
            // The (pair, group, filter of the pair)'s four weights.
            let unit = ((f / 2) * groups + k / 4) * 2 + f % 2;
            let j = k % 4;
            match layout {
                WeightLayout::Standard => out[f * depth + k] = v,
                WeightLayout::DspPairs => out[unit * 4 + j] = v,
                WeightLayout::DspPairsWide => {
                    // Lane j of (k, k + 2, k + 1, k + 3), two bytes each.
                    let lane = unit * 4 + (j % 2) * 2 + j / 2;
                    let [lo, hi] = i16::from(v).to_le_bytes();
                    (out[2 * lane], out[2 * lane + 1]) = (lo as i8, hi as i8);
                }
                // Written above.
                WeightLayout::DspDepthwiseRows | WeightLayout::DspDepthwiseColumns => {}
            }
        }
    }
    Some(len)
}

/// Writes 3×3 depthwise weights `w` (`[3, 3, c]`, `c` a multiple of 4, standard layout) to
/// `out` (`24 × c` bytes) as the DSP 3×3 path builds each quad's words from them
/// (`three_by_three::pair_taps`): per quad of channels and window row `r` (the weights' row `r`,
/// their column `r` if `columns`), with `t0, t1, t2` that window row's taps, eight words of two
/// little-endian i16 lanes, low first, each weight doubled: `(t0, t1)` of channels 0 and 1,
/// `(t1, t2)` of channels 0 and 1, then the same of channels 2 and 3.
fn pack_depthwise(w: &[i8], c: usize, columns: bool, out: &mut [i8]) {
    // Per word: the channel of the quad and its two taps.
    const WORDS: [(usize, usize, usize); 8] =
        [(0, 0, 1), (1, 0, 1), (0, 1, 2), (1, 1, 2), (2, 0, 1), (3, 0, 1), (2, 1, 2), (3, 1, 2)];
    for quad in 0..c / 4 {
        for r in 0..3 {
            let tap = |k: usize, ch: usize| {
                let t = if columns { 3 * k + r } else { 3 * r + k };
                (2 * i16::from(w[t * c + 4 * quad + ch])).to_le_bytes()
            };
            for (i, &(ch, a, b)) in WORDS.iter().enumerate() {
                let word = &mut out[(quad * 3 + r) * 32 + 4 * i..][..4];
                for (o, v) in word.iter_mut().zip(tap(a, ch).into_iter().chain(tap(b, ch))) {
                    *o = v as i8;
                }
            }
        }
    }
}

/// One conv2d axis: (input, kernel, stride, dilation, pad before, output), or `None` if the
/// window does not fit the padded input; 1×1 windows take strides up to 3.
fn axis(rng: &mut Rng, one_by_one: bool) -> Option<[usize; 6]> {
    let input = rng.size(1, 9);
    let (kernel, stride, dilation) =
        if one_by_one { (1, rng.size(1, 3), 1) } else { (rng.size(1, 4), rng.size(1, 2), rng.size(1, 2)) };
    let span = dilation * (kernel - 1) + 1;
    // Padding smaller than the window, as the loader requires (none for a 1×1 window).
    let (before, after) = (rng.size(0, span - 1), rng.size(0, span - 1));
    let padded = input + before + after;
    (padded >= span).then(|| [input, kernel, stride, dilation, before, (padded - span) / stride + 1])
}

/// Which kernel a case checks.
#[derive(Clone, Copy, defmt::Format)]
enum Kind {
    Conv2d,
    FullyConnected,
}

/// Checks one random case of `kind` in `layout`: `Some(equal)` (and nothing written past the
/// output), or `None` when it does not fit the buffers.
fn check_case(rng: &mut Rng, b: &mut Buffers, kind: Kind, layout: WeightLayout) -> Option<bool> {
    // Filter counts: odd ones in half the cases.
    let count = match rng.next() % 4 {
        0 => 2 * rng.size(1, MAX_COUT / 2),
        1 => 2 * rng.size(0, MAX_COUT / 2) + 1,
        2 => rng.size(1, 4),
        _ => rng.size(1, MAX_COUT),
    };
    let (conv, fc) = match kind {
        Kind::Conv2d => {
            let one_by_one = rng.next().is_multiple_of(3);
            let (h, w) = (axis(rng, one_by_one)?, axis(rng, one_by_one)?);
            // Channels in fours in half the cases; 1×1 windows up to 40 channels (several
            // passes of the unrolled loop).
            let most = if one_by_one { 40 } else { 12 };
            let cin =
                if rng.next().is_multiple_of(2) { 4 * rng.size(1, most / 4) } else { rng.size(1, most) };
            let g = ConvGeometry {
                input: Nhwc { n: 1, h: h[0], w: w[0], c: cin },
                output: Nhwc { n: 1, h: h[5], w: w[5], c: count },
                kernel: [h[1], w[1]],
                stride: [h[2], w[2]],
                dilation: [h[3], w[3]],
                pad: [h[4], w[4]],
            };
            (Some(g), None)
        }
        Kind::FullyConnected => {
            let depth = match rng.next() % 8 {
                0 => rng.size(1, 7),
                1 => rng.size(600, 680),
                _ => rng.size(1, 200),
            };
            let rows = if rng.next().is_multiple_of(2) { 1 } else { rng.size(2, 4) };
            (None, Some(FcGeometry { rows, depth, units: count }))
        }
    };
    let (depth, x_len, out_len) = match (conv, fc) {
        (Some(g), _) => (g.kernel[0] * g.kernel[1] * g.input.c, g.input.len(), g.output.len()),
        (_, Some(g)) => (g.depth, g.rows * g.depth, g.rows * g.units),
        _ => return None,
    };
    let w_len = count * depth;
    if x_len > MAX_X || w_len > MAX_W || out_len > MAX_OUT {
        return None;
    }
    rng.fill(&mut b.x[..x_len], -128, 127);
    rng.fill(&mut b.w[..w_len], -127, 127);
    let laid_len = pack(layout, &b.w[..w_len], count, depth, &mut b.laid.0)?;
    // Now and then the output stage's corners (extreme biases, every shift).
    let q = if rng.next().is_multiple_of(8) {
        b.bias[..count].iter_mut().for_each(|v| *v = extreme(rng));
        corner_quantization(rng, &mut b.requant, count)
    } else {
        biases(rng, &mut b.bias[..count]);
        quantization(rng, &mut b.requant, count)
    };
    let (x, wt, bias) = (&b.x[..x_len], &b.w[..w_len], &b.bias[..count]);
    let laid = LaidOut { bytes: &b.laid.0[..laid_len], layout, depth };
    // The bytes after the output must stay as they are.
    b.optimized[out_len..].fill(0x5a);
    let (standard, reference) = (&mut b.standard[..out_len], &mut b.reference[..out_len]);
    let optimized = &mut b.optimized[..out_len];
    let took = match (conv, fc) {
        (Some(g), _) => {
            conv2d::conv2d_i8(&g, &q, x, wt, bias, standard);
            conv2d::conv2d_i8_laid_out(&g, &q, x, laid, bias, reference);
            let run = |s: Scratch| match layout {
                WeightLayout::Standard => cortex_m_dsp::conv2d_i8(&g, &q, x, laid.bytes, bias, optimized, s),
                WeightLayout::DspPairs => {
                    cortex_m_dsp::conv2d_i8_laid_out::<PAIRS>(&g, &q, x, laid.bytes, bias, optimized, s)
                }
                WeightLayout::DspPairsWide => {
                    cortex_m_dsp::conv2d_i8_laid_out::<WIDE>(&g, &q, x, laid.bytes, bias, optimized, s)
                }
                _ => unreachable!("filter layouts only (depthwise ones: depthwise.rs)"),
            };
            b.scratch.run(Target::CortexMDsp, ScratchOp::Conv2dI8(g), "conv2d_i8_laid_out", run)?
        }
        (_, Some(g)) => {
            fully_connected::fully_connected_i8(&g, &q, x, wt, bias, standard);
            fully_connected::fully_connected_i8_laid_out(&g, &q, x, laid, bias, reference);
            let run = |s: Scratch| {
                let w = laid.bytes;
                match layout {
                    WeightLayout::Standard => {
                        cortex_m_dsp::fully_connected_i8(&g, &q, x, w, bias, optimized, s)
                    }
                    WeightLayout::DspPairs => {
                        cortex_m_dsp::fully_connected_i8_laid_out::<PAIRS>(&g, &q, x, w, bias, optimized, s)
                    }
                    WeightLayout::DspPairsWide => {
                        cortex_m_dsp::fully_connected_i8_laid_out::<WIDE>(&g, &q, x, w, bias, optimized, s)
                    }
                    _ => unreachable!("filter layouts only (depthwise ones: depthwise.rs)"),
                }
            };
            let op = ScratchOp::FullyConnectedI8(g);
            b.scratch.run(Target::CortexMDsp, op, "fully_connected_i8_laid_out", run)?
        }
        _ => return None,
    };
    let packed = b.standard[..out_len] == b.reference[..out_len];
    let equal = took
        && packed
        && b.reference[..out_len] == b.optimized[..out_len]
        && b.optimized[out_len..].iter().all(|&v| v == 0x5a);
    if !equal {
        defmt::println!(
            "{} in {=str} differs{=str}: {=usize} filters of {=usize}, output {=usize} bytes, zero points {=i32}/{=i32}, {=usize} factors",
            kind,
            layout.name(),
            if packed { "" } else { " (the reference kernels too: packing)" },
            count,
            depth,
            out_len,
            q.input_zero_point,
            q.output_zero_point,
            q.requant.len()
        );
        if let Some(g) = conv {
            defmt::println!(
                "  input {=usize}x{=usize}x{=usize} kernel {=usize}x{=usize} stride {=usize},{=usize} dilation {=usize},{=usize} pad {=usize},{=usize}",
                g.input.h, g.input.w, g.input.c, g.kernel[0], g.kernel[1], g.stride[0], g.stride[1],
                g.dilation[0], g.dilation[1], g.pad[0], g.pad[1]
            );
        }
        if let Some(i) = (0..out_len).find(|&i| b.reference[i] != b.optimized[i]) {
            defmt::println!(
                "  first at output {=usize}: {=i8}, the kernel {=i8}",
                i,
                b.reference[i],
                b.optimized[i]
            );
        }
        if let Some(g) = fc {
            defmt::println!("  rows {=usize}", g.rows);
        }
    }
    Some(equal)
}

/// Runs [`CASES`] cases per kernel and layout and prints how many were checked, or exits with
/// status 1 at the first difference.
pub fn check(rng: &mut Rng) {
    let b = cortex_m::singleton!(: Buffers = Buffers {
        scratch: PlannedScratch::new(),
        x: [0; MAX_X],
        w: [0; MAX_W],
        laid: Aligned([0; MAX_LAID]),
        bias: [0; MAX_COUT],
        requant: [Requant { multiplier: 0, shift: 0 }; MAX_COUT],
        standard: [0; MAX_OUT],
        reference: [0; MAX_OUT],
        optimized: [0; MAX_OUT],
    })
    .expect("check runs once");
    let mut checked = [0u32; 4];
    let runs = [
        (Kind::Conv2d, WeightLayout::DspPairs),
        (Kind::Conv2d, WeightLayout::DspPairsWide),
        (Kind::FullyConnected, WeightLayout::DspPairs),
        (Kind::FullyConnected, WeightLayout::DspPairsWide),
    ];
    for (n, (kind, layout)) in checked.iter_mut().zip(runs) {
        for _ in 0..CASES {
            match check_case(rng, b, kind, layout) {
                Some(true) => *n += 1,
                Some(false) => exit(false),
                None => {}
            }
        }
    }
    defmt::println!(
        "kernel-check: every output equal to the reference in {=u32} conv2d dsp-pairs, {=u32} conv2d dsp-pairs-wide, {=u32} fully_connected dsp-pairs and {=u32} fully_connected dsp-pairs-wide laid-out random cases",
        checked[0],
        checked[1],
        checked[2],
        checked[3]
    );
}
