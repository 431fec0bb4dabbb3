//! Quantization parameters: activations from calibrated ranges (int8 asymmetric per tensor),
//! weights symmetric per output channel (or, on request, per tensor), biases in int32 — the
//! TFLite int8 spec.

use anyhow::{ensure, Result};

use crate::graph::{Graph, Op};

/// Scale and zero point of an int8 tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// Scale.
    pub scale: f32,
    /// Zero point in -128..=127.
    pub zero_point: i32,
}

/// Output quantization TFLite requires for int8 softmax.
pub const SOFTMAX_OUTPUT: QParams = QParams { scale: 1.0 / 256.0, zero_point: -128 };

impl QParams {
    /// Asymmetric int8 parameters covering `[min, max]` (widened to include 0, as TFLite does).
    pub fn from_range(min: f32, max: f32) -> Self {
        let (min, max) = (min.min(0.0), max.max(0.0));
        if (max - min).abs() < f32::EPSILON {
            return Self { scale: 1.0, zero_point: 0 };
        }
        let scale = (max - min) / 255.0;
        let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
        Self { scale, zero_point }
    }

    /// Asymmetric int8 parameters covering every value of a constant.
    pub fn covering(values: &[f32]) -> Self {
        let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Self::from_range(lo, hi)
    }

    /// Quantizes one value.
    pub fn quantize(self, x: f32) -> i8 {
        ember::quant::quantize_i8(x, self.scale, self.zero_point)
    }
}

/// Observed `(min, max)` of every tensor over the calibration set.
pub type Ranges = Vec<Option<(f32, f32)>>;

/// Per-tensor int8 parameters of every activation. Ops that move data without arithmetic
/// (pools, reshape, concat, pad, transpose) share one set between their inputs and output,
/// as TFLite requires; softmax outputs get the fixed 1/256 scale.
pub fn activation_params(graph: &Graph, ranges: &Ranges) -> Result<Vec<Option<QParams>>> {
    let n = graph.tensors.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for node in &graph.nodes {
        let shares = matches!(
            node.op,
            Op::MaxPool { .. }
                | Op::AveragePool { .. }
                | Op::Reshape
                | Op::Concat { .. }
                | Op::Pad { .. }
                | Op::Transpose { .. }
        );
        if shares {
            for &i in &node.inputs {
                let (a, b) = (find(&mut parent, i), find(&mut parent, node.outputs[0]));
                parent[a] = b;
            }
        }
    }
    let mut class_range: Vec<Option<(f32, f32)>> = vec![None; n];
    let mut class_fixed: Vec<bool> = vec![false; n];
    for node in &graph.nodes {
        if matches!(node.op, Op::Softmax { .. }) {
            let c = find(&mut parent, node.outputs[0]);
            class_fixed[c] = true;
        }
    }
    for (t, range) in ranges.iter().enumerate() {
        if let Some((lo, hi)) = *range {
            let c = find(&mut parent, t);
            let r = class_range[c].get_or_insert((lo, hi));
            *r = (r.0.min(lo), r.1.max(hi));
        }
    }
    let mut out = vec![None; n];
    for (t, tensor) in graph.tensors.iter().enumerate() {
        if tensor.data.is_some() {
            continue;
        }
        let c = find(&mut parent, t);
        out[t] = if class_fixed[c] {
            Some(SOFTMAX_OUTPUT)
        } else {
            let (lo, hi) = class_range[c].ok_or_else(|| {
                anyhow::anyhow!("tensor '{}' was never reached during calibration", tensor.name)
            })?;
            ensure!(
                lo.is_finite() && hi.is_finite(),
                "tensor '{}' saw non-finite values during calibration",
                tensor.name
            );
            Some(QParams::from_range(lo, hi))
        };
    }
    Ok(out)
}

/// How many scales a weight tensor gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Granularity {
    /// One scale per output channel (the TFLite spec).
    #[default]
    PerChannel,
    /// One scale for the whole tensor, for kernels and targets that want it.
    PerTensor,
}

