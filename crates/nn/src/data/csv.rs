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
    let f = std::fs::File::open(path).map_err(|e| NnError::io(path, e))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    read_csv(f, gz, &path.display().to_string(), opts).map_err(|e| e.or_io(path))
}

/// [`load_csv`] from bytes (`gz`: gzip-compressed); `name` names the source
/// in errors.
pub fn parse_csv(
    bytes: &[u8],
    gz: bool,
    name: &str,
    opts: &CsvOptions,
) -> Result<Dataset, NnError> {
    read_csv(bytes, gz, name, opts).map_err(|e| e.or_io(Path::new(name)))
}

/// Why reading failed: the bytes could not be read, or they are not a
/// valid data set.
enum ReadError {
    Io(std::io::Error),
    Data(NnError),
}

impl ReadError {
    fn or_io(self, path: &Path) -> NnError {
        match self {
            ReadError::Io(e) => NnError::io(path, e),
            ReadError::Data(e) => e,
        }
    }
}

fn read_csv<R: Read>(
    src: R,
    gz: bool,
    name: &str,
    opts: &CsvOptions,
) -> Result<Dataset, ReadError> {
    let bad = |reason: String| NnError::Data {
        path: name.to_string(),
        reason,
    };
    let mut text = String::new();
    let res = if gz {
        GzDecoder::new(src)
            .take(MAX_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        src.take(MAX_BYTES + 1).read_to_string(&mut text)
    };
    res.map_err(ReadError::Io)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(ReadError::Data(bad("larger than 256 MiB".into())));
    }
    parse_text(&text, name, opts).map_err(ReadError::Data)
}

fn parse_text(text: &str, name: &str, opts: &CsvOptions) -> Result<Dataset, NnError> {
    let bad = |reason: String| NnError::Data {
        path: name.to_string(),
        reason,
    };
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
    load_csv(path, &BREAST_CANCER)
}

/// The options of the Breast Cancer file: one header line, two classes.
pub(crate) const BREAST_CANCER: CsvOptions = CsvOptions {
    skip_lines: 1,
    num_classes: Some(2),
};

/// The options of the digits file: no header, ten classes.
pub(crate) const DIGITS: CsvOptions = CsvOptions {
    skip_lines: 0,
    num_classes: Some(10),
};

/// The shipped 8×8 optical digits file: 1,797 × 64 pixels (0..16), label
/// 0..9, no header. Examples are shaped `[1, 8, 8]`, pixels scaled to
/// [0, 1].
pub fn load_digits(path: &Path) -> Result<Dataset, NnError> {
    digits_shape(load_csv(path, &DIGITS)?)
}

/// Pixels scaled to [0, 1] and examples shaped `[1, 8, 8]`.
pub(crate) fn digits_shape(d: Dataset) -> Result<Dataset, NnError> {
    let x = d.features().mapv(|v| v / 16.0);
    Dataset::new(x, d.labels().to_vec(), vec![1, 8, 8], 10)
}
