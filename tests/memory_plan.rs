//! The arena plans of the MLPerf Tiny int8 models (the files `cargo xtask bench-device`
//! quantizes) and the digits CNN: greedy by size without ops in place (TFLite Micro's plan),
//! greedy by size with ops in place, and the plan `ember-quantize` chooses.
//!
//! `cargo test --release --test memory_plan -- --nocapture` prints the table in docs/FORMAT.md
//! ("Memory plan"); the test fails if a figure differs from the table's. A plan depends on the
//! graph's shapes only, not on calibration, so four synthetic calibration samples do. Every
//! plan holds the kernel scratch of every target (`--target any`, the default).

use std::path::Path;

use ember::kernels::scratch::Target;
use ember::{AlignedBytes, Error, Model};
use ember_quantize::emit::Precision;
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::{build, build_with};
use ember_quantize::plan::{Options, PlanReport};
use rand::{RngExt, SeedableRng};
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

/// A model and its plan's figures in the table.
struct Case {
    name: &'static str,
    file: &'static str,
    /// Input range for the synthetic calibration samples.
    range: (f32, f32),
    /// Arena bytes of greedy by size, greedy by size with ops in place, the chosen plan, the
    /// lower bound and no reuse; then the ops in place and the largest op's kernel scratch.
    expected: [usize; 7],
}

const CASES: &[Case] = &[
    Case {
        name: "KWS",
        file: "mlperf-tiny/kws/kws_dscnn_nhwc.onnx",
        range: (-123.0, 25.0),
        expected: [17904, 17904, 17904, 17904, 81568, 1, 1904],
    },
    Case {
        name: "VWW",
        file: "mlperf-tiny/vww/vww_mobilenetv1_025_nhwc.onnx",
        range: (0.0, 1.0),
        expected: [64512, 64512, 55328, 55328, 286048, 1, 1904],
    },
    Case {
        name: "IC",
        file: "mlperf-tiny/ic/ic_resnet8_nhwc.onnx",
        range: (0.0, 255.0),
        expected: [51200, 49728, 49728, 49728, 130800, 4, 2304],
    },
    Case {
        name: "AD",
        file: "mlperf-tiny/ad/ad_fc_autoencoder.onnx",
        range: (-67.0, 2.0),
        expected: [2048, 2048, 2048, 2048, 5664, 0, 1280],
    },
    Case {
        name: "digits",
        file: "digits/digits_cnn.onnx",
        range: (0.0, 1.0),
        expected: [1056, 1056, 1056, 1056, 1504, 0, 288],
    },
];

fn figures(p: &PlanReport) -> [usize; 7] {
    [
        p.greedy_bytes,
        p.greedy_in_place_bytes,
        p.arena_bytes,
        p.lower_bound_bytes,
        p.unshared_bytes,
        p.in_place_ops,
        p.scratch_bytes,
    ]
}

#[test]
fn int8_arena_plans() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    println!("| model | greedy by size (TFLite Micro's plan) | greedy by size, ops in place | chosen plan, ops in place | lower bound | no reuse | ops in place | largest kernel scratch |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
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
        println!("| {name} | {} | {} | {} | {} | {} | {} | {} |", f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
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

/// The kernel scratch the plan reserves: by default every op gets what each kernel set needs
/// (so the file runs on every target), `--target` plans one set's, and a model planned for
/// another set is refused with what to do.
#[test]
fn scratch_is_planned_for_the_targets_named() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let graph = load_onnx(&root.join("mlperf-tiny/ic/ic_resnet8_nhwc.onnx"), &[]).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let shape = graph.inputs[0].onnx_shape.clone();
    let calib = vec![vec![ArrayD::from_shape_fn(IxDyn(&shape), |_| rng.random_range(0.0..=255.0))]];
    let built = |targets: &'static [Target]| {
        let options = Options { targets, ..Options::default() };
        AlignedBytes::new(&build_with(&graph, Precision::Int8, Some(&calib), options).unwrap().bytes)
    };
    let (any, dsp, reference) =
        (built(&Target::ALL), built(&[Target::CortexMDsp]), built(&[Target::Reference]));
    let (any, dsp, reference) = (
        Model::from_bytes(&any).unwrap(),
        Model::from_bytes(&dsp).unwrap(),
        Model::from_bytes(&reference).unwrap(),
    );
    let mut needing = 0;
    for op in 0..any.op_count() as u16 {
        let planned = |m: &Model| m.op(op).unwrap().scratch.1;
        let need = |t| any.scratch_needed(op, t).unwrap();
        for t in Target::ALL {
            assert!(
                planned(&any) >= need(t),
                "op {op}: {} bytes planned, {t:?} needs {}",
                planned(&any),
                need(t)
            );
        }
        assert_eq!(planned(&dsp), need(Target::CortexMDsp), "op {op}");
        assert_eq!(planned(&reference), 0, "op {op}");
        needing += usize::from(need(Target::CortexMDsp) > 0);
    }
    assert!(needing >= 8, "IC's convolutions and residual adds need DSP scratch; {needing} ops do");
    assert!(reference.arena_bytes() < dsp.arena_bytes() && dsp.arena_bytes() <= any.arena_bytes());
    for t in Target::ALL {
        assert_eq!(any.check_scratch(t), Ok(()));
    }
    assert_eq!(dsp.check_scratch(Target::Helium), Ok(()), "Helium plans the DSP kernels' needs");
    let refused = reference.check_scratch(Target::CortexMDsp).unwrap_err();
    let Error::ScratchTooSmall { op, target, needed, planned, .. } = refused else { panic!("{refused:?}") };
    assert_eq!(
        (target, needed as usize, planned),
        (Target::CortexMDsp, any.scratch_needed(op, target).unwrap(), 0)
    );
    let message = refused.to_string();
    assert!(
        message.contains("cortex-m-dsp kernels") && message.contains("--target cortex-m-dsp"),
        "{message}"
    );
}
