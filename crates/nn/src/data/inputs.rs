//! The files a user brings: images (one file, a folder, or torchvision's
//! ImageFolder layout of one subfolder per class), NumPy `.npy` arrays, IDX
//! files (gzip or not), and CSV tables with a header. The format is found
//! from the content (magic bytes), a directory's layout, or — for text —
//! the `.csv` extension.
//!
//! Values are what PyTorch's usual pipeline hands a model before its
//! normalization: image pixels scaled to [0, 1] (`ToTensor`), channels
//! first; arrays and tables as stored. Normalization is the model's
//! ([`crate::Preprocessing`]), applied separately.
//!
//! Every size is bounded before it is allocated: file sizes, image
//! dimensions (the decoder's limits), declared array shapes (checked
//! against the bytes present), the number of files and of values.

use super::npy;
use crate::NnError;
use flate2::read::GzDecoder;
use ndarray::Array2;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest input file read (after decompression).
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Most values loaded at once (1 GiB of f32).
pub const MAX_VALUES: usize = 1 << 28;
/// Most files read from one folder.
pub const MAX_FILES: usize = 1 << 20;
/// Largest image side accepted.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Inputs to a model, one row each, with what identifies them.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// One per input: the file name (images), or the id column / row index.
    pub ids: Vec<String>,
    /// `[N, F]` values, `F` the product of `shape`.
    pub features: Array2<f32>,
    /// The shape of one input (e.g. `[1, 28, 28]`).
    pub shape: Vec<usize>,
    /// Labels, where the files carry them (ImageFolder, a label file or
    /// column).
    pub labels: Option<Vec<usize>>,
    /// Class names, where the files name them (ImageFolder's folders).
    pub class_names: Option<Vec<String>>,
}

impl Inputs {
    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.features.nrows()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Labels as the model numbers its classes. Labels that came with
    /// names (ImageFolder's folders, a CSV column of names) are looked up
    /// among the model's class names; without those, names that are
    /// integers are taken as class indices. A name the model does not know
    /// is an error naming it.
    pub fn relabel(&mut self, model_classes: Option<&[String]>) -> Result<(), NnError> {
        let (Some(labels), Some(names)) = (&self.labels, &self.class_names) else {
            return Ok(());
        };
        let index_of = |name: &String| -> Result<usize, NnError> {
            match model_classes {
                Some(m) => m.iter().position(|c| c == name).ok_or_else(|| {
                    NnError::Config(format!(
                        "label {name:?} is not one of the model's classes ({})",
                        m.join(", ")
                    ))
                }),
                None => name.parse::<usize>().map_err(|_| {
                    NnError::Config(format!(
                        "label {name:?}: the model names no classes, so labels must be class \
                         indices"
                    ))
                }),
            }
        };
        let map = names.iter().map(index_of).collect::<Result<Vec<_>, _>>()?;
        self.labels = Some(
            labels
                .iter()
                .map(|&l| map.get(l).copied().unwrap_or(l))
                .collect(),
        );
        self.class_names = model_classes.map(<[String]>::to_vec);
        Ok(())
    }

    /// Keeps the first `n` inputs.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.features = self.features.slice(ndarray::s![..n, ..]).to_owned();
        self.ids.truncate(n);
        if let Some(l) = &mut self.labels {
            l.truncate(n);
        }
    }
}

/// How to read inputs.
#[derive(Clone, Debug, Default)]
pub struct InputOptions {
    /// The shape the model takes (`[C, H, W]` for images): images must
    /// match it (their channels are converted: gray or RGB).
    pub shape: Option<Vec<usize>>,
    /// A label file for IDX or `.npy` inputs (IDX labels, gzip or not).
    pub labels: Option<PathBuf>,
    /// CSV: the column holding the label (none: no labels).
    pub label_column: Option<String>,
    /// CSV: the column identifying each row (none: the row number).
    pub id_column: Option<String>,
}

fn bad(path: &Path, reason: impl Into<String>) -> NnError {
    NnError::Data {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a whole file, at most [`MAX_FILE_BYTES`], decompressing gzip.
fn read_file(path: &Path) -> Result<Vec<u8>, NnError> {
    let f = std::fs::File::open(path).map_err(|e| NnError::io(path, e))?;
    let mut raw = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| NnError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad(path, format!("gzip: {e}")))?;
        raw = out;
    }
    if raw.len() as u64 > MAX_FILE_BYTES {
        return Err(bad(path, "larger than 1 GiB"));
    }
    Ok(raw)
}

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Sorted entries of a folder, hidden ones skipped, at most [`MAX_FILES`].
fn entries(dir: &Path) -> Result<Vec<PathBuf>, NnError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| NnError::io(dir, e))? {
        let e = e.map_err(|e| NnError::io(dir, e))?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if out.len() >= MAX_FILES {
            return Err(bad(dir, format!("more than {MAX_FILES} entries")));
        }
        out.push(e.path());
    }
    out.sort();
    Ok(out)
}

