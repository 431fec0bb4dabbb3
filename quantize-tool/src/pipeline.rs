//! The quantizer's pipeline: graph → (f32 model → calibration) → quantized → planned → bytes.

use anyhow::{Context, Result};
use tract_onnx::prelude::tract_ndarray::ArrayD;

use crate::calibrate::calibrate;
use crate::emit::{emit, Precision};
use crate::graph::Graph;
use crate::host::ModelFile;
use crate::plan::{plan, Options, PlanReport};
use crate::provenance::{record, Origin};
use crate::quantize::activation_params;

/// A written model and what planning found.
pub struct Written {
    /// The model file's bytes.
    pub bytes: Vec<u8>,
    /// Memory plan figures: the chosen plan's arena bytes and greedy by size's (TFLite Micro's
    /// plan), the lower bound, no reuse, ops in place.
    pub plan: PlanReport,
    /// Activations that held one value over every calibration sample (int8 only): the name and
    /// the value. Their int8 range comes from that value alone.
    pub constant_activations: Vec<(String, f32)>,
}

/// Lowers, plans and serializes `graph` at `precision`. int8 needs calibration samples (each a
/// list of inputs in ONNX layout). The provenance names no source file and time 0.
pub fn build(graph: &Graph, precision: Precision, calib: Option<&[Vec<ArrayD<f32>>]>) -> Result<Written> {
    build_with(graph, precision, calib, Options::default())
}

/// As [`build`], planning the arena with `options`.
pub fn build_with(
    graph: &Graph,
    precision: Precision,
    calib: Option<&[Vec<ArrayD<f32>>]>,
    options: Options,
) -> Result<Written> {
    build_from(graph, precision, calib, options, &Origin::default())
}

/// As [`build_with`], recording `origin` in the model's provenance.
pub fn build_from(
    graph: &Graph,
    precision: Precision,
    calib: Option<&[Vec<ArrayD<f32>>]>,
    options: Options,
    origin: &Origin,
) -> Result<Written> {
    let write_at =
        |precision, qparams| write(graph, precision, qparams, options, &record(origin, precision, calib));
    let float = write_at(Precision::F32, None)?;
    if precision == Precision::F32 {
        return Ok(float);
    }
    let (qparams, constant_activations) = match precision {
        Precision::Int8 => {
            let samples = calib.context("int8 needs calibration samples")?;
            let file = ModelFile::from_bytes(&float.bytes);
            let model = file.model()?;
            let op_outputs: Vec<usize> = graph.nodes.iter().map(|n| n.outputs[0]).collect();
            let ranges = calibrate(graph, &model, &op_outputs, samples)?;
            let constant = graph
                .tensors
                .iter()
                .zip(&ranges)
                .filter(|(t, _)| t.data.is_none())
                .filter_map(|(t, r)| r.filter(|(lo, hi)| lo == hi).map(|(v, _)| (t.name.clone(), v)))
                .collect();
            (Some(activation_params(graph, &ranges)?), constant)
        }
        _ => (None, Vec::new()),
    };
    Ok(Written { constant_activations, ..write_at(precision, qparams.as_deref())? })
}

fn write(
    graph: &Graph,
    precision: Precision,
    qparams: Option<&[Option<crate::quantize::QParams>]>,
    options: Options,
    provenance: &ember::format::meta::Provenance,
) -> Result<Written> {
    let mut emitted = emit(graph, precision, qparams)?;
    emitted.builder.set_provenance(*provenance);
    let plan = plan(&mut emitted.builder, options);
    let bytes = emitted.builder.finish()?;
    ModelFile::from_bytes(&bytes).model().context("internal error: the written model fails validation")?;
    Ok(Written { bytes, plan, constant_activations: Vec::new() })
}
