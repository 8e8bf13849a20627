//! CSV files of numeric features with an integer label column (the UCI
//! sets shipped under `data/`), optionally gzip-compressed.

use super::Dataset;
use crate::NnError;
use flate2::read::GzDecoder;
use ndarray::Array2;
use std::io::Read;
use std::path::Path;

/// Largest CSV accepted after decompression.
const MAX_BYTES: u64 = 256 << 20;

/// How to read a CSV file.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// Lines to skip at the top (headers).
    pub skip_lines: usize,
    /// Number of classes; `None` = largest label + 1.
    pub num_classes: Option<usize>,
}

/// Reads a CSV file whose last column is an integer class label and the
/// others numeric features; `.gz` files are decompressed.
pub fn load_csv(path: &Path, opts: &CsvOptions) -> Result<Dataset, NnError> {
    let bad = |reason: String| NnError::Data {
        path: path.display().to_string(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(|e| NnError::io(path, e))?;
    let mut text = String::new();
    let res = if path.extension().is_some_and(|e| e == "gz") {
        GzDecoder::new(f)
            .take(MAX_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        f.take(MAX_BYTES + 1).read_to_string(&mut text)
    };
    res.map_err(|e| NnError::io(path, e))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(bad("larger than 256 MiB".into()));
    }
    let mut values = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (ln, line) in text.lines().enumerate().skip(opts.skip_lines) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some((label, feats)) = fields.split_last() else {
            continue;
        };
        if feats.is_empty() {
            return Err(bad(format!("line {}: no features", ln + 1)));
        }
        if *width.get_or_insert(feats.len()) != feats.len() {
            return Err(bad(format!(
                "line {}: {} features, expected {width:?}",
                ln + 1,
                feats.len()
            )));
        }
        for f in feats {
            let v: f32 = f
                .parse()
                .map_err(|_| bad(format!("line {}: '{f}' is not a number", ln + 1)))?;
            if !v.is_finite() {
                return Err(bad(format!("line {}: non-finite value", ln + 1)));
            }
            values.push(v);
        }
        labels.push(label.parse::<usize>().map_err(|_| {
            bad(format!(
                "line {}: label '{label}' is not a class index",
                ln + 1
            ))
        })?);
    }
    let width = width.ok_or_else(|| bad("no data rows".into()))?;
    let classes = opts
        .num_classes
        .unwrap_or_else(|| labels.iter().max().map_or(0, |m| m + 1))
        .max(2);
    let x =
        Array2::from_shape_vec((labels.len(), width), values).map_err(|e| bad(e.to_string()))?;
    Dataset::new(x, labels, vec![width], classes)
}

/// The shipped Breast Cancer Wisconsin (Diagnostic) file: 569 × 30
/// features, label 0 = malignant, 1 = benign, one header line.
pub fn load_breast_cancer(path: &Path) -> Result<Dataset, NnError> {
    load_csv(
        path,
        &CsvOptions {
            skip_lines: 1,
            num_classes: Some(2),
        },
    )
}

/// The shipped 8×8 optical digits file: 1,797 × 64 pixels (0..16), label
/// 0..9, no header. Examples are shaped `[1, 8, 8]`, pixels scaled to
/// [0, 1].
pub fn load_digits(path: &Path) -> Result<Dataset, NnError> {
    let d = load_csv(
        path,
        &CsvOptions {
            skip_lines: 0,
            num_classes: Some(10),
        },
    )?;
    let x = d.features().mapv(|v| v / 16.0);
    Dataset::new(x, d.labels().to_vec(), vec![1, 8, 8], 10)
}
