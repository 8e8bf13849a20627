//! Training data larger than memory: a labelled file or folder read again
//! each time a window of batches is needed, keeping only those batches'
//! rows. Training on it ([`crate::train::fit_data`]) draws exactly the
//! batches it would draw in memory — shuffled minibatches, or DP-SGD's
//! Poisson samples — and gathers several steps' rows in one pass over the
//! file, so memory holds one window (about [`WINDOW_BYTES`]) and the labels.

use super::stream::stream_inputs;
use super::{shuffled_indices, Dataset, InputOptions};
use crate::{NnError, Preprocessing};
use ndarray::Array2;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::{Path, PathBuf};

/// The rows one gathering pass keeps, in bytes of features.
pub const WINDOW_BYTES: usize = 64 << 20;

/// Rows read per chunk while passing over the file.
const READ_CHUNK: usize = 4096;

/// Labelled examples a model trains on: in memory ([`Dataset`]) or read
/// from a file as needed ([`StreamedData`]).
pub trait TrainingData {
    /// Number of examples.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The shape of one example.
    fn shape(&self) -> &[usize];
    /// Number of classes.
    fn num_classes(&self) -> usize;
    /// The examples at `positions`, in that order.
    fn rows(&self, positions: &[usize]) -> Result<Dataset, NnError>;
    /// The most examples worth gathering at once.
    fn window(&self) -> usize;
    /// The examples themselves, when they are in memory (no gathering).
    fn in_memory(&self) -> Option<&Dataset> {
        None
    }
}

impl TrainingData for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }
    fn shape(&self) -> &[usize] {
        Dataset::shape(self)
    }
    fn num_classes(&self) -> usize {
        Dataset::num_classes(self)
    }
    fn rows(&self, positions: &[usize]) -> Result<Dataset, NnError> {
        self.subset(positions)
    }
    fn window(&self) -> usize {
        usize::MAX
    }
    fn in_memory(&self) -> Option<&Dataset> {
        Some(self)
    }
}

/// A labelled file or folder (IDX or `.npy` with a label file, or an
/// ImageFolder), or a subset of its rows, read from disk when rows are
/// needed.
#[derive(Clone, Debug)]
pub struct StreamedData {
    path: PathBuf,
    opts: InputOptions,
    /// The file's row of each example.
    rows: Vec<usize>,
    /// The label of each example.
    labels: Vec<usize>,
    shape: Vec<usize>,
    num_classes: usize,
    class_names: Option<Vec<String>>,
    preprocessing: Option<Preprocessing>,
    window_bytes: usize,
}

fn bad(path: &Path, reason: impl Into<String>) -> NnError {
    NnError::Data {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl StreamedData {
    /// Opens `path`, reading it once to check every row and collect the
    /// labels (files without labels are refused).
    pub fn open(path: &Path, opts: &InputOptions) -> Result<Self, NnError> {
        let stream = stream_inputs(path, opts, READ_CHUNK)?;
        let shape = stream.shape().to_vec();
        let class_names = stream.class_names().map(<[String]>::to_vec);
        let mut labels = Vec::new();
        for chunk in stream {
            let chunk = chunk?;
            let Some(l) = chunk.labels else {
                return Err(bad(
                    path,
                    "no labels (images need one subfolder per class, IDX and .npy files a \
                     label file)",
                ));
            };
            labels.extend(l);
        }
        if labels.is_empty() {
            return Err(bad(path, "no examples"));
        }
        let num_classes = class_names
            .as_ref()
            .map_or_else(|| labels.iter().max().map_or(2, |m| m + 1), Vec::len)
            .max(2);
        Ok(StreamedData {
            path: path.to_path_buf(),
            opts: InputOptions {
                shape: Some(shape.clone()),
                ..opts.clone()
            },
            rows: (0..labels.len()).collect(),
            labels,
            shape,
            num_classes,
            class_names,
            preprocessing: None,
            window_bytes: WINDOW_BYTES,
        })
    }

    /// Sets how many bytes of rows one gathering pass may hold (default
    /// [`WINDOW_BYTES`]; at least one row is always gathered).
    pub fn with_window_bytes(mut self, bytes: usize) -> Self {
        self.window_bytes = bytes;
        self
    }

    /// Class names the files give (ImageFolder's folders), if any.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// The labels, in example order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Normalizes the rows as they are read.
    pub fn normalized(mut self, p: Preprocessing) -> Result<Self, NnError> {
        p.check(&self.shape)?;
        self.preprocessing = Some(p);
        Ok(self)
    }

    /// Shuffles (seeded) and splits into (train, test) with
    /// `round(test_fraction · N)` test examples: the same examples in the
    /// same order as [`Dataset::split`] of the data in memory.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(Self, Self), NnError> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(NnError::Config(format!(
                "test fraction must be in (0, 1), got {test_fraction}"
            )));
        }
        let order = shuffled_indices(self.rows.len(), &mut ChaCha20Rng::seed_from_u64(seed));
        let n_test = ((self.rows.len() as f64) * test_fraction).round() as usize;
        let (test, train) = order.split_at(n_test.min(order.len()));
        Ok((self.subset(train), self.subset(test)))
    }

    fn subset(&self, positions: &[usize]) -> Self {
        let picked: Vec<(usize, usize)> = positions
            .iter()
            .filter_map(|&p| Some((*self.rows.get(p)?, *self.labels.get(p)?)))
            .collect();
        StreamedData {
            rows: picked.iter().map(|r| r.0).collect(),
            labels: picked.iter().map(|r| r.1).collect(),
            ..self.clone()
        }
    }
}

impl TrainingData for StreamedData {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// One pass over the file, keeping the rows asked for.
    fn rows(&self, positions: &[usize]) -> Result<Dataset, NnError> {
        let width: usize = self.shape.iter().product();
        // (row in the file, row of the result), in file order.
        let mut want = Vec::with_capacity(positions.len());
        let mut labels = Vec::with_capacity(positions.len());
        for (k, &p) in positions.iter().enumerate() {
            let (Some(&r), Some(&l)) = (self.rows.get(p), self.labels.get(p)) else {
                return Err(NnError::Config(format!(
                    "example {p} of {} asked for",
                    self.rows.len()
                )));
            };
            want.push((r, k));
            labels.push(l);
        }
        want.sort_unstable();
        let mut features = Array2::<f32>::zeros((positions.len(), width));
        let mut next = 0usize;
        let mut offset = 0usize;
        if !want.is_empty() {
            for chunk in stream_inputs(&self.path, &self.opts, READ_CHUNK)? {
                let chunk = chunk?;
                let end = offset + chunk.len();
                while let Some(&(r, k)) = want.get(next) {
                    if r >= end {
                        break;
                    }
                    // r ∈ [offset, end) and k < positions.len(): both rows
                    // exist; checked anyway rather than trusted.
                    if r - offset < chunk.features.nrows() && k < features.nrows() {
                        features.row_mut(k).assign(&chunk.features.row(r - offset));
                    }
                    next += 1;
                }
                offset = end;
                if next == want.len() {
                    break;
                }
            }
        }
        if next != want.len() {
            return Err(bad(
                &self.path,
                format!("the file changed: it now holds {offset} inputs"),
            ));
        }
        if let Some(p) = &self.preprocessing {
            p.apply(&mut features, &self.shape)?;
        }
        Dataset::new(features, labels, self.shape.clone(), self.num_classes)
    }

    fn window(&self) -> usize {
        let width: usize = self.shape.iter().product();
        (self.window_bytes / (4 * width).max(1)).max(1)
    }
}
