//! Secure aggregation of integer vectors under the collective key, one
//! polynomial per ciphertext ("share encryption").
//!
//! Every contributor `i` holds a secret-key share `s_i` of the collective
//! key (see [`super::SecretShare`]). For a public polynomial `a` expanded
//! from a per-use seed ([`aggregation_seed`]: CRS, a context label such as
//! the round, and a chunk index), contributor `i` encrypts an integer vector
//! `v_i` placed in the coefficients of the plaintext, shifted left by
//! `shift` bits:
//!
//! `c0_i = −a·s_i + e_i + 2^shift·v_i`,  `e_i` from the σ = 3.2 Gaussian.
//!
//! This is an RLWE sample under `s_i` — the same form as a public-key share
//! ([`super::public_key_share`]) with a message — so it hides `v_i` under
//! the RLWE assumption. `a` is not sent: it is a function of the seed, so a
//! ciphertext is **one** polynomial, half of a public-key encryption, and
//! `N` integers per polynomial (coefficient packing: both halves of every
//! complex slot, no FFT).
//!
//! Ciphertexts made with the same seed add up:
//! `Σ_{i∈S} c0_i = −a·s_S + Σ e_i + 2^shift·Σ v_i` with `s_S = Σ_{i∈S} s_i`.
//! Decrypting the sum needs `a·s_S`, which only the key holders can
//! provide: each party `j` of an active set `A` (`|A| ≥ t`) publishes
//! `d_j = λ_j·F_S(j)·a + E_j` ([`aggregate_decryption_share`]), where
//! `F_S(j) = Σ_{i∈S} f_i(j)` is the sum of the Shamir shares it holds of
//! the contributors' keys, `λ_j` its Lagrange coefficient over `A`, and
//! `E_j` smudging noise ([`super::Smudging`]). Then
//! `Σ c0 + Σ d_j = 2^shift·Σ v_i + Σ e_i + Σ E_j`, and rounding away the
//! low `shift` bits returns the **exact** integer sum, as long as
//! `2^shift > 2·(B + |A|·2^k)` ([`combine_aggregate`] checks it).
//!
//! A decryption share depends on `a` and on the contributor set `S` only —
//! not on the ciphertext — so it can decrypt nothing but the sum over `S`
//! of ciphertexts made with that seed. A party must therefore give shares
//! for **one** contributor set per seed (two sets differing in one client
//! would isolate that client's vector); the federated layer enforces this
//! and checks `S` against the audit log.
//!
//! A party must also give shares for **one active set** `A` per (seed,
//! `S`). Shares of one party for two active sets are
//! `d_A = λ_A·F·a + E` and `d_A' = λ_A'·F·a + E'`; whenever
//! `λ_A/λ_A' = p/q` with small integers (common with small party ids),
//! `q·d_A − p·d_A' = q·E − p·E'` (mod Q) is small and exposes the smudging
//! noise modulo small integers — and with enough active sets, the
//! secret-dependent term `F·a`. Retries are therefore not harmless. Two
//! ways out exist: shares independent of `A` (Shamir scaled by `Δ = n!`, so
//! that the combiner applies integer Lagrange factors — at the price of
//! `log2 Δ` more modulus bits plus `log2 Σ|λ_j|` more shift, about 30 bits
//! for ten parties and more than a 109-bit modulus can hold past about
//! fifteen, i.e. larger rings and uploads), or **one active set per round,
//! recorded durably by the key holder before its share leaves**. The
//! federated layer (`cipherflow-fed`) takes the second: its clients refuse
//! a second active set for a round, and its coordinator retries only with
//! the same set or with key holders that have not answered yet.
//!
//! An active set of exactly `t + 1` holders makes the decryption
//! **checked** (the `check` module): a lying holder is caught or harmless.
//! Larger sets are refused — each extra holder adds a relation between the
//! shares that the combiner would learn.
//!
//! A key service holding the contributors' keys itself produces the single
//! share `Σ_{i∈S} s_i·a + E` with [`key_holder_share`].

