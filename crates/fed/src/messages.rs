//! The protocol's messages as the parties handle them.
//!
//! These are the domain types the coordinator, the clients and the key
//! service take and return. Their protobuf form (`proto/fed.proto`) lives at
//! the transport edge only: `transport` converts every message on the way
//! in, where anything malformed — a proof that does not decode, a digest of
//! the wrong length, a task of no known kind, a quantization out of range —
//! is refused with a typed error before a party sees it. What the types
//! cannot say (the right federation, round, epoch, party; proofs that
//! verify) the parties check.

use crate::config::LocalTraining;
use crate::quant::Quantizer;
use cipherflow_ckks::multiparty::Crs;
use cipherflow_ledger::{AggregateInput, ConsistencyProof, CountedProof, EntryProof, PublicKey};
use zeroize::Zeroizing;

/// A client announces itself.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinRequest {
    /// The federation's name.
    pub federation: String,
    /// Local training examples (weighted FedAvg without DP).
    pub num_examples: u64,
}

/// The coordinator's answer to a join.
#[derive(Clone, Debug)]
pub struct JoinReply {
    /// The federation's name.
    pub federation: String,
    /// `FederationConfig::digest` of the coordinator's configuration.
    pub config_digest: [u8; 32],
    /// The key epoch's common reference string.
    pub crs: Crs,
    /// The key epoch.
    pub epoch: u64,
    /// The caller's party id.
    pub party_id: u64,
    /// The audit ledger's signing key.
    pub ledger_public_key: PublicKey,
    /// The audit ledger's log id.
    pub ledger_log_id: [u8; 32],
}

/// A Shamir share of one client's key share, sealed for its recipient
/// ([`crate::envelope`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedShare {
    /// The dealer.
    pub from_party: u64,
    /// The recipient.
    pub to_party: u64,
    /// XChaCha20-Poly1305 nonce.
    pub nonce: [u8; 24],
    /// The sealed share.
    pub ciphertext: Vec<u8>,
}

/// A key holder's dealing: one sealed share for every other party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetupPost {
    /// The federation's name.
    pub federation: String,
    /// The key epoch.
    pub epoch: u64,
    /// The sealed shares.
    pub shares: Vec<SealedShare>,
}

/// A poll of the key setup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetupQuery {
    /// The federation's name.
    pub federation: String,
    /// The key epoch.
    pub epoch: u64,
}

/// The key setup as the coordinator holds it for the caller.
#[derive(Clone, Debug)]
pub struct KeySetupBundle {
    /// Whether every key holder has dealt.
    pub complete: bool,
    /// Once complete: one sealed share from every dealer to the caller.
    pub shares: Vec<SealedShare>,
    /// Once complete: the proof of the ledger's key-setup entry (CRS,
    /// epoch, threshold, parties).
    pub key_setup_proof: Option<EntryProof>,
}

/// A long poll for the next task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRequest {
    /// The federation's name.
    pub federation: String,
    /// Wait up to this long for something to do.
    pub wait_ms: u32,
    /// Size of the last ledger head the caller verified (0: none).
    pub known_tree_size: u64,
}

/// A key holder as a key-setup task lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// The client's id.
    pub client_id: String,
    /// Its party id.
    pub party_id: u64,
    /// Its X25519 key-agreement public key.
    pub kx_public: [u8; 32],
}

/// Deal a key share to the other key holders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetupTask {
    /// The key epoch.
    pub epoch: u64,
    /// Shares needed to decrypt.
    pub threshold: u32,
    /// The key holders.
    pub parties: Vec<Party>,
}

/// Train on the global model and upload the encrypted update.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTask {
    /// The round.
    pub round: u64,
    /// The global model, parameters in `named_params` order.
    pub model: Vec<f32>,
    /// `training::model_hash` of the model's encoding.
    pub model_hash: [u8; 32],
    /// Local training settings.
    pub training: LocalTraining,
    /// How the update becomes integers, and its noise.
    pub quantization: Quantizer,
    /// Ciphertexts in an update.
    pub chunks: u32,
    /// FedProx proximal coefficient μ (0: plain FedAvg).
    pub prox_mu: f64,
    /// Under a privacy schedule: the noise multiplier `z` of every round
    /// opened so far, this one last (empty without a schedule).
    pub noise_history: Vec<f64>,
}

/// Check a round's aggregate and (in phase two) send a decryption share.
#[derive(Clone, Debug)]
pub struct DecryptTask {
    /// The round.
    pub round: u64,
    /// The decryption attempt within the round.
    pub attempt: u32,
    /// Sorted party ids of the decryptors; the caller is one of them.
    pub active: Vec<u64>,
    /// Proof of the round's AggregateComputed ledger entry.
    pub aggregate_proof: EntryProof,
    /// The aggregate's inputs (their Merkle root is in the entry).
    pub inputs: Vec<AggregateInput>,
    /// From the caller's last seen ledger head, if it is older.
    pub consistency_proof: Option<ConsistencyProof>,
    /// Ciphertexts in an update.
    pub chunks: u32,
    /// Phase one of two: check everything and answer ready, no share.
    pub prepare: bool,
}

/// The federation finished.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedTask {
    /// Rounds run.
    pub rounds: u64,
    /// The final global model.
    pub model: Vec<f32>,
    /// Why it finished.
    pub reason: String,
}

