//! A user's session with a served model in whichever mode it asks —
//! `he` (the whole model on the ciphertext), `mpc` (the head encrypted,
//! the tail secret-shared with the creator's host) or `plain-tail` (the
//! head encrypted, activations to the host, only once its measured
//! leakage is accepted) — what the CLI's `query` and the Python package's
//! `cipherflow.torch.query` open, so that both behave the same.

use crate::client::PlatformClient;
use crate::query::{Answer, QuerySession};
use crate::query_mpc::MpcQuerySession;
use crate::query_plain::PlainTailSession;
use crate::PlatformError;
use cipherflow_nn::Preprocessing;
use ndarray::Array2;
use std::time::Duration;

/// How a session runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryMode {
    /// Every layer on the ciphertext.
    He,
    /// The head on the ciphertext, the tail in three-party computation.
    Mpc,
    /// The head on the ciphertext, the tail on the creator's host in the
    /// clear (activations revealed to it).
    PlainTail,
}

impl std::str::FromStr for QueryMode {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "he" => Ok(Self::He),
            "mpc" => Ok(Self::Mpc),
            "plain-tail" => Ok(Self::PlainTail),
            m => Err(PlatformError::BadRequest(format!(
                "mode {m:?}: he, mpc or plain-tail"
            ))),
        }
    }
}

impl QueryMode {
    /// Its name (`he`, `mpc`, `plain-tail`).
    pub fn name(self) -> &'static str {
        match self {
            Self::He => "he",
            Self::Mpc => "mpc",
            Self::PlainTail => "plain-tail",
        }
    }
}

/// What the user chose.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// The mode.
    pub mode: QueryMode,
    /// The split (layers the platform runs); `mpc` defaults to the
    /// recommended one, `plain-tail` needs one, `he` runs them all.
    pub split: Option<usize>,
    /// The SHA-256 (hex) the host's certificate must have.
    pub host_fingerprint: Option<String>,
    /// `plain-tail`: the user accepts the measured leakage.
    pub accept_leakage: bool,
    /// How long a party waits for a message (`mpc`).
    pub idle: Duration,
}

enum Inner {
    He(Box<QuerySession>),
    Mpc(Box<MpcQuerySession>),
    Plain(Box<PlainTailSession>),
}

/// An open session.
pub struct Session {
    inner: Inner,
    mode: QueryMode,
    split: usize,
    description: String,
}

impl Session {
    /// Opens a session with `model` (keys made and uploaded). In
    /// `plain-tail` mode, refused with the measured leakage spelled out
    /// unless `accept_leakage`.
    pub async fn open(
        client: PlatformClient,
        model: &str,
        opts: &SessionOptions,
    ) -> Result<Self, PlatformError> {
        let (inner, split, description) = match opts.mode {
            QueryMode::He => {
                let s = QuerySession::open(client, model).await?;
                let layers = s.card().layers;
                if let Some(k) = opts.split.filter(|&k| k != layers) {
                    return Err(PlatformError::BadRequest(format!(
                        "split {k}: in he mode the platform runs all {layers} layers"
                    )));
                }
                let how = s
                    .card()
                    .he
                    .as_ref()
                    .map(|h| h.output_privacy.clone())
                    .unwrap_or_default();
                (Inner::He(Box::new(s)), layers, how)
            }
            QueryMode::Mpc => {
                let s = MpcQuerySession::open(
                    client,
                    model,
                    opts.split,
                    opts.host_fingerprint.as_deref(),
                    opts.idle,
                )
                .await?;
                let k = s.split().k;
                let how = format!(
                    "layers 1..={k} encrypted, the rest secret-shared with the creator's host \
                     (certificate SHA-256 {})",
                    s.split()
                        .host
                        .as_ref()
                        .map_or("?", |h| h.fingerprint.as_str())
                );
                (Inner::Mpc(Box::new(s)), k, how)
            }
            QueryMode::PlainTail => {
                let k = opts.split.ok_or_else(|| {
                    PlatformError::BadRequest("plain-tail mode needs a split".into())
                })?;
                let (_, leakage) = PlainTailSession::leakage(&client, model, k).await?;
                let l = leakage.ok_or_else(|| {
                    PlatformError::Forbidden(format!(
                        "plain-tail at split {k}: the platform has not measured what it \
                         reveals, so it is not served (mpc mode reveals nothing)"
                    ))
                })?;
                let shown = format!(
                    "plain-tail at split {k} sends your activations ({} values per input) to \
                     the model's creator: an inversion network trained on {} public {} inputs \
                     reconstructs held-out inputs from them with SSIM {:.2} and PSNR {:.1} dB",
                    l.activations, l.public_inputs, l.domain, l.ssim, l.psnr
                );
                if !opts.accept_leakage {
                    return Err(PlatformError::Forbidden(format!(
                        "{shown}. Accept this leakage explicitly, or use mpc mode, which \
                         reveals no activation"
                    )));
                }
                let s =
                    PlainTailSession::open(client, model, k, &l, opts.host_fingerprint.as_deref())
                        .await?;
                (Inner::Plain(Box::new(s)), k, format!("{shown} (accepted)"))
            }
        };
        Ok(Self {
            inner,
            mode: opts.mode,
            split,
            description,
        })
    }

