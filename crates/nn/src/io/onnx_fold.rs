//! Constant folding of the small shape computations exporters leave in a
//! graph. PyTorch's exporter, for instance, writes `nn.ZeroPad2d`'s pads
//! as `Constant → ConstantOfShape → Concat → Reshape → Slice → Transpose →
//! Reshape → Cast` feeding the `Pad` node. Every node of the operators
//! below whose inputs are all constant is evaluated here, its outputs
//! become constants and the node is dropped; the importer then sees `Pad`
//! with constant pads. Only small tensors are folded (at most
//! [`MAX_FOLDED`] values): weights never go through these operators.

use super::onnx::{GraphProto, NodeProto};
use std::collections::HashMap;

/// A constant: shape and values (integers are exact in `f64` up to 2⁵³,
/// far beyond any shape).
pub(super) type Const = (Vec<usize>, Vec<f64>);

/// The most values a folded tensor may hold.
pub(super) const MAX_FOLDED: usize = 1 << 16;

/// Folds every foldable node of `graph` whose inputs are all in `consts`,
/// in order, adding its outputs to `consts` and removing it.
pub(super) fn fold_constants(graph: &mut GraphProto, consts: &mut HashMap<String, Const>) {
    let nodes = std::mem::take(&mut graph.node);
    let mut kept = Vec::with_capacity(nodes.len());
    for n in nodes {
        match fold(&n, consts) {
            Some(outs) if outs.len() == n.output.len() => {
                for (name, c) in n.output.iter().zip(outs) {
                    consts.insert(name.clone(), c);
                }
            }
            _ => kept.push(n),
        }
    }
    graph.node = kept;
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a super::onnx::AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

fn count(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_FOLDED)
}

/// A non-negative integer from a constant value.
fn index(v: f64) -> Option<usize> {
    (v >= 0.0 && v.fract() == 0.0 && v <= MAX_FOLDED as f64).then_some(v as usize)
}

