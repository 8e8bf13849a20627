//! Typed log entries and their canonical encoding.
//!
//! # Canonical encoding (version 2)
//!
//! An entry is encoded as
//!
//! ```text
//! version:u8 (=2) | index:u64 | round:u64 | timestamp_ms:u64 | prev_hash:[32]
//! | kind:u16 | body_len:u32 | body
//! ```
//!
//! with big-endian fixed-width integers, `u32`-length-prefixed UTF-8 strings
//! and byte strings, `u32`-counted lists, maps as counted lists of pairs in
//! strictly increasing key order, and `f64` as its IEEE-754 bit pattern
//! (exact round trip); enums (a round parameter's value, the accountant)
//! are a `u8` tag and the variant's fields. Version 2 made the round
//! parameters and the accountant typed (version 1 held them as text).
//! Decoding is strict (no trailing bytes, no unsorted
//! keys, no unknown kinds), so every entry has exactly one encoding and
//! `encode(decode(b)) == b`. The Merkle leaf hash of an entry is
//! `SHA-256(0x00 || encoding)`; `prev_hash` is the leaf hash of the previous
//! entry (for entry 0, [`genesis_hash`] of the log id): the hash chain.
//!
//! Kind tags: 1 round opened, 2 update received, 3 aggregate computed,
//! 4 decryption share received, 5 round closed, `0x8000` custom. Tags 6 to
//! `0x7fff` are reserved for future typed entries; an older reader rejects
//! them rather than guess.
//!
//! JSON (serde) is the display format (`cipherflow audit show --json`), with
//! hashes as hex; it is never hashed.

use crate::codec::{hex_bytes, hex_hash, hex_hashes, DecodeError, Reader, Writer};
use crate::merkle::{self, Hash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Version byte of the entry encoding.
pub const ENTRY_VERSION: u8 = 2;

/// Largest accepted encoded entry (16 MiB).
pub const MAX_ENTRY_BYTES: usize = 16 << 20;

/// Kind tag of [`EntryBody::RoundOpened`].
pub const KIND_ROUND_OPENED: u16 = 1;
/// Kind tag of [`EntryBody::UpdateReceived`].
pub const KIND_UPDATE_RECEIVED: u16 = 2;
/// Kind tag of [`EntryBody::AggregateComputed`].
pub const KIND_AGGREGATE_COMPUTED: u16 = 3;
/// Kind tag of [`EntryBody::DecryptionShareReceived`].
pub const KIND_DECRYPTION_SHARE: u16 = 4;
/// Kind tag of [`EntryBody::RoundClosed`].
pub const KIND_ROUND_CLOSED: u16 = 5;
/// Kind tag of [`EntryBody::Custom`].
pub const KIND_CUSTOM: u16 = 0x8000;

/// The hash chained into entry 0: `SHA-256("cipherflow-ledger/v1/genesis" || log_id)`.
pub fn genesis_hash(log_id: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"cipherflow-ledger/v1/genesis");
    h.update(log_id);
    h.finalize().into()
}

/// One log entry: its position, round, time, chain link and typed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Sequence index (0-based position in the log).
    pub index: u64,
    /// Federated round the entry belongs to.
    pub round: u64,
    /// Milliseconds since the Unix epoch when it was appended (non-decreasing).
    pub timestamp_ms: u64,
    /// Leaf hash of the previous entry (or the genesis hash).
    #[serde(with = "hex_hash")]
    pub prev_hash: Hash,
    /// What happened.
    pub body: EntryBody,
}

/// The typed content of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryBody {
    /// A round starts.
    RoundOpened(RoundOpened),
    /// A client's encrypted update arrived.
    UpdateReceived(UpdateReceived),
    /// Encrypted updates were summed.
    AggregateComputed(AggregateComputed),
    /// A decryption share arrived.
    DecryptionShareReceived(DecryptionShareReceived),
    /// A round ends and its model is published.
    RoundClosed(RoundClosed),
    /// Anything not yet typed.
    Custom(CustomEntry),
}

pub use crate::round_settings::{
    DistributedDp, DistributedNoiseKind, DpAccounting, DpSettings, ParamValue,
};

