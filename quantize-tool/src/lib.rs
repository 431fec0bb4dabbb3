//! Ember's host-side tool: ONNX import, calibration, quantization, memory planning, model
//! writing, and running models on the host.

pub mod algorithms;
pub mod calibrate;
pub mod constant_channels;
pub mod debug;
pub mod emit;
pub mod graph;
pub mod guard;
pub mod host;
pub mod inspect;
pub mod metrics;
pub mod mixed;
pub mod npy;
pub mod onnx;
pub mod pipeline;
pub mod plan;
pub mod provenance;
pub mod quantize;
pub mod samples;
pub mod sign;
pub mod tflite;
