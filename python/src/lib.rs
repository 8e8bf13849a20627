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
mod deploy;
mod errors;
mod mpc;
mod platform;
mod secagg;

use errors::{DpError, LedgerError, ProofError};

// As in the CLI: polynomials of hundreds of kilobytes are allocated per
// operation, and glibc serves them with fresh mmaps that page-fault on
// every touch. mimalloc keeps them in arenas (`bench/python_ckks.py`, N =
// 2^13: a relinearized product 1.77 → 1.25 ms, a sum of 4096 slots 18.3 →
// 13.0 ms; bench/results/python-ckks-20261206T095540Z.jsonl against
// …T104525Z.jsonl). Only this module's Rust allocations go through it;
// arrays handed to numpy are freed by it too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Heavy computation from Python: the GIL released, and the whole call run
/// on a worker of rayon's pool. The library's operations are made of many
/// small parallel steps (one per RNS limb); started from the interpreter's
/// thread, each step is handed to the pool and the thread sleeps until it
/// is done, a wake-up per step that can cost more than the step itself on
/// a small vector. Handed over once, the steps run where they are.
/// For computation only: a call that waits on the network or on another
/// party would hold a worker of the pool while it waits.
pub(crate) trait Unlocked {
    /// Runs `f` with the GIL released, on a worker of rayon's pool.
    fn unlocked<T, F>(self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send;
}

impl Unlocked for Python<'_> {
    fn unlocked<T, F>(self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        self.allow_threads(|| rayon::scope(|_| f()))
    }
}

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

/// A Poisson sample of `0..n` at rate `q`, from ChaCha20 seeded by the OS.
#[pyfunction]
fn dp_poisson_sample<'py>(
    py: Python<'py>,
    n: usize,
    q: f64,
) -> PyResult<Bound<'py, numpy::PyArray1<i64>>> {
    let mut rng =
        cipherflow_ring::sampler::secure_rng().map_err(|e| DpError::new_err(e.to_string()))?;
    let s = py
        .allow_threads(|| cipherflow_dp::poisson_sample(&mut rng, n, q))
        .map_err(dp_err)?;
    let v: Vec<i64> = s.into_iter().map(|i| i as i64).collect();
    Ok(numpy::IntoPyArray::into_pyarray(v, py))
}

/// `n` draws of N(0, std²) as float32, from ChaCha20 seeded by the OS
/// (DP noise must not come from a predictable generator).
#[pyfunction]
fn dp_gaussian_noise<'py>(
    py: Python<'py>,
    n: usize,
    std: f64,
) -> PyResult<Bound<'py, numpy::PyArray1<f32>>> {
    if n > 1 << 31 {
        return Err(DpError::new_err(format!("{n} noise values (at most 2^31)")));
    }
    let mut rng =
        cipherflow_ring::sampler::secure_rng().map_err(|e| DpError::new_err(e.to_string()))?;
    let v = py
        .allow_threads(|| {
            let mut out = vec![0f64; n];
            cipherflow_dp::try_gaussian_noise(&mut rng, std, &mut out)
                .map(|()| out.into_iter().map(|x| x as f32).collect::<Vec<f32>>())
        })
        .map_err(dp_err)?;
    Ok(numpy::IntoPyArray::into_pyarray(v, py))
}

/// The shipped digits data set (1,797 8×8 images, UCI): features
/// `[N, 64]` in [0, 1] and labels.
#[pyfunction]
fn dataset_digits<'py>(
    py: Python<'py>,
) -> PyResult<(
    Bound<'py, numpy::PyArray2<f32>>,
    Bound<'py, numpy::PyArray1<i64>>,
)> {
    let d = cipherflow_nn::examples::digits()
        .map_err(|e| errors::CipherflowError::new_err(e.to_string()))?;
    let x = d.features().clone();
    let y: Vec<i64> = d.labels().iter().map(|&l| l as i64).collect();
    Ok((
        numpy::IntoPyArray::into_pyarray(x, py),
        numpy::IntoPyArray::into_pyarray(y, py),
    ))
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
    m.add_class::<deploy::PyServerHalf>()?;
    m.add_class::<deploy::PyClientHalf>()?;
    m.add_class::<deploy::PyEvalKeys>()?;
    m.add_class::<platform::PySession>()?;
    m.add_class::<secagg::PySecAggParty>()?;
    m.add_class::<secagg::PySecAggServer>()?;
    m.add_function(wrap_pyfunction!(bench::bench_rust_op, m)?)?;
    m.add_function(wrap_pyfunction!(mpc::mpc_run_local, m)?)?;
    m.add_function(wrap_pyfunction!(mpc::mpc_run_party, m)?)?;
    m.add_function(wrap_pyfunction!(mpc::mpc_write_network, m)?)?;
    m.add_function(wrap_pyfunction!(dp_epsilon, m)?)?;
    m.add_function(wrap_pyfunction!(dp_calibrate_sigma, m)?)?;
    m.add_function(wrap_pyfunction!(dp_poisson_sample, m)?)?;
    m.add_function(wrap_pyfunction!(dp_gaussian_noise, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_digits, m)?)?;
    m.add_function(wrap_pyfunction!(ledger_verify_proof, m)?)?;
    Ok(())
}