/// Normalises a possibly negative axis for a tensor of `rank` axes.
fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// Row-major strides.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The outputs of `n` if it is foldable and its inputs are constant.
fn fold(n: &NodeProto, consts: &HashMap<String, Const>) -> Option<Vec<Const>> {
    let input = |k: usize| -> Option<&Const> {
        n.input
            .get(k)
            .filter(|s| !s.is_empty())
            .and_then(|s| consts.get(s))
    };
    let present = |k: usize| n.input.get(k).is_some_and(|s| !s.is_empty());
    // Every named input must be constant.
    if (0..n.input.len()).any(|k| present(k) && input(k).is_none()) {
        return None;
    }
    let one = |c: Const| Some(vec![c]);
    match n.op_type() {
        "Constant" => {
            let a = n.attribute.first()?;
            match a.name() {
                "value" => {
                    let (s, v) = super::onnx::tensor_values(a.t.as_ref()?).ok()?;
                    count(&s)?;
                    one((s, v))
                }
                "value_float" => one((vec![], vec![f64::from(a.f())])),
                "value_int" => one((vec![], vec![a.i() as f64])),
                "value_ints" => one((
                    vec![a.ints.len()],
                    a.ints.iter().map(|&v| v as f64).collect(),
                )),
                "value_floats" => one((
                    vec![a.floats.len()],
                    a.floats.iter().map(|&v| f64::from(v)).collect(),
                )),
                _ => None,
            }
        }
        "Identity" | "Cast" => {
            let (s, v) = input(0)?.clone();
            let to = attr(n, "to").map(|a| a.i());
            // Casts to integer types truncate; to float types keep values.
            let v = match to {
                Some(2..=7) | Some(12) | Some(13) => v.iter().map(|x| x.trunc()).collect(),
                _ => v,
            };
            one((s, v))
        }
        "Shape" => {
            let (s, _) = input(0)?;
            one((vec![s.len()], s.iter().map(|&d| d as f64).collect()))
        }
        "ConstantOfShape" => {
            let (_, dims) = input(0)?;
            let shape: Vec<usize> = dims.iter().map(|&d| index(d)).collect::<Option<_>>()?;
            let total = count(&shape)?;
            let value = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                Some(t) => *super::onnx::tensor_values(t).ok()?.1.first()?,
                None => 0.0,
            };
            one((shape, vec![value; total]))
        }
        "Concat" => {
            let parts: Vec<&Const> = (0..n.input.len()).map(input).collect::<Option<_>>()?;
            if parts.iter().any(|(s, _)| s.len() != 1) {
                return None;
            }
            let v: Vec<f64> = parts.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            count(&[v.len()])?;
            one((vec![v.len()], v))
        }
        "Reshape" => {
            let (s, v) = input(0)?;
            let (_, target) = input(1)?;
            let mut shape = Vec::with_capacity(target.len());
            let mut infer = None;
            for (i, &t) in target.iter().enumerate() {
                if t == -1.0 && infer.is_none() {
                    infer = Some(i);
                    shape.push(1);
                } else if t == 0.0 {
                    shape.push(*s.get(i)?);
                } else {
                    shape.push(index(t)?);
                }
            }
            let known = count(&shape)?;
            if let Some(i) = infer {
                if known == 0 || !v.len().is_multiple_of(known) {
                    return None;
                }
                *shape.get_mut(i)? = v.len() / known;
            }
            (count(&shape)? == v.len()).then(|| vec![(shape, v.clone())])
        }
        "Unsqueeze" | "Squeeze" => {
            let (s, v) = input(0)?;
            let axes: Vec<i64> = match input(1) {
                Some((_, a)) => a.iter().map(|&x| x as i64).collect(),
                None => attr(n, "axes").map(|a| a.ints.clone()).unwrap_or_default(),
            };
            let shape = if n.op_type() == "Squeeze" {
                let drop: Vec<usize> = if axes.is_empty() {
                    (0..s.len()).filter(|&i| s.get(i) == Some(&1)).collect()
                } else {
                    axes.iter()
                        .map(|&a| axis(a, s.len()))
                        .collect::<Option<_>>()?
                };
                if drop.iter().any(|&i| s.get(i) != Some(&1)) {
                    return None;
                }
                s.iter()
                    .enumerate()
                    .filter(|(i, _)| !drop.contains(i))
                    .map(|(_, &d)| d)
                    .collect()
            } else {
                let rank = s.len() + axes.len();
                let mut add: Vec<usize> =
                    axes.iter().map(|&a| axis(a, rank)).collect::<Option<_>>()?;
                add.sort_unstable();
                let mut dims = s.iter().copied();
                (0..rank)
                    .map(|i| {
                        if add.binary_search(&i).is_ok() {
                            Some(1)
                        } else {
                            dims.next()
                        }
                    })
                    .collect::<Option<Vec<usize>>>()?
            };
            one((shape, v.clone()))
        }
        "Transpose" => {
            let (s, v) = input(0)?;
            let perm: Vec<usize> = match attr(n, "perm") {
                Some(a) => a
                    .ints
                    .iter()
                    .map(|&p| axis(p, s.len()))
                    .collect::<Option<_>>()?,
                None => (0..s.len()).rev().collect(),
            };
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..s.len()).collect::<Vec<_>>() {
                return None;
            }
            let out_shape: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
            let (src, dst) = (strides(s), strides(&out_shape));
            let mut out = vec![0.0; v.len()];
            for (o, slot) in out.iter_mut().enumerate() {
                let offset: usize = perm
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| (o / dst[k]) % out_shape[k] * src[p])
                    .sum();
                *slot = *v.get(offset)?;
            }
            one((out_shape, out))
        }
        "Slice" => slice(input(0)?, input(1)?, input(2)?, input(3), input(4)),
        "Gather" => {
            let (s, v) = input(0)?;
            let (is, idx) = input(1)?;
            let ax = axis(attr(n, "axis").map_or(0, |a| a.i()), s.len())?;
            if s.len() != 1 || ax != 0 {
                return None;
            }
            let len = *s.first()? as f64;
            let picked: Vec<f64> = idx
                .iter()
                .map(|&i| {
                    let j = if i < 0.0 { i + len } else { i };
                    index(j).and_then(|j| v.get(j).copied())
                })
                .collect::<Option<_>>()?;
            one((is.clone(), picked))
        }
        _ => None,
    }
}

