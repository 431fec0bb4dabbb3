//! Agreement between a reference (tract f32) and Ember's outputs.

/// Summary of how closely Ember follows the reference over a set of samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agreement {
    /// Samples compared.
    pub samples: usize,
    /// Fraction of samples whose arg-max agrees.
    pub top1: f64,
    /// Cosine similarity of all outputs concatenated.
    pub cosine: f64,
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// Largest absolute reference value.
    pub max_abs_reference: f64,
    /// Signal-to-quantization-noise ratio in dB.
    pub sqnr_db: f64,
}

/// Index of the largest value.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
        .0
}

/// Signal and noise energy summed over any number of value pairs, for an SQNR.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sqnr {
    signal: f64,
    noise: f64,
}

impl Sqnr {
    /// Adds the energy of `reference` and of its difference from `values`.
    pub fn add(&mut self, reference: &[f32], values: &[f32]) {
        for (&a, &b) in reference.iter().zip(values) {
            let (a, b) = (a as f64, b as f64);
            self.signal += a * a;
            self.noise += (a - b) * (a - b);
        }
    }

    /// Signal over noise energy in dB; infinite when nothing differed.
    pub fn db(&self) -> f64 {
        if self.noise == 0.0 {
            return f64::INFINITY;
        }
        10.0 * (self.signal / self.noise).log10()
    }
}

/// Compares per-sample output vectors.
pub fn compare(reference: &[Vec<f32>], ember: &[Vec<f32>]) -> Agreement {
    let (mut dot, mut ee, mut sqnr) = (0f64, 0f64, Sqnr::default());
    let (mut max_err, mut max_ref, mut agree) = (0f64, 0f64, 0usize);
    for (r, e) in reference.iter().zip(ember) {
        agree += usize::from(argmax(r) == argmax(e));
        sqnr.add(r, e);
        for (&a, &b) in r.iter().zip(e) {
            let (a, b) = (a as f64, b as f64);
            dot += a * b;
            ee += b * b;
            max_err = max_err.max((a - b).abs());
            max_ref = max_ref.max(a.abs());
        }
    }
    let rr = sqnr.signal;
    let n = reference.len().min(ember.len());
    Agreement {
        samples: n,
        top1: agree as f64 / n.max(1) as f64,
        cosine: dot / (rr.sqrt() * ee.sqrt()).max(f64::MIN_POSITIVE),
        max_abs_error: max_err,
        max_abs_reference: max_ref,
        sqnr_db: 10.0 * (rr / sqnr.noise.max(f64::MIN_POSITIVE)).log10(),
    }
}

/// Fraction of samples whose arg-max equals the label.
pub fn accuracy(outputs: &[Vec<f32>], labels: &[usize]) -> f64 {
    let hits = outputs.iter().zip(labels).filter(|(o, &l)| argmax(o) == l).count();
    hits as f64 / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqnr_of_identical_values_is_infinite() {
        let mut sqnr = Sqnr::default();
        sqnr.add(&[1.0, -2.0], &[1.0, -2.0]);
        assert_eq!(sqnr.db(), f64::INFINITY);
        sqnr.add(&[3.0], &[2.0]);
        // signal 1 + 4 + 9, noise 1
        assert!((sqnr.db() - 10.0 * 14f64.log10()).abs() < 1e-12);
    }

    #[test]
    fn identical_outputs_agree_fully() {
        let r = vec![vec![1.0, 3.0, 2.0], vec![0.5, -1.0, 0.0]];
        let a = compare(&r, &r);
        assert_eq!(a.top1, 1.0);
        assert!((a.cosine - 1.0).abs() < 1e-12);
        assert_eq!(a.max_abs_error, 0.0);
        assert!(a.sqnr_db > 100.0);
    }

    #[test]
    fn noise_lowers_sqnr_and_flips_top1() {
        let r = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let e = vec![vec![1.0, 0.1], vec![0.0, -1.0]];
        let a = compare(&r, &e);
        assert_eq!(a.top1, 0.5);
        assert!((a.max_abs_error - 2.0).abs() < 1e-6);
        // signal 2, noise 0.01 + 4
        assert!((a.sqnr_db - 10.0 * (2.0f64 / 4.01).log10()).abs() < 1e-5);
        let mut sqnr = Sqnr::default();
        r.iter().zip(&e).for_each(|(r, e)| sqnr.add(r, e));
        assert!((sqnr.db() - a.sqnr_db).abs() < 1e-12);
        assert_eq!(accuracy(&e, &[0, 0]), 1.0);
    }
}
