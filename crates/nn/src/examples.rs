//! The example data sets and models the repository ships under `data/`,
//! embedded in the library (about 270 KB) so that a program built on it —
//! the `cipherflow` binary copied anywhere, a Python wheel, a WebAssembly
//! page — runs the examples without the source tree. They are examples:
//! every command also takes the user's own files.
//!
//! MNIST is not shipped (11 MB): [`mnist_dir`] finds it at run time, never
//! at a path fixed when the program was compiled.

use crate::data::{digits_shape, parse_csv, Dataset, BREAST_CANCER, DIGITS};
use crate::io::safetensors;
use crate::{NnError, Sequential};
use std::path::{Path, PathBuf};

const BREAST_CANCER_CSV: &[u8] = include_bytes!("../../../data/breast_cancer.csv");
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../data/digits.csv.gz");
const DIGITS_CNN: &[u8] = include_bytes!("../../../data/models/digits-cnn.safetensors");
const MNIST_TENSEAL_CNN: &[u8] =
    include_bytes!("../../../data/models/mnist-tenseal-cnn.safetensors");

/// The environment variable naming a data directory (MNIST in `mnist/`
/// beneath it).
pub const DATA_DIR_ENV: &str = "CIPHERFLOW_DATA";

/// Breast Cancer Wisconsin (Diagnostic): 569 patients × 30 features, label
/// 0 = malignant, 1 = benign (`data/breast_cancer.csv`).
pub fn breast_cancer() -> Result<Dataset, NnError> {
    parse_csv(
        BREAST_CANCER_CSV,
        false,
        "breast_cancer.csv (shipped)",
        &BREAST_CANCER,
    )
}

/// The UCI optical digits: 1,797 images of 8×8 pixels scaled to [0, 1],
/// shaped `[1, 8, 8]`, labels 0..9 (`data/digits.csv.gz`).
pub fn digits() -> Result<Dataset, NnError> {
    digits_shape(parse_csv(
        DIGITS_CSV_GZ,
        true,
        "digits.csv.gz (shipped)",
        &DIGITS,
    )?)
}

/// The digits CNN trained on [`digits`]'s 80 % split, seed 0
/// (`data/models/digits-cnn.safetensors`: conv → x² → dense → x² → dense).
pub fn digits_cnn() -> Result<Sequential, NnError> {
    safetensors::load_model_bytes(DIGITS_CNN)
}

/// The TenSEAL-tutorial MNIST CNN (`data/models/mnist-tenseal-cnn.safetensors`).
pub fn mnist_tenseal_cnn() -> Result<Sequential, NnError> {
    safetensors::load_model_bytes(MNIST_TENSEAL_CNN)
}

/// The MNIST directory: `explicit` when given; else `$CIPHERFLOW_DATA/mnist`
/// when that variable is set; else the first of `data/mnist` and
/// `../shared/data/mnist` (relative to the working directory) that holds
/// the test labels. An error lists where it looked.
pub fn mnist_dir(explicit: Option<&Path>) -> Result<PathBuf, NnError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Some(root) = std::env::var_os(DATA_DIR_ENV) {
        candidates.push(PathBuf::from(root).join("mnist"));
    } else {
        candidates.push(PathBuf::from("data/mnist"));
        candidates.push(PathBuf::from("../shared/data/mnist"));
    }
    let found = candidates.iter().find(|d| {
        ["t10k-labels-idx1-ubyte.gz", "t10k-labels.idx1-ubyte.gz"]
            .iter()
            .any(|f| d.join(f).is_file())
    });
    found.cloned().ok_or_else(|| NnError::Data {
        path: candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        reason: format!(
            "MNIST not found there; pass its directory (e.g. --data mnist:DIR) or set \
             {DATA_DIR_ENV} to a directory holding mnist/"
        ),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sets_and_models_load_with_their_documented_shapes() {
        let bc = breast_cancer().unwrap();
        assert_eq!(
            (bc.len(), bc.shape(), bc.num_classes()),
            (569, &[30][..], 2)
        );
        let d = digits().unwrap();
        assert_eq!(
            (d.len(), d.shape(), d.num_classes()),
            (1797, &[1, 8, 8][..], 10)
        );
        assert!(d.features().iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert_eq!(digits_cnn().unwrap().input_shape(), &[1, 8, 8]);
        assert_eq!(mnist_tenseal_cnn().unwrap().input_shape(), &[1, 28, 28]);
    }

    #[test]
    fn the_embedded_files_are_the_shipped_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        for (embedded, file) in [
            (BREAST_CANCER_CSV, "breast_cancer.csv"),
            (DIGITS_CSV_GZ, "digits.csv.gz"),
            (DIGITS_CNN, "models/digits-cnn.safetensors"),
            (MNIST_TENSEAL_CNN, "models/mnist-tenseal-cnn.safetensors"),
        ] {
            assert_eq!(embedded, std::fs::read(root.join(file)).unwrap(), "{file}");
        }
    }

    #[test]
    fn an_explicit_mnist_directory_is_taken_as_given() {
        let d = Path::new("/nowhere/mnist");
        assert_eq!(mnist_dir(Some(d)).unwrap(), d);
    }
}
