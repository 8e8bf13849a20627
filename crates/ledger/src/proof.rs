//! Proof objects a third party verifies offline with only the log's public
//! key: [`InclusionProof`], [`ConsistencyProof`], [`EntryProof`] (an entry is
//! in the log) and [`CountedProof`] ("my update was counted"). All are
//! serde types (JSON with hex hashes) so they can be handed around as files.

use crate::codec::{hex_bytes, hex_hashes, DecodeError};
use crate::entry::{AggregateComputed, AggregateInput, Entry, EntryBody, UpdateReceived};
use crate::merkle::{self, Hash, ProofError};
use crate::sth::{PublicKey, SignedTreeHead, SthError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a proof object does not verify.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ProofFailure {
    /// The tree head's signature (or log id) is wrong.
    #[error("signed tree head: {0}")]
    Head(#[from] SthError),
    /// An entry in the proof does not decode.
    #[error("{0} entry does not decode: {1}")]
    Decode(&'static str, DecodeError),
    /// An entry has the wrong kind.
    #[error("{0} entry has the wrong kind ({1})")]
    WrongKind(&'static str, &'static str),
    /// The proof's position or size disagrees with the entry or the head.
    #[error("{0}: {1}")]
    Mismatch(&'static str, String),
    /// A Merkle path does not verify.
    #[error("{0} Merkle path: {1}")]
    Path(&'static str, ProofError),
}

/// RFC 9162 inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// Leaf index.
    pub leaf_index: u64,
    /// Tree size the path is for.
    pub tree_size: u64,
    /// Sibling hashes, bottom up.
    #[serde(with = "hex_hashes")]
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// Verifies that `leaf` is at `leaf_index` in the tree with `root`.
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> Result<(), ProofError> {
        merkle::verify_inclusion(self.leaf_index, self.tree_size, leaf, &self.path, root)
    }
}

/// RFC 9162 consistency proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// Older tree size.
    pub old_size: u64,
    /// Newer tree size.
    pub new_size: u64,
    /// Proof hashes.
    #[serde(with = "hex_hashes")]
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// Verifies that the tree with `new_root` extends the one with `old_root`.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), ProofError> {
        merkle::verify_consistency(self.old_size, self.new_size, old_root, new_root, &self.path)
    }
}

/// An entry, its inclusion path, and the signed head the path leads to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryProof {
    /// Signed head.
    pub sth: SignedTreeHead,
    /// Canonical entry bytes.
    #[serde(with = "hex_bytes")]
    pub entry: Vec<u8>,
    /// Path from the entry's leaf to `sth.root_hash`.
    pub inclusion: InclusionProof,
}

fn check_in_head(
    what: &'static str,
    bytes: &[u8],
    proof: &InclusionProof,
    sth: &SignedTreeHead,
) -> Result<Entry, ProofFailure> {
    let e = Entry::decode(bytes).map_err(|d| ProofFailure::Decode(what, d))?;
    if proof.tree_size != sth.tree_size {
        return Err(ProofFailure::Mismatch(
            what,
            format!(
                "path is for size {}, head is size {}",
                proof.tree_size, sth.tree_size
            ),
        ));
    }
    if proof.leaf_index != e.index {
        return Err(ProofFailure::Mismatch(
            what,
            format!(
                "path is for index {}, entry says {}",
                proof.leaf_index, e.index
            ),
        ));
    }
    proof
        .verify(&merkle::leaf_hash(bytes), &sth.root_hash)
        .map_err(|p| ProofFailure::Path(what, p))?;
    Ok(e)
}

impl EntryProof {
    /// Checks the head's signature (and log id, if given) and the path;
    /// returns the decoded entry.
    pub fn verify(&self, key: &PublicKey, log_id: Option<&Hash>) -> Result<Entry, ProofFailure> {
        key.verify_head(&self.sth, log_id)?;
        check_in_head("the", &self.entry, &self.inclusion, &self.sth)
    }
}

/// "My update was counted": the client's `UpdateReceived` entry and the
/// `AggregateComputed` entry it was summed into, both proven in the log
/// under one signed head, plus the update's membership path in the
/// aggregate's input tree (`inputs_root`, O(log k) for k inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountedProof {
    /// Signed head both paths lead to.
    pub sth: SignedTreeHead,
    /// Canonical bytes of the update entry.
    #[serde(with = "hex_bytes")]
    pub update_entry: Vec<u8>,
    /// Its inclusion path.
    pub update_inclusion: InclusionProof,
    /// Canonical bytes of the aggregate entry.
    #[serde(with = "hex_bytes")]
    pub aggregate_entry: Vec<u8>,
    /// Its inclusion path.
    pub aggregate_inclusion: InclusionProof,
    /// The aggregate input naming the update.
    pub input: AggregateInput,
    /// Position of `input` in the aggregate's input list.
    pub input_position: u64,
    /// Path from `input` to the aggregate's `inputs_root`.
    #[serde(with = "hex_hashes")]
    pub input_path: Vec<Hash>,
}

