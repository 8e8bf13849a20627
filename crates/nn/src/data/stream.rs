//! Inputs read a chunk at a time, so that a data set larger than memory
//! runs in memory of one chunk: IDX and `.npy` files are read row by row
//! from the (decompressed) stream, a folder of images file by file; a
//! single image and a CSV table are read whole.

use super::inputs::{
    self, file_id, image_files, InputOptions, Inputs, LabelledFile, MAX_FILES, MAX_FILE_BYTES,
};
use super::npy::{self, Elem};
use crate::NnError;
use flate2::read::GzDecoder;
use ndarray::Array2;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Largest buffer one read of rows allocates.
const MAX_READ: usize = 64 << 20;

fn bad(path: &Path, reason: impl Into<String>) -> NnError {
    NnError::Data {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// How rows are stored in a row-wise file.
#[derive(Clone, Copy)]
enum RowFormat {
    /// IDX unsigned bytes, scaled to [0, 1].
    IdxU8,
    /// `.npy` elements as stored.
    Npy(Elem),
}

enum Source {
    /// A row-wise file being read.
    Rows {
        reader: Box<dyn Read + Send>,
        format: RowFormat,
        /// Inputs left to read.
        left: usize,
        /// Values per input.
        width: usize,
    },
    /// Image files: (path, label).
    Files(std::vec::IntoIter<LabelledFile>, PathBuf),
    /// Read whole; handed out once.
    Whole(Option<Inputs>),
}

/// Inputs read `chunk` at a time ([`stream_inputs`]).
pub struct InputStream {
    path: PathBuf,
    source: Source,
    shape: Vec<usize>,
    chunk: usize,
    next_id: usize,
    labels: Option<Vec<usize>>,
    class_names: Option<Vec<String>>,
    want: Option<Vec<usize>>,
}

impl InputStream {
    /// The shape of one input.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Class names the files give (ImageFolder's folders), if any.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    fn next_rows(&mut self) -> Result<Option<Inputs>, NnError> {
        let Source::Rows {
            reader,
            format,
            left,
            width,
        } = &mut self.source
        else {
            return Ok(None);
        };
        let size = match format {
            RowFormat::IdxU8 => 1,
            RowFormat::Npy(e) => e.size(),
        };
        // At most MAX_READ bytes are allocated per read, whatever the
        // header declares (a gzip stream's length is unknown until read).
        let per_read = (MAX_READ / (*width * size).max(1)).max(1);
        let n = (*left).min(self.chunk).min(per_read);
        if n == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; n * *width * size];
        reader.read_exact(&mut buf).map_err(|_| {
            bad(
                &self.path,
                format!(
                    "the file ends before the {} inputs it declares",
                    self.next_id + *left
                ),
            )
        })?;
        let values: Vec<f32> = match format {
            RowFormat::IdxU8 => buf.iter().map(|&b| f32::from(b) / 255.0).collect(),
            RowFormat::Npy(e) => buf.chunks_exact(size).map(|c| e.read(c)).collect(),
        };
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad(&self.path, "non-finite values"));
        }
        *left -= n;
        let features = Array2::from_shape_vec((n, *width), values)
            .map_err(|e| bad(&self.path, e.to_string()))?;
        let ids = (self.next_id..self.next_id + n)
            .map(|i| i.to_string())
            .collect();
        let labels = self.labels.as_ref().map(|l| {
            l.get(self.next_id..self.next_id + n)
                .unwrap_or(&[])
                .to_vec()
        });
        self.next_id += n;
        Ok(Some(Inputs {
            ids,
            features,
            shape: self.shape.clone(),
            labels,
            class_names: None,
        }))
    }

    fn next_files(&mut self) -> Result<Option<Inputs>, NnError> {
        let Source::Files(files, root) = &mut self.source else {
            return Ok(None);
        };
        let batch: Vec<LabelledFile> = files.by_ref().take(self.chunk).collect();
        if batch.is_empty() {
            return Ok(None);
        }
        let want = self.want.clone().unwrap_or_else(|| self.shape.clone());
        let width: usize = want.iter().product();
        let mut values = Vec::with_capacity(batch.len() * width);
        let (mut ids, mut labels) = (Vec::new(), Vec::new());
        for (p, label) in &batch {
            let img = inputs::decode_image_file(p, Some(&want))?;
            values.extend_from_slice(&img);
            ids.push(match label {
                Some(_) => p
                    .strip_prefix(&*root)
                    .map(|r| r.display().to_string())
                    .unwrap_or_else(|_| file_id(p)),
                None => file_id(p),
            });
            labels.push(label.unwrap_or(0));
        }
        self.next_id += batch.len();
        Ok(Some(Inputs {
            ids,
            features: Array2::from_shape_vec((batch.len(), width), values)
                .map_err(|e| bad(&self.path, e.to_string()))?,
            shape: want,
            labels: self.class_names.as_ref().map(|_| labels),
            class_names: self.class_names.clone(),
        }))
    }
}

impl Iterator for InputStream {
    type Item = Result<Inputs, NnError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = match &mut self.source {
            Source::Rows { .. } => self.next_rows(),
            Source::Files(..) => self.next_files(),
            Source::Whole(w) => Ok(w.take()),
        };
        r.transpose()
    }
}

