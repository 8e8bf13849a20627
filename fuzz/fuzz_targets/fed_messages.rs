//! Fuzzes what a federation's parties do with the messages they receive:
//! a coordinator with a round open takes joins, task polls, uploads,
//! shares, key-setup posts and proof requests from a client; a client takes
//! join replies, tasks, key-setup bundles, receipts and proofs from the
//! coordinator. The first byte picks the handler, the rest is the protobuf
//! message. Any input must give Ok or a typed error, never a panic.
#![no_main]
use cipherflow_fed::proto;
use libfuzzer_sys::fuzz_target;
use prost::Message;

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
            if let Ok(m) = proto::JoinRequest::decode(msg) {
                let _ = fed.coord.join(id, &m);
            }
        }
        1 => {
            if let Ok(m) = proto::TaskRequest::decode(msg) {
                let _ = fed.coord.next_task(id, &m);
            }
        }
        2 => {
            if let Ok(m) = proto::UploadChunk::decode(msg) {
                let _ = fed.coord.upload(id, &[m]);
            }
        }
        3 => {
            if let Ok(m) = proto::ShareChunk::decode(msg) {
                let _ = fed.coord.send_share(id, &[m]);
            }
        }
        4 => {
            if let Ok(m) = proto::KeySetupPost::decode(msg) {
                let _ = fed.coord.post_key_setup(id, &m);
            }
        }
        5 => {
            if let Ok(m) = proto::ProofRequest::decode(msg) {
                let _ = fed.coord.counted_proof(id, &m);
            }
        }
        6 => {
            if let Ok(m) = proto::JoinReply::decode(msg) {
                let _ = fed.clients[1].on_join(&m);
            }
        }
        7 => {
            if let Ok(m) = proto::Task::decode(msg) {
                let _ = fed.clients[1].handle(&m);
            }
        }
        8 => {
            if let Ok(m) = proto::KeySetupBundle::decode(msg) {
                let _ = fed.clients[1].on_key_setup(&m);
            }
        }
        9 => {
            if let Ok(m) = proto::UploadReceipt::decode(msg) {
                let _ = fed.clients[1].on_receipt(&m);
            }
        }
        10 => {
            if let Ok(m) = proto::ProofReply::decode(msg) {
                let _ = fed.clients[1].on_counted_proof(&m);
            }
        }
        _ => {
            if let Ok(m) = proto::KeyServiceDecrypt::decode(msg) {
                let _ = m.encoded_len();
            }
        }
    }
});
