//! Writes the calibration and evaluation samples of the models docs/QUANTIZATION.md compares
//! with ONNX Runtime, as `.npy` files, so `scripts/ort_compare.py` feeds both quantizers the
//! very same values: `DIR/NAME/calib.npy` and `DIR/NAME/eval.npy` (the ONNX model's input
//! shape, its batch axis counting samples) and `DIR/models.txt` (one `NAME ONNX_PATH` line per
//! model, the path relative to the repository).
//!
//! The data are tests/calibration_methods.rs's: the digits CNN calibrates on its 200
//! calibration images and is evaluated on its 450 test images; ds_cnn likewise on its own
//! calibration images and the same test images upscaled to 16x16; each MLPerf Tiny model
//! calibrates on 64 seeded synthetic inputs (seed 1) over its input range plus every second
//! real sample, and is evaluated on 64 others (seed 2) followed by every real sample.
//!
//! `cargo run --release --example compare_data -- DIR`

#[path = "../tests/mlperf_data/mod.rs"]
mod mlperf_data;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ember_quantize::npy::{read_npy, write_npy};
use mlperf_data::{real_samples, synthetic};
use tract_onnx::prelude::tract_ndarray::{concatenate, ArrayD, Axis, IxDyn};

/// The MLPerf Tiny models: name, file under models/mlperf-tiny, input range.
const MLPERF: [(&str, &str, (f32, f32)); 5] = [
    ("kws", "kws/kws_dscnn_nchw.onnx", (-123.0, 25.0)),
    ("vww", "vww/vww_mobilenetv1_025_nchw.onnx", (0.0, 1.0)),
    ("ic", "ic/ic_resnet8_nchw.onnx", (0.0, 255.0)),
    ("ad", "ad/ad_fc_autoencoder.onnx", (-67.0, 2.0)),
    ("sww", "sww/sww_dscnn_nchw.onnx", (0.0, 0.94)),
];

/// Batch-1 samples joined along their batch axis.
fn stack(samples: &[ArrayD<f32>]) -> Result<ArrayD<f32>> {
    let views: Vec<_> = samples.iter().map(|s| s.view()).collect();
    Ok(concatenate(Axis(0), &views)?)
}

/// The batch-1 input shape of an ONNX model, from tract's analysis.
fn input_shape(onnx: &Path) -> Result<Vec<usize>> {
    let graph = ember_quantize::onnx::load_onnx(onnx, &[])?;
    Ok(graph.inputs[0].onnx_shape.clone())
}

/// `images` [N,1,8,8] with every pixel repeated 2x2: [N,1,16,16] (numpy's `kron`).
fn upscale(images: &ArrayD<f32>) -> ArrayD<f32> {
    let n = images.shape()[0];
    ArrayD::from_shape_fn(IxDyn(&[n, 1, 16, 16]), |i| images[[i[0], 0, i[2] / 2, i[3] / 2].as_slice()])
}

fn main() -> Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).context("usage: compare_data DIR")?);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = root.join("models");
    let mut list = String::new();
    let mut save = |name: &str, onnx: &Path, calib: &ArrayD<f32>, eval: &ArrayD<f32>| -> Result<()> {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir)?;
        write_npy(&dir.join("calib.npy"), calib)?;
        write_npy(&dir.join("eval.npy"), eval)?;
        list += &format!("{name} {}\n", onnx.strip_prefix(root)?.display());
        println!("{name}: calib {:?}, eval {:?}", calib.shape(), eval.shape());
        Ok(())
    };
    let digits = models.join("digits");
    let test = read_npy(&digits.join("test_x.npy"))?;
    save("digits", &digits.join("digits_cnn.onnx"), &read_npy(&digits.join("calib_x.npy"))?, &test)?;
    let ds = models.join("ds_cnn");
    save("ds_cnn", &ds.join("ds_cnn.onnx"), &read_npy(&ds.join("calib_x.npy"))?, &upscale(&test))?;
    for (name, file, range) in MLPERF {
        let onnx = models.join("mlperf-tiny").join(file);
        let shape = input_shape(&onnx)?;
        let (real, _) = real_samples(file, &shape);
        let mut calib = synthetic(&shape, range, 64, 1);
        calib.extend(real.iter().step_by(2).cloned());
        let mut eval = synthetic(&shape, range, 64, 2);
        eval.extend(real);
        save(name, &onnx, &stack(&calib)?, &stack(&eval)?)?;
    }
    std::fs::write(out.join("models.txt"), list)?;
    Ok(())
}
