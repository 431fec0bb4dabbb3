//! Calibration: runs the f32 model over sample inputs and records every tensor's range.

use anyhow::Result;
use ember::{Hook, Model, OpEvent, OpOutput};
use tract_onnx::prelude::tract_ndarray::ArrayD;

use crate::graph::Graph;
use crate::host::Runner;
use crate::quantize::Ranges;

struct RangeHook<'a> {
    op_outputs: &'a [usize],
    ranges: &'a mut Ranges,
}

impl Hook for RangeHook<'_> {
    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        if let Some(values) = output.as_f32() {
            widen(&mut self.ranges[self.op_outputs[event.index as usize]], values.iter().copied());
        }
    }
}

fn widen(range: &mut Option<(f32, f32)>, values: impl IntoIterator<Item = f32>) {
    for v in values {
        let r = range.get_or_insert((v, v));
        *r = (r.0.min(v), r.1.max(v));
    }
}

/// Min/max of every IR tensor over `samples` (each a list of inputs in ONNX layout), using
/// the f32 Ember `model` lowered from `graph` whose op `i` computes IR tensor `op_outputs[i]`.
pub fn calibrate(
    graph: &Graph,
    model: &Model,
    op_outputs: &[usize],
    samples: &[Vec<ArrayD<f32>>],
) -> Result<Ranges> {
    let mut ranges: Ranges = vec![None; graph.tensors.len()];
    let mut runner = Runner::new(model);
    for sample in samples {
        for (io, x) in graph.inputs.iter().zip(sample) {
            widen(&mut ranges[io.tensor], x.iter().copied());
        }
        runner.run_with(sample, &mut RangeHook { op_outputs, ranges: &mut ranges })?;
    }
    Ok(ranges)
}
