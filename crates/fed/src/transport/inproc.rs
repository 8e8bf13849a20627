//! The in-process transport: messages go through their protobuf encoding
//! and back, exactly as they would on the wire, so the same decoding and
//! validation runs in a simulation as in a deployment.

use crate::error::{FedError, Result};

/// Encodes and decodes a message (a protobuf round trip).
pub fn roundtrip<M: prost::Message + Default>(m: &M) -> Result<M> {
    M::decode(m.encode_to_vec().as_slice()).map_err(|e| FedError::Protocol(format!("decode: {e}")))
}

/// An in-process coordinator endpoint for one client identity (threads
/// share the coordinator behind a mutex).
pub struct LocalCoordinator {
    /// The shared coordinator.
    pub coord: std::sync::Arc<std::sync::Mutex<crate::coordinator::Coordinator>>,
    /// The caller's identity.
    pub client_id: String,
}

impl LocalCoordinator {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut crate::coordinator::Coordinator, &str) -> Result<T>,
    ) -> Result<T> {
        let mut c = self
            .coord
            .lock()
            .map_err(|_| FedError::Transport("coordinator lock poisoned".into()))?;
        f(&mut c, &self.client_id)
    }
}

fn wire_all<M: prost::Message + Default>(v: &[M]) -> Result<Vec<M>> {
    v.iter().map(roundtrip).collect()
}

impl super::agent::CoordinatorApi for LocalCoordinator {
    fn join(&mut self, r: &crate::proto::JoinRequest) -> Result<crate::proto::JoinReply> {
        let r = roundtrip(r)?;
        self.with(|c, id| c.join(id, &r))
            .and_then(|x| roundtrip(&x))
    }
    fn post_key_setup(
        &mut self,
        r: &crate::proto::KeySetupPost,
    ) -> Result<crate::proto::KeySetupBundle> {
        let r = roundtrip(r)?;
        self.with(|c, id| c.post_key_setup(id, &r))
            .and_then(|x| roundtrip(&x))
    }
    fn get_key_setup(
        &mut self,
        r: &crate::proto::KeySetupQuery,
    ) -> Result<crate::proto::KeySetupBundle> {
        let r = roundtrip(r)?;
        self.with(|c, id| c.get_key_setup(id, &r))
            .and_then(|x| roundtrip(&x))
    }
    fn next_task(&mut self, r: &crate::proto::TaskRequest) -> Result<crate::proto::Task> {
        let r = roundtrip(r)?;
        let t = self.with(|c, id| {
            c.tick()?;
            c.next_task(id, &r)
        })?;
        roundtrip(&t)
    }
    fn upload(
        &mut self,
        chunks: Vec<crate::proto::UploadChunk>,
    ) -> Result<crate::proto::UploadReceipt> {
        let chunks = wire_all(&chunks)?;
        self.with(|c, id| c.upload(id, &chunks))
            .and_then(|x| roundtrip(&x))
    }
    fn send_share(
        &mut self,
        parts: Vec<crate::proto::ShareChunk>,
    ) -> Result<crate::proto::ShareReceipt> {
        let parts = wire_all(&parts)?;
        self.with(|c, id| c.send_share(id, &parts))
            .and_then(|x| roundtrip(&x))
    }
    fn counted_proof(
        &mut self,
        r: &crate::proto::ProofRequest,
    ) -> Result<crate::proto::ProofReply> {
        let r = roundtrip(r)?;
        self.with(|c, id| c.counted_proof(id, &r))
            .and_then(|x| roundtrip(&x))
    }
}
