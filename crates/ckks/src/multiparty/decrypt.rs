//! Threshold and additive (n-of-n) decryption with smudged shares.
//!
//! For a ciphertext `(c0, c1)` at level `l`, party `i` publishes
//! `d_i = λ_i·F(i)·c1 + e_i` (threshold: `λ_i` its Lagrange coefficient over
//! the active set, `F(i)` its threshold secret) or `d_i = s_i·c1 + e_i`
//! (additive), `e_i` the smudging noise of [`super::Smudging`]. Then
//! `c0 + Σ d_i = c0 + s·c1 + Σ e_i = m + e_ct + Σ e_i`, decoded as usual.
//! Each share is bound to the ciphertext by a SHA-256 hash, to the level,
//! and (threshold) to the active set, so a share for another ciphertext or
//! another set is refused at combination.

use super::error::MultipartyError;
use super::shamir::{lagrange, validate_ids, ThresholdSecret};
use super::smudging::{check_modulus, needed_bits, smudging_poly, Smudging};
use super::SecretShare;
use crate::encoder::Plaintext;
use crate::encrypt::Ciphertext;
use crate::error::CkksError;
use crate::params::CkksParams;
use cipherflow_ring::RnsPoly;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// How a decryption share was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareMode {
    /// t-of-n: Lagrange-weighted threshold secret over the (sorted) active set.
    Threshold {
        /// The threshold `t`.
        threshold: usize,
        /// The active parties (sorted), all of whose shares are needed.
        active: Vec<u64>,
    },
    /// n-of-n: the raw additive secret share; every party of the
    /// collective key must contribute (not checkable at combination).
    Additive,
}

/// A party's decryption share of one ciphertext (public; send to the
/// combiner).
#[derive(Clone, PartialEq)]
pub struct DecryptionShare {
    pub(crate) party: u64,
    pub(crate) mode: ShareMode,
    pub(crate) ct_hash: [u8; 32],
    pub(crate) smudging_log2: u32,
    pub(crate) poly: RnsPoly,
    pub(crate) params: CkksParams,
}

impl std::fmt::Debug for DecryptionShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptionShare")
            .field("party", &self.party)
            .field("mode", &self.mode)
            .field("level", &self.level())
            .field("ct_hash", &hex_prefix(&self.ct_hash))
            .field("smudging_log2", &self.smudging_log2)
            .finish_non_exhaustive()
    }
}

