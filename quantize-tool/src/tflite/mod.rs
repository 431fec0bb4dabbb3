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

use crate::constant_channels;
use crate::emit::Precision;
use crate::host::ModelFile;
use crate::pipeline::Written;
use crate::plan::{plan, Options};
use crate::provenance::{record, Origin};
use schema::Subgraph;

/// Converts the TFLite model `bytes` into an Ember model whose provenance records `origin`
/// (uncalibrated: the quantization is the model's own), its arena planned with `options`.
pub fn import(bytes: &[u8], origin: &Origin, options: Options) -> Result<Written> {
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
    builder.set_provenance(record(origin, Precision::Int8, None));
    constant_channels::fold(&mut builder);
    builder.lay_out_weights(options.layout);
    let plan = plan(&mut builder, options);
    let bytes = builder.finish()?;
    ModelFile::from_bytes(&bytes).model().context("internal error: the imported model fails validation")?;
    Ok(Written { bytes, plan, constant_activations: Vec::new(), tuning: None })
}

#[cfg(test)]
mod tests {
    use super::flatbuffer::Table;
    use super::*;

    /// KWS with its SOFTMAX and AVERAGE_POOL_2D operator codes rewritten to `codes`.
    fn kws_with_codes(codes: [(i32, i32); 2]) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/tflite-ref/kws_ref_model_int8.tflite");
        let mut bytes = std::fs::read(path).unwrap();
        let tables = Table::root(&bytes).unwrap().vector(1).unwrap().unwrap().tables().unwrap();
        let mut patches = Vec::new();
        for t in tables {
            let code = i32::from(t.scalar::<i8>(0, 0).unwrap()).max(t.scalar::<i32>(3, 0).unwrap());
            if let Some(&(_, new)) = codes.iter().find(|(old, _)| *old == code) {
                patches.extend(t.position(0).map(|p| (p, vec![new as u8])));
                patches.extend(t.position(3).map(|p| (p, new.to_le_bytes().to_vec())));
            }
        }
        for (at, value) in patches {
            bytes[at..at + value.len()].copy_from_slice(&value);
        }
        bytes
    }

    #[test]
    fn every_unsupported_operator_is_listed() {
        let bytes = kws_with_codes([(builtin::SOFTMAX, 39), (builtin::AVERAGE_POOL_2D, 126)]);
        let err = import(&bytes, &Origin::default(), Options::default())
            .err()
            .expect("TRANSPOSE and BATCH_MATMUL are unsupported");
        let text = err.to_string();
        assert!(text.starts_with("2 operator(s) cannot be imported"), "{text}");
        assert!(text.contains("operator 9: BATCH_MATMUL (builtin code 126)"), "{text}");
        assert!(text.contains("operator 12: TRANSPOSE (builtin code 39)"), "{text}");
    }
}
