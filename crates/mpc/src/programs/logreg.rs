//! Private logistic regression between two data owners (parties 0 and 1;
//! party 2 helps), full-batch gradient descent on secret-shared data; the
//! trained weights are revealed to both owners.
//!
//! * rows split: each owner holds some patients (features and labels);
//! * columns split: each owner holds some features of every patient, owner
//!   1 also holds the labels.
//!
//! Preprocessing: features are standardised with the statistics of the
//! whole training set. For a rows split the owners input their per-feature
//! sums and sums of squares and learn only the totals (an aggregate they
//! agree to reveal); for a columns split each owner standardises its own
//! columns.

use crate::computation::Roles;
use crate::party::{AShare, Party};
use crate::z2k::Z2k;
use crate::MpcError;
use ndarray::{concatenate, Array1, Array2, Axis};

/// First data owner.
pub const OWNER_A: usize = 0;
/// Second data owner.
pub const OWNER_B: usize = 1;
/// The helper.
pub const HELPER: usize = 2;
/// The parties' names.
pub const ROLES: Roles = Roles(["data owner A", "data owner B", "helper"]);

/// How the training data is divided between the owners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Horizontal: disjoint sets of examples.
    Rows,
    /// Vertical: disjoint sets of features.
    Columns,
}

/// Training hyper-parameters (public).
#[derive(Clone, Copy, Debug)]
pub struct LogRegConfig {
    /// Gradient steps.
    pub iterations: usize,
    /// Learning rate (on the mean gradient).
    pub lr: f64,
}

impl Default for LogRegConfig {
    fn default() -> Self {
        LogRegConfig {
            iterations: 60,
            lr: 1.0,
        }
    }
}

/// One owner's data: raw features and (where it holds them) labels 0/1.
#[derive(Clone, Debug)]
pub struct OwnerData {
    /// `n × d` raw features.
    pub x: Array2<f64>,
    /// `n` labels, if this owner has them.
    pub y: Option<Vec<f64>>,
}

/// Per-feature mean and standard deviation.
#[derive(Clone, Debug)]
pub struct Scaling {
    /// Means.
    pub mean: Array1<f64>,
    /// Standard deviations (1 where 0).
    pub std: Array1<f64>,
}

impl Scaling {
    /// From sums, sums of squares and a count.
    pub fn from_moments(sum: &Array1<f64>, sumsq: &Array1<f64>, n: f64) -> Self {
        let mean = sum / n;
        let var = sumsq / n - &mean * &mean;
        let std = var.mapv(|v| if v > 1e-12 { v.sqrt() } else { 1.0 });
        Scaling { mean, std }
    }

    /// Of a matrix's columns.
    pub fn fit(x: &Array2<f64>) -> Self {
        let sum = x.sum_axis(Axis(0));
        let sumsq = x.mapv(|v| v * v).sum_axis(Axis(0));
        Self::from_moments(&sum, &sumsq, x.nrows() as f64)
    }

    /// Standardises `x`.
    pub fn apply(&self, x: &Array2<f64>) -> Array2<f64> {
        (x - &self.mean) / &self.std
    }
}

/// What an owner learns: the weights (for standardised features, in the
/// joint column order) and bias, and the scaling used.
#[derive(Clone, Debug)]
pub struct Trained {
    /// Feature weights.
    pub w: Vec<f64>,
    /// Bias.
    pub b: f64,
    /// Standardisation (rows split: joint; columns split: this owner's own
    /// columns only, the other owner's entries are NaN).
    pub scaling: Scaling,
}

fn column(v: &[f64]) -> Result<Array2<f64>, MpcError> {
    Array2::from_shape_vec((v.len(), 1), v.to_vec()).map_err(|e| MpcError::Config(e.to_string()))
}

