//! Versioned binary serialization.
//!
//! Every object starts with the magic `CFHE`, a format version, an object
//! kind and the 32-byte fingerprint of its parameter set, so objects of
//! other parameters are rejected. Residues are bit-packed to the width of
//! their prime (a 40-bit prime costs 40 bits per coefficient, not 64).
//! Public parts derived from a seed (the `a` of secret-key ciphertexts and
//! of keys) travel as the 32-byte seed. Every decoder validates the kind,
//! sizes, levels, scales and coefficient ranges, rejects trailing bytes, and
//! returns [`CkksError::Decode`] on bad input — it never panics.

use crate::encrypt::Ciphertext;
use crate::error::CkksError;
use crate::keys::{GaloisKeys, PublicKey, RelinKey, SecretKey, SwitchingKey};
use crate::params::CkksParams;
use cipherflow_ring::sampler::uniform_from_seed;
use cipherflow_ring::RnsPoly;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"CFHE";
/// Current format version.
pub const FORMAT_VERSION: u8 = 1;

/// Object kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Ciphertext = 1,
    PublicKey = 2,
    SecretKey = 3,
    RelinKey = 4,
    GaloisKeys = 5,
    /// Multiparty: a party's secret-key share.
    MpSecretShare = 6,
    /// Multiparty: a public-key share.
    MpPublicKeyShare = 7,
    /// Multiparty: a Shamir share of a secret-key share.
    MpShamirShare = 8,
    /// Multiparty: a party's threshold secret.
    MpThresholdSecret = 9,
    /// Multiparty: a decryption share.
    MpDecryptionShare = 10,
    /// Multiparty aggregation: a share-encrypted integer vector.
    MpSharedCiphertext = 11,
    /// Multiparty aggregation: a decryption share of sums.
    MpAggregateShare = 12,
}

pub(crate) fn bad(msg: &str) -> CkksError {
    CkksError::Decode(msg.to_string())
}

/// Little-endian bit packer.
pub(crate) struct Writer {
    buf: Vec<u8>,
    acc: u128,
    nbits: u32,
}

impl Writer {
    pub(crate) fn new(params: &CkksParams, kind: Kind) -> Self {
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        buf.push(FORMAT_VERSION);
        buf.push(kind as u8);
        buf.extend_from_slice(params.fingerprint());
        Self {
            buf,
            acc: 0,
            nbits: 0,
        }
    }

    /// Reserves room for `additional` bytes (so secret buffers are not
    /// reallocated, leaving unzeroized copies behind).
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn bits(&mut self, v: u64, width: u32) {
        self.acc |= u128::from(v) << self.nbits;
        self.nbits += width;
        // Little-endian bit stream: emitting 8 bytes at a time gives the
        // same bytes as one at a time.
        if self.nbits >= 64 {
            self.buf.extend_from_slice(&(self.acc as u64).to_le_bytes());
            self.acc >>= 64;
            self.nbits -= 64;
        }
    }