/// Round opened: parameters, participants and DP settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundOpened {
    /// The round's parameters (CKKS preset, model id, ...), typed, sorted
    /// by key.
    pub parameters: BTreeMap<String, ParamValue>,
    /// SHA-256 fingerprints of the participants' public keys.
    #[serde(with = "hex_hashes")]
    pub participants: Vec<Hash>,
    /// DP settings of the round.
    pub dp: DpSettings,
}

/// Update received from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateReceived {
    /// Client identifier (unique within a round).
    pub client_id: String,
    /// SHA-256 of the update ciphertext.
    #[serde(with = "hex_hash")]
    pub ciphertext_hash: Hash,
}

/// Aggregate computed. The inputs are summarised by `inputs_root`, the
/// RFC 9162 Merkle root over the [`AggregateInput`] leaves in order, so the
/// entry stays 80 bytes for any number of clients and a client's membership
/// proof is O(log k) hashes. The input list itself is stored next to the
/// log (and checked against this root by the verifier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateComputed {
    /// SHA-256 of the encrypted sum.
    #[serde(with = "hex_hash")]
    pub aggregate_hash: Hash,
    /// Number of inputs summed.
    pub input_count: u64,
    /// Merkle root over the inputs ([`inputs_root`]).
    #[serde(with = "hex_hash")]
    pub inputs_root: Hash,
}

/// Decryption share received from a key holder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecryptionShareReceived {
    /// Party that sent the share.
    pub party_id: String,
    /// SHA-256 of the share.
    #[serde(with = "hex_hash")]
    pub share_hash: Hash,
}

/// ε reported for one client at the close of a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientEpsilon {
    /// Client identifier.
    pub client_id: String,
    /// DP-SGD steps this client has taken in all rounds so far.
    pub steps: u64,
    /// ε spent by this client so far.
    pub epsilon: f64,
}

/// Round closed: published model and privacy spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundClosed {
    /// SHA-256 of the published model.
    #[serde(with = "hex_hash")]
    pub model_hash: Hash,
    /// ε spent globally (at the round's `steps_cumulative`).
    pub epsilon_global: f64,
    /// ε spent per client.
    pub clients: Vec<ClientEpsilon>,
}

/// An entry kind not typed yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomEntry {
    /// Name of the kind.
    pub kind: String,
    /// Payload.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
}

/// One input of an aggregate: which update entry was summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateInput {
    /// Log index of the [`UpdateReceived`] entry.
    pub update_index: u64,
    /// Its client id.
    pub client_id: String,
    /// Its ciphertext hash.
    #[serde(with = "hex_hash")]
    pub ciphertext_hash: Hash,
}

impl AggregateInput {
    /// Canonical bytes: `update_index:u64 | client_id:str | ciphertext_hash:[32]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u64(self.update_index);
        w.str(&self.client_id);
        w.hash(&self.ciphertext_hash);
        w.buf
    }

    /// Strict inverse of [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self {
            update_index: r.u64("update_index")?,
            client_id: r.string("client_id")?,
            ciphertext_hash: r.hash("ciphertext_hash")?,
        };
        r.finish()?;
        Ok(v)
    }

    /// Leaf hash in the inputs tree.
    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.encode())
    }
}

/// RFC 9162 Merkle root over the inputs' leaf hashes, in order.
pub fn inputs_root(inputs: &[AggregateInput]) -> Hash {
    let leaves: Vec<Hash> = inputs.iter().map(AggregateInput::leaf_hash).collect();
    merkle::root_of(&leaves)
}

impl EntryBody {
    /// The kind tag.
    pub fn kind_tag(&self) -> u16 {
        match self {
            Self::RoundOpened(_) => KIND_ROUND_OPENED,
            Self::UpdateReceived(_) => KIND_UPDATE_RECEIVED,
            Self::AggregateComputed(_) => KIND_AGGREGATE_COMPUTED,
            Self::DecryptionShareReceived(_) => KIND_DECRYPTION_SHARE,
            Self::RoundClosed(_) => KIND_ROUND_CLOSED,
            Self::Custom(_) => KIND_CUSTOM,
        }
    }

