//! "Verify that my update was counted", in the page: a proof file from
//! `cipherflow audit prove` checked against the log's public key, with
//! nothing sent anywhere.

use crate::error::WebError;
use cipherflow_ledger::{verify_proof_file, PublicKey, SignedTreeHead, MAX_PROOF_BYTES};

/// Largest proof file the page reads (JSON: hex of at most
/// [`MAX_PROOF_BYTES`] of binary proof, with room for its field names).
pub const MAX_PROOF_FILE_BYTES: usize = 4 * MAX_PROOF_BYTES;

/// Verifies `proof_json` (an `entry_proof` or `counted_proof` file) with
/// `public_key_text` (the log's `PREFIX.pub` file). Returns JSON:
/// `{"type": …, "verified": …}`, what the proof establishes.
pub fn verify_proof(proof_json: &str, public_key_text: &str) -> Result<String, WebError> {
    if proof_json.len() > MAX_PROOF_FILE_BYTES {
        return Err(WebError::Proof(format!(
            "a proof file of more than {MAX_PROOF_FILE_BYTES} bytes"
        )));
    }
    let key = parse_key(public_key_text)?;
    let v: serde_json::Value = serde_json::from_str(proof_json)
        .map_err(|e| WebError::Proof(format!("not a proof file (JSON): {e}")))?;
    let (kind, detail) =
        verify_proof_file(v, &key, None).map_err(|e| WebError::Proof(e.to_string()))?;
    Ok(serde_json::json!({ "type": kind, "verified": detail }).to_string())
}

/// Verifies a signed tree head (its JSON, as the federation dashboard
/// receives it) with the log's public key (64 hex digits, or a `.pub`
/// file's text). Returns JSON: `{"tree_size", "root_hash",
/// "timestamp_ms"}`, what the signature covers.
pub fn verify_head(sth_json: &str, public_key: &str) -> Result<String, WebError> {
    if sth_json.len() > 4096 {
        return Err(WebError::Proof(
            "a signed head of more than 4096 bytes".into(),
        ));
    }
    let key = parse_key(public_key)?;
    let sth: SignedTreeHead = serde_json::from_str(sth_json)
        .map_err(|e| WebError::Proof(format!("not a signed head: {e}")))?;
    key.verify_head(&sth, None)
        .map_err(|e| WebError::Proof(e.to_string()))?;
    Ok(serde_json::json!({
        "tree_size": sth.tree_size,
        "root_hash": hex::encode(sth.root_hash),
        "timestamp_ms": sth.timestamp_ms,
    })
    .to_string())
}

/// A public key as 64 hex digits or a key file's text.
fn parse_key(text: &str) -> Result<PublicKey, WebError> {
    let bad = |e: String| WebError::Proof(format!("the public key: {e}"));
    let t = text.trim();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut b = [0u8; 32];
        hex::decode_to_slice(t, &mut b).map_err(|e| bad(e.to_string()))?;
        return PublicKey::from_bytes(&b).map_err(|e| bad(e.to_string()));
    }
    PublicKey::from_text(text).map_err(|e| bad(e.to_string()))
}
