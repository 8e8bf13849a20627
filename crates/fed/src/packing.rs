//! The packing plan: the smallest ring and modulus that hold the sum of a
//! round's updates exactly, and the shift that puts it above the
//! encryption and smudging noise.
//!
//! One ciphertext holds `N` integers (coefficient packing, see
//! `cipherflow_ckks::multiparty::share_encrypt`) and travels as one
//! polynomial of `N·log2 Q` bits. `Q` needs
//! `1 (sign) + shift + log2(bound on |Σ x|) + 1 (margin)` bits for the
//! sums `Σ x` of those integers, where the shift is the smallest with
//! `2^shift > 2·(B + t·2^k)`: `B` bounds the sum of `m` encryption noises
//! and `2^k = 2^λ·B` is each of the `t` decryptors' smudging (λ the
//! statistical security parameter).
//!
//! The shift (about 50 bits at λ = 40) costs as much as the values
//! themselves (about 20 bits), so each integer carries `pack` model
//! coordinates in fields of `b` bits, `x = Σ_i v_i·2^(i·b)`, with `b` one
//! bit more than the bound on a coordinate's sum `|Σ v|` needs (its sign).
//! Sums add field by field with borrows that the balanced unpacking
//! ([`PackingPlan::unpack_sums`]) undoes exactly, since no field's sum leaves
//! `(−2^(b−1), 2^(b−1))`. An upload then costs `log2 Q / (8·pack)` bytes
//! per parameter. The plan takes the `pack` (up to [`MAX_PACK`], fields
//! within 62 bits, `Q` of at most two primes)
//! with the smallest upload, and the smallest on ties: a model that fits
//! one ciphertext anyway keeps `pack = 1` and the smaller modulus. `Q` is
//! one NTT prime up to 60 bits, else two of equal size (at most 120 bits),
//! and `N = 2^13` once `log2 Q > 109` (128-bit security).
//!
//! A checked decryption (`t + 1` key holders whose shares check each
//! other, [`PackingPlan::new_checked`]) costs more shift — each holder's
//! smudging widened by `⌈log2(2n + 1)⌉` bits and room for a steering the
//! check cannot see — and `⌈log2 n⌉ + 1` more modulus bits, `n` the
//! largest party id.

use crate::config::{FederationConfig, KeysMode, Sizes};
use crate::dp_plan::DpPlan;
use crate::error::{FedError, Result};
use cipherflow_ckks::multiparty::{aggregation_seed, share_sum_noise_log2, Crs, Smudging};
use cipherflow_ckks::{CkksParams, ParamsBuilder};
use serde::{Deserialize, Serialize};

/// The context of a round's public polynomials: the federation's name,
/// the key epoch and the round (each length-prefixed or fixed-width), so
/// that no two federations, epochs or rounds sharing a CRS ever use the
/// same `a` — a key share never encrypts two different updates under one
/// `a` unless the client itself repeats a byte-identical upload.
pub fn round_context(federation: &str, epoch: u64, round: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + federation.len());
    v.extend_from_slice(b"cipherflow-fed-round-v2");
    v.extend_from_slice(&(federation.len() as u64).to_le_bytes());
    v.extend_from_slice(federation.as_bytes());
    v.extend_from_slice(&epoch.to_le_bytes());
    v.extend_from_slice(&round.to_le_bytes());
    v
}

/// The CRS a message carries (exactly 32 bytes).
pub fn crs_from_bytes(bytes: &[u8]) -> Result<Crs> {
    let crs: [u8; 32] = bytes
        .try_into()
        .map_err(|_| FedError::Protocol("CRS must be 32 bytes".into()))?;
    Ok(Crs(crs))
}

/// The seeds of `a` for every chunk of a round ([`round_context`]).
pub fn round_seeds(
    crs: &Crs,
    federation: &str,
    epoch: u64,
    round: u64,
    chunks: usize,
) -> Vec<[u8; 32]> {
    let ctx = round_context(federation, epoch, round);
    (0..chunks as u64)
        .map(|c| aggregation_seed(crs, &ctx, c))
        .collect()
}

/// The bound on one coordinate's sum over `contributors` updates: the
/// quantization's `2^quant_bits + 1` each without DP; with client-level DP
/// the clipped norm `Δ₂` each plus the summed noise shares' tail at
/// `2^−λ`.
pub fn coordinate_sum_bound(
    cfg: &FederationConfig,
    dp: Option<&DpPlan>,
    dim: usize,
    contributors: usize,
) -> f64 {
    let m = contributors as f64;
    let lambda = cfg.aggregation.stat_sec_bits;
    let coeffs = (dim.div_ceil(1 << 12) * (1 << 13)) as f64;
    let z = (2.0 * ((f64::from(lambda) + 1.0) * std::f64::consts::LN_2 + coeffs.ln())).sqrt();
    match dp {
        None => m * (2f64.powi(cfg.aggregation.quant_bits as i32) + 1.0),
        Some(p) => m * p.l2_bound + m.sqrt() * p.max_share_sigma() * z * 1.25,
    }
}

