//! `ember-quantize quantize` on hostile input: every case runs the real binary and checks its
//! exit status (documented in `--help`), that the error names the problem and what to do, that
//! nothing panicked, and that no file in the scratch folder — the input model, the calibration
//! data, an output written before — was created, changed or removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ember_quantize::npy::{read_npy, write_npy};
use npyz::WriterBuilder;
use prost::Message;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{ModelProto, StringStringEntryProto};

/// Exit statuses of `ember-quantize` (see `EXIT_CODES` in src/main.rs).
const USAGE: i32 = 2;
const MODEL: i32 = 3;
const DATA: i32 = 4;
const OUTPUT: i32 = 5;

/// What an output file holds before each refused run: it must survive.
const PREVIOUS_OUTPUT: &[u8] = b"an Ember model written by an earlier run";

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits")
}

/// An empty scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The committed digits model, decoded.
fn digits() -> ModelProto {
    ModelProto::decode(std::fs::read(models().join("digits_cnn.onnx")).unwrap().as_slice()).unwrap()
}

/// Writes `model` as `dir/name`.
fn save(dir: &Path, name: &str, model: &ModelProto) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

/// Copies the committed model's bytes, changed by `edit`, to `dir/name`.
fn mangled(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(models().join("digits_cnn.onnx")).unwrap();
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The committed calibration images (200 × [1, 8, 8]), changed by `edit`, as `dir/name`.
fn calibration(dir: &Path, name: &str, edit: impl FnOnce(&mut [f32])) -> PathBuf {
    let mut x = read_npy(&models().join("calib_x.npy")).unwrap();
    edit(x.as_slice_mut().unwrap());
    let path = dir.join(name);
    write_npy(&path, &x).unwrap();
    path
}

/// Every file under `dir` (recursively) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    files
}

