//! The per-layer debugger: how much quantization error each layer of a model adds, as the SQNR
//! of its int8 output against the float model's, over calibration samples.
//!
//! Two figures per layer (IR node, one Ember op):
//! * **alone**: the node by itself as a one-op int8 model: its inputs are the float model's
//!   activations quantized with their calibrated parameters, its weights int8 per channel and
//!   its bias int32, its output dequantized and compared with the float output. This is the
//!   error the layer adds itself.
//! * **cumulative**: the whole int8 model run on the samples, each op's output dequantized and
//!   compared with the float model's: the error of everything up to that layer.
//!
//! Both run the runtime's own int8 kernels on models emitted as `quantize` emits them, so the
//! figures are the device's arithmetic, not a simulation of it. Layers are ranked by their
//! alone SQNR, worst first, and flagged by [`flag`]'s rule.

pub mod plot;
pub mod report;

use std::collections::HashMap;

use anyhow::{ensure, Context, Result};
use ember::format::DType;
use ember::{quant, Hook, OpEvent, OpOutput};
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

use crate::calibrate::Method;
use crate::emit::Precision;
use crate::graph::{Graph, GraphIo, Node, TensorId};
use crate::host::{to_internal, ModelFile, Runner};
use crate::metrics::Sqnr;
use crate::pipeline::{self, calibrated_params, Calibration};
use crate::plan::Options;
use crate::provenance::{record, Origin};
use crate::quantize::QParams;

/// Default of [`flag`]'s margin: a layer this many dB under the median has ten times its noise.
pub const DEFAULT_FLAG_DB: f64 = 10.0;

/// One layer's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Position in execution order (the Ember op index).
    pub index: usize,
    /// The node's name.
    pub name: String,
    /// The op kind.
    pub op: &'static str,
    /// The output tensor's name.
    pub tensor: String,
    /// SQNR in dB of the layer quantized alone (infinite: no error at all).
    pub alone_db: f64,
    /// SQNR in dB of the layer's output in the whole int8 model.
    pub cumulative_db: f64,
    /// Whether [`flag`] singles the layer out.
    pub flagged: bool,
}

/// What the debugger found.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Every layer, in execution order.
    pub layers: Vec<Layer>,
    /// Samples compared.
    pub samples: usize,
    /// The calibration method of the int8 model.
    pub method: Method,
    /// Median of the layers' finite alone SQNRs.
    pub median_db: f64,
    /// Layers whose alone SQNR is under `median_db - flag_db` are flagged.
    pub flag_db: f64,
}

impl Analysis {
    /// The layers ranked by alone SQNR, worst first (ties: cumulative SQNR, then order).
    pub fn ranked(&self) -> Vec<&Layer> {
        let mut ranked: Vec<&Layer> = self.layers.iter().collect();
        ranked.sort_by(|a, b| {
            a.alone_db.total_cmp(&b.alone_db).then(a.cumulative_db.total_cmp(&b.cumulative_db))
        });
        ranked
    }

    /// The SQNR under which a layer is flagged.
    pub fn threshold_db(&self) -> f64 {
        self.median_db - self.flag_db
    }
}

