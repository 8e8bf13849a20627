//! The upload page's preparation of a model file, the same as the CLI's
//! `model upload`: only the layers the platform may hold travel, with the
//! normalization and class names the creator states. Run in the page, so
//! that a tail the creator keeps never leaves their machine.

use crate::error::WebError;
use cipherflow_nn::io::{load_bytes, prepare_upload, Upload};
use cipherflow_nn::Preprocessing;

fn given(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Prepares a model file's bytes for upload. `head_layers`: `None` for
/// the whole model; `normalize`: `MEAN,STD` or per channel;
/// `class_names`: one per line. Empty texts count as not given.
pub fn prepare_model_upload(
    bytes: &[u8],
    head_layers: Option<usize>,
    normalize: Option<&str>,
    class_names: Option<&str>,
) -> Result<Upload, WebError> {
    let file = load_bytes(bytes)?;
    let classes = given(class_names)
        .map(|t| Preprocessing::parse_class_names(t, "class names"))
        .transpose()?;
    Ok(prepare_upload(
        file,
        bytes,
        head_layers,
        given(normalize),
        classes,
    )?)
}
