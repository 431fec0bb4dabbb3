//! Mixed precision: an int8 model with some nodes in float (f32 activations, f16 weights),
//! chosen by name (`--keep-float`) or by a search that keeps the most sensitive layers in float
//! until the model's top-1 disagreement with its f32 version fits a budget (`--max-drop`).

use anyhow::{bail, Result};
use tract_onnx::prelude::tract_ndarray::ArrayD;

use crate::emit::{emit, emit_mixed, Emitted, Precision};
use crate::graph::{Graph, Op};
use crate::host::{ModelFile, Runner};
use crate::metrics::{compare, Agreement};
use crate::plan::{plan, Options};
use crate::quantize::{Granularity, QParams};

/// Which nodes of an int8 model run in float.
#[derive(Clone, Copy, Debug, Default)]
pub enum Mixed<'a> {
    /// None: the whole model is int8.
    #[default]
    None,
    /// The nodes with these ONNX names (`--keep-float`).
    KeepFloat(&'a [String]),
    /// The most sensitive layers, as few as [`search`] finds, that bring the top-1
    /// disagreement with f32 on `samples` to at most `points` percentage points (`--max-drop`).
    MaxDrop {
        /// The budget, in percentage points of top-1 agreement.
        points: f64,
        /// The evaluation samples, each a list of inputs in ONNX layout.
        samples: &'a [Vec<ArrayD<f32>>],
    },
}

/// The float nodes of a mixed model, and the search that chose them.
#[derive(Clone, Debug, Default)]
pub struct Chosen {
    /// One flag per node (empty: all int8).
    pub float: Vec<bool>,
    /// What `--max-drop` measured.
    pub search: Option<Search>,
}

impl Mixed<'_> {
    /// The float nodes of `graph`, calibrated to `qparams`, with weights at `weights`.
    pub fn choose(&self, graph: &Graph, qparams: &[Option<QParams>], weights: Granularity) -> Result<Chosen> {
        Ok(match *self {
            Mixed::None => Chosen::default(),
            Mixed::KeepFloat(names) => Chosen { float: by_name(graph, names)?, search: None },
            Mixed::MaxDrop { points, samples } => {
                let found = search(&Evaluator::new(graph, qparams, weights, samples)?, points)?;
                Chosen { float: found.float.clone(), search: Some(found) }
            }
        })
    }
}

/// The nodes of `graph` named `names` (ONNX node names, several IR nodes may share one), as one
/// float flag per node, widened by [`follow_data_movement`].
pub fn by_name(graph: &Graph, names: &[String]) -> Result<Vec<bool>> {
    let mut float = vec![false; graph.nodes.len()];
    for name in names {
        let mut found = false;
        for (flag, node) in float.iter_mut().zip(&graph.nodes) {
            if node.name == *name {
                *flag = true;
                found = true;
            }
        }
        if !found {
            bail!(
                "--keep-float: the model has no layer '{name}' (a node folded into another, such as a \
                 BatchNormalization or a Relu after a Conv, runs with that node); its layers are: {}",
                layer_names(graph).join(", ")
            );
        }
    }
    Ok(follow_data_movement(graph, float))
}

/// The distinct node names of `graph`, in node order.
pub fn layer_names(graph: &Graph) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for node in &graph.nodes {
        if !names.contains(&node.name.as_str()) {
            names.push(&node.name);
        }
    }
    names
}

/// Whether `op` only moves or selects data (no arithmetic a float version would improve).
fn moves_data(op: &Op) -> bool {
    matches!(op, Op::Reshape | Op::Transpose { .. } | Op::Pad { .. } | Op::Concat { .. } | Op::MaxPool { .. })
}

/// `float` with every data-movement node whose activation inputs all come from float nodes
/// made float too, so no `quantize`/`dequantize` pair surrounds a reshape or a pool.
pub fn follow_data_movement(graph: &Graph, mut float: Vec<bool>) -> Vec<bool> {
    let producers = graph.producers();
    for i in 0..graph.nodes.len() {
        let node = &graph.nodes[i];
        let mut activations = node.inputs.iter().filter(|&&t| graph.tensors[t].data.is_none()).peekable();
        if moves_data(&node.op)
            && activations.peek().is_some()
            && activations.all(|&t| producers[t].is_some_and(|p| float[p]))
        {
            float[i] = true;
        }
    }
    float
}