/// The packing plan of a federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackingPlan {
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
    /// Model coordinates per plaintext integer.
    #[serde(default = "one")]
    pub pack: u32,
    /// Bits of each coordinate's field inside a packed integer (0 when
    /// `pack = 1`).
    #[serde(default)]
    pub field_bits: u32,
    /// Largest contributor set.
    pub max_contributors: usize,
    /// Decryptors per attempt.
    pub decryptors: usize,
    /// `log2` of the bound on `|Σ v|` per coordinate.
    pub sum_bound_log2: f64,
    /// Checked decryption: the largest key holder's party id (the shift
    /// and modulus leave room for the check); 0 when unchecked.
    #[serde(default)]
    pub checked_max_party: u64,
    /// Coefficient count the noise bounds are taken over (an upper bound
    /// on `chunks·N` for either ring size).
    pub noise_coefficients: usize,
}

/// Most coordinates in one plaintext integer.
pub const MAX_PACK: u32 = 4;

/// Largest modulus (bits) that is 128-bit secure at `N = 2^12`.
const LOG_Q_MAX_N12: u32 = 109;

/// Largest modulus (bits) of two 60-bit primes (the decoder's CRT), 128-bit
/// secure at `N = 2^13`.
const LOG_Q_MAX_TWO_PRIMES: u32 = 120;

fn one() -> u32 {
    1
}