    pub(crate) fn flush_bits(&mut self) {
        while self.nbits > 0 {
            self.buf.push(self.acc as u8);
            self.acc >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.acc = 0;
        self.nbits = 0;
    }

    pub(crate) fn poly(&mut self, params: &CkksParams, p: &RnsPoly) {
        let ring = params.ring();
        for (limb, t) in p.limbs().zip(ring.tables(p.q_len(), p.p_len())) {
            let w = t.modulus().bits();
            for &c in limb {
                self.bits(c, w);
            }
        }
        self.flush_bits();
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.flush_bits();
        self.buf
    }
}

/// Validating reader.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(params: &CkksParams, data: &'a [u8], kind: Kind) -> Result<Self, CkksError> {
        let mut r = Self { data, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(bad("not a cipherflow object (bad magic)"));
        }
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(bad(&format!("unsupported format version {version}")));
        }
        let k = r.u8()?;
        if k != kind as u8 {
            return Err(bad(&format!("object kind {k}, expected {}", kind as u8)));
        }
        if r.take(32)? != params.fingerprint() {
            return Err(CkksError::ParamsMismatch);
        }
        Ok(r)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CkksError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| bad("length overflow"))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| bad("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CkksError> {
        self.take(1)?
            .first()
            .copied()
            .ok_or_else(|| bad("truncated"))
    }

    pub(crate) fn array<const K: usize>(&mut self) -> Result<[u8; K], CkksError> {
        self.take(K)?.try_into().map_err(|_| bad("truncated"))
    }

    pub(crate) fn poly(
        &mut self,
        params: &CkksParams,
        q_len: usize,
        p_len: usize,
    ) -> Result<RnsPoly, CkksError> {
        let ring = params.ring();
        let n = params.n();
        let mut data = Vec::with_capacity(n * (q_len + p_len));
        let widths: Vec<(u32, u64)> = ring
            .tables(q_len, p_len)
            .map(|t| (t.modulus().bits(), t.modulus().value()))
            .collect();
        let total_bits: usize = widths.iter().map(|&(w, _)| w as usize * n).sum();
        let bytes = self.take(total_bits.div_ceil(8))?;
        let mut acc: u128 = 0;
        let mut nbits: u32 = 0;
        let mut pos = 0usize;
        let mut out_of_range = false;
        for &(w, q) in &widths {
            let mask = (1u128 << w) - 1;
            for _ in 0..n {
                if nbits < w {
                    // Refill 8 bytes at a time (widths are at most 61 bits).
                    match bytes.get(pos..pos + 8) {
                        Some(word) => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(word);
                            acc |= u128::from(u64::from_le_bytes(b)) << nbits;
                            nbits += 64;
                            pos += 8;
                        }
                        None => {
                            while nbits < w {
                                let b =
                                    bytes.get(pos).ok_or_else(|| bad("truncated polynomial"))?;
                                acc |= u128::from(*b) << nbits;
                                nbits += 8;
                                pos += 1;
                            }
                        }
                    }
                }
                let v = (acc & mask) as u64;
                acc >>= w;
                nbits -= w;
                out_of_range |= v >= q;
                data.push(v);
            }
        }
        if out_of_range {
            return Err(bad("coefficient out of range for its modulus"));
        }
        // The bits left over are the last byte's padding: they must be zero.
        if acc != 0 {
            return Err(bad("non-zero padding bits"));
        }
        Ok(RnsPoly::from_raw(ring, q_len, p_len, true, data)?)
    }

    pub(crate) fn finish(self) -> Result<(), CkksError> {
        if self.pos != self.data.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(())
    }
}

impl Ciphertext {
    /// Serializes the ciphertext (fresh secret-key ciphertexts at half size).
    pub fn to_bytes(&self, params: &CkksParams) -> Result<Vec<u8>, CkksError> {
        self.check(params)?;
        let mut w = Writer::new(params, Kind::Ciphertext);
        w.bytes(&[self.size() as u8, (self.level() + 1) as u8]);
        w.bytes(&self.scale.to_le_bytes());
        match self.seed {
            Some(seed) if self.size() == 2 => {
                w.bytes(&[1]);
                w.bytes(&seed);
                if let Some(c0) = self.c.first() {
                    w.poly(params, c0);
                }
            }
            _ => {
                w.bytes(&[0]);
                for c in &self.c {
                    w.poly(params, c);
                }
            }
        }
        Ok(w.finish())
    }

    /// Parses and validates a serialized ciphertext.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::Ciphertext)?;
        let size = usize::from(r.u8()?);
        let q_len = usize::from(r.u8()?);
        if !(2..=3).contains(&size) {
            return Err(bad("ciphertext must have 2 or 3 components"));
        }
        if q_len == 0 || q_len > params.q().len() {
            return Err(bad("invalid level"));
        }
        let scale = f64::from_le_bytes(r.array::<8>()?);
        let max_log_scale = params.log_qp() + 64.0;
        if !scale.is_finite() || scale < 1.0 || scale.log2() > max_log_scale {
            return Err(bad("invalid scale"));
        }
        let (c, seed) = match r.u8()? {
            0 => {
                let c = (0..size)
                    .map(|_| r.poly(params, q_len, 0))
                    .collect::<Result<Vec<_>, _>>()?;
                (c, None)
            }
            1 if size == 2 => {
                let seed = r.array::<32>()?;
                let c0 = r.poly(params, q_len, 0)?;
                let c1 = uniform_from_seed(params.ring(), &seed, q_len, 0);
                (vec![c0, c1], Some(seed))
            }
            _ => return Err(bad("invalid flags")),
        };
        r.finish()?;
        Ok(Ciphertext {
            c,
            scale,
            seed,
            fingerprint: *params.fingerprint(),
        })
    }
}

