//! `cipherflow.flower`'s native half: a secure-aggregation party and server
//! (`cipherflow_fed::secagg`). A party's state crosses into Python only as
//! opaque bytes for the host's per-node store.

use crate::errors::fed_err;
use cipherflow_fed::secagg::{
    sealed_from_bytes, sealed_to_bytes, PartyPolicy, SecAggParty, SecAggServer, SecAggSpec,
};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::Mutex;

fn key32(b: &[u8]) -> PyResult<[u8; 32]> {
    b.try_into().map_err(|_| {
        fed_err(cipherflow_fed::FedError::Protocol(
            "a public key must be 32 bytes".into(),
        ))
    })
}

fn poisoned() -> PyErr {
    fed_err(cipherflow_fed::FedError::Protocol(
        "state lock poisoned".into(),
    ))
}

/// One party (a Flower client's key share and what it released).
#[pyclass(name = "NativeSecAggParty", module = "cipherflow._native")]
pub struct PySecAggParty {
    inner: Mutex<SecAggParty>,
}

#[pymethods]
impl PySecAggParty {
    /// Joins a session: the spec (JSON) is checked against the policy.
    #[new]
    #[pyo3(signature = (spec_json, party_id, crs, min_quorum=2, honest_majority=true, min_stat_sec_bits=40))]
    fn new(
        py: Python<'_>,
        spec_json: &str,
        party_id: u64,
        crs: &[u8],
        min_quorum: usize,
        honest_majority: bool,
        min_stat_sec_bits: u32,
    ) -> PyResult<Self> {
        let spec = SecAggSpec::from_json(spec_json).map_err(fed_err)?;
        let crs = key32(crs)?;
        let policy = PartyPolicy {
            min_quorum,
            honest_majority,
            min_stat_sec_bits,
        };
        let p = py
            .allow_threads(|| SecAggParty::new(spec, policy, party_id, crs))
            .map_err(fed_err)?;
        Ok(Self {
            inner: Mutex::new(p),
        })
    }

    /// Restores a state saved with `to_bytes`.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let p = py
            .allow_threads(|| SecAggParty::from_bytes(data))
            .map_err(fed_err)?;
        Ok(Self {
            inner: Mutex::new(p),
        })
    }

    /// The whole state, secrets included: keep it in this node's store.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let p = self.inner.lock().map_err(|_| poisoned())?;
        let b = p.to_bytes().map_err(fed_err)?;
        Ok(PyBytes::new(py, &b))
    }

    /// Refuses pickling: the state is secret (use `to_bytes` deliberately).
    fn __reduce__(&self) -> PyResult<()> {
        Err(fed_err(cipherflow_fed::FedError::Refused(
            "a secure-aggregation party holds a secret key share and does not pickle".into(),
        )))
    }

    /// This party's id.
    #[getter]
    fn party_id(&self) -> PyResult<u64> {
        Ok(self.inner.lock().map_err(|_| poisoned())?.id())
    }

    /// Whether key setup is complete.
    #[getter]
    fn ready(&self) -> PyResult<bool> {
        Ok(self.inner.lock().map_err(|_| poisoned())?.is_ready())
    }

    /// The pinned spec (JSON).
    #[getter]
    fn spec_json(&self) -> PyResult<String> {
        self.inner
            .lock()
            .map_err(|_| poisoned())?
            .spec()
            .to_json()
            .map_err(fed_err)
    }

    /// This party's X25519 public key.
    fn public_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let k = self.inner.lock().map_err(|_| poisoned())?.kx_public();
        Ok(PyBytes::new(py, &k))
    }

    /// Pins every party's public key (`keys[i]` of party `i + 1`) and
    /// returns one sealed share per other party.
    fn deal<'py>(&self, py: Python<'py>, keys: Vec<Vec<u8>>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let keys = keys
            .iter()
            .map(|k| key32(k))
            .collect::<PyResult<Vec<_>>>()?;
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let p: &mut SecAggParty = &mut guard;
        let sealed = py.allow_threads(|| p.deal(&keys)).map_err(fed_err)?;
        Ok(sealed
            .iter()
            .map(|s| PyBytes::new(py, &sealed_to_bytes(s)))
            .collect())
    }

    /// Opens the shares sealed to this party.
    fn receive(&self, py: Python<'_>, sealed: Vec<Vec<u8>>) -> PyResult<()> {
        let sealed = sealed
            .iter()
            .map(|b| sealed_from_bytes(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fed_err)?;
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let p: &mut SecAggParty = &mut guard;
        py.allow_threads(|| p.receive(&sealed)).map_err(fed_err)
    }

    /// Encrypts a flat float32 update for `round`.
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        round: u64,
        update: PyReadonlyArray1<'_, f32>,
        num_examples: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let u = update.as_slice()?;
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let p: &mut SecAggParty = &mut guard;
        let b = py
            .allow_threads(|| p.encrypt(round, u, num_examples))
            .map_err(fed_err)?;
        Ok(PyBytes::new(py, &b))
    }

    /// This party's decryption share of `round`'s sum over `contributors`.
    fn decryption_share<'py>(
        &self,
        py: Python<'py>,
        round: u64,
        contributors: Vec<u64>,
        active: Vec<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let p: &mut SecAggParty = &mut guard;
        let b = py
            .allow_threads(|| p.decryption_share(round, &contributors, &active))
            .map_err(fed_err)?;
        Ok(PyBytes::new(py, &b))
    }
}

