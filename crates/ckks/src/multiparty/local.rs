//! Every party's side of a key setup, run in one process.
//!
//! A deployment runs each party in its own process and moves the Shamir
//! shares between them sealed (cipherflow-fed does). Tests, benchmarks,
//! examples and simulations need all parties at once: [`LocalParties`] is
//! that setup, written once — each party draws its key share, deals it to
//! everyone, and collects what was dealt to it — with the collective public
//! key and the threshold secrets derived on request.

use super::collective_keygen::{combine_public_key, public_key_share, Crs, SecretShare};
use super::shamir::{shamir_combine, shamir_deal, ShamirShare, ThresholdSecret};
use crate::{CkksError, CkksParams, PublicKey};
use rand_core::{CryptoRng, RngCore};

/// All parties of a `t`-of-`n` key setup, in one process.
#[derive(Clone, Debug)]
pub struct LocalParties {
    /// Party ids `1..=n`.
    pub ids: Vec<u64>,
    /// The threshold `t`.
    pub threshold: usize,
    /// `keys[j]`: the key share of party `ids[j]`.
    pub keys: Vec<SecretShare>,
    /// `received[j]`: the Shamir shares dealt to party `ids[j]`, one from
    /// every party (its own included).
    pub received: Vec<Vec<ShamirShare>>,
}

impl LocalParties {
    /// Parties `1..=n` draw key shares and deal them `t`-of-`n`.
    pub fn setup<R: RngCore + CryptoRng>(
        params: &CkksParams,
        n: u64,
        t: usize,
        rng: &mut R,
    ) -> Result<Self, CkksError> {
        let ids: Vec<u64> = (1..=n).collect();
        let keys: Vec<SecretShare> = ids
            .iter()
            .map(|&id| SecretShare::generate_for(params, id, rng))
            .collect();
        let mut dealt = Vec::new();
        for k in &keys {
            dealt.extend(shamir_deal(params, k, t, &ids, rng)?);
        }
        let received = ids
            .iter()
            .map(|&id| dealt.iter().filter(|s| s.to() == id).cloned().collect())
            .collect();
        Ok(Self {
            ids,
            threshold: t,
            keys,
            received,
        })
    }

    /// The collective public key under `crs` (every party's share, combined).
    pub fn public_key<R: RngCore + CryptoRng>(
        &self,
        params: &CkksParams,
        crs: &Crs,
        rng: &mut R,
    ) -> Result<PublicKey, CkksError> {
        let shares = self
            .keys
            .iter()
            .map(|k| public_key_share(params, k, crs, rng))
            .collect::<Result<Vec<_>, _>>()?;
        combine_public_key(params, crs, &shares)
    }

    /// Every party's threshold secret (its received shares, combined).
    pub fn threshold_secrets(
        &self,
        params: &CkksParams,
    ) -> Result<Vec<ThresholdSecret>, CkksError> {
        self.ids
            .iter()
            .zip(&self.received)
            .map(|(&id, mine)| shamir_combine(params, id, mine))
            .collect()
    }

    /// The Shamir shares dealt to party `id` (empty for an unknown id).
    pub fn received_by(&self, id: u64) -> &[ShamirShare] {
        self.ids
            .iter()
            .position(|&i| i == id)
            .and_then(|j| self.received.get(j))
            .map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn every_party_receives_one_share_from_every_dealer() {
        let params = crate::ParamsBuilder::new(12)
            .q_bits(&[39, 39])
            .build()
            .unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let p = LocalParties::setup(&params, 4, 2, &mut rng).unwrap();
        assert_eq!(p.ids, [1, 2, 3, 4]);
        for (&id, mine) in p.ids.iter().zip(&p.received) {
            let mut from: Vec<u64> = mine.iter().map(|s| s.from()).collect();
            from.sort_unstable();
            assert_eq!(from, p.ids, "party {id}");
            assert!(mine.iter().all(|s| s.to() == id));
            assert!(std::ptr::eq(p.received_by(id), mine.as_slice()));
        }
        assert!(p.received_by(9).is_empty());
        assert_eq!(p.threshold_secrets(&params).unwrap().len(), 4);
    }
}
