//! Import of the ONNX nodes beyond the dense/conv core: `Pad`, `Reshape`
//! to a fixed per-example shape, `GlobalAveragePool`, `LeakyRelu`, and the
//! fused LSTM/GRU node of `onnx_patterns`.

use super::onnx::{err, float_attr, int_attr, ints_attr, label, string_attr, to_tensor, NodeProto};
use super::onnx_fold::Const;
use crate::layers::{
    Activation, ActivationKind, CellKind, Layer, Pad2d, Pool2d, PoolKind, Recurrent, Reshape,
};
use crate::{NnError, Tensor};
use std::collections::HashMap;

fn input_const<'a>(
    node: &NodeProto,
    k: usize,
    consts: &'a HashMap<String, Const>,
) -> Result<Option<&'a Const>, NnError> {
    match node.input.get(k).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(name) => consts.get(name).map(Some).ok_or_else(|| {
            err(format!(
                "node {}: input {k} ('{name}') must be a constant",
                label(node)
            ))
        }),
    }
}

/// `Pad` in constant mode on `[N, C, H, W]`, padding only H and W, pads
/// and value as inputs (opset ≥ 11) or attributes (earlier opsets).
pub(super) fn pad(node: &NodeProto, consts: &HashMap<String, Const>) -> Result<Layer, NnError> {
    let mode = string_attr(node, "mode");
    if !matches!(mode.as_deref(), None | Some("constant")) {
        return Err(err(format!(
            "node {}: only constant padding is supported, not {}",
            label(node),
            mode.unwrap_or_default()
        )));
    }
    if input_const(node, 3, consts)?.is_some() {
        return Err(err(format!(
            "node {}: Pad with an axes input is not supported",
            label(node)
        )));
    }
    let pads: Vec<f64> = match input_const(node, 1, consts)? {
        Some((_, v)) => v.clone(),
        None => ints_attr(node, "pads")
            .map(|p| p.iter().map(|&x| x as f64).collect())
            .unwrap_or_default(),
    };
    let value = match input_const(node, 2, consts)? {
        Some((_, v)) => match v.as_slice() {
            [] => 0.0,
            [x] => *x as f32,
            _ => {
                return Err(err(format!(
                    "node {}: Pad value must be a scalar",
                    label(node)
                )))
            }
        },
        None => float_attr(node, "value").unwrap_or(0.0),
    };
    let side = |v: f64| -> Option<usize> {
        (v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX)).then_some(v as usize)
    };
    match pads.as_slice() {
        &[n0, c0, t, l, n1, c1, b, r] if [n0, c0, n1, c1] == [0.0; 4] => {
            let (Some(t), Some(l), Some(b), Some(r)) = (side(t), side(l), side(b), side(r)) else {
                return Err(err(format!(
                    "node {}: negative (cropping) or fractional pads {pads:?}",
                    label(node)
                )));
            };
            Ok(Layer::Pad2d(Pad2d::new(t, b, l, r, value)?))
        }
        _ => Err(err(format!(
            "node {}: only padding of the height and width of [N, C, H, W] is supported, got \
             pads {pads:?}",
            label(node)
        ))),
    }
}

/// `Reshape` to a constant `[N, d₁, …]` with `N` given as −1 or 0 (the
/// batch), or 1: the batch of one that exporters tracing one example write
/// (torch's `torch.export`-based exporter writes `[1, 64]` for a flatten
/// of a model exported on `example[:1]`; layers here run example by
/// example, so it is the batch axis), and at most one other −1. `None`
/// when the result is what the input already is.
pub(super) fn reshape(
    node: &NodeProto,
    consts: &HashMap<String, Const>,
    shape: &[usize],
) -> Result<Option<Layer>, NnError> {
    let Some((_, target)) = input_const(node, 1, consts)? else {
        return Err(err(format!(
            "node {}: Reshape needs a constant target shape",
            label(node)
        )));
    };
    let per: usize = shape.iter().product();
    let bad = || {
        err(format!(
            "node {}: cannot reshape examples of {shape:?} to {target:?} (the batch axis must \
             stay first)",
            label(node)
        ))
    };
    let (&first, rest) = target.split_first().ok_or_else(bad)?;
    if first != -1.0 && first != 0.0 && first != 1.0 {
        return Err(bad());
    }
    let mut dims = Vec::with_capacity(rest.len());
    let mut infer = None;
    for (i, &d) in rest.iter().enumerate() {
        if d == -1.0 && infer.is_none() {
            infer = Some(i);
            dims.push(1);
        } else if d == 0.0 {
            dims.push(*shape.get(i).ok_or_else(bad)?);
        } else if d >= 1.0 && d.fract() == 0.0 && d <= per as f64 {
            dims.push(d as usize);
        } else {
            return Err(bad());
        }
    }
    let known: usize = dims.iter().product();
    if let Some(i) = infer {
        if known == 0 || !per.is_multiple_of(known) {
            return Err(bad());
        }
        if let Some(d) = dims.get_mut(i) {
            *d = per / known;
        }
    }
    if dims.iter().product::<usize>() != per || dims.is_empty() {
        return Err(bad());
    }
    if dims == shape {
        return Ok(None);
    }
    if dims.len() == 1 {
        return Ok(Some(Layer::Flatten(crate::layers::Flatten::new())));
    }
    Ok(Some(Layer::Reshape(Reshape::new(dims)?)))
}

