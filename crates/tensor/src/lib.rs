#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! * [`layout`]: encrypted tensors with their shape and packing — the
//!   replicated layout (latency mode) and the batched layout (throughput
//!   mode, one example per slot);
//! * [`linear`]: dense, convolution and average-pooling layers as linear
//!   maps, fused when consecutive;
//! * [`matvec`]: plaintext matrix × encrypted vector, diagonal method with
//!   baby-step/giant-step and hoisted rotations, any shape;
//! * [`poly`]: Chebyshev-basis polynomial evaluation (Paterson–Stockmeyer,
//!   depth `⌈log2(d + 1)⌉`, about `2√d` products), approximations of
//!   ReLU, sigmoid, tanh and GELU;
//! * [`ops`]: encrypted sums, means and dot products;
//! * [`plan`]: the compiler from a `cipherflow-nn` model to an encrypted
//!   plan with automatically chosen 128-bit secure parameters;
//! * [`server`]: running a plan on ciphertexts (the server side);
//! * [`privacy`]: the proven bound of a run's output and the circuit
//!   privacy of what the server returns (re-randomized, flooded as the
//!   bound allows) — [`EncryptedModel::respond`];
//! * [`handoff`]: the output handed off as additive shares for a
//!   secret-shared tail ([`EncryptedModel::respond_handoff`]);
//! * [`wire`]: the bytes of encrypted tensors and evaluation keys as they
//!   travel, strictly parsed;
//! * [`client`]: the client side, from the model's published input
//!   specification: keys and encryption, no weights;
//! * [`job`]: the whole run a front end makes ([`EncryptedRun`]):
//!   calibrated approximations, plan, keys from the spec, inputs chunk by
//!   chunk through their byte encodings, each compared with the exact model.
//!

pub mod client;
pub mod deploy;
mod error;
pub mod handoff;
pub mod job;
pub mod layout;
pub mod linear;
pub mod matvec;
pub mod ops;
pub mod plan;
pub mod poly;
pub mod privacy;
pub mod server;
pub mod vector;
pub mod wire;

pub use client::{InputSpec, KeySet, ModelClient};
pub use deploy::{ClientHalf, DeployOptions, ServerHalf};
pub use error::TensorError;
pub use handoff::{ActivationDecoding, ActivationShares, HandoffParams};
pub use job::{
    approximate_with, calibrate, Approximation, EncryptedRun, InputResult, OutputOptions, RunTotals,
};
pub use layout::{EncTensor, Layout};
pub use linear::LinearMap;
pub use matvec::EncodedMatVec;
pub use plan::{Approximate, CompileOptions, Plan, Stage};
pub use poly::{Approx, Interval, Polynomial};
pub use privacy::{CircuitPrivacy, OutputPrivacy};
pub use server::{EncryptedModel, Mode};
pub use vector::{choose_params, CkksVector, Released, VectorContext};
pub use wire::EvalKeys;
