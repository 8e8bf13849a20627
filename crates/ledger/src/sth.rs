//! Signed tree heads (Ed25519) and the log's signing keys.
//!
//! A tree head is `(log id, tree size, root hash, timestamp)`. The signed
//! message is
//!
//! ```text
//! "cipherflow-ledger/v1/sth\0" | log_id:[32] | tree_size:u64 | timestamp_ms:u64 | root_hash:[32]
//! ```
//!
//! (big-endian integers), signed with Ed25519 and checked with
//! `verify_strict` (no malleable or small-order signatures).
//!
//! The log id is `SHA-256("cipherflow-ledger/v1/log-id\0" | public key | name)`:
//! a verifier holding only the public key recomputes it from the log's name.
//!
//! # Key files
//!
//! One line of text each:
//!
//! * secret (`PREFIX.key`, mode 0600): `cipherflow-ledger-ed25519-secret-v1:` + 64 hex digits (the 32-byte seed);
//! * public (`PREFIX.pub`): `cipherflow-ledger-ed25519-public-v1:` + 64 hex digits.
//!
//! Loading checks the tag, the length and (for public keys) that the point
//! is a valid, non-weak Ed25519 key, and fails with a [`KeyError`].

use crate::codec::{hex_hash, hex_sig};
use crate::merkle::Hash;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;
use zeroize::Zeroizing;

const SECRET_TAG: &str = "cipherflow-ledger-ed25519-secret-v1:";
const PUBLIC_TAG: &str = "cipherflow-ledger-ed25519-public-v1:";
const STH_DOMAIN: &[u8] = b"cipherflow-ledger/v1/sth\0";
const MAX_KEY_FILE: u64 = 4096;

/// Why a key could not be generated, loaded or saved.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// File could not be read or written.
    #[error("key file {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message; not repeated as a source, so a
        /// report that prints the cause chain names it once).
        cause: std::io::Error,
    },
    /// The file is not a key file of the expected kind.
    #[error("{0} is not a cipherflow-ledger {1} key file")]
    WrongKind(PathBuf, &'static str),
    /// The file is larger than any key file (read nothing of it).
    #[error("{path} is {size} bytes, larger than a key file ({max} bytes at most)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The largest key file accepted.
        max: u64,
    },
    /// Not hex, or not 32 bytes.
    #[error("key material is not 64 hex digits (32 bytes)")]
    BadEncoding,
    /// The bytes are not a valid (non-weak) Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The OS random generator failed.
    #[error("OS random number generator failed: {0}")]
    Rng(String),
}

/// Why a signed tree head does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SthError {
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    BadSignature,
    /// The head names a different log.
    #[error("head is for log {found}, expected {expected}")]
    WrongLog {
        /// Expected log id (hex).
        expected: String,
        /// Found log id (hex).
        found: String,
    },
}

/// An Ed25519 public key that verifies tree heads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl PublicKey {
    /// From 32 bytes; rejects invalid and weak (small-order) points.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let k = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        if k.is_weak() {
            return Err(KeyError::InvalidPublicKey);
        }
        Ok(Self(k))
    }

    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Lowercase hex of the key bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// SHA-256 of the key bytes.
    pub fn fingerprint(&self) -> Hash {
        Sha256::digest(self.to_bytes()).into()
    }

    /// Parses the key-file text form.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let hex_part = text
            .trim()
            .strip_prefix(PUBLIC_TAG)
            .ok_or_else(|| KeyError::WrongKind(PathBuf::new(), "public"))?;
        let mut b = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut b).map_err(|_| KeyError::BadEncoding)?;
        Self::from_bytes(&b)
    }

    /// The key-file text form (one line).
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_TAG}{}\n", self.to_hex())
    }

    /// Loads a public key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_small(path)?;
        Self::from_text(&text).map_err(|e| match e {
            KeyError::WrongKind(_, k) => KeyError::WrongKind(path.to_path_buf(), k),
            other => other,
        })
    }

    /// Writes a public key file.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        write_new(path, self.to_text().as_bytes(), false)
    }

    /// Checks a head's signature and, if given, its log id.
    pub fn verify_head(&self, sth: &SignedTreeHead, log_id: Option<&Hash>) -> Result<(), SthError> {
        if let Some(id) = log_id {
            if &sth.log_id != id {
                return Err(SthError::WrongLog {
                    expected: hex::encode(id),
                    found: hex::encode(sth.log_id),
                });
            }
        }
        let sig = Signature::from_bytes(&sth.signature);
        self.0
            .verify_strict(&sth.signed_message(), &sig)
            .map_err(|_| SthError::BadSignature)
    }
}

/// The log's Ed25519 signing key. The secret is zeroized on drop.
pub struct LogSigner {
    key: SigningKey,
}

