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

/// An element type, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// `<f4`.
    F4,
    /// `<f8`.
    F8,
    /// `|u1`.
    U1,
    /// `<i4`.
    I4,
    /// `<i8`.
    I8,
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::U1 => 1,
            Elem::F4 | Elem::I4 => 4,
            Elem::F8 | Elem::I8 => 8,
        }
    }

    /// One element from exactly [`Elem::size`] bytes (0 for a short slice).
    pub fn read(self, b: &[u8]) -> f32 {
        let arr = |n: usize| -> [u8; 8] {
            let mut a = [0u8; 8];
            if let (Some(dst), Some(src)) = (a.get_mut(..n), b.get(..n)) {
                dst.copy_from_slice(src);
            }
            a
        };
        match self {
            Elem::U1 => f32::from(b.first().copied().unwrap_or(0)),
            Elem::F4 => {
                let a = arr(4);
                f32::from_le_bytes([a[0], a[1], a[2], a[3]])
            }
            Elem::I4 => {
                let a = arr(4);
                i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f32
            }
            Elem::F8 => f64::from_le_bytes(arr(8)) as f32,
            Elem::I8 => i64::from_le_bytes(arr(8)) as f32,
        }
    }
}

/// What a `.npy` header declares.
#[derive(Clone, Debug)]
pub struct Header {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// The element type.
    pub elem: Elem,
    /// Elements in all (bounded by [`MAX_VALUES`]).
    pub count: usize,
}

fn read_exact<R: std::io::Read>(r: &mut R, n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)
        .map_err(|_| "truncated header".to_string())?;
    Ok(buf)
}

/// Reads and checks a `.npy` header from `r`, leaving it at the data.
pub fn read_header<R: std::io::Read>(r: &mut R) -> Result<Header, String> {
    let pre = read_exact(r, MAGIC.len() + 2)?;
    if !pre.starts_with(MAGIC) {
        return Err("not a .npy file".into());
    }
    let len = match pre.get(MAGIC.len()).copied() {
        Some(1) => {
            let l = read_exact(r, 2)?;
            usize::from(u16::from_le_bytes([l[0], l[1]]))
        }
        Some(2 | 3) => {
            let l = read_exact(r, 4)?;
            usize::try_from(u32::from_le_bytes([l[0], l[1], l[2], l[3]]))
                .map_err(|_| "header too long")?
        }
        v => return Err(format!(".npy format version {v:?} is not supported")),
    };
    if len > MAX_HEADER {
        return Err(format!(
            "a header of {len} bytes is over the {MAX_HEADER}-byte limit"
        ));
    }
    let header = read_exact(r, len).map_err(|_| "header length beyond the file".to_string())?;
    let header = std::str::from_utf8(&header).map_err(|_| "header is not text")?;
    let descr = field(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    if field(header, "fortran_order").map(str::trim) != Some("False") {
        return Err("only C-order arrays are supported (fortran_order must be False)".into());
    }
    let shape = shape(header)?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&c| c <= MAX_VALUES)
        .ok_or_else(|| format!("shape {shape:?} holds more than {MAX_VALUES} values"))?;
    let elem = match descr {
        "<f4" => Elem::F4,
        "<f8" => Elem::F8,
        "|u1" | "<u1" => Elem::U1,
        "<i4" => Elem::I4,
        "<i8" => Elem::I8,
        other => {
            return Err(format!(
                "element type {other:?} is not supported (f4, f8, u1, i4, i8, little-endian)"
            ))
        }
    };
    Ok(Header { shape, elem, count })
}

/// The shape and the values (C order) of a whole `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    let mut r = bytes;
    let h = read_header(&mut r)?;
    let size = h.elem.size();
    if h.count.checked_mul(size) != Some(r.len()) {
        return Err(format!(
            "shape {:?} needs {} bytes, the file holds {}",
            h.shape,
            h.count.saturating_mul(size),
            r.len()
        ));
    }
    Ok((
        h.shape,
        r.chunks_exact(size).map(|c| h.elem.read(c)).collect(),
    ))
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

    /// A version-2 file whose header is exactly `len` bytes.
    fn v2_with_header_len(len: usize) -> Vec<u8> {
        let mut h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }".to_string();
        while h.len() + 1 < len {
            h.push(' ');
        }
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend([2, 0]);
        out.extend((h.len() as u32).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(1.5f32.to_le_bytes());
        out
    }

    #[test]
    fn the_header_limit_is_exact() {
        // A header of MAX_HEADER bytes is read; one byte more is refused
        // before anything that size is allocated.
        assert_eq!(parse(&v2_with_header_len(MAX_HEADER)).unwrap().1, vec![1.5]);
        assert!(parse(&v2_with_header_len(MAX_HEADER + 1)).is_err());
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
