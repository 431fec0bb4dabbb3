//! Test oracle for the windowed and weighted kernels: straightforward f64 implementations that
//! walk output positions and test every tap's signed input coordinate explicitly, int8
//! (de)quantization helpers, comparisons and proptest strategies.

use super::{ClampI8, ConvGeometry, FcGeometry, Int8Params, Nhwc};
use crate::quant::{Requant, Rounding};
use proptest::prelude::*;

/// Index of `(b, y, x, c)` in an NHWC tensor of `shape`, or `None` when `(y, x)` is outside.
fn index(shape: Nhwc, b: usize, y: i64, x: i64, c: usize) -> Option<usize> {
    let inside = (0..shape.h as i64).contains(&y) && (0..shape.w as i64).contains(&x);
    inside.then(|| ((b * shape.h + y as usize) * shape.w + x as usize) * shape.c + c)
}

/// Signed input coordinate of tap `k` of output coordinate `o` along `axis`.
fn coordinate(g: &ConvGeometry, axis: usize, o: usize, k: usize) -> i64 {
    (o * g.stride[axis] + k * g.dilation[axis]) as i64 - g.pad[axis] as i64
}

/// Calls `f(cells)` for every output pixel in NHWC order; `cells(c)` lists `(ky, kx, input
/// index)` of channel `c` for every window cell inside the image.
fn windows(g: &ConvGeometry, mut f: impl FnMut(&dyn Fn(usize) -> Vec<(usize, usize, usize)>)) {
    for b in 0..g.output.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                let cells = |c: usize| {
                    let mut cells = Vec::new();
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            let (iy, ix) = (coordinate(g, 0, oy, ky), coordinate(g, 1, ox, kx));
                            if let Some(i) = index(g.input, b, iy, ix, c) {
                                cells.push((ky, kx, i));
                            }
                        }
                    }
                    cells
                };
                f(&cells);
            }
        }
    }
}

/// Reference convolution (bias added first); `depthwise` selects `[1, KH, KW, Cout]` weights
/// with output channel `oc` reading input channel `oc / (Cout / Cin)`, else `[Cout, KH, KW, Cin]`.
pub(crate) fn conv(g: &ConvGeometry, depthwise: bool, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let (cin, cout, [kh, kw]) = (g.input.c, g.output.c, g.kernel);
    let mut out = Vec::with_capacity(g.output.len());
    windows(g, |cells| {
        for (oc, &b) in bias.iter().enumerate() {
            let mut acc = b;
            if depthwise {
                for (ky, kx, i) in cells(oc / (cout / cin)) {
                    acc += x[i] * w[(ky * kw + kx) * cout + oc];
                }
            } else {
                for ic in 0..cin {
                    for (ky, kx, i) in cells(ic) {
                        acc += x[i] * w[((oc * kh + ky) * kw + kx) * cin + ic];
                    }
                }
            }
            out.push(acc);
        }
    });
    out
}

/// Reference pooling: the maximum or mean of the in-image cells of each window, `None` for a
/// window without any.
pub(crate) fn pool(g: &ConvGeometry, max: bool, x: &[f64]) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(g.output.len());
    windows(g, |cells| {
        for c in 0..g.output.c {
            let values: Vec<f64> = cells(c).into_iter().map(|(_, _, i)| x[i]).collect();
            out.push(match (values.is_empty(), max) {
                (true, _) => None,
                (false, true) => values.iter().copied().reduce(f64::max),
                (false, false) => Some(values.iter().sum::<f64>() / values.len() as f64),
            });
        }
    });
    out
}

/// Reference fully connected layer.
pub(crate) fn fully_connected(g: &FcGeometry, x: &[f64], w: &[f64], bias: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(g.rows * g.units);
    for r in 0..g.rows {
        for u in 0..g.units {
            let dot: f64 = (0..g.depth).map(|d| x[r * g.depth + d] * w[u * g.depth + d]).sum();
            out.push(bias[u] + dot);
        }
    }
    out
}

/// Reference mean over H and W.
pub(crate) fn mean(shape: Nhwc, x: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(shape.n * shape.c);
    for b in 0..shape.n {
        for c in 0..shape.c {
            let values = (0..shape.h as i64)
                .flat_map(|y| (0..shape.w as i64).map(move |xx| (y, xx)))
                .map(|(y, xx)| x[index(shape, b, y, xx, c).unwrap()]);
            out.push(values.sum::<f64>() / (shape.h * shape.w) as f64);
        }
    }
    out
}

/// Real-valued quantization of an int8 weighted op (symmetric weights).
#[derive(Clone, Debug)]
pub(crate) struct Quant {
    /// Input scale.
    pub in_scale: f64,
    /// Input zero point.
    pub in_zp: i32,
    /// Weight scale per output channel, or a single per-tensor scale.
    pub w_scales: Vec<f64>,
    /// Output scale.
    pub out_scale: f64,
    /// Output zero point.
    pub out_zp: i32,
    /// Fused activation bounds.
    pub act: ClampI8,
}

impl Quant {
    /// Weight scale of output channel `c`.
    fn w_scale(&self, c: usize) -> f64 {
        self.w_scales[if self.w_scales.len() == 1 { 0 } else { c }]
    }

