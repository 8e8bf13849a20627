//! The operations the browser benchmark (`bench/web.sh`) times against
//! node-seal (Microsoft SEAL in WebAssembly) in the same page: key
//! generation (secret, public and relinearization keys), public-key
//! encryption of a vector and its decryption, at SEAL's and TenSEAL's
//! usual CKKS parameters for N = 8192 (moduli of 60, 40, 40 | 60 bits,
//! scale 2^40: 200 bits, within the HE standard's 218 for 128-bit
//! security).

use crate::error::WebError;
use cipherflow_ckks::{
    Ciphertext, CkksParams, Decryptor, Encoder, Encryptor, ParamsBuilder, PublicKey, RelinKey,
    SecretKey,
};

/// The parameters both libraries run at.
pub fn bench_params() -> Result<CkksParams, WebError> {
    Ok(ParamsBuilder::new(13)
        .q_bits(&[60, 40, 40])
        .p_bits(&[60])
        .log_scale(40)
        .build()?)
}

/// The keys of one key generation and, once [`CkksBench::prepare`]d, the
/// encryptor and decryptor built from them (SEAL's `Encryptor` and
/// `Decryptor`, which the page also builds outside its timing).
struct Keys {
    sk: SecretKey,
    pk: PublicKey,
    /// Kept as SEAL keeps its relinearization keys: generated, not used.
    _rlk: RelinKey,
    tools: Option<(Encryptor, Decryptor)>,
}

/// One benchmark's state, on the scheme's own types as the page uses
/// SEAL's: the encoder (made once, as the page's `CKKSEncoder`), the last
/// key generation's keys and the last ciphertext.
pub struct CkksBench {
    params: CkksParams,
    encoder: Encoder,
    keys: Option<Keys>,
    last: Option<Ciphertext>,
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
        crate::error::self_test()?;
        let params = bench_params()?;
        Ok(Self {
            encoder: Encoder::new(&params),
            params,
            keys: None,
            last: None,
        })
    }

    /// The slots (N/2).
    pub fn slots(&self) -> usize {
        self.params.slots()
    }

    /// Makes a secret key, a public key and a relinearization key: what
    /// the page times against SEAL's `KeyGenerator`, `createPublicKey` and
    /// `createRelinKeys`.
    pub fn keygen(&mut self) -> Result<(), WebError> {
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        let sk = SecretKey::generate(&self.params, &mut rng);
        let pk = PublicKey::generate(&sk, &mut rng)?;
        let rlk = RelinKey::generate(&sk, &mut rng)?;
        self.keys = Some(Keys {
            sk,
            pk,
            _rlk: rlk,
            tools: None,
        });
        self.last = None;
        Ok(())
    }

    /// Drops the last keys and ciphertext, the secrets zeroized. The page
    /// calls it outside its timing, where it deletes SEAL's objects, so
    /// that neither library's key generation pays for freeing the last
    /// one's keys.
    pub fn clear(&mut self) {
        self.keys = None;
        self.last = None;
    }

    /// Builds the encryptor and decryptor of the last keys (untimed, as
    /// the page's `new seal.Encryptor(…)` and `new seal.Decryptor(…)`).
    pub fn prepare(&mut self) -> Result<(), WebError> {
        let keys = self
            .keys
            .as_mut()
            .ok_or_else(|| WebError::Invalid("no keys yet: call keygen first".into()))?;
        keys.tools = Some((
            Encryptor::with_public_key(&keys.pk),
            Decryptor::new(&keys.sk),
        ));
        Ok(())
    }

    fn tools(&self) -> Result<&(Encryptor, Decryptor), WebError> {
        self.keys
            .as_ref()
            .and_then(|k| k.tools.as_ref())
            .ok_or_else(|| WebError::Invalid("no keys prepared: call keygen, then prepare".into()))
    }

    /// Encodes `values` at the top level and scale 2^40 and encrypts them
    /// under the public key (kept for [`CkksBench::decrypt`]), as SEAL's
    /// `encode` and `encrypt` do: no serialization.
    /// [`Encryptor::encrypt_values`] adds the encoding inside the
    /// encryption's own transforms.
    pub fn encrypt(&mut self, values: &[f64]) -> Result<(), WebError> {
        let mut rng = cipherflow_ring::sampler::secure_rng()?;
        let ct = self
            .tools()?
            .0
            .encrypt_values(&self.encoder, values, &mut rng)?;
        self.last = Some(ct);
        Ok(())
    }

    fn last(&self) -> Result<&Ciphertext, WebError> {
        self.last
            .as_ref()
            .ok_or_else(|| WebError::Invalid("nothing encrypted yet".into()))
    }

    /// The last ciphertext's serialized size in bytes.
    pub fn ciphertext_bytes(&self) -> Result<usize, WebError> {
        Ok(self.last()?.to_bytes(&self.params)?.len())
    }

    /// Decrypts and decodes the last ciphertext (SEAL's `decrypt` and
    /// `decode`): [`Decryptor::decrypt_values`], which decodes the
    /// decryption in place.
    pub fn decrypt(&self) -> Result<Vec<f64>, WebError> {
        Ok(self.tools()?.1.decrypt_values(self.last()?)?)
    }
}
