//! ONNX front end: ONNX file -> tract analysis -> Ember float IR ([`crate::graph`]), NHWC.
//!
//! Pipeline: [`support`] checks the protobuf and lists every unsupported node at once; [`load`]
//! resolves input shapes and runs tract-onnx's inference analysis, which gives every ONNX tensor a
//! concrete shape and evaluates every constant subgraph (initializers, `Constant`, shape
//! arithmetic, `DequantizeLinear` of constant weights, ...); [`lower`] turns each remaining ONNX
//! node into IR nodes while propagating layouts ([`layout`]); [`fold`] folds BatchNorm-style
//! affine ops and activations into their producers and cleans up layout changes.
//!
//! Why the analysed (inference) model rather than tract's typed, decluttered one: the analysed
//! model keeps one node per ONNX node with its ONNX name and attributes, so the op set to lower is
//! ONNX's own, small and documented. Typing and decluttering rewrite it into tract internals that
//! vary with the model (Relu as `Max` with a constant, Gemm as `EinSum` + `Add`, 1x1 convs as
//! `EinSum`, strided convs as `Downsample` + conv, depthwise convs moved to channel-last by axis
//! changes), lose the node names that errors must report, and would have to be pattern-matched
//! back into Ember ops. Tract stays the single source of truth for shapes and constant values
//! (every lowered tensor's shape is checked against tract's) and is the f32 reference
//! ([`run_tract`]).

mod attrs;
mod fold;
mod layout;
mod load;
mod lower;
mod support;
#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::{Context, Result};

use crate::graph::Graph;

pub use load::{run_tract, TractModel};
pub use support::{check_supported, opset_version, SUPPORTED_OPS, SUPPORTED_OPSETS};

/// Loads an ONNX model as an Ember float graph; `input_shapes` fixes symbolic input dimensions.
pub fn load_onnx(path: &Path, input_shapes: &[(String, Vec<usize>)]) -> Result<Graph> {
    let run = || -> Result<Graph> {
        let proto = load::read_proto(path)?;
        load::check_external_data(path, &proto)?;
        check_supported(&proto)?;
        load::check_io(&proto)?;
        let inputs = load::input_shapes(&proto, input_shapes)?;
        let facts = load::analyse(path, &proto, &inputs)?;
        load::check_finite_weights(&proto, &facts)?;
        let mut graph = lower::lower(&proto, &facts, &inputs)?;
        fold::fold(&mut graph);
        graph
            .validate()
            .context("internal error: the lowered graph is inconsistent; please report this model")?;
        Ok(graph)
    };
    run().with_context(|| format!("loading ONNX model {}", path.display()))
}
