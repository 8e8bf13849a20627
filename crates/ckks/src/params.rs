//! CKKS parameters: ring degree, modulus chain, special primes, scale, key
//! switching digits, and the security check against the
//! HomomorphicEncryption.org standard.

use crate::error::CkksError;
use cipherflow_ring::{generate_primes, is_prime, RingContext, MAX_MODULUS_BITS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// Maximum `log2(QP)` for ternary secrets and σ = 3.2, classical attacks,
/// from the HomomorphicEncryption.org security standard (Albrecht et al.,
/// 2018, Table 1), indexed by `log2 N` from 10 to 16: 128, 192 and 256 bits.
/// The standard gives no 192/256-bit figure for N = 2^16.
const HE_STD: [(u32, u32, u32, u32); 7] = [
    (10, 27, 19, 14),
    (11, 54, 37, 29),
    (12, 109, 75, 58),
    (13, 218, 152, 118),
    (14, 438, 305, 237),
    (15, 881, 611, 476),
    (16, 1772, 0, 0),
];

/// A security level of the HomomorphicEncryption.org standard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SecurityLevel {
    /// Below 128 bits (only with an explicit opt-in).
    #[serde(rename = "insecure")]
    Insecure,
    /// 128-bit classical security.
    #[serde(rename = "128")]
    Bits128,
    /// 192-bit classical security.
    #[serde(rename = "192")]
    Bits192,
    /// 256-bit classical security.
    #[serde(rename = "256")]
    Bits256,
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecurityLevel::Insecure => write!(f, "INSECURE (<128 bits)"),
            SecurityLevel::Bits128 => write!(f, "128-bit"),
            SecurityLevel::Bits192 => write!(f, "192-bit"),
            SecurityLevel::Bits256 => write!(f, "256-bit"),
        }
    }
}

/// The security level reached by `log2(QP)` at `log2 N`.
pub fn security_level(log_n: u32, log_qp: f64) -> SecurityLevel {
    let Some(&(_, b128, b192, b256)) = HE_STD.iter().find(|r| r.0 == log_n) else {
        return SecurityLevel::Insecure;
    };
    if b256 > 0 && log_qp <= f64::from(b256) {
        SecurityLevel::Bits256
    } else if b192 > 0 && log_qp <= f64::from(b192) {
        SecurityLevel::Bits192
    } else if log_qp <= f64::from(b128) {
        SecurityLevel::Bits128
    } else {
        SecurityLevel::Insecure
    }
}

/// The largest `log2(QP)` allowed at 128-bit security for `log2 N`, if tabulated.
pub fn max_log_qp_128(log_n: u32) -> Option<u32> {
    HE_STD.iter().find(|r| r.0 == log_n).map(|r| r.1)
}

/// Builder for [`CkksParams`].
#[derive(Clone, Debug)]
pub struct ParamsBuilder {
    log_n: u32,
    q_bits: Vec<u32>,
    p_bits: Vec<u32>,
    /// Exact primes (instead of bit sizes), from [`ParamsBuilder::primes`].
    primes: Option<(Vec<u64>, Vec<u64>)>,
    log_scale: u32,
    dnum: Option<usize>,
    allow_insecure: bool,
}

impl ParamsBuilder {
    /// Starts a parameter set of degree `2^log_n`.
    pub fn new(log_n: u32) -> Self {
        Self {
            log_n,
            q_bits: Vec::new(),
            p_bits: Vec::new(),
            primes: None,
            log_scale: 40,
            dnum: None,
            allow_insecure: false,
        }
    }

    /// Bit sizes of the ciphertext primes `q_0 … q_L` (the first holds the
    /// final plaintext; the others are the rescaling primes).
    pub fn q_bits(mut self, bits: &[u32]) -> Self {
        self.q_bits = bits.to_vec();
        self
    }

    /// Bit sizes of the special primes `P` of hybrid key switching.
    pub fn p_bits(mut self, bits: &[u32]) -> Self {
        self.p_bits = bits.to_vec();
        self
    }

