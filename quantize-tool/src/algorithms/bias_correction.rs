//! Empirical bias correction (Nagel et al. 2019, §4.2; NNCF's fast bias correction).
//!
//! Rounding the weights `W` to `W_q` shifts the mean of every output channel by
//! `E[(W_q − W) · x]`, which later layers and the activation ranges do not expect. This variant
//! measures, over the calibration samples run through the float model, the mean input window of
//! each conv, depthwise conv and fully connected layer: `E[x]` at every kernel tap and input
//! channel (zero padding included, so border pixels count exactly), or at every input feature.
//! Since the error is linear in `x`, `E[(W_q − W) · x] = (W_q − W) · E[x]`, and that is
//! subtracted from the float bias before int8 is written. Each layer's mean output error over
//! the samples is then zero when it is fed float inputs. One pass over the samples; memory is
//! one window of sums per layer, whatever the number of samples.

use anyhow::{Context, Result};
use ember::{Hook, Model, OpEvent, OpOutput};

use crate::graph::{Graph, Node, Op};
use crate::host::{to_internal, Runner};
use crate::quantize::{dequantized_weights, weight_axis, Granularity};
use crate::samples::SampleSource;

/// Running sums of one layer's input windows.
struct WindowSums {
    node: usize,
    sums: Vec<f64>,
    windows: f64,
}

/// Corrects the bias of every weighted layer of `graph` for the rounding of its weights at
/// `weights` granularity, measured over `source` on `model`, the f32 Ember model of `graph`
/// (op `i` computes node `i`). Returns the number of layers corrected.
pub fn correct_biases(
    graph: &mut Graph,
    model: &Model,
    source: &dyn SampleSource,
    weights: Granularity,
) -> Result<usize> {
    let mut layers: Vec<WindowSums> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| weight_axis(&n.op).is_some())
        .map(|(node, n)| WindowSums { node, sums: vec![0.0; window_len(graph, n)], windows: 0.0 })
        .collect();
    // The layers reading each tensor.
    let mut readers = vec![Vec::new(); graph.tensors.len()];
    layers.iter().enumerate().for_each(|(l, s)| readers[graph.nodes[s.node].inputs[0]].push(l));
    let mut runner = Runner::new(model);
    let mut hook = Accumulate { graph, readers: &readers, layers: &mut layers };
    source.for_each(&mut |sample| {
        for (i, (io, x)) in graph.inputs.iter().zip(sample).enumerate() {
            let values = to_internal(&model.input(i)?, x)?;
            hook.observe(io.tensor, &values);
        }
        runner.run_with(sample, &mut hook)?;
        Ok(())
    })?;
    let mut corrected = 0;
    for layer in &layers {
        if layer.windows == 0.0 {
            continue;
        }
        let node = &graph.nodes[layer.node];
        let mean: Vec<f64> = layer.sums.iter().map(|s| s / layer.windows).collect();
        let shift = mean_error(graph, node, &mean, weights)?;
        let bias = graph.tensors[node.inputs[2]].data.as_mut().context("the bias must be constant")?;
        bias.iter_mut().zip(&shift).for_each(|(b, s)| *b -= *s as f32);
        corrected += 1;
    }
    Ok(corrected)
}

/// Values in one input window of a weighted node: kernel taps × input channels, or features.
fn window_len(graph: &Graph, node: &Node) -> usize {
    let x = &graph.tensors[node.inputs[0]].shape;
    let w = &graph.tensors[node.inputs[1]].shape;
    match node.op {
        Op::Conv2d(_) | Op::DepthwiseConv2d(_) => w[1] * w[2] * x[3],
        _ => w[1],
    }
}

/// `(W_q − W) · E[x]` for every output channel of `node`, `mean` being its mean input window.
fn mean_error(graph: &Graph, node: &Node, mean: &[f64], weights: Granularity) -> Result<Vec<f64>> {
    let w = &graph.tensors[node.inputs[1]];
    let data = w.data.as_deref().context("the weights must be constant")?;
    let axis = weight_axis(&node.op).context("not a weighted op")?;
    let rounded = dequantized_weights(data, &w.shape, axis, weights);
    let delta = rounded.iter().zip(data).map(|(q, w)| f64::from(q - w));
    let units = w.shape[axis];
    let mut shift = vec![0f64; units];
    if let Op::DepthwiseConv2d(_) = node.op {
        // w [1,KH,KW,C·mult]: output channel o reads input channel o / mult at every tap.
        let channels = graph.tensors[node.inputs[0]].shape[3];
        let mult = units / channels;
        for (i, d) in delta.enumerate() {
            let (tap, o) = (i / units, i % units);
            shift[o] += d * mean[tap * channels + o / mult];
        }
    } else {
        // w [Cout, window]: the window is laid out as the mean is.
        for (i, d) in delta.enumerate() {
            shift[i / mean.len()] += d * mean[i % mean.len()];
        }
    }
    Ok(shift)
}

/// Adds every input window of the layers reading each op output to their sums.
struct Accumulate<'a> {
    graph: &'a Graph,
    readers: &'a [Vec<usize>],
    layers: &'a mut [WindowSums],
}

impl Accumulate<'_> {
    fn observe(&mut self, tensor: usize, x: &[f32]) {
        for &l in &self.readers[tensor] {
            let layer = &mut self.layers[l];
            let node = &self.graph.nodes[layer.node];
            layer.windows += add_windows(self.graph, node, x, &mut layer.sums);
        }
    }
}

