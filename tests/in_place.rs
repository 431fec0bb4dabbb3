//! Ops written in place give the same output bytes as the same model planned without them,
//! in int8 and f32: a chain of every op kind that can run in place, and the committed models
//! whose adds, muls or softmax the planner puts in place.

mod common;

use std::path::Path;

use ember::format::DType;
use ember::{Interpreter, Model};
use ember_quantize::emit::Precision;
use ember_quantize::graph::Graph;
use ember_quantize::host::ModelFile;
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::{build_with, Written};
use ember_quantize::plan::Options;
use rand::{RngExt, SeedableRng};
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

/// Seeded inputs in the graph's input shape, uniform in `range`.
fn samples(graph: &Graph, range: (f32, f32), count: usize, seed: u64) -> Vec<Vec<ArrayD<f32>>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let shape = &graph.inputs[0].onnx_shape;
    (0..count)
        .map(|_| vec![ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(range.0..=range.1))])
        .collect()
}

/// The first output's bytes for each input, the inputs written in the internal layout.
fn output_bytes(written: &Written, inputs: &[Vec<ArrayD<f32>>]) -> Vec<Vec<u8>> {
    let file = ModelFile::from_bytes(&written.bytes);
    let model: Model = file.model().unwrap();
    let mut arena = vec![0u8; model.arena_bytes() + 16];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    let perm: Vec<usize> = model.input(0).unwrap().perm.iter().map(|&p| p as usize).collect();
    inputs
        .iter()
        .map(|x| {
            let internal = x[0].view().permuted_axes(IxDyn(&perm));
            let values: Vec<f32> = internal.iter().copied().collect();
            interp.set_input(0, &values).unwrap();
            interp.invoke().unwrap();
            match model.output(0).unwrap().tensor.dtype {
                DType::I8 => interp.output_i8(0).unwrap().iter().map(|&v| v as u8).collect(),
                _ => interp.output_f32(0).unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
            }
        })
        .collect()
}

/// Builds `graph` with and without ops in place at int8 and f32, checks the planner put at
/// least `min_in_place` ops in place, and compares the output bytes on seeded inputs.
fn same_bytes(name: &str, graph: &Graph, range: (f32, f32), min_in_place: usize) {
    let calib = samples(graph, range, 8, 1);
    let inputs = samples(graph, range, 8, 2);
    for precision in [Precision::Int8, Precision::F32] {
        let build = |in_place| {
            build_with(graph, precision, Some(&calib), Options { in_place, ..Options::default() }).unwrap()
        };
        let (in_place, separate) = (build(true), build(false));
        println!(
            "{name} {precision:?}: {} ops in place, arena {} bytes (without: {})",
            in_place.plan.in_place_ops, in_place.plan.arena_bytes, separate.plan.arena_bytes
        );
        assert!(in_place.plan.in_place_ops >= min_in_place, "{name} {precision:?}: {:?}", in_place.plan);
        assert_eq!(separate.plan.in_place_ops, 0);
        assert_eq!(
            output_bytes(&in_place, &inputs),
            output_bytes(&separate, &inputs),
            "{name} {precision:?}"
        );
    }
}

#[test]
fn every_in_place_kind_gives_the_same_bytes() {
    same_bytes("in-place chain", &common::in_place_graph(), (-3.0, 3.0), 10);
}

#[test]
fn committed_models_give_the_same_bytes_in_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for (file, range, min_in_place) in [
        ("ops/add_broadcast.onnx", (-3.0, 3.0), 1),
        ("ops/mul_broadcast.onnx", (-3.0, 3.0), 1),
        ("mlperf-tiny/ic/ic_resnet8_nhwc.onnx", (0.0, 255.0), 4),
    ] {
        let graph = load_onnx(&root.join(file), &[]).unwrap();
        same_bytes(file, &graph, range, min_in_place);
    }
}
