//! Latency distribution: times single inferences over the input batch, repeated, after one
//! untimed warm-up pass, and reports the mean next to the p50/p95/p99 and maximum latency.

use ember::format::OpKind;
use ember::Kernels;
use ember_bench::hosted::InstantClock;
use ember_bench::{Bench, Error, Report};

/// The latency of many inferences, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Distribution {
    /// Inferences timed.
    pub runs: usize,
    /// Mean (rounded down).
    pub mean: u64,
    /// Median (nearest rank).
    pub p50: u64,
    /// 95th percentile (nearest rank).
    pub p95: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Slowest inference.
    pub max: u64,
}

impl Distribution {
    /// The distribution of `ns`, or `None` when it is empty.
    pub fn of(mut ns: Vec<u64>) -> Option<Self> {
        ns.sort_unstable();
        let max = *ns.last()?;
        let rank = |p: usize| ns[(p * ns.len()).div_ceil(100).max(1) - 1];
        Some(Self {
            runs: ns.len(),
            mean: ns.iter().sum::<u64>() / ns.len() as u64,
            p50: rank(50),
            p95: rank(95),
            p99: rank(99),
            max,
        })
    }
}

/// A report sink that keeps each sample's ticks and prints nothing.
struct Ticks(Vec<u64>);

impl Report for Ticks {
    fn header(&mut self, _: &str, _: &str, _: usize, _: usize) -> Result<(), Error> {
        Ok(())
    }

    fn sample(&mut self, _: usize, _: usize, _: u32, ticks: u64) -> Result<(), Error> {
        self.0.push(ticks);
        Ok(())
    }

    fn layer(&mut self, _: usize, _: OpKind, _: u64) -> Result<(), Error> {
        Ok(())
    }

    fn summary(&mut self, _: usize, _: u64, _: u32, _: usize) -> Result<(), Error> {
        Ok(())
    }
}

/// Times at least `runs` inferences of `model` over `inputs` (whole passes over the batch) with
/// `K`'s kernels, after one untimed pass.
pub fn measure<K: Kernels>(
    model: &[u8],
    inputs: &[u8],
    arena: &mut [u8],
    runs: usize,
) -> Result<Distribution, Error> {
    let mut ticks = Ticks(Vec::with_capacity(runs));
    let mut layer_ticks = vec![0; ember::Model::from_bytes(model)?.op_count()];
    let mut pass = |ticks: &mut Ticks| {
        let bench = Bench { board: "", model, arena: &mut *arena, inputs, layer_ticks: &mut layer_ticks };
        ember_bench::run::<K, _>(bench, &mut InstantClock::start(), ticks, None)
    };
    pass(&mut Ticks(Vec::new()))?;
    while ticks.0.len() < runs.max(1) {
        pass(&mut ticks)?;
    }
    // The loop ran at least one pass, and `run` refuses an empty batch.
    Ok(Distribution::of(ticks.0).expect("at least one run"))
}

#[cfg(test)]
mod tests {
    use super::Distribution;

    #[test]
    fn percentiles_are_nearest_ranks() {
        let d = Distribution::of((1..=200).rev().collect()).unwrap();
        assert_eq!((d.runs, d.mean, d.p50, d.p95, d.p99, d.max), (200, 100, 100, 190, 198, 200));
        let one = Distribution::of(vec![7]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7, 7, 7));
        assert_eq!(Distribution::of(Vec::new()), None);
    }
}
