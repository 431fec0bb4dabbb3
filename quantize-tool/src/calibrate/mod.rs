//! Calibration: runs the f32 model over sample inputs, streaming, and finds every tensor's
//! int8 range with a [`Method`].

mod histogram;

use std::fmt;
use std::str::FromStr;

use anyhow::{ensure, Result};
use ember::{Hook, Model, OpEvent, OpOutput};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::tract_ndarray::ArrayD;

pub use histogram::{Histogram, BINS};

use crate::graph::Graph;
use crate::host::Runner;
use crate::quantize::Ranges;
use crate::samples::SampleSource;

/// How a tensor's range is chosen from the values it takes over the calibration samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The smallest and largest value.
    MinMax,
    /// The given percentile on each tail (e.g. 99.99 cuts 0.01 % from each end).
    Percentile(f64),
    /// The clipping threshold whose quantized histogram has the least KL divergence from the
    /// original (TensorRT's and ONNX Runtime's entropy calibration).
    Entropy,
    /// The clipping threshold with the least expected squared quantization error.
    Mse,
}

impl Method {
    /// Whether the method needs a second pass over the samples to fill histograms.
    pub fn needs_histograms(self) -> bool {
        self != Self::MinMax
    }
}

impl Default for Method {
    /// Min/max, the method every earlier model was calibrated with.
    fn default() -> Self {
        Self::MinMax
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MinMax => write!(f, "minmax"),
            Self::Percentile(p) => write!(f, "percentile={p}"),
            Self::Entropy => write!(f, "entropy"),
            Self::Mse => write!(f, "mse"),
        }
    }
}

/// Percentile used by `percentile` without a value.
pub const DEFAULT_PERCENTILE: f64 = 99.99;

impl FromStr for Method {
    type Err = String;

    /// `minmax`, `percentile`, `percentile=P` (50 < P ≤ 100), `entropy` or `mse`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = s.split_once('=').map_or((s, None), |(n, v)| (n, Some(v)));
        match (name, value) {
            ("minmax", None) => Ok(Self::MinMax),
            ("entropy", None) => Ok(Self::Entropy),
            ("mse", None) => Ok(Self::Mse),
            ("percentile", None) => Ok(Self::Percentile(DEFAULT_PERCENTILE)),
            ("percentile", Some(v)) => match v.trim().parse::<f64>() {
                Ok(p) if p > 50.0 && p <= 100.0 => Ok(Self::Percentile(p)),
                _ => Err(format!(
                    "'{v}' is not a percentile above 50 and at most 100: write e.g. percentile=99.99"
                )),
            },
            ("minmax" | "entropy" | "mse", Some(_)) => Err(format!("{name} takes no value: write {name}")),
            _ => Err(format!(
                "unknown calibration method '{s}': use minmax, percentile[=99.99], entropy or mse"
            )),
        }
    }
}

/// What calibration found: every tensor's range, and what it ran on.
pub struct Calibrated {
    /// The chosen `(min, max)` of every IR tensor (`None` for constants).
    pub ranges: Ranges,
    /// Samples read in one pass.
    pub samples: usize,
    /// SHA-256 of the samples ([`SampleHash`]).
    pub sha256: [u8; 32],
}

/// SHA-256 of calibration samples: each sample's inputs in order, each as its little-endian
/// `f32` values in row-major order of the original (ONNX) shape.
#[derive(Default)]
pub struct SampleHash(Sha256);

impl SampleHash {
    /// Adds one sample.
    pub fn update(&mut self, sample: &[ArrayD<f32>]) {
        for x in sample {
            x.iter().for_each(|v| self.0.update(v.to_le_bytes()));
        }
    }

