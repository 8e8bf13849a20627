//! Shared setup: a small parameter set, and the valid object header so the
//! fuzzer reaches the body decoders (it cannot guess a SHA-256 fingerprint).
use cipherflow_ckks::{CkksParams, ParamsBuilder};
use std::sync::OnceLock;

pub fn params() -> &'static CkksParams {
    static P: OnceLock<CkksParams> = OnceLock::new();
    P.get_or_init(|| {
        ParamsBuilder::new(10)
            .q_bits(&[40, 30])
            .p_bits(&[45])
            .allow_insecure()
            .build()
            .unwrap_or_else(|e| panic!("fuzz params: {e}"))
    })
}

/// `CFHE`, the current format version, `kind`, fingerprint, then `body`.
#[allow(dead_code)]
pub fn with_header(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = b"CFHE".to_vec();
    v.push(cipherflow_ckks::serialize::FORMAT_VERSION);
    v.push(kind);
    v.extend_from_slice(params().fingerprint());
    v.extend_from_slice(body);
    v
}
