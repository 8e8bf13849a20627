//! Subgraphs that exporters write for one PyTorch layer, fused back into
//! one node before import: GELU as opsets before 20 spell it,
//! `Div(x, √2) → Erf → Add(·, 1) → Mul(x, ·) → Mul(·, ½)`, becomes a
//! `Gelu` node (opset 20's own operator, imported the same way).

use super::onnx::{GraphProto, NodeProto};
use std::collections::HashMap;

/// The scalar value of a constant input (an initializer or a `Constant`
/// node's output), if it is one.
fn scalar(consts: &HashMap<String, Vec<f64>>, name: &str) -> Option<f64> {
    match consts.get(name).map(Vec::as_slice) {
        Some([v]) => Some(*v),
        _ => None,
    }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-4 * b.abs())
}

/// Replaces every GELU subgraph by one `Gelu` node. `consts`: the scalar
/// constants of the graph by name. Nodes that do not form the whole
/// pattern are left as they are (and reported by the importer).
pub(super) fn fuse_gelu(graph: &mut GraphProto, consts: &HashMap<String, Vec<f64>>) {
    let nodes = std::mem::take(&mut graph.node);
    // Positions of the non-Constant nodes, in order.
    let ops: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes.get(i).is_some_and(|n| n.op_type() != "Constant"))
        .collect();
    let mut skip = vec![false; nodes.len()];
    let mut fused: HashMap<usize, NodeProto> = HashMap::new();
    for w in ops.windows(5) {
        let [a, b, c, d, e] = [w[0], w[1], w[2], w[3], w[4]];
        if skip[a] {
            continue;
        }
        let (Some(div), Some(erf), Some(add), Some(mul), Some(half)) = (
            nodes.get(a),
            nodes.get(b),
            nodes.get(c),
            nodes.get(d),
            nodes.get(e),
        ) else {
            continue;
        };
        let out = |n: &NodeProto| n.output.first().cloned().unwrap_or_default();
        let input = |n: &NodeProto, k: usize| n.input.get(k).cloned().unwrap_or_default();
        let x = input(div, 0);
        let ok = div.op_type() == "Div"
            && close(scalar(consts, &input(div, 1)), std::f64::consts::SQRT_2)
            && erf.op_type() == "Erf"
            && input(erf, 0) == out(div)
            && add.op_type() == "Add"
            && input(add, 0) == out(erf)
            && close(scalar(consts, &input(add, 1)), 1.0)
            && mul.op_type() == "Mul"
            && ((input(mul, 0) == x && input(mul, 1) == out(add))
                || (input(mul, 1) == x && input(mul, 0) == out(add)))
            && half.op_type() == "Mul"
            && input(half, 0) == out(mul)
            && close(scalar(consts, &input(half, 1)), 0.5);
        if !ok {
            continue;
        }
        let g = NodeProto {
            op_type: Some("Gelu".into()),
            name: Some(format!("{} (GELU)", div.name())),
            input: vec![x],
            output: vec![out(half)],
            ..NodeProto::default()
        };
        fused.insert(a, g);
        for i in [a, b, c, d, e] {
            skip[i] = true;
        }
    }
    graph.node = nodes
        .into_iter()
        .enumerate()
        .filter_map(|(i, n)| match fused.remove(&i) {
            Some(g) => Some(g),
            None if skip.get(i).copied().unwrap_or(false) => None,
            None => Some(n),
        })
        .collect();
}
