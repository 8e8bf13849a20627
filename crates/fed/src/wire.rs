//! The wire plan: the smallest ring and modulus that hold the sum of a
//! round's updates exactly, and the shift that puts it above the
//! encryption and smudging noise.
//!
//! One ciphertext packs `N` integers (coefficient packing, see
//! `cipherflow_ckks::multiparty::share_encrypt`) and travels as one
//! polynomial of `N·log2 Q` bits, so an upload costs `log2 Q / 8` bytes per
//! parameter. `Q` needs
//! `1 (sign) + shift + log2(bound on |Σ v|) + 1 (margin)` bits, where the
//! shift is the smallest with `2^shift > 2·(B + t·2^k)`: `B` bounds the sum
//! of `m` encryption noises and `2^k = 2^λ·B` is each of the `t`
//! decryptors' smudging (λ the statistical security parameter). `Q` is one
//! NTT prime up to 60 bits, else two of equal size; `N = 2^12` while that
//! is 128-bit secure (`log2 Q ≤ 109`), else `2^13`.

use crate::config::{FederationConfig, KeysMode, Sizes};
use crate::dp_plan::DpPlan;
use crate::error::{FedError, Result};
use cipherflow_ckks::multiparty::{share_sum_noise_log2, Smudging};
use cipherflow_ckks::{CkksParams, ParamsBuilder};
use serde::{Deserialize, Serialize};

/// The wire plan of a federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WirePlan {
    /// `log2 N`.
    pub log_n: u32,
    /// Bit sizes of the primes of `Q`.
    pub q_bits: Vec<u32>,
    /// Shift of the integers inside the plaintext.
    pub shift: u32,
    /// Statistical security λ of the smudging.
    pub stat_sec_bits: u32,
    /// Model parameters.
    pub dim: usize,
    /// Ciphertexts per update.
    pub chunks: usize,
    /// Largest contributor set.
    pub max_contributors: usize,
    /// Decryptors per attempt.
    pub decryptors: usize,
    /// `log2` of the bound on `|Σ v|` per coordinate.
    pub sum_bound_log2: f64,
    /// Coefficient count the noise bounds are taken over (an upper bound
    /// on `chunks·N` for either ring size).
    pub noise_coefficients: usize,
}

impl WirePlan {
    /// Plans for `dim` parameters, at most `contributors` updates per sum
    /// whose coordinates each stay below `2^sum_bound_log2` in absolute
    /// value, decrypted by `decryptors` shares.
    pub fn new(
        dim: usize,
        contributors: usize,
        decryptors: usize,
        sum_bound_log2: f64,
        stat_sec_bits: u32,
    ) -> Result<Self> {
        if dim == 0 || contributors == 0 || decryptors == 0 || !sum_bound_log2.is_finite() {
            return Err(FedError::Config("empty model or federation".into()));
        }
        // The noise bound depends on the coefficient count, which depends on
        // N; plan for N = 2^13 first (the larger count, a safe bound).
        let coeffs = dim.div_ceil(1 << 12) * (1 << 13);
        let smudging = Smudging::for_share_sum(contributors, coeffs, stat_sec_bits)?;
        let shift = smudging.min_shift_bits(decryptors);
        let need = 1.0 + f64::from(shift) + sum_bound_log2.max(0.0) + 1.0;
        let total = need.ceil() as u32;
        let q_bits = if total <= 60 {
            vec![total.max(30)]
        } else if total <= 120 {
            let half = total.div_ceil(2);
            vec![half, half]
        } else {
            return Err(FedError::Config(format!(
                "the sum needs a {total}-bit modulus (more than 120): lower the quantization \
                 bits, the statistical security or the clients per round"
            )));
        };
        let bits: u32 = q_bits.iter().sum();
        let log_n = if bits <= 109 { 12 } else { 13 };
        let n = 1usize << log_n;
        Ok(Self {
            log_n,
            q_bits,
            shift,
            stat_sec_bits,
            dim,
            chunks: dim.div_ceil(n),
            max_contributors: contributors,
            decryptors,
            sum_bound_log2,
            noise_coefficients: coeffs,
        })
    }