/// The aggregating server.
#[pyclass(name = "NativeSecAggServer", module = "cipherflow._native")]
pub struct PySecAggServer {
    inner: Mutex<SecAggServer>,
}

#[pymethods]
impl PySecAggServer {
    /// A session for the spec (JSON) with a fresh CRS.
    #[new]
    fn new(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        let spec = SecAggSpec::from_json(spec_json).map_err(fed_err)?;
        let s = py
            .allow_threads(|| SecAggServer::new(spec))
            .map_err(fed_err)?;
        Ok(Self {
            inner: Mutex::new(s),
        })
    }

    /// The CRS.
    fn crs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            &self.inner.lock().map_err(|_| poisoned())?.crs(),
        ))
    }

    /// Packing facts: ring, modulus bits, shift, coordinates per integer,
    /// chunks, upload bytes.
    fn packing(&self) -> PyResult<(u32, Vec<u32>, u32, u32, usize, usize)> {
        let s = self.inner.lock().map_err(|_| poisoned())?;
        let p = s.packing();
        let bytes = p.upload_bytes(&p.params().map_err(fed_err)?);
        Ok((p.log_n, p.q_bits.clone(), p.shift, p.pack, p.chunks, bytes))
    }

    /// Records party `p`'s public key.
    fn add_key(&self, p: u64, key: &[u8]) -> PyResult<()> {
        let k = key32(key)?;
        self.inner
            .lock()
            .map_err(|_| poisoned())?
            .add_key(p, k)
            .map_err(fed_err)
    }

    /// Every party's key (in party order), once all arrived.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let keys = self
            .inner
            .lock()
            .map_err(|_| poisoned())?
            .keys()
            .map_err(fed_err)?;
        Ok(keys.iter().map(|k| PyBytes::new(py, k)).collect())
    }

    /// Accepts party `p`'s sealed shares.
    fn add_dealing(&self, p: u64, sealed: Vec<Vec<u8>>) -> PyResult<()> {
        let sealed = sealed
            .iter()
            .map(|b| sealed_from_bytes(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fed_err)?;
        self.inner
            .lock()
            .map_err(|_| poisoned())?
            .add_dealing(p, sealed)
            .map_err(fed_err)
    }

    /// The shares sealed to party `p`.
    fn sealed_for<'py>(&self, py: Python<'py>, p: u64) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let v = self
            .inner
            .lock()
            .map_err(|_| poisoned())?
            .sealed_for(p)
            .map_err(fed_err)?;
        Ok(v.iter()
            .map(|s| PyBytes::new(py, &sealed_to_bytes(s)))
            .collect())
    }

    /// Opens a round.
    fn begin_round(&self, round: u64) -> PyResult<()> {
        self.inner
            .lock()
            .map_err(|_| poisoned())?
            .begin_round(round)
            .map_err(fed_err)
    }

    /// Adds party `p`'s upload.
    fn add_upload(&self, py: Python<'_>, p: u64, data: &[u8], num_examples: u64) -> PyResult<()> {
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let s: &mut SecAggServer = &mut guard;
        py.allow_threads(|| s.add_upload(p, data, num_examples))
            .map_err(fed_err)
    }

    /// The open round's contributors.
    fn contributors(&self) -> PyResult<Vec<u64>> {
        Ok(self.inner.lock().map_err(|_| poisoned())?.contributors())
    }

    /// An active set among `available`, or None.
    fn choose_active(&self, available: Vec<u64>) -> PyResult<Option<Vec<u64>>> {
        Ok(self
            .inner
            .lock()
            .map_err(|_| poisoned())?
            .choose_active(&available))
    }

    /// The weighted mean update from the active set's shares.
    fn finish<'py>(
        &self,
        py: Python<'py>,
        active: Vec<u64>,
        shares: Vec<Vec<u8>>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let s: &mut SecAggServer = &mut guard;
        let mean = py
            .allow_threads(|| s.finish(&active, &shares))
            .map_err(fed_err)?;
        Ok(mean.into_pyarray(py))
    }
}
