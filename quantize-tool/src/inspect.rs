//! Human-readable description of a model file: ops, shapes, MACs, weights, memory, quantization.

use std::fmt::Write;

use ember::format::layout::WeightLayout;
use ember::format::meta::{Calibration, SourceFormat, NO_SOURCE};
use ember::format::params::ConvParams;
use ember::format::{DType, OpKind, Storage};
use ember::kernels::scratch::Target;
use ember::quant::Rounding;
use ember::{Metadata, Model, OpInfo, TensorInfo};

use crate::provenance::hex;

/// Multiply-accumulates of op `index` (0 for ops without a weight product).
pub fn op_macs(model: &Model, index: u16) -> u64 {
    let Ok(op) = model.op(index) else { return 0 };
    let (Ok(out), Some(Ok(w))) = (model.tensor(op.outputs[0]), op.inputs.get(1).map(|&w| model.tensor(w)))
    else {
        return 0;
    };
    let out_len = out.len() as u64;
    let dims: Vec<u64> = w.dims.iter().map(|&d| d as u64).collect();
    match op.kind {
        OpKind::Conv2d => out_len * dims[1..].iter().product::<u64>(),
        OpKind::DepthwiseConv2d => out_len * dims[1] * dims[2],
        OpKind::FullyConnected => out_len * dims[1],
        _ => 0,
    }
}

/// Kernel and channels of op `index` for tables: `3×3/2 3→8` (conv2d: kernel, stride, input →
/// output channels), `3×3/1 ×64` (depthwise: kernel, stride, channels), `640→128` (fully
/// connected); empty for other ops.
pub fn op_shape(model: &Model, index: u16) -> String {
    let Ok(op) = model.op(index) else { return String::new() };
    let Some(Ok(w)) = op.inputs.get(1).map(|&w| model.tensor(w)) else { return String::new() };
    let d = w.dims;
    let stride = || op.params::<ConvParams>().map_or(0, |p| p.stride[0]);
    match (op.kind, d.len()) {
        (OpKind::Conv2d, 4) => format!("{}×{}/{} {}→{}", d[1], d[2], stride(), d[3], d[0]),
        (OpKind::DepthwiseConv2d, 4) => format!("{}×{}/{} ×{}", d[1], d[2], stride(), d[3]),
        (OpKind::FullyConnected, 2) => format!("{}→{}", d[1], d[0]),
        _ => String::new(),
    }
}

fn shape(t: &TensorInfo) -> String {
    let dims: Vec<String> = t.dims.iter().map(u32::to_string).collect();
    format!("{}[{}]", t.dtype.name(), dims.join(","))
}

fn quant(t: &TensorInfo) -> String {
    match (t.quant, t.quant_axis) {
        ([], _) => String::new(),
        ([q], None) => format!(" s={:.6} zp={}", q.scale, q.zero_point),
        (qs, Some(axis)) => {
            let (lo, hi) = qs.iter().fold((f32::MAX, 0f32), |(lo, hi), q| (lo.min(q.scale), hi.max(q.scale)));
            format!(" per-channel(axis {axis}) s={lo:.2e}..{hi:.2e}")
        }
        _ => String::new(),
    }
}

/// Multi-line report of `model` (`file_len` is the file size).
pub fn report(model: &Model, file_len: usize) -> String {
    let mut s = String::new();
    let mut total_macs = 0;
    let _ = writeln!(
        s,
        "{:>4} {:>6}  {:<17} {:<34} {:<22} {:>10} {:>9}  output at",
        "op", "source", "kind", "inputs", "output", "MACs", "weights"
    );
    let metadata = model.metadata();
    let mut in_place_ops = 0;
    for index in 0..model.op_count() as u16 {
        let Ok(op) = model.op(index) else { continue };
        let mut inputs = Vec::new();
        let mut weight_bytes = 0;
        for &id in op.inputs {
            if let Ok(t) = model.tensor(id) {
                if t.storage == Storage::Constant {
                    weight_bytes += t.byte_len;
                } else {
                    inputs.push(shape(&t));
                }
            }
        }
        let Ok(out) = model.tensor(op.outputs[0]) else { continue };
        let placement = if out.alias_of.is_some() {
            " (alias)"
        } else if writes_in_place(model, &op, &out) {
            in_place_ops += 1;
            " (in place)"
        } else {
            ""
        };
        let macs = op_macs(model, index);
        total_macs += macs;
        let source = match metadata.and_then(|m| m.sources.get(index as usize).copied()) {
            None | Some(NO_SOURCE) => "-".to_string(),
            Some(source) => source.to_string(),
        };
        let rounding = if op.rounding == Rounding::Single { " (rounds once)" } else { "" };
        let _ = writeln!(
            s,
            "{index:>4} {source:>6}  {:<17} {:<34} {:<22} {macs:>10} {weight_bytes:>9}  {}{placement}{rounding}",
            op.kind.name(),
            inputs.join(" "),
            format!("{}{}", shape(&out), quant(&out)),
            out.offset
        );
    }
    let _ = writeln!(s);
    for i in 0..model.input_count() {
        if let Ok(io) = model.input(i) {
            let _ = writeln!(
                s,
                "input {i} '{}': {:?} as given, stored {}{}",
                io.name,
                io.onnx_dims,
                shape(&io.tensor),
                quant(&io.tensor)
            );
        }
    }
    for i in 0..model.output_count() {
        if let Ok(io) = model.output(i) {
            let _ = writeln!(
                s,
                "output {i} '{}': {:?} as given, stored {}{}",
                io.name,
                io.onnx_dims,
                shape(&io.tensor),
                quant(&io.tensor)
            );
        }
    }
    if let Some(line) = mixed(model, metadata.as_ref()) {
        s.push_str(&line);
    }
    match metadata {
        Some(m) => s.push_str(&provenance(&m)),
        None => s.push_str("provenance: none recorded\n"),
    }
    s.push_str(&scratch(model));
    s.push_str(&layouts(model));
    let _ = writeln!(
        s,
        "ops: {}  MACs: {total_macs}  weight bytes: {}  arena bytes: {} (in-place ops: {in_place_ops})  file bytes: {file_len}",
        model.op_count(),
        model.weight_bytes(),
        model.arena_bytes()
    );
    s
}

