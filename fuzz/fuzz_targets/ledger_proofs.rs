//! Fuzzes the proof files a third party is handed (JSON): entry, counted,
//! consistency and inclusion proofs and signed heads, parsed and verified
//! under the fuzz log's key. Any input must give Ok or a typed error.
#![no_main]
use cipherflow_ledger::{
    ConsistencyProof, CountedProof, EntryProof, InclusionProof, LogSigner, SignedTreeHead,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = LogSigner::from_seed(&[7; 32]).public_key();
    if let Ok(p) = serde_json::from_slice::<CountedProof>(data) {
        let _ = p.verify(&key, None);
    }
    if let Ok(p) = serde_json::from_slice::<EntryProof>(data) {
        let _ = p.verify(&key, None);
    }
    if let Ok(p) = serde_json::from_slice::<ConsistencyProof>(data) {
        let _ = p.verify(&[0; 32], &[1; 32]);
    }
    if let Ok(p) = serde_json::from_slice::<InclusionProof>(data) {
        let _ = p.verify(&[0; 32], &[1; 32]);
    }
    if let Ok(h) = serde_json::from_slice::<SignedTreeHead>(data) {
        let _ = key.verify_head(&h, None);
    }
});
