//! Fuzzes the parameters literal: bytes and JSON decoding, then the
//! rebuild with all its checks. Any input must give Ok or a typed error,
//! never a panic; what decodes must re-encode to the same bytes.
#![no_main]
use cipherflow_ckks::ParamsLiteral;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(lit) = ParamsLiteral::from_bytes(data) {
        assert_eq!(lit.to_bytes().ok().as_deref(), Some(data));
        // Building large rings is slow; the checks before the ring are
        // what untrusted literals exercise.
        if lit.log_n <= 13 {
            let _ = lit.build(true);
        }
    }
    if let Ok(lit) = serde_json::from_slice::<ParamsLiteral>(data) {
        if lit.log_n <= 13 {
            let _ = lit.build(false);
        }
    }
});
