//! Output channels whose int8 output is one value whatever the input, rewritten so that value
//! comes from a small accumulator.
//!
//! Trained int8 models have dead channels: TFLite's converter gives some a bias of 2^30, so their
//! output is clamped (or one constant) for every input. Bit for bit that is harmless, but such a
//! bias breaks the bound under which the Cortex-M kernels' short output stage is exact
//! (`|bias| + depth × 255 × 128 < 2^30`, `ember::kernels::cortex_m_dsp`), and the runtime can
//! only prove a channel constant from that loose bound, so one such channel sends its whole
//! layer down the slow path. Here the accumulator's exact range is known: the input ranges over
//! `-128..=127` and every weight is a constant, so `bias + Σ (x − zero point) × w` lies between
//! the sums of each product's smaller and larger end. Requantization is monotone (for a factor
//! that cannot wrap), so when both ends give one output `v`, every input does, and the channel
//! becomes weights 0, bias `4 × (v − output zero point)` and factor 1/4 (multiplier 2^30, shift
//! −1), which gives exactly `v` on both roundings. The outputs are unchanged for every input.

use ember::format::params::{ConvParams, FullyConnectedParams};
use ember::format::writer::ModelBuilder;
use ember::format::{DType, OpKind, Storage};
use ember::kernels::ClampI8;
use ember::quant::{Requant, Rounding};

/// The short output stage's bound on `|bias| + depth × 255 × 128`.
const SHORT_BOUND: i64 = 1 << 30;

/// The factor of a rewritten channel: 1/4, exact for `4 × (v − zero point)`.
const QUARTER: Requant = Requant { multiplier: 1 << 30, shift: -1 };

/// Rewrites the constant channels of every int8 `conv2d`, `depthwise_conv2d` and
/// `fully_connected` with per-channel factors whose bias breaks the short output stage's bound
/// (weights in the standard layout; before [`ModelBuilder::lay_out_weights`]). Returns how many
/// channels changed.
pub fn fold(builder: &mut ModelBuilder) -> usize {
    let mut readers = vec![0usize; builder.tensor_count()];
    for op in 0..builder.op_count() {
        for &id in builder.op_inputs(op) {
            readers[id as usize] += 1;
        }
    }
    let mut changed = 0;
    for op in 0..builder.op_count() {
        let (Some(kind), &[x, w, bias, requant]) = (builder.op_kind(op), builder.op_inputs(op)) else {
            continue;
        };
        let act = match kind {
            OpKind::Conv2d | OpKind::DepthwiseConv2d => builder.op_params::<ConvParams>(op as u16).act,
            OpKind::FullyConnected => builder.op_params::<FullyConnectedParams>(op as u16).act,
            _ => continue,
        };
        let own = [w, bias, requant].iter().all(|&id| {
            let t = builder.tensor(id);
            readers[id as usize] == 1 && t.storage == Storage::Constant as u8 && t.layout == 0
        });
        let int8 = builder.tensor(x).dtype == DType::I8 as u8 && builder.tensor(w).dtype == DType::I8 as u8;
        let (Some(input), Some(output)) =
            (builder.quant(x).first(), builder.quant(builder.op_outputs(op)[0]).first())
        else {
            continue;
        };
        if !own || !int8 {
            continue;
        }
        let layer = Layer {
            kind,
            input_zero_point: input.zero_point,
            output_zero_point: output.zero_point,
            act: ClampI8 { min: act.qmin, max: act.qmax },
            rounding: if builder.single_rounding(op as u16) { Rounding::Single } else { Rounding::Double },
        };
        changed += layer.fold(builder, w, bias, requant);
    }
    changed
}

/// What the output of a layer's channel depends on besides its weights, bias and factor.
struct Layer {
    kind: OpKind,
    input_zero_point: i32,
    output_zero_point: i32,
    act: ClampI8,
    rounding: Rounding,
}

impl Layer {
    /// The int8 output of accumulator `t` (bias included) under factor `r`.
    fn output(&self, r: Requant, t: i32) -> i8 {
        self.act.apply(r.apply_rounded(self.rounding, t).wrapping_add(self.output_zero_point))
    }