    /// The model's card.
    pub fn card(&self) -> &cipherflow_api::ModelCard {
        match &self.inner {
            Inner::He(s) => s.card(),
            Inner::Mpc(s) => s.card(),
            Inner::Plain(s) => s.card(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> QueryMode {
        self.mode
    }

    /// Layers the platform runs on the ciphertext.
    pub fn split(&self) -> usize {
        self.split
    }

    /// What leaves the device and how the answer comes back, in words.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The preprocessing the creator stored (normalization, class names).
    pub fn preprocessing(&self) -> Result<Option<Preprocessing>, PlatformError> {
        match &self.inner {
            Inner::He(s) => s.preprocessing(),
            Inner::Mpc(s) => s.preprocessing(),
            Inner::Plain(s) => s.preprocessing(),
        }
    }

    /// The per-example input shape.
    pub fn input_shape(&self) -> Vec<usize> {
        match &self.inner {
            Inner::He(s) => s.spec().input_shape.clone(),
            Inner::Mpc(s) => s.split().spec.input_shape.clone(),
            Inner::Plain(s) => s.split().spec.input_shape.clone(),
        }
    }

    /// `(evaluation key bytes uploaded, ms making the keys)`.
    pub fn key_bytes(&self) -> (usize, f64) {
        match &self.inner {
            Inner::He(s) => (s.key_bytes, s.keygen_ms),
            Inner::Mpc(s) => (s.key_bytes, s.keygen_ms),
            Inner::Plain(s) => (s.key_bytes, s.keygen_ms),
        }
    }

    /// Classifies one input, already preprocessed and flattened.
    pub async fn classify(&self, x: &[f64]) -> Result<Answer, PlatformError> {
        match &self.inner {
            Inner::He(s) => s.classify(x).await,
            Inner::Mpc(s) => s.classify(x).await,
            Inner::Plain(s) => s.classify(x).await,
        }
    }

    /// Classifies raw inputs (rows, flattened as the model takes them):
    /// the creator's preprocessing applied, then one query each.
    pub async fn classify_raw(&self, raw: &Array2<f32>) -> Result<Vec<Answer>, PlatformError> {
        let shape = self.input_shape();
        let want: usize = shape.iter().product();
        if raw.ncols() != want {
            return Err(PlatformError::BadRequest(format!(
                "inputs of {} values; the model takes {want} ({shape:?})",
                raw.ncols()
            )));
        }
        let mut x = raw.clone();
        if let Some(p) = self.preprocessing()? {
            p.apply(&mut x, &shape)
                .map_err(|e| PlatformError::BadRequest(e.to_string()))?;
        }
        let mut out = Vec::with_capacity(x.nrows());
        for row in x.rows() {
            let v: Vec<f64> = row.iter().map(|&f| f64::from(f)).collect();
            out.push(self.classify(&v).await?);
        }
        Ok(out)
    }
}

impl Session {
    /// Ends the session (the platform's and the host's parties stop).
    pub async fn close(self) -> Result<(), PlatformError> {
        match self.inner {
            Inner::He(_) => Ok(()),
            Inner::Mpc(s) => s.close().await,
            Inner::Plain(s) => s.close().await,
        }
    }
}
