//! Primitives of the canonical binary encoding (see [`crate::entry`]), and
//! serde helpers that write hashes and byte strings as lowercase hex in JSON.
//!
//! All integers are big-endian and fixed width; strings and byte strings
//! carry a `u32` length; `f64` is its IEEE-754 bit pattern as a `u64`, so
//! every value (including the sign of zero) round-trips exactly. The reader
//! is strict: it rejects short input, trailing bytes, invalid UTF-8 and
//! element counts that cannot fit in what is left, so a decoded value has
//! exactly one encoding.

use crate::merkle::Hash;
use thiserror::Error;

/// Why bytes are not a valid canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Input ended inside a field.
    #[error("input ends inside field `{0}`")]
    Truncated(&'static str),
    /// Bytes left after the value.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    /// A string is not UTF-8.
    #[error("field `{0}` is not valid UTF-8")]
    Utf8(&'static str),
    /// Unsupported format version.
    #[error("unsupported encoding version {0}")]
    Version(u8),
    /// Unknown entry kind tag.
    #[error("unknown entry kind tag {0}")]
    UnknownKind(u16),
    /// Map keys out of order or repeated (not canonical).
    #[error("keys of `{0}` are not strictly increasing")]
    Unsorted(&'static str),
    /// Encoded value too large.
    #[error("encoding is {0} bytes, over the limit")]
    TooLarge(usize),
    /// The bytes encode another kind of object.
    #[error("expected an encoded {expected}, found type tag {found}")]
    WrongType {
        /// What the caller asked for.
        expected: &'static str,
        /// The tag the bytes carry.
        found: u8,
    },
    /// A list is longer than its limit.
    #[error("`{0}` has {1} elements, over the limit")]
    TooMany(&'static str, usize),
}

/// Appends canonical fields to a byte buffer. Public so that the payloads
/// of custom entries (a federation's own records) use the same strict
/// encoding as the entries around them.
#[derive(Debug, Default)]
pub struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// A big-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// A big-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// A big-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// An `f64` as its IEEE-754 bits.
    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    /// A 32-byte hash.
    pub fn hash(&mut self, h: &Hash) {
        self.buf.extend_from_slice(h);
    }
    /// Length-prefixed bytes. Lengths over `u32::MAX` are clamped and the
    /// result is then rejected by the size limit on entries.
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// A `u32` length or count (clamped; see [`bytes`](Self::bytes)).
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// Reads canonical fields from a byte slice, strictly: every read names its
/// field for the error, and [`finish`](Self::finish) refuses trailing bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.data.len() {
            return Err(DecodeError::Truncated(field));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }
    /// A big-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    /// A big-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    /// A big-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    /// An `f64` from its bits.
    pub fn f64(&mut self, field: &'static str) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64(field)?))
    }
    /// A 32-byte hash.
    pub fn hash(&mut self, field: &'static str) -> Result<Hash, DecodeError> {
        self.array(field)
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(field)? as usize;
        self.take(n, field)
    }
    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(field)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8(field))
    }
    /// An element count, bounded by the bytes left (each element takes at
    /// least `min_size` bytes), so hostile counts cannot force allocations.
    pub fn count(&mut self, min_size: usize, field: &'static str) -> Result<usize, DecodeError> {
        let n = self.u32(field)? as usize;
        if n.saturating_mul(min_size.max(1)) > self.data.len() {
            return Err(DecodeError::Truncated(field));
        }
        Ok(n)
    }
    /// Ok only when every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.data.len()))
        }
    }
}

/// Parses 64 hex characters into a hash.
pub fn parse_hash(s: &str) -> Option<Hash> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut h).ok()?;
    Some(h)
}

/// Serde helper: a [`Hash`](crate::merkle::Hash) as a 64-character hex string.
pub mod hex_hash {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as hex.
    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    /// Deserializes from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_hash(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
    }
}

/// Serde helper: a list of [`Hash`](crate::merkle::Hash)es as hex strings.
pub mod hex_hashes {
    use super::Hash;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as a list of hex strings.
    pub fn serialize<S: Serializer>(v: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for h in v {
            seq.serialize_element(&hex::encode(h))?;
        }
        seq.end()
    }

    /// Deserializes from a list of hex strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| {
                super::parse_hash(s)
                    .ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
            })
            .collect()
    }
}

/// Serde helper: bytes as a hex string.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as hex.
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    /// Deserializes from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s.trim()).map_err(serde::de::Error::custom)
    }
}

/// Serde helper: a 64-byte signature as hex.
pub mod hex_sig {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as hex.
    pub fn serialize<S: Serializer>(b: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    /// Deserializes from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(s.trim(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}