use super::check::{check_witness_bits, is_checkable, CheckBounds};
use super::collective_keygen::{Crs, SecretShare};
use super::error::MultipartyError;
use super::shamir::{lagrange, sum_received, validate_ids, ReceivedSum, ShamirShare};
use super::smudging::{smudging_coeffs, Smudging};
use crate::error::CkksError;
use crate::params::CkksParams;
use crate::secret::SecretPoly;
use crate::serialize::{bad, Kind, Reader, Writer};
use cipherflow_ring::sampler::{gaussian, uniform_from_seed, ERROR_BOUND, ERROR_STD_DEV};
use cipherflow_ring::RnsPoly;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Largest number of chunks one aggregate share may cover in a decoder.
pub const MAX_CHUNKS: usize = 1 << 16;

/// The seed of the public polynomial `a` for chunk `chunk` of the use
/// labelled `context` (e.g. the round number's bytes):
/// `SHA-256("cipherflow-ckks-mp-agg-v1" ‖ crs ‖ len(context) ‖ context ‖ chunk)`.
pub fn aggregation_seed(crs: &Crs, context: &[u8], chunk: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cipherflow-ckks-mp-agg-v1");
    h.update(crs.0);
    h.update((context.len() as u64).to_le_bytes());
    h.update(context);
    h.update(chunk.to_le_bytes());
    h.finalize().into()
}

/// A noise bound `B` on `|Σ_{i∈S} e_i|` for `contributors` share
/// encryptions, over `coefficients` coefficients in all, holding except
/// with probability `2^−λ`: the smaller of the worst case `|S|·19` and the
/// sub-Gaussian tail `z·3.2·√|S|`, `z = √(2 ln(2^(λ+1)·coefficients))`.
pub fn share_sum_noise_log2(contributors: usize, coefficients: usize, stat_sec_bits: u32) -> f64 {
    let c = contributors.max(1) as f64;
    let ln_terms = (f64::from(stat_sec_bits) + 1.0) * std::f64::consts::LN_2
        + (coefficients.max(1) as f64).ln();
    let z = (2.0 * ln_terms).sqrt();
    let tail = z * ERROR_STD_DEV * c.sqrt();
    let worst = c * ERROR_BOUND as f64;
    tail.min(worst).max(1.0).log2()
}

impl Smudging {
    /// Smudging for the sum of `contributors` share encryptions of
    /// `coefficients` coefficients in all ([`share_sum_noise_log2`]).
    pub fn for_share_sum(
        contributors: usize,
        coefficients: usize,
        stat_sec_bits: u32,
    ) -> Result<Self, CkksError> {
        if contributors == 0 {
            return Err(MultipartyError::InvalidSmudging("no contributors".into()).into());
        }
        Self::new(
            stat_sec_bits,
            share_sum_noise_log2(contributors, coefficients, stat_sec_bits),
        )
    }

    /// The smallest `shift` (bits) for which sums of share encryptions
    /// decrypted by `decryptors` shares round to the exact integers:
    /// `2^shift > 2·(B + decryptors·2^k)`.
    pub fn min_shift_bits(&self, decryptors: usize) -> u32 {
        let noise =
            2f64.powf(self.noise_log2()) + decryptors as f64 * 2f64.powi(self.bound_log2() as i32);
        (2.0 * noise).log2().floor() as u32 + 1
    }
}

/// An encrypted integer vector: the `c0` of a share encryption (coefficient
/// form, all ciphertext primes) with the seed of its `a` and its shift.
#[derive(Clone, PartialEq)]
pub struct SharedCiphertext {
    pub(crate) c0: RnsPoly,
    pub(crate) seed: [u8; 32],
    pub(crate) shift: u32,
    pub(crate) params: CkksParams,
}

impl std::fmt::Debug for SharedCiphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCiphertext")
            .field("seed", &hex8(&self.seed))
            .field("shift", &self.shift)
            .finish_non_exhaustive()
    }
}

