//! Fuzzes what a federation's parties do with the messages they receive:
//! a coordinator with a round open takes joins, task polls, uploads,
//! shares, key-setup posts and proof requests from a client; a client takes
//! join replies, tasks, key-setup bundles, receipts and proofs from the
//! coordinator. The first byte picks the handler, the rest is the protobuf
//! message, converted at the transport edge as a real transport does. Any
//! input must give Ok or a typed error, never a panic.
#![no_main]
use cipherflow_fed::messages as m;
use cipherflow_fed::transport::OnWire;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// The protobuf bytes as the receiving party sees them (`None`: refused by
/// the decoder or at the edge, which must not panic either).
fn domain<D: OnWire>(bytes: &[u8]) -> Option<D> {
    D::try_from(D::Proto::decode(bytes).ok()?).ok()
}

#[path = "fed_common.rs"]
mod fed_common;

fuzz_target!(|data: &[u8]| {
    let Some((&which, msg)) = data.split_first() else {
        return;
    };
    let mut guard = fed_common::federation()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fed = &mut *guard;
    let id = "client-2";
    match which % 12 {
        0 => {
            if let Some(m) = domain::<m::JoinRequest>(msg) {
                let _ = fed.coord.join(id, &m);
            }
        }
        1 => {
            if let Some(m) = domain::<m::TaskRequest>(msg) {
                let _ = fed.coord.next_task(id, &m);
            }
        }
        2 => {
            if let Some(m) = domain::<m::UploadChunk>(msg) {
                let _ = fed.coord.upload(id, &[m]);
            }
        }
        3 => {
            if let Some(m) = domain::<m::ShareChunk>(msg) {
                let _ = fed.coord.send_share(id, &[m]);
            }
        }
        4 => {
            if let Some(m) = domain::<m::KeySetupPost>(msg) {
                let _ = fed.coord.post_key_setup(id, &m);
            }
        }
        5 => {
            if let Some(m) = domain::<m::ProofRequest>(msg) {
                let _ = fed.coord.counted_proof(id, &m);
            }
        }
        6 => {
            if let Some(m) = domain::<m::JoinReply>(msg) {
                let _ = fed.clients[1].on_join(&m);
            }
        }
        7 => {
            if let Some(m) = domain::<m::Task>(msg) {
                let _ = fed.clients[1].handle(&m);
            }
        }
        8 => {
            if let Some(m) = domain::<m::KeySetupBundle>(msg) {
                let _ = fed.clients[1].on_key_setup(&m);
            }
        }
        9 => {
            if let Some(m) = domain::<m::UploadReceipt>(msg) {
                let _ = fed.clients[1].on_receipt(&m);
            }
        }
        10 => {
            if let Some(m) = domain::<m::ProofReply>(msg) {
                let _ = fed.clients[1].on_counted_proof(&m);
            }
        }
        _ => {
            // The key service's request: the conversion is what runs.
            std::hint::black_box(domain::<m::KeyServiceDecrypt>(msg));
        }
    }
});
