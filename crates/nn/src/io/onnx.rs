//! Import of ONNX graphs made of the layers this crate supports.
//!
//! The graph must be a chain (each node consumes the previous node's
//! output plus constant initializers), as PyTorch exports an
//! `nn.Sequential`. Supported operators: `Gemm`, `MatMul` (+ `Add` of a
//! bias), `Conv`, `BatchNormalization` (inference mode, folded exactly into
//! the preceding `Conv` or dense layer), `Relu`, `Sigmoid`, `Tanh`, `Gelu`
//! (opset 20, or the Div/Erf/Add/Mul/Mul subgraph earlier opsets write),
//! `LeakyRelu`, `AveragePool`, `MaxPool`, `GlobalAveragePool`, `Pad`
//! (constant, on height and width), `LSTM` and `GRU` (forward, zero initial
//! state, as PyTorch exports `batch_first` layers),
//! `Flatten`, `Reshape` to a fixed per-example shape, `Softmax` (last
//! axis), `Mul(x, x)` and `Pow(x, 2)` as x², plus `Identity`, `Dropout`
//! and `Constant`. Small constant shape computations are folded first
//! (`onnx_fold`). Every
//! other node is reported by name and operator in one
//! [`NnError::UnsupportedOnnx`].

use super::onnx_layers;
use super::onnx_patterns::FUSED_RECURRENT;
use super::read_limited;
use crate::layers::{
    Activation, ActivationKind, Conv2d, Dense, Flatten, Layer, Pool2d, PoolKind, Softmax,
};
use crate::{NnError, Sequential, Tensor};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

#[allow(
    missing_docs,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Constructors of the nested protobuf types the exporter writes.
pub(super) mod proto_dims {
    use super::proto::{tensor_shape_proto, type_proto, TensorShapeProto};

    /// A named (dynamic) dimension.
    pub fn dim_param(name: &str) -> tensor_shape_proto::Dimension {
        tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimParam(name.into())),
        }
    }

    /// A fixed dimension.
    pub fn dim_value(v: i64) -> tensor_shape_proto::Dimension {
        tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(v)),
        }
    }

    /// A tensor type.
    pub fn tensor_type(elem_type: i32, shape: TensorShapeProto) -> type_proto::Value {
        type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: Some(elem_type),
            shape: Some(shape),
        })
    }
}

/// ONNX element types read by the importer.
const FLOAT: i32 = 1;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

/// Imports an ONNX file; tensors stored as external data are read from
/// beside it (see `onnx_external`).
pub fn import(path: &Path) -> Result<Sequential, NnError> {
    import_with_metadata(&read_limited(path)?, path.parent()).map(|(m, _)| m)
}

/// Imports an ONNX model from its protobuf bytes (external data refused:
/// there is no folder to read it from).
pub fn import_bytes(bytes: &[u8]) -> Result<Sequential, NnError> {
    import_with_metadata(bytes, None).map(|(m, _)| m)
}

/// Imports an ONNX model and returns its `metadata_props` too; external
/// data is read from `base` (the model's folder).
pub fn import_with_metadata(
    bytes: &[u8],
    base: Option<&Path>,
) -> Result<(Sequential, HashMap<String, String>), NnError> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| NnError::ModelFile(format!("not an ONNX model: {e}")))?;
    let meta = model
        .metadata_props
        .iter()
        .map(|e| (e.key().to_string(), e.value().to_string()))
        .collect();
    let mut graph = model
        .graph
        .ok_or_else(|| NnError::ModelFile("ONNX model has no graph".into()))?;
    check_opset(&model.opset_import)?;
    let base = base.map(|b| {
        if b.as_os_str().is_empty() {
            Path::new(".")
        } else {
            b
        }
    });
    super::onnx_external::load_external(&mut graph, base)?;
    let mut importer = Importer::new(&graph)?;
    super::onnx_fold::fold_constants(&mut graph, &mut importer.consts);
    let scalars: HashMap<String, Vec<f64>> = importer
        .consts
        .iter()
        .filter(|(_, (_, v))| v.len() == 1)
        .map(|(k, (_, v))| (k.clone(), v.clone()))
        .collect();
    super::onnx_patterns::fuse_gelu(&mut graph, &scalars);
    super::onnx_patterns::fuse_recurrent(&mut graph, &importer.consts);
    super::onnx_patterns::remove_dead(&mut graph);
    Ok((importer.run(&graph)?, meta))
}

/// The operator-set versions of the default ONNX domain the importer reads.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=21;

