//! IDX files (the MNIST format), optionally gzip-compressed.

use super::Dataset;
use crate::NnError;
use flate2::read::GzDecoder;
use ndarray::Array2;
use std::io::Read;
use std::path::Path;

/// Largest file accepted after decompression (MNIST train images: 47 MB).
const MAX_BYTES: u64 = 1 << 30;

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, NnError> {
    let f = std::fs::File::open(path).map_err(|e| NnError::io(path, e))?;
    let mut buf = Vec::new();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let res = if gz {
        GzDecoder::new(f).take(MAX_BYTES + 1).read_to_end(&mut buf)
    } else {
        f.take(MAX_BYTES + 1).read_to_end(&mut buf)
    };
    res.map_err(|e| NnError::io(path, e))?;
    if buf.len() as u64 > MAX_BYTES {
        return Err(bad(path, "larger than 1 GiB"));
    }
    Ok(buf)
}

fn bad(path: &Path, reason: impl Into<String>) -> NnError {
    NnError::Data {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Parses an IDX header of unsigned bytes (type 0x08) and returns the
/// dimensions and the payload.
pub(super) fn parse_u8_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(Vec<usize>, &'a [u8]), NnError> {
    let [0, 0, ty, ndim, rest @ ..] = bytes else {
        return Err(bad(path, "not an IDX file (bad magic number)"));
    };
    if *ty != 0x08 {
        return Err(bad(
            path,
            format!("element type 0x{ty:02x} is not unsigned bytes"),
        ));
    }
    let ndim = usize::from(*ndim);
    if ndim == 0 || ndim > 4 || rest.len() < 4 * ndim {
        return Err(bad(path, "bad dimension header"));
    }
    let (hdr, data) = rest.split_at(4 * ndim);
    let dims: Vec<usize> = hdr
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if total != Some(data.len()) {
        return Err(bad(
            path,
            format!("dimensions {dims:?} do not match {} data bytes", data.len()),
        ));
    }
    Ok((dims, data))
}

/// Images from an IDX file as `[N, rows·cols]` features scaled to [0, 1],
/// with the image shape `[rows, cols]`.
pub fn load_idx_images(path: &Path) -> Result<(Array2<f32>, [usize; 2]), NnError> {
    let bytes = read_maybe_gz(path)?;
    let (dims, data) = parse_u8_idx(path, &bytes)?;
    let [n, r, c] = dims[..] else {
        return Err(bad(
            path,
            format!("expected 3 dimensions (images), got {dims:?}"),
        ));
    };
    let x = Array2::from_shape_vec(
        (n, r * c),
        data.iter().map(|&b| f32::from(b) / 255.0).collect(),
    )
    .map_err(|e| bad(path, e.to_string()))?;
    Ok((x, [r, c]))
}

/// Labels from an IDX file.
pub fn load_idx_labels(path: &Path) -> Result<Vec<usize>, NnError> {
    let bytes = read_maybe_gz(path)?;
    let (dims, data) = parse_u8_idx(path, &bytes)?;
    if dims.len() != 1 {
        return Err(bad(
            path,
            format!("expected 1 dimension (labels), got {dims:?}"),
        ));
    }
    Ok(data.iter().map(|&b| usize::from(b)).collect())
}

/// MNIST from a directory holding the four standard files (gzip or not):
/// `(train, test)` with examples shaped `[1, 28, 28]`, pixels in [0, 1].
pub fn load_mnist(dir: &Path) -> Result<(Dataset, Dataset), NnError> {
    // Both spellings are in circulation: `train-images-idx3-ubyte` (LeCun's
    // site) and `train-images.idx3-ubyte`.
    let find = |stem: &str| -> Result<std::path::PathBuf, NnError> {
        let dotted = stem.replacen("-idx", ".idx", 1);
        [stem, dotted.as_str()]
            .iter()
            .flat_map(|s| [format!("{s}.gz"), s.to_string()])
            .map(|n| dir.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| bad(dir, format!("{stem}[.gz] not found")))
    };
    let load = |img: &str, lab: &str| -> Result<Dataset, NnError> {
        let (x, [r, c]) = load_idx_images(&find(img)?)?;
        let y = load_idx_labels(&find(lab)?)?;
        Dataset::new(x, y, vec![1, r, c], 10)
    };
    Ok((
        load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
        load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
    ))
}
