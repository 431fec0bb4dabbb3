//! `ember-quantize debug` on the bundled digits model: the JSON, CSV and PNG reports exist,
//! parse and agree, with SQNRs a correctly quantized model has.

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
