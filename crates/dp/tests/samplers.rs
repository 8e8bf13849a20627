//! Statistical tests of the noise samplers with fixed seeds: mean, variance,
//! tails against the exact pmf, and chi-square goodness of fit.
//!
//! Thresholds are set for the fixed seeds with ample margin (≥ 4-5 standard
//! errors or a chi-square p-value around 1e-4), so they are deterministic
//! and still catch a wrong distribution.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_dp::discrete::{
    bernoulli_exp_neg, discrete_laplace, poisson, skellam, uniform_below, DiscreteGaussian,
};
use cipherflow_dp::distributed::{DistributedNoise, IntegerNoise};
use cipherflow_dp::mechanisms::standard_normal;
use cipherflow_dp::try_gaussian_noise;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::collections::BTreeMap;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, v)
}

/// Upper critical value of chi-square with `k` degrees of freedom at
/// p ≈ 1e-4 (Wilson–Hilferty approximation, z = 3.72).
fn chi2_critical(k: usize) -> f64 {
    let k = k as f64;
    let z = 3.72;
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// Chi-square statistic of integer samples against a pmf, pooling cells
/// with expected count < 5 into the two tails.
fn chi_square(
    counts: &BTreeMap<i64, u64>,
    n: u64,
    pmf: impl Fn(i64) -> f64,
    lo: i64,
    hi: i64,
) -> (f64, usize) {
    let n = n as f64;
    let mut cells: Vec<(f64, f64)> = Vec::new(); // (observed, expected)
    let mut tail_lo = (0.0, 0.0);
    let mut tail_hi = (0.0, 0.0);
    let mut inside = 0.0;
    for k in lo..=hi {
        let e = n * pmf(k);
        let o = *counts.get(&k).unwrap_or(&0) as f64;
        inside += pmf(k);
        if e < 5.0 {
            if k < 0 {
                tail_lo.0 += o;
                tail_lo.1 += e;
            } else {
                tail_hi.0 += o;
                tail_hi.1 += e;
            }
        } else {
            cells.push((o, e));
        }
    }
    // Everything outside [lo, hi] joins the tails.
    let outside_obs: f64 = counts
        .iter()
        .filter(|(k, _)| **k < lo || **k > hi)
        .map(|(_, c)| *c as f64)
        .sum();
    tail_hi.0 += outside_obs;
    tail_hi.1 += n * (1.0 - inside).max(0.0);
    for t in [tail_lo, tail_hi] {
        if t.1 > 0.0 {
            cells.push(t);
        }
    }
    let stat = cells.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
    (stat, cells.len() - 1)
}

#[test]
fn uniform_below_is_uniform() {
    let mut r = rng(1);
    let n = 60_000u64;
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        *counts
            .entry(uniform_below(&mut r, 6) as i64)
            .or_insert(0u64) += 1;
    }
    let (stat, df) = chi_square(&counts, n, |_| 1.0 / 6.0, 0, 5);
    assert!(stat < chi2_critical(df), "{stat} df={df}");
    // Large ranges stay in range.
    for _ in 0..1000 {
        assert!(uniform_below(&mut r, u128::MAX - 7) < u128::MAX - 7);
    }
}

#[test]
fn bernoulli_exp_frequency() {
    let mut r = rng(2);
    for &(num, den) in &[(1u128, 3u128), (5, 2), (7, 1), (0, 1)] {
        let n = 40_000;
        let hits = (0..n)
            .filter(|_| bernoulli_exp_neg(&mut r, num, den).unwrap())
            .count() as f64;
        let p = (-(num as f64) / den as f64).exp();
        let se = (p * (1.0 - p) / n as f64).sqrt().max(1e-9);
        assert!(
            (hits / n as f64 - p).abs() < 5.0 * se + 1e-12,
            "{num}/{den}: {} vs {p}",
            hits / n as f64
        );
    }
}

#[test]
fn discrete_laplace_matches_pmf() {
    let mut r = rng(3);
    let t = 3u64;
    let n = 50_000u64;
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        *counts
            .entry(discrete_laplace(&mut r, t).unwrap())
            .or_insert(0u64) += 1;
    }
    let a = (-1.0 / t as f64).exp();
    let pmf = |k: i64| (1.0 - a) / (1.0 + a) * a.powi(k.unsigned_abs() as i32);
    let (stat, df) = chi_square(&counts, n, pmf, -40, 40);
    assert!(stat < chi2_critical(df), "{stat} df={df}");
}

fn discrete_gaussian_samples(sigma2: (u64, u64), n: usize, seed: u64) -> Vec<i64> {
    let dg = DiscreteGaussian::new(sigma2.0, sigma2.1).unwrap();
    let mut r = rng(seed);
    (0..n).map(|_| dg.sample(&mut r).unwrap()).collect()
}

