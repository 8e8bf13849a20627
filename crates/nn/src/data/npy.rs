//! NumPy `.npy` arrays (format versions 1–3, C order, little-endian
//! numbers or single bytes), read into f32.
//!
//! Written here rather than taken from a crate because the declared shape
//! must be checked against the bytes actually present before anything is
//! allocated, and the element types PyTorch users save (f4, f8, u1, i4,
//! i8) must all land in f32.

use super::inputs::MAX_VALUES;

/// The file's first bytes.
pub const MAGIC: &[u8] = b"\x93NUMPY";

/// Largest header accepted.
const MAX_HEADER: usize = 1 << 16;

/// The shape and the values (C order) of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("not a .npy file")?;
    let (&major, rest) = rest.split_first().ok_or("truncated header")?;
    let (_, rest) = rest.split_first().ok_or("truncated header")?;
    let (len, rest) = match major {
        1 => {
            let (l, r) = rest.split_first_chunk::<2>().ok_or("truncated header")?;
            (usize::from(u16::from_le_bytes(*l)), r)
        }
        2 | 3 => {
            let (l, r) = rest.split_first_chunk::<4>().ok_or("truncated header")?;
            let n = usize::try_from(u32::from_le_bytes(*l)).map_err(|_| "header too long")?;
            (n, r)
        }
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    if len > MAX_HEADER || len > rest.len() {
        return Err("header length beyond the file".into());
    }
    let (header, data) = rest.split_at(len);
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let descr = field(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if field(header, "fortran_order").map(str::trim) != Some("False") {
        return Err("only C-order arrays are supported (fortran_order must be False)".into());
    }
    let shape = shape(header)?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&c| c <= MAX_VALUES)
        .ok_or_else(|| format!("shape {shape:?} holds more than {MAX_VALUES} values"))?;
    let (size, read): (usize, fn(&[u8]) -> f32) = match descr {
        "<f4" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "<f8" => (8, |b| {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }),
        "|u1" | "<u1" => (1, |b| f32::from(b[0])),
        "<i4" => (4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32),
        "<i8" => (8, |b| {
            i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }),
        other => {
            return Err(format!(
                "element type {other:?} is not supported (f4, f8, u1, i4, i8, little-endian)"
            ))
        }
    };
    if count.checked_mul(size) != Some(data.len()) {
        return Err(format!(
            "shape {shape:?} of {descr} needs {} bytes, the file holds {}",
            count.saturating_mul(size),
            data.len()
        ));
    }
    // `chunks_exact(size)` hands `read` exactly `size` bytes.
    Ok((shape, data.chunks_exact(size).map(read).collect()))
}

/// The text of `'key': value` in a header dictionary (up to the next
/// top-level comma).
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header.get(at + key.len() + 2..)?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth <= 0 => return rest.get(..i),
            _ => {}
        }
    }
    None
}

fn shape(header: &str) -> Result<Vec<usize>, String> {
    let s = field(header, "shape").ok_or("header has no 'shape'")?;
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("shape is not a tuple")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .map_err(|_| format!("bad dimension {d:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(MAGIC.len() + 4 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn each_element_type_reads_into_f32() {
        let f4: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            parse(&npy("<f4", "(2,)", &f4)).unwrap(),
            (vec![2], vec![1.5, -2.0])
        );
        let f8: Vec<u8> = [0.25f64; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse(&npy("<f8", "(2, 2)", &f8)).unwrap().0, vec![2, 2]);
        assert_eq!(
            parse(&npy("|u1", "(3,)", &[0, 7, 255])).unwrap().1,
            vec![0.0, 7.0, 255.0]
        );
        let i8s: Vec<u8> = [-3i64].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse(&npy("<i8", "(1, 1)", &i8s)).unwrap().1, vec![-3.0]);
    }

    #[test]
    fn hostile_headers_are_refused_before_allocation() {
        let cases: [(&str, Vec<u8>); 6] = [
            ("huge shape", npy("<f4", "(4294967296, 4294967296)", &[])),
            ("short data", npy("<f4", "(3,)", &[0; 8])),
            ("big-endian", npy(">f4", "(1,)", &[0; 4])),
            ("fortran", {
                let mut b = npy("<f4", "(1,)", &[0; 4]);
                let s = String::from_utf8_lossy(&b).replace("False", "True ");
                b = s.into_bytes();
                b
            }),
            ("bad shape", npy("<f4", "(a,)", &[])),
            ("truncated", MAGIC.to_vec()),
        ];
        for (what, bytes) in cases {
            assert!(parse(&bytes).is_err(), "{what}");
        }
        let mut long = npy("<f4", "(1,)", &[0; 4]);
        long[8] = 0xff;
        long[9] = 0xff;
        assert!(parse(&long).is_err(), "header longer than the file");
    }
}
