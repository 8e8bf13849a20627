//! A key holder and contributor of a secure-aggregation session.

use super::{label, SecAggSpec};
use crate::envelope;
use crate::error::{FedError, Result};
use crate::messages::SealedShare;
use crate::packing::{round_seeds, PackingPlan};
use crate::roster::KxSecret;
use cipherflow_ckks::multiparty::{
    aggregate_decryption_share, shamir_deal, share_encrypt, Crs, SecretShare, ShamirShare,
};
use cipherflow_ckks::CkksParams;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use x25519_dalek::PublicKey;
use zeroize::Zeroizing;

/// What a party requires of any spec a server proposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartyPolicy {
    /// Fewest updates in a sum this party helps decrypt (≥ 2).
    pub min_quorum: usize,
    /// Require `t > n/2`, so that two disjoint groups cannot each decrypt.
    pub honest_majority: bool,
    /// Lowest statistical security λ accepted.
    pub min_stat_sec_bits: u32,
}

impl Default for PartyPolicy {
    fn default() -> Self {
        Self {
            min_quorum: 2,
            honest_majority: true,
            min_stat_sec_bits: 40,
        }
    }
}

impl PartyPolicy {
    pub(super) fn check(&self, spec: &SecAggSpec) -> Result<()> {
        spec.validate()?;
        let refuse = |m: String| Err(FedError::Refused(format!("secure aggregation: {m}")));
        if spec.quorum < self.min_quorum.max(2) {
            return refuse(format!(
                "quorum {} is below this party's minimum {}",
                spec.quorum, self.min_quorum
            ));
        }
        if self.honest_majority && 2 * spec.threshold <= spec.parties {
            return refuse(format!(
                "threshold {} of {} parties: two disjoint groups could each decrypt",
                spec.threshold, spec.parties
            ));
        }
        if spec.stat_sec_bits < self.min_stat_sec_bits {
            return refuse(format!(
                "statistical security {} below this party's minimum {}",
                spec.stat_sec_bits, self.min_stat_sec_bits
            ));
        }
        Ok(())
    }
}

/// One party: its CKKS key share, its X25519 key, the Shamir shares it
/// received, and what it released (one update and one decryption share
/// per round). Secret: keep [`SecAggParty::to_bytes`] where only this
/// party reads it.
pub struct SecAggParty {
    pub(super) spec: SecAggSpec,
    pub(super) policy: PartyPolicy,
    pub(super) id: u64,
    pub(super) crs: Crs,
    pub(super) kx: KxSecret,
    pub(super) key: SecretShare,
    pub(super) params: CkksParams,
    pub(super) packing: PackingPlan,
    /// Every party's X25519 key (index `id − 1`), pinned at dealing.
    pub(super) peers: Vec<[u8; 32]>,
    /// One Shamir share from every party (this party's own included).
    pub(super) received: Vec<ShamirShare>,
    /// (round, update hash, encryption seed) of the last upload.
    pub(super) last_upload: Option<(u64, [u8; 32], Zeroizing<[u8; 32]>)>,
    /// (round, commitment to the contributor and active sets, smudging
    /// seed): a repeated request gets the same share, so repeats add no
    /// fresh noise samples to average.
    pub(super) last_decrypt: Option<(u64, [u8; 32], Zeroizing<[u8; 32]>)>,
}

