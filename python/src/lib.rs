//! `cipherflow._native`: the Python package's bindings over the Rust crates.
//! Thin on purpose: each function parses its arguments, calls one library
//! function with the GIL released, and converts the result; errors become
//! Python exceptions under one base, `cipherflow.CipherflowError`, carrying
//! the Rust error's message. The Python modules (`cipherflow.dp`,
//! `cipherflow.ledger`) hold the documented API.

use cipherflow_dp::{Accountant, DpError as RustDpError};
use cipherflow_ledger::{verify_proof_file, ProofFileError, PublicKey};
use pyo3::prelude::*;

mod bench;
mod ckks;
mod errors;
mod mpc;

use errors::{DpError, LedgerError, ProofError};

fn dp_err(e: RustDpError) -> PyErr {
    DpError::new_err(e.to_string())
}

fn accountant(name: &str) -> PyResult<Accountant> {
    name.parse().map_err(dp_err)
}

/// ε (and the RDP order) after `steps` steps of the Poisson-subsampled
/// Gaussian mechanism.
#[pyfunction]
fn dp_epsilon(
    py: Python<'_>,
    accountant_name: &str,
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
) -> PyResult<(f64, Option<f64>)> {
    let acc = accountant(accountant_name)?;
    let r = py
        .allow_threads(|| cipherflow_dp::epsilon(acc, q, sigma, steps, delta))
        .map_err(dp_err)?;
    Ok((r.epsilon, r.order))
}

/// The smallest noise multiplier meeting a target ε.
#[pyfunction]
fn dp_calibrate_sigma(
    py: Python<'_>,
    accountant_name: &str,
    q: f64,
    steps: u64,
    delta: f64,
    target_epsilon: f64,
) -> PyResult<f64> {
    let acc = accountant(accountant_name)?;
    py.allow_threads(|| cipherflow_dp::calibrate_sigma(acc, q, steps, delta, target_epsilon))
        .map_err(dp_err)
}

/// Verifies a proof file's JSON with a public key (key-file text);
/// returns the proof's type and what it establishes (JSON text).
#[pyfunction]
#[pyo3(signature = (proof_json, public_key, log_id_hex=None))]
fn ledger_verify_proof(
    py: Python<'_>,
    proof_json: &str,
    public_key: &str,
    log_id_hex: Option<&str>,
) -> PyResult<(String, String)> {
    let key = PublicKey::from_text(public_key)
        .map_err(|e| LedgerError::new_err(format!("public key: {e}")))?;
    let log_id = match log_id_hex {
        Some(h) => {
            let mut b = [0u8; 32];
            hex::decode_to_slice(h.trim(), &mut b)
                .map_err(|e| LedgerError::new_err(format!("log id: {e}")))?;
            Some(b)
        }
        None => None,
    };
    let v: serde_json::Value = serde_json::from_str(proof_json)
        .map_err(|e| LedgerError::new_err(format!("a proof file is JSON: {e}")))?;
    let (kind, detail) = py
        .allow_threads(|| verify_proof_file(v, &key, log_id.as_ref()))
        .map_err(|e| match e {
            ProofFileError::Failed(_) => ProofError::new_err(e.to_string()),
            other => LedgerError::new_err(other.to_string()),
        })?;
    Ok((kind, detail.to_string()))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<ckks::PyParams>()?;
    m.add_class::<ckks::PyContext>()?;
    m.add_class::<ckks::PyVector>()?;
    m.add_function(wrap_pyfunction!(bench::bench_rust_op, m)?)?;
    m.add_function(wrap_pyfunction!(mpc::mpc_run_local, m)?)?;
    m.add_function(wrap_pyfunction!(mpc::mpc_run_party, m)?)?;
    m.add_function(wrap_pyfunction!(mpc::mpc_write_network, m)?)?;
    m.add_function(wrap_pyfunction!(dp_epsilon, m)?)?;
    m.add_function(wrap_pyfunction!(dp_calibrate_sigma, m)?)?;
    m.add_function(wrap_pyfunction!(ledger_verify_proof, m)?)?;
    Ok(())
}
