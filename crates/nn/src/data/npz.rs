//! NumPy `.npz` archives (`np.savez`, `np.savez_compressed`): a zip of
//! `.npy` arrays, read with the `zip` crate (deflate through flate2). The
//! inputs are the only array, or the one named `x`, `X`, `inputs`,
//! `images`, `features`, `data` or `arr_0`; labels, when present, the
//! array named `y`, `Y`, `labels`, `targets` or `arr_1`. Every entry's
//! size is bounded before it is read.

use super::inputs::MAX_FILE_BYTES;
use super::npy;
use std::io::{Cursor, Read};

/// Most entries an archive may list.
const MAX_ENTRIES: usize = 256;

const INPUT_NAMES: [&str; 7] = ["x", "X", "inputs", "images", "features", "data", "arr_0"];
const LABEL_NAMES: [&str; 5] = ["y", "Y", "labels", "targets", "arr_1"];

/// Whether `bytes` start like a zip archive.
pub(crate) fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// The inputs (shape `[N, …]` and values) and the labels, if the archive
/// holds them.
pub(crate) type Arrays = (Vec<usize>, Vec<f32>, Option<Vec<usize>>);

/// Reads the inputs and labels of an `.npz` archive.
pub(crate) fn parse(bytes: &[u8]) -> Result<Arrays, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a valid .npz (zip) archive: {e}"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("{} arrays (at most {MAX_ENTRIES})", zip.len()));
    }
    let names: Vec<String> = zip
        .file_names()
        .filter(|n| n.ends_with(".npy"))
        .map(|n| n.trim_end_matches(".npy").to_string())
        .collect();
    let inputs = if names.len() == 1 {
        names.first().cloned()
    } else {
        INPUT_NAMES
            .iter()
            .find(|n| names.iter().any(|m| m == *n))
            .map(|n| n.to_string())
    }
    .ok_or_else(|| {
        format!(
            "which array holds the inputs? name it one of {} (arrays: {})",
            INPUT_NAMES.join(", "),
            names.join(", ")
        )
    })?;
    let labels = LABEL_NAMES
        .iter()
        .find(|n| **n != inputs && names.iter().any(|m| m == *n))
        .map(|n| n.to_string());
    let mut read = |name: &str| -> Result<Vec<u8>, String> {
        let mut f = zip
            .by_name(&format!("{name}.npy"))
            .map_err(|e| format!("{name}.npy: {e}"))?;
        if f.size() > MAX_FILE_BYTES {
            return Err(format!(
                "{name}.npy declares {} bytes (at most {MAX_FILE_BYTES})",
                f.size()
            ));
        }
        let mut out = Vec::new();
        (&mut f)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("{name}.npy: {e}"))?;
        if out.len() as u64 > MAX_FILE_BYTES {
            return Err(format!("{name}.npy holds more than {MAX_FILE_BYTES} bytes"));
        }
        Ok(out)
    };
    let (shape, values) = npy::parse(&read(&inputs)?).map_err(|e| format!("{inputs}.npy: {e}"))?;
    let labels = match labels {
        Some(name) => {
            let (ls, lv) = npy::parse(&read(&name)?).map_err(|e| format!("{name}.npy: {e}"))?;
            let n = shape.first().copied().unwrap_or(0);
            if ls.len() != 1 || lv.len() != n {
                return Err(format!(
                    "{name}.npy: labels of shape {ls:?} for {n} inputs (one integer each)"
                ));
            }
            let labels = lv
                .iter()
                .map(|&v| {
                    (v >= 0.0 && v.fract() == 0.0 && v < 1e6)
                        .then_some(v as usize)
                        .ok_or_else(|| format!("{name}.npy: label {v} is not a class index"))
                })
                .collect::<Result<Vec<usize>, String>>()?;
            Some(labels)
        }
        None => None,
    };
    Ok((shape, values, labels))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    /// A `.npy` of `f32` values of `shape`.
    fn npy(shape: &[usize], values: &[f32]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let mut header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
            dims.join(", ")
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    fn npz(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn arrays_are_found_by_name_and_bad_archives_refused() {
        let x = npy(&[2, 3], &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        let (shape, values, labels) = parse(&npz(&[
            ("x.npy", x.clone()),
            ("y.npy", npy(&[2], &[1.0, 0.0])),
        ]))
        .unwrap();
        assert_eq!(
            (shape, values.len(), labels),
            (vec![2, 3], 6, Some(vec![1, 0]))
        );
        // Two arrays, neither named as inputs: the error lists them.
        let e = parse(&npz(&[("a.npy", x.clone()), ("b.npy", x.clone())])).unwrap_err();
        assert!(e.contains("a, b"), "{e}");
        // Labels that are not class indices, or not one per input.
        for y in [npy(&[2], &[0.5, 1.0]), npy(&[3], &[0.0, 1.0, 2.0])] {
            assert!(parse(&npz(&[("x.npy", x.clone()), ("y.npy", y)])).is_err());
        }
        // A cut archive, and a zip that holds no .npy.
        let whole = npz(&[("x.npy", x)]);
        assert!(parse(&whole[..whole.len() / 2]).is_err());
        assert!(parse(&npz(&[("notes.txt", b"hi".to_vec())])).is_err());
    }
}
