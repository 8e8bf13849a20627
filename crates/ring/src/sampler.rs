//! Samplers: uniform residues from a seeded ChaCha20 stream, uniform ternary
//! secrets, a constant-time CDT discrete Gaussian (σ = 3.2), and a wide
//! rounded Gaussian for noise flooding.
//!
//! All randomness for secrets and noise must come from a cryptographically
//! secure generator; [`secure_rng`] seeds ChaCha20 from the operating system.

use crate::context::RingContext;
use crate::poly::RnsPoly;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use zeroize::Zeroizing;

/// Standard deviation of the RLWE error distribution (HomomorphicEncryption.org standard).
pub const ERROR_STD_DEV: f64 = 3.2;
/// Tail cut of the error distribution: |e| ≤ 19 (≈ 6σ).
pub const ERROR_BOUND: i64 = 19;

/// A ChaCha20 generator seeded from the operating system.
pub fn secure_rng() -> ChaCha20Rng {
    ChaCha20Rng::from_os_rng()
}

/// A fresh 32-byte seed from `rng`.
pub fn fresh_seed<R: RngCore>(rng: &mut R) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

/// Stream id of limb `i` when expanding a seed: ciphertext limbs use their
/// index, special limbs `2^32 + j`, so that the polynomial sampled for a
/// smaller shape is the restriction of the one for a larger shape.
fn stream_id(limb: usize, q_len: usize) -> u64 {
    if limb < q_len {
        limb as u64
    } else {
        (1u64 << 32) + (limb - q_len) as u64
    }
}

/// Expands a 32-byte seed into a uniform polynomial, deterministically,
/// directly in NTT form (uniform in either representation). Used for the
/// public `a` of ciphertexts and keys, so `a` travels as its seed.
pub fn uniform_from_seed(
    ctx: &RingContext,
    seed: &[u8; 32],
    q_len: usize,
    p_len: usize,
) -> RnsPoly {
    let mut poly = RnsPoly::zero(ctx, q_len, p_len, true);
    let n = ctx.n();
    let tables: Vec<_> = ctx.tables(q_len, p_len).collect();
    poly.data_mut()
        .par_chunks_mut(n)
        .zip(tables.into_par_iter())
        .enumerate()
        .for_each(|(i, (limb, t))| {
            let mut rng = ChaCha20Rng::from_seed(*seed);
            rng.set_stream(stream_id(i, q_len));
            let q = t.modulus().value();
            let mask = u64::MAX >> q.leading_zeros();
            for c in limb.iter_mut() {
                // Rejection sampling: exact uniformity, timing depends only on public randomness.
                loop {
                    let v = rng.next_u64() & mask;
                    if v < q {
                        *c = v;
                        break;
                    }
                }
            }
        });
    poly
}

/// Uniform ternary coefficients in {-1, 0, 1}.
pub fn ternary<R: RngCore>(rng: &mut R, n: usize) -> Zeroizing<Vec<i64>> {
    let mut out = Zeroizing::new(Vec::with_capacity(n));
    let mut buf = 0u64;
    let mut bits = 0u32;
    while out.len() < n {
        if bits < 2 {
            buf = rng.next_u64();
            bits = 64;
        }
        let v = (buf & 3) as i64;
        buf >>= 2;
        bits -= 2;
        // Reject 3 so {0,1,2} are equiprobable; map to {-1,0,1}.
        if v != 3 {
            out.push(v - 1);
        }
    }
    out
}

/// Cumulative table of |X| for the discrete Gaussian of σ = 3.2 cut at 19,
/// scaled to 2^63.
fn cdt_table() -> [u64; ERROR_BOUND as usize] {
    let rho = |k: i64| (-((k * k) as f64) / (2.0 * ERROR_STD_DEV * ERROR_STD_DEV)).exp();
    let total: f64 = rho(0) + 2.0 * (1..=ERROR_BOUND).map(rho).sum::<f64>();
    let mut table = [0u64; ERROR_BOUND as usize];
    let mut acc = 0.0;
    for (k, t) in table.iter_mut().enumerate() {
        let k = k as i64;
        acc += if k == 0 { rho(0) } else { 2.0 * rho(k) } / total;
        *t = (acc * 9_223_372_036_854_775_808.0) as u64;
    }
    table
}

