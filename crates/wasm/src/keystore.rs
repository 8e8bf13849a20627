//! A model's secret key kept on the user's device, only when they ask,
//! and then sealed under a passphrase: what the query page stores in the
//! browser's IndexedDB so that a later visit decrypts with the same key
//! (and, while the platform still holds the session, skips making and
//! uploading the evaluation keys again).
//!
//! The passphrase is stretched with Argon2id (19 MiB, 2 passes, one lane:
//! OWASP's minimum for Argon2id) over a fresh 16-byte salt; the key's
//! strict encoding is sealed with XChaCha20-Poly1305 under a fresh 24-byte
//! nonce. The associated data is the whole header — format version, KDF
//! costs, salt, nonce, the model's name and the SHA-256 of its input spec —
//! so a sealed key opens only for the model and spec it was made for, and
//! any changed byte (header or ciphertext) makes it refuse to open.
//!
//! Layout (integers little-endian), version 1:
//!
//! ```text
//! "CFSK" | 1u8 | m_kib u32 | passes u32 | salt [16] | nonce [24]
//!        | name_len u8 | name | spec_sha256 [32] | sealed_len u32 | sealed
//! ```
//!
//! The decoder bounds every length before it allocates and refuses KDF
//! costs outside [`MIN_M_KIB`]..=[`MAX_M_KIB`] and
//! [`MIN_PASSES`]..=[`MAX_PASSES`] (a hostile record can make the page
//! spend at most 256 MiB and 8 passes before it is refused).

use crate::client::BrowserClient;
use crate::error::WebError;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use cipherflow_tensor::InputSpec;
use rand_core::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"CFSK";
const VERSION: u8 = 1;
const SALT_BYTES: usize = 16;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
/// Argon2id memory cost used when sealing, KiB (19 MiB).
pub const M_KIB: u32 = 19 * 1024;
/// Argon2id passes used when sealing.
pub const PASSES: u32 = 2;
/// Least memory cost a sealed key may name, KiB.
pub const MIN_M_KIB: u32 = M_KIB;
/// Most memory cost a sealed key may name, KiB (256 MiB).
pub const MAX_M_KIB: u32 = 256 * 1024;
/// Least passes a sealed key may name.
pub const MIN_PASSES: u32 = PASSES;
/// Most passes a sealed key may name.
pub const MAX_PASSES: u32 = 8;
/// Shortest passphrase accepted, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Longest passphrase accepted, in bytes.
pub const MAX_PASSPHRASE_BYTES: usize = 1024;
/// Largest sealed key accepted (the key of N = 2^16 with 30 primes is
/// about 16 MiB; the platform's specs are far smaller).
pub const MAX_SEALED_BYTES: usize = 32 << 20;
/// Longest model name (the repository's limit).
const MAX_NAME_BYTES: usize = 64;
/// Longest input spec read (as the tensor client bounds it).
const MAX_SPEC_BYTES: usize = 1 << 20;

/// What a sealed key says about itself without its passphrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedInfo {
    /// The model it was made for.
    pub model: String,
    /// SHA-256 (hex) of the input spec it was made for.
    pub spec_sha256: String,
}

struct Sealed<'a> {
    m_kib: u32,
    passes: u32,
    salt: &'a [u8],
    nonce: &'a [u8],
    model: &'a str,
    spec_sha256: &'a [u8],
    /// The header: the associated data.
    header: &'a [u8],
    ciphertext: &'a [u8],
}

fn bad(m: impl Into<String>) -> WebError {
    WebError::Sealed(m.into())
}

/// The SHA-256 of a spec as the client reads it (its canonical JSON), so
/// that two serializations of one spec agree.
fn spec_digest(spec: &InputSpec) -> Result<[u8; 32], WebError> {
    let canonical = serde_json::to_vec(spec).map_err(|e| WebError::Invalid(e.to_string()))?;
    Ok(Sha256::digest(canonical).into())
}

