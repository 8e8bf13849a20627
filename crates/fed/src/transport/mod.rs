//! Transports: in-process (simulations and tests) and gRPC over mutual TLS,
//! the client's main loop over either, and the conversions between the
//! protocol's messages and their protobuf form (every message crosses
//! them, in process too).

pub mod agent;
mod convert;
pub use convert::OnWire;
pub mod grpc;
pub mod inproc;
pub mod metrics;
pub mod region;
mod remote;
pub mod shape;
pub mod tls;
