//! Transports: in-process (simulations and tests) and gRPC over mutual TLS,
//! and the client's main loop over either.

pub mod agent;
pub mod grpc;
pub mod inproc;
pub mod metrics;
pub mod tls;
