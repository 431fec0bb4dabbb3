//! The `ember-quantize` command line: quantize, inspect, run, eval and codegen on the bundled
//! digits model, and the errors a user meets first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember-quantize")).args(args).output().expect("runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn quantize_inspect_run_eval_digits() {
    let dir = scratch("digits");
    let onnx = models().join("digits/digits_cnn.onnx");
    let out = dir.join("digits.ember");
    let (onnx_s, out_s) = (onnx.to_str().unwrap(), out.to_str().unwrap());
    let calib = models().join("digits/calib_x.npy");
    let o =
        tool(&["quantize", onnx_s, "-o", out_s, "--precision", "int8", "--calib", calib.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("200 calibration samples"), "{}", text(&o));
    assert!(text(&o).contains("arena: 768 bytes (greedy by size: 768; lower bound: 768;"), "{}", text(&o));
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 1, "only the model remains, no temporary file");

    let o = tool(&["inspect", out_s]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for expected in
        ["conv2d", "depthwise_conv2d", "fully_connected", "arena bytes: 768", "input 0 'image': [1, 1, 8, 8]"]
    {
        assert!(t.contains(expected), "missing {expected:?} in:\n{t}");
    }

    let test_x = models().join("digits/test_x.npy");
    let y = dir.join("y.npy");
    let o = tool(&["run", out_s, "--input", test_x.to_str().unwrap(), "-o", y.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let logits = ember_quantize::npy::read_npy(&y).unwrap();
    assert_eq!(logits.shape(), &[450, 1, 10]);

    let labels = models().join("digits/test_y.npy");
    let o = tool(&[
        "eval",
        onnx_s,
        out_s,
        "--data",
        test_x.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("samples: 450") && t.contains("accuracy: f32 (tract) 97.33%, ember 97.33%"), "{t}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn codegen_writes_a_module_naming_the_model_relative_to_itself() {
    let dir = scratch("codegen");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let model = dir.join("digits.ember");
    let committed = models().join("../targets/models");
    std::fs::copy(committed.join("digits_int8.ember"), &model).unwrap();
    let inputs = committed.join("digits_inputs.bin");
    let out = src.join("model.rs");
    let o = tool(&[
        "codegen",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let module = std::fs::read_to_string(&out).unwrap();
    for expected in [
        "include_bytes!(\"../digits.ember\")",
        "pub const ARENA_BYTES: usize = 768;",
        "pub type Arena = ember::Aligned<[u8; ARENA_BYTES]>;",
        "pub const OP_COUNT: usize = 6;",
        "impl ember::Kernels for Kernels",
        "pub static INPUTS: &ember::Aligned<[u8; 2048]>",
    ] {
        assert!(module.contains(expected), "missing {expected:?} in:\n{module}");
    }
    let o = tool(&["codegen", dir.join("missing.ember").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("missing.ember"), "{}", text(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn int8_without_calibration_is_refused() {
    let dir = scratch("nocalib");
    let onnx = models().join("digits/digits_cnn.onnx");
    let out = dir.join("d.ember");
    let o = tool(&["quantize", onnx.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--calib"), "{}", text(&o));
    assert!(!out.exists());
    let o = tool(&["quantize", onnx.to_str().unwrap(), "-o", out.to_str().unwrap(), "--calib", "random"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("warning: calibrating on random noise"), "{}", text(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_input_model_is_never_overwritten() {
    let dir = scratch("overwrite");
    let copy = dir.join("m.onnx");
    std::fs::copy(models().join("digits/digits_cnn.onnx"), &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let p = copy.to_str().unwrap();
    let o = tool(&["quantize", p, "-o", p, "--precision", "f32"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("refusing to overwrite"), "{}", text(&o));
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_unsupported_node_is_reported_at_once() {
    let dir = scratch("unsupported");
    let onnx = models().join("ops/unsupported.onnx");
    let out = dir.join("u.ember");
    let o = tool(&["quantize", onnx.to_str().unwrap(), "-o", out.to_str().unwrap(), "--precision", "f32"]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("(Sin)") && t.contains("(Einsum)") && t.contains("opset 13"), "{t}");
    std::fs::remove_dir_all(dir).unwrap();
}