/// `GlobalAveragePool`: average pooling over the whole image.
pub(super) fn global_average_pool(node: &NodeProto, shape: &[usize]) -> Result<Layer, NnError> {
    let &[_, h, w] = shape else {
        return Err(err(format!(
            "node {}: GlobalAveragePool needs [N, C, H, W] inputs, got examples of {shape:?}",
            label(node)
        )));
    };
    Ok(Layer::Pool2d(Pool2d::new(PoolKind::Avg, (h, w), (h, w))?))
}

/// `LeakyRelu` (alpha defaults to 0.01).
pub(super) fn leaky_relu(node: &NodeProto) -> Result<Layer, NnError> {
    let alpha = float_attr(node, "alpha").unwrap_or(0.01);
    if !alpha.is_finite() {
        return Err(err(format!("node {}: alpha must be finite", label(node))));
    }
    Ok(Layer::Activation(Activation::new(
        ActivationKind::LeakyRelu(alpha),
    )))
}

/// PyTorch's gate order from ONNX's: LSTM `i, o, f, c` → `i, f, g, o`;
/// GRU `z, r, h` → `r, z, n`.
fn torch_gate_order(cell: CellKind, values: &[f64], per_gate: usize) -> Vec<f64> {
    let order: &[usize] = match cell {
        CellKind::Lstm => &[0, 2, 3, 1],
        CellKind::Gru => &[1, 0, 2],
    };
    order
        .iter()
        .flat_map(|&g| values.iter().skip(g * per_gate).take(per_gate).copied())
        .collect()
}

/// The fused recurrent node (`onnx_patterns::fuse_recurrent`): inputs
/// `[x, W, R, B]`, W `[1, G·H, F]`, R `[1, G·H, H]`, B `[1, 2·G·H]`.
pub(super) fn recurrent(
    node: &NodeProto,
    consts: &HashMap<String, Const>,
    shape: &[usize],
) -> Result<Layer, NnError> {
    let cell = match string_attr(node, "cell").as_deref() {
        Some("LSTM") => CellKind::Lstm,
        Some("GRU") => CellKind::Gru,
        _ => return Err(err(format!("node {}: unknown cell", label(node)))),
    };
    let &[steps, features] = shape else {
        return Err(err(format!(
            "node {}: {cell:?} needs [N, steps, features] inputs, got examples of {shape:?}",
            label(node)
        )));
    };
    let need = |k: usize| -> Result<&Const, NnError> {
        input_const(node, k, consts)?
            .ok_or_else(|| err(format!("node {}: input {k} is missing", label(node))))
    };
    let (ws, w) = need(1)?;
    let (rs, r) = need(2)?;
    let &[1, gh, f] = ws.as_slice() else {
        return Err(err(format!(
            "node {}: W has shape {ws:?}, expected [1, gates·hidden, {features}]",
            label(node)
        )));
    };
    let g = cell.gates();
    let h = gh / g;
    let declared = int_attr(node, "hidden_size").and_then(|v| usize::try_from(v).ok());
    if f != features || !gh.is_multiple_of(g) || h == 0 || declared.is_some_and(|d| d != h) {
        return Err(err(format!(
            "node {}: W has shape {ws:?} for inputs of {features} features",
            label(node)
        )));
    }
    if rs.as_slice() != [1, gh, h] {
        return Err(err(format!(
            "node {}: R has shape {rs:?}, expected [1, {gh}, {h}]",
            label(node)
        )));
    }
    let b = match input_const(node, 3, consts)? {
        Some((bs, b)) if bs.as_slice() == [1, 2 * gh] => b.clone(),
        Some((bs, _)) => {
            return Err(err(format!(
                "node {}: B has shape {bs:?}, expected [1, {}]",
                label(node),
                2 * gh
            )))
        }
        None => vec![0.0; 2 * gh],
    };
    let sequence = int_attr(node, "sequence").unwrap_or(0) == 1;
    if let Some(step) = int_attr(node, "step") {
        let last = i64::try_from(steps).is_ok_and(|t| step == -1 || step == t - 1);
        if !last {
            return Err(err(format!(
                "node {}: only the last step ({} or -1) can be selected, not {step}",
                label(node),
                steps.saturating_sub(1)
            )));
        }
    }
    let t = |shape: &[usize], v: Vec<f64>| -> Result<Tensor, NnError> { to_tensor(shape, &v) };
    let (b_ih, b_hh) = b
        .split_at_checked(gh)
        .ok_or_else(|| err(format!("node {}: B is too short", label(node))))?;
    Recurrent::try_from_weights(
        cell,
        t(&[gh, f], torch_gate_order(cell, w, h * f))?,
        t(&[gh, h], torch_gate_order(cell, r, h * h))?,
        t(&[gh], torch_gate_order(cell, b_ih, h))?,
        t(&[gh], torch_gate_order(cell, b_hh, h))?,
        sequence,
    )
    .map(|r| Layer::Recurrent(Box::new(r)))
}