/// Opens the inputs at `path` to read `chunk` (≥ 1) at a time. IDX and
/// `.npy` files and folders of images stream; other kinds are read whole
/// ([`super::load_inputs`]) and handed out as one chunk.
pub fn stream_inputs(
    path: &Path,
    opts: &InputOptions,
    chunk: usize,
) -> Result<InputStream, NnError> {
    let chunk = chunk.max(1);
    let meta = std::fs::metadata(path).map_err(|e| NnError::io(path, e))?;
    let labels = match &opts.labels {
        Some(lp) => Some(super::load_idx_labels(lp)?),
        None => None,
    };
    let mut s = InputStream {
        path: path.to_path_buf(),
        source: Source::Whole(None),
        shape: Vec::new(),
        chunk,
        next_id: 0,
        labels,
        class_names: None,
        want: opts.shape.clone(),
    };
    if meta.is_dir() {
        let (files, class_names) = image_files(path)?;
        if files.len() > MAX_FILES {
            return Err(bad(path, format!("more than {MAX_FILES} images")));
        }
        // The shape: the model's, or the first image's.
        let first = files
            .first()
            .map(|(p, _)| p.clone())
            .ok_or_else(|| bad(path, "no .png, .jpg or .jpeg images"))?;
        s.shape = match &opts.shape {
            Some(w) => w.clone(),
            None => inputs::image_shape(&first)?,
        };
        s.want = Some(s.shape.clone());
        s.class_names = class_names;
        s.source = Source::Files(files.into_iter(), path.to_path_buf());
        return Ok(s);
    }
    let file = std::fs::File::open(path).map_err(|e| NnError::io(path, e))?;
    let mut raw = BufReader::new(file);
    let mut magic = [0u8; 2];
    let peeked = {
        use std::io::BufRead;
        let b = raw.fill_buf().map_err(|e| NnError::io(path, e))?;
        magic.copy_from_slice(b.get(..2).unwrap_or(&[0, 0]));
        b.get(..8).map(<[u8]>::to_vec).unwrap_or_default()
    };
    let mut reader: Box<dyn Read + Send> = if magic == [0x1f, 0x8b] {
        Box::new(BufReader::new(GzDecoder::new(raw)).take(MAX_FILE_BYTES))
    } else {
        Box::new(raw.take(MAX_FILE_BYTES))
    };
    // The decompressed stream's first bytes tell IDX from .npy.
    let mut head = [0u8; 4];
    let is_gz = magic == [0x1f, 0x8b];
    let npy_magic = !is_gz && peeked.starts_with(npy::MAGIC);
    let idx_magic = !is_gz && peeked.starts_with(&[0, 0, 0x08]);
    let (shape, format) = if npy_magic || (is_gz && path.to_string_lossy().ends_with(".npy.gz")) {
        let h = npy::read_header(&mut reader).map_err(|r| bad(path, r))?;
        (h.shape, RowFormat::Npy(h.elem))
    } else if idx_magic || is_gz {
        reader
            .read_exact(&mut head)
            .map_err(|_| bad(path, "not an IDX file (too short)"))?;
        let [0, 0, 0x08, ndim] = head else {
            if is_gz {
                // Another gzip-compressed kind: read whole.
                s.source = Source::Whole(Some(super::load_inputs(path, opts)?));
                return finish_whole(s);
            }
            return Err(bad(path, "not an IDX file of unsigned bytes"));
        };
        let ndim = usize::from(ndim);
        if !(2..=4).contains(&ndim) {
            return Err(bad(path, format!("{ndim} dimensions hold no inputs")));
        }
        let mut dims = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            let mut d = [0u8; 4];
            reader
                .read_exact(&mut d)
                .map_err(|_| bad(path, "bad dimension header"))?;
            dims.push(u32::from_be_bytes(d) as usize);
        }
        (dims, RowFormat::IdxU8)
    } else {
        s.source = Source::Whole(Some(super::load_inputs(path, opts)?));
        return finish_whole(s);
    };
    let (&n, rest) = shape
        .split_first()
        .ok_or_else(|| bad(path, "a scalar holds no inputs"))?;
    let mut per = rest.to_vec();
    if per.is_empty() {
        per = vec![1];
    }
    // Gray images, as in load_inputs: [H, W] → [1, H, W].
    if matches!(format, RowFormat::IdxU8) && per.len() == 2 {
        per.insert(0, 1);
    }
    let width = per
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&w| w > 0 && w.saturating_mul(chunk) <= super::inputs::MAX_VALUES)
        .ok_or_else(|| bad(path, format!("inputs of shape {per:?} are too large")))?;
    if let Some(want) = &opts.shape {
        if want.iter().product::<usize>() != width {
            return Err(bad(
                path,
                format!("inputs of shape {per:?} do not fit the model's input shape {want:?}"),
            ));
        }
        per.clone_from(want);
    }
    // An uncompressed file must hold what its header declares.
    if !is_gz {
        let size = match format {
            RowFormat::IdxU8 => 1,
            RowFormat::Npy(e) => e.size(),
        };
        let need = n.checked_mul(width).and_then(|v| v.checked_mul(size));
        if need.is_none_or(|b| b as u64 > meta.len()) {
            return Err(bad(
                path,
                format!(
                    "the header declares {n} inputs of {width} values, more than the file holds"
                ),
            ));
        }
    }
    if let Some(l) = &s.labels {
        if l.len() != n {
            return Err(bad(path, format!("{} labels for {n} inputs", l.len())));
        }
    }
    s.shape = per;
    s.source = Source::Rows {
        reader,
        format,
        left: n,
        width,
    };
    Ok(s)
}

fn finish_whole(mut s: InputStream) -> Result<InputStream, NnError> {
    if let Source::Whole(Some(w)) = &s.source {
        s.shape = w.shape.clone();
        s.class_names = w.class_names.clone();
    }
    Ok(s)
}