    /// A short name of the kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::RoundOpened(_) => "round_opened",
            Self::UpdateReceived(_) => "update_received",
            Self::AggregateComputed(_) => "aggregate_computed",
            Self::DecryptionShareReceived(_) => "decryption_share_received",
            Self::RoundClosed(_) => "round_closed",
            Self::Custom(_) => "custom",
        }
    }

    /// Checks field values (finite, in range, unique ids); the error says which.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::RoundOpened(o) => o.dp.validate(),
            Self::UpdateReceived(u) => non_empty("client_id", &u.client_id),
            Self::DecryptionShareReceived(d) => non_empty("party_id", &d.party_id),
            Self::AggregateComputed(_) => Ok(()),
            Self::RoundClosed(c) => {
                // +∞ is allowed: rounds without DP (accountant `none`).
                if c.epsilon_global.is_nan() || c.epsilon_global < 0.0 {
                    return Err(format!(
                        "epsilon_global {} is not an ε ≥ 0",
                        c.epsilon_global
                    ));
                }
                let mut seen = BTreeSet::new();
                for ce in &c.clients {
                    non_empty("client_id", &ce.client_id)?;
                    if ce.epsilon.is_nan() || ce.epsilon < 0.0 {
                        return Err(format!(
                            "ε {} of client {:?} is not an ε ≥ 0",
                            ce.epsilon, ce.client_id
                        ));
                    }
                    if !seen.insert(ce.client_id.as_str()) {
                        return Err(format!("client {:?} listed twice", ce.client_id));
                    }
                }
                Ok(())
            }
            Self::Custom(c) => non_empty("kind", &c.kind),
        }
    }

    fn encode_into(&self, w: &mut Writer) {
        match self {
            Self::RoundOpened(o) => {
                w.len(o.parameters.len());
                for (k, v) in &o.parameters {
                    w.str(k);
                    v.encode_into(w);
                }
                w.len(o.participants.len());
                for p in &o.participants {
                    w.hash(p);
                }
                o.dp.encode_into(w);
            }
            Self::UpdateReceived(u) => {
                w.str(&u.client_id);
                w.hash(&u.ciphertext_hash);
            }
            Self::AggregateComputed(a) => {
                w.hash(&a.aggregate_hash);
                w.u64(a.input_count);
                w.hash(&a.inputs_root);
            }
            Self::DecryptionShareReceived(d) => {
                w.str(&d.party_id);
                w.hash(&d.share_hash);
            }
            Self::RoundClosed(c) => {
                w.hash(&c.model_hash);
                w.f64(c.epsilon_global);
                w.len(c.clients.len());
                for ce in &c.clients {
                    w.str(&ce.client_id);
                    w.u64(ce.steps);
                    w.f64(ce.epsilon);
                }
            }
            Self::Custom(c) => {
                w.str(&c.kind);
                w.bytes(&c.data);
            }
        }
    }

    fn decode_from(kind: u16, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match kind {
            KIND_ROUND_OPENED => {
                let n = r.count(8, "parameters")?;
                let mut parameters = BTreeMap::new();
                let mut last: Option<String> = None;
                for _ in 0..n {
                    let k = r.string("parameter key")?;
                    let v = ParamValue::decode_from(r)?;
                    if last.as_ref().is_some_and(|l| *l >= k) {
                        return Err(DecodeError::Unsorted("parameters"));
                    }
                    last = Some(k.clone());
                    parameters.insert(k, v);
                }
                let n = r.count(32, "participants")?;
                let participants = (0..n)
                    .map(|_| r.hash("participant"))
                    .collect::<Result<Vec<_>, _>>()?;
                let dp = DpSettings::decode_from(r)?;
                Self::RoundOpened(RoundOpened {
                    parameters,
                    participants,
                    dp,
                })
            }
            KIND_UPDATE_RECEIVED => Self::UpdateReceived(UpdateReceived {
                client_id: r.string("client_id")?,
                ciphertext_hash: r.hash("ciphertext_hash")?,
            }),
            KIND_AGGREGATE_COMPUTED => Self::AggregateComputed(AggregateComputed {
                aggregate_hash: r.hash("aggregate_hash")?,
                input_count: r.u64("input_count")?,
                inputs_root: r.hash("inputs_root")?,
            }),
            KIND_DECRYPTION_SHARE => Self::DecryptionShareReceived(DecryptionShareReceived {
                party_id: r.string("party_id")?,
                share_hash: r.hash("share_hash")?,
            }),
            KIND_ROUND_CLOSED => {
                let model_hash = r.hash("model_hash")?;
                let epsilon_global = r.f64("epsilon_global")?;
                let n = r.count(20, "clients")?;
                let mut clients = Vec::with_capacity(n);
                for _ in 0..n {
                    clients.push(ClientEpsilon {
                        client_id: r.string("client_id")?,
                        steps: r.u64("steps")?,
                        epsilon: r.f64("epsilon")?,
                    });
                }
                Self::RoundClosed(RoundClosed {
                    model_hash,
                    epsilon_global,
                    clients,
                })
            }
            KIND_CUSTOM => Self::Custom(CustomEntry {
                kind: r.string("kind")?,
                data: r.bytes("data")?.to_vec(),
            }),
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}

fn non_empty(field: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        Err(format!("{field} is empty"))
    } else {
        Ok(())
    }
}

