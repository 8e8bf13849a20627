//! ONNX external data: tensors whose bytes live in a file beside the model
//! (PyTorch 2.x's exporter writes `model.onnx.data` for large models, and
//! for any model with `external_data=True`).
//!
//! A location is a relative path inside the model's folder: absolute paths
//! and `..` are refused (a model file must not make the importer read
//! elsewhere), offsets and lengths are checked against the file's size
//! before anything is read, and the total is bounded.

use super::onnx::{GraphProto, TensorProto};
use crate::NnError;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// Most external bytes read for one model.
const MAX_EXTERNAL_BYTES: u64 = 1 << 30;

fn err(msg: impl Into<String>) -> NnError {
    NnError::ModelFile(msg.into())
}

/// Whether `total` bytes of external data are within the limit (a
/// function of its own so that its boundary is tested without reading a
/// gigabyte).
fn within_limit(total: u64) -> bool {
    total <= MAX_EXTERNAL_BYTES
}

/// The file a location names, inside `base`.
fn resolve(base: &Path, location: &str) -> Result<PathBuf, NnError> {
    let rel = Path::new(location);
    if location.is_empty()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(err(format!(
            "external data location {location:?} must be a relative path inside the model's folder"
        )));
    }
    Ok(base.join(rel))
}

/// Moves every external initializer's bytes into its `raw_data`, reading
/// from files beside the model (`base`: the model's folder; `None`: the
/// model came without a folder, so external data is refused).
pub(super) fn load_external(graph: &mut GraphProto, base: Option<&Path>) -> Result<(), NnError> {
    let mut total = 0u64;
    let mut sizes: HashMap<PathBuf, u64> = HashMap::new();
    for t in graph
        .initializer
        .iter_mut()
        .filter(|t| t.data_location() == 1)
    {
        let base = base.ok_or_else(|| {
            err(format!(
                "tensor '{}' is stored in an external file; load the model from its file",
                t.name()
            ))
        })?;
        let (path, offset, length) = entry(t, base)?;
        let size = match sizes.get(&path) {
            Some(s) => *s,
            None => {
                let s = std::fs::metadata(&path)
                    .map_err(|e| NnError::io(&path, e))?
                    .len();
                sizes.insert(path.clone(), s);
                s
            }
        };
        let length = length.unwrap_or(size.saturating_sub(offset));
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(err(format!(
                "tensor '{}': bytes {offset}..{} are beyond {} ({size} bytes)",
                t.name(),
                offset.saturating_add(length),
                path.display()
            )));
        }
        total = total.saturating_add(length);
        if !within_limit(total) {
            return Err(err("external data over 1 GiB"));
        }
        let mut f = std::fs::File::open(&path).map_err(|e| NnError::io(&path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| NnError::io(&path, e))?;
        let mut buf = Vec::new();
        f.take(length)
            .read_to_end(&mut buf)
            .map_err(|e| NnError::io(&path, e))?;
        t.raw_data = Some(buf);
        t.data_location = Some(0);
        t.external_data.clear();
    }
    Ok(())
}

/// (file, offset, length) of an external tensor.
fn entry(t: &TensorProto, base: &Path) -> Result<(PathBuf, u64, Option<u64>), NnError> {
    let get = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key() == k)
            .map(|e| e.value())
    };
    let num = |k: &str| -> Result<Option<u64>, NnError> {
        get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| err(format!("tensor '{}': external {k} {v:?}", t.name())))
            })
            .transpose()
    };
    let location = get("location").ok_or_else(|| {
        err(format!(
            "tensor '{}': external data without a location",
            t.name()
        ))
    })?;
    Ok((
        resolve(base, location)?,
        num("offset")?.unwrap_or(0),
        num("length")?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_size_limit_is_exact() {
        assert!(within_limit(0));
        assert!(within_limit(MAX_EXTERNAL_BYTES));
        assert!(!within_limit(MAX_EXTERNAL_BYTES + 1));
    }

    #[test]
    fn locations_outside_the_model_folder_are_refused() {
        let base = Path::new("/models/m");
        assert_eq!(
            resolve(base, "model.onnx.data").unwrap(),
            base.join("model.onnx.data")
        );
        for bad in ["", "/etc/passwd", "../secret", "a/../../b", "C:/x"] {
            if bad == "C:/x" && cfg!(unix) {
                continue; // a normal relative name on Unix
            }
            assert!(resolve(base, bad).is_err(), "{bad:?}");
        }
    }
}