/// The model's default-domain opset must be in [`OPSETS`] (operators
/// changed meaning across versions; an unknown version is refused, not
/// guessed).
fn check_opset(opsets: &[OperatorSetIdProto]) -> Result<(), NnError> {
    let default = opsets
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx");
    match default.map(|o| o.version()) {
        Some(v) if OPSETS.contains(&v) => Ok(()),
        Some(v) => Err(err(format!(
            "ONNX opset {v} is outside the supported range {}–{} (re-export with \
             opset_version in that range)",
            OPSETS.start(),
            OPSETS.end()
        ))),
        None => Err(err("the model declares no ONNX opset")),
    }
}

struct Importer {
    consts: HashMap<String, (Vec<usize>, Vec<f64>)>,
    input_shape: Vec<usize>,
    input_name: String,
}

pub(super) fn err(msg: impl Into<String>) -> NnError {
    NnError::ModelFile(msg.into())
}

impl Importer {
    fn new(graph: &GraphProto) -> Result<Self, NnError> {
        let mut consts = HashMap::new();
        for t in &graph.initializer {
            consts.insert(t.name().to_string(), tensor_values(t)?);
        }
        let inputs: Vec<&ValueInfoProto> = graph
            .input
            .iter()
            .filter(|v| !consts.contains_key(v.name()))
            .collect();
        let [input] = inputs[..] else {
            return Err(err(format!(
                "expected one data input, found {}",
                inputs.len()
            )));
        };
        let dims = input
            .r#type
            .as_ref()
            .and_then(|t| match &t.value {
                Some(proto::type_proto::Value::TensorType(tt)) => tt.shape.as_ref(),
                None => None,
            })
            .ok_or_else(|| err(format!("input {} has no tensor shape", input.name())))?;
        let mut shape = Vec::new();
        for (i, d) in dims.dim.iter().enumerate().skip(1) {
            match d.value {
                Some(proto::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => {
                    shape.push(usize::try_from(v).map_err(|_| err("input dimension too large"))?)
                }
                _ => {
                    return Err(err(format!(
                        "input dimension {i} must be a fixed positive size"
                    )))
                }
            }
        }
        if shape.is_empty() {
            return Err(err("input must have a batch axis and at least one more"));
        }
        Ok(Importer {
            consts,
            input_shape: shape,
            input_name: input.name().to_string(),
        })
    }

    fn constant(&self, node: &NodeProto, k: usize) -> Result<&(Vec<usize>, Vec<f64>), NnError> {
        let name = node.input.get(k).map(String::as_str).unwrap_or("");
        self.consts.get(name).ok_or_else(|| {
            err(format!(
                "node {}: input {k} ('{name}') must be a constant",
                label(node)
            ))
        })
    }

    fn run(mut self, graph: &GraphProto) -> Result<Sequential, NnError> {
        let mut layers: Vec<Layer> = Vec::new();
        let mut unsupported = Vec::new();
        let mut current = self.input_name.clone();
        // The per-example shape of `current`.
        let mut shape = self.input_shape.clone();
        for node in &graph.node {
            if node.op_type() == "Constant" {
                let t = node
                    .attribute
                    .iter()
                    .find(|a| a.name() == "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| {
                        err(format!(
                            "node {}: Constant without a tensor value",
                            label(node)
                        ))
                    })?;
                let out = node.output.first().cloned().unwrap_or_default();
                self.consts.insert(out, tensor_values(t)?);
                continue;
            }
            // An Identity of a constant (PyTorch's exporter copies
            // BatchNormalization parameters so) is that constant.
            if node.op_type() == "Identity" {
                let src = node.input.first().and_then(|i| self.consts.get(i)).cloned();
                if let (Some(c), Some(out)) = (src, node.output.first()) {
                    self.consts.insert(out.clone(), c);
                    continue;
                }
            }
            if node.input.first() != Some(&current) {
                // Not a chain of layers (e.g. GELU exported as Div, Erf,
                // Add, Mul): listed with the rest, so one error names every
                // node that cannot be imported.
                unsupported.push(format!("{} (not a chain of layers)", label(node)));
                if let Some(out) = node.output.first() {
                    current.clone_from(out);
                }
                continue;
            }
            // Once a node could not be imported, the shapes after it are
            // unknown: later errors join the list instead of hiding it.
            let mut build = || -> Result<Option<Layer>, NnError> {
                Ok(match node.op_type() {
                    "Identity" | "Dropout" => None,
                    "Gemm" => Some(self.gemm(node)?),
                    "MatMul" => Some(self.matmul(node)?),
                    "Add" => {
                        if self.fold_bias(node, layers.last_mut()).is_err() {
                            unsupported
                                .push(format!("{} (Add other than a MatMul's bias)", label(node)));
                        }
                        None
                    }
                    "BatchNormalization" => {
                        if let Err(e) = self.fold_batch_norm(node, layers.last_mut()) {
                            unsupported.push(format!("{} ({e})", label(node)));
                        }
                        None
                    }
                    "Conv" => Some(self.conv(node)?),
                    "Relu" => Some(Layer::Activation(Activation::new(ActivationKind::Relu))),
                    "Sigmoid" => Some(Layer::Activation(Activation::new(ActivationKind::Sigmoid))),
                    "Tanh" => Some(Layer::Activation(Activation::new(ActivationKind::Tanh))),
                    "Gelu" => match string_attr(node, "approximate").as_deref() {
                        None | Some("none") => {
                            Some(Layer::Activation(Activation::new(ActivationKind::Gelu)))
                        }
                        Some(other) => {
                            unsupported.push(format!("{} (GELU approximate={other})", label(node)));
                            None
                        }
                    },
                    "AveragePool" => Some(self.pool(node, PoolKind::Avg)?),
                    "MaxPool" => Some(self.pool(node, PoolKind::Max)?),
                    "Flatten" => {
                        if int_attr(node, "axis").unwrap_or(1) != 1 {
                            return Err(err(format!(
                                "node {}: Flatten axis must be 1",
                                label(node)
                            )));
                        }
                        Some(Layer::Flatten(Flatten::new()))
                    }
                    "Reshape" => onnx_layers::reshape(node, &self.consts, &shape)?,
                    "Pad" => Some(onnx_layers::pad(node, &self.consts)?),
                    "GlobalAveragePool" => Some(onnx_layers::global_average_pool(node, &shape)?),
                    "LeakyRelu" => Some(onnx_layers::leaky_relu(node)?),
                    FUSED_RECURRENT => Some(onnx_layers::recurrent(node, &self.consts, &shape)?),
                    "Softmax" => {
                        let axis = int_attr(node, "axis").unwrap_or(-1);
                        if axis != -1 && axis != 1 {
                            return Err(err(format!(
                                "node {}: Softmax must be over the last axis",
                                label(node)
                            )));
                        }
                        Some(Layer::Softmax(Softmax::new()))
                    }
                    "Mul" if node.input.get(1) == Some(&current) => {
                        Some(Layer::Activation(Activation::new(ActivationKind::Square)))
                    }
                    "Pow"
                        if self
                            .constant(node, 1)
                            .map(|(_, v)| v.as_slice() == [2.0])
                            .unwrap_or(false) =>
                    {
                        Some(Layer::Activation(Activation::new(ActivationKind::Square)))
                    }
                    _ => {
                        unsupported.push(label(node));
                        None
                    }
                })
            };
            let layer = match build() {
                Ok(l) => l,
                Err(e) if !unsupported.is_empty() => {
                    unsupported.push(format!("{} ({e})", label(node)));
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(l) = layer {
                match l.output_shape(&shape) {
                    Ok(s) => shape = s,
                    Err(e) if !unsupported.is_empty() => {
                        unsupported.push(format!("{} ({e})", label(node)))
                    }
                    Err(e) => return Err(err(format!("node {}: {e}", label(node)))),
                }
                layers.push(l);
            }
            current = node
                .output
                .first()
                .cloned()
                .ok_or_else(|| err(format!("node {} has no output", label(node))))?;
        }
        if !unsupported.is_empty() {
            return Err(NnError::UnsupportedOnnx(unsupported));
        }
        Sequential::new(self.input_shape, layers)
    }

    fn gemm(&self, node: &NodeProto) -> Result<Layer, NnError> {
        if float_attr(node, "alpha").unwrap_or(1.0) != 1.0
            || float_attr(node, "beta").unwrap_or(1.0) != 1.0
            || int_attr(node, "transA").unwrap_or(0) != 0
        {
            return Err(err(format!(
                "node {}: Gemm needs alpha = beta = 1 and transA = 0",
                label(node)
            )));
        }
        let (ws, w) = self.constant(node, 1)?;
        let [a, b] = ws[..] else {
            return Err(err(format!(
                "node {}: Gemm weight must be a matrix",
                label(node)
            )));
        };
        let weight = to_tensor(&[a, b], w)?;
        let weight = if int_attr(node, "transB").unwrap_or(0) == 1 {
            weight
        } else {
            weight.reversed_axes().as_standard_layout().into_owned()
        };
        let out = weight.shape()[0];
        let bias = if node.input.len() > 2 {
            let (bs, bv) = self.constant(node, 2)?;
            if bs.iter().product::<usize>() != out {
                return Err(err(format!(
                    "node {}: Gemm bias has shape {bs:?}",
                    label(node)
                )));
            }
            to_tensor(&[out], bv)?
        } else {
            Tensor::zeros(ndarray::IxDyn(&[out]))
        };
        Ok(Layer::Dense(Dense::try_from_weights(weight, bias)?))
    }

    fn matmul(&self, node: &NodeProto) -> Result<Layer, NnError> {
        let (ws, w) = self.constant(node, 1)?;
        let [a, b] = ws[..] else {
            return Err(err(format!(
                "node {}: MatMul weight must be a matrix",
                label(node)
            )));
        };
        let weight = to_tensor(&[a, b], w)?
            .reversed_axes()
            .as_standard_layout()
            .into_owned();
        Ok(Layer::Dense(Dense::try_from_weights(
            weight,
            Tensor::zeros(ndarray::IxDyn(&[b])),
        )?))
    }

    fn fold_bias(&self, node: &NodeProto, last: Option<&mut Layer>) -> Result<(), NnError> {
        let (bs, bv) = self.constant(node, 1)?;
        match last {
            Some(Layer::Dense(d)) if bs.iter().product::<usize>() == d.outputs() => {
                for (b, v) in d.bias.value.iter_mut().zip(bv) {
                    *b += *v as f32;
                }
                Ok(())
            }
            _ => Err(err(format!(
                "node {}: Add is only supported as the bias of a MatMul",
                label(node)
            ))),
        }
    }

    /// Folds an inference-mode BatchNormalization into the preceding
    /// convolution or dense layer, exactly: per output channel `c`,
    /// `w' = w·γ/√(σ²+ε)` and `b' = (b − μ)·γ/√(σ²+ε) + β`.
    fn fold_batch_norm(&self, node: &NodeProto, last: Option<&mut Layer>) -> Result<(), String> {
        if int_attr(node, "training_mode").unwrap_or(0) != 0 {
            return Err("training mode".into());
        }
        let eps = f64::from(float_attr(node, "epsilon").unwrap_or(1e-5));
        let param = |k: usize| -> Result<&Vec<f64>, String> {
            self.constant(node, k)
                .map(|(_, v)| v)
                .map_err(|_| format!("input {k} must be a constant"))
        };
        let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
        let (weight, bias) = match last {
            Some(Layer::Conv2d(c)) => (&mut c.weight.value, &mut c.bias.value),
            Some(Layer::Dense(d)) => (&mut d.weight.value, &mut d.bias.value),
            _ => return Err("folded only into a preceding Conv or Gemm/MatMul".into()),
        };
        let channels = bias.len();
        if [gamma, beta, mean, var].iter().any(|v| v.len() != channels) {
            return Err(format!(
                "parameters for another channel count than {channels}"
            ));
        }
        if var.iter().any(|&v| v + eps <= 0.0) {
            return Err("a variance + epsilon that is not positive".into());
        }
        let per = weight.len() / channels.max(1);
        let scale: Vec<f64> = gamma
            .iter()
            .zip(var.iter())
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        for (i, w) in weight.iter_mut().enumerate() {
            let c = i / per.max(1);
            *w = (f64::from(*w) * scale.get(c).copied().unwrap_or(1.0)) as f32;
        }
        for (c, b) in bias.iter_mut().enumerate() {
            let (s, m, be) = (
                scale.get(c).copied().unwrap_or(1.0),
                mean.get(c).copied().unwrap_or(0.0),
                beta.get(c).copied().unwrap_or(0.0),
            );
            *b = ((f64::from(*b) - m) * s + be) as f32;
        }
        Ok(())
    }

    fn conv(&self, node: &NodeProto) -> Result<Layer, NnError> {
        if int_attr(node, "group").unwrap_or(1) != 1 {
            return Err(err(format!(
                "node {}: grouped convolutions are not supported",
                label(node)
            )));
        }
        if ints_attr(node, "dilations").is_some_and(|d| d.iter().any(|&x| x != 1)) {
            return Err(err(format!(
                "node {}: dilated convolutions are not supported",
                label(node)
            )));
        }
        check_auto_pad(node)?;
        let (ws, w) = self.constant(node, 1)?;
        let [co, ci, kh, kw] = ws[..] else {
            return Err(err(format!(
                "node {}: Conv weight must be [out, in, kh, kw]",
                label(node)
            )));
        };
        let weight = to_tensor(&[co, ci, kh, kw], w)?;
        let bias = if node.input.len() > 2 {
            let (bs, bv) = self.constant(node, 2)?;
            if bs.iter().product::<usize>() != co {
                return Err(err(format!(
                    "node {}: Conv bias has shape {bs:?}",
                    label(node)
                )));
            }
            to_tensor(&[co], bv)?
        } else {
            Tensor::zeros(ndarray::IxDyn(&[co]))
        };
        let stride = pair(node, "strides", 1)?;
        let padding = pads(node)?;
        Ok(Layer::Conv2d(Conv2d::try_from_weights(
            weight, bias, stride, padding,
        )?))
    }

    fn pool(&self, node: &NodeProto, kind: PoolKind) -> Result<Layer, NnError> {
        check_auto_pad(node)?;
        if int_attr(node, "ceil_mode").unwrap_or(0) != 0 || pads(node)? != (0, 0) {
            return Err(err(format!(
                "node {}: pooling with padding or ceil_mode is not supported",
                label(node)
            )));
        }
        let kernel = pair(node, "kernel_shape", 0)?;
        let stride = pair(node, "strides", 1)?;
        Ok(Layer::Pool2d(Pool2d::new(kind, kernel, stride)?))
    }
}

pub(super) fn label(node: &NodeProto) -> String {
    format!("'{}' ({})", node.name(), node.op_type())
}

pub(super) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

pub(super) fn string_attr(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute
        .iter()
        .find(|a| a.name() == name)
        .map(|a| String::from_utf8_lossy(a.s()).into_owned())
}

pub(super) fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i())
}

