//! The parts of TFLite's `schema.fbs` the importer reads: the first subgraph's tensors (with
//! their constant data and quantization) and operators (with their builtin code and options).

use anyhow::{bail, ensure, Context, Result};

use super::flatbuffer::Table;

/// `TensorType` values the importer handles.
pub mod tensor_type {
    /// 32-bit float.
    pub const FLOAT32: u8 = 0;
    /// 32-bit signed integer.
    pub const INT32: u8 = 2;
    /// 8-bit signed integer.
    pub const INT8: u8 = 9;
}

/// A tensor of the subgraph.
#[derive(Clone, Debug)]
pub struct Tensor<'a> {
    /// Name.
    pub name: String,
    /// Dimensions (NHWC for images).
    pub shape: Vec<usize>,
    /// `TensorType` byte.
    pub dtype: u8,
    /// Constant contents, if any.
    pub data: Option<&'a [u8]>,
    /// Affine quantization, if any.
    pub quant: Option<Quantization>,
}

/// Affine quantization: one scale and zero point, or one per index along `axis`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantization {
    /// Scales.
    pub scales: Vec<f32>,
    /// Zero points (as many as scales).
    pub zero_points: Vec<i64>,
    /// The quantized dimension of per-channel parameters.
    pub axis: usize,
}

/// An operator of the subgraph.
#[derive(Clone, Debug)]
pub struct Operator<'a> {
    /// Builtin operator code (`BuiltinOperator`).
    pub code: i32,
    /// Input tensor indices; `None` for an omitted optional input (-1).
    pub inputs: Vec<Option<usize>>,
    /// Output tensor indices.
    pub outputs: Vec<usize>,
    /// The builtin options table, if any.
    pub options: Option<Table<'a>>,
}

/// The first subgraph of a TFLite model.
#[derive(Clone, Debug)]
pub struct Subgraph<'a> {
    /// Tensors.
    pub tensors: Vec<Tensor<'a>>,
    /// Operators, in execution order.
    pub operators: Vec<Operator<'a>>,
    /// Input tensor indices.
    pub inputs: Vec<usize>,
    /// Output tensor indices.
    pub outputs: Vec<usize>,
}

impl<'a> Subgraph<'a> {
    /// Reads the first subgraph of the TFLite flatbuffer `bytes`.
    pub fn read(bytes: &'a [u8]) -> Result<Self> {
        ensure!(
            bytes.get(4..8) == Some(b"TFL3"),
            "not a TFLite model: the file identifier at bytes 4..8 is not \"TFL3\""
        );
        let model = Table::root(bytes)?;
        let codes = model
            .vector(1)?
            .map(|v| v.tables())
            .transpose()?
            .unwrap_or_default()
            .iter()
            // The deprecated byte code holds codes below 127; newer ones live in field 3.
            .map(|c| Ok(i32::from(c.scalar::<i8>(0, 0)?).max(c.scalar::<i32>(3, 0)?)))
            .collect::<Result<Vec<i32>>>()?;
        let buffers = model.vector(4)?.map(|v| v.tables()).transpose()?.unwrap_or_default();
        let subgraphs = model.vector(2)?.context("the model has no subgraph")?;
        ensure!(!subgraphs.is_empty(), "the model has no subgraph");
        let graph = subgraphs.table(0)?;
        let index = |v: i32, what: &str| -> Result<usize> {
            usize::try_from(v).with_context(|| format!("corrupt model: {what} index {v}"))
        };
        let tensors = graph
            .vector(0)?
            .map(|v| v.tables())
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, t)| read_tensor(&t, &buffers).with_context(|| format!("tensor {i}")))
            .collect::<Result<Vec<_>>>()?;
        let io = |field| -> Result<Vec<usize>> {
            graph.scalars::<i32>(field)?.into_iter().map(|v| index(v, "input/output tensor")).collect()
        };
        let (inputs, outputs) = (io(1)?, io(2)?);
        let mut operators = Vec::new();
        for (i, op) in
            graph.vector(3)?.map(|v| v.tables()).transpose()?.unwrap_or_default().iter().enumerate()
        {
            let opcode = op.scalar::<u32>(0, 0)? as usize;
            let code = *codes.get(opcode).with_context(|| {
                format!("corrupt model: operator {i} uses operator code {opcode} of {}", codes.len())
            })?;
            let inputs = op
                .scalars::<i32>(1)?
                .into_iter()
                .map(|v| if v < 0 { Ok(None) } else { index(v, "tensor").map(Some) })
                .collect::<Result<Vec<_>>>()?;
            let outputs =
                op.scalars::<i32>(2)?.into_iter().map(|v| index(v, "tensor")).collect::<Result<_>>()?;
            operators.push(Operator { code, inputs, outputs, options: op.table(4)? });
        }
        let count = tensors.len();
        for (i, op) in operators.iter().enumerate() {
            for &t in op.inputs.iter().flatten().chain(&op.outputs) {
                ensure!(t < count, "corrupt model: operator {i} names tensor {t} of {count}");
            }
        }
        for &t in inputs.iter().chain(&outputs) {
            ensure!(t < count, "corrupt model: the subgraph's inputs or outputs name tensor {t} of {count}");
        }
        Ok(Self { tensors, operators, inputs, outputs })
    }
}

fn read_tensor<'a>(t: &Table<'a>, buffers: &[Table<'a>]) -> Result<Tensor<'a>> {
    let shape = t
        .scalars::<i32>(0)?
        .into_iter()
        .map(|d| usize::try_from(d).with_context(|| format!("dimension {d} is not a concrete size")))
        .collect::<Result<Vec<_>>>()?;
    let buffer = t.scalar::<u32>(2, 0)? as usize;
    let data = match buffers.get(buffer) {
        Some(b) if buffer > 0 => {
            if b.scalar::<u64>(1, 0)? > 1 {
                bail!(
                    "its data is stored outside the flatbuffer (a model over 2 GB), which is not supported"
                );
            }
            b.vector(0)?.map(|v| v.bytes()).transpose()?.filter(|d| !d.is_empty())
        }
        _ => None,
    };
    let quant = match t.table(4)? {
        Some(q) => {
            let scales = q.scalars::<f32>(2)?;
            let zero_points = q.scalars::<i64>(3)?;
            let axis = usize::try_from(q.scalar::<i32>(6, 0)?).context("negative quantized dimension")?;
            (!scales.is_empty()).then_some(Quantization { scales, zero_points, axis })
        }
        None => None,
    };
    Ok(Tensor { name: t.string(3)?, shape, dtype: t.scalar::<u8>(1, tensor_type::FLOAT32)?, data, quant })
}
