//! The in-process transport: messages go through their protobuf encoding
//! and back, exactly as they would on the wire, so the same decoding and
//! validation runs in a simulation as in a deployment.

use crate::error::{FedError, Result};

/// Encodes and decodes a message (a protobuf round trip).
pub fn wire<M: prost::Message + Default>(m: &M) -> Result<M> {
    M::decode(m.encode_to_vec().as_slice()).map_err(|e| FedError::Protocol(format!("decode: {e}")))
}
