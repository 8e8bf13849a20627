//! `plain-tail` mode: the seed's design, served only after the platform
//! has measured — and the user has seen and accepted — what it reveals.
//!
//! * **Leakage, measured.** When a model is uploaded with a domain for
//!   which the operator configured public data (`Config::public`), the
//!   platform trains, for every split, an inversion network from the
//!   head's activations back to inputs on that public data and scores it on
//!   held-out inputs (SSIM, PSNR; `crate::leakage`), in the background,
//!   and records the figures with the model. When it holds the whole model
//!   it also records how many reconstructions the model classifies as the
//!   originals; holding only the head, it cannot, and that figure is the
//!   creator's to measure (`cipherflow model splits`).
//! * **Queries.** A session opens only with `accept_leakage=1` and only at a
//!   split whose leakage is recorded. The head runs on the encrypted input
//!   and its output goes back re-randomized and flooded as far as its
//!   proven bound allows (circuit privacy of the head's weights); the user
//!   decrypts it and sends the activations to the creator's host through the
//!   relayed TLS channel; the host runs the tail in the clear and answers
//!   the scores. The creator sees the activations: that is the mode.

use crate::leakage::{inversion_leakage, inversion_leakage_of_head, InversionData};
use crate::repo::ModelRecord;
use crate::repo_leakage::{example_image, SplitLeakage};
use crate::service::{lock, Shared};
use cipherflow_nn::data::{load_inputs, InputOptions};
use std::collections::HashMap;
use std::sync::Mutex;

/// Where each model version's leakage measurement stands.
#[derive(Default)]
pub(crate) struct LeakageJobs(Mutex<HashMap<(String, i64), String>>);

impl LeakageJobs {
    fn set(&self, r: &ModelRecord, status: impl Into<String>) {
        lock(&self.0).insert((r.name.clone(), r.version), status.into());
    }

    /// The status of `r`'s measurement, if one was started.
    pub(crate) fn status(&self, r: &ModelRecord) -> Option<String> {
        lock(&self.0).get(&(r.name.clone(), r.version)).cloned()
    }
}

/// Starts measuring the leakage of every split of `r` on the public data
/// of its domain, on a thread of its own (results go to the repository).
pub(crate) fn start_leakage(p: &Shared, r: &ModelRecord) {
    let Some(domain) = r.info.domain.clone() else {
        return;
    };
    if r.splits.is_empty() {
        return;
    }
    let Some(path) = p
        .cfg
        .public
        .iter()
        .find(|(d, _)| *d == domain)
        .map(|(_, path)| path.clone())
    else {
        p.plain.set(
            r,
            format!("not measured: this platform has no public data of domain {domain:?}"),
        );
        return;
    };
    p.plain.set(r, "measuring");
    let (p2, r2) = (p.clone(), r.clone());
    let spawned = std::thread::Builder::new()
        .name("leakage".into())
        .spawn(move || {
            let status = match measure(&p2, &r2, &domain, &path) {
                Ok(n) => format!("measured at {n} splits"),
                Err(e) => {
                    tracing::warn!("leakage of {} v{}: {e}", r2.name, r2.version);
                    format!("failed: {e}")
                }
            };
            p2.plain.set(&r2, status);
        });
    if let Err(e) = spawned {
        p.plain.set(r, format!("failed: no thread: {e}"));
    }
}

fn measure(
    p: &Shared,
    r: &ModelRecord,
    domain: &str,
    path: &std::path::Path,
) -> Result<usize, crate::PlatformError> {
    let file = lock(&p.repo).load(r)?;
    let model = &file.model;
    let inputs = load_inputs(
        path,
        &InputOptions {
            shape: Some(model.input_shape().to_vec()),
            ..InputOptions::default()
        },
    )?;
    let x = inputs.features;
    let n = x.nrows().min(p.cfg.public_limit);
    let held = p.cfg.held_out.min(n / 5);
    if held == 0 {
        return Err(crate::PlatformError::BadRequest(format!(
            "{}: too few public inputs ({n})",
            path.display()
        )));
    }
    let public = x.slice(ndarray::s![..n - held, ..]).to_owned();
    let held_out = x.slice(ndarray::s![n - held..n, ..]).to_owned();
    let data = InversionData {
        public: &public,
        held_out: &held_out,
        labels: None,
        preprocessing: file.preprocessing.as_ref(),
    };
    let whole = r.head_layers == r.layers;
    for &k in &r.splits {
        // Holding the whole model, the platform also classifies the
        // reconstructions; holding a head, it cannot.
        let l = if whole && k < model.layers().len() {
            inversion_leakage(model, k, &data, &p.cfg.inversion)?
        } else {
            let head = if k == model.layers().len() {
                model.clone()
            } else {
                model.split_at(k)?.0
            };
            inversion_leakage_of_head(&head, &data, &p.cfg.inversion)?
        };
        lock(&p.repo).put_leakage(
            &r.name,
            r.version,
            &SplitLeakage {
                k,
                domain: domain.to_string(),
                activations: l.activations,
                ssim: l.ssim,
                psnr: l.psnr,
                public_inputs: public.nrows(),
                held_out: held,
                agreement_on_reconstructions: l.agreement_on_reconstructions,
                example: example_image(&l.example),
            },
        )?;
    }
    Ok(r.splits.len())
}

/// The card's `plain_tail` section of `r`: the leakage measured per split,
/// and the measurement's status.
pub(crate) fn card(p: &Shared, r: &ModelRecord) -> cipherflow_api::PlainTail {
    let leakage = lock(&p.repo)
        .leakage(&r.name, r.version)
        .unwrap_or_default();
    let status = p.plain.status(r).unwrap_or_else(|| {
        if leakage.is_empty() {
            "not measured: upload the model with a domain this platform has public data of".into()
        } else {
            "measured".into()
        }
    });
    cipherflow_api::PlainTail {
        domain: r.info.domain.clone(),
        status,
        leakage,
    }
}