/// Serializes emitted records with the default memory plan.
fn bytes(mut emitted: Emitted) -> Result<Vec<u8>> {
    plan(&mut emitted.builder, Options::default());
    Ok(emitted.builder.finish()?)
}

/// Runs mixed versions of one calibrated graph on fixed samples and compares their first
/// output with the graph's f32 model.
pub struct Evaluator<'a> {
    graph: &'a Graph,
    qparams: &'a [Option<QParams>],
    weights: Granularity,
    samples: &'a [Vec<ArrayD<f32>>],
    reference: Vec<Vec<f32>>,
}

impl<'a> Evaluator<'a> {
    /// Runs the f32 model of `graph` on `samples` (each a list of inputs in ONNX layout).
    pub fn new(
        graph: &'a Graph,
        qparams: &'a [Option<QParams>],
        weights: Granularity,
        samples: &'a [Vec<ArrayD<f32>>],
    ) -> Result<Self> {
        let reference = run(&bytes(emit(graph, Precision::F32, None, weights)?)?, samples)?;
        Ok(Self { graph, qparams, weights, samples, reference })
    }

    /// The agreement with f32 of the model whose nodes marked in `float` run in float.
    pub fn agreement(&self, float: &[bool]) -> Result<Agreement> {
        let model = bytes(emit_mixed(self.graph, Precision::Int8, Some(self.qparams), self.weights, float)?)?;
        Ok(compare(&self.reference, &run(&model, self.samples)?))
    }
}

/// The first output of the model in `bytes` on every sample, flattened.
fn run(bytes: &[u8], samples: &[Vec<ArrayD<f32>>]) -> Result<Vec<Vec<f32>>> {
    let file = ModelFile::from_bytes(bytes);
    let model = file.model()?;
    let mut runner = Runner::new(&model);
    samples.iter().map(|s| Ok(runner.run(s)?[0].iter().copied().collect())).collect()
}

/// Top-1 disagreement with f32 in percentage points: what `--max-drop` bounds.
pub fn drop_points(a: &Agreement) -> f64 {
    100.0 * (1.0 - a.top1)
}

/// What [`search`] found.
#[derive(Clone, Debug)]
pub struct Search {
    /// One float flag per node: the layers kept in float and the data movement following them.
    pub float: Vec<bool>,
    /// The layers kept in float (node indices), most sensitive first.
    pub kept: Vec<usize>,
    /// Each layer the search put in float, in order, with the model's agreement afterwards; the
    /// layers not in `kept` were taken out again without breaking the budget.
    pub added: Vec<(usize, Agreement)>,
    /// The all-int8 model's agreement with f32.
    pub int8: Agreement,
    /// The chosen model's agreement with f32.
    pub mixed: Agreement,
}