    /// Exact primes instead of bit sizes (a published parameter set being
    /// rebuilt, see [`crate::ParamsLiteral`]): each is checked to be an odd
    /// prime of 10 to 61 bits with `q ≡ 1 (mod 2N)`, all distinct.
    pub fn primes(mut self, q: &[u64], p: &[u64]) -> Self {
        self.q_bits = q.iter().map(|&x| 64 - x.leading_zeros()).collect();
        self.p_bits = p.iter().map(|&x| 64 - x.leading_zeros()).collect();
        self.primes = Some((q.to_vec(), p.to_vec()));
        self
    }

    /// Default scale `2^log_scale`.
    pub fn log_scale(mut self, log_scale: u32) -> Self {
        self.log_scale = log_scale;
        self
    }

    /// Number of key-switching digits; by default one digit per `|P|` primes
    /// (`dnum = ceil((L+1)/|P|)`).
    pub fn dnum(mut self, dnum: usize) -> Self {
        self.dnum = Some(dnum);
        self
    }

    /// Accepts parameters below 128-bit security. Only for tests and
    /// experiments: never for data that matters.
    pub fn allow_insecure(mut self) -> Self {
        self.allow_insecure = true;
        self
    }

    /// Generates the primes, checks security and builds the ring.
    pub fn build(self) -> Result<CkksParams, CkksError> {
        let invalid = |m: &str| Err(CkksError::InvalidParameters(m.to_string()));
        let min_log_n = if self.allow_insecure { 4 } else { 10 };
        if !(min_log_n..=16).contains(&self.log_n) {
            return invalid("log_n must be in 10..=16 (4..=16 with allow_insecure)");
        }
        if self.q_bits.is_empty() || self.q_bits.len() > 64 || self.p_bits.len() > 32 {
            return invalid("need 1..=64 ciphertext primes and at most 32 special primes");
        }
        if !(10..=60).contains(&self.log_scale) {
            return invalid("log_scale must be in 10..=60");
        }
        let n = 1usize << self.log_n;
        let (q, p) = match &self.primes {
            Some((q, p)) => {
                check_primes(q, p, n)?;
                (q.clone(), p.clone())
            }
            None => self.pick_primes(n)?,
        };
        self.finish(q, p)
    }

    /// The largest NTT-friendly primes of the requested bit sizes, all
    /// distinct.
    fn pick_primes(&self, n: usize) -> Result<(Vec<u64>, Vec<u64>), CkksError> {
        let mut used: Vec<u64> = Vec::new();
        let mut pick = |bits: u32| -> Result<u64, CkksError> {
            let p = generate_primes(bits, n, 1, &used)?
                .first()
                .copied()
                .ok_or_else(|| CkksError::InvalidParameters("no prime".into()))?;
            used.push(p);
            Ok(p)
        };
        let q: Vec<u64> = self
            .q_bits
            .iter()
            .map(|&b| pick(b))
            .collect::<Result<_, _>>()?;
        let p: Vec<u64> = self
            .p_bits
            .iter()
            .map(|&b| pick(b))
            .collect::<Result<_, _>>()?;
        Ok((q, p))
    }

