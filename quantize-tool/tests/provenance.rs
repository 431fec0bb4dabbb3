//! Provenance through the command line: `quantize` records where a model came from, `inspect`
//! prints it, and the same inputs with `SOURCE_DATE_EPOCH` give the same bytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ember::format::meta::{Calibration, SourceFormat};
use ember::format::DType;
use ember_quantize::provenance::{hex, TOOL};
use sha2::{Digest, Sha256};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn quantize(out: &Path, epoch: &str) -> Output {
    let digits = models().join("digits");
    Command::new(env!("CARGO_BIN_EXE_ember-quantize"))
        .arg("quantize")
        .arg(digits.join("digits_cnn.onnx"))
        .arg("-o")
        .arg(out)
        .args(["--precision", "int8", "--calib"])
        .arg(digits.join("calib_x.npy"))
        .args(["--calib-limit", "50"])
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .expect("runs")
}

#[test]
fn provenance_round_trips_and_the_same_inputs_give_the_same_bytes() {
    let dir = std::env::temp_dir().join(format!("ember-provenance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, later) = (dir.join("a.ember"), dir.join("b.ember"), dir.join("later.ember"));
    for (path, epoch) in [(&a, "1764892800"), (&b, "1764892800"), (&later, "1764892801")] {
        let o = quantize(path, epoch);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap(), "two runs on the same inputs differ");
    assert_ne!(bytes, std::fs::read(&later).unwrap(), "the creation time is not recorded");

    let aligned = ember::AlignedBytes::new(&bytes);
    let model = ember::Model::from_bytes(&aligned).unwrap();
    let meta = model.metadata().expect("a META section");
    let p = meta.provenance;
    let onnx = std::fs::read(models().join("digits/digits_cnn.onnx")).unwrap();
    assert_eq!(p.source_sha256, <[u8; 32]>::from(Sha256::digest(&onnx)));
    assert_eq!((p.source_format, p.precision), (SourceFormat::Onnx as u8, DType::I8 as u8));
    assert_eq!((p.calibration, p.calib_samples), (Calibration::MinMax as u8, 50));
    assert_eq!((p.created_unix(), p.tool()), (1764892800, TOOL));
    // Each op's ONNX node: the first conv is node 0, later ones follow their folded neighbours.
    assert_eq!(meta.sources.len(), model.op_count());
    assert_eq!(meta.sources[0], 0);
    assert!(meta.sources.windows(2).all(|w| w[0] < w[1]), "{:?}", meta.sources);

    let o = Command::new(env!("CARGO_BIN_EXE_ember-quantize")).arg("inspect").arg(&a).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    for expected in [
        format!("source: onnx model, sha256 {}", hex(&p.source_sha256)),
        format!("made by: {TOOL}, precision i8, created 1764892800"),
        format!("calibration: min-max, 50 samples, sha256 {}", hex(&p.calib_sha256)),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_malformed_source_date_epoch_is_a_usage_error() {
    let out = std::env::temp_dir().join(format!("ember-provenance-bad-{}.ember", std::process::id()));
    let o = quantize(&out, "yesterday");
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SOURCE_DATE_EPOCH='yesterday'"));
    assert!(!out.exists());
}
