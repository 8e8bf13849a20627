//! End-to-end sealing of Shamir shares from one client to another through
//! the (untrusted) coordinator: static X25519 between the two roster keys,
//! HKDF-SHA-256 with the federation, epoch and direction as context, and
//! XChaCha20-Poly1305 with a random 192-bit nonce and the same context as
//! associated data. A sealed share opened under another federation, epoch,
//! sender or recipient fails authentication; a low-order peer key is
//! refused.

use crate::error::{FedError, Result};
use crate::messages::SealedShare;
use crate::roster::KxSecret;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand_core::RngCore;
use sha2::Sha256;
use x25519_dalek::PublicKey;
use zeroize::Zeroizing;

fn context(federation: &str, epoch: u64, from: u64, to: u64) -> Vec<u8> {
    let mut c = b"cipherflow-fed-seal-v1".to_vec();
    c.extend_from_slice(&(federation.len() as u64).to_le_bytes());
    c.extend_from_slice(federation.as_bytes());
    c.extend_from_slice(&epoch.to_le_bytes());
    c.extend_from_slice(&from.to_le_bytes());
    c.extend_from_slice(&to.to_le_bytes());
    c
}

fn cipher(mine: &KxSecret, peer: &PublicKey, ctx: &[u8]) -> Result<XChaCha20Poly1305> {
    let shared = mine.inner().diffie_hellman(peer);
    if !shared.was_contributory() {
        return Err(FedError::Crypto("low-order key-agreement key".into()));
    }
    let hk = Hkdf::<Sha256>::new(Some(b"cipherflow-fed-seal-v1"), shared.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(ctx, key.as_mut())
        .map_err(|_| FedError::Crypto("HKDF".into()))?;
    XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| FedError::Crypto("key".into()))
}

/// Seals `plaintext` from party `from` (holding `mine`) to party `to`
/// (public key `peer`).
pub fn seal(
    mine: &KxSecret,
    peer: &PublicKey,
    federation: &str,
    epoch: u64,
    from: u64,
    to: u64,
    plaintext: &[u8],
) -> Result<SealedShare> {
    let ctx = context(federation, epoch, from, to);
    let c = cipher(mine, peer, &ctx)?;
    let mut nonce = [0u8; 24];
    cipherflow_ring::sampler::secure_rng()?.fill_bytes(&mut nonce);
    let ciphertext = c
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &ctx,
            },
        )
        .map_err(|_| FedError::Crypto("sealing failed".into()))?;
    Ok(SealedShare {
        from_party: from,
        to_party: to,
        nonce,
        ciphertext,
    })
}

/// Opens a share sealed to `me` by the holder of `peer` (party
/// `sealed.from_party`).
pub fn open(
    mine: &KxSecret,
    peer: &PublicKey,
    federation: &str,
    epoch: u64,
    me: u64,
    sealed: &SealedShare,
) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.to_party != me {
        return Err(FedError::Protocol(format!(
            "share sealed to party {}, not {me}",
            sealed.to_party
        )));
    }
    let ctx = context(federation, epoch, sealed.from_party, me);
    let c = cipher(mine, peer, &ctx)?;
    c.decrypt(
        XNonce::from_slice(&sealed.nonce),
        Payload {
            msg: &sealed.ciphertext,
            aad: &ctx,
        },
    )
    .map(Zeroizing::new)
    .map_err(|_| {
        FedError::Crypto(format!(
            "sealed share from party {} does not authenticate",
            sealed.from_party
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let (a, b, c) = (
            KxSecret::generate().unwrap(),
            KxSecret::generate().unwrap(),
            KxSecret::generate().unwrap(),
        );
        let pa = crate::roster::parse_public(&a.public_hex()).unwrap();
        let pb = crate::roster::parse_public(&b.public_hex()).unwrap();
        let s = seal(&a, &pb, "fed", 1, 1, 2, b"share").unwrap();
        assert_eq!(&open(&b, &pa, "fed", 1, 2, &s).unwrap()[..], b"share");
        // Wrong epoch, federation, recipient key, direction, or a flipped bit.
        assert!(open(&b, &pa, "fed", 2, 2, &s).is_err());
        assert!(open(&b, &pa, "other", 1, 2, &s).is_err());
        assert!(open(&c, &pa, "fed", 1, 2, &s).is_err());
        assert!(open(&b, &pa, "fed", 1, 3, &s).is_err());
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert!(open(&b, &pa, "fed", 1, 2, &t).is_err());
        let mut t = s.clone();
        t.from_party = 3;
        assert!(open(&b, &pa, "fed", 1, 2, &t).is_err());
        // A low-order public key is refused.
        let zero = PublicKey::from([0u8; 32]);
        assert!(seal(&a, &zero, "fed", 1, 1, 2, b"x").is_err());
    }
}
