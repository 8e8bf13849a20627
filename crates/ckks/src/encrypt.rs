//! Ciphertexts, encryption (public or secret key) and decryption, with
//! optional noise flooding of decrypted results.
//!
//! # When noise flooding must be on
//! CKKS decryption returns the message *plus the encryption noise*, and that
//! noise depends on the secret key. Li and Micciancio (Eurocrypt 2021) showed
//! that publishing decrypted results lets an observer recover the key
//! (IND-CPA^D attacks). Whenever a decrypted value leaves the key holder —
//! an aggregate published by threshold decryption, a prediction returned to
//! a client, a key service answering requests — decrypt with
//! [`Decryptor::decrypt_flooded`]. Its standard deviation is
//! `2^(λ/2) · B` for statistical security parameter `λ` and a bound `B` on
//! the ciphertext noise, which [`Decryptor::measure_noise_log2`] estimates
//! by running the computation once on known data (OpenFHE's approach).
//! Plain [`Decryptor::decrypt`] is for a key holder who keeps the result.

use crate::encoder::{Encoder, Plaintext};
use crate::error::CkksError;
use crate::keys::{rlwe_body, PublicKey, SecretKey};
use crate::params::CkksParams;
use cipherflow_ring::sampler::{fresh_seed, gaussian, ternary, uniform_from_seed, wide_gaussian};
use cipherflow_ring::RnsPoly;
use num_complex::Complex64;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

/// A CKKS ciphertext: 2 components (3 after a product before
/// relinearization), NTT form, at some level and scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Ciphertext {
    pub(crate) c: Vec<RnsPoly>,
    pub(crate) scale: f64,
    /// Set when `c[1]` is the expansion of this seed (fresh secret-key
    /// encryption): serialization then stores 32 bytes instead of `c[1]`.
    pub(crate) seed: Option<[u8; 32]>,
    pub(crate) fingerprint: [u8; 32],
}

impl Ciphertext {
    /// Level (number of primes − 1).
    pub fn level(&self) -> usize {
        self.c.first().map_or(0, |p| p.q_len().saturating_sub(1))
    }

    /// Current scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Number of components (2, or 3 before relinearization).
    pub fn size(&self) -> usize {
        self.c.len()
    }

    /// The component polynomials.
    pub fn components(&self) -> &[RnsPoly] {
        &self.c
    }

    pub(crate) fn check(&self, params: &CkksParams) -> Result<(), CkksError> {
        if &self.fingerprint != params.fingerprint() {
            return Err(CkksError::ParamsMismatch);
        }
        Ok(())
    }
}

/// Encrypts plaintexts under a public key or a secret key.
pub struct Encryptor<'k> {
    params: CkksParams,
    key: EncryptionKey<'k>,
}

enum EncryptionKey<'k> {
    Public(&'k PublicKey),
    Secret(&'k SecretKey),
}

impl<'k> Encryptor<'k> {
    /// Public-key encryptor.
    pub fn with_public_key(pk: &'k PublicKey) -> Self {
        Self {
            params: pk.params.clone(),
            key: EncryptionKey::Public(pk),
        }
    }

    /// Secret-key encryptor (smaller noise; ciphertexts serialize at half size).
    pub fn with_secret_key(sk: &'k SecretKey) -> Self {
        Self {
            params: sk.params.clone(),
            key: EncryptionKey::Secret(sk),
        }
    }

    /// Encrypts `pt` at its level and scale.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        let ring = self.params.ring();
        let q_len = pt.poly.q_len();
        if q_len == 0 || q_len > ring.q_len() || pt.poly.p_len() != 0 {
            return Err(CkksError::InvalidLevel(q_len));
        }
        let n = self.params.n();
        let small = |rng: &mut R, ternary_dist: bool| {
            let v = if ternary_dist {
                ternary(rng, n)
            } else {
                gaussian(rng, n)
            };
            let mut p = RnsPoly::from_signed(ring, &v, q_len, 0);
            p.ntt_forward(ring);
            p
        };
        let (c0, c1, seed) = match self.key {
            EncryptionKey::Public(pk) => {
                // (v·b + e0 + m, v·a + e1)
                let mut v = small(rng, true);
                let mut b = pk.b.clone();
                b.truncate(q_len, false)?;
                let mut a = pk.a.clone();
                a.truncate(q_len, false)?;
                let mut c0 = small(rng, false);
                b.mul_assign(ring, &v)?;
                c0.add_assign(ring, &b)?;
                c0.add_assign(ring, &pt.poly)?;
                let mut c1 = small(rng, false);
                a.mul_assign(ring, &v)?;
                c1.add_assign(ring, &a)?;
                v.zeroize();
                (c0, c1, None)
            }
            EncryptionKey::Secret(sk) => {
                // (−a·s + e + m, a), a from a fresh seed
                let seed = fresh_seed(rng);
                let a = uniform_from_seed(ring, &seed, q_len, 0);
                let mut c0 = rlwe_body(&self.params, &a, &sk.restricted(q_len, false), rng)?;
                c0.add_assign(ring, &pt.poly)?;
                (c0, a, Some(seed))
            }
        };
        Ok(Ciphertext {
            c: vec![c0, c1],
            scale: pt.scale,
            seed,
            fingerprint: *self.params.fingerprint(),
        })
    }

    /// Encodes and encrypts real values at the top level and default scale.
    pub fn encrypt_values<R: RngCore + CryptoRng>(
        &self,
        encoder: &Encoder,
        values: &[f64],
        rng: &mut R,
    ) -> Result<Ciphertext, CkksError> {
        self.encrypt(&encoder.encode_default(values)?, rng)
    }
}

