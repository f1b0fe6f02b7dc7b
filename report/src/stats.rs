//! Statistics on recorded histograms: bootstrap intervals for quantile ratios
//! and the Mann-Whitney U test, both computed from bucket counts without
//! expanding a histogram into its samples.
//!
//! Why these two: a p99 from one run is a noisy estimate, and a gate that
//! compares two such numbers directly fails builds at random. The bootstrap
//! says how far the ratio could move by sampling noise alone, and the gate
//! fails only when even the optimistic end of that interval breaks the budget.
//! Mann-Whitney compares whole distributions (is the candidate generally
//! slower?) and is robust to outliers, which suits the median.
//!
//! Both treat samples as independent. Latencies in a run are not (a GC pause
//! or a stalled broker slows a burst of neighbours), so a run of millions of
//! requests holds far less information than its count suggests. Both
//! therefore cap the effective sample size per side ([`Settings::resample_cap`]):
//! the bootstrap draws `m = min(n, cap)` samples (an m-out-of-n bootstrap) and
//! the U test scales the bucket counts down to `m`. This widens intervals for
//! long runs, on purpose.
//!
//! Resampling is exact and cheap: the q-quantile of `m` draws from a
//! histogram is the inverse CDF at the k-th order statistic of `m` uniforms
//! (`k = ceil(q·m)`), which is Beta(k, m−k+1) distributed; one Beta draw and
//! one binary search per iteration replace `m` draws and a sort.

use hdrhistogram::Histogram;

/// How intervals are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Bootstrap iterations.
    pub iterations: usize,
    /// Largest effective sample size per side (see the module docs).
    pub resample_cap: u64,
    /// Two-sided confidence level of intervals, e.g. 0.95.
    pub confidence: f64,
    /// Seed of the resampling; the same seed gives the same interval.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            iterations: 2_000,
            resample_cap: 20_000,
            confidence: 0.95,
            seed: 0x5eed,
        }
    }
}

/// A point estimate with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The statistic on the observed data.
    pub estimate: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// A histogram's distribution as sorted bucket values with cumulative counts.
#[derive(Debug, Clone)]
pub struct Empirical {
    values: Vec<u64>,
    cumulative: Vec<u64>,
}

impl Empirical {
    /// The recorded buckets of `h`, each at its highest equivalent value (the
    /// value `Histogram::value_at_quantile` reports).
    pub fn new(h: &Histogram<u64>) -> Self {
        let mut values = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0;
        for item in h.iter_recorded() {
            total += item.count_at_value();
            values.push(h.highest_equivalent(item.value_iterated_to()));
            cumulative.push(total);
        }
        Self { values, cumulative }
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// `(value, count)` per bucket, ascending.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut prev = 0;
        self.values
            .iter()
            .zip(&self.cumulative)
            .map(move |(&v, &c)| {
                let n = c - prev;
                prev = c;
                (v, n)
            })
    }

    /// The q-quantile, defined as HdrHistogram defines it: the smallest value
    /// with at least `ceil(q·n)` samples at or below it.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        self.at_rank(rank)
    }

    /// The value of the sample at 1-based `rank` in sorted order.
    fn at_rank(&self, rank: u64) -> u64 {
        let i = self.cumulative.partition_point(|&c| c < rank);
        self.values[i.min(self.values.len() - 1)]
    }

    /// The inverse CDF at `u` in (0, 1).
    fn inverse_cdf(&self, u: f64) -> u64 {
        let rank = ((u * self.count() as f64).ceil() as u64).max(1);
        self.at_rank(rank)
    }

    /// The q-quantile of `m` samples drawn with replacement.
    fn resampled_quantile(&self, q: f64, m: u64, rng: &mut Rng) -> u64 {
        let k = ((q * m as f64).ceil() as u64).clamp(1, m);
        let u = rng.beta(k as f64, (m - k + 1) as f64);
        self.inverse_cdf(u)
    }
}

