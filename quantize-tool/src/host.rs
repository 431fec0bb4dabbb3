//! Runs Ember models on the host with arrays in the original model's own shapes and layout.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use ember::{AlignedBytes, Hook, Interpreter, IoInfo, Model, NoHook};
use tract_onnx::prelude::tract_ndarray::{ArrayD, Axis, IxDyn};

/// A model file loaded into aligned memory.
pub struct ModelFile {
    bytes: AlignedBytes,
}

impl ModelFile {
    /// Reads a model file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Wraps model bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self { bytes: AlignedBytes::new(bytes) }
    }

    /// The validated model (structure and every op).
    pub fn model(&self) -> Result<Model<'_>> {
        let model = Model::from_bytes(&self.bytes).context("invalid Ember model")?;
        model.validate_ops::<ember::AllKernels>().context("invalid Ember model")?;
        Ok(model)
    }

    /// File size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Runs a model over inputs given in the original (ONNX) shapes, returning outputs likewise.
pub struct Runner<'m> {
    model: &'m Model<'m>,
    arena: Vec<u8>,
}

impl<'m> Runner<'m> {
    /// Allocates the arena for `model`.
    pub fn new(model: &'m Model<'m>) -> Self {
        Self { model, arena: vec![0; model.arena_bytes() + 16] }
    }

    /// One inference.
    pub fn run(&mut self, inputs: &[ArrayD<f32>]) -> Result<Vec<ArrayD<f32>>> {
        self.run_with(inputs, &mut NoHook)
    }

    /// One inference, calling `hook` around every op.
    pub fn run_with(&mut self, inputs: &[ArrayD<f32>], hook: &mut impl Hook) -> Result<Vec<ArrayD<f32>>> {
        let model = self.model;
        ensure!(
            inputs.len() == model.input_count(),
            "the model has {} inputs, got {}",
            model.input_count(),
            inputs.len()
        );
        let mut interp = Interpreter::new(model, &mut self.arena)?;
        for (i, x) in inputs.iter().enumerate() {
            let io = model.input(i)?;
            let values = to_internal(&io, x)?;
            interp.set_input(i, &values).with_context(|| format!("input '{}'", io.name))?;
        }
        interp.invoke_with(hook)?;
        (0..model.output_count())
            .map(|i| {
                let io = model.output(i)?;
                let mut values = vec![0f32; io.tensor.len()];
                interp.get_output(i, &mut values)?;
                let internal_shape: Vec<usize> = io.tensor.dims.iter().map(|&d| d as usize).collect();
                let internal = ArrayD::from_shape_vec(IxDyn(&internal_shape), values)?;
                let mut inverse = vec![0; io.perm.len()];
                for (i, &p) in io.perm.iter().enumerate() {
                    inverse[p as usize] = i;
                }
                Ok(internal.permuted_axes(IxDyn(&inverse)).as_standard_layout().into_owned())
            })
            .collect()
    }
}

/// The values of input `x` (in the ONNX shape and layout) in the model's internal layout.
pub fn to_internal(io: &IoInfo, x: &ArrayD<f32>) -> Result<Vec<f32>> {
    let onnx: Vec<usize> = io.onnx_dims.iter().map(|&d| d as usize).collect();
    ensure!(
        x.shape() == onnx.as_slice(),
        "input '{}' must have shape {onnx:?}, got {:?}",
        io.name,
        x.shape()
    );
    let perm: Vec<usize> = io.perm.iter().map(|&p| p as usize).collect();
    Ok(x.view().permuted_axes(IxDyn(&perm)).iter().copied().collect())
}

/// Splits `data` into samples of `shape`: either `data` is one sample, or its first axis
/// counts samples of `shape` (or, for a batch-1 input, of `shape` without its batch axis).
/// Data with the right number of elements in other dims (e.g. flattened, or NHWC for an NCHW
/// input) is refused rather than silently reshaped.
pub fn samples(data: &ArrayD<f32>, shape: &[usize]) -> Result<Vec<ArrayD<f32>>> {
    if data.shape() == shape {
        return Ok(vec![data.clone()]);
    }
    crate::samples::arrays::sample_count(data.shape(), shape)?;
    data.axis_iter(Axis(0)).map(|s| Ok(s.to_owned().into_shape_with_order(IxDyn(shape))?)).collect()
}