fn quantize(model: &Path, output: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember-quantize"))
        .arg("quantize")
        .arg(model)
        .arg("-o")
        .arg(output)
        .args(args)
        .output()
        .expect("runs ember-quantize")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `quantize model -o output args` in `dir` and checks that it is refused with `status`, one
/// error paragraph containing every one of `phrases`, no panic, and every file under `dir`
/// unchanged. If `output` is a file path in `dir`, a previous output is put there first.
fn refused(dir: &Path, model: &Path, output: &Path, args: &[&str], status: i32, phrases: &[&str]) {
    if output.parent() == Some(dir) && !output.exists() {
        std::fs::write(output, PREVIOUS_OUTPUT).unwrap();
    }
    let before = snapshot(dir);
    let o = quantize(model, output, args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(status), "exit status of:\n{t}");
    assert!(!t.contains("panicked") && !t.contains("RUST_BACKTRACE"), "panic:\n{t}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("warning: ")).collect();
    assert!(errors.len() == 1 && errors[0].starts_with("error: "), "one error paragraph:\n{stderr}");
    for phrase in phrases {
        assert!(t.contains(phrase), "missing {phrase:?} in:\n{t}");
    }
    assert!(snapshot(dir) == before, "files under {} changed:\n{t}", dir.display());
    std::fs::remove_dir_all(dir).unwrap();
}

fn calib_args(path: &Path) -> [&str; 2] {
    ["--calib", path.to_str().unwrap()]
}

#[test]
fn truncated_onnx_is_refused() {
    let dir = scratch("truncated");
    let model = mangled(&dir, "m.onnx", |b| b.truncate(b.len() / 2));
    let out = dir.join("m.ember");
    refused(
        &dir,
        &model,
        &out,
        &["--calib", "random"],
        MODEL,
        &["cannot read ONNX model", "m.onnx", "buffer underflow"],
    );
}

#[test]
fn corrupt_onnx_is_refused() {
    let dir = scratch("corrupt");
    let model = mangled(&dir, "m.onnx", |b| b.iter_mut().skip(40).step_by(97).for_each(|v| *v ^= 0xff));
    let out = dir.join("m.ember");
    refused(
        &dir,
        &model,
        &out,
        &["--calib", "random"],
        MODEL,
        &["cannot read ONNX model", "m.onnx", "failed to decode"],
    );
}

#[test]
fn a_file_that_is_not_onnx_is_refused() {
    let dir = scratch("not-onnx");
    let model = dir.join("m.onnx");
    std::fs::write(&model, b"").unwrap();
    let out = dir.join("m.ember");
    refused(&dir, &model, &out, &["--calib", "random"], MODEL, &["m.onnx", "holds no ONNX graph"]);
}

#[test]
fn missing_external_data_is_named() {
    let dir = scratch("external");
    let mut m = digits();
    let weight = &mut m.graph.as_mut().unwrap().initializer[0];
    let length = weight.raw_data.len();
    weight.raw_data.clear();
    weight.data_location = Some(1); // EXTERNAL
    weight.external_data = [("location", "m.weights"), ("offset", "0"), ("length", &length.to_string())]
        .map(|(key, value)| StringStringEntryProto { key: key.into(), value: value.into() })
        .to_vec();
    let model = save(&dir, "m.onnx", &m);
    let out = dir.join("m.ember");
    refused(
        &dir,
        &model,
        &out,
        &["--calib", "random"],
        MODEL,
        &[
            "initializer 'conv1.weight'",
            "external file 'm.weights', which is missing",
            "copy that file next to the model",
        ],
    );
}

#[test]
fn symbolic_dimensions_need_input_shape() {
    let dir = scratch("symbolic");
    let mut m = digits();
    let graph = m.graph.as_mut().unwrap();
    graph.value_info.clear();
    let Some(TypeValue::TensorType(t)) = graph.input[0].r#type.as_mut().unwrap().value.as_mut() else {
        unreachable!("the digits input is a tensor")
    };
    let dims = &mut t.shape.as_mut().unwrap().dim;
    dims[2].value = Some(Dim::DimParam("height".into()));
    dims[3].value = Some(Dim::DimParam("width".into()));
    let model = save(&dir, "m.onnx", &m);
    let out = dir.join("m.ember");
    refused(
        &dir,
        &model,
        &out,
        &["--calib", "random"],
        MODEL,
        &["input 'image' has a symbolic dimension at axis 2 ([1,1,?,?])", "--input-shape image:1,1,?,?"],
    );

    // With the shape given, the same file quantizes.
    let dir = scratch("symbolic-fixed");
    let model = save(&dir, "m.onnx", &m);
    let o = quantize(&model, &dir.join("m.ember"), &["--calib", "random", "--input-shape", "image:1,1,8,8"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unsupported_opsets_are_refused() {
    for (version, domain, phrase) in [
        (99, "", "ai.onnx) at version 99"),
        (1, "", "ai.onnx) at version 1"),
        (13, "com.example", "imports no default ONNX operator set"),
    ] {
        let dir = scratch(&format!("opset-{version}-{domain}"));
        let mut m = digits();
        m.opset_import = vec![tract_onnx::pb::OperatorSetIdProto { domain: domain.into(), version }];
        let model = save(&dir, "m.onnx", &m);
        let out = dir.join("m.ember");
        refused(
            &dir,
            &model,
            &out,
            &["--calib", "random"],
            MODEL,
            &[phrase, "Ember supports opsets 7 to 28", "m.onnx"],
        );
    }
}

#[test]
fn unsupported_operators_are_listed() {
    let dir = scratch("unsupported-ops");
    let model = dir.join("m.onnx");
    std::fs::copy(models().join("../ops/unsupported.onnx"), &model).unwrap();
    let out = dir.join("m.ember");
    refused(
        &dir,
        &model,
        &out,
        &["--precision", "f32"],
        MODEL,
        &["2 unsupported ONNX nodes (opset 13)", "(Sin)", "(Einsum)", "Replace these nodes"],
    );
}

/// Malformed attributes and initializers on which tract itself would panic.
#[test]
fn malformed_nodes_are_refused() {
    /// Sets attribute `name` of `node` to the list `ints`, or to the integer `i` if `ints` is empty.
    fn set(node: &mut tract_onnx::pb::NodeProto, name: &str, ints: Vec<i64>, i: i64) {
        node.attribute.retain(|a| a.name != name);
        node.attribute.push(tract_onnx::pb::AttributeProto {
            name: name.into(),
            r#type: if ints.is_empty() { 2 } else { 7 }, // INT or INTS
            ints,
            i,
            ..Default::default()
        });
    }
    /// A case: its name, the edit of the digits model, phrases of the error.
    type Case = (&'static str, fn(&mut ModelProto), &'static [&'static str]);
    let cases: [Case; 5] = [
        ("no-outputs", |m| m.graph.as_mut().unwrap().output.clear(), &["the ONNX graph declares no outputs"]),
        ("no-inputs", |m| m.graph.as_mut().unwrap().input.clear(), &["the ONNX graph declares no inputs"]),
        (
            "zero-stride",
            |m| set(&mut m.graph.as_mut().unwrap().node[0], "strides", vec![0, 0], 0),
            &["'conv1' (Conv: strides [0, 0]; every value must be at least 1)"],
        ),
        (
            "flatten-axis",
            |m| set(&mut m.graph.as_mut().unwrap().node[8], "axis", vec![], 9),
            &[
                "tract's shape inference failed",
                "it crashed: range end index 9 out of range for slice of length 4",
                "onnx.checker.check_model",
            ],
        ),
        (
            "string-initializer",
            |m| m.graph.as_mut().unwrap().initializer[9].data_type = 8,
            &[
                "tract could not parse the ONNX graph",
                "it crashed: not implemented",
                "onnx.checker.check_model",
            ],
        ),
    ];
    for (name, edit, phrases) in cases {
        let dir = scratch(name);
        let mut m = digits();
        edit(&mut m);
        let model = save(&dir, "m.onnx", &m);
        let out = dir.join("m.ember");
        refused(
            &dir,
            &model,
            &out,
            &["--calib", "random"],
            MODEL,
            &[&["loading ONNX model", "m.onnx"][..], phrases].concat(),
        );
    }
}

#[test]
fn non_finite_weights_are_named() {
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
        let dir = scratch(&format!("weights-{shown}"));
        let mut m = digits();
        let weights = &mut m.graph.as_mut().unwrap().initializer[5];
        assert_eq!(weights.name, "conv2.weight");
        weights.raw_data[40..44].copy_from_slice(&value.to_le_bytes());
        let model = save(&dir, "m.onnx", &m);
        let out = dir.join("m.ember");
        let phrase = format!("weight tensor 'conv2.weight' (shape [16, 8, 3, 3], used by 'conv2' (Conv)) holds {shown} at flat index 10");
        refused(&dir, &model, &out, &["--calib", "random"], MODEL, &[&phrase, "Export the model again"]);
    }
}

#[test]
fn non_finite_calibration_values_are_named() {
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let dir = scratch(&format!("calib-{shown}"));
        let model = mangled(&dir, "m.onnx", |_| {});
        let calib = calibration(&dir, "calib.npy", |x| x[7 * 64 + 3 * 8 + 5] = value);
        let out = dir.join("m.ember");
        let phrase = format!("sample 7 of input 'image' holds {shown} at [0, 0, 3, 5]");
        refused(
            &dir,
            &model,
            &out,
            &calib_args(&calib),
            DATA,
            &["calib.npy", &phrase, "remove or fix that sample"],
        );
    }
}

#[test]
fn calibration_of_the_wrong_shape_is_refused() {
    let dir = scratch("calib-shape");
    let model = mangled(&dir, "m.onnx", |_| {});
    let calib = dir.join("calib.npy");
    let x = read_npy(&models().join("calib_x.npy")).unwrap();
    write_npy(&calib, &x.into_shape_with_order(vec![100, 2, 64]).unwrap()).unwrap();
    let out = dir.join("m.ember");
    refused(
        &dir,
        &model,
        &out,
        &calib_args(&calib),
        DATA,
        &["calib.npy: input 'image'", "data of shape [100, 2, 64]", "give an array of shape [N, 1, 1, 8, 8]"],
    );
}

#[test]
fn calibration_with_the_right_element_count_in_other_dims_is_refused() {
    // Once silently reshaped: flattened samples, and NHWC samples for this NCHW input.
    for (name, shape, says) in [
        ("flat", vec![200, 1, 64], "the right number of elements per sample but not the model's dims"),
        ("nhwc", vec![200, 8, 8, 1], "another layout (e.g. NHWC for an NCHW input)"),
    ] {
        let dir = scratch(&format!("calib-dims-{name}"));
        let model = mangled(&dir, "m.onnx", |_| {});
        let calib = dir.join("calib.npy");
        let x = read_npy(&models().join("calib_x.npy")).unwrap();
        write_npy(&calib, &x.into_shape_with_order(shape).unwrap()).unwrap();
        let out = dir.join("m.ember");
        refused(
            &dir,
            &model,
            &out,
            &calib_args(&calib),
            DATA,
            &["does not hold samples of shape [1, 1, 8, 8]", says],
        );
    }
}

#[test]
fn calibration_of_the_wrong_type_is_refused() {
    let dir = scratch("calib-type");
    let model = mangled(&dir, "m.onnx", |_| {});
    let calib = dir.join("calib.npy");
    let file = std::fs::File::create(&calib).unwrap();
    let mut writer = npyz::WriteOptions::<i16>::new()
        .default_dtype()
        .shape(&[4, 1, 8, 8])
        .writer(file)
        .begin_nd()
        .unwrap();
    writer.extend(0..256).unwrap();
    writer.finish().unwrap();
    let out = dir.join("m.ember");
    refused(
        &dir,
        &model,
        &out,
        &calib_args(&calib),
        DATA,
        &["calib.npy", "element type '<i2' is not supported", "astype(numpy.float32)"],
    );
}

#[test]
fn truncated_calibration_is_refused() {
    let dir = scratch("calib-truncated");
    let model = mangled(&dir, "m.onnx", |_| {});
    let calib = dir.join("calib.npy");
    let bytes = std::fs::read(models().join("calib_x.npy")).unwrap();
    std::fs::write(&calib, &bytes[..1000]).unwrap();
    let out = dir.join("m.ember");
    refused(&dir, &model, &out, &calib_args(&calib), DATA, &["calib.npy", "it is truncated"]);
}

#[test]
fn calibration_declaring_an_impossible_shape_is_refused() {
    let dir = scratch("calib-huge");
    let model = mangled(&dir, "m.onnx", |_| {});
    let calib = dir.join("calib.npy");
    // A version 1.0 header padded to 64 bytes, as numpy writes it, then a few values.
    let mut header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }".to_string();
    header.push_str(&" ".repeat(63 - (10 + header.len()) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend([0; 64]);
    std::fs::write(&calib, bytes).unwrap();
    let out = dir.join("m.ember");
    refused(
        &dir,
        &model,
        &out,
        &calib_args(&calib),
        DATA,
        &["calib.npy is corrupt", "declares the shape (4611686018427387904, 4)", "write the array again"],
    );
}

/// Decision: an activation that is constant over the calibration set quantizes (the range is
/// widened to include 0; an all-zero range falls back to scale 1, zero point 0, which still
/// represents 0 exactly) and `ember-quantize` warns, naming the tensor.
#[test]
fn constant_activations_quantize_with_a_warning() {
    let dir = scratch("constant");
    let calib = calibration(&dir, "zeros.npy", |x| x.fill(0.0));
    let out = dir.join("m.ember");
    let o = quantize(&models().join("digits_cnn.onnx"), &out, &calib_args(&calib));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("warning: activation 'image' was 0 for every calibration sample")
            && t.contains("scale 1, zero point 0"),
        "{t}"
    );
    let file = ember_quantize::host::ModelFile::read(&out).unwrap();
    let model = file.model().unwrap();
    let input = model.input(0).unwrap();
    let q = input.tensor.quant[0];
    assert_eq!((q.scale, q.zero_point), (1.0, 0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_output_directory_is_refused() {
    let dir = scratch("output-dir");
    let model = mangled(&dir, "m.onnx", |_| {});
    let out = dir.join("models");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.ember"), PREVIOUS_OUTPUT).unwrap();
    refused(&dir, &model, &out, &["--calib", "random"], OUTPUT, &["is a directory", "models/model.ember"]);
}

#[test]
fn an_output_in_a_missing_folder_is_refused() {
    let dir = scratch("output-missing");
    let model = mangled(&dir, "m.onnx", |_| {});
    let out = dir.join("no-such-folder/m.ember");
    refused(
        &dir,
        &model,
        &out,
        &["--calib", "random"],
        OUTPUT,
        &["the folder", "no-such-folder does not exist"],
    );

    let dir = scratch("output-under-file");
    let model = mangled(&dir, "m.onnx", |_| {});
    let out = model.join("m.ember");
    refused(&dir, &model, &out, &["--calib", "random"], OUTPUT, &["m.onnx is not a folder"]);
}

/// Not writable even for root: procfs refuses new files.
#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_output_folder_is_refused() {
    let dir = scratch("output-unwritable");
    let model = mangled(&dir, "m.onnx", |_| {});
    let out = Path::new("/proc/ember-hostile.ember");
    refused(
        &dir,
        &model,
        out,
        &["--calib", "random"],
        OUTPUT,
        &["cannot create files in /proc", "check that the folder is writable"],
    );
    assert!(!out.exists());
}

#[test]
fn the_input_is_never_the_output() {
    let dir = scratch("same");
    let model = mangled(&dir, "m.onnx", |_| {});
    // The same file by another spelling.
    let other = dir.join(".").join("m.onnx");
    refused(
        &dir,
        &model,
        &other,
        &["--calib", "random"],
        USAGE,
        &["refusing to overwrite the input model", "give -o another path"],
    );
}

/// `ember-quantize … | head`: the model is written, and the closed pipe is not an error.
#[test]
fn a_closed_standard_output_is_not_an_error() {
    let dir = scratch("closed-stdout");
    let out = dir.join("m.ember");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember-quantize"))
        .args(["quantize", models().join("digits_cnn.onnx").to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--calib", "random"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs ember-quantize");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("panicked") && !t.contains("error"), "{t}");
    assert!(ember_quantize::host::ModelFile::read(&out).unwrap().model().is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `codegen` blames a corrupt model (status 3) and an output that is a directory (status 5).
#[test]
fn codegen_blames_the_model_or_the_output() {
    let dir = scratch("codegen");
    let model = dir.join("m.ember");
    let o = quantize(&models().join("digits_cnn.onnx"), &model, &["--calib", "random"]);
    assert!(o.status.success(), "{}", text(&o));
    let corrupt = dir.join("corrupt.ember");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&corrupt, bytes).unwrap();
    for (input, output, status, phrase) in
        [(&corrupt, dir.join("model.rs"), MODEL, "CRC"), (&model, dir.clone(), OUTPUT, "is a directory")]
    {
        let before = snapshot(&dir);
        let o = Command::new(env!("CARGO_BIN_EXE_ember-quantize"))
            .arg("codegen")
            .arg(input)
            .arg("-o")
            .arg(&output)
            .output()
            .expect("runs ember-quantize");
        let t = text(&o);
        assert_eq!(o.status.code(), Some(status), "exit status of:\n{t}");
        assert!(t.contains(phrase) && !t.contains("panicked"), "{t}");
        assert!(snapshot(&dir) == before, "files under {} changed:\n{t}", dir.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `run` checks its output path before any work and writes the `.npy` atomically: a failed run
/// leaves an earlier output as it was.
#[test]
fn run_leaves_files_unchanged_on_failure() {
    let dir = scratch("run");
    let model = dir.join("m.ember");
    let o = quantize(&models().join("digits_cnn.onnx"), &model, &["--calib", "random"]);
    assert!(o.status.success(), "{}", text(&o));
    let good = calibration(&dir, "x.npy", |_| {});
    let bad = calibration(&dir, "bad.npy", |_| {});
    std::fs::write(dir.join("y.npy"), PREVIOUS_OUTPUT).unwrap();
    std::fs::write(&bad, &std::fs::read(&bad).unwrap()[..100]).unwrap();
    for (input, output, status, phrase) in [
        (&good, dir.clone(), OUTPUT, "is a directory"),
        (&good, dir.join("missing/y.npy"), OUTPUT, "does not exist"),
        (&bad, dir.join("y.npy"), DATA, "truncated"),
    ] {
        let before = snapshot(&dir);
        let o = Command::new(env!("CARGO_BIN_EXE_ember-quantize"))
            .arg("run")
            .arg(&model)
            .arg("--input")
            .arg(input)
            .arg("-o")
            .arg(&output)
            .output()
            .expect("runs ember-quantize");
        let t = text(&o);
        assert_eq!(o.status.code(), Some(status), "exit status of:\n{t}");
        assert!(t.contains(phrase) && !t.contains("panicked"), "{t}");
        assert!(snapshot(&dir) == before, "files under {} changed:\n{t}", dir.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}
