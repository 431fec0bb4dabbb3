//! Reading the ONNX file, resolving input shapes, and tract's shape and constant analysis.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use tract_onnx::model::ParseResult;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::support::real_inputs;
use crate::guard;

/// What to do when tract rejects a model.
const CHECK_MODEL: &str = " (check it with onnx.checker.check_model(model, full_check=True))";

/// ONNX element type code of float32.
const ONNX_FLOAT: i32 = 1;

/// Reads the ONNX protobuf of `path`.
pub(super) fn read_proto(path: &Path) -> Result<ModelProto> {
    tract_onnx::onnx().proto_model_for_path(path).with_context(|| {
        format!("cannot read ONNX model {}: check the path and that it is an .onnx file", path.display())
    })
}

/// Fails if the graph of `model` declares no outputs or no inputs.
pub(super) fn check_io(model: &ModelProto) -> Result<()> {
    ensure!(
        model.graph.as_ref().is_none_or(|g| !g.output.is_empty()),
        "the ONNX graph declares no outputs; export the model again with its outputs"
    );
    ensure!(
        model.graph.is_none() || !real_inputs(model).is_empty(),
        "the ONNX graph declares no inputs (or only initializers); export the model again with its inputs"
    );
    Ok(())
}

/// Fails if an initializer of `model` (read from `path`) keeps its data in an external file that
/// is not there, naming the tensor and the file.
pub(super) fn check_external_data(path: &Path, model: &ModelProto) -> Result<()> {
    /// `TensorProto.DataLocation.EXTERNAL`.
    const EXTERNAL: i32 = 1;
    let Some(graph) = &model.graph else { return Ok(()) };
    let dir = path.parent().unwrap_or(Path::new(""));
    for tensor in graph.initializer.iter().filter(|t| t.data_location == Some(EXTERNAL)) {
        let location = tensor.external_data.iter().find(|e| e.key == "location").map(|e| e.value.as_str());
        let Some(location) = location else {
            bail!(
                "initializer '{}' is marked as external data but names no file (no 'location' entry); \
                 save the model again with its weights inside (onnx.save(model, path, save_as_external_data=False))",
                tensor.name
            );
        };
        let file = dir.join(location);
        ensure!(
            file.is_file(),
            "initializer '{}' keeps its data in the external file '{location}', which is missing (looked for {}); \
             copy that file next to the model, or save the model with its weights inside \
             (onnx.save(model, path, save_as_external_data=False))",
            tensor.name,
            file.display()
        );
    }
    Ok(())
}

/// Concrete shape of every graph input, in ONNX order: the file's dims, `overrides`, batch 1 for a symbolic first dim.
pub(super) fn input_shapes(
    model: &ModelProto,
    overrides: &[(String, Vec<usize>)],
) -> Result<Vec<(String, Vec<usize>)>> {
    let inputs = real_inputs(model);
    for (name, _) in overrides {
        ensure!(
            inputs.iter().any(|i| &i.name == name),
            "input shape given for '{name}', but the model's inputs are: {}",
            inputs.iter().map(|i| format!("'{}'", i.name)).collect::<Vec<_>>().join(", ")
        );
    }
    inputs
        .iter()
        .map(|input| {
            let name = &input.name;
            let Some(TypeValue::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
                bail!("input '{name}' is not a tensor");
            };
            ensure!(t.elem_type == ONNX_FLOAT, "input '{name}' has ONNX element type {}; Ember models take float32 inputs", t.elem_type);
            let dims: Vec<Option<usize>> = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(Dim::DimValue(v)) if v > 0 => Some(v as usize),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some((_, shape)) = overrides.iter().find(|(n, _)| n == name) {
                ensure!(
                    shape.len() == dims.len(),
                    "input shape {shape:?} for '{name}' has rank {}, the model's input has rank {} ({})",
                    shape.len(),
                    dims.len(),
                    show_dims(&dims)
                );
                for (axis, (given, fixed)) in shape.iter().zip(&dims).enumerate() {
                    ensure!(
                        fixed.is_none_or(|f| f == *given),
                        "input shape {shape:?} for '{name}' conflicts with the model's {} at axis {axis}",
                        show_dims(&dims)
                    );
                }
                return Ok((name.clone(), shape.clone()));
            }
            let shape = dims
                .iter()
                .enumerate()
                .map(|(axis, d)| match d {
                    Some(v) => Ok(*v),
                    None if axis == 0 => Ok(1),
                    None => bail!(
                        "input '{name}' has a symbolic dimension at axis {axis} ({}); give its concrete shape \
                         with --input-shape {name}:{} (numbers in place of the ?)",
                        show_dims(&dims),
                        dims.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect::<Vec<_>>().join(",")
                    ),
                })
                .collect::<Result<_>>()?;
            Ok((name.clone(), shape))
        })
        .collect()
}

fn show_dims(dims: &[Option<usize>]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect();
    format!("[{}]", d.join(","))
}

/// What tract's analysis knows about every named ONNX tensor.
pub(super) struct Facts {
    shapes: HashMap<String, Vec<usize>>,
    consts: HashMap<String, Arc<Tensor>>,
}

impl Facts {
    /// Concrete shape of the ONNX tensor `name`.
    pub(super) fn shape(&self, name: &str) -> Result<&[usize]> {
        self.shapes
            .get(name)
            .map(Vec::as_slice)
            .with_context(|| format!("tract could not infer a concrete shape for tensor '{name}'; give the model's input shapes explicitly"))
    }