fn hex8(h: &[u8; 32]) -> String {
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `log2 Q` of the parameters (all ciphertext primes).
fn log_q_all(params: &CkksParams) -> f64 {
    params.q().iter().map(|&q| (q as f64).log2()).sum()
}

/// Largest `|v|` per coefficient that `shift` leaves room for: values, noise
/// and sign must fit `Q`: `2^shift·(|v| + 1) < Q/2`.
pub fn max_abs_value(params: &CkksParams, shift: u32) -> f64 {
    (2f64.powf(log_q_all(params) - 1.0 - f64::from(shift)) - 1.0).max(0.0)
}

impl SharedCiphertext {
    /// The seed of `a`.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The shift: the plaintext is `2^shift·v`.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// Adds `other` (same parameters, seed and shift) into `self`.
    pub fn add_assign(&mut self, other: &Self) -> Result<(), CkksError> {
        if self.params != other.params {
            return Err(CkksError::ParamsMismatch);
        }
        if self.seed != other.seed || self.shift != other.shift {
            return Err(MultipartyError::Mismatch(
                "ciphertexts made for different seeds or shifts".into(),
            )
            .into());
        }
        self.c0.add_assign(self.params.ring(), &other.c0)?;
        Ok(())
    }

    /// Serialized size in bytes of a ciphertext under `params`.
    pub fn encoded_len(params: &CkksParams) -> usize {
        let bits: usize = params
            .ring()
            .tables(params.q().len(), 0)
            .map(|t| t.modulus().bits() as usize)
            .sum();
        4 + 1 + 1 + 32 + 32 + 4 + (bits * params.n()).div_ceil(8)
    }

    /// Versioned encoding: header, seed, shift, `c0` bit-packed to each
    /// prime's width.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(&self.params, Kind::MpSharedCiphertext);
        w.reserve(Self::encoded_len(&self.params));
        w.bytes(&self.seed);
        w.bytes(&self.shift.to_le_bytes());
        w.poly(&self.params, &self.c0);
        w.finish()
    }

    /// Decodes and validates (kind, parameter fingerprint, shift, every
    /// residue below its prime, padding, no trailing bytes).
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::MpSharedCiphertext)?;
        let seed = r.array::<32>()?;
        let shift = u32::from_le_bytes(r.array::<4>()?);
        if f64::from(shift) + 2.0 > log_q_all(params) {
            return Err(bad("shift leaves no room below the modulus"));
        }
        let mut c0 = r.poly(params, params.q().len(), 0)?;
        c0.set_ntt_flag(false);
        r.finish()?;
        Ok(Self {
            c0,
            seed,
            shift,
            params: params.clone(),
        })
    }

    /// SHA-256 of the encoding: the identity recorded in an audit log.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }
}

/// Encrypts `values` (at most `N`, the rest of the coefficients zero) under
/// `sk` with the `a` of `seed`, shifted by `shift` bits. Every value must
/// satisfy `|v| ≤` [`max_abs_value`].
pub fn share_encrypt<R: RngCore + CryptoRng>(
    params: &CkksParams,
    sk: &SecretShare,
    seed: &[u8; 32],
    values: &[i64],
    shift: u32,
    rng: &mut R,
) -> Result<SharedCiphertext, CkksError> {
    sk.check(params)?;
    let n = params.n();
    if values.len() > n {
        return Err(MultipartyError::Mismatch(format!(
            "{} values do not fit {n} coefficients",
            values.len()
        ))
        .into());
    }
    let bound = max_abs_value(params, shift);
    if bound < 1.0 {
        return Err(bad("shift leaves no room below the modulus"));
    }
    if values.iter().any(|&v| v.unsigned_abs() as f64 > bound) {
        return Err(MultipartyError::Mismatch(format!(
            "a value exceeds ±{bound:.3e}, the largest that {shift} bits of shift leave room for"
        ))
        .into());
    }
    let ring = params.ring();
    let q_len = params.q().len();
    let a = uniform_from_seed(ring, seed, q_len, 0);
    let s = sk.restricted(q_len)?;
    let mut c0 = RnsPoly::zero(ring, q_len, 0, true);
    c0.mul_accumulate(ring, &a, &s)?;
    c0.neg_assign(ring);
    c0.ntt_inverse(ring);
    let e = gaussian(rng, n);
    add_message(params, &mut c0, &e, values, shift);
    Ok(SharedCiphertext {
        c0,
        seed: *seed,
        shift,
        params: params.clone(),
    })
}

