//! The MLPerf Tiny data `tests/mlperf.rs` and `tests/calibration_methods.rs` share: seeded
//! synthetic inputs over a model's input range, and the real samples of the models that have
//! them.

use std::path::{Path, PathBuf};

use ember_quantize::npy::{read_npy, read_npz_array};
use rand::{RngExt, SeedableRng};
use tract_onnx::prelude::tract_ndarray::{ArrayD, Axis, IxDyn};

/// `models/mlperf-tiny`.
pub fn mlperf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mlperf-tiny")
}

/// `count` seeded uniform samples of `shape` in `range`.
pub fn synthetic(shape: &[usize], range: (f32, f32), count: usize, seed: u64) -> Vec<ArrayD<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count).map(|_| ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(range.0..=range.1))).collect()
}

/// Real samples of the model `file` (relative to [`mlperf_dir`]) in its input shape (NHWC data
/// transposed for `_nchw` files), with labels where the data set has them.
pub fn real_samples(file: &str, shape: &[usize]) -> (Vec<ArrayD<f32>>, Option<Vec<usize>>) {
    let dir = mlperf_dir();
    let nchw = file.contains("nchw");
    let to_input = |x: ArrayD<f32>| {
        let x = if nchw { x.permuted_axes(IxDyn(&[0, 3, 1, 2])) } else { x };
        x.as_standard_layout().into_owned().into_shape_with_order(IxDyn(shape)).unwrap()
    };
    if file.starts_with("ad/") {
        let spec = read_npy(&dir.join("ad/toycar_normal_id01_logmel_200x128.npy")).unwrap();
        let flat: Vec<f32> = spec.iter().copied().collect();
        let windows = (0..=200 - 5)
            .map(|f| ArrayD::from_shape_vec(IxDyn(shape), flat[f * 128..(f + 5) * 128].to_vec()).unwrap())
            .collect();
        return (windows, None);
    }
    if file.starts_with("sww/") {
        let path = dir.join("sww/sww_calibration_samples.npz");
        let specs = read_npz_array(&path, "specs").unwrap();
        let labels = read_npz_array(&path, "labels").unwrap().iter().map(|&l| l as usize).collect();
        let xs = specs.axis_iter(Axis(0)).map(|s| to_input(s.to_owned().insert_axis(Axis(0)))).collect();
        return (xs, Some(labels));
    }
    if file.starts_with("kws/") {
        let x = read_npy(&dir.join("kws/kws_input_float_1x49x10x1.npy")).unwrap();
        return (vec![to_input(x)], None);
    }
    (Vec::new(), None)
}