    /// The digest.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// Receives the values of every tensor, sample after sample.
trait Observer {
    fn observe(&mut self, tensor: usize, values: &[f32]);
}

/// Smallest and largest value of every tensor.
struct Extremes(Ranges);

impl Observer for Extremes {
    fn observe(&mut self, tensor: usize, values: &[f32]) {
        for &v in values {
            let r = self.0[tensor].get_or_insert((v, v));
            *r = (r.0.min(v), r.1.max(v));
        }
    }
}

/// One histogram per tensor over the range [`Extremes`] found: of the values for percentiles,
/// of their magnitudes for entropy and MSE.
struct Histograms {
    histograms: Vec<Option<Histogram>>,
    magnitude: bool,
}

impl Histograms {
    fn new(method: Method, extremes: &Ranges) -> Self {
        let magnitude = matches!(method, Method::Entropy | Method::Mse);
        let histograms = extremes
            .iter()
            .map(|range| {
                let (lo, hi) = (*range)?;
                if lo == hi {
                    None
                } else if magnitude {
                    Histogram::new(0.0, lo.abs().max(hi.abs()))
                } else {
                    Histogram::new(lo, hi)
                }
            })
            .collect();
        Self { histograms, magnitude }
    }
}

impl Observer for Histograms {
    fn observe(&mut self, tensor: usize, values: &[f32]) {
        if let Some(h) = &mut self.histograms[tensor] {
            if self.magnitude {
                values.iter().for_each(|v| h.add(v.abs()));
            } else {
                values.iter().for_each(|&v| h.add(v));
            }
        }
    }
}

/// The range `method` picks for a tensor whose values span `extremes` and fill `histogram`.
/// Percentiles cut both tails. Entropy and MSE find a threshold `T` on the magnitudes, spread
/// over the 256 int8 levels as `[0, T]` for a non-negative tensor and `[−T, T]` for a signed
/// one, and clip the observed range to it.
fn choose(method: Method, extremes: (f32, f32), histogram: Option<&Histogram>) -> (f32, f32) {
    let Some(h) = histogram else { return extremes };
    let (lo, hi) = extremes;
    let signed = lo < 0.0;
    let threshold = match method {
        Method::MinMax => return extremes,
        Method::Percentile(p) => return h.percentile_range(p),
        Method::Entropy => h.entropy_threshold(if signed { 128 } else { 256 }),
        Method::Mse => h.mse_threshold(if signed { 127.5 } else { 255.0 }),
    };
    (lo.max(-threshold), hi.min(threshold))
}

/// Hands every op output to an observer.
struct ObserveHook<'a, O> {
    op_outputs: &'a [usize],
    observer: &'a mut O,
}

impl<O: Observer> Hook for ObserveHook<'_, O> {
    fn after(&mut self, event: OpEvent, output: OpOutput<'_>) {
        if let Some(values) = output.as_f32() {
            self.observer.observe(self.op_outputs[event.index as usize], values);
        }
    }
}