/// What a client should do now.
#[derive(Clone, Debug)]
pub enum Task {
    /// Nothing now: ask again.
    Wait {
        /// After this many milliseconds.
        retry_ms: u32,
        /// Why.
        reason: String,
    },
    /// Deal a key share.
    KeySetup(KeySetupTask),
    /// Train and upload.
    Train(TrainTask),
    /// Decrypt a round's aggregate.
    Decrypt(DecryptTask),
    /// The federation finished.
    Finished(FinishedTask),
}

/// One ciphertext of an update; a client sends `total` of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadChunk {
    /// The federation's name.
    pub federation: String,
    /// The round.
    pub round: u64,
    /// This chunk's index.
    pub index: u32,
    /// Chunks in the update.
    pub total: u32,
    /// Examples behind the update (1 under DP).
    pub num_examples: u64,
    /// The ciphertext (`SharedCiphertext` encoding).
    pub ciphertext: Vec<u8>,
}

/// The coordinator's receipt for an update.
#[derive(Clone, Debug)]
pub struct UploadReceipt {
    /// The ledger index of the UpdateReceived entry.
    pub ledger_index: u64,
    /// Its proof (absent only for a duplicate whose entry is not yet known).
    pub entry_proof: Option<EntryProof>,
    /// Whether the coordinator already held this update.
    pub duplicate: bool,
}

/// A regional aggregator asks the coordinator what to collect.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionPoll {
    /// The federation's name.
    pub federation: String,
}

/// The coordinator's answer to a [`RegionPoll`].
#[derive(Clone, Debug, PartialEq)]
pub struct RegionStatus {
    /// The key epoch's CRS and number, once the key setup is done.
    pub keys: Option<(Crs, u64)>,
    /// The round the region collects now, if any.
    pub round: Option<RegionRound>,
    /// Why the federation finished, once it has.
    pub finished: Option<String>,
}

/// The coordinator's receipt for a [`RegionalSum`].
#[derive(Clone, Debug)]
pub struct RegionalSumReceipt {
    /// The proof of the coordinator's region-sum record.
    pub entry_proof: EntryProof,
}

/// The coordinator tells a regional aggregator which round collects and
/// which of its clients were sampled.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionRound {
    /// The federation's name.
    pub federation: String,
    /// The round.
    pub round: u64,
    /// Rounds opened so far, this one included (its DP settings').
    pub cumulative: u64,
    /// The region's sampled clients.
    pub sampled: Vec<String>,
    /// The round's weight reference (for the region's state record).
    pub weight_reference: f64,
    /// The round's noise multiplier under a privacy schedule.
    pub noise_multiplier: Option<f64>,
}

/// A regional aggregator's sum of its clients' updates for one round, and
/// the proof that its ledger committed the contributor set and the sum.
#[derive(Clone, Debug)]
pub struct RegionalSum {
    /// The federation's name.
    pub federation: String,
    /// The round.
    pub round: u64,
    /// The sum, one encoded ciphertext per chunk.
    pub chunks: Vec<Vec<u8>>,
    /// The region ledger's AggregateComputed entry for the round (the
    /// sum's SHA-256, the contributor set's root), with its signed head.
    pub aggregate_proof: EntryProof,
    /// The contributors (each client's update hash and its index in the
    /// region's ledger), whose root the entry commits.
    pub inputs: Vec<AggregateInput>,
    /// Each contributor's number of examples, in the order of `inputs`.
    pub examples: Vec<u64>,
}

/// A part of a decryption share (a contiguous range of chunks), or a
/// ready answer to a prepare task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShareChunk {
    /// The federation's name.
    pub federation: String,
    /// The round.
    pub round: u64,
    /// The decryption attempt.
    pub attempt: u32,
    /// This part's index.
    pub index: u32,
    /// Parts in the share.
    pub total: u32,
    /// The share's encoding (empty when `ready`).
    pub share: Vec<u8>,
    /// Ready to decrypt for the task's active set (phase one).
    pub ready: bool,
}

/// The coordinator's answer to a decryption share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareReceipt {
    /// Accepted.
    pub accepted: bool,
    /// Already held.
    pub duplicate: bool,
}

/// Ask for the proof that the caller's update of a round was counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofRequest {
    /// The federation's name.
    pub federation: String,
    /// The round.
    pub round: u64,
}

/// The caller's update entry, the aggregate entry and the membership of
/// the update in the aggregate's inputs.
#[derive(Clone, Debug)]
pub struct ProofReply {
    /// The proof.
    pub counted_proof: CountedProof,
}

/// A client asks the key service for its key share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollRequest {
    /// The federation's name.
    pub federation: String,
}

/// The key service issues a client its key share.
pub struct EnrollReply {
    /// The client's party id.
    pub party_id: u64,
    /// The key share's encoding (secret; zeroized when dropped).
    pub key_share: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for EnrollReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollReply")
            .field("party_id", &self.party_id)
            .field("key_share", &"<redacted>")
            .finish()
    }
}

/// The coordinator asks the key service to decrypt a closed round.
#[derive(Clone, Debug)]
pub struct KeyServiceDecrypt {
    /// The federation's name.
    pub federation: String,
    /// The round.
    pub round: u64,
    /// Proof of the round's AggregateComputed ledger entry.
    pub aggregate_proof: EntryProof,
    /// The aggregate's inputs.
    pub inputs: Vec<AggregateInput>,
    /// One consistency proof from each tree size the key service may last
    /// have seen.
    pub consistency_proofs: Vec<ConsistencyProof>,
    /// Ciphertexts in an update.
    pub chunks: u32,
    /// The federation's CRS (pinned by the key service on first use).
    pub crs: Crs,
    /// The key epoch.
    pub epoch: u64,
}
