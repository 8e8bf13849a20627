//! Canonical binary encodings of the proof objects, for messages between
//! parties (the JSON form with hex hashes is for files people hand around).
//!
//! Every encoding starts with [`PROOF_VERSION`] and a type tag, so one kind
//! of proof is never read as another; the fields follow in declaration
//! order with the primitives of the entry encoding (big-endian integers,
//! `u32`-prefixed byte strings and counts). Decoding is strict — short
//! input, trailing bytes, another version or tag, counts over the limits
//! below are refused with a [`DecodeError`] before anything is allocated —
//! so a decoded value has exactly one encoding and never panics on
//! hostile bytes. Decoding does not verify: call the proof's `verify`.

use crate::codec::{DecodeError, Reader, Writer};
use crate::entry::{AggregateInput, MAX_ENTRY_BYTES};
use crate::merkle::Hash;
use crate::proof::{ConsistencyProof, CountedProof, EntryProof, InclusionProof};
use crate::sth::SignedTreeHead;

/// Version byte of the proof encodings.
pub const PROOF_VERSION: u8 = 1;

/// Most hashes in an inclusion path (a tree of `u64` size is at most 64
/// levels deep).
pub const MAX_INCLUSION_PATH: usize = 64;
/// Most hashes in a consistency path (at most two per level).
pub const MAX_CONSISTENCY_PATH: usize = 128;
/// Most inputs in an encoded aggregate-input list.
pub const MAX_INPUTS: usize = 1 << 20;
/// Most proofs in an encoded list of consistency proofs (the decoding
/// bound; the key service keeps its own, smaller, policy limit).
pub const MAX_CONSISTENCY_LIST: usize = 64;
/// Largest encoding of one proof (two entries and their paths).
pub const MAX_PROOF_BYTES: usize = 2 * MAX_ENTRY_BYTES + (1 << 16);
/// Largest encoding of an input list.
pub const MAX_INPUTS_BYTES: usize = 256 << 20;

const TAG_INCLUSION: u8 = 1;
const TAG_CONSISTENCY: u8 = 2;
const TAG_ENTRY: u8 = 3;
const TAG_COUNTED: u8 = 4;
const TAG_INPUTS: u8 = 5;
const TAG_CONSISTENCY_LIST: u8 = 6;

fn tag_name(tag: u8) -> &'static str {
    match tag {
        TAG_INCLUSION => "inclusion proof",
        TAG_CONSISTENCY => "consistency proof",
        TAG_ENTRY => "entry proof",
        TAG_COUNTED => "counted proof",
        TAG_INPUTS => "aggregate-input list",
        TAG_CONSISTENCY_LIST => "consistency-proof list",
        _ => "unknown",
    }
}

fn header(tag: u8) -> Writer {
    let mut w = Writer::default();
    w.u8(PROOF_VERSION);
    w.u8(tag);
    w
}

/// Opens an encoding: size limit, version and tag.
fn open(bytes: &[u8], tag: u8, max: usize) -> Result<Reader<'_>, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let mut r = Reader::new(bytes);
    let version = r.u8("version")?;
    if version != PROOF_VERSION {
        return Err(DecodeError::Version(version));
    }
    let found = r.u8("type")?;
    if found != tag {
        return Err(DecodeError::WrongType {
            expected: tag_name(tag),
            found,
        });
    }
    Ok(r)
}

/// The encoding of one value: header, then what `write` appends.
fn encoded(tag: u8, write: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = header(tag);
    write(&mut w);
    w.buf
}

