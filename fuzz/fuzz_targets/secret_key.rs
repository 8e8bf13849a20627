//! Fuzzes the SecretKey decoder: any input must give Ok or a typed error, never a panic.
#![no_main]
use cipherflow_ckks::SecretKey;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::params();
    let _ = SecretKey::from_bytes(p, data);
    let _ = SecretKey::from_bytes(p, &common::with_header(3, data));
});
