//! Samplers: uniform residues from a seeded ChaCha20 stream, uniform ternary
//! secrets, a constant-time CDT discrete Gaussian (σ = 3.2), and a wide
//! integer Gaussian for noise flooding whose every bit is random
//! ([`flooding_gaussian`]).
//!
//! All randomness for secrets and noise must come from a cryptographically
//! secure generator; [`secure_rng`] seeds ChaCha20 from the operating system.

use crate::context::RingContext;
use crate::poly::RnsPoly;
use crate::RingError;
#[cfg(not(target_arch = "wasm32"))]
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use zeroize::Zeroizing;

/// Standard deviation of the RLWE error distribution (HomomorphicEncryption.org standard).
pub const ERROR_STD_DEV: f64 = 3.2;
/// Tail cut of the error distribution: |e| ≤ 19 (≈ 6σ).
pub const ERROR_BOUND: i64 = 19;

/// The generator of [`secure_rng`]: ChaCha20, `rand_chacha`'s natively
/// and in WebAssembly the same keystream four blocks at a time with SIMD128
/// (whose key and buffer are zeroized when dropped).
#[cfg(not(target_arch = "wasm32"))]
pub type SecureRng = ChaCha20Rng;
/// The generator of [`secure_rng`]: ChaCha20, `rand_chacha`'s natively
/// and in WebAssembly the same keystream four blocks at a time with SIMD128
/// (whose key and buffer are zeroized when dropped).
#[cfg(target_arch = "wasm32")]
pub type SecureRng = crate::chacha::ChaCha20x4Rng;

/// A ChaCha20 generator seeded from the operating system: the one entry
/// point for secret randomness in cipherflow (keys, noise, masks, nonces).
/// Fails, rather than panicking, when the operating system cannot supply
/// randomness. Fixed seeds belong in tests only.
pub fn secure_rng() -> Result<SecureRng, RingError> {
    SecureRng::try_from_os_rng().map_err(|e| RingError::Rng(e.to_string()))
}

/// A fresh 32-byte seed from `rng`.
pub fn fresh_seed<R: RngCore>(rng: &mut R) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

/// Fills `limb` with uniform residues below `q` by rejection from the
/// ChaCha20 keystream of `seed` on `stream` (64-bit words, masked to
/// `q`'s bit length): `rand_chacha` natively, and in WebAssembly the same
/// stream four blocks at a time with SIMD128, read straight from its
/// blocks ([`crate::chacha::uniform_limb`], equal word for word).
#[cfg(not(target_arch = "wasm32"))]
fn uniform_limb(seed: &[u8; 32], stream: u64, q: u64, limb: &mut [u64]) {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    rng.set_stream(stream);
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
}
#[cfg(target_arch = "wasm32")]
use crate::chacha::uniform_limb;

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
            uniform_limb(seed, stream_id(i, q_len), t.modulus().value(), limb);
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
    // Bit 0 of a draw is the sign, bits 1..64 the uniform compared with the table.
    let mut emit = |r: u64, mag: i64| {
        let sign = (r & 1) as i64;
        // Branch-free conditional negation.
        out.push((mag ^ -sign) + sign);
    };
    for _ in 0..n / 2 {
        let (r0, r1) = (rng.next_u64(), rng.next_u64());
        let (m0, m1) = cdt_count2(r0 >> 1, r1 >> 1, &table);
        emit(r0, m0);
        emit(r1, m1);
    }
    if n % 2 == 1 {
        let r = rng.next_u64();
        emit(r, cdt_count(r >> 1, &table));
    }
    out
}

/// How many table entries `u` reaches: the magnitude of a sample. Reads
/// the whole table, no branch on `u`.
#[inline(always)]
fn cdt_count(u: u64, table: &[u64; ERROR_BOUND as usize]) -> i64 {
    table.iter().map(|&t| i64::from(u >= t)).sum()
}

/// [`cdt_count`] of two uniforms.
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn cdt_count2(u0: u64, u1: u64, table: &[u64; ERROR_BOUND as usize]) -> (i64, i64) {
    (cdt_count(u0, table), cdt_count(u1, table))
}

