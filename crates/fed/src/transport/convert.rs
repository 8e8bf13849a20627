//! Protobuf ⇄ domain messages: the only place that knows both.
//!
//! Every message coming in is converted with `TryFrom`, which refuses what
//! its domain type cannot hold (wrong lengths, undecodable proofs, a task
//! of no kind, a quantization out of range) with a typed error; every
//! message going out is converted with `From`.

use crate::config::LocalTraining;
use crate::error::{FedError, Result};
use crate::messages as m;
use crate::proto as p;
use crate::quant::{Quantizer, ShareNoise};
use crate::training;
use cipherflow_ckks::multiparty::Crs;
use cipherflow_ledger::{AggregateInput, ConsistencyProof, CountedProof, EntryProof, PublicKey};
use zeroize::Zeroizing;

fn array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| FedError::Protocol(format!("{what} must be {N} bytes")))
}

fn crs(bytes: &[u8]) -> Result<Crs> {
    crate::packing::crs_from_bytes(bytes)
}

/// Float32 little-endian bytes to values (any count; the client checks it
/// against its model, and finiteness).
fn floats(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(FedError::Protocol(format!(
            "a model of {} bytes is not float32 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn optional<T>(bytes: &[u8], decode: impl FnOnce(&[u8]) -> Result<T>) -> Result<Option<T>> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        decode(bytes).map(Some)
    }
}

fn entry_proof(bytes: &[u8]) -> Result<EntryProof> {
    Ok(EntryProof::decode(bytes)?)
}

/// Messages whose protobuf form has the same fields, of the same types:
/// converted field by field, nothing to refuse.
macro_rules! same_fields {
    ($($t:ident { $($f:ident),* $(,)? })*) => {
        $(
            impl From<m::$t> for p::$t {
                fn from(x: m::$t) -> Self {
                    Self { $($f: x.$f),* }
                }
            }

            impl TryFrom<p::$t> for m::$t {
                type Error = FedError;
                fn try_from(x: p::$t) -> Result<Self> {
                    Ok(Self { $($f: x.$f),* })
                }
            }
        )*
    };
}

same_fields! {
    JoinRequest { federation, num_examples }
    KeySetupQuery { federation, epoch }
    TaskRequest { federation, wait_ms, known_tree_size }
    UploadChunk { federation, round, index, total, num_examples, ciphertext }
    ShareChunk { federation, round, attempt, index, total, share, ready }
    ShareReceipt { accepted, duplicate }
    ProofRequest { federation, round }
    EnrollRequest { federation }
    RegionPoll { federation }
    RegionRound { federation, round, cumulative, sampled, weight_reference, noise_multiplier }
}

// ---------------------------------------------------------------- joining

impl From<m::JoinReply> for p::JoinReply {
    fn from(r: m::JoinReply) -> Self {
        Self {
            federation: r.federation,
            config_digest: r.config_digest.to_vec(),
            crs: r.crs.0.to_vec(),
            epoch: r.epoch,
            party_id: r.party_id,
            ledger_public_key: r.ledger_public_key.to_bytes().to_vec(),
            ledger_log_id: r.ledger_log_id.to_vec(),
        }
    }
}

impl TryFrom<p::JoinReply> for m::JoinReply {
    type Error = FedError;
    fn try_from(r: p::JoinReply) -> Result<Self> {
        let key: [u8; 32] = array(&r.ledger_public_key, "ledger key")?;
        Ok(Self {
            federation: r.federation,
            config_digest: array(&r.config_digest, "configuration digest")?,
            crs: crs(&r.crs)?,
            epoch: r.epoch,
            party_id: r.party_id,
            ledger_public_key: PublicKey::from_bytes(&key)
                .map_err(|e| FedError::Protocol(format!("ledger key: {e}")))?,
            ledger_log_id: array(&r.ledger_log_id, "log id")?,
        })
    }
}

// ---------------------------------------------------------------- key setup

impl From<m::SealedShare> for p::SealedShare {
    fn from(s: m::SealedShare) -> Self {
        Self {
            from_party: s.from_party,
            to_party: s.to_party,
            nonce: s.nonce.to_vec(),
            ciphertext: s.ciphertext,
        }
    }
}

impl TryFrom<p::SealedShare> for m::SealedShare {
    type Error = FedError;
    fn try_from(s: p::SealedShare) -> Result<Self> {
        Ok(Self {
            from_party: s.from_party,
            to_party: s.to_party,
            nonce: array(&s.nonce, "a sealed share's nonce")
                .map_err(|_| FedError::Protocol("sealed share of the wrong size".into()))?,
            ciphertext: s.ciphertext,
        })
    }
}

fn sealed_in(v: Vec<p::SealedShare>) -> Result<Vec<m::SealedShare>> {
    v.into_iter().map(m::SealedShare::try_from).collect()
}

fn sealed_out(v: Vec<m::SealedShare>) -> Vec<p::SealedShare> {
    v.into_iter().map(Into::into).collect()
}

impl From<m::KeySetupPost> for p::KeySetupPost {
    fn from(r: m::KeySetupPost) -> Self {
        Self {
            federation: r.federation,
            epoch: r.epoch,
            shares: sealed_out(r.shares),
        }
    }
}

impl TryFrom<p::KeySetupPost> for m::KeySetupPost {
    type Error = FedError;
    fn try_from(r: p::KeySetupPost) -> Result<Self> {
        Ok(Self {
            federation: r.federation,
            epoch: r.epoch,
            shares: sealed_in(r.shares)?,
        })
    }
}

impl From<m::KeySetupBundle> for p::KeySetupBundle {
    fn from(r: m::KeySetupBundle) -> Self {
        Self {
            complete: r.complete,
            shares: sealed_out(r.shares),
            key_setup_proof: r.key_setup_proof.map(|p| p.encode()).unwrap_or_default(),
        }
    }
}

impl TryFrom<p::KeySetupBundle> for m::KeySetupBundle {
    type Error = FedError;
    fn try_from(r: p::KeySetupBundle) -> Result<Self> {
        Ok(Self {
            complete: r.complete,
            shares: sealed_in(r.shares)?,
            key_setup_proof: optional(&r.key_setup_proof, entry_proof).map_err(|e| {
                FedError::Refused(format!("the key setup carries no ledger proof: {e}"))
            })?,
        })
    }
}

// ---------------------------------------------------------------- tasks

impl From<LocalTraining> for p::LocalTraining {
    fn from(t: LocalTraining) -> Self {
        Self {
            epochs: u32::try_from(t.epochs).unwrap_or(u32::MAX),
            batch_size: u32::try_from(t.batch_size).unwrap_or(u32::MAX),
            lr: t.lr,
            momentum: t.momentum,
        }
    }
}

/// A client compares the settings with its own configuration, so no range
/// check beyond the types is needed.
impl From<p::LocalTraining> for LocalTraining {
    fn from(t: p::LocalTraining) -> Self {
        Self {
            epochs: t.epochs as usize,
            batch_size: t.batch_size as usize,
            lr: t.lr,
            momentum: t.momentum,
        }
    }
}

impl From<Quantizer> for p::Quantization {
    fn from(q: Quantizer) -> Self {
        let (noise, sigma) = match q.noise {
            ShareNoise::None => (p::ShareNoise::None, 0.0),
            ShareNoise::DiscreteGaussian(s) => (p::ShareNoise::DiscreteGaussian, s),
            ShareNoise::Skellam(v) => (p::ShareNoise::Skellam, v.sqrt()),
        };
        Self {
            clip: q.clip,
            gamma: q.gamma,
            l2_bound: q.l2_bound,
            noise_share_sigma: sigma,
            weight_reference: q.weight_reference,
            shift: q.shift,
            noise: noise as i32,
        }
    }
}

impl TryFrom<p::Quantization> for Quantizer {
    type Error = FedError;
    fn try_from(q: p::Quantization) -> Result<Self> {
        let noise = match p::ShareNoise::try_from(q.noise) {
            Ok(p::ShareNoise::None) => Some(ShareNoise::None),
            Ok(p::ShareNoise::DiscreteGaussian) => {
                Some(ShareNoise::DiscreteGaussian(q.noise_share_sigma))
            }
            Ok(p::ShareNoise::Skellam) => Some(ShareNoise::Skellam(
                q.noise_share_sigma * q.noise_share_sigma,
            )),
            Ok(p::ShareNoise::Unspecified) | Err(_) => None,
        };
        let noise = noise.ok_or_else(|| {
            FedError::Protocol("quantization: unknown noise or σ out of range".into())
        })?;
        Quantizer::new(
            q.clip,
            q.gamma,
            q.l2_bound,
            noise,
            q.weight_reference,
            q.shift,
        )
    }
}

impl From<m::Party> for p::Party {
    fn from(x: m::Party) -> Self {
        Self {
            client_id: x.client_id,
            party_id: x.party_id,
            kx_public: x.kx_public.to_vec(),
        }
    }
}

impl TryFrom<p::Party> for m::Party {
    type Error = FedError;
    fn try_from(x: p::Party) -> Result<Self> {
        Ok(Self {
            client_id: x.client_id,
            party_id: x.party_id,
            kx_public: array(&x.kx_public, "a key-agreement key")?,
        })
    }
}

impl From<m::TrainTask> for p::TrainTask {
    fn from(t: m::TrainTask) -> Self {
        Self {
            round: t.round,
            model: training::to_bytes(&t.model),
            model_hash: t.model_hash.to_vec(),
            training: Some(t.training.into()),
            quantization: Some(t.quantization.into()),
            chunks: t.chunks,
            prox_mu: t.prox_mu,
            noise_history: t.noise_history,
        }
    }
}

impl TryFrom<p::TrainTask> for m::TrainTask {
    type Error = FedError;
    fn try_from(t: p::TrainTask) -> Result<Self> {
        Ok(Self {
            round: t.round,
            model: floats(&t.model)?,
            model_hash: array(&t.model_hash, "model hash")
                .map_err(|_| FedError::Protocol("model hash mismatch".into()))?,
            training: t
                .training
                .map(LocalTraining::from)
                .ok_or_else(|| FedError::Protocol("a training task without its settings".into()))?,
            quantization: t
                .quantization
                .ok_or_else(|| FedError::Protocol("no quantization".into()))?
                .try_into()?,
            chunks: t.chunks,
            prox_mu: t.prox_mu,
            noise_history: t.noise_history,
        })
    }
}

impl From<m::DecryptTask> for p::DecryptTask {
    fn from(t: m::DecryptTask) -> Self {
        Self {
            round: t.round,
            attempt: t.attempt,
            active: t.active,
            aggregate_proof: t.aggregate_proof.encode(),
            inputs: AggregateInput::encode_list(&t.inputs),
            consistency_proof: t.consistency_proof.map(|c| c.encode()).unwrap_or_default(),
            chunks: t.chunks,
            prepare: t.prepare,
        }
    }
}

impl TryFrom<p::DecryptTask> for m::DecryptTask {
    type Error = FedError;
    fn try_from(t: p::DecryptTask) -> Result<Self> {
        Ok(Self {
            round: t.round,
            attempt: t.attempt,
            active: t.active,
            aggregate_proof: entry_proof(&t.aggregate_proof)?,
            inputs: AggregateInput::decode_list(&t.inputs)?,
            consistency_proof: optional(&t.consistency_proof, |b| Ok(ConsistencyProof::decode(b)?))
                .map_err(|e| FedError::Refused(format!("missing ledger consistency proof: {e}")))?,
            chunks: t.chunks,
            prepare: t.prepare,
        })
    }
}

impl From<m::FinishedTask> for p::FinishedTask {
    fn from(t: m::FinishedTask) -> Self {
        Self {
            rounds: t.rounds,
            model: training::to_bytes(&t.model),
            reason: t.reason,
        }
    }
}

impl TryFrom<p::FinishedTask> for m::FinishedTask {
    type Error = FedError;
    fn try_from(t: p::FinishedTask) -> Result<Self> {
        Ok(Self {
            rounds: t.rounds,
            model: floats(&t.model)?,
            reason: t.reason,
        })
    }
}

impl From<m::KeySetupTask> for p::KeySetupTask {
    fn from(t: m::KeySetupTask) -> Self {
        Self {
            epoch: t.epoch,
            threshold: t.threshold,
            parties: t.parties.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<p::KeySetupTask> for m::KeySetupTask {
    type Error = FedError;
    fn try_from(t: p::KeySetupTask) -> Result<Self> {
        Ok(Self {
            epoch: t.epoch,
            threshold: t.threshold,
            parties: t
                .parties
                .into_iter()
                .map(m::Party::try_from)
                .collect::<Result<_>>()?,
        })
    }
}

impl From<m::Task> for p::Task {
    fn from(t: m::Task) -> Self {
        use p::task::Kind;
        let kind = match t {
            m::Task::Wait { retry_ms, reason } => Kind::Wait(p::WaitTask { retry_ms, reason }),
            m::Task::KeySetup(k) => Kind::KeySetup(k.into()),
            m::Task::Train(k) => Kind::Train(k.into()),
            m::Task::Decrypt(k) => Kind::Decrypt(k.into()),
            m::Task::Finished(k) => Kind::Finished(k.into()),
        };
        Self { kind: Some(kind) }
    }
}

impl TryFrom<p::Task> for m::Task {
    type Error = FedError;
    fn try_from(t: p::Task) -> Result<Self> {
        use p::task::Kind;
        Ok(
            match t
                .kind
                .ok_or_else(|| FedError::Protocol("empty task".into()))?
            {
                Kind::Wait(w) => m::Task::Wait {
                    retry_ms: w.retry_ms,
                    reason: w.reason,
                },
                Kind::KeySetup(k) => m::Task::KeySetup(k.try_into()?),
                Kind::Train(k) => m::Task::Train(k.try_into()?),
                Kind::Decrypt(k) => m::Task::Decrypt(k.try_into()?),
                Kind::Finished(k) => m::Task::Finished(k.try_into()?),
            },
        )
    }
}

// ---------------------------------------------------------------- uploads

impl From<m::UploadReceipt> for p::UploadReceipt {
    fn from(r: m::UploadReceipt) -> Self {
        Self {
            ledger_index: r.ledger_index,
            entry_proof: r.entry_proof.map(|p| p.encode()).unwrap_or_default(),
            duplicate: r.duplicate,
        }
    }
}

impl TryFrom<p::UploadReceipt> for m::UploadReceipt {
    type Error = FedError;
    fn try_from(r: p::UploadReceipt) -> Result<Self> {
        Ok(Self {
            ledger_index: r.ledger_index,
            entry_proof: optional(&r.entry_proof, entry_proof)?,
            duplicate: r.duplicate,
        })
    }
}

impl From<m::ProofReply> for p::ProofReply {
    fn from(r: m::ProofReply) -> Self {
        Self {
            counted_proof: r.counted_proof.encode(),
        }
    }
}

impl TryFrom<p::ProofReply> for m::ProofReply {
    type Error = FedError;
    fn try_from(r: p::ProofReply) -> Result<Self> {
        Ok(Self {
            counted_proof: CountedProof::decode(&r.counted_proof)?,
        })
    }
}

// ---------------------------------------------------------------- key service

impl From<m::EnrollReply> for p::EnrollReply {
    fn from(r: m::EnrollReply) -> Self {
        Self {
            party_id: r.party_id,
            // The message's copy is handed to the transport, which
            // encodes and drops it; ours is zeroized here.
            key_share: r.key_share.to_vec(),
            crs: Vec::new(),
        }
    }
}

impl TryFrom<p::EnrollReply> for m::EnrollReply {
    type Error = FedError;
    fn try_from(mut r: p::EnrollReply) -> Result<Self> {
        Ok(Self {
            party_id: r.party_id,
            key_share: Zeroizing::new(std::mem::take(&mut r.key_share)),
        })
    }
}

impl From<m::KeyServiceDecrypt> for p::KeyServiceDecrypt {
    fn from(r: m::KeyServiceDecrypt) -> Self {
        Self {
            federation: r.federation,
            round: r.round,
            aggregate_proof: r.aggregate_proof.encode(),
            inputs: AggregateInput::encode_list(&r.inputs),
            consistency_proof: if r.consistency_proofs.is_empty() {
                Vec::new()
            } else {
                ConsistencyProof::encode_list(&r.consistency_proofs)
            },
            chunks: r.chunks,
            crs: r.crs.0.to_vec(),
            epoch: r.epoch,
        }
    }
}

impl TryFrom<p::KeyServiceDecrypt> for m::KeyServiceDecrypt {
    type Error = FedError;
    fn try_from(r: p::KeyServiceDecrypt) -> Result<Self> {
        Ok(Self {
            federation: r.federation,
            round: r.round,
            aggregate_proof: entry_proof(&r.aggregate_proof)?,
            inputs: AggregateInput::decode_list(&r.inputs)?,
            consistency_proofs: optional(&r.consistency_proof, |b| {
                Ok(ConsistencyProof::decode_list(b)?)
            })
            .map_err(|e| FedError::Refused(format!("malformed consistency proofs: {e}")))?
            .unwrap_or_default(),
            chunks: r.chunks,
            crs: crs(&r.crs)?,
            epoch: r.epoch,
        })
    }
}

// ---------------------------------------------------------------- regions

impl From<m::RegionStatus> for p::RegionStatus {
    fn from(r: m::RegionStatus) -> Self {
        let (crs, epoch) = r.keys.map_or((Vec::new(), 0), |(c, e)| (c.0.to_vec(), e));
        Self {
            crs,
            epoch,
            round: r.round.map(Into::into),
            finished: r.finished.unwrap_or_default(),
        }
    }
}

impl TryFrom<p::RegionStatus> for m::RegionStatus {
    type Error = FedError;
    fn try_from(r: p::RegionStatus) -> Result<Self> {
        Ok(Self {
            keys: optional(&r.crs, crs)?.map(|c| (c, r.epoch)),
            round: r.round.map(m::RegionRound::try_from).transpose()?,
            finished: (!r.finished.is_empty()).then_some(r.finished),
        })
    }
}

impl From<m::RegionalSum> for p::RegionalSum {
    fn from(r: m::RegionalSum) -> Self {
        Self {
            federation: r.federation,
            round: r.round,
            chunks: r.chunks,
            aggregate_proof: r.aggregate_proof.encode(),
            inputs: AggregateInput::encode_list(&r.inputs),
            examples: r.examples,
        }
    }
}

impl TryFrom<p::RegionalSum> for m::RegionalSum {
    type Error = FedError;
    fn try_from(r: p::RegionalSum) -> Result<Self> {
        let inputs = AggregateInput::decode_list(&r.inputs)?;
        if r.examples.len() != inputs.len() {
            return Err(FedError::Protocol(format!(
                "a regional sum of {} contributors with {} example counts",
                inputs.len(),
                r.examples.len()
            )));
        }
        Ok(Self {
            federation: r.federation,
            round: r.round,
            chunks: r.chunks,
            aggregate_proof: entry_proof(&r.aggregate_proof)?,
            inputs,
            examples: r.examples,
        })
    }
}

impl From<m::RegionalSumReceipt> for p::RegionalSumReceipt {
    fn from(r: m::RegionalSumReceipt) -> Self {
        Self {
            entry_proof: r.entry_proof.encode(),
        }
    }
}

impl TryFrom<p::RegionalSumReceipt> for m::RegionalSumReceipt {
    type Error = FedError;
    fn try_from(r: p::RegionalSumReceipt) -> Result<Self> {
        Ok(Self {
            entry_proof: entry_proof(&r.entry_proof)?,
        })
    }
}

/// A domain message and its protobuf form.
pub trait OnWire: TryFrom<Self::Proto, Error = FedError> + Sized {
    /// The protobuf message.
    type Proto: From<Self> + prost::Message + Default;
}

macro_rules! on_wire {
    ($($t:ident),* $(,)?) => {
        $(impl OnWire for m::$t {
            type Proto = p::$t;
        })*
    };
}

on_wire!(
    JoinRequest,
    JoinReply,
    KeySetupPost,
    KeySetupQuery,
    KeySetupBundle,
    TaskRequest,
    Task,
    UploadChunk,
    UploadReceipt,
    ShareChunk,
    ShareReceipt,
    ProofRequest,
    ProofReply,
    EnrollRequest,
    EnrollReply,
    KeyServiceDecrypt,
    RegionPoll,
    RegionStatus,
    RegionalSum,
    RegionalSumReceipt,
);

/// Converts a received list (a stream's messages).
pub(crate) fn all_in<P, D: TryFrom<P, Error = FedError>>(v: Vec<P>) -> Result<Vec<D>> {
    v.into_iter().map(D::try_from).collect()
}

/// Converts a list to send.
pub(crate) fn all_out<D, P: From<D>>(v: Vec<D>) -> Vec<P> {
    v.into_iter().map(P::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantizer() -> Quantizer {
        Quantizer::new(
            1.0,
            200.0,
            500.0,
            ShareNoise::DiscreteGaussian(8.0),
            1.0,
            50,
        )
        .unwrap()
    }

    #[test]
    fn quantization_round_trips_and_refuses_what_a_quantizer_cannot_be() {
        let q = quantizer();
        assert_eq!(
            Quantizer::try_from(p::Quantization::from(q.clone())).unwrap(),
            q
        );
        let edits: [&dyn Fn(&mut p::Quantization); 5] = [
            &|p| p.gamma = f64::NAN,
            &|p| p.noise = 9,
            &|p| p.noise = p::ShareNoise::Unspecified as i32,
            &|p| p.shift = 0,
            &|p| p.noise_share_sigma = 2048.0,
        ];
        for edit in edits {
            let mut wire = p::Quantization::from(q.clone());
            edit(&mut wire);
            assert!(matches!(
                Quantizer::try_from(wire),
                Err(FedError::Protocol(_))
            ));
        }
    }

    #[test]
    fn an_empty_task_and_short_digests_are_refused_at_the_edge() {
        assert!(matches!(
            m::Task::try_from(p::Task { kind: None }),
            Err(FedError::Protocol(_))
        ));
        let short = p::Party {
            client_id: "a".into(),
            party_id: 1,
            kx_public: vec![0; 31],
        };
        assert!(m::Party::try_from(short).is_err());
        let odd = p::FinishedTask {
            rounds: 1,
            model: vec![0; 7],
            reason: String::new(),
        };
        assert!(m::FinishedTask::try_from(odd).is_err());
    }

    #[test]
    fn a_train_task_round_trips_bit_for_bit() {
        let model = vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3.25];
        let t = m::TrainTask {
            round: 7,
            model_hash: training::model_hash(&training::to_bytes(&model)),
            model,
            training: LocalTraining {
                epochs: 2,
                batch_size: 16,
                lr: 0.1,
                momentum: 0.9,
            },
            quantization: quantizer(),
            chunks: 3,
            prox_mu: 0.01,
            noise_history: vec![1.25, 0.75],
        };
        let back = m::TrainTask::try_from(p::TrainTask::from(t.clone())).unwrap();
        assert_eq!(back, t);
    }
}
