//! The bundled digits CNN end to end: int8 accuracy within 1 point of f32 on the committed
//! test split, and Ember's f32 and f16 paths close to tract's f32 outputs.

use std::path::{Path, PathBuf};

use ember_quantize::emit::Precision;
use ember_quantize::host::{ModelFile, Runner};
use ember_quantize::metrics::{accuracy, compare};
use ember_quantize::npy::{load_samples, read_npy};
use ember_quantize::onnx::{load_onnx, TractModel};
use ember_quantize::pipeline::build;

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits")
}

#[test]
fn digits_cnn_int8_f16_f32_follow_tract() {
    let onnx = digits().join("digits_cnn.onnx");
    let graph = load_onnx(&onnx, &[]).unwrap();
    let inputs: Vec<(String, Vec<usize>)> =
        graph.inputs.iter().map(|io| (io.name.clone(), io.onnx_shape.clone())).collect();
    let calib = load_samples(&digits().join("calib_x.npy"), &inputs).unwrap();
    let test = load_samples(&digits().join("test_x.npy"), &inputs).unwrap();
    let labels: Vec<usize> =
        read_npy(&digits().join("test_y.npy")).unwrap().iter().map(|&v| v as usize).collect();
    assert_eq!(test.len(), labels.len());
    assert_eq!(calib.len(), 200);

    let tract = TractModel::load(&onnx, &[]).unwrap();
    let reference: Vec<Vec<f32>> =
        test.iter().map(|s| tract.run(s).unwrap()[0].iter().copied().collect()).collect();
    let f32_accuracy = accuracy(&reference, &labels);
    assert!(f32_accuracy >= 0.95, "the float model itself: {f32_accuracy}");

    for precision in [Precision::F32, Precision::F16, Precision::Int8] {
        let written = build(&graph, precision, Some(&calib)).unwrap();
        let file = ModelFile::from_bytes(&written.bytes);
        let model = file.model().unwrap();
        let mut runner = Runner::new(&model);
        let ours: Vec<Vec<f32>> =
            test.iter().map(|s| runner.run(s).unwrap()[0].iter().copied().collect()).collect();
        let a = compare(&reference, &ours);
        let acc = accuracy(&ours, &labels);
        println!(
            "{precision:?}: accuracy {:.2} % (f32 {:.2} %), max abs error {:.2e} of {:.3}, SQNR {:.1} dB, arena {} B",
            100.0 * acc,
            100.0 * f32_accuracy,
            a.max_abs_error,
            a.max_abs_reference,
            a.sqnr_db,
            written.plan.arena_bytes
        );
        match precision {
            Precision::F32 => assert!(a.max_abs_error <= 1e-4 * a.max_abs_reference, "{a:?}"),
            Precision::F16 => assert!(a.max_abs_error <= 1e-2 * a.max_abs_reference, "{a:?}"),
            Precision::Int8 => assert!(acc >= f32_accuracy - 0.01, "int8 {acc} vs f32 {f32_accuracy}"),
        }
    }
}
