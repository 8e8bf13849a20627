//! The vector context: parameters (chosen from a depth and a precision),
//! keys, the canonical scale of each level, encryption, decryption and
//! flooded release.

use super::ops::CkksVector;
use crate::layout::replicated_chunk;
use crate::TensorError;
use cipherflow_ckks::params::max_log_qp_128;
use cipherflow_ckks::{
    rotation_galois_element, CkksError, CkksParams, Decryptor, Encoder, Encryptor, Evaluator,
    Flooding, Fresh, GaloisKeys, NoiseBound, ParamsBuilder, PublicKey, RelinKey, SecretKey,
    DEFAULT_TAIL_BITS,
};
use cipherflow_ring::ntt::NttTable;
use cipherflow_ring::{generate_primes, is_prime, Modulus};
use rand_core::{CryptoRng, RngCore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Statistical security (bits) of a release's flooding unless the caller
/// asks for another.
pub const DEFAULT_STAT_SEC_BITS: u32 = 40;

/// Releases a context allows unless it is created with another budget: the
/// flooding of each is sized so that all of them together stay within the
/// statistical security.
pub const DEFAULT_RELEASE_BUDGET: u64 = 1 << 10;

/// Bits between the scale and the precision [`choose_params`] promises: a
/// fresh public-key encryption's error sits about 2^18 below the scale at
/// N = 2^13 (measured: 22.3 bits at 2^40), products and rescales add
/// little on top, and the rest is margin.
const NOISE_MARGIN_BITS: u32 = 22;
const MIN_LOG_SCALE: u32 = 25;
const MAX_PRIME_BITS: u32 = 60;

/// The smallest 128-bit secure parameter set with `depth` multiplicative
/// levels whose results keep about `precision_bits` bits after the
/// decimal point for values below `2^integer_bits`, with at least
/// `2^(min_log_n − 1)` slots. The first prime holds the scale and the
/// integer part, so `precision_bits + integer_bits` is at most 38.
///
/// The scale is `2^(precision + 22)`, the first prime holds the integer
/// part, and the rescaling primes are chosen so that the canonical scales
/// stay within 2^−20 of the scale at every level (see the module
/// documentation), which generic primes do not.
pub fn choose_params(
    depth: usize,
    precision_bits: u32,
    integer_bits: u32,
    min_log_n: u32,
) -> Result<CkksParams, TensorError> {
    let s = (precision_bits.saturating_add(NOISE_MARGIN_BITS)).max(MIN_LOG_SCALE);
    let q0 = s.saturating_add(integer_bits).saturating_add(1);
    if s > MAX_PRIME_BITS || q0 > MAX_PRIME_BITS + 1 {
        return Err(TensorError::DoesNotFit(format!(
            "{precision_bits} bits of precision and {integer_bits} integer bits need a scale of \
             2^{s} and a first prime of {q0} bits; primes have at most {} bits \
             (ask for less precision or smaller values)",
            MAX_PRIME_BITS + 1
        )));
    }
    let d = u32::try_from(depth).map_err(|_| TensorError::DoesNotFit("depth overflow".into()))?;
    let p_bits = q0.max(s);
    for log_n in min_log_n.max(12)..=16 {
        let Some(budget) = max_log_qp_128(log_n) else {
            continue;
        };
        let need = q0 + d.saturating_mul(s) + p_bits;
        if need <= budget {
            return build_chain(log_n, s, q0, p_bits, depth);
        }
    }
    Err(TensorError::DoesNotFit(format!(
        "depth {depth} at a scale of 2^{s} needs more modulus than N = 2^16 allows at 128-bit \
         security; lower the depth or the precision"
    )))
}

/// The NTT-friendly prime (`≡ 1 mod 2N`) of at most `MAX_PRIME_BITS + 1`
/// bits closest to `target`, not in `used`.
fn closest_prime(target: f64, n: usize, used: &[u64]) -> Result<u64, TensorError> {
    let two_n = 2 * n as u64;
    let max = 1u64 << (MAX_PRIME_BITS + 1);
    if !target.is_finite() || target < (two_n as f64) * 4.0 || target >= max as f64 {
        return Err(TensorError::DoesNotFit(format!(
            "no prime near 2^{:.2}",
            target.log2()
        )));
    }
    let base = ((target as u64).saturating_sub(1) / two_n) * two_n + 1;
    for k in 0..(1u64 << 20) {
        for cand in [base.checked_add(k * two_n), base.checked_sub(k * two_n)]
            .into_iter()
            .flatten()
        {
            if cand > two_n
                && cand < max
                && is_prime(cand)
                && !used.contains(&cand)
                && ntt_ready(n, cand)
            {
                return Ok(cand);
            }
        }
    }
    Err(TensorError::DoesNotFit(format!(
        "no prime near 2^{:.2}",
        target.log2()
    )))
}

/// Whether the NTT library has a plan for `q` at degree `n` (it has none
/// for some primes of the right form).
fn ntt_ready(n: usize, q: u64) -> bool {
    Modulus::new(q).and_then(|m| NttTable::new(n, m)).is_ok()
}

fn build_chain(
    log_n: u32,
    s: u32,
    q0_bits: u32,
    p_bits: u32,
    depth: usize,
) -> Result<CkksParams, TensorError> {
    let n = 1usize << log_n;
    let scale = 2f64.powi(s as i32);
    let mut used: Vec<u64> = Vec::with_capacity(depth + 2);
    let q0 = *generate_primes(q0_bits, n, 1, &used)
        .map_err(CkksError::from)?
        .first()
        .ok_or_else(|| TensorError::DoesNotFit(format!("no {q0_bits}-bit prime")))?;
    used.push(q0);
    // q_L first: Δ_{l−1} = Δ_l² / q_l stays next to 2^s when q_l ≈ Δ_l² / 2^s.
    let mut rescaling = Vec::with_capacity(depth);
    let mut delta = scale;
    for _ in 0..depth {
        let q = closest_prime(delta * delta / scale, n, &used)?;
        used.push(q);
        rescaling.push(q);
        delta = delta * delta / q as f64;
    }
    let p = *generate_primes(p_bits, n, 1, &used)
        .map_err(CkksError::from)?
        .first()
        .ok_or_else(|| TensorError::DoesNotFit(format!("no {p_bits}-bit prime")))?;
    let mut q = vec![q0];
    q.extend(rescaling.iter().rev());
    Ok(ParamsBuilder::new(log_n)
        .primes(&q, &[p])
        .log_scale(s)
        .build()?)
}

/// The canonical scale of every level (see the module documentation), or
/// an error when the chain drifts more than a factor of 2 from the scale.
fn canonical_scales(params: &CkksParams) -> Result<Vec<f64>, TensorError> {
    let top = params.max_level();
    let base = params.default_scale();
    let mut scales = vec![0.0; top + 1];
    let mut delta = base;
    for level in (0..=top).rev() {
        if let Some(slot) = scales.get_mut(level) {
            *slot = delta;
        }
        if !(base / 2.0..=base * 2.0).contains(&delta) {
            return Err(TensorError::Invalid(format!(
                "the scale at level {level} drifts to 2^{:.2} with these primes \
                 (choose the parameters with choose_params)",
                delta.log2()
            )));
        }
        if level > 0 {
            let q = *params
                .q()
                .get(level)
                .ok_or(TensorError::Ckks(CkksError::InvalidLevel(level)))?
                as f64;
            delta = delta * delta / q;
        }
    }
    Ok(scales)
}

/// Values handed to another party, with the precision the flooding left.
#[derive(Clone, Debug)]
pub struct Released {
    /// The flooded values.
    pub values: Vec<f64>,
    /// Expected bits of precision of `values` after flooding.
    pub precision_bits: f64,
    /// Releases left in the context's budget.
    pub remaining: u64,
}

/// Parameters, keys and canonical scales of a set of encrypted vectors.
pub struct VectorContext {
    pub(crate) params: CkksParams,
    pub(crate) encoder: Encoder,
    pub(crate) eval: Evaluator,
    pub(crate) scales: Vec<f64>,
    pub(crate) pk: PublicKey,
    /// The public key's encryptor, made once (not a copy of the key per
    /// encryption).
    enc: Encryptor,
    pub(crate) sk: Option<SecretKey>,
    /// The secret key's decryptor, made once (it holds the decoder's
    /// tables; a decryption is then a product and a decode).
    dec: Option<Decryptor>,
    pub(crate) rlk: Option<RelinKey>,
    pub(crate) galois: RwLock<GaloisKeys>,
    pub(crate) released: AtomicU64,
    pub(crate) release_budget: u64,
}

impl std::fmt::Debug for VectorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorContext")
            .field("params", &self.params.to_string())
            .field("secret_key", &self.sk.is_some())
            .field("relin_key", &self.rlk.is_some())
            .field("galois_keys", &self.galois_key_count())
            .finish()
    }
}

