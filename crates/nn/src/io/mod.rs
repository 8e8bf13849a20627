//! Model files: safetensors weights (PyTorch-compatible names and layouts)
//! and ONNX import, and [`load`], which takes either (found from the
//! content) with the preprocessing stored beside the weights.

pub mod onnx;
pub mod onnx_export;
mod onnx_external;
mod onnx_fold;
mod onnx_layers;
mod onnx_patterns;
pub mod safetensors;
mod upload;

pub use upload::{prepare_upload, Upload};

use crate::preprocess::{Preprocessing, PREPROCESSING_KEY};
use crate::{NnError, Sequential};
use std::path::Path;

/// The format of a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    /// ONNX (external data read from beside the file).
    Onnx,
    /// safetensors with cipherflow's architecture metadata.
    Safetensors,
}

/// A model read from a file, with what is stored beside its weights.
#[derive(Debug)]
pub struct ModelFile {
    /// The model.
    pub model: Sequential,
    /// Its preprocessing, if the file stores one.
    pub preprocessing: Option<Preprocessing>,
    /// The file's format.
    pub format: ModelFormat,
}

/// Whether `bytes` start like a safetensors file: a little-endian u64
/// header length that fits the file, then a JSON object.
fn is_safetensors(bytes: &[u8]) -> bool {
    match bytes.split_first_chunk::<8>() {
        Some((n, rest)) => {
            u64::from_le_bytes(*n) <= rest.len() as u64 && rest.first() == Some(&b'{')
        }
        None => false,
    }
}

/// Reads a model file of either format, found from its content.
pub fn load(path: &Path) -> Result<ModelFile, NnError> {
    let bytes = read_limited(path)?;
    parse(&bytes, path.parent(), &path.display().to_string())
}

/// A model file of either format received as bytes (an upload): the same
/// checks as [`load`]; an ONNX model must hold its tensors inline (no
/// external data is read). At most 1 GiB.
pub fn load_bytes(bytes: &[u8]) -> Result<ModelFile, NnError> {
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(NnError::ModelFile("the model is larger than 1 GiB".into()));
    }
    parse(bytes, None, "the model")
}

fn parse(bytes: &[u8], dir: Option<&Path>, name: &str) -> Result<ModelFile, NnError> {
    let named = |e: NnError| match e {
        NnError::ModelFile(m) => NnError::ModelFile(format!("{name}: {m}")),
        other => other,
    };
    if is_safetensors(bytes) {
        let model = safetensors::load_model_bytes(bytes).map_err(named)?;
        let preprocessing = safetensors::metadata(bytes)
            .map_err(named)?
            .get(PREPROCESSING_KEY)
            .map(|j| Preprocessing::from_json(j))
            .transpose()
            .map_err(named)?;
        return Ok(ModelFile {
            model,
            preprocessing,
            format: ModelFormat::Safetensors,
        });
    }
    let (model, meta) = onnx::import_with_metadata(bytes, dir).map_err(|e| match e {
        NnError::ModelFile(m) if m.starts_with("not an ONNX model") => NnError::ModelFile(format!(
            "{name}: neither an ONNX model nor a safetensors file ({m})"
        )),
        other => named(other),
    })?;
    let preprocessing = meta
        .get(PREPROCESSING_KEY)
        .map(|j| Preprocessing::from_json(j))
        .transpose()
        .map_err(named)?;
    Ok(ModelFile {
        model,
        preprocessing,
        format: ModelFormat::Onnx,
    })
}

/// Largest model file read (weights of the models this crate trains are a
/// few megabytes).
pub(crate) const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Reads a whole file, refusing anything over [`MAX_MODEL_BYTES`].
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>, NnError> {
    let meta = std::fs::metadata(path).map_err(|e| NnError::io(path, e))?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(NnError::ModelFile(format!(
            "{} is larger than 1 GiB",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| NnError::io(path, e))
}

/// Writes a file atomically: a temporary file in the same directory,
/// flushed to disk, then renamed over the target, so an existing file is
/// never left half-written.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(|e| NnError::io(path, e))
}