/// Flags every layer whose alone SQNR is more than `flag_db` under the median of all layers'
/// (finite) alone SQNRs, and returns that median. Most layers of a well-quantized model add
/// similar noise, so the median is the model's norm whatever its overall precision, and a
/// layer far below it adds far more noise than its peers (10 dB: ten times the noise power).
pub fn flag(layers: &mut [Layer], flag_db: f64) -> f64 {
    let mut finite: Vec<f64> = layers.iter().map(|l| l.alone_db).filter(|v| v.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let median = match finite.len() {
        0 => f64::INFINITY,
        n if n % 2 == 1 => finite[n / 2],
        n => (finite[n / 2 - 1] + finite[n / 2]) / 2.0,
    };
    for layer in layers.iter_mut() {
        layer.flagged = layer.alone_db < median - flag_db;
    }
    median
}

/// Calibrates `graph` as `calib` says, then measures every layer's SQNR alone and cumulative
/// over the same samples, flagging layers more than `flag_db` under the median.
pub fn analyze(graph: &Graph, calib: Calibration<'_>, flag_db: f64) -> Result<Analysis> {
    let (qparams, _) = calibrated_params(graph, calib)?;
    let float = pipeline::build(graph, Precision::F32, None)?;
    let provenance = record(&Origin::default(), Precision::Int8, None);
    let int8 = pipeline::write(graph, Precision::Int8, Some(&qparams), Options::default(), &provenance)?;
    let alone: Vec<Alone> =
        graph.nodes.iter().map(|node| Alone::new(graph, node, &qparams)).collect::<Result<_>>()?;
    let (float, int8) = (ModelFile::from_bytes(&float.bytes), ModelFile::from_bytes(&int8.bytes));
    let (float, int8) = (float.model()?, int8.model()?);
    let ops = graph.nodes.len();
    ensure!(
        float.op_count() == ops && int8.op_count() == ops,
        "internal error: {ops} nodes became {} f32 and {} int8 ops; the debugger needs one op per node",
        float.op_count(),
        int8.op_count()
    );
    let files: Vec<ModelFile> = alone.iter().map(|a| ModelFile::from_bytes(&a.bytes)).collect();
    let models = files.iter().map(ModelFile::model).collect::<Result<Vec<_>>>()?;
    let mut runners: Vec<Runner> = models.iter().map(Runner::new).collect();
    let (mut float_runner, mut int8_runner) = (Runner::new(&float), Runner::new(&int8));
    let mut sqnr_alone = vec![Sqnr::default(); ops];
    let mut sqnr_cumulative = vec![Sqnr::default(); ops];
    let mut values: Vec<Option<Vec<f32>>> = vec![None; graph.tensors.len()];
    let mut samples = 0;
    calib.source.for_each(&mut |sample| {
        for (i, (io, x)) in graph.inputs.iter().zip(sample).enumerate() {
            values[io.tensor] = Some(to_internal(&float.input(i)?, x)?);
        }
        let mut outputs = vec![Vec::new(); ops];
        float_runner.run_with(sample, &mut Record { outputs: &mut outputs })?;
        for (node, output) in graph.nodes.iter().zip(outputs) {
            values[node.outputs[0]] = Some(output);
        }
        let mut compare = Compare { graph, values: &values, sqnr: &mut sqnr_cumulative, compared: 0 };
        int8_runner.run_with(sample, &mut compare)?;
        ensure!(
            compare.compared == ops,
            "internal error: the int8 model showed {} of {ops} op outputs",
            compare.compared
        );
        for ((a, runner), sqnr) in alone.iter().zip(&mut runners).zip(&mut sqnr_alone) {
            let inputs = a
                .inputs
                .iter()
                .map(|&t| {
                    let x = values[t].clone().context("internal error: a layer input was not computed")?;
                    Ok(ArrayD::from_shape_vec(IxDyn(&graph.tensors[t].shape), x)?)
                })
                .collect::<Result<Vec<_>>>()?;
            let out = runner.run(&inputs)?.swap_remove(0);
            let reference =
                values[a.output].as_deref().context("internal error: a layer output was not computed")?;
            sqnr.add(reference, out.as_slice().context("internal error: a non-contiguous output")?);
        }
        samples += 1;
        Ok(())
    })?;
    let mut layers: Vec<Layer> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| Layer {
            index,
            name: node.name.clone(),
            op: node.op.kind(),
            tensor: graph.tensors[node.outputs[0]].name.clone(),
            alone_db: sqnr_alone[index].db(),
            cumulative_db: sqnr_cumulative[index].db(),
            flagged: false,
        })
        .collect();
    let median_db = flag(&mut layers, flag_db);
    Ok(Analysis { layers, samples, method: calib.method, median_db, flag_db })
}

/// One node as an int8 model of its own: its activation inputs are the model's inputs, in the
/// internal layout.
struct Alone {
    bytes: Vec<u8>,
    /// The IR tensors the model's inputs take, in order.
    inputs: Vec<TensorId>,
    /// The IR tensor it computes.
    output: TensorId,
}

