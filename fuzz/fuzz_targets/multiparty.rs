//! Fuzzes the threshold-multiparty decoders (secret shares, public-key
//! shares, Shamir shares, threshold secrets, decryption shares): the first
//! byte picks the decoder. Any input must give Ok or a typed error; what
//! decodes must re-encode to the same bytes.
#![no_main]
use cipherflow_ckks::multiparty::{
    DecryptionShare, PublicKeyShare, SecretShare, ShamirShare, ThresholdSecret,
};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let p = common::params();
    match which % 5 {
        0 => {
            if let Ok(s) = SecretShare::from_bytes(p, body) {
                assert_eq!(&s.to_bytes()[..], body);
            }
        }
        1 => {
            if let Ok(s) = PublicKeyShare::from_bytes(p, body) {
                assert_eq!(&s.to_bytes()[..], body);
            }
        }
        2 => {
            if let Ok(s) = ShamirShare::from_bytes(p, body) {
                assert_eq!(&s.to_bytes()[..], body);
            }
        }
        3 => {
            if let Ok(s) = ThresholdSecret::from_bytes(p, body) {
                assert_eq!(&s.to_bytes()[..], body);
            }
        }
        _ => {
            if let Ok(s) = DecryptionShare::from_bytes(p, body) {
                assert_eq!(&s.to_bytes()[..], body);
            }
        }
    }
});
