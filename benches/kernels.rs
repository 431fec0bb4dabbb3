//! Throughput of each int8 kernel the host runs (`ember::kernels::selected`: NEON/SDOT on
//! aarch64, the reference kernels elsewhere) and of the f32 kernels, over layer shapes of the
//! MLPerf Tiny models. Criterion's throughput is in MACs per second ("elem/s").
//!
//! `cargo bench --bench kernels`; results go to docs/BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember::kernels::add::{add_i8, AddParams};
use ember::kernels::conv2d::conv2d_f32;
use ember::kernels::depthwise_conv2d::depthwise_conv2d_f32;
use ember::kernels::fully_connected::fully_connected_f32;
use ember::kernels::scratch::{Scratch, ScratchOp, Target};
use ember::kernels::selected::{conv2d_i8, depthwise_conv2d_i8, fully_connected_i8};
use ember::kernels::{ClampF32, ClampI8, ConvGeometry, FcGeometry, Input, Int8Params, Nhwc};
use ember::quant::{Requant, Rounding};
use rand::{RngExt, SeedableRng};

/// A convolution layer: name, input height, width, channels, output channels (depthwise: the
/// same as the input's), kernel, stride, padding (top, left).
struct Conv {
    name: &'static str,
    input: [usize; 3],
    cout: usize,
    kernel: [usize; 2],
    stride: usize,
    pad: [usize; 2],
}

const CONVS: &[Conv] = &[
    Conv {
        name: "kws_first_10x4s2_1to64",
        input: [49, 10, 1],
        cout: 64,
        kernel: [10, 4],
        stride: 2,
        pad: [4, 1],
    },
    Conv {
        name: "vww_first_3x3s2_3to8",
        input: [96, 96, 3],
        cout: 8,
        kernel: [3, 3],
        stride: 2,
        pad: [0, 0],
    },
    Conv { name: "ic_3x3s1_16to16", input: [32, 32, 16], cout: 16, kernel: [3, 3], stride: 1, pad: [1, 1] },
    Conv { name: "kws_1x1_64to64", input: [25, 5, 64], cout: 64, kernel: [1, 1], stride: 1, pad: [0, 0] },
    Conv { name: "vww_1x1_64to128", input: [12, 12, 64], cout: 128, kernel: [1, 1], stride: 1, pad: [0, 0] },
];

const DEPTHWISE: &[Conv] = &[
    Conv { name: "kws_dw_3x3s1_64", input: [25, 5, 64], cout: 64, kernel: [3, 3], stride: 1, pad: [1, 1] },
    Conv { name: "vww_dw_3x3s2_32", input: [48, 48, 32], cout: 32, kernel: [3, 3], stride: 2, pad: [0, 0] },
];

/// Fully connected layers: name, inputs, outputs.
const FCS: &[(&str, usize, usize)] =
    &[("ad_640to128", 640, 128), ("ad_128to128", 128, 128), ("kws_64to12", 64, 12)];

impl Conv {
    fn geometry(&self) -> ConvGeometry {
        let [h, w, c] = self.input;
        let out = |n: usize, k: usize, pad: usize| (n + 2 * pad - k) / self.stride + 1;
        ConvGeometry {
            input: Nhwc { n: 1, h, w, c },
            output: Nhwc {
                n: 1,
                h: out(h, self.kernel[0], self.pad[0]),
                w: out(w, self.kernel[1], self.pad[1]),
                c: self.cout,
            },
            kernel: self.kernel,
            stride: [self.stride; 2],
            dilation: [1, 1],
            pad: self.pad,
        }
    }
}

fn random_i8(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.random_range(-127..=127)).collect()
}

fn random_f32(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..=1.0)).collect()
}

/// Per-channel requantization as a calibrated layer has it.
fn requant(channels: usize) -> Vec<Requant> {
    (0..channels).map(|c| Requant::from_f64(0.0008 + 0.0001 * (c % 7) as f64)).collect()
}

fn params(requant: &[Requant]) -> Int8Params<'_> {
    Int8Params {
        input_zero_point: -3,
        output_zero_point: 5,
        requant,
        act: ClampI8::FULL,
        rounding: Rounding::Double,
    }
}