/// Runs private training as party `p` (`data` is `Some` at the owners).
/// Owners get `Some(Trained)`, the helper `None`.
pub fn private_logreg<R: Z2k>(
    p: &mut Party<R>,
    split: Split,
    data: Option<&OwnerData>,
    cfg: LogRegConfig,
) -> Result<Option<Trained>, MpcError> {
    let me = p.id();
    if me != HELPER && data.is_none() {
        return Err(MpcError::Party(format!("data owner {me} needs its data")));
    }
    let mine = |owner: usize| if me == owner { data } else { None };
    let owners = [OWNER_A, OWNER_B];
    // 1. Standardise.
    let (scaled, scaling) = match split {
        Split::Rows => {
            // Each owner inputs [Σx; Σx²; n] and both learn the totals.
            let mut tot: Option<AShare<R>> = None;
            for &o in &owners {
                let m = mine(o).map(|d| {
                    let s = d.x.sum_axis(Axis(0));
                    let q = d.x.mapv(|v| v * v).sum_axis(Axis(0));
                    let nrow = Array1::from_elem(s.len(), d.x.nrows() as f64);
                    ndarray::stack(Axis(0), &[s.view(), q.view(), nrow.view()])
                });
                let m = m.transpose().map_err(|e| MpcError::Config(e.to_string()))?;
                let sh = p.private_input(o, m.as_ref())?;
                tot = Some(match tot {
                    None => sh,
                    Some(t) => p.add(&t, &sh)?,
                });
            }
            let tot = tot.ok_or_else(|| MpcError::Config("no owners".into()))?;
            let rev = p.reveal_to(&tot, &owners)?;
            match (rev, data) {
                (Some(t), Some(d)) => {
                    let n = t[[2, 0]];
                    let sc = Scaling::from_moments(&t.row(0).to_owned(), &t.row(1).to_owned(), n);
                    (Some(sc.apply(&d.x)), Some(sc))
                }
                _ => (None, None),
            }
        }
        Split::Columns => match data {
            Some(d) => {
                let sc = Scaling::fit(&d.x);
                (Some(sc.apply(&d.x)), Some(sc))
            }
            None => (None, None),
        },
    };
    // 2. Share the data.
    let xa = p.private_input(OWNER_A, if me == OWNER_A { scaled.as_ref() } else { None })?;
    let xb = p.private_input(OWNER_B, if me == OWNER_B { scaled.as_ref() } else { None })?;
    let (x, y) = match split {
        Split::Rows => {
            let ya = mine(OWNER_A)
                .and_then(|d| d.y.as_deref())
                .map(column)
                .transpose()?;
            let yb = mine(OWNER_B)
                .and_then(|d| d.y.as_deref())
                .map(column)
                .transpose()?;
            let ya = p.private_input(OWNER_A, ya.as_ref())?;
            let yb = p.private_input(OWNER_B, yb.as_ref())?;
            (p.vstack(&[&xa, &xb])?, p.vstack(&[&ya, &yb])?)
        }
        Split::Columns => {
            let yb = mine(OWNER_B)
                .and_then(|d| d.y.as_deref())
                .map(column)
                .transpose()?;
            if me == OWNER_B && yb.is_none() {
                return Err(MpcError::Party("owner B holds the labels".into()));
            }
            let yb = p.private_input(OWNER_B, yb.as_ref())?;
            (p.hstack(&[&xa, &xb])?, yb)
        }
    };
    let n = x.shape().0;
    let ones = p.private_variable(&Array2::ones((n, 1)))?;
    let x = p.hstack(&[&x, &ones])?;
    let xt = p.transpose(&x);
    let d = x.shape().1;
    // 3. Gradient descent.
    let mut w = p.private_variable(&Array2::zeros((d, 1)))?;
    for _ in 0..cfg.iterations {
        let z = p.matmul_fx(&x, &w)?;
        let s = p.sigmoid(&z)?;
        let e = p.sub(&s, &y)?;
        let g = p.matmul_fx(&xt, &e)?;
        let step = p.mul_public_fx(&g, cfg.lr / n as f64)?;
        w = p.sub(&w, &step)?;
    }
    // 4. Reveal to both owners.
    let wv = p.reveal_to(&w, &owners)?;
    Ok(match (wv, scaling) {
        (Some(wv), Some(mut sc)) => {
            let all: Vec<f64> = wv.iter().copied().collect();
            let (wf, b) = all.split_at(d - 1);
            if split == Split::Columns {
                // Pad this owner's scaling to the joint column order.
                let other = d - 1 - sc.mean.len();
                let nan = Array1::from_elem(other, f64::NAN);
                let (m, s) = if me == OWNER_A {
                    (
                        concatenate![Axis(0), sc.mean, nan],
                        concatenate![Axis(0), sc.std, nan],
                    )
                } else {
                    (
                        concatenate![Axis(0), nan, sc.mean],
                        concatenate![Axis(0), nan, sc.std],
                    )
                };
                sc = Scaling { mean: m, std: s };
            }
            Some(Trained {
                w: wf.to_vec(),
                b: b.first().copied().unwrap_or(0.0),
                scaling: sc,
            })
        }
        _ => None,
    })
}

/// The same training in f64 with the exact sigmoid (the baseline).
pub fn plaintext_logreg(x: &Array2<f64>, y: &[f64], cfg: LogRegConfig) -> (Vec<f64>, f64) {
    let (n, d) = x.dim();
    let mut w = vec![0.0; d];
    let mut b = 0.0;
    for _ in 0..cfg.iterations {
        let mut gw = vec![0.0; d];
        let mut gb = 0.0;
        for (row, &t) in x.rows().into_iter().zip(y) {
            let z: f64 = row.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>() + b;
            let e = 1.0 / (1.0 + (-z).exp()) - t;
            gw.iter_mut().zip(row.iter()).for_each(|(g, a)| *g += e * a);
            gb += e;
        }
        let s = cfg.lr / n as f64;
        w.iter_mut().zip(&gw).for_each(|(wi, g)| *wi -= s * g);
        b -= s * gb;
    }
    (w, b)
}

/// Accuracy of `(w, b)` on standardised features.
pub fn accuracy(x: &Array2<f64>, y: &[f64], w: &[f64], b: f64) -> f64 {
    let correct = x
        .rows()
        .into_iter()
        .zip(y)
        .filter(|(row, &t)| {
            let z: f64 = row.iter().zip(w).map(|(a, c)| a * c).sum::<f64>() + b;
            (z >= 0.0) == (t >= 0.5)
        })
        .count();
    correct as f64 / y.len().max(1) as f64
}

/// Divides training features `x` (`n × d`) and labels between the two
/// owners: rows split in halves, or columns split in halves with the
/// labels at owner B.
pub fn split_owners(x: &Array2<f64>, y: &[f64], split: Split) -> [OwnerData; 2] {
    match split {
        Split::Rows => {
            let h = x.nrows() / 2;
            [
                OwnerData {
                    x: x.slice(ndarray::s![..h, ..]).to_owned(),
                    y: Some(y[..h].to_vec()),
                },
                OwnerData {
                    x: x.slice(ndarray::s![h.., ..]).to_owned(),
                    y: Some(y[h..].to_vec()),
                },
            ]
        }
        Split::Columns => {
            let h = x.ncols() / 2;
            [
                OwnerData {
                    x: x.slice(ndarray::s![.., ..h]).to_owned(),
                    y: None,
                },
                OwnerData {
                    x: x.slice(ndarray::s![.., h..]).to_owned(),
                    y: Some(y.to_vec()),
                },
            ]
        }
    }
}