    /// Checks the key-switching digits and the security level of the
    /// moduli, and builds the ring.
    fn finish(self, q: Vec<u64>, p: Vec<u64>) -> Result<CkksParams, CkksError> {
        let invalid = |m: &str| Err(CkksError::InvalidParameters(m.to_string()));
        let n = 1usize << self.log_n;
        let alpha = match (self.dnum, p.len()) {
            (_, 0) => 0,
            (None, k) => k,
            (Some(0), _) => return invalid("dnum must be positive"),
            (Some(d), _) => q.len().div_ceil(d),
        };
        let log_q: f64 = q.iter().map(|&x| (x as f64).log2()).sum();
        let log_p: f64 = p.iter().map(|&x| (x as f64).log2()).sum();
        if alpha > 0 {
            // The noise of key switching is ~ (largest digit)/P: P must cover a digit.
            let worst_digit: f64 = q
                .chunks(alpha)
                .map(|d| d.iter().map(|&x| (x as f64).log2()).sum::<f64>())
                .fold(0.0, f64::max);
            if log_p + 1.0 < worst_digit {
                return Err(CkksError::InvalidParameters(format!(
                    "special modulus P ({log_p:.1} bits) is smaller than a key-switching digit \
                     ({worst_digit:.1} bits): raise dnum or add special primes"
                )));
            }
        }
        let log_qp = log_q + log_p;
        let security = security_level(self.log_n, log_qp);
        if security == SecurityLevel::Insecure && !self.allow_insecure {
            return Err(CkksError::InsecureParameters {
                log_n: self.log_n,
                log_qp,
                max_log_qp: max_log_qp_128(self.log_n).unwrap_or(0),
            });
        }
        let ring = RingContext::new(n, &q, &p)?;
        let mut h = Sha256::new();
        h.update(b"cipherflow-ckks-params-v1");
        h.update(self.log_n.to_le_bytes());
        h.update(self.log_scale.to_le_bytes());
        h.update((alpha as u64).to_le_bytes());
        for x in q.iter().chain(&p) {
            h.update(x.to_le_bytes());
        }
        h.update((q.len() as u64).to_le_bytes());
        let fingerprint: [u8; 32] = h.finalize().into();
        Ok(CkksParams {
            inner: Arc::new(Inner {
                log_n: self.log_n,
                q,
                p,
                log_scale: self.log_scale,
                alpha,
                log_qp,
                security,
                ring,
                fingerprint,
            }),
        })
    }
}

/// Exact primes given by a caller: odd primes of 10 to 61 bits,
/// `x ≡ 1 (mod 2n)`, all distinct.
fn check_primes(q: &[u64], p: &[u64], n: usize) -> Result<(), CkksError> {
    let two_n = 2 * n as u64;
    let mut seen: Vec<u64> = Vec::with_capacity(q.len() + p.len());
    for &x in q.iter().chain(p) {
        let bits = 64 - x.leading_zeros();
        if !(10..=MAX_MODULUS_BITS).contains(&bits) || !is_prime(x) || x % two_n != 1 {
            return Err(CkksError::InvalidParameters(format!(
                "{x} is not a prime of 10 to {MAX_MODULUS_BITS} bits congruent to 1 mod {two_n}"
            )));
        }
        if seen.contains(&x) {
            return Err(CkksError::InvalidParameters(format!(
                "prime {x} is listed twice"
            )));
        }
        seen.push(x);
    }
    Ok(())
}

/// What flooded results must keep: see [`ParamsBuilder::widen_q0_for_flooding`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodTarget {
    /// Bits of precision every decrypted slot must keep after flooding.
    pub precision_bits: f64,
    /// Statistical security λ of the flooding.
    pub stat_sec_bits: u32,
    /// Decryptions released (or ciphertexts returned) under the key.
    pub decryptions: u64,
    /// Size for circuit privacy (hide the approximation error too) rather
    /// than for releasing decryptions.
    pub circuit_privacy: bool,
}

/// Parameters chosen for flooded results by
/// [`ParamsBuilder::widen_q0_for_flooding`].
#[derive(Clone, Debug)]
pub struct FloodedParams {
    /// The parameters, first prime widened as needed.
    pub params: CkksParams,
    /// Bits of the first prime.
    pub q0_bits: u32,
    /// The scale the result must have at decryption.
    pub scale: f64,
    /// The proven bound of the result at that scale.
    pub bound: crate::noise::NoiseBound,
    /// The flooding sized for it.
    pub flooding: crate::encrypt::Flooding,
    /// Precision (bits) guaranteed after flooding: every slot within
    /// `2^−bits` of the ideal result, except with the probability of the
    /// bound's and the flooding tail's failure.
    pub precision_bits: f64,
}

/// Bits (sign included) the decryption modulus needs for values of scaled
/// size `scaled`, noise `noise` and flooding `flooding` (coefficient tail
/// bound at 2^−40 for the vector).
pub(crate) fn flooded_modulus_bits(
    n: f64,
    scaled: f64,
    noise: f64,
    flooding: &crate::encrypt::Flooding,
) -> f64 {
    let z = (2.0 * ((2.0 * n).ln() + 40.0 * std::f64::consts::LN_2)).sqrt();
    (scaled + noise + z * (flooding.sigma() + flooding.grid())).log2() + 2.0
}

