//! Build-script helper for firmware: turns an `.ember` model file (and optionally a raw input
//! batch) into a Rust module to `include!`.
//!
//! The module embeds the model with `include_bytes!` at the 16-byte alignment the runtime needs
//! and states, as constants, what the firmware must size at compile time: the arena, the op
//! count and the shapes and quantization of input 0 and output 0.
//!
//! ```ignore
//! // build.rs
//! let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("model.rs");
//! ember_build::generate("model.ember".as_ref(), None, &out)?;
//! // src/main.rs
//! mod model { include!(concat!(env!("OUT_DIR"), "/model.rs")); }
//! ```
//!
//! An arena declared with the generated `Arena` type has exactly `ARENA_BYTES` bytes and 16-byte
//! alignment, so `Interpreter::new` never fails for size with it:
//!
//! ```
//! # mod model { pub const ARENA_BYTES: usize = 768; pub type Arena = ember::Aligned<[u8; ARENA_BYTES]>; }
//! static mut ARENA: model::Arena = ember::Aligned([0; model::ARENA_BYTES]);
//! ```
//!
//! and a smaller one does not compile (`expected an array with a size of 768, found one with a
//! size of 767`):
//!
//! ```compile_fail,E0308
//! # mod model { pub const ARENA_BYTES: usize = 768; pub type Arena = ember::Aligned<[u8; ARENA_BYTES]>; }
//! static mut ARENA: model::Arena = ember::Aligned([0; 767]);
//! ```

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use ember::format::layout::WeightLayout;
use ember::format::{DType, OpKind};
use ember::{layout_bit, AlignedBytes, IoInfo, Model};

/// Writes the Rust module for `model` (an .ember file) and, optionally, a raw input batch, to `out`,
/// naming the files by absolute path (for a build script writing to `OUT_DIR`).
///
/// The file is only rewritten when its text changes, so unchanged models cause no rebuild.
pub fn generate(model: &Path, inputs: Option<&Path>, out: &Path) -> Result<()> {
    write_module(model, inputs, out, IncludePaths::Absolute)
}

/// How the generated module names the files it embeds with `include_bytes!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludePaths {
    /// Absolute paths: for a module generated into `OUT_DIR` and `include!`d.
    Absolute,
    /// Relative to the module's own folder: for a module file kept in a source tree
    /// (`include_bytes!` resolves paths from the file it appears in).
    RelativeToModule,
}

