//! `cipherflow.mpc`'s native half: programs built in Python (as JSON) run
//! by three parties in threads of this process, or by this process as one
//! party of three over mutually authenticated TLS.

use crate::errors::{MpcError as PyMpcError, ProgramError};
use cipherflow_mpc::ndarray::Array2;
use cipherflow_mpc::{run_local, run_party, FixedPoint, MpcError, Network, Party, Program, Stats};
use numpy::{IntoPyArray, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn mpc_err(e: MpcError) -> PyErr {
    match e {
        MpcError::Program(_) | MpcError::Shape { .. } => ProgramError::new_err(e.to_string()),
        other => PyMpcError::new_err(other.to_string()),
    }
}

type Inputs = BTreeMap<usize, Array2<f64>>;

fn read_inputs(inputs: &Bound<'_, PyDict>) -> PyResult<Inputs> {
    let mut out = BTreeMap::new();
    for (k, v) in inputs.iter() {
        let node: usize = k.extract()?;
        let a: PyReadonlyArray2<'_, f64> = v.extract()?;
        out.insert(node, a.as_array().to_owned());
    }
    Ok(out)
}

fn outputs<'py>(
    py: Python<'py>,
    values: BTreeMap<String, Array2<f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, a) in values {
        d.set_item(name, a.into_pyarray(py))?;
    }
    Ok(d)
}

fn stats<'py>(py: Python<'py>, s: &Stats, seconds: f64) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("bytes", s.bytes())?;
    d.set_item("rounds", s.rounds())?;
    d.set_item("seconds", seconds)?;
    Ok(d)
}

fn fixed_point(frac_bits: u32) -> PyResult<FixedPoint> {
    FixedPoint::new::<u64>(frac_bits).map_err(mpc_err)
}

/// Runs `program_json` as three parties in this process; `inputs` maps
/// input nodes to values (each party receives only those it owns).
/// Returns each party's outputs and the traffic.
#[pyfunction]
pub fn mpc_run_local<'py>(
    py: Python<'py>,
    program_json: &str,
    inputs: &Bound<'py, PyDict>,
    frac_bits: u32,
    tls: bool,
) -> PyResult<(Vec<Bound<'py, PyDict>>, Bound<'py, PyDict>)> {
    let program = Program::from_json(program_json).map_err(mpc_err)?;
    let all = read_inputs(inputs)?;
    let per_party: Vec<Inputs> = (0..3)
        .map(|id| {
            let mine = program.inputs_of(id);
            all.iter()
                .filter(|(k, _)| mine.contains_key(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        })
        .collect();
    let fp = fixed_point(frac_bits)?;
    let net = if tls {
        Network::LocalTls
    } else {
        Network::InProcess
    };
    let run = py
        .allow_threads(|| {
            run_local::<u64, _, _>(net, fp, |p: &mut Party| {
                let own = per_party.get(p.id()).cloned().unwrap_or_default();
                program.run(p, &own)
            })
        })
        .map_err(mpc_err)?;
    let outs = run
        .outputs
        .into_iter()
        .map(|o| outputs(py, o))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((outs, stats(py, &run.stats, run.seconds)?))
}

/// Runs `program_json` as party `party` of three processes described by
/// the network file; `inputs` holds this party's own inputs only.
#[pyfunction]
pub fn mpc_run_party<'py>(
    py: Python<'py>,
    program_json: &str,
    party: usize,
    network_file: PathBuf,
    inputs: &Bound<'py, PyDict>,
    frac_bits: u32,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    let program = Program::from_json(program_json).map_err(mpc_err)?;
    let own = read_inputs(inputs)?;
    let fp = fixed_point(frac_bits)?;
    let run = py
        .allow_threads(|| {
            run_party::<u64, _, _>(party, &network_file, fp, |p: &mut Party| {
                program.run(p, &own)
            })
        })
        .map_err(mpc_err)?;
    Ok((
        outputs(py, run.output)?,
        stats(py, &run.stats, run.seconds)?,
    ))
}

/// Writes a CA, three party certificates and keys and `mpc.toml` for
/// `addresses` into `directory` (a one-machine setup; on several machines
/// each party receives its own key only). Returns the network file.
#[pyfunction]
pub fn mpc_write_network(directory: PathBuf, addresses: Vec<String>) -> PyResult<PathBuf> {
    cipherflow_mpc::transport::tls::write_credentials(&directory, &addresses).map_err(mpc_err)
}