/// Decodes one value: limit, header, what `read` takes, and nothing after.
fn decoded<T>(
    bytes: &[u8],
    tag: u8,
    max: usize,
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = open(bytes, tag, max)?;
    let v = read(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// A counted list of at most `max` elements of at least `min_size` bytes.
fn read_list<T>(
    r: &mut Reader<'_>,
    min_size: usize,
    max: usize,
    field: &'static str,
    mut read_one: impl FnMut(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let n = r.count(min_size, field)?;
    if n > max {
        return Err(DecodeError::TooMany(field, n));
    }
    (0..n).map(|_| read_one(r)).collect()
}

fn write_hashes(w: &mut Writer, path: &[Hash]) {
    w.len(path.len());
    for h in path {
        w.hash(h);
    }
}

fn read_hashes(
    r: &mut Reader<'_>,
    max: usize,
    field: &'static str,
) -> Result<Vec<Hash>, DecodeError> {
    read_list(r, 32, max, field, |r| r.hash(field))
}

fn write_sth(w: &mut Writer, s: &SignedTreeHead) {
    w.hash(&s.log_id);
    w.u64(s.tree_size);
    w.hash(&s.root_hash);
    w.u64(s.timestamp_ms);
    w.buf.extend_from_slice(&s.signature);
}

fn read_sth(r: &mut Reader<'_>) -> Result<SignedTreeHead, DecodeError> {
    let log_id = r.hash("sth.log_id")?;
    let tree_size = r.u64("sth.tree_size")?;
    let root_hash = r.hash("sth.root_hash")?;
    let timestamp_ms = r.u64("sth.timestamp_ms")?;
    let mut signature = [0u8; 64];
    signature.copy_from_slice(r.take(64, "sth.signature")?);
    Ok(SignedTreeHead {
        log_id,
        tree_size,
        root_hash,
        timestamp_ms,
        signature,
    })
}

fn write_inclusion(w: &mut Writer, p: &InclusionProof) {
    w.u64(p.leaf_index);
    w.u64(p.tree_size);
    write_hashes(w, &p.path);
}

fn read_inclusion(r: &mut Reader<'_>) -> Result<InclusionProof, DecodeError> {
    Ok(InclusionProof {
        leaf_index: r.u64("inclusion.leaf_index")?,
        tree_size: r.u64("inclusion.tree_size")?,
        path: read_hashes(r, MAX_INCLUSION_PATH, "inclusion.path")?,
    })
}

fn write_consistency(w: &mut Writer, p: &ConsistencyProof) {
    w.u64(p.old_size);
    w.u64(p.new_size);
    write_hashes(w, &p.path);
}

fn read_consistency(r: &mut Reader<'_>) -> Result<ConsistencyProof, DecodeError> {
    Ok(ConsistencyProof {
        old_size: r.u64("consistency.old_size")?,
        new_size: r.u64("consistency.new_size")?,
        path: read_hashes(r, MAX_CONSISTENCY_PATH, "consistency.path")?,
    })
}

fn read_entry_bytes(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u8>, DecodeError> {
    let b = r.bytes(field)?;
    if b.len() > MAX_ENTRY_BYTES {
        return Err(DecodeError::TooLarge(b.len()));
    }
    Ok(b.to_vec())
}

fn write_input(w: &mut Writer, i: &AggregateInput) {
    w.u64(i.update_index);
    w.str(&i.client_id);
    w.hash(&i.ciphertext_hash);
}

fn read_input(r: &mut Reader<'_>) -> Result<AggregateInput, DecodeError> {
    Ok(AggregateInput {
        update_index: r.u64("input.update_index")?,
        client_id: r.string("input.client_id")?,
        ciphertext_hash: r.hash("input.ciphertext_hash")?,
    })
}

/// Bytes of one encoded input at least: index, length prefix, hash.
const MIN_INPUT_BYTES: usize = 8 + 4 + 32;

impl InclusionProof {
    /// Canonical bytes (see the module docs of `proof_encoding`).
    pub fn encode(&self) -> Vec<u8> {
        encoded(TAG_INCLUSION, |w| write_inclusion(w, self))
    }

    /// Strict inverse of [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decoded(bytes, TAG_INCLUSION, MAX_PROOF_BYTES, read_inclusion)
    }
}

impl ConsistencyProof {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        encoded(TAG_CONSISTENCY, |w| write_consistency(w, self))
    }

    /// Strict inverse of [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decoded(bytes, TAG_CONSISTENCY, MAX_PROOF_BYTES, read_consistency)
    }

    /// Canonical bytes of a list of proofs (at most
    /// [`MAX_CONSISTENCY_LIST`]; more are refused by the decoder).
    pub fn encode_list(proofs: &[ConsistencyProof]) -> Vec<u8> {
        encoded(TAG_CONSISTENCY_LIST, |w| {
            w.len(proofs.len());
            for p in proofs {
                write_consistency(w, p);
            }
        })
    }

    /// Strict inverse of [`encode_list`](Self::encode_list).
    pub fn decode_list(bytes: &[u8]) -> Result<Vec<Self>, DecodeError> {
        decoded(bytes, TAG_CONSISTENCY_LIST, MAX_PROOF_BYTES, |r| {
            read_list(r, 20, MAX_CONSISTENCY_LIST, "proofs", read_consistency)
        })
    }
}

impl EntryProof {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        encoded(TAG_ENTRY, |w| {
            write_sth(w, &self.sth);
            w.bytes(&self.entry);
            write_inclusion(w, &self.inclusion);
        })
    }

    /// Strict inverse of [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decoded(bytes, TAG_ENTRY, MAX_PROOF_BYTES, |r| {
            Ok(Self {
                sth: read_sth(r)?,
                entry: read_entry_bytes(r, "entry")?,
                inclusion: read_inclusion(r)?,
            })
        })
    }
}

impl CountedProof {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        encoded(TAG_COUNTED, |w| {
            write_sth(w, &self.sth);
            w.bytes(&self.update_entry);
            write_inclusion(w, &self.update_inclusion);
            w.bytes(&self.aggregate_entry);
            write_inclusion(w, &self.aggregate_inclusion);
            write_input(w, &self.input);
            w.u64(self.input_position);
            write_hashes(w, &self.input_path);
        })
    }

    /// Strict inverse of [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decoded(bytes, TAG_COUNTED, MAX_PROOF_BYTES, |r| {
            Ok(Self {
                sth: read_sth(r)?,
                update_entry: read_entry_bytes(r, "update_entry")?,
                update_inclusion: read_inclusion(r)?,
                aggregate_entry: read_entry_bytes(r, "aggregate_entry")?,
                aggregate_inclusion: read_inclusion(r)?,
                input: read_input(r)?,
                input_position: r.u64("input_position")?,
                input_path: read_hashes(r, MAX_INCLUSION_PATH, "input_path")?,
            })
        })
    }
}

impl AggregateInput {
    /// Canonical bytes of an aggregate's input list, in order (at most
    /// [`MAX_INPUTS`]; more are refused by the decoder).
    pub fn encode_list(inputs: &[AggregateInput]) -> Vec<u8> {
        encoded(TAG_INPUTS, |w| {
            w.len(inputs.len());
            for i in inputs {
                write_input(w, i);
            }
        })
    }

    /// Strict inverse of [`encode_list`](Self::encode_list).
    pub fn decode_list(bytes: &[u8]) -> Result<Vec<Self>, DecodeError> {
        decoded(bytes, TAG_INPUTS, MAX_INPUTS_BYTES, |r| {
            read_list(r, MIN_INPUT_BYTES, MAX_INPUTS, "inputs", read_input)
        })
    }
}
