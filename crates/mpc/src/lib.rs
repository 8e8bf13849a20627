#![doc = include_str!("../README.md")]
//!
//! ## Modules, low to high
//!
//! * [`z2k`], [`kernels`]: ring arithmetic, fixed point, the blocked
//!   matrix-product kernel (no networking);
//! * [`prf`]: pairwise ChaCha20 keys for zero sharings and shared
//!   randomness (no trusted dealer);
//! * [`transport`]: the [`Transport`] trait, in-process channels, TCP with
//!   mutual TLS;
//! * [`Party`] (a party's session: keys, transport, per-operation byte and
//!   round counters) and [`protocols`] (its methods);
//! * [`computation`]: `private_input`, `private_variable`, `reveal_to`,
//!   and [`run_local`] to run three parties in one process;
//! * [`Program`]: a computation as data (nodes and outputs), validated,
//!   agreed on by digest and run by each party — what the Python
//!   package's `cipherflow.mpc` builds;
//! * [`programs`]: private prediction with an nn model and private
//!   logistic regression;
//! * [`jobs`]: those programs as whole jobs a front end runs — three
//!   parties here or one party of three processes — with their reports.

pub mod computation;
mod error;
mod graph;
pub mod jobs;
pub mod kernels;
mod party;
pub mod prf;
pub mod programs;
pub mod protocols;
pub mod transport;
pub mod z2k;

pub use computation::{
    run_local, run_local_with_timeout, run_party, LocalRun, Network, PartyRun, Roles,
};
pub use error::MpcError;
pub use graph::{
    Node, Output, Program, MAX_ELEMENTS, MAX_NODES, MAX_PROGRAM_BYTES, PROGRAM_VERSION,
};
pub use party::{AShare, BShare, OpStats, Party, Stats};
pub use transport::{local_mesh, Transport};
pub use z2k::{FixedPoint, Z2k};

/// Re-exported so callers build matrices with the same ndarray version.
pub use ndarray;