impl ParamsBuilder {
    /// Chooses the first prime `q0` (at most 61 bits) and the scale a
    /// result decrypted at `decrypt_level` must have so that, after
    /// flooding sized by `target`, every slot keeps `target.precision_bits`
    /// bits; refuses when that is impossible with these parameters.
    ///
    /// `bound_at(params, scale)` returns the proven [`crate::NoiseBound`] of
    /// the result for a parameter set and the result's scale (the caller's
    /// circuit, tracked with [`crate::noise`]). The precision needs
    /// `scale ≥ 2^p·(B + flooding's slot error)`; the modulus at the
    /// decryption level (the decoder reads the first two primes) needs
    /// `log2(scale·V + B + flooding tail) + 2` bits. Only `q0` is widened:
    /// it never shrinks, and a result that needs more than 61 bits there is
    /// refused (decrypt at a higher level, or ask for less).
    pub fn widen_q0_for_flooding<F>(
        self,
        decrypt_level: usize,
        target: FloodTarget,
        bound_at: F,
    ) -> Result<FloodedParams, CkksError>
    where
        F: Fn(&CkksParams, f64) -> Result<crate::noise::NoiseBound, CkksError>,
    {
        use crate::encrypt::Flooding;
        let refuse = |m: String| Err(CkksError::Flooding(m));
        if !target.precision_bits.is_finite() || target.precision_bits <= 0.0 {
            return refuse(format!("precision {} bits", target.precision_bits));
        }
        if decrypt_level >= self.q_bits.len() {
            return Err(CkksError::InvalidLevel(decrypt_level));
        }
        let mut builder = self;
        // The precision at a scale, and the modulus bits it needs there.
        let eval = |params: &CkksParams, log_scale: f64| -> Result<_, CkksError> {
            let bound = bound_at(params, 2f64.powf(log_scale))?;
            let flooding = if target.circuit_privacy {
                Flooding::for_circuit_privacy(
                    params,
                    &bound,
                    target.stat_sec_bits,
                    target.decryptions,
                )?
            } else {
                Flooding::for_release(params, &bound, target.stat_sec_bits, target.decryptions)?
            };
            let n = params.n() as f64;
            let need =
                flooded_modulus_bits(n, bound.scale() * bound.values(), bound.error(), &flooding);
            Ok((flooding.precision_bits(&bound), need, bound, flooding))
        };
        for _ in 0..4 {
            let params = builder.clone().build()?;
            // Precision grows with the scale up to the cap the relative
            // errors set; find the smallest scale that reaches the target.
            // (A scale whose flooding is not representable reaches nothing.)
            let prec = |ls: f64| eval(&params, ls).map_or(f64::NEG_INFINITY, |r| r.0);
            let (best, cap) = (10..=126)
                .step_by(4)
                .map(|ls| (f64::from(ls), prec(f64::from(ls))))
                .fold(
                    (10.0, f64::NEG_INFINITY),
                    |a, b| if b.1 > a.1 { b } else { a },
                );
            if cap < target.precision_bits {
                return refuse(format!(
                    "{:.1} bits of precision after flooding (λ = {}, {} decryptions) are out of \
                     reach at any scale: the relative errors (encoding of the plaintexts, \
                     floating point) cap it at {cap:.1} bits",
                    target.precision_bits, target.stat_sec_bits, target.decryptions
                ));
            }
            let (mut lo, mut hi) = (10.0f64, best);
            for _ in 0..60 {
                let mid = (lo + hi) / 2.0;
                if prec(mid) >= target.precision_bits {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            let (precision_bits, need_bits, bound, flooding) = eval(&params, hi)?;
            let log_q: Vec<f64> = params.q().iter().map(|&q| (q as f64).log2()).collect();
            let others: f64 = log_q.iter().take(decrypt_level + 1).take(2).skip(1).sum();
            let have = others + log_q.first().copied().unwrap_or(0.0);
            if have >= need_bits {
                return Ok(FloodedParams {
                    q0_bits: builder.q_bits.first().copied().unwrap_or(0),
                    params,
                    scale: bound.scale(),
                    bound,
                    flooding,
                    precision_bits,
                });
            }
            let q0_now = builder.q_bits.first().copied().unwrap_or(0);
            let want = (need_bits - others).ceil().max(0.0) as u32 + 1;
            if want > cipherflow_ring::MAX_MODULUS_BITS {
                return refuse(format!(
                    "{:.1} bits of precision after flooding (λ = {}, {} decryptions, noise 2^{:.1}, \
                     σ = 2^{:.1}) need a scale of 2^{:.1} and {:.1} bits of modulus at level \
                     {decrypt_level}: q0 would need {want} bits (at most {}); decrypt at a higher \
                     level, use larger primes, or ask for less precision",
                    target.precision_bits,
                    target.stat_sec_bits,
                    target.decryptions,
                    bound.noise_log2(),
                    flooding.sigma_log2(),
                    hi,
                    need_bits,
                    cipherflow_ring::MAX_MODULUS_BITS
                ));
            }
            if let Some(q0) = builder.q_bits.first_mut() {
                *q0 = q0_now.max(want);
            }
        }
        refuse("the scale and the first prime did not settle".into())
    }
}

#[derive(Debug)]
struct Inner {
    log_n: u32,
    q: Vec<u64>,
    p: Vec<u64>,
    log_scale: u32,
    alpha: usize,
    log_qp: f64,
    security: SecurityLevel,
    ring: Arc<RingContext>,
    fingerprint: [u8; 32],
}

/// A validated CKKS parameter set (cheap to clone).
#[derive(Clone, Debug)]
pub struct CkksParams {
    inner: Arc<Inner>,
}

impl PartialEq for CkksParams {
    fn eq(&self, other: &Self) -> bool {
        self.inner.fingerprint == other.inner.fingerprint
    }
}

/// Named parameter sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Federated aggregation: additions and one plaintext product
    /// (N = 2^13, Q = \[60, 40\], P = \[60\]; 160 bits, 128-bit secure).
    Aggregation,
    /// Shallow inference, depth 2 — the `n13` benchmark set
    /// (N = 2^13, Q = \[60, 40, 40\], P = \[60\]; 200 bits, 128-bit secure).
    Depth2,
    /// Deep inference, depth 16 — the `n15` benchmark set
    /// (N = 2^15, Q = [60, 40×16], P = [60×3], dnum 6; 880 bits, 128-bit secure).
    Deep,
    /// Benchmark set n13: N = 2^13, [60, 40, 40 | 60].
    N13,
    /// Benchmark set n14: N = 2^14, [60, 40×6 | 60] (SEAL's convention, dnum 7).
    N14,
    /// Benchmark set n15: N = 2^15, [60, 40×16 | 60×3], dnum 6 (3 special
    /// primes instead of SEAL's 1; log2 QP ≈ 880 ≤ 881).
    N15,
    /// Benchmark set n16: N = 2^16, [60, 40×30 | 60×8], dnum 4 (8 special
    /// primes instead of SEAL's 1; log2 QP ≈ 1740 ≤ 1772).
    N16,
}

impl Preset {
    /// Parses `aggregation`, `depth2`, `deep`, `n13` … `n16`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "aggregation" => Self::Aggregation,
            "depth2" => Self::Depth2,
            "deep" => Self::Deep,
            "n13" => Self::N13,
            "n14" => Self::N14,
            "n15" => Self::N15,
            "n16" => Self::N16,
            _ => return None,
        })
    }

    /// The builder for this preset.
    pub fn builder(self) -> ParamsBuilder {
        let forties = |k: usize| {
            let mut v = vec![60];
            v.extend(std::iter::repeat_n(40, k));
            v
        };
        match self {
            Self::Aggregation => ParamsBuilder::new(13).q_bits(&[60, 40]).p_bits(&[60]),
            Self::Depth2 | Self::N13 => ParamsBuilder::new(13).q_bits(&forties(2)).p_bits(&[60]),
            Self::N14 => ParamsBuilder::new(14).q_bits(&forties(6)).p_bits(&[60]),
            Self::Deep | Self::N15 => ParamsBuilder::new(15)
                .q_bits(&forties(16))
                .p_bits(&[60, 60, 60]),
            Self::N16 => ParamsBuilder::new(16).q_bits(&forties(30)).p_bits(&[60; 8]),
        }
    }

    /// Builds the preset.
    pub fn build(self) -> Result<CkksParams, CkksError> {
        self.builder().build()
    }
}

