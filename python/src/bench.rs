//! A benchmark hook: the vector operations timed from Rust inside the
//! Python process, so that `bench/python_ckks.py` measures the binding's
//! overhead against the same calls without it, on the same context and
//! inputs, interleaved with the Python timings. Not part of the API.

use crate::ckks::{PyContext, PyVector};
use crate::errors::tensor_err;
use cipherflow_ring::sampler::secure_rng;
use pyo3::prelude::*;
use std::time::Instant;

/// Best ms of `reps` calls, each on a worker of rayon's pool as the
/// binding runs every call ([`crate::Unlocked`]).
fn best_ms<E: Send>(reps: usize, mut f: impl FnMut() -> Result<(), E> + Send) -> Result<f64, E> {
    rayon::scope(|_| f())?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let s = Instant::now();
        rayon::scope(|_| f())?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    Ok(t.into_iter().fold(f64::INFINITY, f64::min))
}

/// Best ms over `reps` runs of `op` (`encrypt`, `decrypt`, `add`, `mul`, `mul_plain`,
/// `dot`, `sum`, `polyval3`, `matvec64`) called from Rust on `a` and `b`
/// (`w`: plaintext values; `m`: a row-major matrix of `a`'s length rows).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn bench_rust_op(
    py: Python<'_>,
    ctx: &PyContext,
    op: &str,
    a: &PyVector,
    b: &PyVector,
    w: Vec<f64>,
    m: Vec<f64>,
    cols: usize,
    reps: usize,
) -> PyResult<f64> {
    let c = ctx.inner.clone();
    let (a, b) = (a.inner(), b.inner());
    let mut rng = secure_rng()
        .map_err(|e| tensor_err(cipherflow_tensor::TensorError::Invalid(e.to_string())))?;
    let x = c.decrypt(a).map_err(tensor_err)?;
    py.allow_threads(|| {
        let ms = match op {
            "encrypt" => best_ms(reps, || c.encrypt(&x, &mut rng).map(drop))?,
            "decrypt" => best_ms(reps, || c.decrypt(a).map(drop))?,
            "add" => best_ms(reps, || c.add(a, b).map(drop))?,
            "mul" => best_ms(reps, || c.mul(a, b).map(drop))?,
            "mul_plain" => best_ms(reps, || c.mul_plain(a, &w).map(drop))?,
            "dot" => best_ms(reps, || c.dot(a, b, &mut rng).map(drop))?,
            "sum" => best_ms(reps, || c.sum(a, &mut rng).map(drop))?,
            "polyval3" => best_ms(reps, || c.polyval(a, &[0.5, 0.197, 0.0, -0.004]).map(drop))?,
            "matvec64" => best_ms(reps, || c.matmul(a, &m, cols, &mut rng).map(drop))?,
            other => {
                return Err(cipherflow_tensor::TensorError::Invalid(format!(
                    "unknown op {other}"
                )))
            }
        };
        Ok(ms)
    })
    .map_err(tensor_err)
}
