//! Ember's host-side tool: ONNX import, quantization and model writing.

pub mod graph;
pub mod onnx;