/// Parameters of noise flooding at decryption.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flooding {
    /// Statistical security parameter λ (e.g. 30–40; see the module docs).
    pub stat_sec_bits: u32,
    /// `log2` of a bound on the ciphertext noise (from [`Decryptor::measure_noise_log2`]).
    pub noise_log2: f64,
}

impl Flooding {
    /// Standard deviation of the flooding noise: `2^(λ/2 + noise_log2)`.
    pub fn sigma(&self) -> f64 {
        2f64.powf(f64::from(self.stat_sec_bits) / 2.0 + self.noise_log2)
    }
}

/// Decrypts ciphertexts with the secret key.
pub struct Decryptor<'k> {
    sk: &'k SecretKey,
    encoder: Encoder,
}

impl<'k> Decryptor<'k> {
    /// A decryptor for `sk`.
    pub fn new(sk: &'k SecretKey) -> Self {
        Self {
            sk,
            encoder: Encoder::new(&sk.params),
        }
    }

    /// `c0 + c1·s (+ c2·s²)` in NTT form, as a plaintext.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext, CkksError> {
        let params = &self.sk.params;
        ct.check(params)?;
        let ring = params.ring();
        let q_len = ct.level() + 1;
        let s = self.sk.restricted(q_len, false);
        let mut comps = ct.c.iter().rev();
        let mut acc = comps.next().cloned().ok_or(CkksError::WrongSize(0, 2))?;
        // Horner: ((c_k s + c_{k-1}) s + …) + c0
        for c in comps {
            acc.mul_assign(ring, &s)?;
            acc.add_assign(ring, c)?;
        }
        Ok(Plaintext {
            poly: acc,
            scale: ct.scale,
        })
    }

    /// Decrypts and decodes to real values.
    pub fn decrypt_values(&self, ct: &Ciphertext) -> Result<Vec<f64>, CkksError> {
        self.encoder.decode(&self.decrypt(ct)?)
    }

    /// Decrypts and decodes to complex values.
    pub fn decrypt_complex(&self, ct: &Ciphertext) -> Result<Vec<Complex64>, CkksError> {
        self.encoder.decode_complex(&self.decrypt(ct)?)
    }

    /// Decrypts, adds flooding noise of standard deviation
    /// [`Flooding::sigma`] to every coefficient, and decodes (see the module
    /// documentation for when this is required).
    pub fn decrypt_flooded<R: RngCore + CryptoRng>(
        &self,
        ct: &Ciphertext,
        flooding: Flooding,
        rng: &mut R,
    ) -> Result<Vec<f64>, CkksError> {
        let params = &self.sk.params;
        let ring = params.ring();
        let mut pt = self.decrypt(ct)?;
        let noise = wide_gaussian(rng, flooding.sigma(), params.n()).ok_or_else(|| {
            CkksError::ValueOutOfRange(format!(
                "flooding standard deviation 2^{:.1} is not representable",
                flooding.sigma().log2()
            ))
        })?;
        let mut e = RnsPoly::from_signed(ring, &noise, pt.poly.q_len(), 0);
        e.ntt_forward(ring);
        pt.poly.add_assign(ring, &e)?;
        e.zeroize();
        self.encoder.decode(&pt)
    }

    /// `log2` of the largest coefficient of `decrypt(ct) − encode(expected)`:
    /// the ciphertext's actual noise, measured on known data, used to size
    /// flooding.
    pub fn measure_noise_log2(&self, ct: &Ciphertext, expected: &[f64]) -> Result<f64, CkksError> {
        let ring = self.sk.params.ring();
        let mut pt = self.decrypt(ct)?;
        let want = self.encoder.encode(expected, ct.level(), ct.scale)?;
        pt.poly.sub_assign(ring, &want.poly)?;
        pt.poly.ntt_inverse(ring);
        let coeffs = self.encoder.poly_to_coeffs(&pt.poly)?;
        let max = coeffs.iter().fold(1.0f64, |m, c| m.max(c.abs()));
        Ok(max.log2())
    }
}