/// Writes the module for `model` (and an optional raw input batch) to `out`, naming the files as
/// `paths` says; rewrites `out` only when its text changes.
pub fn write_module(model: &Path, inputs: Option<&Path>, out: &Path, paths: IncludePaths) -> Result<()> {
    let out_dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let include_path = |p: &Path| -> Result<String> {
        let abs = std::fs::canonicalize(p).with_context(|| format!("cannot find {}", p.display()))?;
        let named = match paths {
            IncludePaths::Absolute => abs,
            IncludePaths::RelativeToModule => {
                let dir = std::fs::canonicalize(out_dir)
                    .with_context(|| format!("cannot find the folder of {}", out.display()))?;
                pathdiff::diff_paths(&abs, &dir).unwrap_or(abs)
            }
        };
        named.to_str().map(str::to_owned).with_context(|| format!("{} is not valid UTF-8", named.display()))
    };
    let model_bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let inputs = match inputs {
        Some(p) => {
            let len = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?.len();
            Some((include_path(p)?, usize::try_from(len)?))
        }
        None => None,
    };
    let source = module_source(
        &model_bytes,
        &include_path(model)?,
        inputs.as_ref().map(|(p, len)| (p.as_str(), *len)),
    )
    .with_context(|| format!("model {}", model.display()))?;
    if std::fs::read_to_string(out).ok().as_deref() != Some(source.as_str()) {
        std::fs::write(out, source).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

/// The module's source text (testable without files).
///
/// `inputs` is the include path and byte length of a raw input batch: whole samples of input 0,
/// in its internal layout and element type.
pub fn module_source(
    model_bytes: &[u8],
    model_include_path: &str,
    inputs: Option<(&str, usize)>,
) -> Result<String> {
    let aligned = AlignedBytes::new(model_bytes);
    let model = Model::from_bytes(&aligned).context("invalid model")?;
    model.validate_ops::<ember::AllKernels>().context("invalid model")?;
    ensure!(model.input_count() >= 1 && model.output_count() >= 1, "the model has no input or no output");
    let input = model.input(0)?;
    let output = model.output(0)?;

    let mut s = String::new();
    writeln!(s, "// @generated by ember-build from {model_include_path}: do not edit.")?;
    writeln!(s)?;
    writeln!(s, "/// The model file, 16-byte aligned, for `ember::Model::from_bytes(&MODEL.0)`.")?;
    writeln!(
        s,
        "pub static MODEL: &ember::Aligned<[u8; {}]> = &ember::Aligned(*include_bytes!({:?}));",
        model_bytes.len(),
        model_include_path
    )?;
    writeln!(s, "/// Arena bytes the model's memory plan needs.")?;
    writeln!(s, "pub const ARENA_BYTES: usize = {};", model.arena_bytes())?;
    writeln!(
        s,
        "/// An arena exactly as large as the memory plan needs, 16-byte aligned: \
         `Interpreter::new` never fails for size with it."
    )?;
    writeln!(s, "pub type Arena = ember::Aligned<[u8; ARENA_BYTES]>;")?;
    writeln!(s, "/// Number of ops (layers) in the model.")?;
    writeln!(s, "pub const OP_COUNT: usize = {};", model.op_count())?;
    kernel_items(&mut s, &model)?;
    io_items(&mut s, "INPUT", "input", &input)?;
    io_items(&mut s, "OUTPUT", "output", &output)?;

    if let Some((path, byte_len)) = inputs {
        let sample = input.tensor.byte_len;
        ensure!(
            byte_len > 0 && byte_len.is_multiple_of(sample),
            "the input batch has {byte_len} bytes, not a positive multiple of one sample ({sample} bytes: \
             {} {} values)",
            input.tensor.len(),
            input.tensor.dtype.name()
        );
        writeln!(
            s,
            "/// The raw input batch: `INPUT_COUNT` samples of `INPUT_LEN` {} values each, in the \
             model input's internal layout.",
            input.tensor.dtype.name()
        )?;
        writeln!(
            s,
            "pub static INPUTS: &ember::Aligned<[u8; {byte_len}]> = &ember::Aligned(*include_bytes!({path:?}));"
        )?;
        writeln!(s, "/// Number of samples in `INPUTS`.")?;
        writeln!(s, "pub const INPUT_COUNT: usize = {};", byte_len / sample)?;
    }
    Ok(s)
}

/// `Kernels`: the kernels the model's ops need, and the layouts of its int8 `conv2d`,
/// `depthwise_conv2d` and `fully_connected` weights, so firmware links only those.
fn kernel_items(s: &mut String, model: &Model) -> Result<()> {
    let (mut int8, mut float, mut layouts, mut depthwise) = (0u32, 0u32, 0u32, 0u32);
    let mut names = Vec::new();
    for index in 0..model.op_count() as u16 {
        let op = model.op(index)?;
        let is_int8 = model.tensor(op.outputs[0])?.dtype == DType::I8;
        let mask = if is_int8 { &mut int8 } else { &mut float };
        *mask |= ember::kernel_bit(op.kind);
        let name = format!("{} ({})", op.kind.name(), if is_int8 { "int8" } else { "float" });
        if !names.contains(&name) {
            names.push(name);
        }
        // The weights whose layout picks the kernel (as `Kernels::LAYOUTS` and
        // `DEPTHWISE_LAYOUTS` document).
        if is_int8 && matches!(op.kind, OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::FullyConnected) {
            let w = model.tensor(*op.inputs.get(1).context("a weighted op without weights")?)?;
            match op.kind {
                OpKind::DepthwiseConv2d => depthwise |= layout_bit(w.layout),
                _ => layouts |= layout_bit(w.layout),
            }
        }
    }
    let layout_names: Vec<&str> = WeightLayout::ALL
        .iter()
        .filter(|&&l| (layouts | depthwise) & layout_bit(l) != 0)
        .map(|l| l.name())
        .collect();
    let weights = match layout_names.as_slice() {
        [] => String::new(),
        [one] => format!("; int8 weights in the {one} layout"),
        more => format!("; int8 weights in the {} layouts", more.join(", ")),
    };
    writeln!(s, "/// The kernels this model needs: {}{weights}.", names.join(", "))?;
    writeln!(s, "/// `Interpreter::<Kernels>::with_kernels` links only these.")?;
    writeln!(s, "pub struct Kernels;")?;
    writeln!(s, "impl ember::Kernels for Kernels {{")?;
    writeln!(s, "    const INT8: u32 = {int8:#034b};")?;
    writeln!(s, "    const FLOAT: u32 = {float:#034b};")?;
    writeln!(s, "    const LAYOUTS: u32 = {layouts:#034b};")?;
    writeln!(s, "    const DEPTHWISE_LAYOUTS: u32 = {depthwise:#034b};")?;
    writeln!(s, "}}")?;
    Ok(())
}

/// `{PREFIX}_LEN`, `_SCALE`, `_ZERO_POINT` and `_SHAPE` for one model input or output.
fn io_items(s: &mut String, prefix: &str, what: &str, io: &IoInfo) -> Result<()> {
    let t = &io.tensor;
    let (scale, zero_point) = t.scale_zero_point();
    if !scale.is_finite() {
        bail!("{what} 0 has a non-finite scale {scale}");
    }
    let dims: Vec<String> = t.dims.iter().map(u32::to_string).collect();
    writeln!(s, "/// Number of {} elements in {what} 0 ({:?}).", t.dtype.name(), io.name)?;
    writeln!(s, "pub const {prefix}_LEN: usize = {};", t.len())?;
    writeln!(s, "/// Quantization scale of {what} 0 (1.0 for float models).")?;
    writeln!(s, "pub const {prefix}_SCALE: f32 = {scale:?};")?;
    writeln!(s, "/// Quantization zero point of {what} 0 (0 for float models).")?;
    writeln!(s, "pub const {prefix}_ZERO_POINT: i32 = {zero_point};")?;
    writeln!(s, "/// Dimensions of {what} 0 in the model's internal (NHWC) layout.")?;
    writeln!(s, "pub const {prefix}_SHAPE: [usize; {}] = [{}];", dims.len(), dims.join(", "))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember::format::params::UnaryParams;
    use ember::format::writer::{IoDesc, ModelBuilder, Quant};
    use ember::format::{DType, OpKind};

    /// `x [1,2,2,3] (int8) → relu → y`, with a 64-byte arena.
    fn relu_model() -> Vec<u8> {
        let mut b = ModelBuilder::new();
        let q = Quant::PerTensor { scale: 0.05, zero_point: -10 };
        let x = b.activation(DType::I8, &[1, 2, 2, 3], Some(&q)).unwrap();
        let y = b.activation(DType::I8, &[1, 2, 2, 3], Some(&q)).unwrap();
        let table = ember::quant::build_table(|v| v.max(0.0), 0.05, -10, 0.05, -10);
        let t = b.constant_of(DType::I8, &[256], &table, None).unwrap();
        b.op(OpKind::Relu, &[x, t], &[y], &UnaryParams { a: 0.0, b: 0.0 }).unwrap();
        let io = |tensor| IoDesc {
            tensor,
            name: "v".into(),
            onnx_shape: vec![1, 3, 2, 2],
            perm: vec![0, 2, 3, 1],
        };
        b.input(io(x));
        b.output(io(y));
        b.place(x, 0);
        b.place(y, 16);
        b.arena_bytes(64);
        b.finish().unwrap()
    }

    #[test]
    fn module_states_sizes_shapes_and_quantization() {
        let bytes = relu_model();
        let src = module_source(&bytes, "/m/relu.ember", Some(("/m/in.bin", 36))).unwrap();
        assert!(src.starts_with("// @generated by ember-build"));
        let n = bytes.len();
        for line in [
            format!("pub static MODEL: &ember::Aligned<[u8; {n}]> = &ember::Aligned(*include_bytes!(\"/m/relu.ember\"));"),
            "pub const ARENA_BYTES: usize = 64;".into(),
            "pub type Arena = ember::Aligned<[u8; ARENA_BYTES]>;".into(),
            "pub const OP_COUNT: usize = 1;".into(),
            "pub const INPUT_LEN: usize = 12;".into(),
            "pub const INPUT_SCALE: f32 = 0.05;".into(),
            "pub const INPUT_ZERO_POINT: i32 = -10;".into(),
            "pub const INPUT_SHAPE: [usize; 4] = [1, 2, 2, 3];".into(),
            "pub const OUTPUT_LEN: usize = 12;".into(),
            "pub const OUTPUT_SHAPE: [usize; 4] = [1, 2, 2, 3];".into(),
            "pub static INPUTS: &ember::Aligned<[u8; 36]> = &ember::Aligned(*include_bytes!(\"/m/in.bin\"));".into(),
            "pub const INPUT_COUNT: usize = 3;".into(),
        ] {
            assert!(src.lines().any(|l| l == line), "missing `{line}` in:\n{src}");
        }
        // Every item has a one-line doc comment right above it.
        let lines: Vec<&str> = src.lines().collect();
        for (i, l) in lines.iter().enumerate().filter(|(_, l)| l.starts_with("pub ")) {
            assert!(lines[i - 1].starts_with("/// "), "undocumented: {l}");
        }
    }

    /// `x [1,4] → fully_connected (2 units, int8 weights in `layout`) → y [1,2]`.
    fn fully_connected_model(layout: WeightLayout) -> Vec<u8> {
        use ember::format::params::{FullyConnectedParams, FusedAct};
        let mut b = ModelBuilder::new();
        let q = Quant::PerTensor { scale: 0.05, zero_point: -10 };
        let x = b.activation(DType::I8, &[1, 4], Some(&q)).unwrap();
        let y = b.activation(DType::I8, &[1, 2], Some(&q)).unwrap();
        let wq = Quant::PerTensor { scale: 0.01, zero_point: 0 };
        let w = b.constant_of(DType::I8, &[2, 4], &[1i8, 2, 3, 4, -5, 6, -7, 8], Some(&wq)).unwrap();
        let bias = b.constant_of(DType::I32, &[2], &[3i32, -3], None).unwrap();
        let requant = b.constant_of(DType::I32, &[1, 2], &[1i32 << 30, -2], None).unwrap();
        let p = FullyConnectedParams { act: FusedAct::NONE };
        b.op(OpKind::FullyConnected, &[x, w, bias, requant], &[y], &p).unwrap();
        let io = |tensor, n| IoDesc { tensor, name: "v".into(), onnx_shape: vec![1, n], perm: vec![0, 1] };
        b.input(io(x, 4));
        b.output(io(y, 2));
        b.place(x, 0);
        b.place(y, 16);
        b.arena_bytes(32);
        b.lay_out_weights(layout);
        b.finish().unwrap()
    }

    #[test]
    fn kernels_link_the_model_s_ops_and_weight_layouts() {
        let src = module_source(&relu_model(), "m.ember", None).unwrap();
        for line in [
            "/// The kernels this model needs: relu (int8).",
            "    const INT8: u32 = 0b00000000000000000000000001000000;",
            "    const FLOAT: u32 = 0b00000000000000000000000000000000;",
            "    const LAYOUTS: u32 = 0b00000000000000000000000000000000;",
            "    const DEPTHWISE_LAYOUTS: u32 = 0b00000000000000000000000000000000;",
        ] {
            assert!(src.lines().any(|l| l == line), "missing `{line}` in:\n{src}");
        }
        for (layout, bits) in [(WeightLayout::Standard, "001"), (WeightLayout::DspPairs, "010")] {
            let src = module_source(&fully_connected_model(layout), "m.ember", None).unwrap();
            let doc = format!(
                "/// The kernels this model needs: fully_connected (int8); int8 weights in the {} layout.",
                layout.name()
            );
            let mask = format!("    const LAYOUTS: u32 = 0b{bits:0>32};");
            for line in [doc, mask] {
                assert!(src.lines().any(|l| l == line), "missing `{line}` in:\n{src}");
            }
        }
    }

    #[test]
    fn without_inputs_there_is_no_batch() {
        let src = module_source(&relu_model(), "m.ember", None).unwrap();
        assert!(!src.contains("INPUTS") && !src.contains("INPUT_COUNT"));
    }

    #[test]
    fn a_batch_of_partial_samples_or_a_corrupt_model_is_refused() {
        let bytes = relu_model();
        let err = module_source(&bytes, "m.ember", Some(("in.bin", 30))).unwrap_err();
        assert!(err.to_string().contains("not a positive multiple of one sample (12 bytes"), "{err}");
        assert!(module_source(&bytes, "m.ember", Some(("in.bin", 0))).is_err());
        let mut corrupt = bytes.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert!(module_source(&corrupt, "m.ember", None).is_err());
    }

    #[test]
    fn generate_writes_the_module_with_absolute_paths() {
        let dir = std::env::temp_dir().join(format!("ember-build-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (model, inputs, out) = (dir.join("m.ember"), dir.join("in.bin"), dir.join("model.rs"));
        std::fs::write(&model, relu_model()).unwrap();
        std::fs::write(&inputs, [0u8; 24]).unwrap();
        generate(&model, Some(&inputs), &out).unwrap();
        let src = std::fs::read_to_string(&out).unwrap();
        let abs = std::fs::canonicalize(&inputs).unwrap();
        assert!(src.contains(&format!("include_bytes!({:?})", abs.to_str().unwrap())));
        assert!(src.contains("pub const INPUT_COUNT: usize = 2;"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