pub(super) fn float_attr(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f())
}

pub(super) fn ints_attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    attr(node, name).map(|a| a.ints.as_slice())
}

fn check_auto_pad(node: &NodeProto) -> Result<(), NnError> {
    match attr(node, "auto_pad").map(|a| a.s()) {
        None | Some(b"NOTSET") => Ok(()),
        Some(_) => Err(err(format!(
            "node {}: auto_pad is not supported; export with explicit pads",
            label(node)
        ))),
    }
}

/// A two-element positive attribute (default `(d, d)` when absent; `d = 0`
/// means required).
fn pair(node: &NodeProto, name: &str, default: usize) -> Result<(usize, usize), NnError> {
    match ints_attr(node, name) {
        None if default > 0 => Ok((default, default)),
        Some(&[a, b]) if a > 0 && b > 0 => Ok((a as usize, b as usize)),
        _ => Err(err(format!(
            "node {}: attribute {name} must be two positive integers",
            label(node)
        ))),
    }
}

/// Symmetric 2-D padding from `pads = [top, left, bottom, right]`.
fn pads(node: &NodeProto) -> Result<(usize, usize), NnError> {
    match ints_attr(node, "pads") {
        None => Ok((0, 0)),
        Some(&[t, l, b, r]) if t == b && l == r && t >= 0 && l >= 0 => Ok((t as usize, l as usize)),
        Some(p) => Err(err(format!(
            "node {}: only symmetric padding is supported, got {p:?}",
            label(node)
        ))),
    }
}