impl CkksParams {
    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.inner.log_n
    }

    /// Ring degree `N`.
    pub fn n(&self) -> usize {
        1 << self.inner.log_n
    }

    /// Number of complex slots `N/2`.
    pub fn slots(&self) -> usize {
        self.n() / 2
    }

    /// The ciphertext primes.
    pub fn q(&self) -> &[u64] {
        &self.inner.q
    }

    /// The special primes.
    pub fn p(&self) -> &[u64] {
        &self.inner.p
    }

    /// Highest level `L` (a fresh ciphertext has `L + 1` primes).
    pub fn max_level(&self) -> usize {
        self.inner.q.len() - 1
    }

    /// Default scale `2^log_scale`.
    pub fn default_scale(&self) -> f64 {
        2f64.powi(self.inner.log_scale as i32)
    }

    /// `log2` of the default scale.
    pub fn log_scale(&self) -> u32 {
        self.inner.log_scale
    }

    /// Primes per key-switching digit (0 when there are no special primes).
    pub fn alpha(&self) -> usize {
        self.inner.alpha
    }

    /// Number of key-switching digits at the top level.
    pub fn dnum(&self) -> usize {
        if self.inner.alpha == 0 {
            0
        } else {
            self.inner.q.len().div_ceil(self.inner.alpha)
        }
    }

    /// `log2(QP)`, special primes included.
    pub fn log_qp(&self) -> f64 {
        self.inner.log_qp
    }

    /// Security level reached (HomomorphicEncryption.org table).
    pub fn security(&self) -> SecurityLevel {
        self.inner.security
    }

    /// The RNS ring.
    pub fn ring(&self) -> &Arc<RingContext> {
        &self.inner.ring
    }

    /// SHA-256 fingerprint of the parameters, stored in every serialized object.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.inner.fingerprint
    }
}

