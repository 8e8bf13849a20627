//! The evaluation schedule of a Chebyshev-basis polynomial: which basis
//! ciphertexts `T_i(u)` are computed, and how the polynomial is divided by
//! the giant steps (Paterson–Stockmeyer in the Chebyshev basis).
//!
//! A node `p` of degree `e` that must be ready `budget` levels below `u`
//! is either a *leaf*, `Σ c_i T_i` with every `T_i` a baby step
//! (`i ≤ 2^l`) at least one level above the node (the constants are
//! rounded at exact scales and cost the one rescale), or it is *split* at
//! `g = 2^(⌈log2(e + 1)⌉ − 1)`: `p = q · T_g + r` (Chebyshev division,
//! `T_g T_m = (T_{g+m} + T_{|g−m|}) / 2`), `q` evaluated one level higher,
//! `r` beside the product. A node of degree `e` with
//! `budget ≥ ⌈log2(e + 1)⌉` always fits: `q` has degree `< g` and
//! `budget − 1`, `r` degree `< g` and `budget`, and `T_g` sits
//! `log2 g < budget` levels down. A baby-step leaf whose budget is too
//! small (the leading chain `q, q_q, …`, which has no slack) is split at
//! baby-step powers, so the whole polynomial costs exactly
//! `⌈log2(d + 1)⌉` levels. The baby-step size `2^l` is chosen to minimise
//! the number of ciphertext products (exact count, by planning every `l`).

use std::collections::BTreeSet;

/// `⌈log2 n⌉` for `n ≥ 1`.
pub fn ceil_log2(n: usize) -> usize {
    n.max(1).next_power_of_two().trailing_zeros() as usize
}

/// Highest index with a non-zero coefficient (0 when none).
pub(crate) fn degree_of(c: &[f64]) -> usize {
    c.iter().rposition(|&v| v != 0.0).unwrap_or(0)
}

/// One node of the division tree.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// `Σ c_i T_i`, lowest first (a single entry is a constant).
    Leaf(Vec<f64>),
    /// `q · T_g + r`.
    Split {
        /// The giant (or baby) power divided by.
        g: usize,
        /// Quotient, evaluated one level above the node.
        q: Box<Node>,
        /// Remainder, at the node's level.
        r: Box<Node>,
    },
}

/// How `T_i` is computed from smaller powers: `2·T_j·T_k − T_m`
/// (`m = 0`: minus the constant 1).
pub(crate) fn factors(i: usize) -> (usize, usize, usize) {
    if i.is_multiple_of(2) {
        (i / 2, i / 2, 0)
    } else {
        let j = 1usize << (ceil_log2(i) - 1);
        let k = i - j;
        (j, k, j - k)
    }
}

/// `p = q · T_g + r` for `p` of degree `< 2g` (the planner guarantees it).
pub(crate) fn divide(c: &[f64], g: usize) -> (Vec<f64>, Vec<f64>) {
    let mut r: Vec<f64> = c.iter().take(g).copied().collect();
    let mut q = vec![0.0; c.len().saturating_sub(g).max(1)];
    for (i, &ci) in c.iter().enumerate().skip(g) {
        let m = i - g;
        if let Some(x) = q.get_mut(m) {
            *x += if m == 0 { ci } else { 2.0 * ci };
        }
        if m > 0 {
            // 2 T_m T_g = T_i + T_{2g−i}: take T_{2g−i} back out of r.
            if let Some(x) = (2 * g).checked_sub(i).and_then(|j| r.get_mut(j)) {
                *x -= ci;
            }
        }
    }
    (q, r)
}

/// A planned evaluation: basis powers, division tree and exact counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub(crate) root: Node,
    /// Every `T_i` (`i ≥ 2`) computed, ascending (factors come first).
    pub(crate) powers: Vec<usize>,
    depth: usize,
    baby: usize,
    products: usize,
}

