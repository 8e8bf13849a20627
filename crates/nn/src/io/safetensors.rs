//! Weights as safetensors, named and laid out as PyTorch names them for the
//! equivalent `nn.Sequential` (`"0.weight"` `[out, in]` for Linear,
//! `[out, in, kh, kw]` for Conv2d, `"i.bias"`), so `torch.save`-style state
//! dicts written with `safetensors.torch.save_file` load here and ours load
//! in PyTorch with `load_state_dict`.
//!
//! Files written here also carry the model's architecture as JSON in the
//! metadata key `cipherflow.spec`, so [`load_model`] rebuilds the model
//! without being told its layers.

use super::{read_limited, write_atomic};
use crate::spec::ModelSpec;
use crate::{NnError, Sequential, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// Metadata key holding the architecture.
pub const SPEC_KEY: &str = "cipherflow.spec";

/// Serializes the model's parameters (f32, little-endian) and its
/// architecture.
pub fn to_bytes(model: &Sequential) -> Result<Vec<u8>, NnError> {
    to_bytes_with(model, None)
}

/// [`to_bytes`], with the model's preprocessing in the metadata
/// ([`crate::PREPROCESSING_KEY`]).
pub fn to_bytes_with(
    model: &Sequential,
    preprocessing: Option<&crate::Preprocessing>,
) -> Result<Vec<u8>, NnError> {
    let named = model.named_params();
    let mut raw: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(named.len());
    for (name, p) in &named {
        let bytes: Vec<u8> = p.value.iter().flat_map(|v| v.to_le_bytes()).collect();
        raw.push((name.clone(), p.value.shape().to_vec(), bytes));
    }
    let mut views = Vec::with_capacity(raw.len());
    for (name, shape, bytes) in &raw {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| NnError::ModelFile(format!("{name}: {e}")))?;
        views.push((name.as_str(), view));
    }
    let spec = ModelSpec::from_model(model)?;
    let spec_json = serde_json::to_string(&spec).map_err(|e| NnError::ModelFile(e.to_string()))?;
    let mut meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (SPEC_KEY.to_string(), spec_json),
    ]);
    if let Some(p) = preprocessing {
        p.validate()?;
        meta.insert(crate::PREPROCESSING_KEY.to_string(), p.to_json()?);
    }
    safetensors::tensor::serialize(views, Some(meta)).map_err(|e| NnError::ModelFile(e.to_string()))
}

/// Saves the model atomically (an existing file is replaced only once the
/// new one is fully on disk).
pub fn save(model: &Sequential, path: &Path) -> Result<(), NnError> {
    write_atomic(path, &to_bytes(model)?)
}

/// [`save`], with the model's preprocessing.
pub fn save_with(
    model: &Sequential,
    preprocessing: Option<&crate::Preprocessing>,
    path: &Path,
) -> Result<(), NnError> {
    write_atomic(path, &to_bytes_with(model, preprocessing)?)
}

/// The string metadata of a safetensors file.
pub fn metadata(bytes: &[u8]) -> Result<HashMap<String, String>, NnError> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| NnError::ModelFile(format!("not a safetensors file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Loads weights into an existing model of the same architecture. Every
/// parameter must be present with exactly its shape (F32, F64 or F16 are
/// accepted and converted); unknown tensors are an error (like PyTorch's
/// `strict=True`). On error the model is left unchanged.
pub fn load_weights_bytes(model: &mut Sequential, bytes: &[u8]) -> Result<(), NnError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| NnError::ModelFile(format!("not a safetensors file: {e}")))?;
    let expected: Vec<(String, Vec<usize>)> = model
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.value.shape().to_vec()))
        .collect();
    let mut unknown: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|(e, _)| e == n))
        // PyTorch's BatchNorm counter: not a parameter, not needed here.
        .filter(|n| !n.ends_with(".num_batches_tracked"))
        .map(str::to_string)
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(NnError::ModelFile(format!(
            "tensors not in the model: {}",
            unknown.join(", ")
        )));
    }
    let mut values = Vec::with_capacity(expected.len());
    for (name, shape) in &expected {
        let view = st
            .tensor(name)
            .map_err(|_| NnError::ModelFile(format!("missing tensor {name}")))?;
        if view.shape() != shape.as_slice() {
            return Err(NnError::shape(
                format!("tensor {name}"),
                shape,
                view.shape(),
            ));
        }
        let data = decode(name, view.dtype(), view.data())?;
        values.push(
            Tensor::from_shape_vec(ndarray::IxDyn(shape), data)
                .map_err(|e| NnError::ModelFile(e.to_string()))?,
        );
    }
    for (p, v) in model.params_mut().into_iter().zip(values) {
        p.value = v;
        p.zero_grad();
    }
    Ok(())
}

/// [`load_weights_bytes`] from a file.
pub fn load_weights(model: &mut Sequential, path: &Path) -> Result<(), NnError> {
    load_weights_bytes(model, &read_limited(path)?)
}

/// Rebuilds a model from a file written by [`save`] (architecture from the
/// metadata, then the weights).
pub fn load_model(path: &Path) -> Result<Sequential, NnError> {
    load_model_bytes(&read_limited(path)?).map_err(|e| match e {
        NnError::ModelFile(m) => NnError::ModelFile(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// [`load_model`] from the bytes of such a file.
pub fn load_model_bytes(bytes: &[u8]) -> Result<Sequential, NnError> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| NnError::ModelFile(format!("not a safetensors file: {e}")))?;
    let spec_json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SPEC_KEY))
        .ok_or_else(|| {
            NnError::ModelFile(format!(
                "no architecture ({SPEC_KEY} metadata); build the model and use load_weights"
            ))
        })?;
    let spec: ModelSpec = serde_json::from_str(spec_json)
        .map_err(|e| NnError::ModelFile(format!("architecture: {e}")))?;
    let mut model = spec.build(0)?;
    load_weights_bytes(&mut model, bytes)?;
    Ok(model)
}

fn decode(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>, NnError> {
    let out: Vec<f32> = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        other => {
            return Err(NnError::ModelFile(format!(
                "tensor {name} has type {other:?}; expected F32, F64 or F16"
            )));
        }
    };
    if out.iter().any(|v| !v.is_finite()) {
        return Err(NnError::ModelFile(format!(
            "tensor {name} holds NaN or infinite values"
        )));
    }
    Ok(out)
}

/// IEEE half → single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m · 2^-24.
            let v = m as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}