fn hex_prefix(h: &[u8; 32]) -> String {
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl DecryptionShare {
    /// The sender's party id (0 for an additive share of a secret share
    /// without id).
    pub fn party(&self) -> u64 {
        self.party
    }

    /// Threshold or additive, with the active set.
    pub fn mode(&self) -> &ShareMode {
        &self.mode
    }

    /// The level of the ciphertext it decrypts.
    pub fn level(&self) -> usize {
        self.poly.q_len().saturating_sub(1)
    }

    /// The hash of the ciphertext it decrypts ([`ciphertext_hash`]).
    pub fn ciphertext_hash(&self) -> &[u8; 32] {
        &self.ct_hash
    }

    /// `k`: the smudging noise is uniform on `[−2^k, 2^k)`.
    pub fn smudging_log2(&self) -> u32 {
        self.smudging_log2
    }

    /// The share polynomial `d_i` (NTT form over `Q_l`).
    pub fn poly(&self) -> &RnsPoly {
        &self.poly
    }
}

/// SHA-256 of a ciphertext (parameters, size, level, scale, every residue):
/// the identity that decryption shares are bound to, also suitable for a
/// ledger entry.
pub fn ciphertext_hash(params: &CkksParams, ct: &Ciphertext) -> Result<[u8; 32], CkksError> {
    ct.check(params)?;
    let mut h = Sha256::new();
    h.update(b"cipherflow-ckks-mp-ct-v1");
    h.update(params.fingerprint());
    h.update((ct.size() as u64).to_le_bytes());
    h.update((ct.level() as u64).to_le_bytes());
    h.update(ct.scale().to_bits().to_le_bytes());
    let mut buf = Vec::with_capacity(params.n() * 8);
    for c in &ct.c {
        buf.clear();
        for x in c.data() {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        h.update(&buf);
    }
    Ok(h.finalize().into())
}

fn check_ciphertext(params: &CkksParams, ct: &Ciphertext) -> Result<(), CkksError> {
    ct.check(params)?;
    if ct.size() != 2 {
        return Err(MultipartyError::NotRelinearized(ct.size()).into());
    }
    Ok(())
}

/// `s·c1 + e` with `s` over at least the ciphertext's primes, `e` the
/// smudging noise.
fn share_poly<R: RngCore + CryptoRng>(
    params: &CkksParams,
    s: &RnsPoly,
    ct: &Ciphertext,
    k: u32,
    rng: &mut R,
) -> Result<RnsPoly, CkksError> {
    let ring = params.ring();
    let c1 =
        ct.c.get(1)
            .ok_or(MultipartyError::NotRelinearized(ct.size()))?;
    let mut d = smudging_poly(params, k, c1.q_len(), rng)?;
    d.mul_accumulate(ring, c1, s)?;
    Ok(d)
}

/// Party `thr.id()`'s decryption share of `ct` for the active set `active`
/// (at least `t` parties of the federation, `thr.id()` among them; the same
/// set must be given to every active party and all of them must answer).
pub fn decryption_share<R: RngCore + CryptoRng>(
    params: &CkksParams,
    thr: &ThresholdSecret,
    active: &[u64],
    ct: &Ciphertext,
    smudging: &Smudging,
    rng: &mut R,
) -> Result<DecryptionShare, CkksError> {
    if &thr.params != params {
        return Err(CkksError::ParamsMismatch);
    }
    check_ciphertext(params, ct)?;
    validate_ids(params, active)?;
    if let Some(&p) = active.iter().find(|p| !thr.parties.contains(p)) {
        return Err(MultipartyError::UnexpectedParty(p).into());
    }
    if !active.contains(&thr.id) {
        return Err(MultipartyError::Mismatch(format!(
            "party {} is not in the active set",
            thr.id
        ))
        .into());
    }
    if active.len() < thr.threshold {
        return Err(MultipartyError::NotEnoughShares {
            have: active.len(),
            need: thr.threshold,
        }
        .into());
    }
    let level = ct.level();
    check_modulus(
        params,
        level,
        smudging.needed_modulus_bits(ct.scale(), active.len()),
        active.len(),
    )?;
    let ring = params.ring();
    let q_len = level + 1;
    let lambdas = ring
        .q_moduli()
        .iter()
        .take(q_len)
        .map(|m| lagrange(m, thr.id, active))
        .collect::<Result<Vec<u64>, _>>()?;
    let mut s = thr.poly.clone();
    s.truncate(q_len, false)?;
    s.mul_rns_scalar(ring, &lambdas)?;
    let poly = share_poly(params, &s, ct, smudging.bound_log2(), rng)?;
    let mut sorted = active.to_vec();
    sorted.sort_unstable();
    Ok(DecryptionShare {
        party: thr.id,
        mode: ShareMode::Threshold {
            threshold: thr.threshold,
            active: sorted,
        },
        ct_hash: ciphertext_hash(params, ct)?,
        smudging_log2: smudging.bound_log2(),
        poly,
        params: params.clone(),
    })
}

/// n-of-n decryption share `s_i·c1 + e_i` of `ct` from the additive secret
/// share itself (no Shamir step). Every party of the collective key must
/// contribute, or the combination is garbage.
pub fn decryption_share_additive<R: RngCore + CryptoRng>(
    params: &CkksParams,
    sk: &SecretShare,
    ct: &Ciphertext,
    smudging: &Smudging,
    rng: &mut R,
) -> Result<DecryptionShare, CkksError> {
    sk.check(params)?;
    check_ciphertext(params, ct)?;
    let level = ct.level();
    check_modulus(
        params,
        level,
        smudging.needed_modulus_bits(ct.scale(), 1),
        1,
    )?;
    let s = sk.restricted(level + 1)?;
    let poly = share_poly(params, &s, ct, smudging.bound_log2(), rng)?;
    Ok(DecryptionShare {
        party: sk.party_id.unwrap_or(0),
        mode: ShareMode::Additive,
        ct_hash: ciphertext_hash(params, ct)?,
        smudging_log2: smudging.bound_log2(),
        poly,
        params: params.clone(),
    })
}

/// Combines decryption shares of `ct` into its plaintext `c0 + Σ d_i`
/// (decode it with [`crate::Encoder::decode`]). Threshold shares: exactly
/// one share from every party of their common active set (≥ t parties).
/// Additive shares: one per party of the collective key (duplicated party
/// ids or identical shares are refused; a missing party cannot be detected
/// and yields garbage). Shares for another ciphertext or level are refused.
pub fn combine_decryption(
    params: &CkksParams,
    ct: &Ciphertext,
    shares: &[DecryptionShare],
) -> Result<Plaintext, CkksError> {
    check_ciphertext(params, ct)?;
    let first = shares.first().ok_or(MultipartyError::NoShares)?;
    let hash = ciphertext_hash(params, ct)?;
    let level = ct.level();
    let mut seen = BTreeSet::new();
    let mut seen_polys = BTreeSet::new();
    let mut smudging_total = 0f64;
    for s in shares {
        if &s.params != params {
            return Err(CkksError::ParamsMismatch);
        }
        if s.ct_hash != hash {
            return Err(
                MultipartyError::Mismatch("share made for another ciphertext".into()).into(),
            );
        }
        if s.level() != level || s.poly.q_len() != level + 1 {
            return Err(MultipartyError::Mismatch(format!(
                "share at level {}, ciphertext at level {level}",
                s.level()
            ))
            .into());
        }
        match (&first.mode, &s.mode) {
            (ShareMode::Additive, ShareMode::Additive) => {}
            (ShareMode::Threshold { .. }, ShareMode::Threshold { .. }) => {
                if s.mode != first.mode {
                    return Err(MultipartyError::Mismatch(
                        "shares made for different active sets or thresholds".into(),
                    )
                    .into());
                }
            }
            _ => return Err(MultipartyError::MixedModes.into()),
        }
        if (s.party != 0 || matches!(s.mode, ShareMode::Threshold { .. })) && !seen.insert(s.party)
        {
            return Err(MultipartyError::DuplicateParty(s.party).into());
        }
        let mut h = Sha256::new();
        for x in s.poly.data() {
            h.update(x.to_le_bytes());
        }
        let digest: [u8; 32] = h.finalize().into();
        if !seen_polys.insert(digest) {
            return Err(MultipartyError::Mismatch("the same share was given twice".into()).into());
        }
        smudging_total += 2f64.powi(s.smudging_log2 as i32);
    }
    if let ShareMode::Threshold { threshold, active } = &first.mode {
        if let Some(&p) = seen.iter().find(|p| !active.contains(p)) {
            return Err(MultipartyError::UnexpectedParty(p).into());
        }
        if let Some(&p) = active.iter().find(|p| !seen.contains(p)) {
            return Err(MultipartyError::MissingParty(p).into());
        }
        if active.len() < *threshold {
            return Err(MultipartyError::NotEnoughShares {
                have: active.len(),
                need: *threshold,
            }
            .into());
        }
    }
    check_modulus(
        params,
        level,
        needed_bits(ct.scale(), smudging_total),
        shares.len(),
    )?;
    let ring = params.ring();
    let mut acc =
        ct.c.first()
            .cloned()
            .ok_or(MultipartyError::NotRelinearized(0))?;
    for s in shares {
        acc.add_assign(ring, &s.poly)?;
    }
    Ok(Plaintext {
        poly: acc,
        scale: ct.scale(),
    })
}