/// [`spec_digest`] of a spec's JSON text (bounded as the client bounds it).
fn spec_json_digest(spec_json: &str) -> Result<[u8; 32], WebError> {
    if spec_json.len() > MAX_SPEC_BYTES {
        return Err(WebError::Invalid("an input spec of more than 1 MiB".into()));
    }
    let spec: InputSpec = serde_json::from_str(spec_json)
        .map_err(|e| WebError::Invalid(format!("not an input spec: {e}")))?;
    spec_digest(&spec)
}

fn check_passphrase(passphrase: &str) -> Result<(), WebError> {
    if passphrase.len() > MAX_PASSPHRASE_BYTES {
        return Err(WebError::Passphrase(format!(
            "a passphrase of at most {MAX_PASSPHRASE_BYTES} bytes"
        )));
    }
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(WebError::Passphrase(format!(
            "a passphrase of at least {MIN_PASSPHRASE_CHARS} characters: it is all that \
             protects the saved key on this device"
        )));
    }
    Ok(())
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    m_kib: u32,
    passes: u32,
) -> Result<Zeroizing<[u8; 32]>, WebError> {
    let params = Params::new(m_kib, passes, 1, Some(32)).map_err(|e| bad(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    // Our own memory, zeroized when dropped: `hash_password_into` frees
    // its blocks unwiped, and the last of them yields the key. Its size is
    // the checked memory cost (at most MAX_M_KIB KiB).
    let mut blocks = Zeroizing::new(vec![Block::default(); params.block_count()]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(
            passphrase.as_bytes(),
            salt,
            key.as_mut_slice(),
            blocks.as_mut_slice(),
        )
        .map_err(|e| bad(e.to_string()))?;
    Ok(key)
}

/// Seals `client`'s secret key for `model` under `passphrase` (at least
/// [`MIN_PASSPHRASE_CHARS`] characters), with a fresh salt and nonce from
/// the platform's CSPRNG.
pub fn seal_secret_key(
    client: &BrowserClient,
    model: &str,
    passphrase: &str,
) -> Result<Vec<u8>, WebError> {
    check_passphrase(passphrase)?;
    if model.is_empty() || model.len() > MAX_NAME_BYTES {
        return Err(WebError::Invalid(format!(
            "a model name of 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    let secret = client.secret_key_bytes();
    let sealed_len = secret.len() + TAG_BYTES;
    // Below the bound for every 128-bit parameter set; checked as opening
    // checks it, so that nothing is sealed that could not be opened.
    check_sealed_len(sealed_len)?;
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let mut salt = [0u8; SALT_BYTES];
    let mut nonce = [0u8; NONCE_BYTES];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(128 + sealed_len);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&M_KIB.to_le_bytes());
    out.extend_from_slice(&PASSES.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.push(model.len() as u8);
    out.extend_from_slice(model.as_bytes());
    out.extend_from_slice(&spec_digest(client.spec())?);
    out.extend_from_slice(&(sealed_len as u32).to_le_bytes());
    let key = derive(passphrase, &salt, M_KIB, PASSES)?;
    let ciphertext = XChaCha20Poly1305::new(key.as_slice().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &secret,
                aad: &out,
            },
        )
        .map_err(|_| bad("sealing failed"))?;
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WebError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| bad(format!("a saved key cut short (in its {what})")))?;
        let s = self.data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32, WebError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn check_sealed_len(n: usize) -> Result<(), WebError> {
    if n <= TAG_BYTES || n > MAX_SEALED_BYTES {
        return Err(bad(format!(
            "a saved key of {n} sealed bytes (more than {TAG_BYTES}, at most {MAX_SEALED_BYTES})"
        )));
    }
    Ok(())
}

/// Reads the header, every length checked against what is left before it
/// is used (the record is borrowed: nothing is allocated here).
fn parse(data: &[u8]) -> Result<Sealed<'_>, WebError> {
    let mut c = Cursor { data, pos: 0 };
    if c.take(4, "magic")? != MAGIC {
        return Err(bad("not a saved cipherflow key"));
    }
    let version = c.take(1, "version")?[0];
    if version != VERSION {
        return Err(bad(format!("a saved key of format version {version}")));
    }
    let m_kib = c.u32("memory cost")?;
    let passes = c.u32("passes")?;
    if !(MIN_M_KIB..=MAX_M_KIB).contains(&m_kib) || !(MIN_PASSES..=MAX_PASSES).contains(&passes) {
        return Err(bad(format!(
            "a saved key with Argon2id costs {m_kib} KiB × {passes} (accepted: \
             {MIN_M_KIB}..={MAX_M_KIB} KiB, {MIN_PASSES}..={MAX_PASSES} passes)"
        )));
    }
    let salt = c.take(SALT_BYTES, "salt")?;
    let nonce = c.take(NONCE_BYTES, "nonce")?;
    let name_len = usize::from(c.take(1, "name")?[0]);
    if name_len == 0 || name_len > MAX_NAME_BYTES {
        return Err(bad(format!(
            "a saved key naming a model of {name_len} bytes"
        )));
    }
    let model = std::str::from_utf8(c.take(name_len, "name")?)
        .map_err(|_| bad("a saved key whose model name is not UTF-8"))?;
    let spec_sha256 = c.take(32, "spec digest")?;
    let sealed_len = c.u32("length")? as usize;
    check_sealed_len(sealed_len)?;
    let header_end = c.pos;
    let ciphertext = c.take(sealed_len, "sealed bytes")?;
    if c.pos != data.len() {
        return Err(bad(format!(
            "{} bytes after a saved key",
            data.len() - c.pos
        )));
    }
    Ok(Sealed {
        m_kib,
        passes,
        salt,
        nonce,
        model,
        spec_sha256,
        header: data.get(..header_end).unwrap_or_default(),
        ciphertext,
    })
}

/// What a sealed key was made for, read without its passphrase (the
/// format checked).
pub fn sealed_info(sealed: &[u8]) -> Result<SealedInfo, WebError> {
    let s = parse(sealed)?;
    Ok(SealedInfo {
        model: s.model.to_string(),
        spec_sha256: hex::encode(s.spec_sha256),
    })
}

impl BrowserClient {
    /// Opens a key sealed by [`seal_secret_key`] for `model`, with its
    /// passphrase: the spec (`spec_json`) must be the one it was sealed
    /// for, and the evaluation keys are made afresh for it (see
    /// [`BrowserClient::new`] for `spec_json` and `preprocessing_json`).
    /// A wrong passphrase and an altered record give the same error.
    pub fn from_sealed(
        spec_json: &str,
        preprocessing_json: Option<&str>,
        model: &str,
        sealed: &[u8],
        passphrase: &str,
    ) -> Result<Self, WebError> {
        let s = parse(sealed)?;
        if s.model != model {
            return Err(bad(format!(
                "this key was saved for {}, not {model}",
                s.model
            )));
        }
        if spec_json_digest(spec_json)?.as_slice() != s.spec_sha256 {
            return Err(bad(format!(
                "this key was saved for another version of {model}'s input spec: \
                 forget it and make new keys"
            )));
        }
        if passphrase.len() > MAX_PASSPHRASE_BYTES {
            return Err(WebError::Passphrase("a passphrase that is too long".into()));
        }
        let key = derive(passphrase, s.salt, s.m_kib, s.passes)?;
        let secret = Zeroizing::new(
            XChaCha20Poly1305::new(key.as_slice().into())
                .decrypt(
                    XNonce::from_slice(s.nonce),
                    Payload {
                        msg: s.ciphertext,
                        aad: s.header,
                    },
                )
                .map_err(|_| {
                    WebError::Passphrase(
                        "the passphrase is wrong, or the saved key was altered".into(),
                    )
                })?,
        );
        Self::with_secret_key(spec_json, preprocessing_json, &secret)
    }
}