    /// Value of the ONNX tensor `name` if tract found it constant.
    pub(super) fn konst(&self, name: &str) -> Option<&Arc<Tensor>> {
        self.consts.get(name)
    }
}

/// Parses `model` with tract, fixes the input shapes and runs tract's shape and constant inference.
pub(super) fn analyse(path: &Path, model: &ModelProto, inputs: &[(String, Vec<usize>)]) -> Result<Facts> {
    let dir = path.parent().and_then(Path::to_str);
    let ParseResult { model: mut tract, unresolved_inputs, outlets_by_name } =
        guard::catch(|| tract_onnx::onnx().parse(model, dir))
            .with_context(|| format!("tract could not parse the ONNX graph{CHECK_MODEL}"))?;
    ensure!(unresolved_inputs.is_empty(), "the ONNX graph uses undefined tensors: {unresolved_inputs:?}");
    for (ix, (_, shape)) in inputs.iter().enumerate() {
        tract.set_input_fact(ix, InferenceFact::dt_shape(f32::datum_type(), shape.as_slice()))?;
    }
    guard::catch(|| tract.analyse(false))
        .with_context(|| format!("tract's shape inference failed on this model{CHECK_MODEL}"))?;
    let mut facts = Facts { shapes: HashMap::new(), consts: HashMap::new() };
    for (name, outlet) in outlets_by_name {
        let fact = tract.outlet_fact(outlet)?;
        if let Ok(Some(shape)) = fact.shape.as_concrete_finite() {
            facts.shapes.insert(name.clone(), shape.to_vec());
        }
        if let Some(value) = fact.value.concretize() {
            facts.consts.insert(name, value);
        }
    }
    Ok(facts)
}

/// Fails if a float initializer or `Constant` of `model` holds NaN or infinity, naming the tensor,
/// the first bad element and the nodes that use it: such weights quantize to garbage.
pub(super) fn check_finite_weights(model: &ModelProto, facts: &Facts) -> Result<()> {
    let Some(graph) = &model.graph else { return Ok(()) };
    let constants = graph.initializer.iter().map(|t| t.name.as_str()).chain(
        graph
            .node
            .iter()
            .filter(|n| n.op_type == "Constant")
            .filter_map(|n| n.output.first())
            .map(String::as_str),
    );
    for name in constants {
        let Some(tensor) = facts.konst(name).filter(|t| t.datum_type().is_float()) else { continue };
        let values = tensor.cast_to::<f32>()?;
        let Some((index, value)) =
            values.to_plain_array_view::<f32>()?.iter().copied().enumerate().find(|(_, v)| !v.is_finite())
        else {
            continue;
        };
        let users: Vec<String> = graph
            .node
            .iter()
            .filter(|n| n.input.iter().any(|i| i == name))
            .map(|n| format!("'{}' ({})", super::attrs::node_name(n), n.op_type))
            .collect();
        bail!(
            "weight tensor '{name}' (shape {:?}, used by {}) holds {value} at flat index {index}: \
             the weights are corrupt or training diverged. Export the model again from a checkpoint \
             with finite weights",
            tensor.shape(),
            if users.is_empty() { "no node".to_string() } else { users.join(", ") }
        );
    }
    Ok(())
}

/// The original ONNX model optimized by tract and ready to run in f32: the reference.
pub struct TractModel {
    plan: std::sync::Arc<TypedSimplePlan>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl TractModel {
    /// Loads and optimizes the model once.
    pub fn load(path: &Path, input_shapes: &[(String, Vec<usize>)]) -> Result<Self> {
        let proto = read_proto(path)?;
        let shapes = self::input_shapes(&proto, input_shapes)?;
        let mut model = guard::catch(|| tract_onnx::onnx().model_for_path(path))
            .with_context(|| format!("tract could not load the model{CHECK_MODEL}"))?;
        for (ix, (_, shape)) in shapes.iter().enumerate() {
            model.set_input_fact(ix, InferenceFact::dt_shape(f32::datum_type(), shape.as_slice()))?;
        }
        let plan = guard::catch(|| model.into_optimized()?.into_runnable())
            .context("tract could not optimize the model")?;
        Ok(Self { plan, shapes })
    }

    /// Runs one sample; inputs and outputs in ONNX layout.
    pub fn run(&self, inputs: &[tract_ndarray::ArrayD<f32>]) -> Result<Vec<tract_ndarray::ArrayD<f32>>> {
        ensure!(
            inputs.len() == self.shapes.len(),
            "the model takes {} inputs, got {}",
            self.shapes.len(),
            inputs.len()
        );
        for ((name, shape), x) in self.shapes.iter().zip(inputs) {
            ensure!(
                x.shape() == shape.as_slice(),
                "input '{name}' must have shape {shape:?}, got {:?}",
                x.shape()
            );
        }
        let values: TVec<TValue> = inputs.iter().map(|a| Tensor::from(a.clone()).into_tvalue()).collect();
        let outputs = self.plan.run(values).context("tract failed to run the model")?;
        outputs
            .into_iter()
            .map(|t| t.into_tensor().cast_to::<f32>()?.into_owned().into_plain_array::<f32>())
            .collect()
    }
}

/// Runs the original ONNX model once in f32 with tract; see [`TractModel`] to run many samples.
pub fn run_tract(
    path: &Path,
    input_shapes: &[(String, Vec<usize>)],
    inputs: &[tract_ndarray::ArrayD<f32>],
) -> Result<Vec<tract_ndarray::ArrayD<f32>>> {
    TractModel::load(path, input_shapes)?.run(inputs)
}