/// ONNX `Slice` (opset ≥ 10): per listed axis, `start:end:step` with
/// negative indices counted from the end and bounds clamped.
fn slice(
    data: &Const,
    starts: &Const,
    ends: &Const,
    axes: Option<&Const>,
    steps: Option<&Const>,
) -> Option<Vec<Const>> {
    let (s, v) = data;
    let rank = s.len();
    let axes: Vec<usize> = match axes {
        Some((_, a)) => a
            .iter()
            .map(|&x| axis(x as i64, rank))
            .collect::<Option<_>>()?,
        None => (0..starts.1.len()).collect(),
    };
    let mut picks: Vec<Vec<usize>> = s.iter().map(|&d| (0..d).collect()).collect();
    for (k, &ax) in axes.iter().enumerate() {
        let dim = *s.get(ax)? as i64;
        let step = steps.map_or(Some(1.0), |(_, st)| st.get(k).copied())? as i64;
        if step == 0 {
            return None;
        }
        let norm = |x: f64| -> i64 {
            let x = x.clamp(-(1i64 << 62) as f64, (1i64 << 62) as f64) as i64;
            if x < 0 {
                x + dim
            } else {
                x
            }
        };
        let (mut start, mut end) = (norm(*starts.1.get(k)?), norm(*ends.1.get(k)?));
        let mut idx = Vec::new();
        if step > 0 {
            start = start.clamp(0, dim);
            end = end.clamp(0, dim);
            let mut i = start;
            while i < end {
                idx.push(i as usize);
                i += step;
            }
        } else {
            start = start.clamp(-1, dim - 1);
            end = end.clamp(-1, dim - 1);
            let mut i = start;
            while i > end {
                idx.push(i as usize);
                i += step;
            }
        }
        *picks.get_mut(ax)? = idx;
    }
    let shape: Vec<usize> = picks.iter().map(Vec::len).collect();
    let total = count(&shape)?;
    let src = strides(s);
    let dst = strides(&shape);
    let mut out = Vec::with_capacity(total);
    for o in 0..total {
        let offset: usize = (0..rank)
            .map(|k| picks[k][(o / dst[k]) % shape[k]] * src[k])
            .sum();
        out.push(*v.get(offset)?);
    }
    Some(vec![(shape, out)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(shape: &[usize], v: &[f64]) -> Const {
        (shape.to_vec(), v.to_vec())
    }

    #[test]
    fn torch_pad_computation_folds_to_onnx_pads() {
        // F.pad(x, (1, 2, 0, 1)) on NCHW: [1, 2, 0, 1] + zeros(4), as
        // [-1, 2] rows reversed, transposed, flattened.
        let padded = c(&[8], &[1.0, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let rows = c(&[4, 2], &padded.1);
        let rev = slice(
            &rows,
            &c(&[1], &[-1.0]),
            &c(&[1], &[-9.2e18]),
            Some(&c(&[1], &[0.0])),
            Some(&c(&[1], &[-1.0])),
        )
        .and_then(|mut v| v.pop())
        .unwrap_or_default();
        assert_eq!(rev.0, vec![4, 2]);
        assert_eq!(rev.1, vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0]);
    }

    #[test]
    fn oversized_constants_are_not_folded() {
        let mut consts = HashMap::new();
        consts.insert("s".to_string(), c(&[2], &[1e6, 1e6]));
        let n = NodeProto {
            op_type: Some("ConstantOfShape".into()),
            input: vec!["s".into()],
            output: vec!["o".into()],
            ..NodeProto::default()
        };
        assert!(fold(&n, &consts).is_none());
    }
}