/// [`cdt_count`] of two uniforms in the two lanes of a SIMD128 vector
/// (constant-time as the scalar scan: one comparison per entry and lane).
/// The comparison is signed: the uniforms (63 bits) and the entries (all
/// below 2^63, [`cdt_self_test`]) are non-negative as `i64`.
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn cdt_count2(u0: u64, u1: u64, table: &[u64; ERROR_BOUND as usize]) -> (i64, i64) {
    use core::arch::wasm32::{i64x2, i64x2_extract_lane, i64x2_ge, i64x2_splat, i64x2_sub};
    let v = i64x2(u0 as i64, u1 as i64);
    let mut acc = i64x2_splat(0);
    for &t in table {
        // Each lane of the comparison is −1 where `u ≥ t`.
        acc = i64x2_sub(acc, i64x2_ge(v, i64x2_splat(t as i64)));
    }
    (i64x2_extract_lane::<0>(acc), i64x2_extract_lane::<1>(acc))
}

/// Checks [`gaussian`]'s two-lane count against the scalar scan at and
/// beside every table entry, and that every entry is below 2^63 (the
/// SIMD comparison is signed). Run before first use in WebAssembly
/// (see [`crate::simd_self_test`]); natively it checks the same pairs.
pub(crate) fn cdt_self_test() -> bool {
    let table = cdt_table();
    let mut probes = vec![0u64, u64::MAX >> 1];
    for &t in &table {
        probes.extend([
            t.saturating_sub(1),
            t,
            t.saturating_add(1) & (u64::MAX >> 1),
        ]);
    }
    table.iter().all(|&t| t < 1 << 63)
        && probes.iter().zip(probes.iter().rev()).all(|(&a, &b)| {
            cdt_count2(a, b, &table) == (cdt_count(a, &table), cdt_count(b, &table))
        })
}

/// Bits of randomness the floating-point part of [`flooding_gaussian`]
/// carries: the sample is `w·round(σZ/w) + U` with `σ/w ∈ (2^43, 2^44]`.
pub const FLOODING_FLOAT_BITS: u32 = 44;
/// Largest `log2 σ` [`flooding_gaussian`] accepts (samples stay far inside `i128`).
pub const MAX_FLOODING_LOG2: f64 = 100.0;

/// The grid step `w = 2^m` of [`flooding_gaussian`] at standard deviation
/// `sigma`: `1` up to `σ = 2^44`, else `2^(⌈log2 σ⌉ − 44)`, so `w ≤ max(1, σ·2^−43)`.
pub fn flooding_grid_log2(sigma: f64) -> u32 {
    if sigma.is_nan() || sigma <= 0.0 {
        return 0;
    }
    let e = sigma.log2().ceil();
    if e <= f64::from(FLOODING_FLOAT_BITS) {
        0
    } else {
        (e - f64::from(FLOODING_FLOAT_BITS)) as u32
    }
}

