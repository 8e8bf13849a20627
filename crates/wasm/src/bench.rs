//! The operations the browser benchmark (`bench/web.sh`) times against
//! node-seal (Microsoft SEAL in WebAssembly) in the same page: key
//! generation (secret, public and relinearization keys), public-key
//! encryption of a vector and its decryption, at SEAL's and TenSEAL's
//! usual CKKS parameters for N = 8192 (moduli of 60, 40, 40 | 60 bits,
//! scale 2^40: 200 bits, within the HE standard's 218 for 128-bit
//! security).

use crate::error::WebError;
use cipherflow_ckks::{CkksParams, ParamsBuilder};
use cipherflow_tensor::{CkksVector, VectorContext};

/// The parameters both libraries run at.
pub fn bench_params() -> Result<CkksParams, WebError> {
    Ok(ParamsBuilder::new(13)
        .q_bits(&[60, 40, 40])
        .p_bits(&[60])
        .log_scale(40)
        .build()?)
}

/// One benchmark's state: the context of the last key generation and the
/// last ciphertext.
pub struct CkksBench {
    params: CkksParams,
    context: Option<VectorContext>,
    last: Option<CkksVector>,
}

impl std::fmt::Debug for CkksBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CkksBench")
            .field("log_n", &self.params.log_n())
            .finish_non_exhaustive()
    }
}

impl CkksBench {
    /// The benchmark at [`bench_params`], no keys yet.
    pub fn new() -> Result<Self, WebError> {
        Ok(Self {
            params: bench_params()?,
            context: None,
            last: None,
        })
    }

    /// The slots (N/2).
    pub fn slots(&self) -> usize {
        self.params.slots()
    }

    /// Makes a secret key, a public key and a relinearization key.
    pub fn keygen(&mut self) -> Result<(), WebError> {
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        self.context = Some(VectorContext::generate(&self.params, 1, &mut rng)?);
        self.last = None;
        Ok(())
    }

    fn context(&self) -> Result<&VectorContext, WebError> {
        self.context
            .as_ref()
            .ok_or_else(|| WebError::Invalid("no keys yet: call keygen first".into()))
    }

    /// Encodes and encrypts `values` under the public key (kept for
    /// [`CkksBench::decrypt`]), as SEAL's `encode` and `encrypt` do: no
    /// serialization.
    pub fn encrypt(&mut self, values: &[f64]) -> Result<(), WebError> {
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        let v = self.context()?.encrypt(values, &mut rng)?;
        self.last = Some(v);
        Ok(())
    }

    /// The last ciphertext's serialized size in bytes.
    pub fn ciphertext_bytes(&self) -> Result<usize, WebError> {
        let v = self
            .last
            .as_ref()
            .ok_or_else(|| WebError::Invalid("nothing encrypted yet".into()))?;
        Ok(self.context()?.vector_to_bytes(v)?.len())
    }

    /// Decrypts and decodes the last ciphertext.
    pub fn decrypt(&self) -> Result<Vec<f64>, WebError> {
        let v = self
            .last
            .as_ref()
            .ok_or_else(|| WebError::Invalid("nothing encrypted yet".into()))?;
        Ok(self.context()?.decrypt(v)?)
    }
}
