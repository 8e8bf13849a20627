#![doc = include_str!("../README.md")]
//!
//! ## Modules, by role
//!
//! * The parties: [`coordinator`] (the untrusted aggregator: rounds,
//!   uploads, decryption, its durable [`store`] and [`metrics`]),
//!   [`client`] (a hospital's agent: key setup, local [`training`],
//!   encryption, decryption shares, proofs), [`keyservice`] (the optional
//!   key service).
//! * What they agree on: [`config`] (the federation), [`roster`] and
//!   [`ca`] (identities and certificates), [`packing`] (ring, modulus and
//!   packing of updates), [`quant`] (quantization and noise), [`dp_plan`]
//!   (client-level distributed DP and its accounting), [`strategy`]
//!   (server optimizers), [`records`] (the federation's own audit-log
//!   records), [`envelope`] (sealing key shares between clients).
//! * How they talk: [`proto`] (the messages, at the transport edge) and
//!   [`transport`] (in-process, gRPC with mutual TLS, Prometheus).
//! * [`sim`]: a whole federation in one process, and synthetic audit logs.
//!
//! The types most programs need are re-exported here.

pub mod ca;
pub mod client;
pub mod config;
pub mod coordinator;
pub mod dp_plan;
pub mod envelope;
pub mod error;
pub mod keyservice;
pub mod metrics;
pub mod packing;
pub mod quant;
pub mod records;
pub mod roster;
pub mod sim;
pub mod store;
pub mod strategy;
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
pub use config::{FederationConfig, FederationPreset, KeysMode};
pub use coordinator::{Coordinator, CoordinatorOptions, Phase, RoundSummary};
pub use error::{FedError, Result};
pub use keyservice::KeyService;
pub use sim::{simulate, SimOptions, SimReport};
