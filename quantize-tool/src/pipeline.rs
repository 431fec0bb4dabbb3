//! The quantizer's pipeline: graph → (f32 model → calibration) → quantized → planned → bytes.

use anyhow::{Context, Result};
use tract_onnx::prelude::tract_ndarray::ArrayD;

use crate::algorithms::bias_correction::correct_biases;
use crate::algorithms::equalize::{equalize, Equalized};
use crate::algorithms::{pick, Settings, Variant};
use crate::calibrate::{calibrate, Calibrated, Method};
use crate::constant_channels;
use crate::emit::{emit_mixed, Precision};
use crate::graph::Graph;
use crate::host::{ModelFile, Runner};
use crate::mixed::{Chosen, Mixed};
use crate::plan::{plan, Options, PlanReport};
use crate::provenance::{record, CalibrationSummary, Origin};
use crate::quantize::{activation_params, Granularity, QParams};
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
    /// What the int8 algorithms did (int8 only).
    pub tuning: Option<Tuning>,
}

/// The algorithms an int8 model was made with, and why.
#[derive(Clone, Debug, Default)]
pub struct Tuning {
    /// The variant written.
    pub chosen: Variant,
    /// Every variant built, with its output SQNR (dB) over f32 on the calibration samples;
    /// empty when only one was allowed (nothing to measure).
    pub tried: Vec<(Variant, f64)>,
    /// What equalization did, if it ran.
    pub equalized: Option<Equalized>,
    /// Layers whose bias was corrected.
    pub corrected: usize,
    /// The nodes kept in float (mixed precision).
    pub mixed: Chosen,
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
    build_tuned(graph, precision, calib, &Settings::default(), options, origin)
}

/// As [`build_from`], quantizing int8 weights and running the algorithms as `settings` say.
/// When `settings` allow several variants, each is built and the one [`pick`] chooses by its
/// output SQNR over f32 on the calibration samples is written (one more pass over them).
pub fn build_tuned(
    graph: &Graph,
    precision: Precision,
    calib: Option<Calibration<'_>>,
    settings: &Settings,
    options: Options,
    origin: &Origin,
) -> Result<Written> {
    if precision != Precision::Int8 {
        return write(graph, precision, None, options, &record(origin, precision, None));
    }
    let calib = calib.context("int8 needs calibration samples")?;
    build_mixed(graph, calib, settings, Mixed::None, options, origin)
}

/// As [`build_tuned`] for int8, with the nodes `mixed` chooses in float. Among several
/// variants, the all-int8 ones are compared and the chosen one is built again, mixed.
pub fn build_mixed(
    graph: &Graph,
    calib: Calibration<'_>,
    settings: &Settings,
    mixed: Mixed<'_>,
    options: Options,
    origin: &Origin,
) -> Result<Written> {
    let variants = settings.variants();
    if let [variant] = variants[..] {
        return build_variant(graph, calib, settings.weights, variant, mixed, options, origin);
    }
    let mut built = variants
        .iter()
        .map(|&v| build_variant(graph, calib, settings.weights, v, Mixed::None, options, origin))
        .collect::<Result<Vec<_>>>()?;
    let sqnr = output_sqnr(graph, &built, calib.source)?;
    let chosen = pick(&sqnr);
    let mut written = match mixed {
        Mixed::None => built.swap_remove(chosen),
        _ => build_variant(graph, calib, settings.weights, variants[chosen], mixed, options, origin)?,
    };
    if let Some(t) = &mut written.tuning {
        t.tried = variants.into_iter().zip(sqnr).collect();
    }
    Ok(written)
}

/// One int8 model of `graph` with the algorithms of `variant`: equalization before
/// calibration, bias correction (measured on the f32 model calibration ran) after it.
fn build_variant(
    graph: &Graph,
    calib: Calibration<'_>,
    weights: Granularity,
    variant: Variant,
    mixed: Mixed<'_>,
    options: Options,
    origin: &Origin,
) -> Result<Written> {
    let mut graph = graph.clone();
    let equalized = variant.equalize.then(|| equalize(&mut graph));
    let (qparams, calibrated) = calibrated_params(&graph, calib)?;
    let corrected = if variant.bias_correction {
        let float = build(&graph, Precision::F32, None)?;
        let file = ModelFile::from_bytes(&float.bytes);
        correct_biases(&mut graph, &file.model()?, calib.source, weights)?
    } else {
        0
    };
    let constant_activations = graph
        .tensors
        .iter()
        .zip(&calibrated.ranges)
        .filter(|(t, _)| t.data.is_none())
        .filter_map(|(t, r)| r.filter(|(lo, hi)| lo == hi).map(|(v, _)| (t.name.clone(), v)))
        .collect();
    let summary =
        CalibrationSummary { method: calib.method, samples: calibrated.samples, sha256: calibrated.sha256 };
    let provenance = record(origin, Precision::Int8, Some(&summary));
    let mixed = mixed.choose(&graph, &qparams, weights)?;
    let written =
        write_weights(&graph, Precision::Int8, Some(&qparams), weights, &mixed.float, options, &provenance)?;
    let tuning = Tuning { chosen: variant, tried: Vec::new(), equalized, corrected, mixed };
    Ok(Written { constant_activations, tuning: Some(tuning), ..written })
}