impl fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogSigner(public {})", self.public_key().to_hex())
    }
}

impl LogSigner {
    /// A fresh key: 32 secret bytes from ChaCha20 seeded by the OS.
    pub fn generate() -> Result<Self, KeyError> {
        let mut rng =
            cipherflow_ring::sampler::secure_rng().map_err(|e| KeyError::Rng(e.to_string()))?;
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Ok(Self::from_seed(&seed))
    }

    /// From a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Signs a tree head.
    pub fn sign(&self, head: TreeHead) -> SignedTreeHead {
        let signature = self.key.sign(&head.signed_message()).to_bytes();
        SignedTreeHead {
            log_id: head.log_id,
            tree_size: head.tree_size,
            root_hash: head.root_hash,
            timestamp_ms: head.timestamp_ms,
            signature,
        }
    }

    /// Loads a secret key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = Zeroizing::new(read_small(path)?);
        let hex_part = text
            .trim()
            .strip_prefix(SECRET_TAG)
            .ok_or_else(|| KeyError::WrongKind(path.to_path_buf(), "secret"))?;
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_part, seed.as_mut()).map_err(|_| KeyError::BadEncoding)?;
        Ok(Self::from_seed(&seed))
    }

    /// Writes `PREFIX.key` (secret, mode 0600) and `PREFIX.pub`; refuses to
    /// overwrite either. Returns both paths.
    pub fn save(&self, prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        let secret = with_suffix(prefix, "key");
        let public = with_suffix(prefix, "pub");
        for p in [&secret, &public] {
            if p.exists() {
                return Err(KeyError::Io {
                    path: p.clone(),
                    cause: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists"),
                });
            }
        }
        let seed = Zeroizing::new(self.key.to_bytes());
        let text = Zeroizing::new(format!("{SECRET_TAG}{}\n", hex::encode(seed.as_ref())));
        write_new(&secret, text.as_bytes(), true)?;
        self.public_key().save(&public)?;
        Ok((secret, public))
    }
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn read_small(path: &Path) -> Result<String, KeyError> {
    let io = |cause| KeyError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            max: MAX_KEY_FILE,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|_| KeyError::BadEncoding)
}

fn write_new(path: &Path, data: &[u8], secret: bool) -> Result<(), KeyError> {
    let io = |cause| KeyError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}

/// The log id for a public key and log name.
pub fn log_id(key: &PublicKey, name: &str) -> Hash {
    let mut h = Sha256::new();
    h.update(b"cipherflow-ledger/v1/log-id\0");
    h.update(key.to_bytes());
    h.update(name.as_bytes());
    h.finalize().into()
}

/// An unsigned tree head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Log id.
    pub log_id: Hash,
    /// Number of entries covered.
    pub tree_size: u64,
    /// RFC 9162 root over those entries.
    pub root_hash: Hash,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl TreeHead {
    fn signed_message(&self) -> Vec<u8> {
        message(
            &self.log_id,
            self.tree_size,
            self.timestamp_ms,
            &self.root_hash,
        )
    }
}

fn message(log_id: &Hash, size: u64, ts: u64, root: &Hash) -> Vec<u8> {
    let mut m = Vec::with_capacity(STH_DOMAIN.len() + 80);
    m.extend_from_slice(STH_DOMAIN);
    m.extend_from_slice(log_id);
    m.extend_from_slice(&size.to_be_bytes());
    m.extend_from_slice(&ts.to_be_bytes());
    m.extend_from_slice(root);
    m
}

/// A tree head with its Ed25519 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// Log id.
    #[serde(with = "hex_hash")]
    pub log_id: Hash,
    /// Number of entries covered.
    pub tree_size: u64,
    /// RFC 9162 root over those entries.
    #[serde(with = "hex_hash")]
    pub root_hash: Hash,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Ed25519 signature over the message in the module docs.
    #[serde(with = "hex_sig")]
    pub signature: [u8; 64],
}

impl SignedTreeHead {
    /// The exact bytes that were signed.
    pub fn signed_message(&self) -> Vec<u8> {
        message(
            &self.log_id,
            self.tree_size,
            self.timestamp_ms,
            &self.root_hash,
        )
    }