    /// Rewrites the constant channels of the layer with weights `w`, biases `bias` and factors
    /// `requant` (one per channel); returns how many changed.
    fn fold(&self, builder: &mut ModelBuilder, w: u16, bias: u16, requant: u16) -> usize {
        let biases: Vec<i32> = bytemuck::pod_collect_to_vec(builder.constant_mut(bias));
        let factors: Vec<Requant> = bytemuck::pod_collect_to_vec(builder.constant_mut(requant));
        let weights: Vec<i8> = bytemuck::pod_collect_to_vec(builder.constant_mut(w));
        let channels = biases.len();
        if factors.len() != channels || channels == 0 || !weights.len().is_multiple_of(channels) {
            return 0;
        }
        let depth = weights.len() / channels;
        // Weight `k` of channel `c`: filters in rows, or (depthwise) channels innermost.
        let index = |c: usize, k: usize| match self.kind {
            OpKind::DepthwiseConv2d => k * channels + c,
            _ => c * depth + k,
        };
        let span = depth as i64 * 255 * 128;
        let (lo_x, hi_x) = (-128 - i64::from(self.input_zero_point), 127 - i64::from(self.input_zero_point));
        let mut rewrites = Vec::new();
        for (c, (&b, &r)) in biases.iter().zip(&factors).enumerate() {
            if r.multiplier == 0 || i64::from(b).abs() + span < SHORT_BOUND {
                continue;
            }
            let (mut lo, mut hi) = (i64::from(b), i64::from(b));
            for k in 0..depth {
                let v = i64::from(weights[index(c, k)]);
                lo += (v * lo_x).min(v * hi_x);
                hi += (v * lo_x).max(v * hi_x);
            }
            // No wrapping: the accumulators, and their scaling by a left shift, stay in i32.
            let limit = i64::from(i32::MAX) >> r.shift.max(0);
            if lo < -limit || hi > limit {
                continue;
            }
            let (low, high) = (self.output(r, lo as i32), self.output(r, hi as i32));
            let constant = 4 * (i32::from(low) - self.output_zero_point);
            if low == high && self.output(QUARTER, constant) == low {
                rewrites.push((c, constant));
            }
        }
        for &(c, constant) in &rewrites {
            for k in 0..depth {
                builder.constant_mut(w)[index(c, k)] = 0;
            }
            builder.constant_mut(bias)[4 * c..][..4].copy_from_slice(&constant.to_le_bytes());
            builder.constant_mut(requant)[8 * c..][..8].copy_from_slice(bytemuck::bytes_of(&QUARTER));
        }
        rewrites.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ModelFile;
    use ember::format::params::FusedAct;
    use ember::format::writer::{IoDesc, Quant};
    use ember::quant::quantize_multiplier;
    use ember::Interpreter;

    const DEPTH: usize = 256;

    /// A fully connected layer of depth 256 (input zero point −3, output −100) with four
    /// channels: an ordinary one; a dead one (bias 2^30) clamped to 127 for every input; one of
    /// bias 2^30 and a tiny factor, one value for every input; and one near the bound whose
    /// output moves with the input.
    fn layer() -> ModelBuilder {
        let mut b = ModelBuilder::new();
        let x = b
            .activation(DType::I8, &[1, DEPTH], Some(&Quant::PerTensor { scale: 0.1, zero_point: -3 }))
            .unwrap();
        let y = b
            .activation(DType::I8, &[1, 4], Some(&Quant::PerTensor { scale: 0.1, zero_point: -100 }))
            .unwrap();
        let w: Vec<i8> = (0..4 * DEPTH)
            .map(|i| match i / DEPTH {
                0 | 1 => (i * 37 % 255) as i8,
                2 => 1,
                _ => 127,
            })
            .collect();
        let near = (1 << 30) - DEPTH as i32 * 255 * 128;
        let bias = [1000, 1 << 30, 1 << 30, near];
        let factor = |real: f64| {
            let (multiplier, shift) = quantize_multiplier(real);
            [multiplier, shift]
        };
        let requant = [factor(0.01), factor(1e-6), factor(1e-7), factor(200.0 / f64::from(near))].concat();
        let w = b.constant_of(DType::I8, &[4, DEPTH], &w, None).unwrap();
        let bias = b.constant_of(DType::I32, &[4], &bias, None).unwrap();
        let requant = b.constant_of(DType::I32, &[4, 2], &requant, None).unwrap();
        let params = FullyConnectedParams { act: FusedAct::NONE };
        b.op(OpKind::FullyConnected, &[x, w, bias, requant], &[y], &params).unwrap();
        b.place(x, 0);
        b.place(y, DEPTH);
        b.arena_bytes(DEPTH + 16);
        let io = |tensor, name: &str, n| IoDesc {
            tensor,
            name: name.into(),
            onnx_shape: vec![1, n],
            perm: vec![0, 1],
        };
        b.input(io(x, "x", DEPTH));
        b.output(io(y, "y", 4));
        b
    }

    /// The layer's outputs for each input.
    fn outputs(b: ModelBuilder, inputs: &[Vec<i8>]) -> Vec<Vec<i8>> {
        let file = ModelFile::from_bytes(&b.finish().unwrap());
        let model = file.model().unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut interp = Interpreter::new(&model, &mut arena).unwrap();
        inputs
            .iter()
            .map(|x| {
                interp.input_i8(0).unwrap().copy_from_slice(x);
                interp.invoke().unwrap();
                interp.output_i8(0).unwrap().to_vec()
            })
            .collect()
    }

    #[test]
    fn constant_channels_are_rewritten_and_no_output_changes() {
        let (original, mut folded) = (layer(), layer());
        assert_eq!(fold(&mut folded), 2, "the dead and the tiny-factor channel, not the moving one");
        // Every input at the ends of the accumulators' range (per weight sign), then seeded ones.
        let weights: Vec<i8> = bytemuck::pod_collect_to_vec(folded.clone().constant_mut(2));
        assert!(weights[DEPTH..3 * DEPTH].iter().all(|&v| v == 0));
        let mut inputs = vec![vec![-128; DEPTH], vec![127; DEPTH], vec![-3; DEPTH]];
        let mut state = 0x2545_f491u32;
        for _ in 0..200 {
            inputs.push(
                (0..DEPTH)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        state as i8
                    })
                    .collect(),
            );
        }
        let (before, after) = (outputs(original, &inputs), outputs(folded, &inputs));
        assert_eq!(before, after);
        // The channels are what they claim: constant, and moving with the input.
        assert!(before.iter().all(|y| y[1] == 127 && y[2] == before[0][2]));
        assert!(before.iter().any(|y| y[3] != before[0][3]));
    }
}