/// Bootstrap interval of `quantile(candidate, q) / quantile(baseline, q)`.
/// `None` when either side has no samples.
pub fn quantile_ratio(
    baseline: &Empirical,
    candidate: &Empirical,
    q: f64,
    settings: &Settings,
) -> Option<Interval> {
    if baseline.count() == 0 || candidate.count() == 0 {
        return None;
    }
    // A 0 µs quantile (possible with a lowest discernible value of 0) would
    // make the ratio infinite; 1 µs is below anything we can measure anyway.
    let ratio = |c: u64, b: u64| c.max(1) as f64 / b.max(1) as f64;
    let estimate = ratio(candidate.quantile(q), baseline.quantile(q));
    let mb = baseline.count().min(settings.resample_cap.max(1));
    let mc = candidate.count().min(settings.resample_cap.max(1));
    let mut rng = Rng::new(settings.seed);
    let mut ratios: Vec<f64> = (0..settings.iterations.max(1))
        .map(|_| {
            let b = baseline.resampled_quantile(q, mb, &mut rng);
            let c = candidate.resampled_quantile(q, mc, &mut rng);
            ratio(c, b)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - settings.confidence.clamp(0.0, 1.0)) / 2.0;
    let pick = |p: f64| {
        let i = (p * (ratios.len() - 1) as f64).round() as usize;
        ratios[i.min(ratios.len() - 1)]
    };
    Some(Interval {
        estimate,
        low: pick(tail),
        high: pick(1.0 - tail),
    })
}

/// The outcome of a Mann-Whitney U test of candidate against baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the candidate: pairs (baseline, candidate) where the candidate is
    /// slower, ties counting one half (on the effective, capped counts).
    pub u: f64,
    /// Standardised U (normal approximation, tie-corrected); positive when
    /// the candidate tends to be slower.
    pub z: f64,
    /// One-sided p-value of "the candidate is slower".
    pub p_slower: f64,
    /// Two-sided p-value.
    pub p_two_sided: f64,
    /// P(candidate sample > baseline sample) + ½ P(tie): 0.5 means no shift.
    pub prob_slower: f64,
}

/// Mann-Whitney U on bucket counts. Baseline values are multiplied by
/// `baseline_scale` first, so `baseline_scale = 1.5` tests "is the candidate
/// slower than 1.5 × the baseline". Counts are scaled to at most
/// `resample_cap` per side. `None` when either side has no samples.
pub fn mann_whitney(
    baseline: &Empirical,
    candidate: &Empirical,
    baseline_scale: f64,
    resample_cap: u64,
) -> Option<MannWhitney> {
    let (nb_raw, nc_raw) = (baseline.count(), candidate.count());
    if nb_raw == 0 || nc_raw == 0 {
        return None;
    }
    let weight = |n: u64| (resample_cap.max(1) as f64 / n as f64).min(1.0);
    let (wb, wc) = (weight(nb_raw), weight(nc_raw));
    // Merge both bucket lists by value; each entry: (value, baseline, candidate).
    let mut merged: Vec<(f64, f64, f64)> = baseline
        .buckets()
        .map(|(v, n)| (v as f64 * baseline_scale, n as f64 * wb, 0.0))
        .chain(
            candidate
                .buckets()
                .map(|(v, n)| (v as f64, 0.0, n as f64 * wc)),
        )
        .collect();
    merged.sort_by(|a, b| a.0.total_cmp(&b.0));
    let nb = nb_raw as f64 * wb;
    let nc = nc_raw as f64 * wc;
    let total = nb + nc;
    let (mut below, mut rank_sum_c, mut ties) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < merged.len() {
        let (mut b, mut c) = (0.0, 0.0);
        let v = merged[i].0;
        while i < merged.len() && merged[i].0 == v {
            b += merged[i].1;
            c += merged[i].2;
            i += 1;
        }
        let t = b + c;
        let mid_rank = below + (t + 1.0) / 2.0;
        rank_sum_c += c * mid_rank;
        ties += t * t * t - t;
        below += t;
    }
    let u = rank_sum_c - nc * (nc + 1.0) / 2.0;
    let mean = nb * nc / 2.0;
    let var = nb * nc / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)).max(1.0));
    let z = if var > 0.0 {
        (u - mean) / var.sqrt()
    } else {
        0.0
    };
    Some(MannWhitney {
        u,
        z,
        p_slower: normal_sf(z),
        p_two_sided: (2.0 * normal_sf(z.abs())).min(1.0),
        prob_slower: u / (nb * nc),
    })
}

