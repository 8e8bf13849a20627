//! Fuzzes the ledger's entry and aggregate-input decoders. Beyond "no
//! panic": whatever decodes must re-encode to the same bytes (the encoding
//! is canonical, so one entry has one leaf hash).
#![no_main]
use cipherflow_ledger::{AggregateInput, Entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::decode(data) {
        assert_eq!(e.encode(), data, "entry encoding is not canonical");
        let _ = e.body.validate();
    }
    if let Ok(i) = AggregateInput::decode(data) {
        assert_eq!(i.encode(), data, "aggregate input encoding is not canonical");
    }
});
