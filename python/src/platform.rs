//! `cipherflow.torch.query`'s native half: a session with a model served
//! by `cipherflow serve`, in any mode, through the platform crate's
//! `Session` (what the CLI's `query` opens).

use crate::errors::PlatformError as PyPlatformError;
use cipherflow_platform::{PlatformClient, Session, SessionOptions};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

fn err(e: impl std::fmt::Display) -> PyErr {
    PyPlatformError::new_err(e.to_string())
}

/// One answer: `(class, scores, ms, upload bytes, download bytes, mpc bytes)`.
type PyAnswer<'py> = (usize, Bound<'py, PyArray1<f64>>, f64, usize, usize, usize);

/// An open session (keys made and uploaded).
#[pyclass(name = "NativePlatformSession", module = "cipherflow._native", frozen)]
pub struct PySession {
    rt: tokio::runtime::Runtime,
    session: Mutex<Option<Session>>,
    mode: &'static str,
    split: usize,
    description: String,
    input_shape: Vec<usize>,
    class_names: Option<Vec<String>>,
    key_bytes: usize,
}

#[pymethods]
impl PySession {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (url, ca, model, mode, split=None, host_fingerprint=None, accept_leakage=false, idle_s=120, timeout_s=600))]
    fn new(
        py: Python<'_>,
        url: String,
        ca: PathBuf,
        model: String,
        mode: String,
        split: Option<usize>,
        host_fingerprint: Option<String>,
        accept_leakage: bool,
        idle_s: u64,
        timeout_s: u64,
    ) -> PyResult<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(err)?;
        let opts = SessionOptions {
            mode: mode.parse().map_err(err)?,
            split,
            host_fingerprint,
            accept_leakage,
            idle: Duration::from_secs(idle_s),
        };
        let session = py
            .allow_threads(|| {
                let client = PlatformClient::new(&url, &ca, Duration::from_secs(timeout_s))?;
                rt.block_on(Session::open(client, &model, &opts))
            })
            .map_err(err)?;
        let pre = session.preprocessing().map_err(err)?;
        Ok(Self {
            mode: opts.mode.name(),
            split: session.split(),
            description: session.description().to_string(),
            input_shape: session.input_shape(),
            class_names: pre.and_then(|p| p.class_names),
            key_bytes: session.key_bytes().0,
            session: Mutex::new(Some(session)),
            rt,
        })
    }

    /// Classifies raw inputs (rows, flattened): the creator's
    /// preprocessing applied, one encrypted query each.
    fn classify<'py>(
        &self,
        py: Python<'py>,
        inputs: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<Vec<PyAnswer<'py>>> {
        let x = inputs.as_array().to_owned();
        let answers = py
            .allow_threads(|| {
                let guard = self.session.lock().map_err(|_| {
                    cipherflow_platform::PlatformError::Transport("a poisoned lock".into())
                })?;
                let s = guard.as_ref().ok_or_else(|| {
                    cipherflow_platform::PlatformError::BadRequest("the session is closed".into())
                })?;
                self.rt.block_on(s.classify_raw(&x))
            })
            .map_err(err)?;
        Ok(answers
            .into_iter()
            .map(|a| {
                (
                    a.class,
                    a.scores.into_pyarray(py),
                    a.ms,
                    a.upload_bytes,
                    a.download_bytes,
                    a.mpc_bytes,
                )
            })
            .collect())
    }

    /// Ends the session (idempotent).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let s = self.session.lock().map_err(err_lock)?.take();
        if let Some(s) = s {
            py.allow_threads(|| self.rt.block_on(s.close()))
                .map_err(err)?;
        }
        Ok(())
    }

    #[getter]
    fn mode(&self) -> &'static str {
        self.mode
    }

    #[getter]
    fn split(&self) -> usize {
        self.split
    }

    #[getter]
    fn description(&self) -> String {
        self.description.clone()
    }

    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.input_shape.clone()
    }

    #[getter]
    fn class_names(&self) -> Option<Vec<String>> {
        self.class_names.clone()
    }

    #[getter]
    fn key_bytes(&self) -> usize {
        self.key_bytes
    }
}

fn err_lock<T>(_: std::sync::PoisonError<T>) -> PyErr {
    PyPlatformError::new_err("a poisoned lock")
}
