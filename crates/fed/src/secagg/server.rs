//! The aggregating server of a secure-aggregation session: relays keys
//! and sealed shares, sums uploads, combines decryption shares.

use super::{label, SecAggSpec};
use crate::error::{FedError, Result};
use crate::messages::SealedShare;
use crate::packing::{round_seeds, PackingPlan};
use crate::quant::Quantizer;
use cipherflow_ckks::multiparty::{
    combine_aggregate, is_checkable, AggregateShare, Crs, MultipartyError, SharedCiphertext,
};
use cipherflow_ckks::{CkksError, CkksParams};
use rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet};

/// The sum of one round's uploads.
struct RoundSum {
    round: u64,
    sum: Vec<SharedCiphertext>,
    /// Contributor → FedAvg weight.
    weights: BTreeMap<u64, f64>,
}

/// The server side of a session. It holds no secret: everything it sees
/// is public or sealed to a party.
pub struct SecAggServer {
    spec: SecAggSpec,
    crs: Crs,
    params: CkksParams,
    packing: PackingPlan,
    quantizer: Quantizer,
    keys: Vec<Option<[u8; 32]>>,
    dealt: BTreeSet<u64>,
    inbox: BTreeMap<u64, Vec<SealedShare>>,
    last_round: Option<u64>,
    current: Option<RoundSum>,
}

impl std::fmt::Debug for SecAggServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecAggServer")
            .field("session", &self.spec.session)
            .field("dealt", &self.dealt.len())
            .finish_non_exhaustive()
    }
}

impl SecAggServer {
    /// A session for `spec` with a fresh CRS from the OS-seeded CSPRNG.
    pub fn new(spec: SecAggSpec) -> Result<Self> {
        spec.validate()?;
        let packing = spec.packing()?;
        let params = packing.params()?;
        let quantizer = spec.quantizer(packing.shift)?;
        let mut crs = [0u8; 32];
        cipherflow_ring::sampler::secure_rng()?.fill_bytes(&mut crs);
        Ok(Self {
            keys: vec![None; spec.parties],
            spec,
            crs: Crs(crs),
            params,
            packing,
            quantizer,
            dealt: BTreeSet::new(),
            inbox: BTreeMap::new(),
            last_round: None,
            current: None,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &SecAggSpec {
        &self.spec
    }

    /// The packing plan (ring, modulus, shift, chunks).
    pub fn packing(&self) -> &PackingPlan {
        &self.packing
    }

    /// The CRS every party gets.
    pub fn crs(&self) -> [u8; 32] {
        self.crs.0
    }

    fn check_party(&self, p: u64) -> Result<()> {
        if p == 0 || p > self.spec.parties as u64 {
            return Err(FedError::Protocol(format!(
                "party {p} outside 1..={}",
                self.spec.parties
            )));
        }
        Ok(())
    }

    /// Records party `p`'s public key (once).
    pub fn add_key(&mut self, p: u64, key: [u8; 32]) -> Result<()> {
        self.check_party(p)?;
        let slot = self
            .keys
            .get_mut((p - 1) as usize)
            .ok_or_else(|| FedError::Protocol("party".into()))?;
        match slot {
            Some(k) if *k != key => Err(FedError::Refused(format!(
                "party {p} sent a second, different key"
            ))),
            _ => {
                *slot = Some(key);
                Ok(())
            }
        }
    }

    /// Every party's key, once all have arrived.
    pub fn keys(&self) -> Result<Vec<[u8; 32]>> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                k.ok_or_else(|| FedError::NotReady(format!("no key from party {}", i + 1)))
            })
            .collect()
    }

    /// Accepts party `from`'s dealing: one sealed share for every other
    /// party, once.
    pub fn add_dealing(&mut self, from: u64, sealed: Vec<SealedShare>) -> Result<()> {
        self.check_party(from)?;
        if self.dealt.contains(&from) {
            return Err(FedError::Refused(format!("party {from} dealt twice")));
        }
        let mut to: BTreeSet<u64> = BTreeSet::new();
        for s in &sealed {
            self.check_party(s.to_party)?;
            if s.from_party != from || s.to_party == from || !to.insert(s.to_party) {
                return Err(FedError::Protocol(format!(
                    "party {from}'s dealing is not one share for every other party"
                )));
            }
        }
        if to.len() != self.spec.parties - 1 {
            return Err(FedError::Protocol(format!(
                "party {from} dealt {} shares, expected {}",
                to.len(),
                self.spec.parties - 1
            )));
        }
        for s in sealed {
            self.inbox.entry(s.to_party).or_default().push(s);
        }
        self.dealt.insert(from);
        Ok(())
    }

    /// The shares sealed to party `to`, once every party has dealt.
    pub fn sealed_for(&self, to: u64) -> Result<Vec<SealedShare>> {
        self.check_party(to)?;
        if self.dealt.len() != self.spec.parties {
            return Err(FedError::NotReady(format!(
                "{} of {} parties dealt",
                self.dealt.len(),
                self.spec.parties
            )));
        }
        Ok(self.inbox.get(&to).cloned().unwrap_or_default())
    }

    /// Opens `round` (later than every round before).
    pub fn begin_round(&mut self, round: u64) -> Result<()> {
        if self.last_round.is_some_and(|r| round <= r) {
            return Err(FedError::Protocol(format!(
                "round {round} is not after round {}",
                self.last_round.unwrap_or(0)
            )));
        }
        self.last_round = Some(round);
        self.current = Some(RoundSum {
            round,
            sum: Vec::new(),
            weights: BTreeMap::new(),
        });
        Ok(())
    }

