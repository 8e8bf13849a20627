//! Fuzzes the RelinKey decoder: any input must give Ok or a typed error, never a panic.
#![no_main]
use cipherflow_ckks::RelinKey;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::params();
    let _ = RelinKey::from_bytes(p, data);
    let _ = RelinKey::from_bytes(p, &common::with_header(4, data));
});