/// The weight layout line: tensors and bytes per layout of the int8 weights of convolutions and
/// fully connected layers (`ember-quantize --weight-layout`).
fn layouts(model: &Model) -> String {
    let mut per = [(0, 0); WeightLayout::ALL.len()];
    for index in 0..model.op_count() as u16 {
        let Ok(op) = model.op(index) else { continue };
        let laid = matches!(op.kind, OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::FullyConnected);
        if let (true, Some(Ok(w))) = (laid, op.inputs.get(1).map(|&id| model.tensor(id))) {
            if w.dtype == DType::I8 {
                per[w.layout as usize].0 += 1;
                per[w.layout as usize].1 += w.byte_len;
            }
        }
    }
    let used: Vec<String> = WeightLayout::ALL
        .into_iter()
        .zip(per)
        .filter(|(_, (n, _))| *n > 0)
        .map(|(l, (n, bytes))| format!("{} ({n} tensors, {bytes} bytes)", l.name()))
        .collect();
    match used.is_empty() {
        true => String::new(),
        false => format!("int8 weight layouts: {}\n", used.join(", ")),
    }
}

/// The kernel scratch line: the largest op's, and the kernel sets whose needs the plan meets
/// (`ember-quantize --target`).
fn scratch(model: &Model) -> String {
    let largest = (0..model.op_count() as u16).filter_map(|i| model.op(i).ok()).map(|op| op.scratch.1).max();
    let targets: Vec<&str> =
        Target::ALL.into_iter().filter(|&t| model.check_scratch(t).is_ok()).map(Target::name).collect();
    format!(
        "kernel scratch: {} bytes at most per op, enough for the kernels of: {}\n",
        largest.unwrap_or(0),
        if targets.is_empty() { "none".to_string() } else { targets.join(", ") }
    )
}

/// For a model with both int8 and float ops (`--keep-float`, `--max-drop`), the line naming the
/// float ops (with their source indices) and the conversions between the two.
fn mixed(model: &Model, metadata: Option<&Metadata>) -> Option<String> {
    let (mut float, mut int8, mut conversions) = (Vec::new(), 0, 0);
    for index in 0..model.op_count() as u16 {
        let op = model.op(index).ok()?;
        match (op.kind, model.tensor(op.outputs[0]).ok()?.dtype) {
            (OpKind::Quantize | OpKind::Dequantize, _) => conversions += 1,
            (_, DType::I8) => int8 += 1,
            _ => float.push(match metadata.and_then(|m| m.sources.get(index as usize)) {
                Some(&source) if source != NO_SOURCE => format!("{index} (source {source})"),
                _ => index.to_string(),
            }),
        }
    }
    (int8 > 0 && !float.is_empty()).then(|| {
        format!(
            "mixed precision: ops {} compute in float, {int8} in int8, {conversions} quantize/dequantize \
             ops between them\n",
            float.join(", ")
        )
    })
}

/// The provenance lines of a report.
fn provenance(m: &Metadata) -> String {
    let p = m.provenance;
    let name = |v: Option<&'static str>| v.unwrap_or("unknown");
    let format = name(SourceFormat::from_u8(p.source_format).map(SourceFormat::name));
    let mut s = String::new();
    let _ = writeln!(s, "source: {format} model, sha256 {}", hex(&p.source_sha256));
    let _ = writeln!(
        s,
        "made by: {}, precision {}, created {} (seconds since 1970-01-01 UTC)",
        p.tool(),
        name(DType::from_u8(p.precision).map(DType::name)),
        p.created_unix()
    );
    let _ = match Calibration::from_u8(p.calibration) {
        Some(Calibration::None) => writeln!(s, "calibration: none"),
        c => writeln!(
            s,
            "calibration: {}, {} samples, sha256 {}",
            name(c.map(Calibration::name)),
            p.calib_samples,
            hex(&p.calib_sha256)
        ),
    };
    s
}

/// Whether `op` writes its output `out` over one of its arena inputs (docs/FORMAT.md §10, check 27).
fn writes_in_place(model: &Model, op: &OpInfo, out: &TensorInfo) -> bool {
    op.inputs
        .iter()
        .filter_map(|&id| model.tensor(id).ok())
        .any(|t| t.storage == Storage::Arena && t.offset == out.offset && t.byte_len == out.byte_len)
}