/// `c0 += e + 2^shift·v` coefficient-wise, per prime.
fn add_message(params: &CkksParams, c0: &mut RnsPoly, e: &[i64], values: &[i64], shift: u32) {
    let moduli = params.ring().q_moduli();
    for (i, m) in moduli.iter().enumerate() {
        let two_s = m.pow(2, u64::from(shift));
        let two_s_shoup = m.shoup(two_s);
        let limb = c0.limb_mut(i);
        for (k, c) in limb.iter_mut().enumerate() {
            let noise = m.reduce_i64(e.get(k).copied().unwrap_or(0));
            let v = values.get(k).copied().unwrap_or(0);
            let scaled = if v == 0 {
                0
            } else {
                m.mul_shoup(m.reduce_i64(v), two_s, two_s_shoup)
            };
            *c = m.add(*c, m.add(noise, scaled));
        }
    }
}

/// A decryption share of sums of share encryptions over one contributor
/// set, for one or more seeds (chunks). Public; send it to the combiner.
#[derive(Clone, PartialEq)]
pub struct AggregateShare {
    pub(crate) party: u64,
    /// The dealing's threshold `t` (0 for a key holder's share): with
    /// `|active| = t + 1` the shares are checked (the `check` module).
    pub(crate) threshold: u32,
    /// Sorted active set; empty for a key holder's (additive) share.
    pub(crate) active: Vec<u64>,
    pub(crate) contributors: Vec<u64>,
    pub(crate) seeds: Vec<[u8; 32]>,
    pub(crate) smudging_log2: u32,
    pub(crate) polys: Vec<RnsPoly>,
    pub(crate) params: CkksParams,
}

impl std::fmt::Debug for AggregateShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateShare")
            .field("party", &self.party)
            .field("threshold", &self.threshold)
            .field("active", &self.active)
            .field("contributors", &self.contributors.len())
            .field("chunks", &self.seeds.len())
            .field("smudging_log2", &self.smudging_log2)
            .finish_non_exhaustive()
    }
}

impl AggregateShare {
    /// The sender's party id (0 for a key holder's share).
    pub fn party(&self) -> u64 {
        self.party
    }

    /// The threshold `t` of the dealing (0 for a key holder's share).
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Whether this share belongs to a checked decryption (`t + 1`
    /// holders, see the `check` module).
    pub fn is_checked(&self) -> bool {
        self.threshold > 0 && self.active.len() == self.threshold as usize + 1
    }

    /// The active set (sorted; empty for a key holder's share).
    pub fn active(&self) -> &[u64] {
        &self.active
    }

    /// The contributor set `S` whose sum it decrypts (sorted).
    pub fn contributors(&self) -> &[u64] {
        &self.contributors
    }

    /// The seeds (one per chunk) it decrypts.
    pub fn seeds(&self) -> &[[u8; 32]] {
        &self.seeds
    }

    /// `k`: every coefficient carries uniform noise on `[−2^k, 2^k)`.
    pub fn smudging_log2(&self) -> u32 {
        self.smudging_log2
    }

    /// Versioned encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(&self.params, Kind::MpAggregateShare);
        w.bytes(&self.party.to_le_bytes());
        w.bytes(&self.threshold.to_le_bytes());
        w.bytes(&self.smudging_log2.to_le_bytes());
        for list in [&self.active, &self.contributors] {
            w.bytes(&(list.len() as u32).to_le_bytes());
            for id in list.iter() {
                w.bytes(&id.to_le_bytes());
            }
        }
        w.bytes(&(self.seeds.len() as u32).to_le_bytes());
        for (seed, p) in self.seeds.iter().zip(&self.polys) {
            w.bytes(seed);
            w.poly(&self.params, p);
        }
        w.finish()
    }

