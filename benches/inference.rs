//! Host latency of one inference with the reference kernels, per model and precision.
//!
//! `cargo bench --bench inference`; results go to docs/BENCHMARKS.md.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use ember::{AlignedBytes, Interpreter, Model};
use ember_quantize::emit::Precision;
use ember_quantize::host::to_internal;
use ember_quantize::npy::load_samples;
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::build;

/// `(name, ONNX file, calibration data)` relative to the workspace root.
const MODELS: &[(&str, &str, &str)] = &[
    ("digits", "models/digits/digits_cnn.onnx", "models/digits/calib_x.npy"),
    (
        "kws",
        "models/mlperf-tiny/kws/kws_dscnn_nhwc.onnx",
        "models/mlperf-tiny/kws/kws_input_float_1x49x10x1.npy",
    ),
];

fn inference(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for &(name, onnx, calib) in MODELS {
        let graph = load_onnx(&root.join(onnx), &[]).unwrap();
        let inputs: Vec<(String, Vec<usize>)> =
            graph.inputs.iter().map(|io| (io.name.clone(), io.onnx_shape.clone())).collect();
        let samples = load_samples(&root.join(calib), &inputs).unwrap();
        for precision in [Precision::Int8, Precision::F16, Precision::F32] {
            let bytes = AlignedBytes::new(&build(&graph, precision, Some(&samples)).unwrap().bytes);
            let model = Model::from_bytes(&bytes).unwrap();
            let mut arena = vec![0u8; model.arena_bytes() + 16];
            let input = to_internal(&model.input(0).unwrap(), &samples[0][0]).unwrap();
            let mut interp = Interpreter::new(&model, &mut arena).unwrap();
            let id = format!("{name}/{}", format!("{precision:?}").to_lowercase());
            // Every invoke needs its input written again (the plan may reuse its bytes).
            c.bench_function(&id, |b| {
                b.iter(|| {
                    interp.set_input(0, &input).unwrap();
                    interp.invoke().unwrap()
                })
            });
        }
    }
}

criterion_group!(benches, inference);
criterion_main!(benches);
