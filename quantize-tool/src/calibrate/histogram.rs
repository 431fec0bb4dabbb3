//! Fixed-size histograms of a tensor's values and the clipping ranges read from them:
//! percentile, entropy (KL divergence) and MSE.

/// Bins of every histogram: memory per tensor is fixed, whatever the number of samples.
pub const BINS: usize = 2048;

/// Counts of values in [`BINS`] equal bins over `[start, start + BINS × width]`; values
/// outside fall into the first or last bin.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    start: f64,
    width: f64,
    counts: Vec<u64>,
}

impl Histogram {
    /// An empty histogram over `[start, end]`, or `None` when that span is empty or not finite.
    pub fn new(start: f32, end: f32) -> Option<Self> {
        let width = (f64::from(end) - f64::from(start)) / BINS as f64;
        (width > 0.0 && width.is_finite()).then(|| Self {
            start: f64::from(start),
            width,
            counts: vec![0; BINS],
        })
    }

    /// Counts `value`.
    pub fn add(&mut self, value: f32) {
        let bin = (f64::from(value) - self.start) / self.width;
        // `as` truncates, which floors the non-negative bins; NaN and values below the start
        // land in bin 0 (`as` saturates), values past the end in the last.
        self.counts[(bin as usize).min(BINS - 1)] += 1;
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value below which `fraction` of the counted values lie, interpolated linearly inside
    /// its bin.
    fn quantile(&self, fraction: f64) -> f32 {
        let target = fraction * self.total() as f64;
        let mut below = 0.0;
        for (i, &n) in self.counts.iter().enumerate() {
            let n = n as f64;
            if n > 0.0 && below + n >= target {
                let inside = ((target - below) / n).clamp(0.0, 1.0);
                return (self.start + (i as f64 + inside) * self.width) as f32;
            }
            below += n;
        }
        (self.start + BINS as f64 * self.width) as f32
    }

    /// The range holding the middle of the values, cutting `(100 − percentile) %` of them from
    /// each tail.
    pub fn percentile_range(&self, percentile: f64) -> (f32, f32) {
        let tail = (100.0 - percentile) / 100.0;
        (self.quantile(tail), self.quantile(1.0 - tail))
    }

    /// The clipping threshold of a histogram of magnitudes (starting at 0) whose quantized form
    /// over `levels` int8 steps loses the least information: for each candidate threshold
    /// (whole bins from `levels` up), the values above it are clipped into its last bin, the
    /// bins below it are merged into `levels` groups and spread back over their non-empty bins,
    /// and the threshold with the smallest KL divergence between the two wins.
    ///
    /// The first bin counts as much as the second: it holds the exact zeros (ReLU outputs,
    /// padding), which int8 represents exactly whatever the threshold, and whose spike would
    /// otherwise favour thresholds so small that every group is one bin (as NVIDIA's
    /// pytorch-quantization does too).
    pub fn entropy_threshold(&self, levels: usize) -> f32 {
        let mut counts = self.counts.clone();
        counts[0] = counts[1];
        let sums = Prefix::new(&counts);
        let mut best = (f64::INFINITY, BINS);
        for end in levels..=BINS {
            let kl = clipped_divergence(&counts, &sums, end, levels);
            if kl < best.0 {
                best = (kl, end);
            }
        }
        (self.start + best.1 as f64 * self.width) as f32
    }

    /// The clipping threshold of a histogram of magnitudes (starting at 0) that minimizes the
    /// expected squared quantization error when `[0, threshold]` spans `steps` int8 steps:
    /// values below it cost the rounding error of a uniform step (`step² / 12`), values above
    /// it their distance to the threshold (measured from their bin's centre).
    pub fn mse_threshold(&self, steps: f64) -> f32 {
        let centre = |i: usize| self.start + (i as f64 + 0.5) * self.width;
        // Sums over the bins from i on: counts, counts × centre, counts × centre².
        let mut above = (0f64, 0f64, 0f64);
        let mut best = (f64::INFINITY, BINS);
        let total = self.total() as f64;
        for end in (1..=BINS).rev() {
            let threshold = self.start + end as f64 * self.width;
            let step = threshold / steps;
            let inside = total - above.0;
            let clipped = above.2 - 2.0 * threshold * above.1 + threshold * threshold * above.0;
            let error = inside * step * step / 12.0 + clipped;
            // `<=`: among equal errors the smallest threshold wins (the finest step).
            if error <= best.0 {
                best = (error, end);
            }
            let (n, c) = (self.counts[end - 1] as f64, centre(end - 1));
            above = (above.0 + n, above.1 + n * c, above.2 + n * c * c);
        }
        (self.start + best.1 as f64 * self.width) as f32
    }
}

/// Running sums over the bins of a histogram, so that any run of bins sums in constant time.
struct Prefix {
    /// Values in bins `..k`.
    count: Vec<f64>,
    /// Non-empty bins in `..k`.
    occupied: Vec<f64>,
    /// `n ln n` over bins `..k`.
    n_ln_n: Vec<f64>,
}

fn n_ln_n(n: f64) -> f64 {
    if n > 0.0 {
        n * n.ln()
    } else {
        0.0
    }
}

impl Prefix {
    fn new(counts: &[u64]) -> Self {
        let mut sums = Self { count: vec![0.0], occupied: vec![0.0], n_ln_n: vec![0.0] };
        for &n in counts {
            let n = n as f64;
            sums.count.push(sums.count.last().unwrap_or(&0.0) + n);
            sums.occupied.push(sums.occupied.last().unwrap_or(&0.0) + f64::from(u8::from(n > 0.0)));
            sums.n_ln_n.push(sums.n_ln_n.last().unwrap_or(&0.0) + n_ln_n(n));
        }
        sums
    }
}

/// KL divergence between the first `end` bins of `counts` (with every later count added to the
/// last one: the reference P) and those bins merged into `levels` groups whose sum is spread
/// evenly over their non-empty bins (the quantized Q). A bin Q leaves empty but P fills is
/// charged as if Q held a tiny share (smoothing), so clipping into an empty group is costly,
/// not fatal.
///
/// Within a group every non-empty bin has the same q, so the group's share of
/// `Σ p ln(p / q)` is `Σ p ln p − (Σ p) ln q`, both from running sums: O(levels) per call.
fn clipped_divergence(counts: &[u64], sums: &Prefix, end: usize, levels: usize) -> f64 {
    let total = sums.count[counts.len()];
    let kept = sums.count[end];
    if total == 0.0 || kept == 0.0 {
        return f64::INFINITY;
    }
    let floor = 1e-6 / end as f64;
    let range = |v: &[f64], from: usize, to: usize| v[to] - v[from];
    let mut divergence = 0.0;
    for group in 0..levels {
        let (from, to) = (group * end / levels, (group + 1) * end / levels);
        let raw = range(&sums.count, from, to);
        let (mut p_sum, mut p_ln_p, mut occupied) =
            (raw, range(&sums.n_ln_n, from, to), range(&sums.occupied, from, to));
        if to == end {
            // The last bin also holds every clipped value.
            let (last, clipped) = (counts[end - 1] as f64, total - kept);
            p_sum += clipped;
            p_ln_p += n_ln_n(last + clipped) - n_ln_n(last);
            occupied += f64::from(u8::from(last == 0.0 && clipped > 0.0));
        }
        if occupied == 0.0 {
            continue;
        }
        let q = (raw / occupied / kept).max(floor);
        divergence += (p_ln_p - p_sum * (total.ln() + q.ln())) / total;
    }
    divergence
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn histogram(start: f32, end: f32, values: impl IntoIterator<Item = f32>) -> Histogram {
        let mut h = Histogram::new(start, end).unwrap();
        values.into_iter().for_each(|v| h.add(v));
        h
    }

    /// `n` evenly spread values in `[lo, hi]`.
    fn uniform(n: usize, lo: f32, hi: f32) -> impl Iterator<Item = f32> {
        (0..n).map(move |i| lo + (hi - lo) * (i as f32 + 0.5) / n as f32)
    }

    /// `n` seeded standard normal values (Box–Muller).
    fn normal(n: usize) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..n)
            .map(|_| {
                let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect()
    }

    /// [`clipped_divergence`] computed bin by bin, as its definition reads.
    fn direct_divergence(counts: &[u64], end: usize, levels: usize) -> f64 {
        let mut reference: Vec<f64> = counts[..end].iter().map(|&n| n as f64).collect();
        reference[end - 1] += counts[end..].iter().sum::<u64>() as f64;
        let mut expanded = vec![0f64; end];
        for group in 0..levels {
            let (from, to) = (group * end / levels, (group + 1) * end / levels);
            let slice = &counts[from..to];
            let occupied = reference[from..to].iter().filter(|&&p| p > 0.0).count();
            if occupied == 0 {
                continue;
            }
            let share = slice.iter().sum::<u64>() as f64 / occupied as f64;
            for (q, &p) in expanded[from..to].iter_mut().zip(&reference[from..to]) {
                if p > 0.0 {
                    *q = share;
                }
            }
        }
        let (p_total, q_total) = (reference.iter().sum::<f64>(), expanded.iter().sum::<f64>());
        if p_total == 0.0 || q_total == 0.0 {
            return f64::INFINITY;
        }
        // A bin the quantized form leaves empty but the reference fills is charged as if it
        // held a tiny share (smoothing), so clipping into an empty group is costly, not fatal.
        let floor = 1e-6 / end as f64;
        reference
            .iter()
            .zip(&expanded)
            .filter(|(&p, _)| p > 0.0)
            .map(|(&p, &q)| {
                let (p, q) = (p / p_total, (q / q_total).max(floor));
                p * (p / q).ln()
            })
            .sum()
    }

    #[test]
    fn the_divergence_from_running_sums_is_the_bin_by_bin_one() {
        let mut values: Vec<f32> = normal(50_000).iter().map(|v| v.abs()).collect();
        values.extend([0.0; 5_000].into_iter().chain([9.0, 12.0]));
        let h = histogram(0.0, 12.0, values);
        let sums = Prefix::new(&h.counts);
        for (end, levels) in [(128, 128), (300, 128), (777, 256), (1500, 128), (BINS, 256)] {
            let (fast, direct) = (
                clipped_divergence(&h.counts, &sums, end, levels),
                direct_divergence(&h.counts, end, levels),
            );
            assert!(
                (fast - direct).abs() < 1e-9 * direct.abs().max(1.0),
                "{end} {levels}: {fast} vs {direct}"
            );
        }
    }

    #[test]
    fn an_empty_or_infinite_span_has_no_histogram() {
        assert!(Histogram::new(1.0, 1.0).is_none());
        assert!(Histogram::new(0.0, f32::INFINITY).is_none());
        assert!(Histogram::new(f32::NAN, 1.0).is_none());
    }

    #[test]
    fn percentiles_of_a_uniform_cut_both_tails() {
        let h = histogram(-1.0, 3.0, uniform(100_000, -1.0, 3.0));
        let (lo, hi) = h.percentile_range(99.0);
        // 1 % of a width of 4 from each end, within one bin (4 / 2048).
        assert!((lo - -0.96).abs() < 2e-3 && (hi - 2.96).abs() < 2e-3, "{lo} {hi}");
        let (lo, hi) = h.percentile_range(100.0);
        assert!((lo - -1.0).abs() < 1e-6 && (hi - 3.0).abs() < 1e-6, "{lo} {hi}");
    }

    #[test]
    fn the_percentile_ignores_a_rare_outlier() {
        let values = uniform(100_000, 0.0, 1.0).chain([50.0]);
        let (_, hi) = histogram(0.0, 50.0, values).percentile_range(99.99);
        // The 99.99th percentile lies in the bulk's top bin (50 / 2048 wide).
        assert!(hi < 1.03, "{hi}");
    }

    #[test]
    fn mse_clips_a_far_outlier_where_the_formula_says() {
        // 10⁶ values within ±1 and one at 10, magnitudes over [0, 10]: the error with threshold
        // T ≥ 1 over 255 steps of 2T / 255 is 10⁶ (2T / 255)² / 12 + (10 − T)², least at
        // T = 10 / (1 + 10⁶ · 4 / (255² · 12)) = 1.632.
        let values = uniform(1_000_000, -1.0, 1.0).chain([10.0]);
        let t = histogram(0.0, 10.0, values.map(f32::abs)).mse_threshold(255.0 / 2.0);
        assert!((t - 1.632).abs() < 0.01, "{t}");
    }

    #[test]
    fn mse_keeps_an_outlier_that_costs_more_clipped_than_kept() {
        // One value at 10 among 1,000 within ±1: clipping it costs more than coarser steps.
        let values = uniform(1_000, -1.0, 1.0).chain([10.0]);
        let t = histogram(0.0, 10.0, values.map(f32::abs)).mse_threshold(255.0 / 2.0);
        assert!(t > 9.9, "{t}");
    }

    #[test]
    fn mse_of_a_laplace_clips_near_the_known_optimum() {
        // Laplace(b = 1) quantized with 256 levels over [−T, T]: the clipping threshold that
        // minimizes the MSE is about 9.89 b (Banner et al., ACIQ).
        let n = 2_000_000;
        let laplace = (0..n).map(|k| {
            let u = (k as f64 + 0.5) / n as f64 - 0.5;
            (-u.signum() * (1.0 - 2.0 * u.abs()).ln()).abs() as f32
        });
        let t = histogram(0.0, 15.0, laplace).mse_threshold(255.0 / 2.0);
        assert!((9.0..10.8).contains(&t), "{t}");
    }

    #[test]
    fn entropy_clips_outliers_far_from_a_normal_bulk() {
        let mut values: Vec<f32> = normal(200_000).iter().map(|v| v.abs()).collect();
        values.extend([20.0; 20]);
        let t = histogram(0.0, 20.0, values).entropy_threshold(128);
        // The bulk ends near 4.5 σ; the threshold keeps most of it and drops the outliers.
        assert!((2.5..6.0).contains(&t), "{t}");
    }

    #[test]
    fn entropy_is_not_pulled_down_by_a_spike_of_zeros() {
        // A ReLU output: half exact zeros, half the magnitudes of a normal, no outliers.
        let mut values: Vec<f32> = normal(100_000).iter().map(|v| v.abs()).collect();
        values.extend([0.0; 100_000]);
        let top = values.iter().copied().fold(0.0, f32::max);
        let t = histogram(0.0, top, values).entropy_threshold(256);
        assert!(t > 0.6 * top, "{t} of {top}");
    }

    #[test]
    fn entropy_keeps_the_whole_range_of_a_bulk_without_outliers() {
        let values: Vec<f32> = uniform(100_000, 0.0, 1.0).collect();
        let t = histogram(0.0, 1.0, values).entropy_threshold(256);
        // A uniform's quantized form is exact at every threshold that keeps all of it.
        assert!(t > 0.99, "{t}");
    }
}
