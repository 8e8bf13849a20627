//! `cipherflow.ckks`'s native half: parameters, contexts and vectors over
//! `cipherflow_tensor::vector`. Each method converts its arguments, calls
//! one library function with the GIL released, and converts the result;
//! randomness comes from `secure_rng()` (ChaCha20 seeded by the OS) per
//! call. Inputs are copied out of numpy before the GIL is released (the
//! copy costs microseconds against milliseconds of encryption, and no other
//! Python thread can then change the values under us); outputs move their
//! buffers into numpy without a copy.

use crate::errors::{ckks_err, tensor_err, ShapeError};
use crate::Unlocked;
use cipherflow_ckks::{CkksParams, ParamsBuilder, ParamsLiteral, Preset};
use cipherflow_ring::sampler::secure_rng;
use cipherflow_tensor::{choose_params, CkksVector, VectorContext};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};
use std::sync::Arc;

fn rng() -> PyResult<rand_chacha::ChaCha20Rng> {
    secure_rng().map_err(|e| ckks_err(cipherflow_ckks::CkksError::Ring(e)))
}

fn contiguous(a: &PyReadonlyArray1<'_, f64>) -> PyResult<Vec<f64>> {
    // One memcpy for a contiguous array (the Python layer makes it so).
    Ok(match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    })
}

/// A CKKS parameter set.
#[pyclass(name = "NativeParams", module = "cipherflow._native", frozen)]
#[derive(Clone)]
pub struct PyParams {
    pub(crate) inner: CkksParams,
}

#[pymethods]
impl PyParams {
    /// A named preset (`aggregation`, `depth2`, `deep`, `n13` … `n16`).
    #[staticmethod]
    fn preset(name: &str) -> PyResult<Self> {
        let p = Preset::from_name(name).ok_or_else(|| {
            PyValueError::new_err(format!(
                "unknown preset {name:?} (aggregation, depth2, deep, n13, n14, n15, n16)"
            ))
        })?;
        Ok(Self {
            inner: p.build().map_err(ckks_err)?,
        })
    }

    /// The smallest 128-bit secure set for `depth` levels and `precision`
    /// bits below the point for values under `2^integer_bits`.
    #[staticmethod]
    fn for_depth(
        py: Python<'_>,
        depth: usize,
        precision: u32,
        integer_bits: u32,
        min_log_n: u32,
    ) -> PyResult<Self> {
        let inner = py
            .unlocked(|| choose_params(depth, precision, integer_bits, min_log_n))
            .map_err(tensor_err)?;
        Ok(Self { inner })
    }

    /// Bit sizes as SEAL and TenSEAL take them: `coeff_mod_bit_sizes` lists
    /// the ciphertext primes then the special prime.
    #[staticmethod]
    fn from_bit_sizes(
        py: Python<'_>,
        poly_modulus_degree: usize,
        coeff_mod_bit_sizes: Vec<u32>,
        log_scale: u32,
        allow_insecure: bool,
    ) -> PyResult<Self> {
        if !poly_modulus_degree.is_power_of_two() || !(1024..=65536).contains(&poly_modulus_degree)
        {
            return Err(PyValueError::new_err(format!(
                "poly_modulus_degree {poly_modulus_degree} must be a power of two in 1024..=65536"
            )));
        }
        let Some((p, q)) = coeff_mod_bit_sizes.split_last() else {
            return Err(PyValueError::new_err("coeff_mod_bit_sizes is empty"));
        };
        if q.is_empty() {
            return Err(PyValueError::new_err(
                "coeff_mod_bit_sizes needs ciphertext primes and a special prime",
            ));
        }
        let mut b = ParamsBuilder::new(poly_modulus_degree.trailing_zeros())
            .q_bits(q)
            .p_bits(&[*p])
            .log_scale(log_scale);
        if allow_insecure {
            b = b.allow_insecure();
        }
        let inner = py.unlocked(|| b.build()).map_err(ckks_err)?;
        Ok(Self { inner })
    }

    /// Parses the bytes of [`PyParams::to_bytes`].
    #[staticmethod]
    fn from_bytes(data: &[u8], allow_insecure: bool) -> PyResult<Self> {
        let inner = ParamsLiteral::from_bytes(data)
            .and_then(|l| l.build(allow_insecure))
            .map_err(ckks_err)?;
        Ok(Self { inner })
    }

    /// The exact parameters (primes included) as bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.literal().to_bytes().map_err(ckks_err)?;
        Ok(PyBytes::new(py, &b))
    }

    #[getter]
    fn log_n(&self) -> u32 {
        self.inner.log_n()
    }

    #[getter]
    fn slots(&self) -> usize {
        self.inner.slots()
    }

    #[getter]
    fn max_level(&self) -> usize {
        self.inner.max_level()
    }

    #[getter]
    fn log_scale(&self) -> u32 {
        self.inner.log_scale()
    }

    #[getter]
    fn log_qp(&self) -> f64 {
        self.inner.log_qp()
    }

    #[getter]
    fn security(&self) -> String {
        self.inner.security().to_string()
    }

    #[getter]
    fn q_bits(&self) -> Vec<u32> {
        self.inner
            .q()
            .iter()
            .map(|q| 64 - q.leading_zeros())
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Params({})", self.inner)
    }
}

