//! Naive f32 evaluator of the IR, used by tests to check the ONNX lowering against tract.

use anyhow::{ensure, Context, Result};

use super::{Activation, Conv, Graph, Op};

/// Runs the graph on inputs given in internal layout; returns the outputs in internal layout.
pub(crate) fn run(graph: &Graph, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    ensure!(
        inputs.len() == graph.inputs.len(),
        "expected {} inputs, got {}",
        graph.inputs.len(),
        inputs.len()
    );
    let mut values: Vec<Option<Vec<f32>>> = graph.tensors.iter().map(|t| t.data.clone()).collect();
    for (io, data) in graph.inputs.iter().zip(inputs) {
        values[io.tensor] = Some(data.clone());
    }
    for node in &graph.nodes {
        let ins: Vec<(&[f32], &[usize])> = node
            .inputs
            .iter()
            .map(|&t| {
                Ok((values[t].as_deref().context("input not computed")?, graph.tensors[t].shape.as_slice()))
            })
            .collect::<Result<_>>()?;
        let out_shape = &graph.tensors[node.outputs[0]].shape;
        values[node.outputs[0]] = Some(eval_op(&node.op, &ins, out_shape));
    }
    graph.outputs.iter().map(|io| values[io.tensor].clone().context("output not computed")).collect()
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Multi-index of flat position `i`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        idx[a] = i % shape[a];
        i /= shape[a];
    }
    idx
}

fn eval_op(op: &Op, ins: &[(&[f32], &[usize])], out: &[usize]) -> Vec<f32> {
    let n_out: usize = out.iter().product();
    let (x, xs) = ins[0];
    let unary = |f: &dyn Fn(f32) -> f32| x.iter().map(|&v| f(v)).collect();
    match op {
        Op::Conv2d(c) => conv(c, ins, out, false),
        Op::DepthwiseConv2d(c) => conv(c, ins, out, true),
        Op::FullyConnected { act } => {
            let (w, b) = (ins[1].0, ins[2].0);
            let (cout, k) = (ins[1].1[0], ins[1].1[1]);
            let rows = x.len() / k;
            let mut y = vec![0.0; rows * cout];
            for r in 0..rows {
                for o in 0..cout {
                    let s: f32 = (0..k).map(|i| x[r * k + i] * w[o * k + i]).sum();
                    y[r * cout + o] = act.apply(s + b[o]);
                }
            }
            y
        }
        Op::Add { act } => binary(ins, out, |a, b| act.apply(a + b)),
        Op::Mul { act } => binary(ins, out, |a, b| act.apply(a * b)),
        Op::Relu => unary(&|v| v.max(0.0)),
        Op::Clip { min, max } => unary(&|v| v.max(*min).min(*max)),
        Op::LeakyRelu { alpha } => unary(&|v| if v >= 0.0 { v } else { alpha * v }),
        Op::HardSwish => unary(&|v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0),
        Op::HardSigmoid { alpha, beta } => unary(&|v| (alpha * v + beta).clamp(0.0, 1.0)),
        Op::Sigmoid => unary(&|v| 1.0 / (1.0 + (-v).exp())),
        Op::Tanh => unary(&|v| v.tanh()),
        Op::MaxPool { kernel, stride, pads } => pool(x, xs, out, *kernel, *stride, *pads, true),
        Op::AveragePool { kernel, stride, pads } => pool(x, xs, out, *kernel, *stride, *pads, false),
        Op::Mean => {
            let (hw, c) = (xs[1] * xs[2], xs[3]);
            let mut y = vec![0.0; n_out];
            for n in 0..xs[0] {
                for ch in 0..c {
                    let s: f32 = (0..hw).map(|p| x[(n * hw + p) * c + ch]).sum();
                    y[n * c + ch] = s / hw as f32;
                }
            }
            y
        }
        Op::Reshape => x.to_vec(),
        Op::Concat { axis } => {
            let outer: usize = out[..*axis].iter().product();
            let inner: usize = out[axis + 1..].iter().product();
            let mut y = Vec::with_capacity(n_out);
            for o in 0..outer {
                for (d, s) in ins {
                    let len = s[*axis] * inner;
                    y.extend_from_slice(&d[o * len..(o + 1) * len]);
                }
            }
            y
        }
        Op::Pad { pads, value } => {
            let os = strides(out);
            let mut y = vec![*value; n_out];
            for (i, &v) in x.iter().enumerate() {
                let idx = unravel(i, xs);
                let pos: usize = idx.iter().zip(pads).zip(&os).map(|((&j, p), s)| (j + p[0]) * s).sum();
                y[pos] = v;
            }
            y
        }
        Op::Transpose { perm } => {
            let is = strides(xs);
            (0..n_out)
                .map(|i| {
                    let idx = unravel(i, out);
                    x[idx.iter().zip(perm).map(|(&j, &p)| j * is[p]).sum::<usize>()]
                })
                .collect()
        }
        Op::Softmax { axis } => {
            let st = strides(xs)[*axis];
            let len = xs[*axis];
            let mut y = vec![0.0; n_out];
            for i in 0..n_out {
                if !(i / st).is_multiple_of(len) {
                    continue;
                }
                let m = (0..len).map(|j| x[i + j * st]).fold(f32::MIN, f32::max);
                let s: f32 = (0..len).map(|j| (x[i + j * st] - m).exp()).sum();
                (0..len).for_each(|j| y[i + j * st] = (x[i + j * st] - m).exp() / s);
            }
            y
        }
    }
}

