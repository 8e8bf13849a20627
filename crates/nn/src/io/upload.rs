//! A model file made ready for the platform, as its creator's tool (the
//! CLI's `model upload`, the upload page) makes it: only the layers the
//! platform may hold, with the preprocessing and class names the creator
//! states stored beside the weights.

use super::{safetensors, ModelFile};
use crate::preprocess::Preprocessing;
use crate::NnError;

/// What the platform receives and the figures its upload request names.
#[derive(Clone, Debug)]
pub struct Upload {
    /// The file's bytes: the original file when nothing changes, else
    /// safetensors with the preprocessing.
    pub bytes: Vec<u8>,
    /// The whole model's layers.
    pub layers: usize,
    /// Leading layers the platform may hold (all: the whole model).
    pub head_layers: usize,
    /// The whole model's outputs.
    pub outputs: usize,
    /// The preprocessing stored with it.
    pub preprocessing: Option<Preprocessing>,
}

/// Prepares `file` (read from `original`) for upload. `head_layers`: how
/// many leading layers the platform may hold (`None`: all; else 1 to the
/// model's layers, and only those travel). `normalize` (`MEAN,STD` or per
/// channel) and `class_names` replace what the file stores; the file then
/// travels as safetensors with them.
pub fn prepare_upload(
    mut file: ModelFile,
    original: &[u8],
    head_layers: Option<usize>,
    normalize: Option<&str>,
    class_names: Option<Vec<String>>,
) -> Result<Upload, NnError> {
    let layers = file.model.layers().len();
    let head = match head_layers {
        None => layers,
        Some(k) if (1..=layers).contains(&k) => k,
        Some(k) => {
            return Err(NnError::Config(format!(
                "head layers {k}: the model has {layers} layers (1 to {layers}, or all)"
            )))
        }
    };
    let outputs: usize = file.model.output_shape().iter().product();
    if head < layers {
        file.model = file.model.split_at(head)?.0;
    }
    if head == layers && normalize.is_none() && class_names.is_none() {
        return Ok(Upload {
            bytes: original.to_vec(),
            layers,
            head_layers: head,
            outputs,
            preprocessing: file.preprocessing,
        });
    }
    let mut p = match normalize {
        Some(s) => Preprocessing::parse_normalize(s)?,
        None => file.preprocessing.clone().unwrap_or(Preprocessing {
            mean: vec![0.0],
            std: vec![1.0],
            class_names: None,
            calibration: None,
        }),
    };
    p.check(file.model.input_shape())?;
    p.class_names = match class_names {
        Some(c) => Some(c),
        None => file.preprocessing.and_then(|old| old.class_names),
    };
    if let Some(c) = &p.class_names {
        if c.len() != outputs {
            return Err(NnError::Config(format!(
                "{} class names for a model of {outputs} outputs",
                c.len()
            )));
        }
    }
    Ok(Upload {
        bytes: safetensors::to_bytes_with(&file.model, Some(&p))?,
        layers,
        head_layers: head,
        outputs,
        preprocessing: Some(p),
    })
}
