//! `cargo xtask demo`: the README's main job on an emulated Cortex-M4F.

use anyhow::{ensure, Result};
use ember::{AlignedBytes, Model};
use ember_quantize::emit::Precision;
use ember_quantize::host::{to_internal, Runner};
use ember_quantize::metrics::{accuracy, argmax};
use ember_quantize::npy::{load_samples, read_npy};
use ember_quantize::onnx::{load_onnx, TractModel};
use ember_quantize::pipeline::build;

use crate::board::{self, elf_sizes, host_output_crc, QEMU_M4};
use crate::{root, setup};

/// Quantizes the digits CNN, runs `images` test images on the emulated board and prints the
/// figures, checking the board's output bytes against the host's.
pub fn run(images: usize) -> Result<()> {
    setup::rustup_target(QEMU_M4.target)?;
    setup::qemu_boards()?;

    let dir = root().join("models/digits");
    let onnx = dir.join("digits_cnn.onnx");
    let graph = load_onnx(&onnx, &[])?;
    let inputs: Vec<(String, Vec<usize>)> =
        graph.inputs.iter().map(|io| (io.name.clone(), io.onnx_shape.clone())).collect();
    let calib = load_samples(&dir.join("calib_x.npy"), &inputs)?;
    let test = load_samples(&dir.join("test_x.npy"), &inputs)?;
    let labels: Vec<usize> = read_npy(&dir.join("test_y.npy"))?.iter().map(|&v| v as usize).collect();
    ensure!((1..=test.len()).contains(&images), "--images must be 1..={}", test.len());

    let written = build(&graph, Precision::Int8, Some(&calib))?;
    let bytes = AlignedBytes::new(&written.bytes);
    let model = Model::from_bytes(&bytes)?;
    let work = root().join("target/demo");
    std::fs::create_dir_all(&work)?;
    let model_path = work.join("digits_int8.ember");
    std::fs::write(&model_path, &written.bytes)?;

    // The board gets the first `images` test images, quantized to the model's int8 input.
    let input = model.input(0)?;
    let (scale, zero_point) = input.tensor.scale_zero_point();
    let mut batch = Vec::new();
    for sample in &test[..images] {
        let values = to_internal(&input, &sample[0])?;
        batch.extend(values.iter().map(|&v| ember::quant::quantize_i8(v, scale, zero_point) as u8));
    }
    let inputs_path = work.join("digits_inputs.bin");
    std::fs::write(&inputs_path, &batch)?;
    let host_crc = host_output_crc(&model, &batch)?;

    eprintln!("building the Cortex-M4F firmware and running it under QEMU (mps2-an386) ...");
    let (report, elf) = board::run(&QEMU_M4, &model_path, &inputs_path)?;
    ensure!(report.samples.len() == images, "the board ran {} of {images} images", report.samples.len());
    let sizes = elf_sizes(&elf)?;

    let mut runner = Runner::new(&model);
    let host_int8: Vec<Vec<f32>> =
        test.iter().map(|s| Ok(runner.run(s)?[0].iter().copied().collect())).collect::<Result<_>>()?;
    let tract = TractModel::load(&onnx, &[])?;
    let host_f32: Vec<Vec<f32>> =
        test.iter().map(|s| Ok(tract.run(s)?[0].iter().copied().collect())).collect::<Result<_>>()?;

    let predicted: Vec<usize> = report.samples.iter().map(|s| s.argmax).collect();
    let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(" ");
    println!("Ember demo: digits CNN (int8) on an emulated Cortex-M4F, QEMU mps2-an386");
    println!("predicted: {}", join(&predicted));
    println!("labels:    {}", join(&labels[..images]));
    println!(
        "accuracy on the board: {correct}/{images} = {:.1} %   (host, all {} test images: int8 {:.2} %, f32 {:.2} %)",
        100.0 * correct as f64 / images as f64,
        test.len(),
        100.0 * accuracy(&host_int8, &labels),
        100.0 * accuracy(&host_f32, &labels)
    );
    println!(
        "{} per inference: {} (QEMU -icount: instructions executed, not cycles)",
        report.clock, report.ticks_per_inference
    );
    println!(
        "RAM: arena {} bytes, peak stack {} bytes, static RAM {} bytes   flash: {} bytes (model {} bytes, {} bytes of test images)",
        report.arena_bytes,
        report.stack_bytes,
        sizes.ram,
        sizes.flash,
        written.bytes.len(),
        batch.len()
    );
    let same = report.output_crc32 == host_crc;
    println!(
        "board output bytes == host output bytes: {} (crc32 board {:#010x}, host {host_crc:#010x})",
        if same { "yes" } else { "NO" },
        report.output_crc32
    );
    ensure!(same, "the board's int8 outputs differ from the host's");
    let host_argmax: Vec<usize> = host_int8[..images].iter().map(|o| argmax(o)).collect();
    ensure!(predicted == host_argmax, "board predictions differ from the host's");
    Ok(())
}
