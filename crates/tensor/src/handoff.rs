//! The encrypted head's output handed off as additive shares
//! (`cipherflow_ckks::handoff`), tensor by tensor: the platform masks
//! every output ciphertext and keeps `−mask`; the user decrypts to its
//! share; both decode their shares, knowing only public figures
//! ([`HandoffParams`], the tensor's layout and scale), into `Z_2^128`
//! shares of the activations in fixed point, example by example — the
//! inputs of `cipherflow_mpc::programs::handoff`.

use crate::layout::{EncTensor, Layout};
use crate::{EncryptedModel, TensorError};
use cipherflow_ckks::handoff::handoff_coeff_bound;
use cipherflow_ckks::{
    CkksParams, Decryptor, GaloisKeys, HandoffShare, PublicKey, RelinKey, SlotDecoding,
};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// The public figures both sides decode with. The platform states them
/// (they follow from the model's proven output bound); a wrong statement
/// costs correctness, never the user's privacy: the mask's width is the
/// platform's own choice either way.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffParams {
    /// Bound on every coefficient of the decrypted polynomials.
    pub coeff_bound: f64,
    /// Bound on the activations' absolute values (noise included).
    pub value_bound: f64,
    /// Fractional bits of the secret-shared computation.
    pub frac: u32,
    /// Statistical security of the mask (bits).
    pub stat_bits: u32,
}

/// One side's shares of a handed-off tensor, decoded: `rows` examples of
/// `cols` activations, row-major, each `value·2^(frac + guard)` in
/// `Z_2^128` before the computation truncates by `guard` bits.
#[derive(Clone)]
pub struct ActivationShares {
    /// Examples.
    pub rows: usize,
    /// Activations per example.
    pub cols: usize,
    /// The shares (zeroized on drop).
    pub values: zeroize::Zeroizing<Vec<u128>>,
    /// Bits to truncate.
    pub guard: u32,
}

impl std::fmt::Debug for ActivationShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ActivationShares({}×{}, guard {}, <redacted>)",
            self.rows, self.cols, self.guard
        )
    }
}

impl EncryptedModel {
    /// The figures of a hand-off of this model's output: needs a declared
    /// input bound (the proven output bound sizes the mask).
    pub fn handoff_params(&self, frac: u32, stat_bits: u32) -> Result<HandoffParams, TensorError> {
        let bound = self.declared_bound()?;
        let params = self.plan().params();
        Ok(HandoffParams {
            coeff_bound: handoff_coeff_bound(params, &bound)?,
            value_bound: bound.values() + bound.error() / bound.scale(),
            frac,
            stat_bits,
        })
    }

    /// The platform's way to hand off: `run`, then every output
    /// ciphertext masked for the user (dropped to the mask's level,
    /// re-randomized under `pk`, plus a uniform mask). Returns the tensor
    /// for the user and the platform's shares, one per ciphertext.
    pub fn respond_handoff<R: RngCore + CryptoRng>(
        &self,
        rlk: &RelinKey,
        gk: &GaloisKeys,
        pk: &PublicKey,
        x: &EncTensor,
        hp: &HandoffParams,
        rng: &mut R,
    ) -> Result<(EncTensor, Vec<HandoffShare>), TensorError> {
        let bound = self.declared_bound()?;
        let out = self.run(rlk, gk, x)?;
        let mut cts = Vec::with_capacity(out.cts.len());
        let mut shares = Vec::with_capacity(out.cts.len());
        for c in &out.cts {
            let (ct, share) = self
                .eval
                .mask_for_handoff(c, pk, &bound, hp.stat_bits, rng)?;
            cts.push(ct);
            shares.push(share);
        }
        Ok((EncTensor { cts, ..out }, shares))
    }
}

/// The user's shares: each masked ciphertext decrypted to its integers.
pub fn decrypt_handoff(
    dec: &Decryptor,
    masked: &EncTensor,
) -> Result<Vec<HandoffShare>, TensorError> {
    Ok(masked
        .ciphertexts()
        .iter()
        .map(|c| dec.decrypt_handoff(c))
        .collect::<Result<_, _>>()?)
}

/// How either side decodes its shares of a handed-off tensor: built once
/// from public figures (the parameters, the tensor's layout, shape and
/// scale, [`HandoffParams`]) and applied to every query's shares.
#[derive(Clone, Debug)]
pub struct ActivationDecoding {
    decoding: SlotDecoding,
    layout: Layout,
    len: usize,
    scale: f64,
    ciphertexts: usize,
}

impl ActivationDecoding {
    /// The decoding of tensors shaped like `masked` (only its public
    /// metadata is read).
    pub fn new(
        params: &CkksParams,
        masked: &EncTensor,
        hp: &HandoffParams,
    ) -> Result<Self, TensorError> {
        let len = masked.len();
        let (slots, chunk) = match masked.layout() {
            Layout::Replicated { chunk } => (chunk.min(len), chunk),
            Layout::Batched { batch } => (batch, params.slots()),
        };
        let decoding = SlotDecoding::new(
            params,
            &(0..slots).collect::<Vec<_>>(),
            chunk,
            masked.scale(),
            hp.frac,
            hp.coeff_bound,
            hp.value_bound,
        )?;
        Ok(Self {
            decoding,
            layout: masked.layout(),
            len,
            scale: masked.scale(),
            ciphertexts: masked.ciphertexts().len(),
        })
    }

    /// The guard bits of the decoded shares (what the computation
    /// truncates by): the same on both sides, from public figures.
    pub fn guard_bits(&self) -> u32 {
        self.decoding.guard_bits()
    }

    /// Whether `masked` has the layout, shape and scale this decoding was
    /// built for.
    pub fn fits(&self, masked: &EncTensor) -> bool {
        masked.layout() == self.layout
            && masked.len() == self.len
            && masked.scale() == self.scale
            && masked.ciphertexts().len() == self.ciphertexts
    }

    /// One side's shares (one per ciphertext) decoded into activation
    /// shares, example by example.
    pub fn apply(&self, shares: &[HandoffShare]) -> Result<ActivationShares, TensorError> {
        if shares.len() != self.ciphertexts {
            return Err(TensorError::Shape(format!(
                "{} shares for {} ciphertexts",
                shares.len(),
                self.ciphertexts
            )));
        }
        let len = self.len;
        let guard = self.decoding.guard_bits();
        match self.layout {
            Layout::Replicated { .. } => {
                let mut values = zeroize::Zeroizing::new(Vec::with_capacity(len));
                for s in shares {
                    let mut v = self.decoding.apply(s)?;
                    let take = (len - values.len()).min(v.len());
                    values.extend(v.iter().take(take));
                    zeroize::Zeroize::zeroize(&mut v);
                }
                Ok(ActivationShares {
                    rows: 1,
                    cols: len,
                    values,
                    guard,
                })
            }
            Layout::Batched { batch } => {
                let mut values = zeroize::Zeroizing::new(vec![0u128; batch * len]);
                for (e, s) in shares.iter().enumerate() {
                    let mut col = self.decoding.apply(s)?;
                    for (k, &v) in col.iter().enumerate() {
                        if let Some(x) = values.get_mut(k * len + e) {
                            *x = v;
                        }
                    }
                    zeroize::Zeroize::zeroize(&mut col);
                }
                Ok(ActivationShares {
                    rows: batch,
                    cols: len,
                    values,
                    guard,
                })
            }
        }
    }
}