#[test]
fn discrete_gaussian_mean_variance_tails_chi_square() {
    // σ² = 9/4 (σ = 1.5) and σ² = 40 (σ ≈ 6.32): small and moderate scales.
    for (k, &(num, den)) in [(9u64, 4u64), (40, 1)].iter().enumerate() {
        let dg = DiscreteGaussian::new(num, den).unwrap();
        let n = 100_000usize;
        let xs = discrete_gaussian_samples((num, den), n, 10 + k as u64);
        // Exact moments from the pmf.
        let range = 200i64;
        let exact_var: f64 = (-range..=range).map(|x| (x * x) as f64 * dg.pmf(x)).sum();
        let fs: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
        let (m, v) = mean_var(&fs);
        let se_mean = (exact_var / n as f64).sqrt();
        assert!(m.abs() < 5.0 * se_mean, "mean {m} (se {se_mean})");
        // Var of the sample variance ≈ (μ4 − σ⁴)/n.
        let mu4: f64 = (-range..=range)
            .map(|x| (x as f64).powi(4) * dg.pmf(x))
            .sum();
        let se_var = ((mu4 - exact_var * exact_var) / n as f64).sqrt();
        assert!(
            (v - exact_var).abs() < 5.0 * se_var,
            "var {v} vs {exact_var} (se {se_var})"
        );
        // The discrete Gaussian's variance is slightly below σ² (CKS Cor. 9).
        assert!(exact_var <= num as f64 / den as f64 + 1e-12);
        // Tails: P(|X| ≥ t) against the exact pmf at 2σ and 3σ.
        let s = (num as f64 / den as f64).sqrt();
        for mult in [2.0, 3.0] {
            let t = (mult * s).ceil() as i64;
            let p: f64 = (-range..=range)
                .filter(|x| x.abs() >= t)
                .map(|x| dg.pmf(x))
                .sum();
            let obs = xs.iter().filter(|x| x.abs() >= t).count() as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((obs - p).abs() < 5.0 * se, "tail {t}: {obs} vs {p}");
        }
        // Chi-square over every integer with expected count ≥ 5.
        let mut counts = BTreeMap::new();
        for &x in &xs {
            *counts.entry(x).or_insert(0u64) += 1;
        }
        let (stat, df) = chi_square(&counts, n as u64, |x| dg.pmf(x), -range, range);
        assert!(stat < chi2_critical(df), "chi2 {stat} df={df}");
    }
}

#[test]
fn discrete_gaussian_small_sigma_is_mostly_zero() {
    // σ² = 1/16: P(0) = 1/Σ exp(−8k²) ≈ 0.99933.
    let dg = DiscreteGaussian::new(1, 16).unwrap();
    let xs = discrete_gaussian_samples((1, 16), 20_000, 4);
    let zeros = xs.iter().filter(|&&x| x == 0).count() as f64 / xs.len() as f64;
    assert!((zeros - dg.pmf(0)).abs() < 0.002, "{zeros} {}", dg.pmf(0));
}

#[test]
fn continuous_gaussian_moments_and_bins() {
    let mut r = rng(5);
    let n = 200_000;
    let mut v = vec![0.0; n];
    try_gaussian_noise(&mut r, 2.0, &mut v).unwrap();
    let (m, var) = mean_var(&v);
    assert!(m.abs() < 5.0 * 2.0 / (n as f64).sqrt(), "{m}");
    assert!(
        (var - 4.0).abs() < 5.0 * 4.0 * (2.0 / n as f64).sqrt(),
        "{var}"
    );
    // Chi-square on 20 equiprobable-ish bins of width σ/2 in [−5σ, 5σ].
    let mut counts = BTreeMap::new();
    for x in &v {
        *counts.entry((x / 1.0).floor() as i64).or_insert(0u64) += 1;
    }
    let cdf = |z: f64| 0.5 * libm_erfc(-z / std::f64::consts::SQRT_2);
    let pmf = |k: i64| cdf((k + 1) as f64 / 2.0) - cdf(k as f64 / 2.0);
    let (stat, df) = chi_square(&counts, n as u64, pmf, -10, 9);
    assert!(stat < chi2_critical(df), "{stat} df={df}");
    // Adds to existing values rather than overwriting.
    let mut w = vec![100.0; 1000];
    try_gaussian_noise(&mut r, 1.0, &mut w).unwrap();
    let (mw, _) = mean_var(&w);
    assert!((mw - 100.0).abs() < 0.2);
    let z: Vec<f64> = (0..50_000).map(|_| standard_normal(&mut r)).collect();
    let (mz, vz) = mean_var(&z);
    assert!(mz.abs() < 0.03 && (vz - 1.0).abs() < 0.04);
}