impl fmt::Display for CkksParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "N = 2^{}, L = {}, log2(QP) = {:.1}, scale 2^{}, dnum {}, {} security",
            self.log_n(),
            self.max_level(),
            self.log_qp(),
            self.log_scale(),
            self.dnum(),
            self.security()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_secure() {
        for p in [
            Preset::Aggregation,
            Preset::Depth2,
            Preset::N13,
            Preset::N14,
        ] {
            let params = p.build().unwrap();
            assert!(params.security() >= SecurityLevel::Bits128, "{p:?}");
        }
        let n13 = Preset::N13.build().unwrap();
        assert_eq!(n13.dnum(), 3);
        assert!((n13.log_qp() - 200.0).abs() < 0.01);
    }

    #[test]
    fn insecure_sets_are_refused_unless_opted_in() {
        let b = ParamsBuilder::new(13).q_bits(&[60, 60, 60]).p_bits(&[60]);
        match b.clone().build() {
            Err(CkksError::InsecureParameters { max_log_qp, .. }) => assert_eq!(max_log_qp, 218),
            other => panic!("expected refusal, got {other:?}"),
        }
        assert_eq!(
            b.allow_insecure().build().unwrap().security(),
            SecurityLevel::Insecure
        );
        assert!(ParamsBuilder::new(8).q_bits(&[30]).build().is_err());
        assert!(ParamsBuilder::new(12)
            .q_bits(&[60, 40])
            .p_bits(&[20])
            .build()
            .is_err());
    }

    #[test]
    fn table_boundaries() {
        assert_eq!(security_level(15, 881.0), SecurityLevel::Bits128);
        assert_eq!(security_level(15, 881.5), SecurityLevel::Insecure);
        assert_eq!(security_level(14, 300.0), SecurityLevel::Bits192);
        assert_eq!(security_level(12, 58.0), SecurityLevel::Bits256);
        assert_eq!(security_level(17, 10.0), SecurityLevel::Insecure);
    }
}