fn binary(ins: &[(&[f32], &[usize])], out: &[usize], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    let index = |i: usize, s: &[usize]| {
        let st = strides(s);
        unravel(i, out).iter().enumerate().map(|(a, &j)| if s[a] == 1 { 0 } else { j * st[a] }).sum::<usize>()
    };
    let n: usize = out.iter().product();
    (0..n).map(|i| f(ins[0].0[index(i, ins[0].1)], ins[1].0[index(i, ins[1].1)])).collect()
}

fn conv(c: &Conv, ins: &[(&[f32], &[usize])], out: &[usize], depthwise: bool) -> Vec<f32> {
    let ((x, xs), (w, ws), b) = (ins[0], ins[1], ins[2].0);
    let (h, wd, cin) = (xs[1], xs[2], xs[3]);
    let (kh, kw, cout) = (ws[1], ws[2], out[3]);
    let mut y = vec![0.0; out.iter().product()];
    for n in 0..out[0] {
        for oy in 0..out[1] {
            for ox in 0..out[2] {
                for o in 0..cout {
                    let mut s = b[o];
                    for ky in 0..kh {
                        let iy = (oy * c.stride[0] + ky * c.dilation[0]) as isize - c.pads[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix = (ox * c.stride[1] + kx * c.dilation[1]) as isize - c.pads[1] as isize;
                            if ix < 0 || ix >= wd as isize {
                                continue;
                            }
                            let base = ((n * h + iy as usize) * wd + ix as usize) * cin;
                            if depthwise {
                                let ch = o / (cout / cin);
                                s += x[base + ch] * w[(ky * kw + kx) * cout + o];
                            } else {
                                let wb = ((o * kh + ky) * kw + kx) * cin;
                                s += (0..cin).map(|i| x[base + i] * w[wb + i]).sum::<f32>();
                            }
                        }
                    }
                    y[((n * out[1] + oy) * out[2] + ox) * cout + o] = c.act.apply(s);
                }
            }
        }
    }
    y
}

fn pool(
    x: &[f32],
    xs: &[usize],
    out: &[usize],
    k: [usize; 2],
    st: [usize; 2],
    pads: [usize; 4],
    max: bool,
) -> Vec<f32> {
    let (h, w, c) = (xs[1], xs[2], xs[3]);
    let mut y = vec![0.0; out.iter().product()];
    for n in 0..out[0] {
        for oy in 0..out[1] {
            for ox in 0..out[2] {
                for ch in 0..c {
                    let (mut acc, mut count) = (if max { f32::MIN } else { 0.0 }, 0);
                    for ky in 0..k[0] {
                        for kx in 0..k[1] {
                            let iy = (oy * st[0] + ky) as isize - pads[0] as isize;
                            let ix = (ox * st[1] + kx) as isize - pads[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let v = x[((n * h + iy as usize) * w + ix as usize) * c + ch];
                            acc = if max { acc.max(v) } else { acc + v };
                            count += 1;
                        }
                    }
                    y[((n * out[1] + oy) * out[2] + ox) * c + ch] =
                        if max { acc } else { acc / count as f32 };
                }
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_softmax() {
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let t = eval_op(&Op::Transpose { perm: vec![1, 0] }, &[(&x, &[2, 3])], &[3, 2]);
        assert_eq!(t, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let s = eval_op(&Op::Softmax { axis: 0 }, &[(&x, &[2, 3])], &[2, 3]);
        assert!((s[0] + s[3] - 1.0).abs() < 1e-6);
        assert_eq!(Activation::Clip { min: 0.0, max: 6.0 }.apply(7.0), 6.0);
    }
}