/// What a verified [`CountedProof`] establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counted {
    /// Client id.
    pub client_id: String,
    /// Round.
    pub round: u64,
    /// Index of the update entry.
    pub update_index: u64,
    /// Hash of the client's ciphertext.
    #[serde(with = "crate::codec::hex_hash")]
    pub ciphertext_hash: Hash,
    /// Index of the aggregate entry.
    pub aggregate_index: u64,
    /// Hash of the encrypted sum.
    #[serde(with = "crate::codec::hex_hash")]
    pub aggregate_hash: Hash,
    /// Number of inputs in the aggregate.
    pub input_count: u64,
    /// Size of the signed tree both are in.
    pub tree_size: u64,
}

impl CountedProof {
    /// Verifies everything offline: the head's signature (and log id, if
    /// given), both inclusion paths, that the input names exactly this
    /// update, and its membership in the aggregate's inputs.
    pub fn verify(&self, key: &PublicKey, log_id: Option<&Hash>) -> Result<Counted, ProofFailure> {
        key.verify_head(&self.sth, log_id)?;
        let upd = check_in_head(
            "update",
            &self.update_entry,
            &self.update_inclusion,
            &self.sth,
        )?;
        let agg = check_in_head(
            "aggregate",
            &self.aggregate_entry,
            &self.aggregate_inclusion,
            &self.sth,
        )?;
        let EntryBody::UpdateReceived(UpdateReceived {
            client_id,
            ciphertext_hash,
        }) = &upd.body
        else {
            return Err(ProofFailure::WrongKind("update", upd.body.kind_name()));
        };
        let EntryBody::AggregateComputed(AggregateComputed {
            aggregate_hash,
            input_count,
            inputs_root,
        }) = &agg.body
        else {
            return Err(ProofFailure::WrongKind("aggregate", agg.body.kind_name()));
        };
        if agg.round != upd.round {
            return Err(ProofFailure::Mismatch(
                "aggregate",
                format!(
                    "round {} is not the update's round {}",
                    agg.round, upd.round
                ),
            ));
        }
        if agg.index <= upd.index {
            return Err(ProofFailure::Mismatch(
                "aggregate",
                "entry precedes the update".into(),
            ));
        }
        if self.input.update_index != upd.index
            || &self.input.client_id != client_id
            || &self.input.ciphertext_hash != ciphertext_hash
        {
            return Err(ProofFailure::Mismatch(
                "input",
                "does not name this update (index, client or hash differ)".into(),
            ));
        }
        merkle::verify_inclusion(
            self.input_position,
            *input_count,
            &self.input.leaf_hash(),
            &self.input_path,
            inputs_root,
        )
        .map_err(|p| ProofFailure::Path("aggregate input", p))?;
        Ok(Counted {
            client_id: client_id.clone(),
            round: upd.round,
            update_index: upd.index,
            ciphertext_hash: *ciphertext_hash,
            aggregate_index: agg.index,
            aggregate_hash: *aggregate_hash,
            input_count: *input_count,
            tree_size: self.sth.tree_size,
        })
    }
}

/// Why a proof file was not accepted.
#[derive(Debug, Error)]
pub enum ProofFileError {
    /// Its `type` is neither `entry_proof` nor `counted_proof`.
    #[error("unknown proof type {0:?}")]
    UnknownType(String),
    /// It does not parse as a proof of its type.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// It parses but does not verify.
    #[error("proof does NOT verify: {0}")]
    Failed(#[from] ProofFailure),
}

/// Verifies a proof file (its JSON, `"type"` `entry_proof` or
/// `counted_proof`) with the log's public key (and its log id when
/// pinned). Returns the type and what it establishes, as JSON: `{"entry",
/// "tree_size"}` or `{"counted"}`.
pub fn verify_proof_file(
    v: serde_json::Value,
    key: &PublicKey,
    log_id: Option<&Hash>,
) -> Result<(String, serde_json::Value), ProofFileError> {
    let kind = v
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_owned();
    let malformed = |e: serde_json::Error| ProofFileError::Malformed(e.to_string());
    let detail = match kind.as_str() {
        "entry_proof" => {
            let p: EntryProof = serde_json::from_value(v).map_err(malformed)?;
            let e = p.verify(key, log_id)?;
            serde_json::json!({ "entry": e, "tree_size": p.sth.tree_size })
        }
        "counted_proof" => {
            let p: CountedProof = serde_json::from_value(v).map_err(malformed)?;
            serde_json::json!({ "counted": p.verify(key, log_id)? })
        }
        _ => return Err(ProofFileError::UnknownType(kind)),
    };
    Ok((kind, detail))
}
