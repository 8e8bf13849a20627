//! ONNX export of a [`Sequential`] model: the graph PyTorch's exporter
//! writes for the same `nn.Sequential` (Gemm, Conv, AveragePool/MaxPool,
//! Flatten, Relu, LeakyRelu, Sigmoid, Tanh, Mul(x, x) for x², Gelu, Softmax,
//! Pad, Reshape, and LSTM/GRU between the Transposes and Squeezes PyTorch
//! writes around them for `batch_first` layers), weights
//! embedded, a dynamic batch axis, opset 13 (20 when the model has GELU),
//! and the model's preprocessing in `metadata_props`. What this crate
//! imports it reads back exactly; onnxruntime runs it (bench/byo_export.py).

use super::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::write_atomic;
use crate::layers::{ActivationKind, CellKind, Layer, PoolKind, Recurrent};
use crate::preprocess::{Preprocessing, PREPROCESSING_KEY};
use crate::{NnError, Sequential};
use prost::Message;
use std::path::Path;

const FLOAT: i32 = 1;
const INT64: i32 = 7;

fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        f: Some(v),
        r#type: Some(1),
        ..AttributeProto::default()
    }
}

fn int64_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: Some(INT64),
        name: Some(name.into()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..TensorProto::default()
    }
}

/// ONNX's gate order from PyTorch's: LSTM `i, f, g, o` → `i, o, f, c`;
/// GRU `r, z, n` → `z, r, h`. `rows` is the tensor's rows per gate times
/// the values per row.
fn onnx_gate_order(cell: CellKind, values: &[f32], per_gate: usize) -> Vec<f32> {
    let order: &[usize] = match cell {
        CellKind::Lstm => &[0, 3, 1, 2],
        CellKind::Gru => &[1, 0, 2],
    };
    order
        .iter()
        .flat_map(|&g| values.iter().skip(g * per_gate).take(per_gate).copied())
        .collect()
}

/// The initializers of a recurrent layer: `W [1, G·H, F]`, `R [1, G·H, H]`,
/// `B [1, 2·G·H]`, gates in ONNX's order.
fn recurrent_inits(i: usize, r: &Recurrent) -> Vec<TensorProto> {
    let (h, f, cell) = (r.hidden(), r.inputs(), r.cell);
    let gh = cell.gates() * h;
    let flat = |p: &crate::Param| p.value.iter().copied().collect::<Vec<f32>>();
    let w = onnx_gate_order(cell, &flat(&r.weight_ih), h * f);
    let rr = onnx_gate_order(cell, &flat(&r.weight_hh), h * h);
    let mut b = onnx_gate_order(cell, &flat(&r.bias_ih), h);
    b.extend(onnx_gate_order(cell, &flat(&r.bias_hh), h));
    vec![
        tensor(&format!("{i}.W"), &[1, gh, f], w.into_iter()),
        tensor(&format!("{i}.R"), &[1, gh, h], rr.into_iter()),
        tensor(&format!("{i}.B"), &[1, 2 * gh], b.into_iter()),
    ]
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(2),
        ..AttributeProto::default()
    }
}

fn ints_attr(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.iter().map(|&x| x as i64).collect(),
        r#type: Some(7),
        ..AttributeProto::default()
    }
}

fn tensor(name: &str, dims: &[usize], values: impl Iterator<Item = f32>) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(FLOAT),
        name: Some(name.into()),
        raw_data: Some(values.flat_map(f32::to_le_bytes).collect()),
        ..TensorProto::default()
    }
}

fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    use super::onnx::proto_dims::{dim_param, dim_value};
    let mut dim = vec![dim_param("batch")];
    dim.extend(dims.iter().map(|&d| dim_value(d as i64)));
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(super::onnx::proto_dims::tensor_type(
                FLOAT,
                TensorShapeProto { dim },
            )),
        }),
    }
}

fn node(op: &str, i: usize, inputs: Vec<String>, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs,
        output: vec![format!("/{i}/{op}_output_0")],
        name: Some(format!("/{i}/{op}")),
        op_type: Some(op.into()),
        attribute: attrs,
        ..NodeProto::default()
    }
}