impl Alone {
    fn new(graph: &Graph, node: &Node, qparams: &[Option<QParams>]) -> Result<Self> {
        let mut single = Graph::default();
        let mut ids: HashMap<TensorId, TensorId> = HashMap::new();
        let mut origin = Vec::new();
        for &t in node.inputs.iter().chain(&node.outputs) {
            if ids.contains_key(&t) {
                continue;
            }
            let tensor = &graph.tensors[t];
            let id = single.add_tensor(tensor.name.clone(), tensor.shape.clone(), tensor.data.clone());
            ids.insert(t, id);
            origin.push(t);
            let io = GraphIo {
                tensor: id,
                name: tensor.name.clone(),
                onnx_shape: tensor.shape.clone(),
                perm: (0..tensor.shape.len()).collect(),
            };
            if t == node.outputs[0] {
                single.outputs.push(io);
            } else if tensor.data.is_none() {
                single.inputs.push(io);
            }
        }
        single.nodes.push(Node {
            inputs: node.inputs.iter().map(|t| ids[t]).collect(),
            outputs: vec![ids[&node.outputs[0]]],
            ..node.clone()
        });
        let qparams: Vec<Option<QParams>> = origin.iter().map(|&t| qparams[t]).collect();
        let provenance = record(&Origin::default(), Precision::Int8, None);
        let written =
            pipeline::write(&single, Precision::Int8, Some(&qparams), Options::default(), &provenance)
                .with_context(|| format!("node '{}' ({}) alone", node.name, node.op.kind()))?;
        let inputs = single.inputs.iter().map(|io| origin[io.tensor]).collect();
        Ok(Self { bytes: written.bytes, inputs, output: node.outputs[0] })
    }
}

/// Keeps every op's f32 output.
struct Record<'a> {
    outputs: &'a mut [Vec<f32>],
}

impl Hook for Record<'_> {
    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        if let Some(values) = output.as_f32() {
            self.outputs[event.index as usize] = values.to_vec();
        }
    }
}

/// Compares every int8 op output, dequantized, with the float value of the same IR tensor.
struct Compare<'a> {
    graph: &'a Graph,
    values: &'a [Option<Vec<f32>>],
    sqnr: &'a mut [Sqnr],
    compared: usize,
}

