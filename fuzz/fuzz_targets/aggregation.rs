//! Fuzzes the aggregation decoders (share-encrypted vectors and aggregate
//! decryption shares): any input must give Ok or a typed error, never a panic.
#![no_main]
use cipherflow_ckks::multiparty::{AggregateShare, SharedCiphertext};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::params();
    let _ = SharedCiphertext::from_bytes(p, data);
    let _ = SharedCiphertext::from_bytes(p, &common::with_header(11, data));
    let _ = AggregateShare::from_bytes(p, &common::with_header(12, data));
});
