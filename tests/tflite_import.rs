//! The five MLPerf Tiny int8 `.tflite` models import, and Ember's int8 outputs and softmax
//! inputs (the logits, where one-step differences are not hidden by softmax) equal TFLite's
//! reference kernels byte for byte on every input of `models/tflite-ref/` (made by
//! `scripts/tflite_reference.py`): 20 seeded random int8 inputs per model plus the real samples.
//!
//! That takes TFLite's two requantization roundings: twice (its default) for convolutions, once
//! for per-tensor FULLY_CONNECTED, which the importer marks with `OP_SINGLE_ROUNDING`
//! (docs/QUANTIZATION.md, "TFLite import").
//!
//! `cargo test --test tflite_import -- --nocapture` prints the counts per model.

use std::path::{Path, PathBuf};

use ember::format::layout::WeightLayout;
use ember::format::OpKind;
use ember::{Hook, Interpreter, OpEvent, OpOutput};
use ember_quantize::host::ModelFile;
use ember_quantize::npy::read_npz_array;
use ember_quantize::plan::Options;
use ember_quantize::provenance::Origin;
use ember_quantize::tflite::import;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tflite-ref")
}

/// A model and its `.tflite` file.
struct Case {
    name: &'static str,
    file: &'static str,
}

const CASES: &[Case] = &[
    Case { name: "kws", file: "kws_ref_model_int8.tflite" },
    Case { name: "vww", file: "vww_96_int8.tflite" },
    Case { name: "ic", file: "ic_resnet8_int8.tflite" },
    Case { name: "ad", file: "ad01_int8.tflite" },
    Case { name: "sww", file: "sww_int8.tflite" },
];

/// An int8 array of the reference file as one byte vector per row.
fn rows(path: &Path, key: &str) -> Vec<Vec<i8>> {
    let a = read_npz_array(path, key).unwrap();
    let n = a.shape()[0];
    let values: Vec<i8> = a.iter().map(|&v| v as i8).collect();
    values.chunks_exact(values.len() / n).map(<[i8]>::to_vec).collect()
}

/// The input of the last softmax: the output of the op that ran just before it.
#[derive(Default)]
struct Logits {
    previous: Vec<i8>,
    logits: Option<Vec<i8>>,
}

impl Hook for Logits {
    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        let bytes: Vec<i8> = output.bytes.iter().map(|&b| b as i8).collect();
        if event.kind == OpKind::Softmax {
            self.logits = Some(std::mem::take(&mut self.previous));
        }
        self.previous = bytes;
    }
}

/// What [`run`] gives: Ember's int8 output and softmax input (if any) for each input, and how
/// many depthwise layers have their weights in a depthwise layout.
struct Run {
    outputs: Vec<Vec<i8>>,
    logits: Vec<Vec<i8>>,
    depthwise_laid_out: usize,
}

/// Imports `file` with its weights in `layout` and runs it on every input.
fn run(file: &str, layout: WeightLayout, inputs: &[Vec<i8>]) -> Run {
    let tflite = std::fs::read(dir().join(file)).unwrap();
    let options = Options { layout, ..Options::default() };
    let written = import(&tflite, &Origin::default(), options).unwrap_or_else(|e| panic!("{file}: {e:#}"));
    let model_file = ModelFile::from_bytes(&written.bytes);
    let model = model_file.model().unwrap();
    let depthwise_laid_out = (0..model.op_count() as u16)
        .map(|i| model.op(i).unwrap())
        .filter(|op| {
            op.kind == OpKind::DepthwiseConv2d && model.tensor(op.inputs[1]).unwrap().layout.is_depthwise()
        })
        .count();
    let mut arena = vec![0u8; model.arena_bytes()];
    let (mut outputs, mut logits) = (Vec::new(), Vec::new());
    for x in inputs {
        let mut interp = Interpreter::new(&model, &mut arena).unwrap();
        interp.input_i8(0).unwrap().copy_from_slice(x);
        let mut hook = Logits::default();
        interp.invoke_with(&mut hook).unwrap();
        outputs.push(interp.output_i8(0).unwrap().to_vec());
        logits.extend(hook.logits);
    }
    Run { outputs, logits, depthwise_laid_out }
}

/// How two sets of rows compare: rows identical, bytes differing, total bytes, largest difference.
fn compare(ours: &[Vec<i8>], expected: &[Vec<i8>]) -> (usize, usize, usize, i32) {
    let pairs = || ours.iter().zip(expected).flat_map(|(a, b)| a.iter().zip(b));
    let rows = ours.iter().zip(expected).filter(|(a, b)| a == b).count();
    let differing = pairs().filter(|(x, y)| x != y).count();
    let max = pairs().map(|(&x, &y)| (i32::from(x) - i32::from(y)).abs()).max().unwrap_or(0);
    (rows, differing, pairs().count(), max)
}

#[test]
fn imported_models_match_tflite_reference_bytes() {
    let mut failures = Vec::new();
    for case in CASES {
        let reference = dir().join(format!("{}.ref.npz", case.name));
        let (inputs, expected) = (rows(&reference, "inputs"), rows(&reference, "outputs"));
        assert!(inputs.len() >= 20, "{}: only {} reference inputs", case.name, inputs.len());
        // Every weight layout gives the same bytes (the reference kernels read each one).
        for layout in WeightLayout::FILTERS {
            let Run { outputs: ours, logits: our_logits, depthwise_laid_out } =
                run(case.file, layout, &inputs);
            // KWS's and VWW's 3×3 depthwise layers take the DSP layouts' depthwise layout.
            println!(
                "{} ({} weights): {depthwise_laid_out} depthwise layers laid out",
                case.name,
                layout.name()
            );
            if matches!(case.name, "kws" | "vww") && layout != WeightLayout::Standard {
                assert!(depthwise_laid_out > 0, "{}: no depthwise weights laid out", case.name);
            }
            let mut checks = vec![("outputs", compare(&ours, &expected))];
            if case.name != "ad" {
                let logits = rows(&reference, "logits");
                assert_eq!(our_logits.len(), logits.len(), "{}: no softmax input captured", case.name);
                checks.push(("softmax inputs", compare(&our_logits, &logits)));
            }
            for (what, (same, differing, total, max_diff)) in checks {
                let name = format!("{} ({} weights)", case.name, layout.name());
                println!(
                    "{name}: {same}/{} {what} byte-identical; {differing} of {total} bytes differ, by at most {max_diff}",
                    inputs.len()
                );
                if differing > 0 {
                    failures.push(format!("{name} {what}: {differing} bytes differ, by up to {max_diff}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "outputs differ from TFLite's reference kernels:\n{}", failures.join("\n"));
}

/// Truncated and corrupted `.tflite` files are errors, never panics (the flatbuffer reader
/// bounds-checks every read).
#[test]
fn corrupt_tflite_files_are_errors_not_panics() {
    let good = std::fs::read(dir().join("kws_ref_model_int8.tflite")).unwrap();
    for len in (0..good.len()).step_by(good.len() / 64) {
        assert!(
            import(&good[..len], &Origin::default(), Options::default()).is_err(),
            "a file cut at {len} bytes imported"
        );
    }
    // A fixed linear congruential sequence picks the bytes to flip.
    let mut state = 0x2545_f491_u64;
    let mut failed = 0;
    for _ in 0..300 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let mut bytes = good.clone();
        let at = (state >> 33) as usize % bytes.len();
        bytes[at] ^= 1 << ((state >> 20) % 8);
        failed += usize::from(import(&bytes, &Origin::default(), Options::default()).is_err());
    }
    println!("{failed} of 300 one-bit corruptions refused, the rest imported");
}