impl Hook for Compare<'_> {
    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        let i = event.index as usize;
        let Some(reference) = self.values[self.graph.nodes[i].outputs[0]].as_deref() else { return };
        let (scale, zero_point) = output.tensor.scale_zero_point();
        let real: Vec<f32> = match (output.tensor.dtype, output.as_i8(), output.as_f32()) {
            (DType::I8, Some(q), _) => {
                q.iter().map(|&q| quant::dequantize_i8(q, scale, zero_point)).collect()
            }
            (_, _, Some(values)) => values.to_vec(),
            _ => return,
        };
        self.sqnr[i].add(reference, &real);
        self.compared += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Activation, Conv, Op};

    /// A two-conv model (3x3, 4 channels, ReLU; then 1x1 to 4 channels whose weights of the
    /// last input channel are `last`) on 8x8 inputs, and 16 fixed samples in [-1, 1].
    fn two_convs(last: f32) -> (Graph, Vec<Vec<ArrayD<f32>>>) {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 8, 8, 1], None);
        g.inputs.push(GraphIo {
            tensor: x,
            name: "x".into(),
            onnx_shape: vec![1, 8, 8, 1],
            perm: vec![0, 1, 2, 3],
        });
        let conv = |act| Op::Conv2d(Conv { stride: [1, 1], dilation: [1, 1], pads: [1, 1, 1, 1], act });
        let w1: Vec<f32> = (0..36).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
        let w1 = g.add_tensor("w1", vec![4, 3, 3, 1], Some(w1));
        // The last channel is always 0 after the ReLU.
        let b1 = g.add_tensor("b1", vec![4], Some(vec![0.1, -0.2, 0.0, -100.0]));
        let h = g.add_node("conv1", conv(Activation::Relu), vec![x, w1, b1], "h", None).unwrap();
        // Each output channel's weight of that dead channel is `last`: far above the others,
        // it sets the per-channel scale and rounds the weights that matter to 0, a deliberately
        // bad layer whose float output it does not change.
        let w2: Vec<f32> =
            (0..16).map(|i| if i % 4 == 3 { last } else { ((i % 3) as f32 - 1.0) * 0.1 + 0.05 }).collect();
        let w2 = g.add_tensor("w2", vec![4, 1, 1, 4], Some(w2));
        let b2 = g.add_tensor("b2", vec![4], Some(vec![0.0; 4]));
        let conv_1x1 =
            Op::Conv2d(Conv { stride: [1, 1], dilation: [1, 1], pads: [0; 4], act: Activation::None });
        let y = g.add_node("conv2", conv_1x1, vec![h, w2, b2], "y", None).unwrap();
        g.outputs.push(GraphIo {
            tensor: y,
            name: "y".into(),
            onnx_shape: vec![1, 8, 8, 4],
            perm: vec![0, 1, 2, 3],
        });
        g.validate().unwrap();
        let samples = (0..16)
            .map(|s| {
                let v =
                    (0..64).map(|i| (((s * 64 + i) * 2654435761usize % 1000) as f32 / 500.0) - 1.0).collect();
                vec![ArrayD::from_shape_vec(IxDyn(&[1, 8, 8, 1]), v).unwrap()]
            })
            .collect();
        (g, samples)
    }

    fn analysis(graph: &Graph, samples: &[Vec<ArrayD<f32>>], flag_db: f64) -> Analysis {
        let calib = Calibration { source: &samples, method: Method::MinMax };
        analyze(graph, calib, flag_db).unwrap()
    }

    #[test]
    fn a_layer_with_bad_weights_ranks_first_and_is_flagged() {
        let (good, samples) = two_convs(0.2);
        let a = analysis(&good, &samples, 6.0);
        assert_eq!(a.samples, 16);
        for l in &a.layers {
            assert!(l.alone_db > 25.0 && l.cumulative_db > 20.0, "{l:?}");
            assert!(!l.flagged, "{l:?}");
        }
        let (bad, samples) = two_convs(100.0);
        let a = analysis(&bad, &samples, 6.0);
        let ranked = a.ranked();
        assert_eq!(ranked[0].name, "conv2", "{ranked:?}");
        assert!(ranked[0].flagged && !ranked[1].flagged, "{ranked:?}");
        assert!(ranked[0].alone_db < a.threshold_db(), "{a:?}");
        // The first layer is the same in both models.
        assert_eq!(a.layers[0].alone_db, analysis(&good, &samples, 6.0).layers[0].alone_db);
    }

    #[test]
    fn the_first_layer_alone_is_the_first_layer_cumulative() {
        // Nothing before the first layer is quantized but its input, in both runs.
        let (g, samples) = two_convs(0.2);
        let a = analysis(&g, &samples, DEFAULT_FLAG_DB);
        assert_eq!(a.layers[0].alone_db, a.layers[0].cumulative_db);
    }

    #[test]
    fn layers_far_under_the_median_are_flagged() {
        let layer = |alone_db| Layer {
            index: 0,
            name: String::new(),
            op: "Relu",
            tensor: String::new(),
            alone_db,
            cumulative_db: 0.0,
            flagged: false,
        };
        let mut layers: Vec<Layer> = [40.0, 38.0, f64::INFINITY, 27.0, 42.0].into_iter().map(layer).collect();
        // Finite values 27, 38, 40, 42: median 39; 27 is 12 dB under it.
        assert_eq!(flag(&mut layers, 10.0), 39.0);
        let flagged: Vec<bool> = layers.iter().map(|l| l.flagged).collect();
        assert_eq!(flagged, [false, false, false, true, false]);
        assert_eq!(flag(&mut layers, 12.5), 39.0);
        assert!(layers.iter().all(|l| !l.flagged));
    }
}