/// What a public context answers when asked for the secret key's work.
fn no_secret_key() -> TensorError {
    TensorError::MissingKey(
        "this is a public context: only the secret key's holder decrypts or makes keys".into(),
    )
}

impl VectorContext {
    /// A new key pair with its relinearization key; `release_budget`
    /// releases may leave the key holder.
    pub fn generate<R: RngCore + CryptoRng>(
        params: &CkksParams,
        release_budget: u64,
        rng: &mut R,
    ) -> Result<Self, TensorError> {
        let sk = SecretKey::generate(params, rng);
        let pk = PublicKey::generate(&sk, rng)?;
        let rlk = RelinKey::generate(&sk, rng)?;
        Self::assemble(
            params,
            pk,
            Some(sk),
            Some(rlk),
            GaloisKeys::default(),
            0,
            release_budget,
        )
    }

    pub(crate) fn assemble(
        params: &CkksParams,
        pk: PublicKey,
        sk: Option<SecretKey>,
        rlk: Option<RelinKey>,
        galois: GaloisKeys,
        released: u64,
        release_budget: u64,
    ) -> Result<Self, TensorError> {
        if release_budget == 0 || release_budget > cipherflow_ckks::MAX_DECRYPTIONS {
            return Err(TensorError::Invalid(format!(
                "release budget {release_budget} not in 1..=2^40"
            )));
        }
        Ok(Self {
            scales: canonical_scales(params)?,
            encoder: Encoder::new(params),
            eval: Evaluator::new(params),
            params: params.clone(),
            enc: Encryptor::with_public_key(&pk),
            pk,
            dec: sk.as_ref().map(Decryptor::new),
            sk,
            rlk,
            galois: RwLock::new(galois),
            released: AtomicU64::new(released),
            release_budget,
        })
    }

