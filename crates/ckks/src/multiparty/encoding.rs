//! Binary encodings of the multiparty objects, in the crate's versioned
//! format (magic, version, kind, parameter fingerprint, then the body;
//! residues bit-packed to their prime's width). Every decoder validates
//! sizes, levels, party ids, thresholds and coefficient ranges, rejects
//! trailing bytes and returns a typed error; secret encodings are returned
//! in [`Zeroizing`] buffers.

use super::collective_keygen::{PublicKeyShare, SecretShare};
use super::decrypt::{DecryptionShare, ShareMode};
use super::error::MultipartyError;
use super::shamir::{validate_ids, ShamirShare, ThresholdSecret};
use super::smudging::MAX_SMUDGING_LOG2;
use crate::error::CkksError;
use crate::params::CkksParams;
use crate::serialize::{bad, Kind, Reader, Writer};
use cipherflow_ring::sampler::uniform_from_seed;
use zeroize::Zeroizing;

/// Largest party count accepted by the decoders.
pub const MAX_PARTIES: usize = 1 << 16;

/// Bytes of a polynomial over `q_len` ciphertext primes.
fn poly_bytes(params: &CkksParams, q_len: usize) -> usize {
    let bits: usize = params
        .ring()
        .tables(q_len, 0)
        .map(|t| t.modulus().bits() as usize)
        .sum();
    (bits * params.n()).div_ceil(8)
}

fn write_ids(w: &mut Writer, ids: &[u64]) {
    w.bytes(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        w.bytes(&id.to_le_bytes());
    }
}

fn u32_of(r: &mut Reader<'_>) -> Result<u32, CkksError> {
    Ok(u32::from_le_bytes(r.array::<4>()?))
}

fn u64_of(r: &mut Reader<'_>) -> Result<u64, CkksError> {
    Ok(u64::from_le_bytes(r.array::<8>()?))
}

/// Reads a sorted, valid party list and a threshold in `1..=len`.
fn read_ids(r: &mut Reader<'_>, params: &CkksParams) -> Result<Vec<u64>, CkksError> {
    let count = u32_of(r)? as usize;
    if count == 0 || count > MAX_PARTIES {
        return Err(bad("party count out of range"));
    }
    let ids = (0..count)
        .map(|_| u64_of(r))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.windows(2).any(|w| w.first() >= w.get(1)) {
        return Err(bad("party ids not strictly increasing"));
    }
    validate_ids(params, &ids)?;
    Ok(ids)
}

fn read_threshold(r: &mut Reader<'_>, parties: usize) -> Result<usize, CkksError> {
    let t = u32_of(r)? as usize;
    if t == 0 || t > parties {
        return Err(MultipartyError::InvalidThreshold {
            threshold: t,
            parties,
        }
        .into());
    }
    Ok(t)
}

impl SecretShare {
    /// Serializes the secret share (2 bits per ternary coefficient, and the
    /// party id if set). Store only in protected storage.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(&self.params, Kind::MpSecretShare);
        w.reserve(16 + self.coeffs.len() / 4);
        match self.party_id {
            Some(id) => {
                w.bytes(&[1]);
                w.bytes(&id.to_le_bytes());
            }
            None => w.bytes(&[0]),
        }
        for &c in self.coeffs.iter() {
            // −1 → 2, 0 → 0, 1 → 1 (branch-free: c & 3 is 3, 0, 1).
            let v = (c & 3) as u64;
            w.bits(v ^ (v >> 1), 2);
        }
        Zeroizing::new(w.finish())
    }

    /// Parses and validates a serialized secret share.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::MpSecretShare)?;
        let party_id = match r.u8()? {
            0 => None,
            1 => {
                let id = u64_of(&mut r)?;
                validate_ids(params, &[id])?;
                Some(id)
            }
            _ => return Err(bad("invalid flags")),
        };
        let n = params.n();
        let packed = r.take(n.div_ceil(4))?;
        let mut coeffs = Zeroizing::new(Vec::with_capacity(n));
        let mut invalid = false;
        for &byte in packed {
            for j in 0..4 {
                let v = (byte >> (2 * j)) & 3;
                invalid |= v == 3;
                coeffs.push(i64::from(v & 1) - i64::from(v >> 1));
            }
        }
        r.finish()?;
        if invalid || coeffs.len() != n {
            return Err(bad("secret share coefficient not ternary"));
        }
        let mut s = Self::from_coeffs(params, coeffs);
        s.party_id = party_id;
        Ok(s)
    }
}

impl PublicKeyShare {
    /// Serializes the public-key share (CRS-derived seed, then `p_i`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(&self.params, Kind::MpPublicKeyShare);
        w.bytes(&self.seed);
        w.poly(&self.params, &self.b);
        w.finish()
    }

    /// Parses and validates a serialized public-key share.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::MpPublicKeyShare)?;
        let seed = r.array::<32>()?;
        let b = r.poly(params, params.q().len(), params.p().len())?;
        r.finish()?;
        Ok(Self {
            b,
            seed,
            params: params.clone(),
        })
    }
}