/// Runs every sample of `source` through `runner`, showing each input and op output to
/// `observer`, and calls `each` with every sample. Returns the number of samples.
fn pass(
    graph: &Graph,
    runner: &mut Runner,
    op_outputs: &[usize],
    source: &dyn SampleSource,
    observer: &mut impl Observer,
    each: &mut dyn FnMut(&[ArrayD<f32>]),
) -> Result<usize> {
    let mut count = 0;
    source.for_each(&mut |sample| {
        for (io, x) in graph.inputs.iter().zip(sample) {
            match x.as_slice() {
                Some(values) => observer.observe(io.tensor, values),
                None => observer.observe(io.tensor, &x.iter().copied().collect::<Vec<_>>()),
            }
        }
        runner.run_with(sample, &mut ObserveHook { op_outputs, observer: &mut *observer })?;
        each(sample);
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// The range of every IR tensor over the samples of `source` (each a list of inputs in ONNX
/// layout), chosen by `method`, using the f32 Ember `model` lowered from `graph` whose op `i`
/// computes IR tensor `op_outputs[i]`. Memory does not grow with the number of samples: min/max
/// reads them once; the histogram methods read them twice, first for each tensor's extremes,
/// then to fill [`BINS`]-bin histograms over them.
pub fn calibrate(
    graph: &Graph,
    model: &Model,
    op_outputs: &[usize],
    source: &dyn SampleSource,
    method: Method,
) -> Result<Calibrated> {
    let mut runner = Runner::new(model);
    let mut extremes = Extremes(vec![None; graph.tensors.len()]);
    let mut hash = SampleHash::default();
    let samples = pass(graph, &mut runner, op_outputs, source, &mut extremes, &mut |s| hash.update(s))?;
    let extremes = extremes.0;
    if !method.needs_histograms() {
        return Ok(Calibrated { ranges: extremes, samples, sha256: hash.finish() });
    }
    let mut histograms = Histograms::new(method, &extremes);
    let again = pass(graph, &mut runner, op_outputs, source, &mut histograms, &mut |_| ())?;
    ensure!(
        again == samples,
        "the calibration data gave {samples} samples, then {again} on the second pass: keep it unchanged \
         while ember-quantize runs"
    );
    let ranges = extremes
        .iter()
        .zip(&histograms.histograms)
        .map(|(range, h)| range.map(|r| choose(method, r, h.as_ref())))
        .collect();
    Ok(Calibrated { ranges, samples, sha256: hash.finish() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_and_print_back() {
        for (text, method) in [
            ("minmax", Method::MinMax),
            ("percentile", Method::Percentile(99.99)),
            ("percentile=99.9", Method::Percentile(99.9)),
            ("entropy", Method::Entropy),
            ("mse", Method::Mse),
        ] {
            assert_eq!(text.parse::<Method>(), Ok(method));
        }
        assert_eq!(Method::Percentile(99.9).to_string(), "percentile=99.9");
        assert_eq!(Method::default(), Method::MinMax);
    }

    #[test]
    fn bad_methods_say_what_to_write() {
        for (text, expected) in [
            ("kl", "use minmax, percentile[=99.99], entropy or mse"),
            ("percentile=40", "above 50 and at most 100"),
            ("percentile=x", "write e.g. percentile=99.99"),
            ("mse=3", "mse takes no value"),
        ] {
            let e = text.parse::<Method>().unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    /// The ranges of one tensor whose values arrive in `chunks`, as calibration sees them.
    fn ranges_of(method: Method, chunks: &[&[f32]]) -> (f32, f32) {
        let mut extremes = Extremes(vec![None]);
        chunks.iter().for_each(|c| extremes.observe(0, c));
        let mut histograms = Histograms::new(method, &extremes.0);
        chunks.iter().for_each(|c| histograms.observe(0, c));
        choose(method, extremes.0[0].unwrap(), histograms.histograms[0].as_ref())
    }

    #[test]
    fn ranges_are_the_same_whether_values_arrive_one_by_one_or_at_once() {
        let values: Vec<f32> = (0..10_000).map(|i| ((i * 7919) % 10_007) as f32 / 1000.0 - 3.0).collect();
        let one_by_one: Vec<&[f32]> = values.chunks(1).collect();
        let in_samples: Vec<&[f32]> = values.chunks(100).collect();
        for method in [Method::MinMax, Method::Percentile(99.9), Method::Entropy, Method::Mse] {
            let whole = ranges_of(method, &[&values]);
            assert_eq!(whole, ranges_of(method, &one_by_one), "{method}");
            assert_eq!(whole, ranges_of(method, &in_samples), "{method}");
        }
    }

    #[test]
    fn mse_spreads_signed_tensors_over_minus_t_to_t_and_non_negative_ones_over_0_to_t() {
        // 10⁵ values within ±1 and one at −10: the error 10⁵ (2T / 255)² / 12 + (10 − T)² is
        // least at T = 10 / (1 + 10⁵ · 4 / (255² · 12)) = 6.61; the top stays at the data's 1.
        let mut signed: Vec<f32> = (0..100_000).map(|i| (i as f32 + 0.5) / 50_000.0 - 1.0).collect();
        signed.push(-10.0);
        let (lo, hi) = ranges_of(Method::Mse, &[&signed]);
        assert!((lo + 6.61).abs() < 0.02 && hi == signed[99_999], "{lo} {hi}");
        // The magnitudes are non-negative: [0, T] has 255 steps of T / 255, least error at
        // T = 10 / (1 + 10⁵ / (255² · 12)) = 8.86; the bottom stays at the data's minimum.
        let magnitudes: Vec<f32> = signed.iter().map(|v| v.abs()).collect();
        let (lo, hi) = ranges_of(Method::Mse, &[&magnitudes]);
        let least = magnitudes.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(lo == least && (hi - 8.86).abs() < 0.02, "{lo} {hi}");
    }

    #[test]
    fn a_constant_tensor_keeps_its_value() {
        for method in [Method::Percentile(99.0), Method::Entropy, Method::Mse] {
            assert_eq!(ranges_of(method, &[&[2.5; 10]]), (2.5, 2.5), "{method}");
        }
    }
}