fn kernels(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (kind, layers, depthwise) in [("conv2d", CONVS, false), ("depthwise_conv2d", DEPTHWISE, true)] {
        let mut group = c.benchmark_group(kind);
        for layer in layers {
            let g = layer.geometry();
            let [kh, kw] = layer.kernel;
            let weights = if depthwise { kh * kw * g.output.c } else { g.output.c * kh * kw * g.input.c };
            let macs = g.output.len() * if depthwise { kh * kw } else { kh * kw * g.input.c };
            group.throughput(Throughput::Elements(macs as u64));
            let (x, w) = (random_i8(&mut rng, g.input.len()), random_i8(&mut rng, weights));
            let bias: Vec<i32> = (0..g.output.c).map(|c| c as i32 * 37 - 500).collect();
            let rq = requant(g.output.c);
            let mut out = vec![0i8; g.output.len()];
            let op = if depthwise { ScratchOp::DepthwiseI8(g) } else { ScratchOp::Conv2dI8(g) };
            let mut scratch = vec![0; Target::SELECTED.bytes(&op)];
            group.bench_function(format!("{}/int8", layer.name), |b| {
                b.iter(|| match depthwise {
                    true => depthwise_conv2d_i8(
                        &g,
                        &params(&rq),
                        &x,
                        &w,
                        &bias,
                        &mut out,
                        Scratch::new(&mut scratch),
                    ),
                    false => conv2d_i8(&g, &params(&rq), &x, &w, &bias, &mut out, Scratch::new(&mut scratch)),
                })
            });
            let (x, w, bias) = (
                random_f32(&mut rng, x.len()),
                random_f32(&mut rng, w.len()),
                random_f32(&mut rng, bias.len()),
            );
            let mut out = vec![0f32; out.len()];
            let kernel = if depthwise { depthwise_conv2d_f32::<f32> } else { conv2d_f32::<f32> };
            group.bench_function(format!("{}/f32", layer.name), |b| {
                b.iter(|| kernel(&g, &x, &w, &bias, ClampF32::NONE, &mut out))
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("fully_connected");
    for &(name, depth, units) in FCS {
        let g = FcGeometry { rows: 1, depth, units };
        group.throughput(Throughput::Elements((depth * units) as u64));
        let (x, w) = (random_i8(&mut rng, depth), random_i8(&mut rng, depth * units));
        let bias: Vec<i32> = (0..units).map(|c| c as i32 * 11 - 300).collect();
        let rq = requant(units);
        let mut out = vec![0i8; units];
        let mut scratch = vec![0; Target::SELECTED.bytes(&ScratchOp::FullyConnectedI8(g))];
        group.bench_function(format!("{name}/int8"), |b| {
            b.iter(|| {
                fully_connected_i8(&g, &params(&rq), &x, &w, &bias, &mut out, Scratch::new(&mut scratch))
            })
        });
        let (x, w, bias) =
            (random_f32(&mut rng, depth), random_f32(&mut rng, depth * units), random_f32(&mut rng, units));
        let mut out = vec![0f32; units];
        group.bench_function(format!("{name}/f32"), |b| {
            b.iter(|| fully_connected_f32(&g, &x, &w, &bias, ClampF32::NONE, &mut out))
        });
    }
    group.finish();

    // The residual add of the IC model: 32×32×16 elements, different input scales.
    let mut group = c.benchmark_group("add");
    let len = 32 * 32 * 16;
    group.throughput(Throughput::Elements(len as u64));
    let (a, b) = (random_i8(&mut rng, len), random_i8(&mut rng, len));
    let p = AddParams::new(0.05, -4, 0.08, 3, 0.1, -2, ClampI8::FULL);
    let mut out = vec![0i8; len];
    let shape = [1, 32, 32, 16];
    group.bench_function("ic_residual_32x32x16/int8", |bench| {
        bench.iter(|| add_i8(&shape, &shape, Input::Separate(&a), &shape, Input::Separate(&b), &p, &mut out))
    });
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