    /// Decodes and validates (ids, counts, residues, no trailing bytes).
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::MpAggregateShare)?;
        let party = u64::from_le_bytes(r.array::<8>()?);
        let threshold = u32::from_le_bytes(r.array::<4>()?);
        let smudging_log2 = u32::from_le_bytes(r.array::<4>()?);
        if smudging_log2 > super::MAX_SMUDGING_LOG2 {
            return Err(bad("smudging bound out of range"));
        }
        let mut lists = [Vec::new(), Vec::new()];
        for (which, list) in lists.iter_mut().enumerate() {
            let count = u32::from_le_bytes(r.array::<4>()?) as usize;
            if count > super::MAX_PARTIES || (which == 1 && count == 0) {
                return Err(bad("party count out of range"));
            }
            for _ in 0..count {
                list.push(u64::from_le_bytes(r.array::<8>()?));
            }
            if list.windows(2).any(|w| w.first() >= w.get(1)) {
                return Err(bad("party ids not strictly increasing"));
            }
            if !list.is_empty() {
                validate_ids(params, list)?;
            }
        }
        let [active, contributors] = lists;
        if !active.is_empty() && !active.contains(&party) {
            return Err(bad("sender not in its active set"));
        }
        // A threshold share names t ≥ 1 and t or t + 1 holders; a key
        // holder's share (no active set) names none.
        let t = threshold as usize;
        if active.is_empty() != (t == 0) || (t > 0 && active.len() != t && active.len() != t + 1) {
            return Err(bad("threshold does not fit the active set"));
        }
        let chunks = u32::from_le_bytes(r.array::<4>()?) as usize;
        if chunks == 0 || chunks > MAX_CHUNKS {
            return Err(bad("chunk count out of range"));
        }
        let mut seeds = Vec::with_capacity(chunks);
        let mut polys = Vec::with_capacity(chunks);
        for _ in 0..chunks {
            seeds.push(r.array::<32>()?);
            let mut p = r.poly(params, params.q().len(), 0)?;
            p.set_ntt_flag(false);
            polys.push(p);
        }
        r.finish()?;
        Ok(Self {
            party,
            threshold,
            active,
            contributors,
            seeds,
            smudging_log2,
            polys,
            params: params.clone(),
        })
    }
}

fn sorted_unique(ids: &[u64], what: &str) -> Result<Vec<u64>, CkksError> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    if v.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(MultipartyError::Mismatch(format!("{what} lists a party twice")).into());
    }
    Ok(v)
}

/// `INTT(key ⊙ a_c) + E_c` for every seed.
fn share_polys<R: RngCore + CryptoRng>(
    params: &CkksParams,
    key: &RnsPoly,
    seeds: &[[u8; 32]],
    smudging: &Smudging,
    rng: &mut R,
) -> Result<Vec<RnsPoly>, CkksError> {
    let ring = params.ring();
    let q_len = params.q().len();
    seeds
        .iter()
        .map(|seed| {
            let a = uniform_from_seed(ring, seed, q_len, 0);
            let mut d = RnsPoly::zero(ring, q_len, 0, true);
            d.mul_accumulate(ring, &a, key)?;
            d.ntt_inverse(ring);
            let e = smudging_coeffs(params, smudging.bound_log2(), q_len, rng)?;
            d.add_assign(ring, &e)?;
            Ok(d)
        })
        .collect()
}

