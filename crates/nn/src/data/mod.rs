//! Data sets: the files a user brings ([`load_inputs`]: images, image
//! folders, `.npy`, IDX, CSV tables with a header), loaders of the shipped
//! sets (IDX for MNIST, CSV for the UCI sets), splits,
//! standardisation, shuffling, and partitions into federated clients.

mod csv;
mod idx;
mod inputs;
mod npy;
mod npz;
mod partition;
mod stream;
mod streamed;
mod table;

pub(crate) use csv::{digits_shape, BREAST_CANCER, DIGITS};
pub use csv::{load_breast_cancer, load_csv, load_digits, parse_csv, CsvOptions};
pub use idx::{load_idx_images, load_idx_labels, load_mnist};
pub use inputs::{
    decode_image_bytes, load_inputs, InputOptions, Inputs, MAX_FILES, MAX_FILE_BYTES,
    MAX_IMAGE_SIDE, MAX_VALUES,
};
pub use partition::{partition_dirichlet, partition_iid};
pub use stream::{stream_inputs, InputStream};
pub use streamed::{StreamedData, TrainingData, WINDOW_BYTES};

use crate::{NnError, Tensor};
use ndarray::{Array1, Array2, Axis};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A labelled classification data set held in memory: one row of features
/// per example, reshaped to `shape` when batched.
#[derive(Clone, Debug)]
pub struct Dataset {
    features: Array2<f32>,
    labels: Vec<usize>,
    shape: Vec<usize>,
    num_classes: usize,
}

impl Dataset {
    /// A data set from `[N, F]` features, `N` labels below `num_classes`,
    /// and the per-example shape (its product must be `F`).
    pub fn new(
        features: Array2<f32>,
        labels: Vec<usize>,
        shape: Vec<usize>,
        num_classes: usize,
    ) -> Result<Self, NnError> {
        if features.nrows() != labels.len() {
            return Err(NnError::shape(
                "labels",
                &[features.nrows()],
                &[labels.len()],
            ));
        }
        if shape.iter().product::<usize>() != features.ncols() || shape.is_empty() {
            return Err(NnError::shape("example shape", &[features.ncols()], &shape));
        }
        if num_classes < 2 {
            return Err(NnError::Config(
                "a classification set needs at least two classes".into(),
            ));
        }
        if let Some(&c) = labels.iter().find(|&&c| c >= num_classes) {
            return Err(NnError::Config(format!(
                "label {c} out of range for {num_classes} classes"
            )));
        }
        if features.iter().any(|v| !v.is_finite()) {
            return Err(NnError::Config("features must be finite".into()));
        }
        Ok(Dataset {
            features,
            labels,
            shape,
            num_classes,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Per-example shape, e.g. `[1, 28, 28]` or `[30]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// `[N, F]` features.
    pub fn features(&self) -> &Array2<f32> {
        &self.features
    }

    /// Labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Reinterprets each example with another shape of the same size (for
    /// example the 64 digits pixels as `[1, 8, 8]`).
    pub fn with_shape(mut self, shape: Vec<usize>) -> Result<Self, NnError> {
        if shape.iter().product::<usize>() != self.features.ncols() || shape.is_empty() {
            return Err(NnError::shape(
                "example shape",
                &[self.features.ncols()],
                &shape,
            ));
        }
        self.shape = shape;
        Ok(self)
    }

    /// The examples at `idx` as a batch `[B, shape…]` and their labels.
    pub fn batch(&self, idx: &[usize]) -> Result<(Tensor, Vec<usize>), NnError> {
        if let Some(&i) = idx.iter().find(|&&i| i >= self.len()) {
            return Err(NnError::Config(format!(
                "example {i} out of range ({} examples)",
                self.len()
            )));
        }
        let x = self.features.select(Axis(0), idx);
        let mut shape = vec![idx.len()];
        shape.extend(&self.shape);
        let x = x
            .into_shape_with_order(ndarray::IxDyn(&shape))
            .map_err(|e| NnError::Config(e.to_string()))?;
        Ok((x, idx.iter().map(|&i| self.labels[i]).collect()))
    }

    /// The examples at `idx` as a new data set.
    pub fn subset(&self, idx: &[usize]) -> Result<Dataset, NnError> {
        if let Some(&i) = idx.iter().find(|&&i| i >= self.len()) {
            return Err(NnError::Config(format!(
                "example {i} out of range ({} examples)",
                self.len()
            )));
        }
        Ok(Dataset {
            features: self.features.select(Axis(0), idx),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape.clone(),
            num_classes: self.num_classes,
        })
    }

    /// Shuffles (seeded) and splits into (train, test) with
    /// `round(test_fraction · N)` test examples.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset), NnError> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(NnError::Config(format!(
                "test fraction must be in (0, 1), got {test_fraction}"
            )));
        }
        let order = shuffled_indices(self.len(), &mut ChaCha20Rng::seed_from_u64(seed));
        let n_test = ((self.len() as f64) * test_fraction).round() as usize;
        let (test, train) = order.split_at(n_test.min(order.len()));
        Ok((self.subset(train)?, self.subset(test)?))
    }
}

/// A uniformly random permutation of `0..n` (Fisher–Yates).
pub fn shuffled_indices(n: usize, rng: &mut dyn RngCore) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = uniform_below(rng, i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// Uniform integer in `0..n` without modulo bias (Lemire's method).
pub(crate) fn uniform_below(rng: &mut dyn RngCore, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Per-feature standardisation `(x − mean) / std`, fitted on a training
/// set and applied unchanged to the test set (features with zero variance
/// are only centred).
#[derive(Clone, Debug)]
pub struct Standardizer {
    /// Per-feature mean.
    pub mean: Array1<f32>,
    /// Per-feature standard deviation (1 where it was 0).
    pub std: Array1<f32>,
}

impl Standardizer {
    /// Fits on `data`'s features.
    pub fn fit(data: &Dataset) -> Result<Self, NnError> {
        let mean = data
            .features
            .mean_axis(Axis(0))
            .ok_or_else(|| NnError::Config("cannot standardise an empty data set".into()))?;
        let std = data
            .features
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 1e-12 { s } else { 1.0 });
        Ok(Standardizer { mean, std })
    }

    /// Applies to a data set with the same number of features.
    pub fn apply(&self, data: &mut Dataset) -> Result<(), NnError> {
        if data.features.ncols() != self.mean.len() {
            return Err(NnError::shape(
                "standardiser",
                &[self.mean.len()],
                &[data.features.ncols()],
            ));
        }
        for mut row in data.features.rows_mut() {
            row -= &self.mean;
            row /= &self.std;
        }
        Ok(())
    }
}