impl PackingPlan {
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
        Self::plan(
            dim,
            contributors,
            decryptors,
            sum_bound_log2,
            stat_sec_bits,
            0,
        )
    }

    /// [`PackingPlan::new`] for a checked decryption by `decryptors`
    /// (`t + 1`) key holders with party ids up to `max_party`: the shift
    /// grows by the check's smudging widening and its steering allowance,
    /// the modulus by `⌈log2 X⌉ + 1` bits of room (see
    /// `cipherflow_ckks::multiparty::max_abs_value_checked`).
    pub fn new_checked(
        dim: usize,
        contributors: usize,
        decryptors: usize,
        sum_bound_log2: f64,
        stat_sec_bits: u32,
        max_party: u64,
    ) -> Result<Self> {
        if max_party == 0 {
            return Err(FedError::Config("a checked plan needs key holders".into()));
        }
        Self::plan(
            dim,
            contributors,
            decryptors,
            sum_bound_log2,
            stat_sec_bits,
            max_party,
        )
    }

    fn plan(
        dim: usize,
        contributors: usize,
        decryptors: usize,
        sum_bound_log2: f64,
        stat_sec_bits: u32,
        checked_max_party: u64,
    ) -> Result<Self> {
        if dim == 0 || contributors == 0 || decryptors == 0 || !sum_bound_log2.is_finite() {
            return Err(FedError::Config("empty model or federation".into()));
        }
        // The noise bound depends on the coefficient count, which depends on
        // N; plan for N = 2^13 first (the larger count, a safe bound).
        let coeffs = dim.div_ceil(1 << 12) * (1 << 13);
        let smudging = Smudging::for_share_sum(contributors, coeffs, stat_sec_bits)?;
        let (shift, room_bits) = if checked_max_party == 0 {
            (smudging.min_shift_bits(decryptors), 0.0)
        } else {
            (
                smudging.min_shift_bits_checked(decryptors, checked_max_party),
                (checked_max_party as f64).log2().ceil() + 1.0,
            )
        };
        let sum_bits = sum_bound_log2.max(0.0);
        // A field holds a coordinate's sum and its sign.
        let bits = sum_bits.floor() as u32 + 2;
        // Candidates (pack, field bits, log2 Q); keep the smallest upload.
        let mut best: Option<(usize, (u32, u32, u32))> = None;
        for pack in 1..=MAX_PACK {
            let (field_bits, total) = if pack == 1 {
                (
                    0,
                    (2.0 + f64::from(shift) + sum_bits + room_bits).ceil() as u32,
                )
            } else {
                if pack * bits > 62 {
                    break;
                }
                // |Σ x| ≤ bound·Σ_i 2^(i·b) = bound·(2^(pack·b) − 1)/(2^b − 1).
                let spread = ((2f64.powi((pack * bits) as i32) - 1.0)
                    / (2f64.powi(bits as i32) - 1.0))
                    .log2();
                // Checked: Q/(4X) rather than Q/4 must hold the sums.
                let total = (2.0 + f64::from(shift) + sum_bits + spread + room_bits).ceil() as u32;
                // Two primes at most (N = 2^13 above 109 bits).
                if total > LOG_Q_MAX_TWO_PRIMES {
                    break;
                }
                (bits, total)
            };
            let n = if total <= LOG_Q_MAX_N12 {
                1usize << 12
            } else {
                1 << 13
            };
            // The bits the primes will actually have (see below).
            let q = if total <= 60 {
                total.max(30)
            } else {
                2 * total.div_ceil(2)
            };
            let cost = dim.div_ceil(pack as usize).div_ceil(n) * n * q as usize;
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, (pack, field_bits, total)));
            }
        }
        let Some((_, (pack, field_bits, total))) = best else {
            return Err(FedError::Config("no packing plan".into()));
        };
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
            chunks: dim.div_ceil(pack as usize).div_ceil(n),
            pack,
            field_bits,
            max_contributors: contributors,
            decryptors,
            sum_bound_log2,
            checked_max_party,
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
    ) -> Result<PackingPlan> {
        // Poisson client sampling can exceed the expected count: size for all.
        let lambda = cfg.aggregation.stat_sec_bits;
        let bound = coordinate_sum_bound(cfg, dp, dim, sizes.clients);
        match cfg.keys {
            KeysMode::Threshold if sizes.checked => Self::new_checked(
                dim,
                sizes.clients,
                sizes.decryptors(),
                bound.log2(),
                lambda,
                sizes.holders as u64,
            ),
            KeysMode::Threshold => {
                Self::new(dim, sizes.clients, sizes.threshold, bound.log2(), lambda)
            }
            KeysMode::KeyService => Self::new(dim, sizes.clients, 1, bound.log2(), lambda),
        }
    }

    /// Packs a client's integers (one per coordinate, each within the
    /// plan's per-coordinate bound) into the plaintext integers it
    /// encrypts: `pack` consecutive coordinates per integer.
    pub fn pack_values(&self, values: Vec<i64>) -> Result<Vec<i64>> {
        if self.pack <= 1 {
            return Ok(values);
        }
        let b = self.field_bits;
        let limit = 1i64 << (b - 1);
        if values.iter().any(|v| v.unsigned_abs() >= limit as u64) {
            return Err(FedError::Refused(format!(
                "a coordinate exceeds the {b}-bit field of the packing plan"
            )));
        }
        Ok(values
            .chunks(self.pack as usize)
            .map(|group| {
                group
                    .iter()
                    .rev()
                    .fold(0i64, |acc, &v| acc.wrapping_shl(b).wrapping_add(v))
            })
            .collect())
    }

    /// Unpacks a decrypted sum and checks it: every coordinate's sum
    /// within `bound` ([`coordinate_sum_bound`] for the actual number of
    /// contributors), no carry left over a packed integer's top field, and
    /// every coefficient past the model exactly zero. A decryption share
    /// that is random, or steers a sum outside its bound, fails here; one
    /// that shifts a coordinate by less than its bound does not (see the
    /// threat model in this crate's README).
    pub fn unpack_checked(&self, sums: &[i64], bound: f64) -> Result<Vec<i64>> {
        let used = self.dim.div_ceil(self.pack.max(1) as usize);
        if sums.len() < used {
            return Err(FedError::Verification(
                "the decrypted sum is too short".into(),
            ));
        }
        if let Some(k) = sums.iter().skip(used).position(|&x| x != 0) {
            return Err(FedError::Verification(format!(
                "coefficient {} past the model decrypted to a non-zero value",
                used + k
            )));
        }
        let (mut out, carry) = self.unpack_fields(sums.get(..used).unwrap_or(sums));
        if carry {
            return Err(FedError::Verification(
                "a packed sum left a carry above its top field".into(),
            ));
        }
        // Fields past the model in the last integer must be zero too.
        if out.iter().skip(self.dim).any(|&x| x != 0) {
            return Err(FedError::Verification(
                "a field past the model decrypted to a non-zero value".into(),
            ));
        }
        out.truncate(self.dim);
        if let Some(i) = out.iter().position(|&x| x.unsigned_abs() as f64 > bound) {
            return Err(FedError::Verification(format!(
                "coordinate {i}'s decrypted sum is outside its bound ±{bound:.0}"
            )));
        }
        Ok(out)
    }

    /// Unpacks decrypted sums of packed integers into per-coordinate sums
    /// (the first `dim` of them). Exact while every coordinate's sum stays
    /// inside its field, which the plan's bound guarantees.
    pub fn unpack_sums(&self, sums: &[i64]) -> Vec<i64> {
        let (mut out, _) = self.unpack_fields(sums);
        out.truncate(self.dim);
        out
    }

    /// Every field of every integer (balanced residues modulo `2^b`, low
    /// field first), and whether any integer left a carry above its top
    /// field.
    fn unpack_fields(&self, sums: &[i64]) -> (Vec<i64>, bool) {
        if self.pack <= 1 {
            return (sums.to_vec(), false);
        }
        let b = self.field_bits;
        let half = 1i64 << (b - 1);
        let mask = (1i64 << b) - 1;
        let mut out = Vec::with_capacity(sums.len() * self.pack as usize);
        let mut carry = false;
        for &s in sums {
            let mut rest = s;
            for _ in 0..self.pack {
                // The balanced residue of `rest` modulo 2^b.
                let field = (rest.wrapping_add(half) & mask) - half;
                out.push(field);
                rest = rest.wrapping_sub(field) >> b;
            }
            carry |= rest != 0;
        }
        (out, carry)
    }

    /// The ring dimension `N`.
    pub fn n(&self) -> usize {
        1 << self.log_n
    }

    /// Builds (and security-checks) the parameter set.
    pub fn params(&self) -> Result<CkksParams> {
        if !(12..=13).contains(&self.log_n) || self.q_bits.is_empty() || self.q_bits.len() > 2 {
            return Err(FedError::Config("packing plan out of range".into()));
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

    fn cfg(extra: &str) -> FederationConfig {
        FederationConfig::parse(&format!(
            "name = \"b\"\nrounds = 5\nmodel = \"logreg\"\ninput = [4]\nclasses = 2\n\
             [training]\nepochs = 1\nbatch_size = 8\nlr = 0.1\n{extra}"
        ))
        .unwrap()
    }

    /// Without DP each coordinate of an update is at most `2^quant_bits + 1`.
    #[test]
    fn the_sum_bound_without_dp_is_the_quantization_range_per_contributor() {
        let c = cfg("[aggregation]\nquant_bits = 16\n");
        assert_eq!(coordinate_sum_bound(&c, None, 10, 3), 3.0 * 65537.0);
        assert_eq!(coordinate_sum_bound(&c, None, 10, 1), 65537.0);
    }

    /// With DP: `m·Δ₂` for the clipped updates plus the summed noise
    /// shares' tail, `1.25·√m·σ·z`, where `z` solves the union bound over
    /// every coefficient of every chunk: `coeffs · 2·e^{−z²/2} = 2^−λ`.
    #[test]
    fn the_dp_sum_bound_is_the_union_tail_at_two_to_minus_lambda() {
        let c = cfg("[dp]\nepsilon = 3.0\ndelta = 1e-5\nclip = 1.0\n");
        let sizes = c.sizes(10).unwrap();
        let lambda = f64::from(c.aggregation.stat_sec_bits);
        // Coefficients summed over: 2^13 per started block of 2^12 coordinates.
        for (dim, coeffs) in [
            (1, 8192.0),
            (4096, 8192.0),
            (4097, 16384.0),
            (100_000, 204_800.0),
        ] {
            let dp = DpPlan::new(c.dp.as_ref().unwrap(), &sizes, c.rounds, dim as u64).unwrap();
            for m in [1usize, 4, 9] {
                let mf = m as f64;
                let b = coordinate_sum_bound(&c, Some(&dp), dim, m);
                let z = (b - mf * dp.l2_bound) / (1.25 * mf.sqrt() * dp.share_sigma);
                assert!(z > 0.0, "the noise tail adds to m·Δ₂ (z = {z})");
                let tail = coeffs * 2.0 * (-z * z / 2.0).exp();
                let want = 2f64.powf(-lambda);
                assert!(
                    (tail / want - 1.0).abs() < 1e-9,
                    "dim {dim}, {m} contributors: tail {tail:e}, want {want:e}"
                );
            }
        }
    }

    fn verification(r: Result<Vec<i64>>, needle: &str) {
        match r {
            Err(FedError::Verification(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected a verification failure ({needle}), got {other:?}"),
        }
    }

    /// Each check of a decrypted sum on its own: length, coefficients and
    /// fields past the model, and the bound (inclusive).
    #[test]
    fn unpack_checked_refuses_each_malformed_sum() {
        let dim = 100_001;
        let p = PackingPlan::new(dim, 10, 6, 16.0 + 10f64.log2(), 40).unwrap();
        assert_eq!(p.pack, 2, "an odd model leaves one spare field");
        let values: Vec<i64> = (0..dim as i64).map(|i| (i % 2001) - 1000).collect();
        let packed = p.pack_values(values.clone()).unwrap();
        let used = dim.div_ceil(2);
        assert_eq!(packed.len(), used);
        let mut sums = packed.clone();
        sums.resize(p.n() * p.chunks, 0);
        assert_eq!(p.unpack_checked(&sums, 1000.0).unwrap(), values);
        // Exactly the used integers is enough; one fewer is not.
        assert_eq!(p.unpack_checked(&packed, 1000.0).unwrap(), values);
        verification(p.unpack_checked(&packed[..used - 1], 1000.0), "too short");
        // A coefficient past the model.
        let mut bad = sums.clone();
        bad[used + 3] = 1;
        verification(p.unpack_checked(&bad, 1000.0), "past the model decrypted");
        // The spare field of the last integer.
        let mut bad = sums.clone();
        bad[used - 1] += 1 << p.field_bits;
        verification(p.unpack_checked(&bad, 1000.0), "a field past the model");
        // A carry above the top field.
        let mut bad = sums.clone();
        bad[0] += 1 << (2 * p.field_bits);
        verification(p.unpack_checked(&bad, 1000.0), "carry");
        // The bound is inclusive: |1000| passes ±1000, not ±999.
        verification(
            p.unpack_checked(&sums, 999.0),
            "coordinate 0's decrypted sum",
        );
    }

    #[test]
    fn plans_fit_and_are_secure() {
        let p = PackingPlan::new(100_000, 10, 6, 16.0 + 10f64.log2(), 40).unwrap();
        let params = p.params().unwrap();
        assert_eq!(params.n(), 4096);
        assert_eq!(p.pack, 2);
        assert_eq!(p.field_bits, 21);
        assert!(p.log_q() as f64 >= 2.0 + f64::from(p.shift) + 16.0 + 10f64.log2() + 21.0);
        assert!(p.log_q() <= 109);
        assert_eq!(p.chunks, 13);
        // Two coordinates per coefficient: under 2× float32 at λ = 40.
        assert!(
            p.ratio_to_float32(&params) < 2.0,
            "{}",
            p.ratio_to_float32(&params)
        );
        // Smaller λ, smaller modulus.
        let q = PackingPlan::new(100_000, 10, 6, 16.0 + 10f64.log2(), 30).unwrap();
        assert!(q.log_q() < p.log_q());
        assert!(PackingPlan::new(10, 10, 6, 90.0, 40).is_err());
        // Too wide for two fields at N = 2^12: one coordinate per integer.
        let wide = PackingPlan::new(100_000, 10, 6, 40.0, 40).unwrap();
        assert_eq!((wide.pack, wide.field_bits), (1, 0));
        // A model that fits one ciphertext either way keeps the smaller modulus.
        let small = PackingPlan::new(31, 10, 6, 16.0 + 10f64.log2(), 40).unwrap();
        assert_eq!((small.pack, small.chunks), (1, 1));
        assert!(small.log_q() < p.log_q());
    }

    #[test]
    fn packed_sums_unpack_exactly() {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let span = 2 * (1u64 << 16) + 1;
        let m = 10usize;
        let per_client = 1i64 << 16;
        let p =
            PackingPlan::new(10_001, m, 3, ((m as i64 * per_client) as f64).log2(), 40).unwrap();
        assert!(p.pack >= 2);
        // Extremes and random values, summed over m clients.
        let mut clients: Vec<Vec<i64>> = (0..m)
            .map(|_| {
                (0..10_001)
                    .map(|_| (rng.next_u64() % span) as i64 - per_client)
                    .collect()
            })
            .collect();
        for c in clients.iter_mut() {
            c[0] = per_client;
            c[1] = -per_client;
            c[2] = -per_client;
            c[3] = per_client;
        }
        let mut packed_sum = vec![0i64; 10_001usize.div_ceil(p.pack as usize)];
        for c in &clients {
            for (s, x) in packed_sum.iter_mut().zip(p.pack_values(c.clone()).unwrap()) {
                *s += x;
            }
        }
        let want: Vec<i64> = (0..10_001)
            .map(|j| clients.iter().map(|c| c[j]).sum())
            .collect();
        assert_eq!(p.unpack_sums(&packed_sum), want);
        // A coordinate outside its field is refused.
        let mut bad = vec![0i64; 10_001];
        bad[5] = 1 << p.field_bits;
        assert!(p.pack_values(bad).is_err());
    }
}