/// The axis of the output channels in the weights of a conv, depthwise conv or fully
/// connected op (the layouts of [`Op`]); `None` for other ops.
pub fn weight_axis(op: &Op) -> Option<usize> {
    match op {
        Op::Conv2d(_) | Op::FullyConnected { .. } => Some(0),
        Op::DepthwiseConv2d(_) => Some(3),
        _ => None,
    }
}

/// Symmetric int8 weights: `shape[axis]` channels, each scaled so the largest magnitude of the
/// channel (per channel) or of the whole tensor (per tensor) maps to 127. Returns the values and
/// one scale per channel (all equal per tensor).
pub fn quantize_weights(
    data: &[f32],
    shape: &[usize],
    axis: usize,
    granularity: Granularity,
) -> (Vec<i8>, Vec<f32>) {
    let channels = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let channel_of = |i: usize| (i / inner) % channels;
    let mut max_abs = vec![0f32; channels];
    for (i, &w) in data.iter().enumerate() {
        let c = channel_of(i);
        max_abs[c] = max_abs[c].max(w.abs());
    }
    if granularity == Granularity::PerTensor {
        let all = max_abs.iter().copied().fold(0.0, f32::max);
        max_abs.fill(all);
    }
    let scales: Vec<f32> = max_abs.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect();
    let q = data
        .iter()
        .enumerate()
        .map(|(i, &w)| (w / scales[channel_of(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scales)
}

/// The weights as int8 represents them: [`quantize_weights`], then multiplied back.
pub fn dequantized_weights(data: &[f32], shape: &[usize], axis: usize, granularity: Granularity) -> Vec<f32> {
    let (q, scales) = quantize_weights(data, shape, axis, granularity);
    let inner: usize = shape[axis + 1..].iter().product();
    q.iter().enumerate().map(|(i, &v)| f32::from(v) * scales[(i / inner) % shape[axis]]).collect()
}

/// int32 bias with scale `input_scale × weight_scale[c]`.
pub fn quantize_bias(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> Vec<i32> {
    bias.iter()
        .zip(weight_scales)
        .map(|(&b, &ws)| {
            let s = input_scale as f64 * ws as f64;
            (b as f64 / s).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_includes_zero_and_maps_ends() {
        let q = QParams::from_range(0.5, 2.0);
        assert_eq!(q.zero_point, -128);
        assert_eq!(q.quantize(0.0), -128);
        assert_eq!(q.quantize(2.0), 127);
        // The zero point rounds (−0.5 → −1), so the top end lands one step short.
        let q = QParams::from_range(-1.0, 1.0);
        assert_eq!((q.scale, q.zero_point), (2.0 / 255.0, -1));
        assert_eq!(q.quantize(-1.0), -128);
        assert_eq!(q.quantize(0.0), -1);
        assert_eq!(q.quantize(1.0), 126);
    }

    #[test]
    fn weights_are_symmetric_per_channel() {
        let (q, s) = quantize_weights(&[1.0, -2.0, 0.5, 0.25], &[2, 2], 0, Granularity::PerChannel);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![64, -127, 127, 64]);
        let (q, s) = quantize_weights(&[0.0, 4.0, 0.0, -1.0], &[1, 2, 2], 2, Granularity::PerChannel);
        assert_eq!(s, vec![1.0, 4.0 / 127.0]);
        assert_eq!(q, vec![0, 127, 0, -32]);
    }

    #[test]
    fn weights_per_tensor_share_the_largest_magnitude() {
        let (q, s) = quantize_weights(&[1.0, -2.0, 0.5, 0.25], &[2, 2], 0, Granularity::PerTensor);
        assert_eq!(s, vec![2.0 / 127.0; 2]);
        assert_eq!(q, vec![64, -127, 32, 16]);
        let back = dequantized_weights(&[1.0, -2.0, 0.5, 0.25], &[2, 2], 0, Granularity::PerTensor);
        assert_eq!(back, vec![64.0 * 2.0 / 127.0, -2.0, 32.0 * 2.0 / 127.0, 16.0 * 2.0 / 127.0]);
    }

    #[test]
    fn bias_uses_product_scale() {
        assert_eq!(quantize_bias(&[1.0, -1.0], 0.5, &[0.25, 0.5]), vec![8, -4]);
    }
}