    /// The same context without the secret key (what a computing party
    /// receives): it encrypts and computes but cannot decrypt.
    pub fn public(&self) -> Result<Self, TensorError> {
        Self::assemble(
            &self.params,
            self.pk.clone(),
            None,
            self.rlk.clone(),
            self.read_galois()?.clone(),
            0,
            self.release_budget,
        )
    }

    /// The parameters.
    pub fn params(&self) -> &CkksParams {
        &self.params
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// Whether the secret key is here.
    pub fn has_secret_key(&self) -> bool {
        self.sk.is_some()
    }

    /// Slots per ciphertext: the longest vector.
    pub fn slots(&self) -> usize {
        self.params.slots()
    }

    /// The canonical scale of `level`.
    pub fn scale_at(&self, level: usize) -> Result<f64, TensorError> {
        self.scales
            .get(level)
            .copied()
            .ok_or(TensorError::Ckks(CkksError::InvalidLevel(level)))
    }

    /// Galois keys held.
    pub fn galois_key_count(&self) -> usize {
        self.galois
            .read()
            .map(|g| g.elements().count())
            .unwrap_or(0)
    }

    /// Releases made and the budget.
    pub fn releases(&self) -> (u64, u64) {
        (self.released.load(Ordering::SeqCst), self.release_budget)
    }

    pub(crate) fn read_galois(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, GaloisKeys>, TensorError> {
        self.galois
            .read()
            .map_err(|_| TensorError::Invalid("the Galois keys' lock is poisoned".into()))
    }

    pub(crate) fn relin(&self) -> Result<&RelinKey, TensorError> {
        self.rlk.as_ref().ok_or_else(|| {
            TensorError::MissingKey(
                "this context has no relinearization key (the key holder's context makes one)"
                    .into(),
            )
        })
    }

    fn decryptor(&self) -> Result<&Decryptor, TensorError> {
        self.dec.as_ref().ok_or_else(no_secret_key)
    }

    pub(crate) fn secret(&self) -> Result<&SecretKey, TensorError> {
        self.sk.as_ref().ok_or_else(no_secret_key)
    }

    /// Makes Galois keys for `steps` (default: every power of two below the
    /// slot count, which sums and rotations by any step can be built
    /// from); needs the secret key. Returns how many were new.
    pub fn generate_galois_keys<R: RngCore + CryptoRng>(
        &self,
        steps: Option<&[i64]>,
        rng: &mut R,
    ) -> Result<usize, TensorError> {
        let sk = self.secret()?;
        let slots = self.slots() as i64;
        let default: Vec<i64> = (0..63)
            .map(|k| 1i64 << k)
            .take_while(|&s| s < slots)
            .collect();
        let steps = steps.unwrap_or(&default);
        let missing: Vec<i64> = {
            let g = self.read_galois()?;
            steps
                .iter()
                .map(|&s| s.rem_euclid(slots))
                .filter(|&s| s != 0 && !g.contains(rotation_galois_element(&self.params, s)))
                .collect()
        };
        if missing.is_empty() {
            return Ok(0);
        }
        let new = GaloisKeys::generate(sk, &missing, false, rng)?;
        let mut g = self
            .galois
            .write()
            .map_err(|_| TensorError::Invalid("the Galois keys' lock is poisoned".into()))?;
        let before = g.elements().count();
        g.extend(new);
        Ok(g.elements().count() - before)
    }

    /// Encrypts `values` (at most `slots`, finite) under the public key.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        values: &[f64],
        rng: &mut R,
    ) -> Result<CkksVector, TensorError> {
        let slots = self.slots();
        if values.is_empty() || values.len() > slots {
            return Err(TensorError::Shape(format!(
                "a vector holds 1..={slots} values, got {}",
                values.len()
            )));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(TensorError::Invalid("values must be finite".into()));
        }
        let chunk = replicated_chunk(values.len(), slots);
        let packed: Vec<f64> = (0..slots)
            .map(|t| values.get(t % chunk).copied().unwrap_or(0.0))
            .collect();
        let level = self.params.max_level();
        let scale = self.scale_at(level)?;
        let pt = self.encoder.encode(&packed, level, scale)?;
        let ct = self.enc.encrypt(&pt, rng)?;
        let max = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let bound = NoiseBound::fresh(
            &self.params,
            Fresh::PublicKey,
            max,
            scale,
            DEFAULT_TAIL_BITS,
        )?;
        Ok(CkksVector::new(ct, values.len(), chunk, true, Some(bound)))
    }

    /// The key holder's own view of `v`: never hand these values to
    /// another party (use [`VectorContext::release`]).
    pub fn decrypt(&self, v: &CkksVector) -> Result<Vec<f64>, TensorError> {
        let mut out = self.decryptor()?.decrypt_values(&v.ct)?;
        out.truncate(v.len);
        Ok(out)
    }

    /// Decrypts `v` for another party: flooded at `stat_sec_bits` of
    /// statistical security, the flooding sized from the noise bound
    /// tracked through the operations or, for a vector that arrived as
    /// bytes (whose bound this context cannot know), the caller's
    /// `stated_noise_log2`; counted against the release budget.
    pub fn release<R: RngCore + CryptoRng>(
        &self,
        v: &CkksVector,
        stated_noise_log2: Option<f64>,
        stat_sec_bits: u32,
        rng: &mut R,
    ) -> Result<Released, TensorError> {
        let dec = self.decryptor()?;
        let bound =
            match (stated_noise_log2, v.bound) {
                (Some(bits), _) => {
                    if !(0.0..=120.0).contains(&bits) {
                        return Err(TensorError::Invalid(format!(
                            "stated noise 2^{bits} not in 2^0..=2^120"
                        )));
                    }
                    let values = v.bound.map_or(0.0, |b| b.values());
                    NoiseBound::stated(
                        &self.params,
                        2f64.powf(bits),
                        0.0,
                        values,
                        v.ct.scale(),
                        0.0,
                    )?
                }
                (None, Some(b)) => b,
                (None, None) => return Err(TensorError::Invalid(
                    "this vector arrived as bytes, so its noise bound is unknown here: state the \
                     bound of the computation that produced it (noise_bound_log2)"
                        .into(),
                )),
            };
        let flooding =
            Flooding::for_release(&self.params, &bound, stat_sec_bits, self.release_budget)?;
        // Counted before the values exist: a failure after this point
        // spends a release rather than risking an uncounted one.
        let prior = self
            .released
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                (r < self.release_budget).then_some(r + 1)
            })
            .map_err(|_| {
                TensorError::Ckks(CkksError::Flooding(format!(
                    "release budget of {} decryptions spent: the flooding no longer covers more \
                     (re-key, or create the context with a larger budget)",
                    self.release_budget
                )))
            })?;
        let mut values = dec.decrypt_flooded(&v.ct, &bound, &flooding, rng)?;
        values.truncate(v.len);
        Ok(Released {
            values,
            precision_bits: flooding.precision_bits(&bound),
            remaining: self.release_budget - prior - 1,
        })
    }
}