/// erfc via a high-precision series/continued fraction (test-only helper,
/// independent of the crate's implementation).
fn libm_erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - libm_erfc(-x);
    }
    if x < 3.0 {
        // erf by its Taylor series.
        let mut term = x;
        let mut sum = x;
        let mut k = 0.0;
        loop {
            k += 1.0;
            term *= -x * x / k;
            let add = term / (2.0 * k + 1.0);
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // Continued fraction.
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (x + f);
        }
        (-x * x).exp() / std::f64::consts::PI.sqrt() / (x + f)
    }
}

#[test]
fn poisson_and_skellam() {
    let mut r = rng(6);
    for &lam in &[0.7, 4.0, 30.0, 500.0] {
        let n = 60_000;
        let xs: Vec<f64> = (0..n)
            .map(|_| poisson(&mut r, lam).unwrap() as f64)
            .collect();
        let (m, v) = mean_var(&xs);
        assert!(
            (m - lam).abs() < 5.0 * (lam / n as f64).sqrt(),
            "poisson({lam}) mean {m}"
        );
        assert!(
            (v - lam).abs() < 6.0 * lam * (2.0 / n as f64).sqrt() + 0.05,
            "poisson({lam}) var {v}"
        );
        // Chi-square against the exact pmf.
        let mut counts = BTreeMap::new();
        for &x in &xs {
            *counts.entry(x as i64).or_insert(0u64) += 1;
        }
        let pmf = |k: i64| {
            if k < 0 {
                0.0
            } else {
                (k as f64 * lam.ln() - lam - ln_factorial(k)).exp()
            }
        };
        let hi = (lam + 12.0 * lam.sqrt() + 12.0) as i64;
        let (stat, df) = chi_square(&counts, n as u64, pmf, 0, hi);
        assert!(
            stat < chi2_critical(df),
            "poisson({lam}) chi2 {stat} df={df}"
        );
    }
    // Skellam: variance μ, symmetric, chi-square against the convolution pmf.
    let mu = 20.0;
    let n = 60_000;
    let xs: Vec<i64> = (0..n).map(|_| skellam(&mut r, mu).unwrap()).collect();
    let fs: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
    let (m, v) = mean_var(&fs);
    assert!(m.abs() < 5.0 * (mu / n as f64).sqrt(), "{m}");
    assert!((v - mu).abs() < 6.0 * mu * (2.0 / n as f64).sqrt(), "{v}");
    let pois = |k: i64| (k as f64 * (mu / 2.0).ln() - mu / 2.0 - ln_factorial(k)).exp();
    let pmf = |d: i64| {
        (0..200)
            .map(|j| pois(j) * if j + d >= 0 { pois(j + d) } else { 0.0 })
            .sum::<f64>()
    };
    let mut counts = BTreeMap::new();
    for &x in &xs {
        *counts.entry(x).or_insert(0u64) += 1;
    }
    let (stat, df) = chi_square(&counts, n as u64, pmf, -40, 40);
    assert!(stat < chi2_critical(df), "skellam chi2 {stat} df={df}");
}

fn ln_factorial(k: i64) -> f64 {
    (1..=k).map(|i| (i as f64).ln()).sum()
}

#[test]
fn distributed_shares_sum_to_target_noise() {
    // 20 clients, shares scaled for 16 survivors, target σ = 40: with 16
    // reporting clients the summed noise has variance 40², with 20 it is 2000.
    for kind in [IntegerNoise::DiscreteGaussian, IntegerNoise::Skellam] {
        let plan = DistributedNoise::new(kind, 20, 16, 40.0).unwrap();
        assert!((plan.share_variance() - 100.0).abs() < 1e-9);
        let mut r = rng(7);
        let trials = 4000;
        let mut sums = Vec::with_capacity(trials);
        for _ in 0..trials {
            let mut total = 0i64;
            for _ in 0..16 {
                let mut v = [0i64];
                plan.add_share(&mut r, &mut v).unwrap();
                total += v[0];
            }
            sums.push(total as f64);
        }
        let (m, v) = mean_var(&sums);
        assert!(
            m.abs() < 5.0 * 40.0 / (trials as f64).sqrt(),
            "{kind:?} mean {m}"
        );
        assert!(
            (v - 1600.0).abs() < 6.0 * 1600.0 * (2.0 / trials as f64).sqrt(),
            "{kind:?} var {v}"
        );
        assert!((plan.aggregate_stddev(16) - 40.0).abs() < 1e-9);
        assert!(plan.aggregate_stddev(12) < 40.0);
    }
}