/// The output SQNR (dB) of every model in `built` against the f32 model of `graph` over
/// `source`, all outputs together, in one pass.
fn output_sqnr(graph: &Graph, built: &[Written], source: &dyn SampleSource) -> Result<Vec<f64>> {
    let float = build(graph, Precision::F32, None)?;
    let files: Vec<ModelFile> =
        std::iter::once(&float).chain(built).map(|w| ModelFile::from_bytes(&w.bytes)).collect();
    let models = files.iter().map(ModelFile::model).collect::<Result<Vec<_>>>()?;
    let mut runners: Vec<Runner> = models.iter().map(Runner::new).collect();
    // Signal and noise energy of every model.
    let mut energy = vec![(0f64, 0f64); built.len()];
    source.for_each(&mut |sample| {
        let reference = runners[0].run(sample)?;
        for (runner, (signal, noise)) in runners[1..].iter_mut().zip(&mut energy) {
            for (r, q) in reference.iter().zip(runner.run(sample)?) {
                for (&a, &b) in r.iter().zip(&q) {
                    *signal += f64::from(a) * f64::from(a);
                    *noise += f64::from(a - b) * f64::from(a - b);
                }
            }
        }
        Ok(())
    })?;
    Ok(energy.iter().map(|(s, n)| 10.0 * (s / n.max(f64::MIN_POSITIVE)).log10()).collect())
}

/// The int8 parameters of every activation of `graph` (`None` for constants), from ranges
/// calibrated on its f32 model, and what calibration found.
pub fn calibrated_params(
    graph: &Graph,
    calib: Calibration<'_>,
) -> Result<(Vec<Option<QParams>>, Calibrated)> {
    let float = write(
        graph,
        Precision::F32,
        None,
        Options::default(),
        &record(&Origin::default(), Precision::F32, None),
    )?;
    let file = ModelFile::from_bytes(&float.bytes);
    let model = file.model()?;
    let op_outputs: Vec<usize> = graph.nodes.iter().map(|n| n.outputs[0]).collect();
    let calibrated = calibrate(graph, &model, &op_outputs, calib.source, calib.method)?;
    Ok((activation_params(graph, &calibrated.ranges)?, calibrated))
}

/// Emits, plans and serializes `graph` at `precision` (int8 with `qparams`, one per IR tensor,
/// and per-channel weights), and re-validates the bytes.
pub fn write(
    graph: &Graph,
    precision: Precision,
    qparams: Option<&[Option<QParams>]>,
    options: Options,
    provenance: &ember::format::meta::Provenance,
) -> Result<Written> {
    write_weights(graph, precision, qparams, Granularity::PerChannel, &[], options, provenance)
}

/// As [`write`], with int8 weight scales at `weights` granularity and the nodes marked in
/// `float_nodes` in float.
fn write_weights(
    graph: &Graph,
    precision: Precision,
    qparams: Option<&[Option<QParams>]>,
    weights: Granularity,
    float_nodes: &[bool],
    options: Options,
    provenance: &ember::format::meta::Provenance,
) -> Result<Written> {
    let mut emitted = emit_mixed(graph, precision, qparams, weights, float_nodes)?;
    emitted.builder.set_provenance(*provenance);
    constant_channels::fold(&mut emitted.builder);
    emitted.builder.lay_out_weights(options.layout);
    let plan = plan(&mut emitted.builder, options);
    let bytes = emitted.builder.finish()?;
    ModelFile::from_bytes(&bytes).model().context("internal error: the written model fails validation")?;
    Ok(Written { bytes, plan, constant_activations: Vec::new(), tuning: None })
}
