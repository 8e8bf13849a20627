#![doc = include_str!("../README.md")]

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

pub use error::{FedError, Result};