/// Keeps layers in float until the top-1 disagreement with f32 is at most `max_drop` points.
/// It ranks every layer that computes (not data movement) by the agreement, then the output
/// SQNR, of the model where it alone runs in float, and puts layers in float in that order until
/// the budget holds, re-evaluating after each; then it takes each one out again, last added
/// first, where the budget still holds without it. Deterministic for given samples.
pub fn search(eval: &Evaluator, max_drop: f64) -> Result<Search> {
    let graph = eval.graph;
    let none = vec![false; graph.nodes.len()];
    let int8 = eval.agreement(&none)?;
    let within = |a: &Agreement| drop_points(a) <= max_drop + 1e-9;
    if within(&int8) {
        return Ok(Search { float: none, kept: Vec::new(), added: Vec::new(), mixed: int8.clone(), int8 });
    }
    let mut ranking = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if !moves_data(&node.op) {
            let mut alone = none.clone();
            alone[i] = true;
            ranking.push((i, eval.agreement(&follow_data_movement(graph, alone))?));
        }
    }
    ranking.sort_by(|(i, a), (j, b)| {
        b.top1.total_cmp(&a.top1).then(b.sqnr_db.total_cmp(&a.sqnr_db)).then(i.cmp(j))
    });
    let mut chosen = none;
    let mut added = Vec::new();
    for &(i, _) in &ranking {
        chosen[i] = true;
        let mixed = eval.agreement(&follow_data_movement(graph, chosen.clone()))?;
        added.push((i, mixed.clone()));
        if within(&mixed) {
            break;
        }
    }
    let Some((_, mut mixed)) = added.last().cloned().filter(|(_, a)| within(a)) else {
        bail!(
            "--max-drop {max_drop}: even with every layer in float, top-1 disagreement with f32 is {:.2} \
             points (f16 weights alone flip that many samples); raise --max-drop or use --precision f32",
            added.last().map_or(0.0, |(_, a)| drop_points(a))
        )
    };
    for &(i, _) in added.iter().rev() {
        chosen[i] = false;
        let without = eval.agreement(&follow_data_movement(graph, chosen.clone()))?;
        if within(&without) {
            mixed = without;
        } else {
            chosen[i] = true;
        }
    }
    let kept = added.iter().map(|&(i, _)| i).filter(|&i| chosen[i]).collect();
    Ok(Search { float: follow_data_movement(graph, chosen), kept, added, int8, mixed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Activation, Conv, GraphIo};
    use ember::format::{DType, OpKind};

    /// x → conv "c1" → reshape "r" → fully_connected "fc" → y.
    fn graph() -> Graph {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 2, 2, 1], None);
        let w1 = g.add_tensor("w1", vec![1, 1, 1, 1], Some(vec![1.0]));
        let b1 = g.add_tensor("b1", vec![1], Some(vec![0.0]));
        let w2 = g.add_tensor("w2", vec![2, 4], Some(vec![1.0; 8]));
        let b2 = g.add_tensor("b2", vec![2], Some(vec![0.0; 2]));
        let conv = Conv { stride: [1, 1], dilation: [1, 1], pads: [0; 4], act: Activation::None };
        let h = g.add_node("c1", Op::Conv2d(conv), vec![x, w1, b1], "h", None).unwrap();
        let flat = g.add_node("r", Op::Reshape, vec![h], "flat", Some(&[1, 4])).unwrap();
        let fc = Op::FullyConnected { act: Activation::None };
        let y = g.add_node("fc", fc, vec![flat, w2, b2], "y", None).unwrap();
        let io = |tensor, name: &str, onnx_shape: Vec<usize>| GraphIo {
            tensor,
            name: name.into(),
            perm: (0..onnx_shape.len()).collect(),
            onnx_shape,
        };
        g.inputs.push(io(x, "x", vec![1, 2, 2, 1]));
        g.outputs.push(io(y, "y", vec![1, 2]));
        g
    }

    #[test]
    fn names_select_layers_and_data_movement_follows() {
        let g = graph();
        assert_eq!(by_name(&g, &["c1".into()]).unwrap(), [true, true, false]);
        assert_eq!(by_name(&g, &["fc".into()]).unwrap(), [false, false, true]);
    }

    /// The op kinds of `graph()` lowered with `names` in float, and the dtypes of its input
    /// and output.
    fn lowered(names: &[&str]) -> (Vec<OpKind>, DType, DType) {
        let g = graph();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let q = Some(QParams::from_range(-4.0, 4.0));
        let qparams: Vec<Option<QParams>> =
            g.tensors.iter().map(|t| t.data.is_none().then_some(q).flatten()).collect();
        let float = by_name(&g, &names).unwrap();
        let e = emit_mixed(&g, Precision::Int8, Some(&qparams), Granularity::PerChannel, &float).unwrap();
        let file = ModelFile::from_bytes(&bytes(e).unwrap());
        let model = file.model().unwrap();
        let kinds = (0..model.op_count() as u16).map(|i| model.op(i).unwrap().kind).collect();
        (kinds, model.input(0).unwrap().tensor.dtype, model.output(0).unwrap().tensor.dtype)
    }

    #[test]
    fn conversions_sit_where_int8_and_float_layers_meet() {
        use OpKind::*;
        assert_eq!(lowered(&[]), (vec![Conv2d, Reshape, FullyConnected], DType::I8, DType::I8));
        let first = (vec![Conv2d, Reshape, Quantize, FullyConnected], DType::F32, DType::I8);
        assert_eq!(lowered(&["c1"]), first);
        let last = (vec![Conv2d, Reshape, Dequantize, FullyConnected], DType::I8, DType::F32);
        assert_eq!(lowered(&["fc"]), last);
        assert_eq!(lowered(&["c1", "fc"]), (vec![Conv2d, Reshape, FullyConnected], DType::F32, DType::F32));
    }

    #[test]
    fn an_unknown_name_lists_the_layers() {
        let err = by_name(&graph(), &["conv9".into()]).unwrap_err().to_string();
        assert!(err.contains("no layer 'conv9'") && err.ends_with("c1, r, fc"), "{err}");
    }
}
