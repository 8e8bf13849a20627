//! Fuzzes the proofs a party or a third party is handed: entry, counted,
//! consistency and inclusion proofs, input lists and signed heads, in both
//! forms — the JSON files people pass around and the binary encodings the
//! parties send each other — parsed and verified under the fuzz log's key.
//! Any input must give Ok or a typed error; a decoded binary proof must
//! re-encode to the same bytes (one encoding per value).
#![no_main]
use cipherflow_ledger::{
    AggregateInput, ConsistencyProof, CountedProof, EntryProof, InclusionProof, LogSigner,
    SignedTreeHead,
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
    if let Ok(p) = CountedProof::decode(data) {
        assert_eq!(p.encode(), data);
        let _ = p.verify(&key, None);
    }
    if let Ok(p) = EntryProof::decode(data) {
        assert_eq!(p.encode(), data);
        let _ = p.verify(&key, None);
    }
    if let Ok(p) = ConsistencyProof::decode(data) {
        assert_eq!(p.encode(), data);
        let _ = p.verify(&[0; 32], &[1; 32]);
    }
    if let Ok(p) = InclusionProof::decode(data) {
        assert_eq!(p.encode(), data);
        let _ = p.verify(&[0; 32], &[1; 32]);
    }
    if let Ok(list) = ConsistencyProof::decode_list(data) {
        assert_eq!(ConsistencyProof::encode_list(&list), data);
    }
    if let Ok(list) = AggregateInput::decode_list(data) {
        assert_eq!(AggregateInput::encode_list(&list), data);
        let _ = cipherflow_ledger::entry::inputs_root(&list);
    }
});