/// Party `my_id`'s decryption share of the sums over `contributors` (`S`)
/// of share encryptions made with `seeds`, for the active set `active`
/// (at least `t` key holders, `my_id` among them; every one of them must
/// answer). `received` must hold exactly one Shamir share addressed to
/// `my_id` from every contributor (more may be given; the others are
/// ignored).
#[allow(clippy::too_many_arguments)]
pub fn aggregate_decryption_share<R: RngCore + CryptoRng>(
    params: &CkksParams,
    my_id: u64,
    received: &[ShamirShare],
    contributors: &[u64],
    active: &[u64],
    seeds: &[[u8; 32]],
    smudging: &Smudging,
    rng: &mut R,
) -> Result<AggregateShare, CkksError> {
    let contributors = sorted_unique(contributors, "the contributor set")?;
    let active = sorted_unique(active, "the active set")?;
    validate_ids(params, &contributors)?;
    validate_ids(params, &active)?;
    if seeds.is_empty() || seeds.len() > MAX_CHUNKS {
        return Err(MultipartyError::Mismatch("no seeds or too many".into()).into());
    }
    if !active.contains(&my_id) {
        return Err(
            MultipartyError::Mismatch(format!("party {my_id} is not in the active set")).into(),
        );
    }
    let ring = params.ring();
    let ReceivedSum {
        threshold: t,
        parties,
        sum: mut key,
    } = sum_received(params, my_id, received, &contributors)?;
    if active.iter().any(|p| !parties.contains(p)) {
        return Err(MultipartyError::Mismatch("active party outside the dealing".into()).into());
    }
    if active.len() < t {
        return Err(MultipartyError::NotEnoughShares {
            have: active.len(),
            need: t,
        }
        .into());
    }
    // t holders: plain. t + 1: checked, with the smudging widened so that
    // the check's sum hides the noise (see `check`). More: refused — each
    // further holder adds a relation the combiner learns.
    let smudging = if active.len() == t {
        *smudging
    } else {
        let max_id = parties.iter().copied().max().unwrap_or(0);
        if active.len() > t + 1 || !is_checkable(&active, max_id) {
            return Err(MultipartyError::Mismatch(format!(
                "an active set of {} for threshold {t} must be t holders, or t + 1 whose ids \
                 let the check hide the noise (e.g. two consecutive ids)",
                active.len()
            ))
            .into());
        }
        smudging.widened(check_witness_bits(max_id))?
    };
    let threshold = u32::try_from(t).map_err(|_| bad("threshold out of range"))?;
    let lambdas = ring
        .q_moduli()
        .iter()
        .map(|m| lagrange(m, my_id, &active))
        .collect::<Result<Vec<u64>, _>>()?;
    key.mul_rns_scalar(ring, &lambdas)?;
    let polys = share_polys(params, &key, seeds, &smudging, rng)?;
    Ok(AggregateShare {
        party: my_id,
        threshold,
        active,
        contributors,
        seeds: seeds.to_vec(),
        smudging_log2: smudging.bound_log2(),
        polys,
        params: params.clone(),
    })
}

/// A key holder's share `Σ_{i∈S} s_i·a + E` (key-service mode: one party
/// holds every contributor's key). `keys` must carry distinct party ids
/// equal to `contributors`.
pub fn key_holder_share<R: RngCore + CryptoRng>(
    params: &CkksParams,
    keys: &[&SecretShare],
    seeds: &[[u8; 32]],
    smudging: &Smudging,
    rng: &mut R,
) -> Result<AggregateShare, CkksError> {
    if keys.is_empty() {
        return Err(MultipartyError::NoShares.into());
    }
    if seeds.is_empty() || seeds.len() > MAX_CHUNKS {
        return Err(MultipartyError::Mismatch("no seeds or too many".into()).into());
    }
    let ring = params.ring();
    let q_len = params.q().len();
    let mut key = SecretPoly::new(RnsPoly::zero(ring, q_len, 0, true));
    let mut ids = Vec::with_capacity(keys.len());
    for sk in keys {
        sk.check(params)?;
        let id = sk
            .party_id()
            .ok_or_else(|| MultipartyError::Mismatch("a key without a party id".into()))?;
        ids.push(id);
        let s = sk.restricted(q_len)?;
        key.add_assign(ring, &s)?;
    }
    let contributors = sorted_unique(&ids, "the key list")?;
    validate_ids(params, &contributors)?;
    let polys = share_polys(params, &key, seeds, smudging, rng)?;
    Ok(AggregateShare {
        party: 0,
        threshold: 0,
        active: Vec::new(),
        contributors,
        seeds: seeds.to_vec(),
        smudging_log2: smudging.bound_log2(),
        polys,
        params: params.clone(),
    })
}