/// Integer samples of an (approximately) Gaussian distribution of public
/// standard deviation `sigma`, for noise flooding, with *every* bit random.
///
/// A floating-point Gaussian of standard deviation above 2^53 has fixed low
/// bits (its mantissa has 53), which an observer of `m + e + noise` reads
/// `e` through. Here each sample is `Y = w·C + U` with `w = 2^m`
/// ([`flooding_grid_log2`]), `C = round(σZ/w)` for a standard normal `Z`
/// (Box–Muller on 53-bit uniforms; `σ/w ≤ 2^44`, so `C` is computed with
/// 2^−5 absolute accuracy and is a rounded Gaussian of standard deviation
/// `σ/w`), and `U` uniform on `[−w/2, w/2)` drawn exactly from the CSPRNG.
///
/// Why this suffices for flooding: shifting `Y` by an integer `e = a·w + r`
/// is a bijection on `(C, U)` that shifts `C` by `a` or `a + 1` (the latter
/// with probability `r/w`), and `C` is a deterministic function of a
/// continuous Gaussian, so by the data-processing inequality
/// `KL(Y + e ‖ Y) ≤ (e² + |e|·w) / (2σ²)` (up to the 2^−53 relative error of
/// the floating-point Box–Muller transform). With `w = 1` (σ ≤ 2^44) this is
/// the Gaussian `e²/(2σ²)` and one more term.
///
/// The sampler is not constant-time (floating-point `ln`, `cos`): the
/// samples' timing may leak their rough magnitude, not their low bits.
/// Returns `None` when `sigma` is not finite, not positive, or above
/// `2^MAX_FLOODING_LOG2`.
pub fn flooding_gaussian<R: RngCore>(
    rng: &mut R,
    sigma: f64,
    n: usize,
) -> Option<Zeroizing<Vec<i128>>> {
    if !sigma.is_finite() || sigma <= 0.0 || sigma.log2() > MAX_FLOODING_LOG2 {
        return None;
    }
    let m = flooding_grid_log2(sigma);
    let w = 2f64.powi(m as i32);
    let sigma_c = sigma / w;
    let unit = |r: u64| ((r >> 11) as f64 + 0.5) / 9_007_199_254_740_992.0;
    let mut out = Zeroizing::new(Vec::with_capacity(n));
    let dither = |rng: &mut R| -> i128 {
        if m == 0 {
            return 0;
        }
        let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        let u = (r & ((1u128 << m) - 1)) as i128;
        u - (1i128 << (m - 1))
    };
    while out.len() < n {
        let u1 = unit(rng.next_u64());
        let u2 = unit(rng.next_u64());
        let rad = (-2.0 * u1.ln()).sqrt() * sigma_c;
        let th = 2.0 * std::f64::consts::PI * u2;
        for z in [rad * th.cos(), rad * th.sin()] {
            if out.len() < n {
                // |z| < 9.3·2^44 < 2^48: exact in i64.
                let c = i128::from(z.round() as i64);
                let d = dither(rng);
                out.push((c << m) + d);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairwise scan draws and counts exactly as one sample at a time
    /// (odd lengths included), and the SIMD check holds.
    #[test]
    fn gaussian_pairs_equal_the_scalar_scan() {
        assert!(cdt_self_test());
        let table = cdt_table();
        for n in [0usize, 1, 2, 7, 1000] {
            let mut a = ChaCha20Rng::seed_from_u64(n as u64);
            let mut b = a.clone();
            let got = gaussian(&mut a, n);
            let want: Vec<i64> = (0..n)
                .map(|_| {
                    let r = b.next_u64();
                    let mag = cdt_count(r >> 1, &table);
                    if r & 1 == 1 {
                        -mag
                    } else {
                        mag
                    }
                })
                .collect();
            assert_eq!(*got, want);
            assert_eq!(a.next_u64(), b.next_u64(), "same randomness used");
        }
    }

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
    fn flooding_gaussian_small_sigma_moments() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let s = flooding_gaussian(&mut rng, 1e6, 20_000).unwrap();
        let var = s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len() as f64;
        assert!((var.sqrt() / 1e6 - 1.0).abs() < 0.03);
        assert!(flooding_gaussian(&mut rng, f64::NAN, 4).is_none());
        assert!(flooding_gaussian(&mut rng, 0.0, 4).is_none());
        assert!(flooding_gaussian(&mut rng, 2f64.powi(101), 4).is_none());
    }

    /// Above 2^53 a floating-point Gaussian has fixed low bits; these samples
    /// do not: every one of the low 16 bits is set in about half the samples,
    /// the moments match and the range is that of a Gaussian.
    #[test]
    fn flooding_gaussian_is_exact_above_2_53() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let sigma = 2f64.powi(70);
        let n = 40_000;
        let s = flooding_gaussian(&mut rng, sigma, n).unwrap();
        for bit in 0..16 {
            let ones = s.iter().filter(|&&x| (x >> bit) & 1 == 1).count();
            assert!(
                (ones as f64 / n as f64 - 0.5).abs() < 0.02,
                "bit {bit}: {ones}"
            );
        }
        let distinct_low: std::collections::BTreeSet<i128> = s.iter().map(|&x| x & 0xff).collect();
        assert_eq!(distinct_low.len(), 256);
        let mean = s.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = s.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 4.0 * sigma / (n as f64).sqrt(),
            "mean 2^{}",
            mean.abs().log2()
        );
        assert!(
            (var.sqrt() / sigma - 1.0).abs() < 0.02,
            "std/σ {}",
            var.sqrt() / sigma
        );
        assert!(s.iter().all(|&x| (x as f64).abs() < 10.0 * sigma));
        let beyond = s
            .iter()
            .filter(|&&x| (x as f64).abs() > 2.0 * sigma)
            .count();
        // P(|Z| > 2) = 4.55 %.
        assert!(
            (beyond as f64 / n as f64 - 0.0455).abs() < 0.006,
            "{beyond}"
        );
        assert_eq!(flooding_grid_log2(sigma), 26);
        assert_eq!(flooding_grid_log2(1e6), 0);
    }
}
