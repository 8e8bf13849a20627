//! Model files: safetensors weights (PyTorch-compatible names and layouts)
//! and ONNX import.

pub mod onnx;
pub mod safetensors;

use crate::NnError;
use std::path::Path;

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
