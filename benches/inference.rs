//! Host latency of one inference, per model: Ember at int8, f16 weights and f32, and tract
//! (`tract-onnx`, optimized plan, f32) on the same ONNX file in the same process, so the ratio
//! Ember / tract comes from one run. Ember runs the kernels the host has: the reference kernels
//! on x86_64, NEON/SDOT on aarch64.
//!
//! `cargo bench --bench inference`; results go to docs/BENCHMARKS.md.

#[path = "../tests/mlperf_data/mod.rs"]
mod mlperf_data;

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use ember::{AlignedBytes, Interpreter, Model};
use ember_quantize::emit::Precision;
use ember_quantize::host::to_internal;
use ember_quantize::npy::load_samples;
use ember_quantize::onnx::{load_onnx, TractModel};
use ember_quantize::pipeline::build;
use mlperf_data::{mlperf_dir, real_samples, synthetic};
use tract_onnx::prelude::tract_ndarray::ArrayD;

/// A model and its calibration samples.
enum Bench {
    /// The digits CNN and its calibration images.
    Digits,
    /// An MLPerf Tiny ONNX file (relative to `models/mlperf-tiny`) and its input range: 16
    /// seeded synthetic samples and every second real one, as tests/mlperf.rs calibrates.
    Mlperf(&'static str, f32, f32),
}

const MODELS: &[(&str, Bench)] = &[
    ("digits", Bench::Digits),
    ("kws", Bench::Mlperf("kws/kws_dscnn_nhwc.onnx", -123.0, 25.0)),
    ("vww", Bench::Mlperf("vww/vww_mobilenetv1_025_nhwc.onnx", 0.0, 1.0)),
    ("ic", Bench::Mlperf("ic/ic_resnet8_nhwc.onnx", 0.0, 255.0)),
    ("ad", Bench::Mlperf("ad/ad_fc_autoencoder.onnx", -67.0, 2.0)),
];

fn inference(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, bench) in MODELS {
        let onnx = match bench {
            Bench::Digits => root.join("models/digits/digits_cnn.onnx"),
            Bench::Mlperf(file, ..) => mlperf_dir().join(file),
        };
        let graph = load_onnx(&onnx, &[]).unwrap();
        let inputs: Vec<(String, Vec<usize>)> =
            graph.inputs.iter().map(|io| (io.name.clone(), io.onnx_shape.clone())).collect();
        let samples: Vec<Vec<ArrayD<f32>>> = match bench {
            Bench::Digits => load_samples(&root.join("models/digits/calib_x.npy"), &inputs).unwrap(),
            Bench::Mlperf(file, lo, hi) => {
                let shape = &inputs[0].1;
                let mut xs = synthetic(shape, (*lo, *hi), 16, 1);
                xs.extend(real_samples(file, shape).0.into_iter().step_by(2));
                xs.into_iter().map(|x| vec![x]).collect()
            }
        };
        let mut group = c.benchmark_group(*name);
        for precision in [Precision::Int8, Precision::F16, Precision::F32] {
            let bytes = AlignedBytes::new(&build(&graph, precision, Some(&samples)).unwrap().bytes);
            let model = Model::from_bytes(&bytes).unwrap();
            let mut arena = vec![0u8; model.arena_bytes() + 16];
            let input = to_internal(&model.input(0).unwrap(), &samples[0][0]).unwrap();
            let mut interp = Interpreter::new(&model, &mut arena).unwrap();
            let id = format!("ember-{}", format!("{precision:?}").to_lowercase());
            // Every invoke needs its input written again (the plan may reuse its bytes).
            group.bench_function(id, |b| {
                b.iter(|| {
                    interp.set_input(0, &input).unwrap();
                    interp.invoke().unwrap()
                })
            });
        }
        let tract = TractModel::load(&onnx, &inputs).unwrap();
        group.bench_function("tract-f32", |b| b.iter(|| tract.run(&samples[0]).unwrap()));
        group.finish();
    }
}

criterion_group!(benches, inference);
criterion_main!(benches);
