//! Drift telemetry (feature `telemetry`): per inference, how many int8 outputs of each op
//! saturated at -128 or 127, and the running range of each model input in real units, the
//! device-side signal that inputs left the range the model was calibrated on.

use crate::interpreter::{Hook, Interpreter, OpEvent, OpOutput};
use crate::kernels::selected::{count_equal, range_i8};
use crate::ops::Kernels;
use crate::quant::dequantize_i8;
use crate::Error;

/// int8 outputs of one op that hit the ends of the int8 range in the last inference. -128
/// counts only when the output's zero point is above -128: with zero point -128 (a ReLU-like
/// output) it is the real value 0, not a clipped one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Saturation {
    /// Outputs equal to -128.
    pub low: u32,
    /// Outputs equal to 127.
    pub high: u32,
}

/// The running range of one model input in real units (`None` before the first inference).
pub type Range = Option<(f32, f32)>;

/// Telemetry of a model with at most `OPS` ops and `INPUTS` inputs; run inferences through
/// [`Telemetry::invoke`], then read the fields.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Telemetry<const OPS: usize, const INPUTS: usize> {
    /// Per op, the last inference's saturated int8 outputs (zero for float ops and ops past `OPS`).
    pub saturation: [Saturation; OPS],
    /// Per model input, the smallest and largest real value seen over all inferences.
    pub input_range: [Range; INPUTS],
    /// Inferences observed.
    pub inferences: u32,
}

impl<const OPS: usize, const INPUTS: usize> Default for Telemetry<OPS, INPUTS> {
    fn default() -> Self {
        Self { saturation: [Saturation::default(); OPS], input_range: [None; INPUTS], inferences: 0 }
    }
}

impl<const OPS: usize, const INPUTS: usize> Telemetry<OPS, INPUTS> {
    /// Widens the input ranges with the current inputs, then runs `interp` counting saturations.
    pub fn invoke<K: Kernels>(&mut self, interp: &mut Interpreter<'_, '_, K>) -> Result<(), Error> {
        self.observe_inputs(interp)?;
        interp.invoke_with(self)
    }

    /// What [`Telemetry::invoke`] does before it runs the model: widens the input ranges with
    /// the current inputs and clears the saturation counts. Call it, then run the interpreter
    /// with this telemetry as its hook (or part of it, e.g. `(timer, &mut telemetry)`).
    pub fn observe_inputs<K: Kernels>(&mut self, interp: &Interpreter<'_, '_, K>) -> Result<(), Error> {
        for (index, range) in self.input_range.iter_mut().enumerate().take(interp.model().input_count()) {
            let (scale, zero_point) = interp.model().input(index)?.tensor.scale_zero_point();
            match interp.input_values_i8(index) {
                // Dequantization is increasing (scale > 0): only the extreme bytes need it.
                Ok(values) => {
                    if let Some((lo, hi)) = range_i8(values) {
                        widen(range, dequantize_i8(lo, scale, zero_point));
                        widen(range, dequantize_i8(hi, scale, zero_point));
                    }
                }
                Err(_) => interp.input_values_f32(index)?.iter().for_each(|&v| widen(range, v)),
            }
        }
        self.saturation.fill(Saturation::default());
        self.inferences = self.inferences.saturating_add(1);
        Ok(())
    }

    /// Total saturated outputs of the last inference over all ops.
    pub fn saturated(&self) -> u32 {
        self.saturation.iter().map(|s| s.low + s.high).sum()
    }
}

fn widen(range: &mut Range, v: f32) {
    let (lo, hi) = range.get_or_insert((v, v));
    *lo = lo.min(v);
    *hi = hi.max(v);
}

impl<const OPS: usize, const INPUTS: usize> Hook for Telemetry<OPS, INPUTS> {
    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        let (Some(_), Some(s)) = (output.as_i8(), self.saturation.get_mut(usize::from(event.index))) else {
            return;
        };
        if output.tensor.scale_zero_point().1 > i32::from(i8::MIN) {
            s.low = count_equal(output.bytes, i8::MIN as u8);
        }
        s.high = count_equal(output.bytes, i8::MAX as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlignedBytes, Model};

    /// The committed digits model and its 32 int8 test samples (64 bytes each).
    const MODEL: &[u8] = include_bytes!("../../targets/models/digits_int8.ember");
    const INPUTS: &[u8] = include_bytes!("../../targets/models/digits_inputs.bin");

    /// Saturated outputs per inference, on average over a batch, is the drift signal: the
    /// normal test inputs stay below this many, inputs four times too bright cross it (on the
    /// committed model: 41 and 58; most of the normal ones are Relu6 outputs at 6).
    const THRESHOLD: u32 = 50;

    /// The mean per-inference saturation count and the input range over the 32 samples,
    /// with every real input value multiplied by `gain` (quantized back, clamped to int8).
    fn observe(gain: i32) -> (u32, (f32, f32)) {
        let bytes = AlignedBytes::new(MODEL);
        let model = Model::from_bytes(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes() + 16];
        let mut interp = Interpreter::new(&model, &mut arena).unwrap();
        let (_, zp) = model.input(0).unwrap().tensor.scale_zero_point();
        let mut telemetry = Telemetry::<6, 1>::default();
        let mut total = 0;
        for sample in INPUTS.chunks_exact(64) {
            for (d, &q) in interp.input_i8(0).unwrap().iter_mut().zip(sample) {
                *d = (gain * (i32::from(q as i8) - zp) + zp).clamp(-128, 127) as i8;
            }
            telemetry.invoke(&mut interp).unwrap();
            total += telemetry.saturated();
        }
        assert_eq!(telemetry.inferences, 32);
        (total / 32, telemetry.input_range[0].unwrap())
    }

    #[test]
    fn observing_inputs_does_not_count_as_writing_them() {
        let bytes = AlignedBytes::new(MODEL);
        let model = Model::from_bytes(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes() + 16];
        let mut interp = Interpreter::new(&model, &mut arena).unwrap();
        let mut telemetry = Telemetry::<6, 1>::default();
        assert_eq!(telemetry.invoke(&mut interp), Err(Error::InputNotSet { input: 0 }));
    }

    #[test]
    fn inputs_four_times_too_large_cross_the_saturation_threshold() {
        let (normal, range) = observe(1);
        let (scaled, scaled_range) = observe(4);
        println!("mean saturated outputs per inference: normal {normal}, inputs x4 {scaled}");
        assert!(normal < THRESHOLD, "normal inputs saturate {normal} outputs");
        assert!(scaled >= THRESHOLD, "inputs ×4 saturate only {scaled} outputs");
        assert!(range.0 >= 0.0 && range.1 <= 1.0, "{range:?}");
        assert!(scaled_range.1 >= range.1, "{scaled_range:?} vs {range:?}");
    }
}