    /// Adds party `p`'s upload (its chunks, concatenated) for the open
    /// round, validated: size, seeds, shift, residues.
    pub fn add_upload(&mut self, p: u64, bytes: &[u8], num_examples: u64) -> Result<()> {
        self.check_party(p)?;
        let cur = self
            .current
            .as_mut()
            .ok_or_else(|| FedError::NotReady("no open round".into()))?;
        if cur.weights.contains_key(&p) {
            return Err(FedError::Refused(format!("party {p} uploaded twice")));
        }
        let len = SharedCiphertext::encoded_len(&self.params);
        if bytes.len() != len * self.packing.chunks {
            return Err(FedError::Protocol(format!(
                "an upload of {} bytes, expected {}",
                bytes.len(),
                len * self.packing.chunks
            )));
        }
        let seeds = round_seeds(
            &self.crs,
            &label(&self.spec),
            self.spec.epoch,
            cur.round,
            self.packing.chunks,
        );
        let cts = bytes
            .chunks(len)
            .zip(&seeds)
            .map(|(b, seed)| {
                let ct = SharedCiphertext::from_bytes(&self.params, b)?;
                if ct.seed() != seed || ct.shift() != self.packing.shift {
                    return Err(FedError::Refused(
                        "an upload for another round, session or shift".into(),
                    ));
                }
                Ok(ct)
            })
            .collect::<Result<Vec<_>>>()?;
        if cur.sum.is_empty() {
            cur.sum = cts;
        } else {
            for (s, c) in cur.sum.iter_mut().zip(&cts) {
                s.add_assign(c)?;
            }
        }
        cur.weights.insert(p, self.quantizer.weight(num_examples));
        Ok(())
    }

    /// The open round's contributors (sorted).
    pub fn contributors(&self) -> Vec<u64> {
        self.current
            .as_ref()
            .map(|c| c.weights.keys().copied().collect())
            .unwrap_or_default()
    }

    /// An active set from the `available` parties: `t + 1` whose ids let
    /// the check hide the noise when checked, else `t`; `None` if too few.
    pub fn choose_active(&self, available: &[u64]) -> Option<Vec<u64>> {
        let n = self.spec.parties as u64;
        let mut av: Vec<u64> = available
            .iter()
            .copied()
            .filter(|&p| p >= 1 && p <= n)
            .collect();
        av.sort_unstable();
        av.dedup();
        let size = self.spec.decryptors();
        if av.len() < size {
            return None;
        }
        if !self.spec.checked {
            return av.get(..size).map(<[u64]>::to_vec);
        }
        let mut set: Vec<u64> = av.get(..size)?.to_vec();
        if is_checkable(&set, n) {
            return Some(set);
        }
        for slot in (0..size).rev() {
            for &cand in av.get(size..).unwrap_or(&[]) {
                let keep = set.clone();
                *set.get_mut(slot)? = cand;
                if is_checkable(&set, n) {
                    return Some(set);
                }
                set = keep;
            }
        }
        None
    }

    /// Combines the decryption shares of `active` (any order) into the
    /// weighted mean update of the open round, and closes it. A share that
    /// fails the check is [`FedError::Verification`].
    pub fn finish(&mut self, active: &[u64], shares: &[Vec<u8>]) -> Result<Vec<f32>> {
        let cur = self
            .current
            .take()
            .ok_or_else(|| FedError::NotReady("no open round".into()))?;
        let contributors: Vec<u64> = cur.weights.keys().copied().collect();
        if contributors.len() < self.spec.quorum {
            return Err(FedError::NotReady(format!(
                "{} uploads, below the quorum {}",
                contributors.len(),
                self.spec.quorum
            )));
        }
        let mut want = active.to_vec();
        want.sort_unstable();
        let decoded = shares
            .iter()
            .map(|b| Ok(AggregateShare::from_bytes(&self.params, b)?))
            .collect::<Result<Vec<_>>>()?;
        let mut got: Vec<u64> = decoded.iter().map(AggregateShare::party).collect();
        got.sort_unstable();
        if got != want || decoded.iter().any(|s| s.active() != want.as_slice()) {
            return Err(FedError::Protocol(
                "shares from other parties than the active set".into(),
            ));
        }
        if decoded
            .iter()
            .any(|s| s.contributors() != contributors.as_slice())
        {
            return Err(FedError::Protocol(
                "shares for another contributor set".into(),
            ));
        }
        let totals: Vec<i64> =
            combine_aggregate(&self.params, &cur.sum, &decoded, self.packing.noise_log2())
                .map_err(|e| match e {
                    CkksError::Multiparty(MultipartyError::CheckFailed(why)) => {
                        FedError::Verification(why)
                    }
                    e => e.into(),
                })?
                .concat();
        let totals = self
            .packing
            .unpack_checked(&totals, self.spec.sum_bound(contributors.len()))?;
        let weight_sum: f64 = cur.weights.values().sum();
        let mut mean = self.quantizer.decode_mean(&totals, weight_sum)?;
        mean.truncate(self.spec.dim);
        if mean.len() != self.spec.dim {
            return Err(FedError::Verification(
                "the decrypted sum is too short".into(),
            ));
        }
        Ok(mean)
    }
}