impl PublicKey {
    /// Serializes the public key (`a` as its seed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(&self.params, Kind::PublicKey);
        w.bytes(&self.seed);
        w.poly(&self.params, &self.b);
        w.finish()
    }

    /// Parses and validates a serialized public key.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::PublicKey)?;
        let seed = r.array::<32>()?;
        // Over the special primes too (earlier public keys spanned the
        // ciphertext primes only: their `b` is too short and is refused).
        let (q_len, p_len) = (params.q().len(), params.p().len());
        let b = r.poly(params, q_len, p_len)?;
        r.finish()?;
        Ok(Self {
            a: uniform_from_seed(params.ring(), &seed, q_len, p_len),
            b,
            seed,
            params: params.clone(),
        })
    }
}

impl SecretKey {
    /// Serializes the secret key. The returned buffer is zeroized on drop;
    /// store it encrypted or in a key service.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(&self.params, Kind::SecretKey);
        w.poly(&self.params, &self.poly);
        Zeroizing::new(w.finish())
    }

    /// Parses and validates a serialized secret key.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::SecretKey)?;
        let ring = params.ring();
        let poly = r.poly(params, ring.q_len(), ring.p_len())?;
        r.finish()?;
        SecretKey::from_poly(params, poly)
    }
}

fn write_switching_key(w: &mut Writer, params: &CkksParams, k: &SwitchingKey) {
    w.bytes(&[k.b.len() as u8]);
    w.bytes(&k.seed);
    for b in &k.b {
        w.poly(params, b);
    }
}

fn read_switching_key(r: &mut Reader<'_>, params: &CkksParams) -> Result<SwitchingKey, CkksError> {
    let dnum = usize::from(r.u8()?);
    if dnum != params.dnum() || dnum == 0 {
        return Err(bad("switching key digit count"));
    }
    let seed = r.array::<32>()?;
    let ring = params.ring();
    let b = (0..dnum)
        .map(|_| r.poly(params, ring.q_len(), ring.p_len()))
        .collect::<Result<Vec<_>, _>>()?;
    SwitchingKey::from_parts(params, b, seed)
}

impl RelinKey {
    /// Serializes the relinearization key (`a_j` as one seed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(&self.params, Kind::RelinKey);
        write_switching_key(&mut w, &self.params, &self.key);
        w.finish()
    }

    /// Parses and validates a serialized relinearization key.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::RelinKey)?;
        let key = read_switching_key(&mut r, params)?;
        r.finish()?;
        Ok(Self {
            key,
            params: params.clone(),
        })
    }
}

impl GaloisKeys {
    /// Serializes the Galois keys.
    pub fn to_bytes(&self, params: &CkksParams) -> Vec<u8> {
        let mut w = Writer::new(params, Kind::GaloisKeys);
        w.bytes(&(self.keys.len() as u32).to_le_bytes());
        for (g, k) in &self.keys {
            w.bytes(&g.to_le_bytes());
            write_switching_key(&mut w, params, k);
        }
        w.finish()
    }

    /// Parses and validates serialized Galois keys.
    pub fn from_bytes(params: &CkksParams, data: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(params, data, Kind::GaloisKeys)?;
        let count = u32::from_le_bytes(r.array::<4>()?) as usize;
        // Each key needs at least its header; bound the count by the input size.
        if count > data.len() / 41 {
            return Err(bad("Galois key count exceeds the input"));
        }
        let two_n = 2 * params.n() as u64;
        let mut keys = BTreeMap::new();
        for _ in 0..count {
            let g = u64::from_le_bytes(r.array::<8>()?);
            if g % 2 == 0 || g >= two_n || g == 1 {
                return Err(bad("invalid Galois element"));
            }
            let k = read_switching_key(&mut r, params)?;
            if keys.insert(g, k).is_some() {
                return Err(bad("duplicate Galois element"));
            }
        }
        r.finish()?;
        Ok(Self { keys })
    }
}