pub(super) fn to_tensor(shape: &[usize], values: &[f64]) -> Result<Tensor, NnError> {
    Tensor::from_shape_vec(
        ndarray::IxDyn(shape),
        values.iter().map(|&v| v as f32).collect(),
    )
    .map_err(|e| err(e.to_string()))
}

/// The shape and values of an initializer (float, double or int64).
pub(super) fn tensor_values(t: &TensorProto) -> Result<(Vec<usize>, Vec<f64>), NnError> {
    let name = t.name();
    if t.data_location() == 1 {
        return Err(err(format!(
            "tensor '{name}' is stored in an external file; re-export with the weights embedded"
        )));
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(
            usize::try_from(d)
                .map_err(|_| err(format!("tensor '{name}' has a negative dimension")))?,
        );
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= (1 << 28))
        .ok_or_else(|| err(format!("tensor '{name}' is too large")))?;
    let raw = t.raw_data();
    let values: Vec<f64> = match t.data_type() {
        FLOAT if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        FLOAT => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        DOUBLE if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        DOUBLE => t.double_data.clone(),
        INT64 if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64)
            .collect(),
        INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
        other => {
            return Err(err(format!(
                "tensor '{name}' has unsupported element type {other}"
            )))
        }
    };
    if values.len() != n {
        return Err(err(format!(
            "tensor '{name}' has {} values for shape {shape:?}",
            values.len()
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(err(format!("tensor '{name}' holds NaN or infinite values")));
    }
    Ok((shape, values))
}
