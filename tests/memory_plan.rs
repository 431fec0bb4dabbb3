//! The arena plans of the MLPerf Tiny int8 models (the files `cargo xtask bench-device`
//! quantizes) and the digits CNN: greedy by size without ops in place (TFLite Micro's plan),
//! greedy by size with ops in place, and the plan `ember-quantize` chooses.
//!
//! `cargo test --release --test memory_plan -- --nocapture` prints the table in docs/FORMAT.md
//! ("Memory plan"); the test fails if a figure differs from the table's. A plan depends on the
//! graph's shapes only, not on calibration, so four synthetic calibration samples do.

use std::path::Path;

use ember_quantize::emit::Precision;
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::build;
use ember_quantize::plan::PlanReport;
use rand::{RngExt, SeedableRng};
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

/// A model and its plan's figures in the table.
struct Case {
    name: &'static str,
    file: &'static str,
    /// Input range for the synthetic calibration samples.
    range: (f32, f32),
    /// Arena bytes of greedy by size, greedy by size with ops in place, the chosen plan, the
    /// lower bound and no reuse; then the ops in place.
    expected: [usize; 6],
}

const CASES: &[Case] = &[
    Case {
        name: "KWS",
        file: "mlperf-tiny/kws/kws_dscnn_nhwc.onnx",
        range: (-123.0, 25.0),
        expected: [16000, 16000, 16000, 16000, 72592, 1],
    },
    Case {
        name: "VWW",
        file: "mlperf-tiny/vww/vww_mobilenetv1_025_nhwc.onnx",
        range: (0.0, 1.0),
        expected: [64512, 64512, 55296, 55296, 259488, 1],
    },
    Case {
        name: "IC",
        file: "mlperf-tiny/ic/ic_resnet8_nhwc.onnx",
        range: (0.0, 255.0),
        expected: [49152, 49152, 49152, 49152, 117856, 4],
    },
    Case {
        name: "AD",
        file: "mlperf-tiny/ad/ad_fc_autoencoder.onnx",
        range: (-67.0, 2.0),
        expected: [768, 768, 768, 768, 2320, 0],
    },
    Case {
        name: "digits",
        file: "digits/digits_cnn.onnx",
        range: (0.0, 1.0),
        expected: [768, 768, 768, 768, 1120, 0],
    },
];

fn figures(p: &PlanReport) -> [usize; 6] {
    [
        p.greedy_bytes,
        p.greedy_in_place_bytes,
        p.arena_bytes,
        p.lower_bound_bytes,
        p.unshared_bytes,
        p.in_place_ops,
    ]
}

#[test]
fn int8_arena_plans() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    println!("| model | greedy by size (TFLite Micro's plan) | greedy by size, ops in place | chosen plan, ops in place | lower bound | no reuse | ops in place |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut mismatches = Vec::new();
    for &Case { name, file, range, expected } in CASES {
        let graph = load_onnx(&root.join(file), &[]).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let shape = graph.inputs[0].onnx_shape.clone();
        let calib: Vec<Vec<ArrayD<f32>>> = (0..4)
            .map(|_| vec![ArrayD::from_shape_fn(IxDyn(&shape), |_| rng.random_range(range.0..=range.1))])
            .collect();
        let plan = build(&graph, Precision::Int8, Some(&calib)).unwrap().plan;
        let f = figures(&plan);
        println!("| {name} | {} | {} | {} | {} | {} | {} |", f[0], f[1], f[2], f[3], f[4], f[5]);
        assert!(
            plan.lower_bound_bytes <= plan.arena_bytes && plan.arena_bytes <= plan.greedy_bytes,
            "{plan:?}"
        );
        if f != expected {
            mismatches.push(format!("{name}: {f:?}, the table says {expected:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}