/// Combines the decryption shares of the sums `sums` (one per chunk, in the
/// shares' seed order) into the exact integer sums, one vector of `N`
/// values per chunk. Threshold shares: exactly one from every party of
/// their common active set; or a single key holder's share. `noise_log2`
/// bounds the sum's encryption noise ([`share_sum_noise_log2`]); the shift
/// must leave room for it and the smudging (else
/// [`MultipartyError::ModulusTooSmall`]-style refusal).
///
/// Shares of `t + 1` holders are **checked** (the `check` module): a share
/// steered by a lying holder either leaves the sums exact or is refused
/// with [`MultipartyError::CheckFailed`].
pub fn combine_aggregate(
    params: &CkksParams,
    sums: &[SharedCiphertext],
    shares: &[AggregateShare],
    noise_log2: f64,
) -> Result<Vec<Vec<i64>>, CkksError> {
    let first = shares.first().ok_or(MultipartyError::NoShares)?;
    if sums.len() != first.seeds.len() {
        return Err(MultipartyError::Mismatch(format!(
            "{} sums but the shares cover {} chunks",
            sums.len(),
            first.seeds.len()
        ))
        .into());
    }
    let mut seen = BTreeSet::new();
    let mut smudging_total = 0f64;
    for s in shares {
        if &s.params != params {
            return Err(CkksError::ParamsMismatch);
        }
        if s.active != first.active
            || s.contributors != first.contributors
            || s.threshold != first.threshold
        {
            return Err(MultipartyError::Mismatch(
                "shares made for different active or contributor sets or thresholds".into(),
            )
            .into());
        }
        if s.seeds != first.seeds || s.polys.len() != s.seeds.len() {
            return Err(MultipartyError::Mismatch("shares for different seeds".into()).into());
        }
        if !seen.insert(s.party) {
            return Err(MultipartyError::DuplicateParty(s.party).into());
        }
        smudging_total += 2f64.powi(s.smudging_log2 as i32);
    }
    if first.active.is_empty() {
        if shares.len() != 1 {
            return Err(
                MultipartyError::Mismatch("a key holder's share is combined alone".into()).into(),
            );
        }
    } else {
        if let Some(&p) = seen.iter().find(|p| !first.active.contains(p)) {
            return Err(MultipartyError::UnexpectedParty(p).into());
        }
        if let Some(&p) = first.active.iter().find(|p| !seen.contains(p)) {
            return Err(MultipartyError::MissingParty(p).into());
        }
    }
    let shift = sums.first().map(|s| s.shift).unwrap_or(0);
    for (sum, seed) in sums.iter().zip(&first.seeds) {
        if &sum.params != params {
            return Err(CkksError::ParamsMismatch);
        }
        if &sum.seed != seed || sum.shift != shift {
            return Err(
                MultipartyError::Mismatch("a sum made for another seed or shift".into()).into(),
            );
        }
    }
    let crt = Crt::new(params)?;
    // Checked: the bounds of the check, in the shares' party order.
    let check = if first.is_checked() {
        let ks: Vec<u32> = shares.iter().map(|s| s.smudging_log2).collect();
        let ids: Vec<u64> = shares.iter().map(|s| s.party).collect();
        Some(CheckBounds::new(&ids, &ks, crt.big_q)?)
    } else {
        None
    };
    // An undetected steering moves the sum by at most 2T.
    let steer = check.as_ref().map_or(0.0, |c| 2.0 * c.t as f64);
    let noise = 2f64.powf(noise_log2) + smudging_total + steer;
    let have_bits = log_q_all(params);
    if noise.is_nan() || 2.0 * noise >= 2f64.powi(shift as i32) {
        return Err(MultipartyError::ModulusTooSmall {
            level: 0,
            have_bits,
            need_bits: (2.0 * noise).log2() + 1.0,
            parties: shares.len(),
        }
        .into());
    }
    let ring = params.ring();
    sums.iter()
        .enumerate()
        .map(|(c, sum)| {
            let mut acc = sum.c0.clone();
            for s in shares {
                let p = s.polys.get(c).ok_or(MultipartyError::NoShares)?;
                acc.add_assign(ring, p)?;
            }
            if let Some(check) = &check {
                check_chunk(params, &crt, check, shares, c)?;
            }
            (0..params.n())
                .map(|k| {
                    let x = crt.centred(&acc, k)?;
                    // Checked: no honest sum leaves the room (see `check`).
                    if check.as_ref().is_some_and(|b| x.abs() > b.room) {
                        return Err(MultipartyError::CheckFailed(format!(
                            "chunk {c}, coefficient {k} decrypts outside the room of a checked \
                             sum: a key holder's share was altered"
                        ))
                        .into());
                    }
                    round_shifted(x, shift)
                })
                .collect::<Result<Vec<i64>, CkksError>>()
        })
        .collect()
}