impl Schedule {
    /// Plans `Σ c_i T_i` (`c` non-empty) at depth `⌈log2(d + 1)⌉` with the
    /// baby-step size that needs the fewest ciphertext products.
    pub(crate) fn plan(c: &[f64]) -> Self {
        let d = degree_of(c).max(1);
        let depth = ceil_log2(d + 1);
        (0..=depth)
            .map(|l| Self::with_baby(c, depth, 1 << l))
            .min_by_key(|s| s.products)
            .unwrap_or_else(|| Self::with_baby(c, depth, 1))
    }

    fn with_baby(c: &[f64], depth: usize, baby: usize) -> Self {
        let mut needed = BTreeSet::new();
        let mut splits = 0;
        let root = node(c, depth, baby, &mut needed, &mut splits);
        let mut stack: Vec<usize> = needed.iter().copied().collect();
        while let Some(i) = stack.pop() {
            if i < 2 {
                continue;
            }
            let (j, k, m) = factors(i);
            for f in [j, k, m] {
                if f >= 2 && needed.insert(f) {
                    stack.push(f);
                }
            }
        }
        let powers: Vec<usize> = needed.into_iter().filter(|&i| i >= 2).collect();
        Self {
            root,
            products: powers.len() + splits,
            powers,
            depth,
            baby,
        }
    }

    /// Levels consumed from `u`: `⌈log2(d + 1)⌉`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Baby-step size `2^l` (basis `T_1 … T_{2^l}` for the leaves).
    pub fn baby_steps(&self) -> usize {
        self.baby
    }

    /// Ciphertext × ciphertext products (each with a relinearization).
    pub fn products(&self) -> usize {
        self.products
    }

    /// The basis polynomials `T_i` (`i ≥ 2`) computed, ascending.
    pub fn powers(&self) -> &[usize] {
        &self.powers
    }
}

fn node(
    c: &[f64],
    budget: usize,
    baby: usize,
    needed: &mut BTreeSet<usize>,
    splits: &mut usize,
) -> Node {
    let e = degree_of(c);
    let c = c.get(..=e).unwrap_or(c);
    if e == 0 {
        return Node::Leaf(vec![c.first().copied().unwrap_or(0.0)]);
    }
    if e <= baby && ceil_log2(e) < budget {
        for (i, &v) in c.iter().enumerate().skip(1) {
            if v != 0.0 {
                needed.insert(i);
            }
        }
        return Node::Leaf(c.to_vec());
    }
    let g = 1usize << (ceil_log2(e + 1) - 1);
    let (q, r) = divide(c, g);
    needed.insert(g);
    let q = node(&q, budget.saturating_sub(1), baby, needed, splits);
    if !matches!(&q, Node::Leaf(v) if v.len() == 1) {
        *splits += 1;
    }
    let r = node(&r, budget, baby, needed, splits);
    Node::Split {
        g,
        q: Box::new(q),
        r: Box::new(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheb(c: &[f64], u: f64) -> f64 {
        let (mut t0, mut t1) = (1.0, u);
        let mut s = c.first().copied().unwrap_or(0.0);
        for &ci in c.iter().skip(1) {
            s += ci * t1;
            (t0, t1) = (t1, 2.0 * u * t1 - t0);
        }
        s
    }

    #[test]
    fn division_is_exact() {
        let c: Vec<f64> = (0..14).map(|i| (i as f64 * 0.7).sin()).collect();
        let (q, r) = divide(&c, 8);
        for k in 0..11 {
            let u = -1.0 + 0.2 * k as f64;
            let t8 = (8.0 * u.clamp(-1.0, 1.0).acos()).cos();
            assert!((cheb(&c, u) - (cheb(&q, u) * t8 + cheb(&r, u))).abs() < 1e-12);
        }
    }

    #[test]
    fn depth_is_minimal_and_products_grow_like_sqrt() {
        for d in [1usize, 2, 3, 5, 7, 8, 15, 16, 31, 63, 127] {
            let s = Schedule::plan(&vec![0.5; d + 1]);
            assert_eq!(s.depth(), ceil_log2(d + 1), "degree {d}");
            let bound = 2.0 * ((d + 1) as f64).sqrt() + 2.0 * ceil_log2(d + 1) as f64;
            assert!(s.products() as f64 <= bound, "degree {d}: {}", s.products());
        }
    }
}
