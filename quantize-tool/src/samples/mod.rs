//! Calibration samples read one at a time, so memory does not grow with their number: arrays
//! already in memory, `.npy` / `.npz` files ([`arrays`]), image folders ([`images`]) and
//! seeded noise.

pub mod arrays;
pub mod images;

use anyhow::{bail, Result};
use rand::{RngExt, SeedableRng};
use tract_onnx::prelude::tract_ndarray::{ArrayD, Dimension, IxDyn};

/// A model input: its name and shape in the ONNX model.
pub type Input = (String, Vec<usize>);

/// Samples that can be read more than once, one at a time.
pub trait SampleSource {
    /// How many samples one pass yields.
    fn len(&self) -> usize;

    /// Whether a pass yields no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `visit` with every sample in order: one array per model input, in ONNX shapes.
    /// Stops at the first error, from reading or from `visit`.
    fn for_each(&self, visit: &mut dyn FnMut(&[ArrayD<f32>]) -> Result<()>) -> Result<()>;
}

impl SampleSource for &[Vec<ArrayD<f32>>] {
    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn for_each(&self, visit: &mut dyn FnMut(&[ArrayD<f32>]) -> Result<()>) -> Result<()> {
        self.iter().try_for_each(|sample| visit(sample))
    }
}

/// Marks an error as the calibration data's fault (unreadable, wrong shape or type, NaN), not
/// the model's: `ember-quantize` exits with the data's status for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataError(String);

impl DataError {
    /// `error`, with its causes, as a data error.
    pub fn wrap(error: anyhow::Error) -> anyhow::Error {
        DataError(format!("{error:#}")).into()
    }
}

/// Whether `error` is the calibration data's fault ([`DataError`]).
pub fn is_data_error(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<DataError>())
}

/// Fails on the first NaN or infinite value of `sample` (number `index` of `origin`).
pub fn check_finite(origin: &str, index: usize, inputs: &[Input], sample: &[ArrayD<f32>]) -> Result<()> {
    for ((name, _), x) in inputs.iter().zip(sample) {
        if x.iter().all(|v| v.is_finite()) {
            continue;
        }
        if let Some((at, value)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            bail!(
                "calibration data {origin}: sample {index} of input '{name}' holds {value} at {:?}; \
                 calibration needs finite values: remove or fix that sample",
                at.slice()
            );
        }
    }
    Ok(())
}

/// `count` samples of seeded uniform noise in −1..1 (seed 0), the same on every pass.
pub struct Noise {
    inputs: Vec<Input>,
    count: usize,
}

impl Noise {
    /// Noise for a model with `inputs`.
    pub fn new(inputs: &[Input], count: usize) -> Self {
        Self { inputs: inputs.to_vec(), count }
    }
}

impl SampleSource for Noise {
    fn len(&self) -> usize {
        self.count
    }

    fn for_each(&self, visit: &mut dyn FnMut(&[ArrayD<f32>]) -> Result<()>) -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        for _ in 0..self.count {
            let sample: Vec<ArrayD<f32>> = self
                .inputs
                .iter()
                .map(|(_, shape)| ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0f32..1.0)))
                .collect();
            visit(&sample)?;
        }
        Ok(())
    }
}

/// Every sample of `source`, in memory (for tests).
#[cfg(test)]
fn collect(source: &dyn SampleSource) -> Vec<Vec<ArrayD<f32>>> {
    let mut all = Vec::new();
    source
        .for_each(&mut |s| {
            all.push(s.to_vec());
            Ok(())
        })
        .unwrap();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_repeats_itself_on_every_pass() {
        let noise = Noise::new(&[("x".into(), vec![2, 3])], 4);
        let first = collect(&noise);
        assert_eq!((first.len(), first[0][0].shape()), (4, &[2, 3][..]));
        assert_eq!(first, collect(&noise));
    }

    #[test]
    fn data_errors_are_recognized_through_context() {
        let e = DataError::wrap(anyhow::anyhow!("bad")).context("calibrating");
        assert!(is_data_error(&e));
        assert!(!is_data_error(&anyhow::anyhow!("bad")));
    }
}