/// The sum check of chunk `c` (the `check` module): `|Σ x_j·d_j| ≤ T`.
/// (The room check runs where each coefficient is rounded.)
fn check_chunk(
    params: &CkksParams,
    crt: &Crt,
    check: &CheckBounds,
    shares: &[AggregateShare],
    c: usize,
) -> Result<(), CkksError> {
    let ring = params.ring();
    let moduli = ring.q_moduli();
    let mut sum = RnsPoly::zero(ring, params.q().len(), 0, false);
    for (s, &x) in shares.iter().zip(&check.weights) {
        let mut p = s.polys.get(c).ok_or(MultipartyError::NoShares)?.clone();
        let xs: Vec<u64> = moduli.iter().map(|m| m.reduce(x)).collect();
        p.mul_rns_scalar(ring, &xs)?;
        sum.add_assign(ring, &p)?;
    }
    for k in 0..params.n() {
        if crt.centred(&sum, k)?.abs() > check.t {
            return Err(MultipartyError::CheckFailed(format!(
                "the shares of active set {:?} are inconsistent (chunk {c}, coefficient {k}): \
                 a key holder's share was altered",
                check.weights
            ))
            .into());
        }
    }
    Ok(())
}

/// `round(x / 2^shift)` of a centred coefficient.
fn round_shifted(x: i128, shift: u32) -> Result<i64, CkksError> {
    let half = 1i128 << shift.saturating_sub(1);
    let rounded = (x + half).div_euclid(1i128 << shift);
    i64::try_from(rounded).map_err(|_| bad("decrypted value out of range"))
}

/// CRT over one or two primes into a centred `i128`.
struct Crt {
    q0: u64,
    q1: Option<(u64, u64)>,
    big_q: i128,
}

impl Crt {
    fn new(params: &CkksParams) -> Result<Self, CkksError> {
        let q = params.q();
        match q {
            [q0] => Ok(Self {
                q0: *q0,
                q1: None,
                big_q: i128::from(*q0),
            }),
            [q0, q1] => {
                let m1 = cipherflow_ring::Modulus::new(*q1)?;
                let inv = m1.inv(m1.reduce(*q0))?;
                Ok(Self {
                    q0: *q0,
                    q1: Some((*q1, inv)),
                    big_q: i128::from(*q0) * i128::from(*q1),
                })
            }
            _ => Err(CkksError::InvalidParameters(
                "aggregation needs one or two ciphertext primes".into(),
            )),
        }
    }

    /// Coefficient `k` of `p` lifted to `(−Q/2, Q/2]`.
    fn centred(&self, p: &RnsPoly, k: usize) -> Result<i128, CkksError> {
        let r0 = p
            .limb(0)
            .get(k)
            .copied()
            .ok_or_else(|| bad("coefficient"))?;
        let x: i128 = match self.q1 {
            None => i128::from(r0),
            Some((q1, inv)) => {
                let r1 = p
                    .limb(1)
                    .get(k)
                    .copied()
                    .ok_or_else(|| bad("coefficient"))?;
                // x = r0 + q0·((r1 − r0)·q0⁻¹ mod q1)
                let d = (u128::from(r1) + u128::from(q1) - u128::from(r0 % q1)) % u128::from(q1);
                let t = (d * u128::from(inv)) % u128::from(q1);
                i128::from(r0) + i128::from(self.q0) * t as i128
            }
        };
        Ok(if x > self.big_q / 2 {
            x - self.big_q
        } else {
            x
        })
    }
}
