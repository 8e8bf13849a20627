//! Transports: in-process (simulations and tests) and gRPC over mutual TLS.

pub mod inproc;
