//! The main job on the built-in example: quantize the bundled digits CNN (ONNX) to int8,
//! run it with the Ember runtime, and compare with the f32 model run by tract.
//!
//! `cargo run --example digits`

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use ember_quantize::emit::Precision;
use ember_quantize::host::{ModelFile, Runner};
use ember_quantize::metrics::{accuracy, argmax};
use ember_quantize::npy::{load_samples, read_npy};
use ember_quantize::onnx::{load_onnx, TractModel};
use ember_quantize::pipeline::build;

fn main() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits");
    let onnx = dir.join("digits_cnn.onnx");
    let graph = load_onnx(&onnx, &[])?;
    let inputs: Vec<(String, Vec<usize>)> =
        graph.inputs.iter().map(|io| (io.name.clone(), io.onnx_shape.clone())).collect();
    let calib = load_samples(&dir.join("calib_x.npy"), &inputs)?;
    let test = load_samples(&dir.join("test_x.npy"), &inputs)?;
    let labels: Vec<usize> = read_npy(&dir.join("test_y.npy"))?.iter().map(|&v| v as usize).collect();

    let written = build(&graph, Precision::Int8, Some(&calib))?;
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/digits_int8.ember");
    std::fs::write(&out, &written.bytes)?;
    let file = ModelFile::from_bytes(&written.bytes);
    let model = file.model()?;
    println!(
        "quantized {} to int8 with {} calibration images -> {}",
        onnx.display(),
        calib.len(),
        out.display()
    );

    let mut runner = Runner::new(&model);
    let start = Instant::now();
    let ours: Vec<Vec<f32>> =
        test.iter().map(|s| Ok(runner.run(s)?[0].iter().copied().collect())).collect::<Result<_>>()?;
    let per_inference = start.elapsed() / test.len() as u32;
    let tract = TractModel::load(&onnx, &[])?;
    let reference: Vec<Vec<f32>> =
        test.iter().map(|s| Ok(tract.run(s)?[0].iter().copied().collect())).collect::<Result<_>>()?;

    let shown = 16;
    let predicted: Vec<String> = ours[..shown].iter().map(|o| argmax(o).to_string()).collect();
    let truth: Vec<String> = labels[..shown].iter().map(usize::to_string).collect();
    println!("predicted: {}", predicted.join(" "));
    println!("labels:    {}", truth.join(" "));
    println!(
        "accuracy on {} test images: int8 (Ember) {:.2} %, f32 (tract) {:.2} %",
        test.len(),
        100.0 * accuracy(&ours, &labels),
        100.0 * accuracy(&reference, &labels)
    );
    println!(
        "latency: {:.1} µs per inference on this host (Ember reference kernels, incl. quantize/dequantize)",
        per_inference.as_secs_f64() * 1e6
    );
    println!(
        "RAM: {} arena bytes (plan; {} without reuse)   flash: {} model bytes ({} of weights)",
        model.arena_bytes(),
        written.plan.unshared_bytes,
        written.bytes.len(),
        model.weight_bytes()
    );
    Ok(())
}
