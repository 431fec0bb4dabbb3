//! Float-graph algorithms that make int8 closer to f32: cross-layer equalization
//! ([`equalize`]) before calibration and bias correction ([`bias_correction`]) after it, each
//! switched on, off, or on only where it raises the output SQNR on the calibration samples.

pub mod bias_correction;
pub mod equalize;

use std::fmt;

use crate::quantize::Granularity;

/// Whether an algorithm runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Always.
    On,
    /// Never.
    Off,
    /// Only if it raises the output SQNR over f32 on the calibration samples by at least
    /// [`MARGIN_DB`].
    #[default]
    Auto,
}

impl Switch {
    /// The settings this switch lets be tried.
    fn choices(self) -> &'static [bool] {
        match self {
            Self::On => &[true],
            Self::Off => &[false],
            Self::Auto => &[false, true],
        }
    }
}

/// How much more output SQNR (dB) a variant with more algorithms needs to be chosen in `auto`.
pub const MARGIN_DB: f64 = 0.1;

/// How int8 weights are quantized and which algorithms may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Weight scales per channel or per tensor.
    pub weights: Granularity,
    /// Cross-layer equalization.
    pub equalize: Switch,
    /// Bias correction.
    pub bias_correction: Switch,
}

impl Default for Settings {
    /// Per-channel weights, no algorithm: plain min/max-style quantization.
    fn default() -> Self {
        Self { weights: Granularity::PerChannel, equalize: Switch::Off, bias_correction: Switch::Off }
    }
}

impl Settings {
    /// The variants to build, simplest first.
    pub fn variants(&self) -> Vec<Variant> {
        let mut variants = Vec::new();
        for &equalize in self.equalize.choices() {
            for &bias_correction in self.bias_correction.choices() {
                variants.push(Variant { equalize, bias_correction });
            }
        }
        variants
    }
}

impl Settings {
    /// Passes over the samples when calibration makes `calibration` per variant: every
    /// variant's, one more for each bias correction, and one to compare several variants.
    pub fn passes(&self, calibration: usize) -> usize {
        let variants = self.variants();
        let corrections = variants.iter().filter(|v| v.bias_correction).count();
        variants.len() * calibration + corrections + usize::from(variants.len() > 1)
    }
}

/// Which algorithms one quantized model had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Variant {
    /// Cross-layer equalization.
    pub equalize: bool,
    /// Bias correction.
    pub bias_correction: bool,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.equalize, self.bias_correction) {
            (false, false) => f.write_str("plain"),
            (true, false) => f.write_str("equalization"),
            (false, true) => f.write_str("bias correction"),
            (true, true) => f.write_str("equalization + bias correction"),
        }
    }
}

/// The index of the variant `auto` keeps among `sqnr_db` (one per variant, simplest first): a
/// variant replaces the best so far only if it beats it by [`MARGIN_DB`].
pub fn pick(sqnr_db: &[f64]) -> usize {
    (1..sqnr_db.len()).fold(0, |best, i| if sqnr_db[i] > sqnr_db[best] + MARGIN_DB { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_tries_both_and_keeps_a_variant_only_for_a_clear_gain() {
        let s =
            Settings { weights: Granularity::PerTensor, equalize: Switch::Auto, bias_correction: Switch::On };
        let v: Vec<String> = s.variants().iter().map(|v| v.to_string()).collect();
        assert_eq!(v, ["bias correction", "equalization + bias correction"]);
        assert_eq!(s.passes(2), 2 * 2 + 2 + 1);
        assert_eq!(Settings::default().variants(), [Variant::default()]);
        assert_eq!(Settings::default().passes(1), 1);
        assert_eq!(pick(&[30.0, 30.05, 31.0, 31.05]), 2);
        assert_eq!(pick(&[30.0, 29.0]), 0);
    }
}