impl Hook for Accumulate<'_> {
    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        if let Some(values) = output.as_f32() {
            let tensor = self.graph.nodes[event.index as usize].outputs[0];
            self.observe(tensor, values);
        }
    }
}

/// Adds every input window `node` reads from `x` to `sums`; returns how many windows.
fn add_windows(graph: &Graph, node: &Node, x: &[f32], sums: &mut [f64]) -> f64 {
    let c = match &node.op {
        Op::Conv2d(c) | Op::DepthwiseConv2d(c) => c,
        _ => {
            x.chunks_exact(sums.len())
                .for_each(|row| sums.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v)));
            return (x.len() / sums.len()) as f64;
        }
    };
    let shape = &graph.tensors[node.inputs[0]].shape;
    let (n, h, w, ch) = (shape[0], shape[1], shape[2], shape[3]);
    let kernel = &graph.tensors[node.inputs[1]].shape;
    let (kh, kw) = (kernel[1], kernel[2]);
    let out = &graph.tensors[node.outputs[0]].shape;
    let (oh, ow) = (out[1], out[2]);
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ky in 0..kh {
                    let iy =
                        (oy * c.stride[0] + ky * c.dilation[0]).checked_sub(c.pads[0]).filter(|&y| y < h);
                    let Some(iy) = iy else { continue };
                    for kx in 0..kw {
                        let ix =
                            (ox * c.stride[1] + kx * c.dilation[1]).checked_sub(c.pads[1]).filter(|&v| v < w);
                        let Some(ix) = ix else { continue };
                        let at = ((b * h + iy) * w + ix) * ch;
                        let tap = (ky * kw + kx) * ch;
                        sums[tap..tap + ch]
                            .iter_mut()
                            .zip(&x[at..at + ch])
                            .for_each(|(s, &v)| *s += f64::from(v));
                    }
                }
            }
        }
    }
    (n * oh * ow) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::Precision;
    use crate::graph::{Activation, Conv, GraphIo};
    use crate::pipeline::build;
    use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

    /// x [1,4,4,2] → conv 3×3 pad 1 (3 channels, no activation) → y, with weights whose rounding
    /// per tensor is coarse for the small channels.
    fn conv_graph() -> Graph {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 4, 4, 2], None);
        let w: Vec<f32> =
            (0..54).map(|i| ((i * 37 % 23) as f32 - 11.0) * [1.0, 0.03, 0.011][i / 18]).collect();
        let w = g.add_tensor("w", vec![3, 3, 3, 2], Some(w));
        let b = g.add_tensor("b", vec![3], Some(vec![0.1, -0.2, 0.3]));
        let conv = Op::Conv2d(Conv { stride: [1, 1], dilation: [1, 1], pads: [1; 4], act: Activation::None });
        let y = g.add_node("conv", conv, vec![x, w, b], "y", None).unwrap();
        let io = |tensor, name: &str| GraphIo {
            tensor,
            name: name.into(),
            onnx_shape: g.tensors[tensor].shape.clone(),
            perm: vec![0, 1, 2, 3],
        };
        let (i, o) = (io(x, "x"), io(y, "y"));
        g.inputs.push(i);
        g.outputs.push(o);
        g
    }

    #[test]
    fn corrected_bias_cancels_the_mean_rounding_error_on_float_inputs() {
        let g = conv_graph();
        let samples: Vec<Vec<ArrayD<f32>>> = (0..5)
            .map(|s| {
                vec![ArrayD::from_shape_fn(IxDyn(&[1, 4, 4, 2]), |i| {
                    1.0 + ((i[1] * 7 + i[2] * 3 + i[3] + s) % 5) as f32
                })]
            })
            .collect();
        let float = build(&g, Precision::F32, None).unwrap();
        let file = crate::host::ModelFile::from_bytes(&float.bytes);
        let model = file.model().unwrap();
        let mut corrected = g.clone();
        assert_eq!(
            correct_biases(&mut corrected, &model, &samples.as_slice(), Granularity::PerTensor).unwrap(),
            1
        );
        // The float graph with rounded weights and the corrected bias has the same mean output
        // per channel as the original, over the same samples.
        let mut rounded = corrected.clone();
        let w = rounded.nodes[0].inputs[1];
        let t = &mut rounded.tensors[w];
        t.data = Some(dequantized_weights(t.data.as_deref().unwrap(), &t.shape, 0, Granularity::PerTensor));
        let mean = |g: &Graph| {
            let mut m = [0f64; 3];
            for s in &samples {
                let y = crate::graph::eval::run(g, &[s[0].iter().copied().collect()]).unwrap();
                y[0].iter().enumerate().for_each(|(i, &v)| m[i % 3] += f64::from(v));
            }
            m
        };
        let (want, got) = (mean(&g), mean(&rounded));
        let mut uncorrected = rounded.clone();
        uncorrected.tensors[rounded.nodes[0].inputs[2]] = g.tensors[g.nodes[0].inputs[2]].clone();
        let before = mean(&uncorrected);
        for c in 0..3 {
            assert!((want[c] - got[c]).abs() < 1e-3, "channel {c}: {} vs {}", want[c], got[c]);
        }
        assert!(
            (want[1] - before[1]).abs() > 0.1,
            "the rounding must shift channel 1's mean for the test to mean anything"
        );
    }
}