impl std::fmt::Debug for SecAggParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecAggParty")
            .field("session", &self.spec.session)
            .field("id", &self.id)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl SecAggParty {
    /// Joins the session `spec` (checked against `policy`) as party `id`
    /// with the server's `crs`: draws the key share and the X25519 key
    /// from the OS-seeded CSPRNG.
    pub fn new(spec: SecAggSpec, policy: PartyPolicy, id: u64, crs: [u8; 32]) -> Result<Self> {
        policy.check(&spec)?;
        if id == 0 || id > spec.parties as u64 {
            return Err(FedError::Protocol(format!(
                "party id {id} outside 1..={}",
                spec.parties
            )));
        }
        let packing = spec.packing()?;
        let params = packing.params()?;
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        let key = SecretShare::generate_for(&params, id, &mut rng);
        Ok(Self {
            spec,
            policy,
            id,
            crs: Crs(crs),
            kx: KxSecret::generate()?,
            key,
            params,
            packing,
            peers: Vec::new(),
            received: Vec::new(),
            last_upload: None,
            last_decrypt: None,
        })
    }

    /// The pinned spec.
    pub fn spec(&self) -> &SecAggSpec {
        &self.spec
    }

    /// This party's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// This party's X25519 public key.
    pub fn kx_public(&self) -> [u8; 32] {
        PublicKey::from(self.kx.inner()).to_bytes()
    }

    /// Whether the keys are set up (shares received from every party).
    pub fn is_ready(&self) -> bool {
        self.received.len() == self.spec.parties
    }

    /// Pins every party's public key (`keys[i]` is party `i + 1`'s; this
    /// party's own must be among them unchanged), Shamir-deals the key
    /// share and seals one share to each other party.
    pub fn deal(&mut self, keys: &[[u8; 32]]) -> Result<Vec<SealedShare>> {
        if !self.peers.is_empty() {
            return Err(FedError::Refused("already dealt in this epoch".into()));
        }
        if keys.len() != self.spec.parties {
            return Err(FedError::Protocol(format!(
                "{} public keys for {} parties",
                keys.len(),
                self.spec.parties
            )));
        }
        let mine = keys
            .get((self.id - 1) as usize)
            .ok_or_else(|| FedError::Protocol("own key missing".into()))?;
        if *mine != self.kx_public() {
            return Err(FedError::Refused(
                "the key list does not hold this party's own key".into(),
            ));
        }
        let ids: Vec<u64> = (1..=self.spec.parties as u64).collect();
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        let shares = shamir_deal(&self.params, &self.key, self.spec.threshold, &ids, &mut rng)?;
        let label = label(&self.spec);
        let mut out = Vec::with_capacity(shares.len());
        for s in shares {
            if s.to() == self.id {
                self.received.push(s);
                continue;
            }
            let peer = keys
                .get((s.to() - 1) as usize)
                .ok_or_else(|| FedError::Protocol("peer key missing".into()))?;
            let bytes = s.to_bytes();
            out.push(envelope::seal(
                &self.kx,
                &PublicKey::from(*peer),
                &label,
                self.spec.epoch,
                self.id,
                s.to(),
                &bytes,
            )?);
        }
        self.peers = keys.to_vec();
        Ok(out)
    }

    /// Opens the shares sealed to this party: exactly one from every other
    /// party, each authenticated under the dealer's pinned key.
    pub fn receive(&mut self, sealed: &[SealedShare]) -> Result<()> {
        if self.peers.is_empty() {
            return Err(FedError::NotReady("deal first".into()));
        }
        if self.is_ready() {
            return Err(FedError::Refused("shares already received".into()));
        }
        if sealed.len() != self.spec.parties - 1 {
            return Err(FedError::Protocol(format!(
                "{} sealed shares, expected {}",
                sealed.len(),
                self.spec.parties - 1
            )));
        }
        let label = label(&self.spec);
        let mut got = Vec::with_capacity(sealed.len());
        for s in sealed {
            let from = s.from_party;
            if from == self.id || got.iter().any(|g: &ShamirShare| g.from() == from) {
                return Err(FedError::Protocol(format!(
                    "share from party {from} twice or from self"
                )));
            }
            let peer = self
                .peers
                .get((from.wrapping_sub(1)) as usize)
                .ok_or_else(|| FedError::Protocol(format!("share from unknown party {from}")))?;
            let plain = envelope::open(
                &self.kx,
                &PublicKey::from(*peer),
                &label,
                self.spec.epoch,
                self.id,
                s,
            )?;
            let share = ShamirShare::from_bytes(&self.params, &plain)?;
            if share.from() != from
                || share.to() != self.id
                || share.threshold() != self.spec.threshold
                || share.parties().len() != self.spec.parties
            {
                return Err(FedError::Refused(format!(
                    "the share from party {from} does not fit this session"
                )));
            }
            got.push(share);
        }
        self.received.extend(got);
        Ok(())
    }

    /// Encrypts `update` (`dim` values; clipped, weighted by
    /// `num_examples`, quantized) for `round`: the concatenated chunks. A
    /// repeated request for the last round with the same update gets the
    /// same bytes; another update for it, or an older round, is refused.
    pub fn encrypt(&mut self, round: u64, update: &[f32], num_examples: u64) -> Result<Vec<u8>> {
        if !self.is_ready() {
            return Err(FedError::NotReady("key setup incomplete".into()));
        }
        if update.len() != self.spec.dim {
            return Err(FedError::Refused(format!(
                "an update of {} values for a model of {}",
                update.len(),
                self.spec.dim
            )));
        }
        let mut h = Sha256::new();
        h.update(num_examples.to_le_bytes());
        for v in update {
            h.update(v.to_le_bytes());
        }
        let hash: [u8; 32] = h.finalize().into();
        let seed = match &self.last_upload {
            Some((r, _, _)) if round < *r => {
                return Err(FedError::Refused(format!(
                    "round {round} is before round {r}, which this party already uploaded"
                )))
            }
            Some((r, hh, s)) if round == *r => {
                if *hh != hash {
                    return Err(FedError::Refused(format!(
                        "a second, different update for round {round}"
                    )));
                }
                s.clone()
            }
            _ => {
                let mut s = Zeroizing::new([0u8; 32]);
                cipherflow_ring::sampler::secure_rng()?.fill_bytes(s.as_mut());
                s
            }
        };
        let q = self.spec.quantizer(self.packing.shift)?;
        let mut rng = ChaCha20Rng::from_seed(*seed);
        let ints = self
            .packing
            .pack_values(q.encode(update, num_examples, &mut rng)?)?;
        let n = self.packing.n();
        let seeds = round_seeds(
            &self.crs,
            &label(&self.spec),
            self.spec.epoch,
            round,
            self.packing.chunks,
        );
        let (params, key, shift) = (&self.params, &self.key, self.packing.shift);
        let chunks: Vec<Vec<u8>> = seeds
            .par_iter()
            .enumerate()
            .map(|(c, a)| {
                let lo = (c * n).min(ints.len());
                let hi = ((c + 1) * n).min(ints.len());
                let values = ints.get(lo..hi).unwrap_or(&[]);
                let chunk_seed: [u8; 32] = Sha256::new()
                    .chain_update(*seed)
                    .chain_update((c as u64).to_le_bytes())
                    .finalize()
                    .into();
                let mut rng = ChaCha20Rng::from_seed(chunk_seed);
                Ok(share_encrypt(params, key, a, values, shift, &mut rng)?.to_bytes())
            })
            .collect::<Result<_>>()?;
        self.last_upload = Some((round, hash, seed));
        Ok(chunks.concat())
    }

    /// This party's decryption share of `round`'s sum over `contributors`,
    /// for the active set `active` (`t` parties, or `t + 1` checked). One
    /// pair of sets per round; never for an older round; never for fewer
    /// contributors than the quorum.
    pub fn decryption_share(
        &mut self,
        round: u64,
        contributors: &[u64],
        active: &[u64],
    ) -> Result<Vec<u8>> {
        if !self.is_ready() {
            return Err(FedError::NotReady("key setup incomplete".into()));
        }
        let n = self.spec.parties as u64;
        let mut s = contributors.to_vec();
        s.sort_unstable();
        s.dedup();
        let mut a = active.to_vec();
        a.sort_unstable();
        a.dedup();
        if s.len() != contributors.len() || a.len() != active.len() {
            return Err(FedError::Protocol("a party listed twice".into()));
        }
        if s.iter().chain(&a).any(|&p| p == 0 || p > n) {
            return Err(FedError::Protocol("a party id outside the session".into()));
        }
        if s.len() < self.spec.quorum.max(self.policy.min_quorum) {
            return Err(FedError::Refused(format!(
                "a sum of {} updates is below the quorum {}",
                s.len(),
                self.spec.quorum
            )));
        }
        let mut h = Sha256::new();
        h.update(b"cipherflow-secagg-decrypt-v1");
        h.update(round.to_le_bytes());
        for list in [&s, &a] {
            h.update((list.len() as u64).to_le_bytes());
            for p in list.iter() {
                h.update(p.to_le_bytes());
            }
        }
        let commit: [u8; 32] = h.finalize().into();
        let seed = match &self.last_decrypt {
            Some((r, _, _)) if round < *r => {
                return Err(FedError::Refused(format!(
                    "round {round} is before round {r}, already decrypted"
                )))
            }
            Some((r, c, _)) if round == *r && *c != commit => {
                return Err(FedError::Refused(format!(
                    "already gave a share in round {round} for another contributor or active set"
                )))
            }
            Some((r, _, s)) if round == *r => s.clone(),
            _ => {
                let mut s = Zeroizing::new([0u8; 32]);
                cipherflow_ring::sampler::secure_rng()?.fill_bytes(s.as_mut());
                s
            }
        };
        let seeds = round_seeds(
            &self.crs,
            &label(&self.spec),
            self.spec.epoch,
            round,
            self.packing.chunks,
        );
        let smudging = self.packing.smudging()?;
        let mut rng = ChaCha20Rng::from_seed(*seed);
        let share = aggregate_decryption_share(
            &self.params,
            self.id,
            &self.received,
            &s,
            &a,
            &seeds,
            &smudging,
            &mut rng,
        )?;
        self.last_decrypt = Some((round, commit, seed));
        Ok(share.to_bytes())
    }
}
