//! Fuzzes the Ciphertext decoder: any input must give Ok or a typed error, never a panic.
#![no_main]
use cipherflow_ckks::Ciphertext;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::params();
    let _ = Ciphertext::from_bytes(p, data);
    let _ = Ciphertext::from_bytes(p, &common::with_header(1, data));
});