/// Loads the inputs at `path` (a file or a folder).
pub fn load_inputs(path: &Path, opts: &InputOptions) -> Result<Inputs, NnError> {
    let meta = std::fs::metadata(path).map_err(|e| NnError::io(path, e))?;
    if meta.is_dir() {
        return load_folder(path, opts);
    }
    let bytes = read_file(path)?;
    let mut inputs = if looks_like_image(&bytes) {
        let img = decode_image(path, &bytes, opts.shape.as_deref())?;
        one_image(path, img)?
    } else if bytes.starts_with(npy::MAGIC) {
        let (shape, values) = npy::parse(&bytes).map_err(|r| bad(path, r))?;
        rows(path, shape, values)?
    } else if super::npz::is_zip(&bytes) {
        let (shape, values, labels) = super::npz::parse(&bytes).map_err(|r| bad(path, r))?;
        let mut r = rows(path, shape, values)?;
        r.labels = labels;
        r
    } else if matches!(bytes.get(..3), Some([0, 0, 0x08])) {
        let (shape, values) = idx_values(path, &bytes)?;
        rows(path, shape, values)?
    } else if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        || path.to_string_lossy().ends_with(".csv.gz")
    {
        super::table::parse_table(path, &bytes, opts)?
    } else {
        return Err(bad(
            path,
            "not a PNG or JPEG image, a .npy array or .npz archive, an IDX file or a .csv table",
        ));
    };
    if let Some(lp) = &opts.labels {
        let labels = super::load_idx_labels(lp)?;
        if labels.len() != inputs.len() {
            return Err(bad(
                lp,
                format!("{} labels for {} inputs", labels.len(), inputs.len()),
            ));
        }
        inputs.labels = Some(labels);
    }
    if let Some(want) = &opts.shape {
        if want.iter().product::<usize>() != inputs.features.ncols() {
            return Err(bad(
                path,
                format!(
                    "inputs of shape {:?} do not fit the model's input shape {want:?}",
                    inputs.shape
                ),
            ));
        }
        inputs.shape.clone_from(want);
    }
    Ok(inputs)
}

fn looks_like_image(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n") || b.starts_with(&[0xff, 0xd8, 0xff])
}

/// Values of an IDX file of unsigned bytes, scaled to [0, 1]: `[N, …]`;
/// `[N, H, W]` (gray images, as MNIST) becomes `[N, 1, H, W]`, the shape
/// torchvision's `ToTensor` gives them.
fn idx_values(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), NnError> {
    let (mut dims, data) = super::idx::parse_u8_idx(path, bytes)?;
    if dims.len() < 2 {
        return Err(bad(path, format!("dimensions {dims:?} hold no inputs")));
    }
    if dims.len() == 3 {
        dims.insert(1, 1);
    }
    Ok((dims, data.iter().map(|&b| f32::from(b) / 255.0).collect()))
}

/// `[N, …]` values as rows of one input each.
fn rows(path: &Path, shape: Vec<usize>, values: Vec<f32>) -> Result<Inputs, NnError> {
    let (&n, rest) = shape
        .split_first()
        .ok_or_else(|| bad(path, "a scalar holds no inputs"))?;
    let mut per: Vec<usize> = rest.to_vec();
    if per.is_empty() {
        per = vec![1];
    }
    let f = per.iter().product::<usize>();
    // Inputs of no values would let a header declare billions of them in
    // an empty payload (each still gets an id): refused.
    if f == 0 {
        return Err(bad(path, format!("inputs of shape {per:?} hold no values")));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad(path, "non-finite values"));
    }
    let features = Array2::from_shape_vec((n, f), values).map_err(|e| bad(path, e.to_string()))?;
    Ok(Inputs {
        ids: (0..n).map(|i| i.to_string()).collect(),
        features,
        shape: per,
        labels: None,
        class_names: None,
    })
}

/// A decoded image: channels first, pixels in [0, 1].
struct Image {
    shape: [usize; 3],
    values: Vec<f32>,
}

fn decode_image(path: &Path, bytes: &[u8], want: Option<&[usize]>) -> Result<Image, NnError> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| NnError::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_FILE_BYTES);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| bad(path, format!("image: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let channels = match want {
        Some([c, ..]) => *c,
        _ if img.color().has_color() => 3,
        _ => 1,
    };
    if let Some(want) = want {
        let [_, wh, ww] = want else {
            return Err(bad(
                path,
                format!("the model takes inputs of shape {want:?}, not images [C, H, W]"),
            ));
        };
        if (*wh, *ww) != (h, w) {
            return Err(bad(
                path,
                format!("the image is {w}×{h}, the model takes {ww}×{wh}"),
            ));
        }
    }
    let values: Vec<f32> = match channels {
        1 => img
            .to_luma8()
            .into_raw()
            .iter()
            .map(|&v| f32::from(v) / 255.0)
            .collect(),
        3 => {
            let rgb = img.to_rgb8().into_raw();
            let plane = w * h;
            let mut out = vec![0f32; 3 * plane];
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    if let Some(slot) = out.get_mut(c * plane + i) {
                        *slot = f32::from(v) / 255.0;
                    }
                }
            }
            out
        }
        c => {
            return Err(bad(
                path,
                format!("the model takes {c} channels; images give 1 (gray) or 3 (RGB)"),
            ))
        }
    };
    Ok(Image {
        shape: [channels, h, w],
        values,
    })
}