/// The model as ONNX bytes.
pub fn export(
    model: &Sequential,
    preprocessing: Option<&Preprocessing>,
) -> Result<Vec<u8>, NnError> {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut current = "input".to_string();
    let mut shape = model.input_shape().to_vec();
    let mut opset = 13;
    for (i, layer) in model.layers().iter().enumerate() {
        let next = layer.output_shape(&shape)?;
        let mut add = |n: NodeProto, cur: &mut String| {
            if let Some(o) = n.output.first() {
                cur.clone_from(o);
            }
            nodes.push(n);
        };
        match layer {
            Layer::Dense(d) => {
                let w = d.weight.value.shape().to_vec();
                let (wn, bn) = (format!("{i}.weight"), format!("{i}.bias"));
                inits.push(tensor(&wn, &w, d.weight.value.iter().copied()));
                inits.push(tensor(&bn, &[d.outputs()], d.bias.value.iter().copied()));
                let n = node(
                    "Gemm",
                    i,
                    vec![current.clone(), wn, bn],
                    vec![int_attr("transB", 1)],
                );
                add(n, &mut current);
            }
            Layer::Conv2d(c) => {
                let w = c.weight.value.shape().to_vec();
                let [_, _, kh, kw] = w[..] else {
                    return Err(NnError::ModelFile(
                        "a convolution weight of rank ≠ 4".into(),
                    ));
                };
                let (wn, bn) = (format!("{i}.weight"), format!("{i}.bias"));
                inits.push(tensor(&wn, &w, c.weight.value.iter().copied()));
                inits.push(tensor(&bn, &[w[0]], c.bias.value.iter().copied()));
                let (ph, pw) = c.padding;
                let n = node(
                    "Conv",
                    i,
                    vec![current.clone(), wn, bn],
                    vec![
                        ints_attr("kernel_shape", &[kh, kw]),
                        ints_attr("strides", &[c.stride.0, c.stride.1]),
                        ints_attr("pads", &[ph, pw, ph, pw]),
                    ],
                );
                add(n, &mut current);
            }
            Layer::Pool2d(p) => {
                let op = match p.kind {
                    PoolKind::Avg => "AveragePool",
                    PoolKind::Max => "MaxPool",
                };
                let n = node(
                    op,
                    i,
                    vec![current.clone()],
                    vec![
                        ints_attr("kernel_shape", &[p.kernel.0, p.kernel.1]),
                        ints_attr("strides", &[p.stride.0, p.stride.1]),
                    ],
                );
                add(n, &mut current);
            }
            Layer::Flatten(_) => {
                let n = node(
                    "Flatten",
                    i,
                    vec![current.clone()],
                    vec![int_attr("axis", 1)],
                );
                add(n, &mut current);
            }
            Layer::Activation(a) => {
                let n = match a.kind {
                    ActivationKind::Relu => node("Relu", i, vec![current.clone()], vec![]),
                    ActivationKind::Sigmoid => node("Sigmoid", i, vec![current.clone()], vec![]),
                    ActivationKind::Tanh => node("Tanh", i, vec![current.clone()], vec![]),
                    ActivationKind::Square => {
                        node("Mul", i, vec![current.clone(), current.clone()], vec![])
                    }
                    ActivationKind::Gelu => {
                        opset = 20;
                        node("Gelu", i, vec![current.clone()], vec![])
                    }
                    ActivationKind::LeakyRelu(a) => node(
                        "LeakyRelu",
                        i,
                        vec![current.clone()],
                        vec![float_attr("alpha", a)],
                    ),
                };
                add(n, &mut current);
            }
            Layer::Softmax(_) => {
                let n = node(
                    "Softmax",
                    i,
                    vec![current.clone()],
                    vec![int_attr("axis", -1)],
                );
                add(n, &mut current);
            }
            Layer::Pad2d(p) => {
                let pads = format!("{i}.pads");
                let value = format!("{i}.value");
                let (t, b, l, r) = (p.top as i64, p.bottom as i64, p.left as i64, p.right as i64);
                inits.push(int64_tensor(&pads, &[0, 0, t, l, 0, 0, b, r]));
                let mut v = tensor(&value, &[], std::iter::once(p.value));
                v.dims.clear();
                inits.push(v);
                let n = node(
                    "Pad",
                    i,
                    vec![current.clone(), pads, value],
                    vec![AttributeProto {
                        name: Some("mode".into()),
                        s: Some(b"constant".to_vec()),
                        r#type: Some(3),
                        ..AttributeProto::default()
                    }],
                );
                add(n, &mut current);
            }
            Layer::BatchNorm(b) => {
                let names: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .map(|n| format!("{i}.{n}"))
                    .collect();
                let c = b.channels();
                for (name, p) in
                    names
                        .iter()
                        .zip([&b.weight, &b.bias, &b.running_mean, &b.running_var])
                {
                    inits.push(tensor(name, &[c], p.value.iter().copied()));
                }
                let mut inputs = vec![current.clone()];
                inputs.extend(names);
                let n = node(
                    "BatchNormalization",
                    i,
                    inputs,
                    vec![
                        float_attr("epsilon", b.eps),
                        float_attr("momentum", 1.0 - b.momentum),
                    ],
                );
                add(n, &mut current);
            }
            Layer::Reshape(r) => {
                let target = format!("{i}.shape");
                let mut dims = vec![-1i64];
                dims.extend(r.shape.iter().map(|&d| d as i64));
                inits.push(int64_tensor(&target, &dims));
                let n = node("Reshape", i, vec![current.clone(), target], vec![]);
                add(n, &mut current);
            }
            Layer::Recurrent(r) => {
                // PyTorch's own pattern: time-major input, the layer, then
                // back to batch-major (every step) or the last state.
                let t = node(
                    "Transpose",
                    i,
                    vec![current.clone()],
                    vec![ints_attr("perm", &[1, 0, 2])],
                );
                add(t, &mut current);
                let inits_r = recurrent_inits(i, r);
                let names: Vec<String> = inits_r.iter().map(|t| t.name().to_string()).collect();
                inits.extend(inits_r);
                let op = match r.cell {
                    CellKind::Lstm => "LSTM",
                    CellKind::Gru => "GRU",
                };
                let mut attrs = vec![int_attr("hidden_size", r.hidden() as i64)];
                if r.cell == CellKind::Gru {
                    attrs.push(int_attr("linear_before_reset", 1));
                }
                let mut inputs = vec![current.clone()];
                inputs.extend(names);
                let mut rn = node(op, i, inputs, attrs);
                let (y, y_h) = (format!("/{i}/{op}_output_0"), format!("/{i}/{op}_output_1"));
                rn.output = vec![y.clone(), y_h.clone()];
                add(rn, &mut current);
                let axes = format!("{i}.axes");
                if r.sequence {
                    inits.push(int64_tensor(&axes, &[1]));
                    let sq = node("Squeeze", i, vec![y, axes], vec![]);
                    add(sq, &mut current);
                    let mut back = node(
                        "Transpose",
                        i,
                        vec![current.clone()],
                        vec![ints_attr("perm", &[1, 0, 2])],
                    );
                    back.output = vec![format!("/{i}/Transpose_1_output_0")];
                    back.name = Some(format!("/{i}/Transpose_1"));
                    add(back, &mut current);
                } else {
                    inits.push(int64_tensor(&axes, &[0]));
                    let sq = node("Squeeze", i, vec![y_h, axes], vec![]);
                    add(sq, &mut current);
                }
            }
            Layer::Poly(_) => {
                return Err(NnError::ModelFile(format!(
                    "layer {i}: polynomial activations have no ONNX operator; save as \
                     safetensors"
                )))
            }
        }
        shape = next;
    }
    // The last node's output is the graph's output, "logits".
    if let Some(last) = nodes.last_mut() {
        last.output = vec!["logits".into()];
    } else {
        return Err(NnError::ModelFile(
            "an empty model has nothing to export".into(),
        ));
    }
    let graph = GraphProto {
        node: nodes,
        name: Some("cipherflow".into()),
        initializer: inits,
        input: vec![value_info("input", model.input_shape())],
        output: vec![value_info("logits", &shape)],
    };
    let mut metadata_props = Vec::new();
    if let Some(p) = preprocessing {
        p.validate()?;
        metadata_props.push(StringStringEntryProto {
            key: Some(PREPROCESSING_KEY.into()),
            value: Some(p.to_json()?),
        });
    }
    let m = ModelProto {
        ir_version: Some(if opset >= 20 { 9 } else { 7 }),
        producer_name: Some("cipherflow".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        opset_import: vec![super::onnx::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        metadata_props,
        ..ModelProto::default()
    };
    Ok(m.encode_to_vec())
}

/// Writes the model as an ONNX file (atomically).
pub fn save(
    model: &Sequential,
    preprocessing: Option<&Preprocessing>,
    path: &Path,
) -> Result<(), NnError> {
    write_atomic(path, &export(model, preprocessing)?)
}
