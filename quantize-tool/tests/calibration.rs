//! Calibration streams: the same samples give the same model whether they come from memory or
//! are read one at a time from a file, with every method, on every run.

use std::path::{Path, PathBuf};

use ember_quantize::calibrate::Method;
use ember_quantize::emit::Precision;
use ember_quantize::npy::load_samples;
use ember_quantize::onnx::load_onnx;
use ember_quantize::pipeline::{build_from, Calibration};
use ember_quantize::plan::Options;
use ember_quantize::provenance::Origin;
use ember_quantize::samples::arrays::Arrays;
use ember_quantize::samples::{Input, SampleSource};

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits")
}

#[test]
fn streamed_and_in_memory_samples_give_the_same_model_with_every_method() {
    let graph = load_onnx(&digits().join("digits_cnn.onnx"), &[]).unwrap();
    let inputs: Vec<Input> = graph.inputs.iter().map(|io| (io.name.clone(), io.onnx_shape.clone())).collect();
    let path = digits().join("calib_x.npy");
    let in_memory = load_samples(&path, &inputs).unwrap();
    let streamed = Arrays::open(&path, &inputs, usize::MAX).unwrap();
    assert_eq!(streamed.len(), 200);
    let build = |source: &dyn SampleSource, method| {
        let calib = Calibration { source, method };
        build_from(&graph, Precision::Int8, Some(calib), Options::default(), &Origin::default())
            .unwrap()
            .bytes
    };
    let methods = [Method::MinMax, Method::Percentile(99.9), Method::Entropy, Method::Mse];
    let models: Vec<Vec<u8>> = methods.iter().map(|&m| build(&in_memory.as_slice(), m)).collect();
    for (&method, model) in methods.iter().zip(&models) {
        assert_eq!(&build(&streamed, method), model, "{method}: streamed differs from in memory");
        assert_eq!(&build(&streamed, method), model, "{method}: a second run differs");
    }
    // The methods choose different ranges, so they are really used.
    assert!(models[1..].iter().all(|m| m != &models[0]));
}