/// Keys and parameters of a set of encrypted vectors.
#[pyclass(name = "NativeContext", module = "cipherflow._native", frozen)]
pub struct PyContext {
    pub(crate) inner: Arc<VectorContext>,
}

#[pymethods]
impl PyContext {
    /// New keys for `params`.
    #[staticmethod]
    fn generate(py: Python<'_>, params: &PyParams, release_budget: u64) -> PyResult<Self> {
        let p = params.inner.clone();
        let mut r = rng()?;
        let inner = py
            .unlocked(|| VectorContext::generate(&p, release_budget, &mut r))
            .map_err(tensor_err)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Parses a serialized context.
    #[staticmethod]
    fn load(py: Python<'_>, data: Vec<u8>, allow_insecure: bool) -> PyResult<Self> {
        let inner = py
            .unlocked(|| VectorContext::from_bytes(&data, allow_insecure))
            .map_err(tensor_err)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The context as bytes, with the secret key only if asked.
    fn serialize<'py>(&self, py: Python<'py>, secret_key: bool) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.inner.clone();
        let b = py.unlocked(|| c.to_bytes(secret_key)).map_err(tensor_err)?;
        Ok(PyBytes::new(py, &b))
    }

    /// The same keys without the secret key.
    fn public(&self, py: Python<'_>) -> PyResult<Self> {
        let c = self.inner.clone();
        let inner = py.unlocked(|| c.public()).map_err(tensor_err)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Hex SHA-256 of the parameters and public key: names the key pair.
    fn key_id(&self) -> PyResult<String> {
        let c = &self.inner;
        let mut h = Sha256::new();
        h.update(c.params().fingerprint());
        h.update(c.public_key().to_bytes());
        Ok(hex::encode(h.finalize()))
    }

    fn params(&self) -> PyParams {
        PyParams {
            inner: self.inner.params().clone(),
        }
    }

    fn has_secret_key(&self) -> bool {
        self.inner.has_secret_key()
    }

    fn slots(&self) -> usize {
        self.inner.slots()
    }

    fn galois_key_count(&self) -> usize {
        self.inner.galois_key_count()
    }

    /// `(releases made, budget)`.
    fn releases(&self) -> (u64, u64) {
        self.inner.releases()
    }

    /// Makes Galois keys (default: every power of two).
    #[pyo3(signature = (steps=None))]
    fn generate_galois_keys(&self, py: Python<'_>, steps: Option<Vec<i64>>) -> PyResult<usize> {
        let c = self.inner.clone();
        let mut r = rng()?;
        py.unlocked(|| c.generate_galois_keys(steps.as_deref(), &mut r))
            .map_err(tensor_err)
    }

    /// Encrypts a 1-D float64 array.
    fn encrypt(&self, py: Python<'_>, values: PyReadonlyArray1<'_, f64>) -> PyResult<PyVector> {
        let v = contiguous(&values)?;
        let c = self.inner.clone();
        let mut r = rng()?;
        let out = py.unlocked(|| c.encrypt(&v, &mut r)).map_err(tensor_err)?;
        Ok(PyVector::wrap(&self.inner, out))
    }

    /// Parses a vector's bytes.
    fn vector_from_bytes(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<PyVector> {
        let c = self.inner.clone();
        let v = py
            .unlocked(|| c.vector_from_bytes(&data))
            .map_err(tensor_err)?;
        Ok(PyVector::wrap(&self.inner, v))
    }
}

/// An encrypted vector (its context shared).
#[pyclass(name = "NativeVector", module = "cipherflow._native", frozen)]
pub struct PyVector {
    ctx: Arc<VectorContext>,
    v: CkksVector,
}

impl PyVector {
    pub(crate) fn inner(&self) -> &CkksVector {
        &self.v
    }

    fn wrap(ctx: &Arc<VectorContext>, v: CkksVector) -> Self {
        Self {
            ctx: ctx.clone(),
            v,
        }
    }

    fn same_context(&self, o: &PyVector) -> PyResult<()> {
        if !Arc::ptr_eq(&self.ctx, &o.ctx) {
            return Err(PyTypeError::new_err(
                "the two vectors belong to different contexts (load both with the same one)",
            ));
        }
        Ok(())
    }

    /// Runs `f` on the context without the GIL and wraps the vector.
    fn run<F>(&self, py: Python<'_>, f: F) -> PyResult<PyVector>
    where
        F: FnOnce(
                &VectorContext,
                &CkksVector,
            ) -> Result<CkksVector, cipherflow_tensor::TensorError>
            + Send,
    {
        let out = py.unlocked(|| f(&self.ctx, &self.v)).map_err(tensor_err)?;
        Ok(PyVector::wrap(&self.ctx, out))
    }
}

#[pymethods]
impl PyVector {
    fn __len__(&self) -> usize {
        self.v.len()
    }

    #[getter]
    fn level(&self) -> usize {
        self.v.level()
    }

    #[getter]
    fn scale_log2(&self) -> f64 {
        self.v.scale().log2()
    }

    #[getter]
    fn noise_bound_log2(&self) -> Option<f64> {
        self.v.noise_bound_log2()
    }

    fn context(&self) -> PyContext {
        PyContext {
            inner: self.ctx.clone(),
        }
    }

    fn decrypt<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let out = py
            .unlocked(|| self.ctx.decrypt(&self.v))
            .map_err(tensor_err)?;
        Ok(out.into_pyarray(py))
    }

    /// `(values, precision_bits, remaining)`.
    fn release<'py>(
        &self,
        py: Python<'py>,
        noise_bound_log2: Option<f64>,
        stat_sec_bits: u32,
    ) -> PyResult<(Bound<'py, PyArray1<f64>>, f64, u64)> {
        let mut r = rng()?;
        let out = py
            .unlocked(|| {
                self.ctx
                    .release(&self.v, noise_bound_log2, stat_sec_bits, &mut r)
            })
            .map_err(tensor_err)?;
        Ok((
            out.values.into_pyarray(py),
            out.precision_bits,
            out.remaining,
        ))
    }

    fn serialize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = py
            .unlocked(|| self.ctx.vector_to_bytes(&self.v))
            .map_err(tensor_err)?;
        Ok(PyBytes::new(py, &b))
    }

