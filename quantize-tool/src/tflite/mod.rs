//! `import`: int8 TFLite flatbuffers → Ember models, keeping the model's own quantization.
//!
//! The file is read with bounds-checked table accessors (`flatbuffer`, `schema`), every
//! operator is checked to be one the importer lowers (all unsupported ones reported at once),
//! then `lower` writes one Ember op per TFLite operator (none for an edge QUANTIZE or DEQUANTIZE;
//! a reshape before FULLY_CONNECTED when TFLite flattens its input), planned as `quantize` plans.

mod builtin;
mod flatbuffer;
mod lower;
mod schema;
mod tables;

use anyhow::{bail, Context, Result};

use crate::host::ModelFile;
use crate::pipeline::Written;
use crate::plan::{plan, Options};
use schema::Subgraph;

/// Converts the TFLite model `bytes` into an Ember model.
pub fn import(bytes: &[u8]) -> Result<Written> {
    let graph = Subgraph::read(bytes)?;
    let unsupported: Vec<String> = graph
        .operators
        .iter()
        .enumerate()
        .filter(|(_, op)| !builtin::SUPPORTED.contains(&op.code))
        .map(|(i, op)| format!("  operator {i}: {} (builtin code {})", builtin::name(op.code), op.code))
        .collect();
    if !unsupported.is_empty() {
        bail!(
            "{} operator(s) cannot be imported:\n{}\nsupported: {}",
            unsupported.len(),
            unsupported.join("\n"),
            builtin::SUPPORTED.iter().map(|&c| builtin::name(c)).collect::<Vec<_>>().join(", ")
        );
    }
    let mut builder = lower::lower(&graph)?;
    let plan = plan(&mut builder, Options::default());
    let bytes = builder.finish()?;
    ModelFile::from_bytes(&bytes).model().context("internal error: the imported model fails validation")?;
    Ok(Written { bytes, plan, constant_activations: Vec::new() })
}
