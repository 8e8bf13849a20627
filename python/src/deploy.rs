//! `cipherflow.torch`'s native half: a model compiled into a server half
//! (weights, bytes) and a client half (keys from the published spec).

use crate::errors::{tensor_err, ModelError};
use crate::Unlocked;
use cipherflow_ring::sampler::secure_rng;
use cipherflow_tensor::{ClientHalf, Mode, ServerHalf, TensorError};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

fn rng() -> PyResult<rand_chacha::ChaCha20Rng> {
    secure_rng().map_err(|e| tensor_err(TensorError::Invalid(e.to_string())))
}

fn model_err(e: TensorError) -> PyErr {
    match e {
        TensorError::Nn(_) | TensorError::Unsupported(_) | TensorError::DoesNotFit(_) => {
            ModelError::new_err(e.to_string())
        }
        other => tensor_err(other),
    }
}

/// The weights' side.
#[pyclass(name = "NativeServerHalf", module = "cipherflow._native", frozen)]
pub struct PyServerHalf {
    inner: ServerHalf,
}

#[pymethods]
impl PyServerHalf {
    /// Compiles ONNX bytes; `calibration` rows are flattened inputs.
    #[staticmethod]
    fn compile(
        py: Python<'_>,
        onnx: Vec<u8>,
        calibration: PyReadonlyArray2<'_, f32>,
        degree: Option<usize>,
        throughput: bool,
        input_bound: f64,
    ) -> PyResult<Self> {
        let cal = calibration.as_array().to_owned();
        let mode = if throughput {
            Mode::Throughput
        } else {
            Mode::Latency
        };
        let inner = py
            .unlocked(|| ServerHalf::compile(&onnx, &cal, degree, mode, input_bound))
            .map_err(model_err)?;
        Ok(Self { inner })
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: Vec<u8>) -> PyResult<Self> {
        let inner = py
            .unlocked(|| ServerHalf::from_bytes(&data))
            .map_err(model_err)?;
        Ok(Self { inner })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.to_bytes().map_err(tensor_err)?;
        Ok(PyBytes::new(py, &b))
    }

    /// The client's spec (JSON).
    fn spec_json(&self) -> PyResult<String> {
        serde_json::to_string(self.inner.spec())
            .map_err(|e| tensor_err(TensorError::Invalid(e.to_string())))
    }

    /// `(degree, half_width)` of the approximation, if any (the widest
    /// interval).
    fn approximation(&self) -> Option<(usize, f64)> {
        self.inner.options().approximate
    }

    /// Half the width of each approximated activation's interval, in the
    /// model's order.
    fn activation_half_widths(&self) -> Vec<f64> {
        self.inner.options().activation_half_widths.clone()
    }

    fn depth(&self) -> usize {
        self.inner.encrypted().plan().depth()
    }

    fn log_n(&self) -> u32 {
        self.inner.encrypted().plan().params().log_n()
    }

    fn privacy(&self) -> String {
        self.inner.privacy().describe()
    }

    fn input_shape(&self) -> Vec<usize> {
        self.inner.spec().input_shape.clone()
    }

    fn respond<'py>(
        &self,
        py: Python<'py>,
        eval_keys: Vec<u8>,
        input: Vec<u8>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut r = rng()?;
        let out = py
            .unlocked(|| self.inner.respond(&eval_keys, &input, &mut r))
            .map_err(tensor_err)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Parses and checks a client's evaluation keys once.
    fn load_keys(&self, py: Python<'_>, eval_keys: Vec<u8>) -> PyResult<PyEvalKeys> {
        let keys = py
            .unlocked(|| self.inner.load_keys(&eval_keys))
            .map_err(tensor_err)?;
        Ok(PyEvalKeys { inner: keys })
    }

    /// `respond` with keys loaded before.
    fn respond_with<'py>(
        &self,
        py: Python<'py>,
        keys: &PyEvalKeys,
        input: Vec<u8>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut r = rng()?;
        let out = py
            .unlocked(|| self.inner.respond_with(&keys.inner, &input, &mut r))
            .map_err(tensor_err)?;
        Ok(PyBytes::new(py, &out))
    }
}

/// A client's evaluation keys, parsed and checked.
#[pyclass(name = "NativeEvalKeys", module = "cipherflow._native", frozen)]
pub struct PyEvalKeys {
    inner: cipherflow_tensor::EvalKeys,
}

/// The data owner's side.
#[pyclass(name = "NativeClientHalf", module = "cipherflow._native", frozen)]
pub struct PyClientHalf {
    inner: ClientHalf,
}

#[pymethods]
impl PyClientHalf {
    #[new]
    fn new(py: Python<'_>, spec_json: String) -> PyResult<Self> {
        let mut r = rng()?;
        let inner = py
            .unlocked(|| ClientHalf::new(&spec_json, &mut r))
            .map_err(tensor_err)?;
        Ok(Self { inner })
    }

    fn input_shape(&self) -> Vec<usize> {
        self.inner.spec().input_shape.clone()
    }

    fn batch_capacity(&self) -> usize {
        match self.inner.spec().mode {
            Mode::Latency => 1,
            Mode::Throughput => self.inner.params().slots(),
        }
    }

    fn eval_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = py
            .unlocked(|| self.inner.eval_key_bytes())
            .map_err(tensor_err)?;
        Ok(PyBytes::new(py, &b))
    }

    /// Encrypts rows of flattened inputs.
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        inputs: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let rows: Vec<Vec<f64>> = inputs
            .as_array()
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect();
        let mut r = rng()?;
        let b = py
            .unlocked(|| self.inner.encrypt(&rows, &mut r))
            .map_err(tensor_err)?;
        Ok(PyBytes::new(py, &b))
    }

    /// One row of outputs per input.
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        answer: Vec<u8>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let out = py
            .unlocked(|| self.inner.decrypt(&answer))
            .map_err(tensor_err)?;
        let cols = out.first().map_or(0, Vec::len);
        let flat: Vec<f64> = out.into_iter().flatten().collect();
        let rows = if cols == 0 { 0 } else { flat.len() / cols };
        let a = numpy::ndarray::Array2::from_shape_vec((rows, cols), flat)
            .map_err(|e| tensor_err(TensorError::Shape(e.to_string())))?;
        Ok(a.into_pyarray(py))
    }
}
