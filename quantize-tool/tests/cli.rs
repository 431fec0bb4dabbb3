//! The `ember-quantize` command line: quantize, inspect, run, eval, codegen and debug on the
//! bundled digits model, and the errors a user meets first. `debug`'s JSON, CSV and PNG reports
//! exist, parse and agree, with SQNRs a correctly quantized model has.

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
    assert!(
        text(&o).contains("arena: 1,056 bytes (greedy by size: 1,056; lower bound: 1,056;"),
        "{}",
        text(&o)
    );
    // `auto` keeps both algorithms on the digits CNN (docs/QUANTIZATION.md).
    assert!(text(&o).contains("int8 weights per channel; equalization + bias correction"), "{}", text(&o));
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 1, "only the model remains, no temporary file");

    let o = tool(&["inspect", out_s]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for expected in [
        "conv2d",
        "depthwise_conv2d",
        "fully_connected",
        "arena bytes: 1056",
        "input 0 'image': [1, 1, 8, 8]",
        "kernel scratch: 288 bytes at most per op, enough for the kernels of: reference, cortex-m-dsp, helium, neon",
    ] {
        assert!(t.contains(expected), "missing {expected:?} in:\n{t}");
    }

    // Planned for the reference kernels alone: no scratch, the tensors' arena.
    let plain = dir.join("reference.ember");
    let args = ["quantize", onnx_s, "-o", plain.to_str().unwrap(), "--calib", calib.to_str().unwrap()];
    let o = tool(&[&args[..], &["--target", "reference"]].concat());
    assert!(o.status.success() && text(&o).contains("arena: 768 bytes"), "{}", text(&o));
    let o = tool(&["inspect", plain.to_str().unwrap()]);
    assert!(
        text(&o).contains("kernel scratch: 0 bytes at most per op, enough for the kernels of: reference\n")
    );
    std::fs::remove_file(&plain).unwrap();

    let test_x = models().join("digits/test_x.npy");
    let y = dir.join("y.npy");
    let o = tool(&["run", out_s, "--input", test_x.to_str().unwrap(), "-o", y.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let logits = ember_quantize::npy::read_npy(&y).unwrap();
    assert_eq!(logits.shape(), &[450, 1, 10]);

    // Weights laid out for the Cortex-M DSP kernels: the same outputs on the host.
    for (layout, args) in
        [("dsp-pairs", &[][..]), ("dsp-pairs-wide", &["--weight-layout", "dsp-pairs-wide"][..])]
    {
        let laid = dir.join(format!("{layout}.ember"));
        let quantize = ["quantize", onnx_s, "-o", laid.to_str().unwrap(), "--calib", calib.to_str().unwrap()];
        let o = tool(&[&quantize[..], &["--target", "cortex-m-dsp"], args].concat());
        assert!(o.status.success(), "{}", text(&o));
        // Three filter tensors laid out; the depthwise layer (4 × 4 outputs, too short a side
        // for the DSP 3×3 path) stays standard.
        let o = tool(&["inspect", laid.to_str().unwrap()]);
        let layouts = format!("int8 weight layouts: standard (1 tensors, 144 bytes), {layout} (3 tensors");
        assert!(text(&o).contains(&layouts), "{}", text(&o));
        let y_laid = dir.join(format!("{layout}.npy"));
        let run = ["run", laid.to_str().unwrap(), "--input", test_x.to_str().unwrap(), "-o"];
        let o = tool(&[&run[..], &[y_laid.to_str().unwrap()]].concat());
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(ember_quantize::npy::read_npy(&y_laid).unwrap(), logits, "{layout}");
        std::fs::remove_file(&laid).unwrap();
        std::fs::remove_file(&y_laid).unwrap();
    }

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
    assert!(t.contains("samples: 450") && t.contains("accuracy: f32 (tract) 97.33%, ember 97.56%"), "{t}");
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
        "pub const ARENA_BYTES: usize = 1056;",
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

/// The first `count` digits test images as 8×8 grey PNGs (pixel = value × 255) in `dir`.
fn digit_pngs(dir: &Path, count: usize) {
    let x = ember_quantize::npy::read_npy(&models().join("digits/test_x.npy")).unwrap();
    let values: Vec<f32> = x.iter().copied().collect();
    for (i, image) in values.chunks(64).take(count).enumerate() {
        let png = image::GrayImage::from_fn(8, 8, |c, r| {
            image::Luma([(image[(r * 8 + c) as usize] * 255.0).round() as u8])
        });
        png.save(dir.join(format!("{i:03}.png"))).unwrap();
    }
}

#[test]
fn every_calibration_method_quantizes_from_an_image_folder() {
    let dir = scratch("methods");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    digit_pngs(&images, 40);
    let onnx = models().join("digits/digits_cnn.onnx");
    let out = dir.join("d.ember");
    let (onnx_s, out_s, images_s) = (onnx.to_str().unwrap(), out.to_str().unwrap(), images.to_str().unwrap());
    for method in ["minmax", "percentile=99.9", "entropy", "mse"] {
        let args =
            ["quantize", onnx_s, "-o", out_s, "--calib", images_s, "--std", "255", "--calibration", method];
        let o = tool(&args);
        let t = text(&o);
        assert!(o.status.success(), "{method}: {t}");
        assert!(t.contains(&format!("40 calibration samples ({method})")), "{t}");
        let o = tool(&["inspect", out_s]);
        let recorded = if method == "minmax" { "min-max" } else { method.split('=').next().unwrap() };
        assert!(text(&o).contains(&format!("calibration: {recorded}, 40 samples")), "{}", text(&o));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn calibration_flags_that_cannot_work_are_refused() {
    let dir = scratch("calibration-flags");
    let (small, empty) = (dir.join("small"), dir.join("empty"));
    std::fs::create_dir_all(&small).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    image::GrayImage::new(4, 4).save(small.join("a.png")).unwrap();
    let onnx = models().join("digits/digits_cnn.onnx");
    let npy = models().join("digits/calib_x.npy");
    let out = dir.join("d.ember");
    let (npy, small, empty) = (npy.to_str().unwrap(), small.to_str().unwrap(), empty.to_str().unwrap());
    let cases: [(&[&str], i32, &str); 8] = [
        (&["--calib", "random", "--calibration", "mse"], 2, "--calib random calibrates with min/max only"),
        (&["--calib", npy, "--calibration", "kl"], 2, "use minmax, percentile[=99.99], entropy or mse"),
        (
            &["--calib", npy, "--calibration", "percentile=101"],
            2,
            "not a percentile above 50 and at most 100",
        ),
        (
            &["--calib", npy, "--resize", "8x8", "--std", "255"],
            2,
            "--resize, --std only apply to an image folder",
        ),
        (&["--calib", small, "--resize", "8"], 2, "'8' is not WIDTHxHEIGHT"),
        (
            &["--calib", small],
            4,
            "a.png is 4x4, input 'image' [1, 1, 8, 8] takes 8x8 images: pass --resize 8x8",
        ),
        (
            &["--calib", small, "--channels", "rgb"],
            4,
            "--channels rgb gives 3 channels, input 'image' [1, 1, 8, 8] takes 1",
        ),
        (&["--calib", empty], 4, "holds no .png, .jpg or .jpeg images"),
    ];
    for (args, status, expected) in cases {
        let mut all = vec!["quantize", onnx.to_str().unwrap(), "-o", out.to_str().unwrap()];
        all.extend(args);
        let o = tool(&all);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(status), "{args:?}: {t}");
        assert!(t.contains(expected), "{args:?}: {expected:?} not in {t}");
        assert!(!out.exists());
    }
    // --resize makes the small image fit.
    let o = tool(&[
        "quantize",
        onnx.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--calib",
        small,
        "--resize",
        "8x8",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn debug_writes_ranked_json_csv_and_a_png_for_digits() {
    let out = std::env::temp_dir().join(format!("ember-debug-{}", std::process::id()));
    let onnx = models().join("digits/digits_cnn.onnx");
    let calib = models().join("digits/calib_x.npy");
    let args =
        ["debug", onnx.to_str().unwrap(), "--calib", calib.to_str().unwrap(), "-o", out.to_str().unwrap()];
    let o = tool(&args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("6 layers, 200 samples"), "{t}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("sqnr.json")).unwrap()).unwrap();
    assert_eq!(json["model"], "digits_cnn.onnx");
    assert_eq!(json["calibration"], "minmax");
    assert_eq!(json["samples"], 200);
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 6);
    let db = |l: &serde_json::Value, key: &str| l[key].as_f64().unwrap_or_else(|| panic!("{key} of {l}"));
    for (rank, l) in layers.iter().enumerate() {
        assert_eq!(l["rank"], rank + 1);
        // int8 with calibrated ranges: every layer well above 20 dB, none exact.
        for key in ["alone_db", "cumulative_db"] {
            assert!((20.0..80.0).contains(&db(l, key)), "{l}");
        }
        if rank > 0 {
            assert!(db(&layers[rank - 1], "alone_db") <= db(l, "alone_db"), "not ranked worst first: {json}");
        }
        // The first layer sees only the quantized input in both runs.
        if l["index"] == 0 {
            assert_eq!(db(l, "alone_db"), db(l, "cumulative_db"), "{l}");
        }
    }

    let mut csv = csv::Reader::from_path(out.join("sqnr.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    assert_eq!(
        &headers,
        vec!["rank", "index", "name", "op", "tensor", "alone_db", "cumulative_db", "flagged"]
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    for (row, l) in rows.iter().zip(layers) {
        assert_eq!(&row[2], l["name"].as_str().unwrap());
        assert!((row[5].parse::<f64>().unwrap() - db(l, "alone_db")).abs() < 1e-9, "{row:?} {l}");
    }

    let png = image::open(out.join("sqnr.png")).unwrap();
    assert!(png.width() >= 800 && png.height() >= 200, "{}x{}", png.width(), png.height());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn debug_without_calibration_data_says_what_to_pass() {
    let out = std::env::temp_dir().join(format!("ember-debug-nocalib-{}", std::process::id()));
    let onnx = models().join("digits/digits_cnn.onnx");
    let o = tool(&["debug", onnx.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("the debugger needs calibration data: pass --calib"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}