/// Discrete Gaussian samples (σ = 3.2, |x| ≤ 19) by a constant-time
/// cumulative-distribution-table scan: every sample reads the whole table
/// and uses no secret-dependent branch.
pub fn gaussian<R: RngCore>(rng: &mut R, n: usize) -> Zeroizing<Vec<i64>> {
    let table = cdt_table();
    let mut out = Zeroizing::new(Vec::with_capacity(n));
    for _ in 0..n {
        let r = rng.next_u64();
        let u = r >> 1;
        let sign = (r & 1) as i64;
        let mut mag = 0i64;
        for &t in &table {
            mag += i64::from(u >= t);
        }
        // Branch-free conditional negation.
        out.push((mag ^ -sign) + sign);
    }
    out
}

/// Rounded continuous Gaussian samples of (public) standard deviation
/// `sigma`, for noise flooding; Box–Muller on 53-bit uniforms. Returns
/// `None` when `sigma` is not finite or so large that samples could leave
/// the `i64` range.
pub fn wide_gaussian<R: RngCore>(rng: &mut R, sigma: f64, n: usize) -> Option<Zeroizing<Vec<i64>>> {
    if !sigma.is_finite() || sigma <= 0.0 || sigma > 2f64.powi(55) {
        return None;
    }
    let unit = |r: u64| ((r >> 11) as f64 + 0.5) / 9_007_199_254_740_992.0;
    let mut out = Zeroizing::new(Vec::with_capacity(n));
    while out.len() < n {
        let u1 = unit(rng.next_u64());
        let u2 = unit(rng.next_u64());
        let rad = (-2.0 * u1.ln()).sqrt() * sigma;
        let th = 2.0 * std::f64::consts::PI * u2;
        out.push((rad * th.cos()).round() as i64);
        if out.len() < n {
            out.push((rad * th.sin()).round() as i64);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_moments() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let s = gaussian(&mut rng, 200_000);
        let mean = s.iter().sum::<i64>() as f64 / s.len() as f64;
        let var = s.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / s.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!(
            (var.sqrt() - ERROR_STD_DEV).abs() < 0.03,
            "std {}",
            var.sqrt()
        );
        assert!(s.iter().all(|x| x.abs() <= ERROR_BOUND));
        assert!(s.iter().any(|&x| x < -8) && s.iter().any(|&x| x > 8));
    }

    #[test]
    fn ternary_is_balanced() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let s = ternary(&mut rng, 90_000);
        for v in -1..=1 {
            let c = s.iter().filter(|&&x| x == v).count();
            assert!((c as i64 - 30_000).abs() < 800, "{v}: {c}");
        }
    }

    #[test]
    fn seeded_uniform_is_deterministic_and_prefix_consistent() {
        let ctx = RingContext::new(64, &[12289, 40961], &[65537]).unwrap();
        let seed = [7u8; 32];
        let a = uniform_from_seed(&ctx, &seed, 2, 1);
        let b = uniform_from_seed(&ctx, &seed, 1, 1);
        assert_eq!(a.limb(0), b.limb(0));
        assert_eq!(a.limb(2), b.limb(1));
        assert!(a.limb(0).iter().all(|&x| x < 12289));
        assert_ne!(uniform_from_seed(&ctx, &[8u8; 32], 2, 1), a);
    }

    #[test]
    fn wide_gaussian_scale() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let s = wide_gaussian(&mut rng, 1e6, 20_000).unwrap();
        let var = s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len() as f64;
        assert!((var.sqrt() / 1e6 - 1.0).abs() < 0.03);
        assert!(wide_gaussian(&mut rng, f64::NAN, 4).is_none());
    }
}