    /// The head without its signature.
    pub fn head(&self) -> TreeHead {
        TreeHead {
            log_id: self.log_id,
            tree_size: self.tree_size,
            root_hash: self.root_hash,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject_flips() {
        let s = LogSigner::from_seed(&[42; 32]);
        let pk = s.public_key();
        let id = log_id(&pk, "test");
        let sth = s.sign(TreeHead {
            log_id: id,
            tree_size: 10,
            root_hash: [9; 32],
            timestamp_ms: 1234,
        });
        assert_eq!(pk.verify_head(&sth, Some(&id)), Ok(()));
        for bit in 0..512 {
            let mut bad = sth;
            bad.signature[bit / 8] ^= 1 << (bit % 8);
            assert!(pk.verify_head(&bad, None).is_err(), "signature bit {bit}");
        }
        for bit in 0..256 {
            let mut bad = sth;
            bad.root_hash[bit / 8] ^= 1 << (bit % 8);
            assert!(pk.verify_head(&bad, None).is_err(), "root bit {bit}");
            let mut bad = sth;
            bad.log_id[bit / 8] ^= 1 << (bit % 8);
            assert!(pk.verify_head(&bad, None).is_err(), "log id bit {bit}");
        }
        for bit in 0..64 {
            let mut bad = sth;
            bad.tree_size ^= 1 << bit;
            assert!(pk.verify_head(&bad, None).is_err());
            let mut bad = sth;
            bad.timestamp_ms ^= 1 << bit;
            assert!(pk.verify_head(&bad, None).is_err());
        }
        let other = LogSigner::from_seed(&[43; 32]).public_key();
        assert!(other.verify_head(&sth, None).is_err());
        assert!(pk.verify_head(&sth, Some(&[0; 32])).is_err());
    }

    #[test]
    fn fingerprint_is_sha256_of_the_key_bytes() {
        let pk = LogSigner::from_seed(&[42; 32]).public_key();
        let want: Hash = Sha256::digest(pk.to_bytes()).into();
        assert_eq!(pk.fingerprint(), want);
        // Pinned: peers store fingerprints, so the definition must not drift.
        assert_eq!(hex::encode(pk.fingerprint()), FINGERPRINT_42);
        let other = LogSigner::from_seed(&[43; 32]).public_key();
        assert_ne!(other.fingerprint(), pk.fingerprint());
    }

    /// Debug output (logs, panics) names the public key and never shows
    /// the signing key.
    #[test]
    fn debug_shows_the_public_key_and_never_the_secret() {
        let seed = [42u8; 32];
        let s = LogSigner::from_seed(&seed);
        let pk = s.public_key();
        assert_eq!(format!("{pk:?}"), format!("PublicKey({})", pk.to_hex()));
        let shown = format!("{s:?} {s:#?}");
        assert_eq!(
            format!("{s:?}"),
            format!("LogSigner(public {})", pk.to_hex())
        );
        assert!(!shown.contains(&hex::encode(seed)), "{shown}");
        assert!(!shown.contains("42, 42"), "{shown}");
    }

    const FINGERPRINT_42: &str = "b600306cfa76723fdec395e53a9b3d9fdb78b1e2d7a23c32fcbcd2dc6d0c4092";

    #[test]
    fn key_files_at_the_size_limit_load_and_larger_ones_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let pk = LogSigner::from_seed(&[42; 32]).public_key();
        let path = dir.path().join("padded.pub");
        let mut text = format!("{PUBLIC_TAG}{}", pk.to_hex()).into_bytes();
        text.resize(MAX_KEY_FILE as usize, b'\n');
        std::fs::write(&path, &text).unwrap();
        assert_eq!(PublicKey::load(&path).unwrap(), pk);
        text.push(b'\n');
        std::fs::write(&path, &text).unwrap();
        match PublicKey::load(&path) {
            Err(KeyError::TooLarge { size, max, .. }) => {
                assert_eq!((size, max), (MAX_KEY_FILE + 1, MAX_KEY_FILE))
            }
            other => panic!("oversized key file: {other:?}"),
        }
    }

    #[test]
    fn key_files_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("log");
        let s = LogSigner::generate().unwrap();
        let (sk, pk) = s.save(&prefix).unwrap();
        assert!(s.save(&prefix).is_err(), "must not overwrite");
        let s2 = LogSigner::load(&sk).unwrap();
        assert_eq!(s2.public_key(), s.public_key());
        assert_eq!(PublicKey::load(&pk).unwrap(), s.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&sk).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
        // Swapped kinds, garbage, short and weak keys are typed errors.
        assert!(matches!(PublicKey::load(&sk), Err(KeyError::WrongKind(..))));
        assert!(matches!(LogSigner::load(&pk), Err(KeyError::WrongKind(..))));
        let bad = dir.path().join("bad.pub");
        std::fs::write(&bad, format!("{PUBLIC_TAG}abcd\n")).unwrap();
        assert!(matches!(PublicKey::load(&bad), Err(KeyError::BadEncoding)));
        std::fs::write(&bad, [0xff, 0xfe, 0x00]).unwrap();
        assert!(PublicKey::load(&bad).is_err());
        // The identity point is a weak key.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(matches!(
            PublicKey::from_bytes(&ident),
            Err(KeyError::InvalidPublicKey)
        ));
        assert!(PublicKey::load(&dir.path().join("missing")).is_err());
    }
}