/// Upper-tail probability of the standard normal, P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The upper quantile of the standard normal: z with P(Z > z) = p.
pub fn normal_isf(p: f64) -> f64 {
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    // Bisection on normal_sf is plenty fast for a handful of calls and
    // avoids another table of coefficients.
    let (mut lo, mut hi) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if normal_sf(mid) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Complementary error function (W. J. Cody's rational Chebyshev fit as
/// given in Numerical Recipes' `erfcc`, fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// A small deterministic generator (xoshiro256**, seeded by SplitMix64):
/// results must not change with a dependency's version, or a gate verdict
/// would change without any change to the data.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator from a 64-bit seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in the open interval (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Gamma(shape, 1) for shape ≥ 1 (Marsaglia and Tsang).
    fn gamma(&mut self, shape: f64) -> f64 {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Beta(a, b) for a, b ≥ 1.
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        x / (x + y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn empirical_quantiles_match_hdrhistogram() {
        let mut rng = Rng::new(7);
        let h = hist((0..10_000).map(|_| (rng.uniform() * 50_000.0) as u64 + 1));
        let e = Empirical::new(&h);
        for q in [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(e.quantile(q), h.value_at_quantile(q.max(1e-12)), "q={q}");
        }
    }

    #[test]
    fn beta_draws_have_the_right_mean() {
        let mut rng = Rng::new(1);
        let (a, b) = (99.0, 2.0);
        let mean: f64 = (0..20_000).map(|_| rng.beta(a, b)).sum::<f64>() / 20_000.0;
        assert!((mean - a / (a + b)).abs() < 0.002, "{mean}");
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_sf(-1.644_854) - 0.95).abs() < 1e-6);
        assert!((normal_isf(0.025) - 1.959_964).abs() < 1e-4);
    }

    #[test]
    fn mann_whitney_matches_a_hand_computed_case() {
        // Baseline {1,2,3}, candidate {3,4,5}: candidate 3 beats 1 and 2 and
        // ties 3 (2.5), 4 and 5 beat all three (3 + 3): U = 8.5 of 9 pairs.
        let b = Empirical::new(&hist([1, 2, 3]));
        let c = Empirical::new(&hist([3, 4, 5]));
        let mw = mann_whitney(&b, &c, 1.0, u64::MAX).unwrap();
        assert!((mw.u - 8.5).abs() < 1e-9, "{mw:?}");
        assert!((mw.prob_slower - 8.5 / 9.0).abs() < 1e-9);
        assert!(mw.z > 0.0);
    }

    #[test]
    fn mann_whitney_of_identical_histograms_is_centred() {
        let b = Empirical::new(&hist((1..=1000).map(|v| v * 10)));
        let mw = mann_whitney(&b, &b, 1.0, u64::MAX).unwrap();
        assert!(
            mw.z.abs() < 1e-9 && (mw.p_two_sided - 1.0).abs() < 1e-6,
            "{mw:?}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let mut rng = Rng::new(3);
        let b = Empirical::new(&hist((0..5_000).map(|_| (rng.uniform() * 1e4) as u64 + 1)));
        let c = Empirical::new(&hist((0..5_000).map(|_| (rng.uniform() * 1e4) as u64 + 1)));
        let s = Settings::default();
        let one = quantile_ratio(&b, &c, 0.99, &s).unwrap();
        assert_eq!(one, quantile_ratio(&b, &c, 0.99, &s).unwrap());
        assert!(
            one.low <= one.estimate && one.estimate <= one.high,
            "{one:?}"
        );
    }
}