impl Entry {
    /// Canonical bytes (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Writer::default();
        self.body.encode_into(&mut body);
        let mut w = Writer::default();
        w.u8(ENTRY_VERSION);
        w.u64(self.index);
        w.u64(self.round);
        w.u64(self.timestamp_ms);
        w.hash(&self.prev_hash);
        w.u16(self.body.kind_tag());
        w.bytes(&body.buf);
        w.buf
    }

    /// Strictly decodes canonical bytes; never panics on hostile input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != ENTRY_VERSION {
            return Err(DecodeError::Version(version));
        }
        let index = r.u64("index")?;
        let round = r.u64("round")?;
        let timestamp_ms = r.u64("timestamp_ms")?;
        let prev_hash = r.hash("prev_hash")?;
        let kind = r.u16("kind")?;
        let body_bytes = r.bytes("body")?;
        r.finish()?;
        let mut br = Reader::new(body_bytes);
        let body = EntryBody::decode_from(kind, &mut br)?;
        br.finish()?;
        Ok(Self {
            index,
            round,
            timestamp_ms,
            prev_hash,
            body,
        })
    }

    /// `SHA-256(0x00 || encode())`.
    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_bodies() -> Vec<EntryBody> {
        let mut parameters = BTreeMap::new();
        parameters.insert("preset".to_string(), "aggregation".into());
        parameters.insert("model".to_string(), "logreg-v1".into());
        parameters.insert("epoch".to_string(), 3u64.into());
        parameters.insert("clip".to_string(), 1.5f64.into());
        parameters.insert("model_hash".to_string(), ParamValue::Hash([5; 32]));
        parameters.insert("q_bits".to_string(), ParamValue::U64s(vec![60, 50, 50]));
        vec![
            EntryBody::RoundOpened(RoundOpened {
                parameters,
                participants: vec![[7; 32], [9; 32]],
                dp: DpSettings {
                    accountant: DpAccounting::Rdp,
                    sampling_rate: 0.01,
                    noise_multiplier: 1.1,
                    delta: 1e-5,
                    steps_this_round: 100,
                    steps_cumulative: 300,
                },
            }),
            EntryBody::RoundOpened(RoundOpened {
                parameters: BTreeMap::new(),
                participants: vec![],
                dp: DpSettings {
                    accountant: DpAccounting::Distributed(DistributedDp {
                        noise: DistributedNoiseKind::Skellam,
                        clients: 10,
                        min_survivors: 8,
                        target_stddev: 1234.5,
                        l1: 3e5,
                        l2: 2e3,
                        dim: 1000,
                    }),
                    sampling_rate: 0.5,
                    noise_multiplier: 0.6,
                    delta: 1e-6,
                    steps_this_round: 1,
                    steps_cumulative: 4,
                },
            }),
            EntryBody::RoundOpened(RoundOpened {
                parameters: BTreeMap::new(),
                participants: vec![],
                dp: DpSettings {
                    accountant: DpAccounting::NoDp,
                    sampling_rate: 1.0,
                    noise_multiplier: 0.0,
                    delta: 0.0,
                    steps_this_round: 1,
                    steps_cumulative: 1,
                },
            }),
            EntryBody::UpdateReceived(UpdateReceived {
                client_id: "hospital-3".into(),
                ciphertext_hash: [1; 32],
            }),
            EntryBody::AggregateComputed(AggregateComputed {
                aggregate_hash: [2; 32],
                input_count: 2,
                inputs_root: [3; 32],
            }),
            EntryBody::DecryptionShareReceived(DecryptionShareReceived {
                party_id: "kh-1".into(),
                share_hash: [4; 32],
            }),
            EntryBody::RoundClosed(RoundClosed {
                model_hash: [5; 32],
                epsilon_global: 0.1 + 0.2,
                clients: vec![ClientEpsilon {
                    client_id: "hospital-3".into(),
                    steps: 300,
                    epsilon: -0.0,
                }],
            }),
            EntryBody::Custom(CustomEntry {
                kind: "note".into(),
                data: vec![0, 1, 2],
            }),
        ]
    }

    #[test]
    fn round_trip_is_exact_and_canonical() {
        for (i, body) in sample_bodies().into_iter().enumerate() {
            let e = Entry {
                index: i as u64,
                round: 4,
                timestamp_ms: 1_700_000_000_000,
                prev_hash: [0xab; 32],
                body,
            };
            let b = e.encode();
            let d = Entry::decode(&b).unwrap();
            assert_eq!(d, e);
            assert_eq!(d.encode(), b);
            // f64 bit patterns survive (including -0.0).
            if let EntryBody::RoundClosed(c) = &d.body {
                assert_eq!(c.epsilon_global.to_bits(), (0.1f64 + 0.2).to_bits());
                assert_eq!(c.clients[0].epsilon.to_bits(), (-0.0f64).to_bits());
            }
            // JSON round trip too.
            let j = serde_json::to_string(&e).unwrap();
            let back: Entry = serde_json::from_str(&j).unwrap();
            assert_eq!(back, e);
            // Every strict prefix and any trailing byte is rejected.
            for cut in 0..b.len() {
                assert!(Entry::decode(&b[..cut]).is_err(), "prefix {cut}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert!(Entry::decode(&longer).is_err());
        }
    }

    #[test]
    fn mutated_encodings_never_panic_and_stay_canonical() {
        use rand_chacha::ChaCha20Rng;
        use rand_core::{RngCore, SeedableRng};
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let bases: Vec<Vec<u8>> = sample_bodies()
            .into_iter()
            .map(|body| {
                Entry {
                    index: 3,
                    round: 1,
                    timestamp_ms: 9,
                    prev_hash: [1; 32],
                    body,
                }
                .encode()
            })
            .collect();
        let mut accepted = 0;
        for i in 0..40_000u32 {
            let mut b = bases[i as usize % bases.len()].clone();
            for _ in 0..1 + rng.next_u32() % 3 {
                let pos = rng.next_u32() as usize % b.len();
                match rng.next_u32() % 4 {
                    0 => b[pos] ^= 1 << (rng.next_u32() % 8),
                    1 => b[pos] = rng.next_u32() as u8,
                    2 => b.truncate(pos),
                    _ => b.insert(pos, rng.next_u32() as u8),
                }
                if b.is_empty() {
                    break;
                }
            }
            // Any bytes that decode have exactly one encoding: themselves.
            if let Ok(e) = Entry::decode(&b) {
                assert_eq!(e.encode(), b);
                accepted += 1;
            }
        }
        assert!(accepted > 0);
    }

    #[test]
    fn unsorted_parameters_are_not_canonical() {
        let mut w = Writer::default();
        w.u32(2);
        for k in ["b", "a"] {
            w.str(k);
            ParamValue::from("v").encode_into(&mut w);
        }
        w.u32(0);
        let mut r = Reader::new(&w.buf);
        assert_eq!(
            EntryBody::decode_from(KIND_ROUND_OPENED, &mut r),
            Err(DecodeError::Unsorted("parameters"))
        );
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        let mut w = Writer::default();
        w.hash(&[0; 32]);
        w.f64(0.5);
        w.u32(u32::MAX);
        let mut r = Reader::new(&w.buf);
        assert!(EntryBody::decode_from(KIND_ROUND_CLOSED, &mut r).is_err());
    }

    #[test]
    fn validation() {
        for b in sample_bodies() {
            assert_eq!(b.validate(), Ok(()));
        }
        let mut dp = DpSettings {
            accountant: DpAccounting::Rdp,
            sampling_rate: 0.0,
            noise_multiplier: 1.0,
            delta: 1e-5,
            steps_this_round: 1,
            steps_cumulative: 1,
        };
        assert!(dp.validate().is_err());
        dp.sampling_rate = f64::NAN;
        assert!(dp.validate().is_err());
        dp.sampling_rate = 0.5;
        assert!(dp.validate().is_ok());
        dp.steps_cumulative = 0;
        assert!(dp.validate().is_err());
    }
}