    /// The plan of a federation: every client's coordinates bounded by the
    /// quantization (`2^quant_bits`, or DP's `Δ₂` plus the noise share's
    /// tail at `2^−λ`), any number of the federation's clients summed
    /// (Poisson client sampling can exceed the expected count), `t`
    /// decryptors (1 with a key service). Coordinator and clients compute
    /// it alike from the configuration.
    pub fn for_federation(
        cfg: &FederationConfig,
        sizes: &Sizes,
        dp: Option<&DpPlan>,
        dim: usize,
    ) -> Result<WirePlan> {
        // Poisson client sampling can exceed the expected count: size for all.
        let m = sizes.clients as f64;
        let lambda = cfg.aggregation.stat_sec_bits;
        let coeffs = (dim.div_ceil(1 << 12) * (1 << 13)) as f64;
        let z = (2.0 * ((f64::from(lambda) + 1.0) * std::f64::consts::LN_2 + coeffs.ln())).sqrt();
        let bound = match dp {
            None => m * (2f64.powi(cfg.aggregation.quant_bits as i32) + 1.0),
            Some(p) => m * p.l2_bound + m.sqrt() * p.share_sigma * z * 1.25,
        };
        let decryptors = match cfg.keys {
            KeysMode::Threshold => sizes.threshold,
            KeysMode::KeyService => 1,
        };
        Self::new(dim, sizes.clients, decryptors, bound.log2(), lambda)
    }

    /// The ring dimension `N`.
    pub fn n(&self) -> usize {
        1 << self.log_n
    }

    /// Builds (and security-checks) the parameter set.
    pub fn params(&self) -> Result<CkksParams> {
        if !(12..=13).contains(&self.log_n) || self.q_bits.is_empty() || self.q_bits.len() > 2 {
            return Err(FedError::Config("wire plan out of range".into()));
        }
        Ok(ParamsBuilder::new(self.log_n)
            .q_bits(&self.q_bits)
            .build()?)
    }

    /// `log2` of the bound on the encryption noise of a sum.
    pub fn noise_log2(&self) -> f64 {
        share_sum_noise_log2(
            self.max_contributors,
            self.noise_coefficients,
            self.stat_sec_bits,
        )
    }

    /// The smudging each decryptor adds.
    pub fn smudging(&self) -> Result<Smudging> {
        Ok(Smudging::for_share_sum(
            self.max_contributors,
            self.noise_coefficients,
            self.stat_sec_bits,
        )?)
    }

    /// Bytes of one serialized update (all chunks).
    pub fn upload_bytes(&self, params: &CkksParams) -> usize {
        self.chunks * cipherflow_ckks::multiparty::SharedCiphertext::encoded_len(params)
    }

    /// `log2 Q`.
    pub fn log_q(&self) -> u32 {
        self.q_bits.iter().sum()
    }

    /// Upload bytes per parameter over float32's 4 bytes.
    pub fn ratio_to_float32(&self, params: &CkksParams) -> f64 {
        self.upload_bytes(params) as f64 / (4.0 * self.dim as f64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plans_fit_and_are_secure() {
        let p = WirePlan::new(100_000, 10, 6, 16.0 + 10f64.log2(), 40).unwrap();
        let params = p.params().unwrap();
        assert_eq!(params.n(), 4096);
        assert!(p.log_q() as f64 >= 1.0 + f64::from(p.shift) + 16.0 + 10f64.log2());
        assert_eq!(p.chunks, 25);
        // Smaller λ, smaller modulus.
        let q = WirePlan::new(100_000, 10, 6, 16.0 + 10f64.log2(), 30).unwrap();
        assert!(q.log_q() < p.log_q());
        assert!(WirePlan::new(10, 10, 6, 90.0, 40).is_err());
    }
}