impl ShamirShare {
    /// Serializes the Shamir share (secret: send only encrypted to `to`).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(&self.params, Kind::MpShamirShare);
        w.reserve(32 + 8 * self.parties.len() + poly_bytes(&self.params, self.poly.q_len()));
        w.bytes(&self.from.to_le_bytes());
        w.bytes(&self.to.to_le_bytes());
        w.bytes(&(self.threshold as u32).to_le_bytes());
        write_ids(&mut w, &self.parties);
        match &self.seed {
            Some(seed) => {
                w.bytes(&[1]);
                w.bytes(&seed[..]);
            }
            None => {
                w.bytes(&[0]);
                w.poly(&self.params, &self.poly);
            }
        }
        Zeroizing::new(w.finish())
    }

    /// Parses and validates a serialized Shamir share.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::MpShamirShare)?;
        let from = u64_of(&mut r)?;
        let to = u64_of(&mut r)?;
        let t = u32_of(&mut r)?;
        let parties = read_ids(&mut r, params)?;
        let threshold = t as usize;
        if threshold == 0 || threshold > parties.len() {
            return Err(MultipartyError::InvalidThreshold {
                threshold,
                parties: parties.len(),
            }
            .into());
        }
        // The recipient is an evaluation point of the dealing; the dealer
        // need not be (a client dealing to a committee of key holders).
        if !parties.contains(&to) {
            return Err(MultipartyError::UnexpectedParty(to).into());
        }
        if from == 0 {
            return Err(MultipartyError::InvalidPartyId(from).into());
        }
        let q_len = params.q().len();
        let (poly, seed) = match r.u8()? {
            0 => (r.poly(params, q_len, 0)?, None),
            1 => {
                let seed = Zeroizing::new(r.array::<32>()?);
                let poly = uniform_from_seed(params.ring(), &seed, q_len, 0);
                (poly, Some(seed))
            }
            _ => return Err(bad("invalid flags")),
        };
        r.finish()?;
        Ok(Self {
            from,
            to,
            threshold,
            parties,
            poly: poly.into(),
            seed,
            params: params.clone(),
        })
    }
}

impl ThresholdSecret {
    /// Serializes the threshold secret. Store only in protected storage.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(&self.params, Kind::MpThresholdSecret);
        w.reserve(24 + 8 * self.parties.len() + poly_bytes(&self.params, self.poly.q_len()));
        w.bytes(&self.id.to_le_bytes());
        write_ids(&mut w, &self.parties);
        w.bytes(&(self.threshold as u32).to_le_bytes());
        w.poly(&self.params, &self.poly);
        Zeroizing::new(w.finish())
    }

    /// Parses and validates a serialized threshold secret.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::MpThresholdSecret)?;
        let id = u64_of(&mut r)?;
        let parties = read_ids(&mut r, params)?;
        if !parties.contains(&id) {
            return Err(MultipartyError::UnexpectedParty(id).into());
        }
        let threshold = read_threshold(&mut r, parties.len())?;
        let poly = r.poly(params, params.q().len(), 0)?;
        r.finish()?;
        Ok(Self {
            id,
            threshold,
            parties,
            poly: poly.into(),
            params: params.clone(),
        })
    }
}

impl DecryptionShare {
    /// Serializes the decryption share.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(&self.params, Kind::MpDecryptionShare);
        w.bytes(&self.party.to_le_bytes());
        match &self.mode {
            ShareMode::Additive => w.bytes(&[0]),
            ShareMode::Threshold { threshold, active } => {
                w.bytes(&[1]);
                write_ids(&mut w, active);
                w.bytes(&(*threshold as u32).to_le_bytes());
            }
        }
        w.bytes(&[self.poly.q_len() as u8, self.smudging_log2 as u8]);
        w.bytes(&self.ct_hash);
        w.poly(&self.params, &self.poly);
        w.finish()
    }

    /// Parses and validates a serialized decryption share.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::MpDecryptionShare)?;
        let party = u64_of(&mut r)?;
        let mode = match r.u8()? {
            0 => {
                if party != 0 {
                    validate_ids(params, &[party])?;
                }
                ShareMode::Additive
            }
            1 => {
                let active = read_ids(&mut r, params)?;
                let threshold = read_threshold(&mut r, active.len())?;
                if !active.contains(&party) {
                    return Err(MultipartyError::UnexpectedParty(party).into());
                }
                ShareMode::Threshold { threshold, active }
            }
            _ => return Err(bad("invalid share mode")),
        };
        let q_len = usize::from(r.u8()?);
        if q_len == 0 || q_len > params.q().len() {
            return Err(bad("invalid level"));
        }
        let smudging_log2 = u32::from(r.u8()?);
        if smudging_log2 > MAX_SMUDGING_LOG2 {
            return Err(bad("smudging bound out of range"));
        }
        let ct_hash = r.array::<32>()?;
        let poly = r.poly(params, q_len, 0)?;
        r.finish()?;
        Ok(Self {
            party,
            mode,
            ct_hash,
            smudging_log2,
            poly,
            params: params.clone(),
        })
    }
}