pub(super) fn file_id(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn one_image(path: &Path, img: Image) -> Result<Inputs, NnError> {
    let f = img.values.len();
    Ok(Inputs {
        ids: vec![file_id(path)],
        features: Array2::from_shape_vec((1, f), img.values)
            .map_err(|e| bad(path, e.to_string()))?,
        shape: img.shape.to_vec(),
        labels: None,
        class_names: None,
    })
}

/// An image file and its label (its class folder's index), if any.
pub(super) type LabelledFile = (PathBuf, Option<usize>);

/// The image files of a folder, sorted, with their labels: one subfolder
/// per class (torchvision's ImageFolder; the class names returned) or
/// images directly in it (no labels).
pub(super) fn image_files(dir: &Path) -> Result<(Vec<LabelledFile>, Option<Vec<String>>), NnError> {
    let all = entries(dir)?;
    let classes: Vec<&PathBuf> = all.iter().filter(|p| p.is_dir()).collect();
    let mut files: Vec<LabelledFile> = Vec::new();
    if classes.is_empty() {
        files.extend(
            all.iter()
                .filter(|p| is_image_name(p))
                .map(|p| (p.clone(), None)),
        );
        return Ok((files, None));
    }
    let mut names = Vec::new();
    for (k, c) in classes.iter().enumerate() {
        names.push(file_id(c));
        for p in entries(c)?.into_iter().filter(|p| is_image_name(p)) {
            if files.len() >= MAX_FILES {
                return Err(bad(dir, format!("more than {MAX_FILES} images")));
            }
            files.push((p, Some(k)));
        }
    }
    Ok((files, Some(names)))
}

/// An image's bytes (PNG or JPEG) decoded as the CLI decodes image files:
/// channels first, values in [0, 1], gray as one channel and color as
/// three, unless `want` (`[C, H, W]`) fixes the channels and, checked, the
/// size. `name` only labels errors. Returns the shape and the values. What
/// the browser client runs on a dropped file, so that its inputs equal
/// `cipherflow query`'s.
pub fn decode_image_bytes(
    name: &str,
    bytes: &[u8],
    want: Option<&[usize]>,
) -> Result<(Vec<usize>, Vec<f32>), NnError> {
    let path = Path::new(name);
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bad(path, format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let img = decode_image(path, bytes, want)?;
    Ok((img.shape.to_vec(), img.values))
}

/// One image file's values, `want`'s shape (`[C, H, W]`) if given.
pub(super) fn decode_image_file(path: &Path, want: Option<&[usize]>) -> Result<Vec<f32>, NnError> {
    Ok(decode_image(path, &read_file(path)?, want)?.values)
}

/// The `[C, H, W]` of an image file as it is (gray: 1 channel, else 3).
pub(super) fn image_shape(path: &Path) -> Result<Vec<usize>, NnError> {
    Ok(decode_image(path, &read_file(path)?, None)?.shape.to_vec())
}

/// A folder of images, or one subfolder of images per class.
fn load_folder(dir: &Path, opts: &InputOptions) -> Result<Inputs, NnError> {
    let (files, class_names) = image_files(dir)?;
    if files.is_empty() {
        return Err(bad(dir, "no .png, .jpg or .jpeg images"));
    }
    let mut shape: Option<[usize; 3]> = None;
    let mut values = Vec::new();
    let mut ids = Vec::with_capacity(files.len());
    let mut labels = Vec::with_capacity(files.len());
    for (p, label) in &files {
        let want: Option<Vec<usize>> = opts.shape.clone().or_else(|| shape.map(|s| s.to_vec()));
        let img = decode_image(p, &read_file(p)?, want.as_deref())?;
        if *shape.get_or_insert(img.shape) != img.shape {
            return Err(bad(p, "images of different sizes or channels"));
        }
        if values.len() + img.values.len() > MAX_VALUES {
            return Err(bad(dir, format!("more than {MAX_VALUES} values")));
        }
        values.extend_from_slice(&img.values);
        let id = match label {
            Some(_) => p
                .strip_prefix(dir)
                .map(|r| r.display().to_string())
                .unwrap_or_else(|_| file_id(p)),
            None => file_id(p),
        };
        ids.push(id);
        labels.push(label.unwrap_or(0));
    }
    let shape = shape.ok_or_else(|| bad(dir, "no images"))?;
    let f = shape.iter().product::<usize>();
    Ok(Inputs {
        ids,
        features: Array2::from_shape_vec((files.len(), f), values)
            .map_err(|e| bad(dir, e.to_string()))?,
        shape: shape.to_vec(),
        labels: class_names.as_ref().map(|_| labels),
        class_names,
    })
}
