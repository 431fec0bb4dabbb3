//! The quantizer's pipeline: graph → (f32 model → calibration) → quantized → planned → bytes.

use anyhow::{Context, Result};
use tract_onnx::prelude::tract_ndarray::ArrayD;

use crate::calibrate::{calibrate, Method};
use crate::emit::{emit, Precision};
use crate::graph::Graph;
use crate::host::ModelFile;
use crate::plan::{plan, Options, PlanReport};
use crate::provenance::{record, CalibrationSummary, Origin};
use crate::quantize::activation_params;
use crate::samples::SampleSource;

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
/// list of inputs in ONNX layout), calibrated with min/max. The provenance names no source file
/// and time 0.
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
    let calib = calib.as_ref().map(|samples| Calibration { source: samples, method: Method::MinMax });
    build_from(graph, precision, calib, options, &Origin::default())
}

/// Where int8 activation ranges come from: samples and the method that reads ranges from them.
#[derive(Clone, Copy)]
pub struct Calibration<'a> {
    /// The samples, read one at a time (twice for the histogram methods).
    pub source: &'a dyn SampleSource,
    /// How each tensor's range is chosen.
    pub method: Method,
}

/// As [`build_with`], calibrating int8 with `calib` and recording `origin` in the model's
/// provenance. Errors of the calibration data are marked [`crate::samples::DataError`].
pub fn build_from(
    graph: &Graph,
    precision: Precision,
    calib: Option<Calibration<'_>>,
    options: Options,
    origin: &Origin,
) -> Result<Written> {
    if precision != Precision::Int8 {
        return write(graph, precision, None, options, &record(origin, precision, None));
    }
    let calib = calib.context("int8 needs calibration samples")?;
    // int8 calibrates on the f32 model.
    let float = write(graph, Precision::F32, None, options, &record(origin, Precision::F32, None))?;
    let file = ModelFile::from_bytes(&float.bytes);
    let model = file.model()?;
    let op_outputs: Vec<usize> = graph.nodes.iter().map(|n| n.outputs[0]).collect();
    let calibrated = calibrate(graph, &model, &op_outputs, calib.source, calib.method)?;
    let constant_activations = graph
        .tensors
        .iter()
        .zip(&calibrated.ranges)
        .filter(|(t, _)| t.data.is_none())
        .filter_map(|(t, r)| r.filter(|(lo, hi)| lo == hi).map(|(v, _)| (t.name.clone(), v)))
        .collect();
    let qparams = activation_params(graph, &calibrated.ranges)?;
    let summary =
        CalibrationSummary { method: calib.method, samples: calibrated.samples, sha256: calibrated.sha256 };
    let provenance = record(origin, precision, Some(&summary));
    Ok(Written { constant_activations, ..write(graph, precision, Some(&qparams), options, &provenance)? })
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
