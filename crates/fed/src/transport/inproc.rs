//! The in-process transport: messages go through their protobuf form and
//! encoding and back, exactly as they would on the wire, so the same
//! conversion and validation runs in a simulation as in a deployment.

use super::convert::OnWire;
use crate::error::{FedError, Result};
use crate::messages::{
    JoinReply, JoinRequest, KeySetupBundle, KeySetupPost, KeySetupQuery, ProofReply, ProofRequest,
    ShareChunk, ShareReceipt, Task, TaskRequest, UploadChunk, UploadReceipt,
};
use prost::Message;

/// Sends a message across an in-process "wire": to its protobuf form,
/// encoded, decoded, and converted back (refused as the receiving side
/// would refuse it).
pub fn roundtrip<D: OnWire>(m: D) -> Result<D> {
    let bytes = D::Proto::from(m).encode_to_vec();
    let back = D::Proto::decode(bytes.as_slice())
        .map_err(|e| FedError::Protocol(format!("decode: {e}")))?;
    D::try_from(back)
}

/// [`roundtrip`] for every message of a stream.
pub fn roundtrip_all<D: OnWire + Clone>(v: &[D]) -> Result<Vec<D>> {
    v.iter().cloned().map(roundtrip).collect()
}

/// A reply as the calling client receives it: a reply that does not convert
/// is [`FedError::Malformed`], as over gRPC.
fn reply<D: OnWire>(m: D) -> Result<D> {
    roundtrip(m).map_err(|e| FedError::Malformed(e.to_string()))
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

impl super::agent::CoordinatorApi for LocalCoordinator {
    fn join(&mut self, r: &JoinRequest) -> Result<JoinReply> {
        let r = roundtrip(r.clone())?;
        let x = self.with(|c, id| c.join(id, &r))?;
        reply(x)
    }
    fn post_key_setup(&mut self, r: &KeySetupPost) -> Result<KeySetupBundle> {
        let r = roundtrip(r.clone())?;
        let x = self.with(|c, id| c.post_key_setup(id, &r))?;
        reply(x)
    }
    fn get_key_setup(&mut self, r: &KeySetupQuery) -> Result<KeySetupBundle> {
        let r = roundtrip(r.clone())?;
        let x = self.with(|c, id| c.get_key_setup(id, &r))?;
        reply(x)
    }
    fn next_task(&mut self, r: &TaskRequest) -> Result<Task> {
        let r = roundtrip(r.clone())?;
        let t = self.with(|c, id| {
            c.tick()?;
            c.next_task(id, &r)
        })?;
        reply(t)
    }
    fn upload(&mut self, chunks: Vec<UploadChunk>) -> Result<UploadReceipt> {
        let chunks = roundtrip_all(&chunks)?;
        let x = self.with(|c, id| c.upload(id, &chunks))?;
        reply(x)
    }
    fn send_share(&mut self, parts: Vec<ShareChunk>) -> Result<ShareReceipt> {
        let parts = roundtrip_all(&parts)?;
        let x = self.with(|c, id| c.send_share(id, &parts))?;
        reply(x)
    }
    fn counted_proof(&mut self, r: &ProofRequest) -> Result<ProofReply> {
        let r = roundtrip(r.clone())?;
        let x = self.with(|c, id| c.counted_proof(id, &r))?;
        reply(x)
    }
}
