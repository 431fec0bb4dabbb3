//! Small int8 TFLite models of one or a few operators each (`models/tflite-ref/ops/`, made by
//! `scripts/tflite_op_models.py` with TensorFlow's converter) import, and Ember's output bytes
//! equal those of TFLite's reference kernels (LiteRT `BUILTIN_REF`) on every stored input: all
//! 256 int8 values for the unary operators, every possible channel sum for `mean_all_sums`, and
//! seeded random int8 inputs over the full range for every model. `edges` keeps float input and
//! output (QUANTIZE and DEQUANTIZE at the edges), so there the float outputs must be
//! bit-identical.
//!
//! `cargo test --test tflite_ops -- --nocapture` prints the counts per model.

use std::path::{Path, PathBuf};

use ember::Interpreter;
use ember_quantize::host::ModelFile;
use ember_quantize::npy::read_npz_array;
use ember_quantize::plan::Options;
use ember_quantize::provenance::Origin;
use ember_quantize::tflite::import;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tflite-ref/ops")
}

/// Every op model: its name and how many inputs it takes (`edges`, the float one, is listed
/// apart).
const MODELS: &[(&str, usize)] = &[
    ("logistic", 1),
    ("logistic_narrow", 1),
    ("tanh", 1),
    ("tanh_wide", 1),
    ("hard_swish", 1),
    ("hard_swish_narrow", 1),
    ("relu", 1),
    ("relu6", 1),
    ("mean", 1),
    ("mean_large", 1),
    ("mean_flat", 1),
    ("mean_all_sums", 1),
    ("mul", 2),
    ("mul_broadcast", 2),
    ("mul_relu6", 2),
    ("add_relu_n1", 2),
    ("max_pool", 1),
    ("pad", 1),
    ("concat", 2),
    ("squeeze", 1),
];

/// The model with float input and output (QUANTIZE and DEQUANTIZE at its edges).
const FLOAT_MODEL: &str = "edges";

/// Array `key` of the reference file as one row of values per run.
fn rows(path: &Path, key: &str) -> Vec<Vec<f32>> {
    let a = read_npz_array(path, key).unwrap_or_else(|e| panic!("{}: {key}: {e:#}", path.display()));
    let n = a.shape()[0];
    let values: Vec<f32> = a.iter().copied().collect();
    values.chunks_exact(values.len() / n).map(<[f32]>::to_vec).collect()
}

/// The model's output bits for each run: int8 bytes, or for `float` f32 bits (the inputs
/// written and the output read through the interpreter's quantizing access).
fn run(name: &str, float: bool, inputs: &[Vec<Vec<f32>>], runs: usize) -> Vec<Vec<u32>> {
    let tflite = std::fs::read(dir().join(format!("{name}.tflite"))).unwrap();
    let written =
        import(&tflite, &Origin::default(), Options::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let model_file = ModelFile::from_bytes(&written.bytes);
    let model = model_file.model().unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    (0..runs)
        .map(|r| {
            for (i, input) in inputs.iter().enumerate() {
                if float {
                    interp.set_input(i, &input[r]).unwrap();
                } else {
                    let dst = interp.input_i8(i).unwrap();
                    dst.iter_mut().zip(&input[r]).for_each(|(d, &v)| *d = v as i8);
                }
            }
            interp.invoke().unwrap();
            if float {
                let mut out = vec![0.0; interp.output_i8(0).unwrap().len()];
                interp.get_output(0, &mut out).unwrap();
                out.iter().map(|v| v.to_bits()).collect()
            } else {
                interp.output_i8(0).unwrap().iter().map(|&v| u32::from(v as u8)).collect()
            }
        })
        .collect()
}

#[test]
fn op_models_match_tflite_reference_bytes() {
    let mut failures = Vec::new();
    let cases = MODELS.iter().map(|&(name, n)| (name, n, false)).chain([(FLOAT_MODEL, 1, true)]);
    for (name, n_inputs, float) in cases {
        let reference = dir().join(format!("{name}.ref.npz"));
        let inputs: Vec<_> = (0..n_inputs).map(|i| rows(&reference, &format!("input{i}"))).collect();
        let expected = rows(&reference, "output0");
        let ours = run(name, float, &inputs, expected.len());
        let bits = |row: &Vec<f32>| -> Vec<u32> {
            row.iter().map(|&v| if float { v.to_bits() } else { u32::from(v as i8 as u8) }).collect()
        };
        let mut differing = Vec::new();
        for (r, (got, want)) in ours.iter().zip(&expected).enumerate() {
            for (i, (&g, w)) in got.iter().zip(bits(want)).enumerate() {
                if g != w {
                    differing.push(format!("run {r} value {i}: ember {g:#x}, tflite {w:#x}"));
                }
            }
        }
        let total: usize = expected.iter().map(Vec::len).sum();
        println!("{name}: {} runs, {} of {total} output values differ", expected.len(), differing.len());
        if !differing.is_empty() {
            let shown = differing.iter().take(8).cloned().collect::<Vec<_>>().join("; ");
            failures.push(format!("{name}: {} of {total} differ ({shown})", differing.len()));
        }
    }
    assert!(failures.is_empty(), "outputs differ from TFLite's reference kernels:\n{}", failures.join("\n"));
}
