//! "Verify that my update was counted", in the page: a proof file from
//! `cipherflow audit prove` checked against the log's public key, with
//! nothing sent anywhere.

use crate::error::WebError;
use cipherflow_ledger::{verify_proof_file, PublicKey, MAX_PROOF_BYTES};

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
    let key = PublicKey::from_text(public_key_text)
        .map_err(|e| WebError::Proof(format!("the public key file: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(proof_json)
        .map_err(|e| WebError::Proof(format!("not a proof file (JSON): {e}")))?;
    let (kind, detail) =
        verify_proof_file(v, &key, None).map_err(|e| WebError::Proof(e.to_string()))?;
    Ok(serde_json::json!({ "type": kind, "verified": detail }).to_string())
}
