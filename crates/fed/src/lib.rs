#![doc = include_str!("../README.md")]
//!
//! ## Module map, by role
//!
//! The modules are private; what a program needs is re-exported at the
//! crate root. Public modules are the namespaces a caller uses as such.
//!
//! * The parties: `coordinator` ([`Coordinator`]: the untrusted aggregator —
//!   rounds, uploads, decryption, its durable `store` and [`Metrics`]),
//!   `client` ([`ClientAgent`]: a hospital's agent — key setup, local
//!   [`training`], encryption, decryption shares, proofs), `keyservice`
//!   ([`KeyService`], optional).
//! * What they agree on: `config` ([`FederationConfig`]), `roster`
//!   ([`Roster`]) and [`ca`] (identities and certificates), `packing`
//!   ([`PackingPlan`]: ring, modulus and packing of updates), [`quant`]
//!   (quantization and noise), `dp_plan` ([`DpPlan`]: client-level
//!   distributed DP and its accounting, [`FedEpsilon`]), `strategy`
//!   ([`ServerOptimizer`]), `records` (the federation's own audit-log
//!   records, [`FederationRecord`], [`KeySetupRecord`]), [`envelope`]
//!   (sealing key shares between clients).
//! * How they talk: [`messages`] (what the parties take and return),
//!   [`proto`] (their protobuf form, at the transport edge only) and
//!   [`transport`] (the conversions between the two; in-process, gRPC
//!   with mutual TLS, Prometheus).
//! * [`sim`]: a whole federation in one process, and synthetic audit logs;
//!   [`baseline`]: the same without encryption (what encryption costs).
//! * [`secagg`]: the same threshold-CKKS aggregation without coordinator,
//!   ledger or transport, for a host framework (Flower) that relays the
//!   messages.

pub mod baseline;
pub mod ca;
mod client;
mod config;
mod coordinator;
mod dp_plan;
pub mod dp_schedule;
pub mod envelope;
mod error;
mod keyservice;
pub mod messages;
mod metrics;
mod packing;
pub mod quant;
mod records;
mod roster;
pub mod secagg;
pub mod sim;
mod store;
mod strategy;
pub mod training;
pub mod transport;

pub mod proto {
    //! Protocol messages and gRPC services generated from `proto/fed.proto`.
    #![allow(
        missing_docs,
        clippy::all,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )]
    tonic::include_proto!("cipherflow.fed.v1");
}

pub use client::{Action, ClientAgent, ClientOptions};
pub use config::{
    AggregationConfig, DpConfig, FederationConfig, FederationPreset, KeysMode, LocalDpConfig,
    LocalTraining, ModelChoice, NoiseKind, Sizes, StrategyConfig, StrategyKind,
};
pub use coordinator::{
    real_clock, Clock, Coordinator, CoordinatorOptions, Phase, Recovering, RegionalAggregator,
    RoundSummary, UploadItem,
};
pub use dp_plan::{
    ledger_epsilon, rounding_l2_bound, DpPlan, FedEpsilon, LocalDpPlan, MAX_DG_SHARE_SIGMA,
    MIN_SHARE_SIGMA,
};
pub use error::{FedError, Result};
pub use keyservice::{
    check_append_only, load_or_create_master_key, KeyService, MAX_CONSISTENCY_PROOFS,
};
pub use metrics::{Metrics, PrivacyGauges, TransportCounts, TransportRefusals};
pub use packing::{
    coordinate_sum_bound, crs_from_bytes, round_context, round_seeds, PackingPlan, MAX_PACK,
};
pub use records::{
    FederationRecord, KeySetupRecord, RegionSumRecord, RoundAbortedRecord, KIND_FEDERATION,
    KIND_KEY_SETUP, KIND_REGION_SUM, KIND_ROUND_ABORTED, RECORD_VERSION,
};
pub use roster::{
    check_client_id, check_server_name, parse_public, region_ledger_name, KxSecret, RegionEntry,
    Role, Roster, RosterEntry, ServerPin, RESERVED_IDS,
};
pub use sim::{simulate, SimOptions, SimReport};
pub use store::{write_atomic, StateLocation};
pub use strategy::ServerOptimizer;