    /// The kernels' requantization factors, one per weight scale.
    pub(crate) fn requant(&self) -> Vec<Requant> {
        self.w_scales.iter().map(|ws| Requant::from_f64(self.in_scale * ws / self.out_scale)).collect()
    }

    /// The kernels' int8 parameters over `requant`.
    pub(crate) fn params<'a>(&self, requant: &'a [Requant]) -> Int8Params<'a> {
        Int8Params {
            input_zero_point: self.in_zp,
            output_zero_point: self.out_zp,
            requant,
            act: self.act,
            rounding: Rounding::Double,
        }
    }

    /// Dequantized input.
    pub(crate) fn input(&self, x: &[i8]) -> Vec<f64> {
        x.iter().map(|&v| (v as i32 - self.in_zp) as f64 * self.in_scale).collect()
    }

    /// Dequantized weights, `channel(i)` being the output channel of weight `i`.
    pub(crate) fn weights(&self, w: &[i8], channel: impl Fn(usize) -> usize) -> Vec<f64> {
        w.iter().enumerate().map(|(i, &v)| v as f64 * self.w_scale(channel(i))).collect()
    }

    /// Dequantized bias (scale `in_scale × w_scale[c]`).
    pub(crate) fn bias(&self, b: &[i32]) -> Vec<f64> {
        b.iter().enumerate().map(|(c, &v)| v as f64 * self.in_scale * self.w_scale(c)).collect()
    }

    /// Quantizes real outputs: round half away from zero, add the zero point, clamp.
    pub(crate) fn output(&self, y: &[f64]) -> Vec<i32> {
        y.iter()
            .map(|v| ((v / self.out_scale).round() as i32 + self.out_zp).clamp(self.act.min, self.act.max))
            .collect()
    }
}

/// Asserts `actual` is within 1e-5 relative (absolute below 1) of `expected`.
pub(crate) fn assert_close(actual: &[f32], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len());
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a as f64 - e).abs() <= 1e-5 * e.abs().max(1.0),
            "element {i}: {a} vs {e}\n{actual:?}\n{expected:?}"
        );
    }
}

/// Asserts every element of `actual` is within `lsb` of `expected`.
pub(crate) fn assert_within(actual: &[i8], expected: &[i32], lsb: i32) {
    assert_eq!(actual.len(), expected.len());
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!((a as i32 - e).abs() <= lsb, "element {i}: {a} vs {e}\n{actual:?}\n{expected:?}");
    }
}

/// Converts to f64.
pub(crate) fn f64s<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
    v.iter().map(|&x| x.into()).collect()
}

/// Window geometries over small images with one channel: kernel and stride 1..=3 and 1..=2,
/// dilation up to `max_dilation`, padding 0..=2 per side (below the window size when
/// `pad_below_kernel`, as pools need for every window to hold an image cell).
pub(crate) fn geometry(max_dilation: usize, pad_below_kernel: bool) -> impl Strategy<Value = ConvGeometry> {
    let axis = (1..=5usize, 1..=3usize, 1..=2usize, 1..=max_dilation, 0..=2usize, 0..=2usize);
    // Output size of one axis, or `None` when the window does not fit the padded input.
    let out =
        move |(size, kernel, stride, dilation, before, after): (usize, usize, usize, usize, usize, usize)| {
            if pad_below_kernel && (before >= kernel || after >= kernel) {
                return None;
            }
            Some((size + before + after).checked_sub(dilation * (kernel - 1) + 1)? / stride + 1)
        };
    (1..=2usize, axis.clone(), axis).prop_filter_map(
        "window larger than the padded input",
        move |(n, y, x)| {
            Some(ConvGeometry {
                input: Nhwc { n, h: y.0, w: x.0, c: 1 },
                output: Nhwc { n, h: out(y)?, w: out(x)?, c: 1 },
                kernel: [y.1, x.1],
                stride: [y.2, x.2],
                dilation: [y.3, x.3],
                pad: [y.4, x.4],
            })
        },
    )
}

/// `len` f32 values in [-1, 1).
pub(crate) fn f32s(len: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-1.0f32..1.0, len)
}

/// `len` arbitrary int8 values.
pub(crate) fn i8s(len: usize) -> impl Strategy<Value = Vec<i8>> {
    proptest::collection::vec(any::<i8>(), len)
}

/// `len` symmetric int8 weights (-127..=127).
pub(crate) fn weights_i8(len: usize) -> impl Strategy<Value = Vec<i8>> {
    proptest::collection::vec(-127i8..=127, len)
}

/// Quantization with zero points within ±20, per-channel (`channels` scales) or per-tensor
/// weights and a scale ratio that keeps most outputs inside the int8 range.
pub(crate) fn quant(channels: usize) -> impl Strategy<Value = Quant> {
    let w_scales = prop_oneof![
        proptest::collection::vec(0.002f64..0.01, 1),
        proptest::collection::vec(0.002f64..0.01, channels),
    ];
    (0.01f64..0.1, -20i32..=20, w_scales, 0.005f64..0.05, -20i32..=20).prop_map(
        |(in_scale, in_zp, w_scales, out_scale, out_zp)| Quant {
            in_scale,
            in_zp,
            w_scales,
            out_scale,
            out_zp,
            act: ClampI8::FULL,
        },
    )
}
