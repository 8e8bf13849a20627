//! Partitions of a data set into federated clients.

use super::uniform_below;
use crate::NnError;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rand_distr::{Distribution, Gamma};

/// Splits `0..n` into `k` shuffled parts of sizes differing by at most one
/// (IID clients).
pub fn partition_iid(n: usize, k: usize, seed: u64) -> Result<Vec<Vec<usize>>, NnError> {
    if k == 0 || k > n {
        return Err(NnError::Config(format!(
            "cannot split {n} examples into {k} clients"
        )));
    }
    let order = super::shuffled_indices(n, &mut ChaCha20Rng::seed_from_u64(seed));
    let mut parts = vec![Vec::with_capacity(n / k + 1); k];
    for (i, e) in order.into_iter().enumerate() {
        parts[i % k].push(e);
    }
    Ok(parts)
}

/// Non-IID clients (Hsu et al. 2019): for each class, proportions over the
/// `k` clients are drawn from Dirichlet(α, …, α) and the class's examples
/// dealt out accordingly. Small α (0.1) gives clients dominated by a few
/// classes; large α (100) approaches IID. Every client is guaranteed at
/// least one example (redrawn up to 100 times, then an error).
pub fn partition_dirichlet(
    labels: &[usize],
    num_classes: usize,
    k: usize,
    alpha: f64,
    seed: u64,
) -> Result<Vec<Vec<usize>>, NnError> {
    if k == 0 || k > labels.len() {
        return Err(NnError::Config(format!(
            "cannot split {} examples into {k} clients",
            labels.len()
        )));
    }
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(NnError::Config(format!(
            "Dirichlet α must be positive, got {alpha}"
        )));
    }
    let gamma = Gamma::new(alpha, 1.0).map_err(|e| NnError::Config(e.to_string()))?;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut by_class = vec![Vec::new(); num_classes];
    for (i, &c) in labels.iter().enumerate() {
        by_class
            .get_mut(c)
            .ok_or_else(|| NnError::Config(format!("label {c} out of range")))?
            .push(i);
    }
    for _ in 0..100 {
        let mut parts = vec![Vec::new(); k];
        for members in &by_class {
            let mut members = members.clone();
            for i in (1..members.len()).rev() {
                let j = uniform_below(&mut rng, i as u64 + 1) as usize;
                members.swap(i, j);
            }
            let w: Vec<f64> = (0..k).map(|_| gamma.sample(&mut rng)).collect();
            let total: f64 = w.iter().sum();
            // Cumulative proportions → cut points.
            let mut acc = 0.0;
            let mut start = 0;
            for (client, wi) in w.iter().enumerate() {
                acc += wi;
                let end = if client + 1 == k || total <= 0.0 {
                    members.len()
                } else {
                    (((acc / total) * members.len() as f64).round() as usize).min(members.len())
                };
                parts[client].extend_from_slice(&members[start.min(end)..end]);
                start = start.max(end);
            }
        }
        if parts.iter().all(|p| !p.is_empty()) {
            return Ok(parts);
        }
    }
    Err(NnError::Config(format!(
        "Dirichlet partition with α = {alpha} left a client empty 100 times; use fewer clients or a larger α"
    )))
}
