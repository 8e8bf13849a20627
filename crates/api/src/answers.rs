//! The API's answers other than a model's card.

use crate::card::ModelCard;
use serde::{Deserialize, Serialize};

/// `GET /v1/models`: the models found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelList {
    /// Their cards (without the `he`, `mpc` and plain-tail sections).
    pub models: Vec<ModelCard>,
}

/// `POST /v1/models`: what was stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Uploaded {
    /// The new version's card.
    pub model: ModelCard,
    /// The creator's token: made for a new name (and shown once), the one
    /// given for a new version of a name.
    pub creator_token: Option<String>,
}

/// `POST /v1/models/NAME/sessions`: a session for evaluation keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionOpened {
    /// Its id (128 bits, hex).
    pub session: String,
    /// The model it queries.
    pub model: String,
    /// Its version.
    pub version: i64,
    /// `mpc` or `plain-tail` (split sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The split (split sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<usize>,
}

/// Any refusal's body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    /// Why, in words.
    pub error: String,
}

/// `GET /v1/federation`: a coordinator's ledger summarized per round, for
/// the entries its latest signed head covers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FederationSummary {
    /// The ledger's name.
    pub name: String,
    /// Its log id, hex.
    pub log_id: String,
    /// The public key it is verified against, hex.
    pub public_key: String,
    /// Entries under the signed head (the ones summarized).
    pub entries: u64,
    /// Later entries, not yet signed (counted, not shown).
    pub unsigned_entries: u64,
    /// The signed head, as the ledger writes it (the page verifies it).
    pub signed_head: Option<serde_json::Value>,
    /// The federation's ε budget.
    pub epsilon_budget: Option<f64>,
    /// Per round, in order.
    pub rounds: Vec<Round>,
}

/// One round's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Round {
    /// Its number.
    pub round: u64,
    /// Clients invited.
    pub participants: u64,
    /// Updates received.
    pub updates: u64,
    /// Inputs of the aggregate.
    pub summed: u64,
    /// Participants whose update did not arrive.
    pub dropouts: u64,
    /// ε spent once the round closed.
    pub epsilon: Option<f64>,
    /// Its δ.
    pub delta: Option<f64>,
    /// Whether it closed.
    pub closed: bool,
    /// When it opened (ms since the Unix epoch).
    pub opened_ms: Option<u64>,
    /// When it closed.
    pub closed_ms: Option<u64>,
}