    fn add(&self, py: Python<'_>, o: &PyVector) -> PyResult<PyVector> {
        self.same_context(o)?;
        self.run(py, |c, v| c.add(v, &o.v))
    }

    fn sub(&self, py: Python<'_>, o: &PyVector) -> PyResult<PyVector> {
        self.same_context(o)?;
        self.run(py, |c, v| c.sub(v, &o.v))
    }

    fn mul(&self, py: Python<'_>, o: &PyVector) -> PyResult<PyVector> {
        self.same_context(o)?;
        if std::ptr::eq(self, o) {
            return self.run(py, |c, v| c.square(v));
        }
        self.run(py, |c, v| c.mul(v, &o.v))
    }

    fn dot(&self, py: Python<'_>, o: &PyVector) -> PyResult<PyVector> {
        self.same_context(o)?;
        let mut r = rng()?;
        self.run(py, |c, v| c.dot(v, &o.v, &mut r))
    }

    fn neg(&self, py: Python<'_>) -> PyResult<PyVector> {
        self.run(py, |c, v| c.neg(v))
    }

    fn add_plain(&self, py: Python<'_>, w: PyReadonlyArray1<'_, f64>) -> PyResult<PyVector> {
        let w = contiguous(&w)?;
        self.run(py, |c, v| c.add_plain(v, &w))
    }

    fn mul_plain(&self, py: Python<'_>, w: PyReadonlyArray1<'_, f64>) -> PyResult<PyVector> {
        let w = contiguous(&w)?;
        self.run(py, |c, v| c.mul_plain(v, &w))
    }

    fn dot_plain(&self, py: Python<'_>, w: PyReadonlyArray1<'_, f64>) -> PyResult<PyVector> {
        let w = contiguous(&w)?;
        let mut r = rng()?;
        self.run(py, |c, v| c.dot_plain(v, &w, &mut r))
    }

    fn add_scalar(&self, py: Python<'_>, x: f64) -> PyResult<PyVector> {
        self.run(py, |c, v| c.add_scalar(v, x))
    }

    fn mul_scalar(&self, py: Python<'_>, x: f64) -> PyResult<PyVector> {
        self.run(py, |c, v| c.mul_scalar(v, x))
    }

    fn pow(&self, py: Python<'_>, k: u32) -> PyResult<PyVector> {
        self.run(py, |c, v| c.pow(v, k))
    }

    fn rotate(&self, py: Python<'_>, k: i64) -> PyResult<PyVector> {
        let mut r = rng()?;
        self.run(py, |c, v| c.rotate(v, k, &mut r))
    }

    fn sum(&self, py: Python<'_>) -> PyResult<PyVector> {
        let mut r = rng()?;
        self.run(py, |c, v| c.sum(v, &mut r))
    }

    /// `self @ w` for a 2-D float64 matrix of `len(self)` rows.
    fn matmul(&self, py: Python<'_>, w: PyReadonlyArray2<'_, f64>) -> PyResult<PyVector> {
        let shape = w.as_array().shape().to_vec();
        let (rows, cols) = match shape.as_slice() {
            [r, c] => (*r, *c),
            _ => return Err(ShapeError::new_err("the matrix must be 2-D")),
        };
        if rows != self.v.len() {
            return Err(ShapeError::new_err(format!(
                "a vector of {} values times a matrix of {rows} rows",
                self.v.len()
            )));
        }
        let flat: Vec<f64> = w.as_array().iter().copied().collect();
        let mut r = rng()?;
        self.run(py, |c, v| c.matmul(v, &flat, cols, &mut r))
    }

    fn polyval(&self, py: Python<'_>, coeffs: Vec<f64>) -> PyResult<PyVector> {
        self.run(py, |c, v| c.polyval(v, &coeffs))
    }
}
