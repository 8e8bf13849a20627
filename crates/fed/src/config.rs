//! Federation configuration (TOML or JSON), validated before use.
//!
//! ```toml
//! name = "breast-cancer"
//! rounds = 20
//! clients_per_round = 10     # or: fraction = 0.5
//! quorum = 7                 # updates needed to aggregate
//! threshold = 6              # key holders needed to decrypt (threshold mode)
//! keys = "threshold"         # or "key-service"
//! key_holders = 9            # a committee (party ids 1..=9) holds the key
//!                            # (default: every client)
//! checked_decryption = true  # t + 1 holders whose shares check each other
//!                            # (default: preferred whenever n > t)
//! round_timeout_s = 30
//! decrypt_attempts = 5       # then a round whose key holders are silent is aborted
//! model = "logreg"           # preset, or an inline [model_spec]
//!
//! [strategy]
//! kind = "fedavg"            # fedavg | fedprox | fedadam | fedyogi
//!
//! [training]
//! epochs = 1
//! batch_size = 16
//! lr = 0.1
//!
//! [dp]                       # optional: client-level distributed DP
//! epsilon = 3.0
//! delta = 1e-5
//! clip = 1.0
//!
//! [dp.schedule]              # optional: dynamic privacy (crate::dp_schedule)
//! ratio = 0.5                # last phase's noise / first phase's
//! phases = 4
//! [dp.schedule.plateau]      # optional: re-plan when evaluation accuracy stalls
//! patience = 2
//! min_improvement = 0.005
//! keep_fraction = 0.5
//! ```

use crate::error::{FedError, Result};
use cipherflow_nn::spec::ModelSpec;
use serde::{Deserialize, Serialize};

/// How the aggregate is decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeysMode {
    /// t-of-n threshold keys held by the clients (default).
    Threshold,
    /// A separate key service holds the keys and decrypts closed rounds' aggregates.
    KeyService,
}

impl std::str::FromStr for KeysMode {
    type Err = FedError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "threshold" => Ok(KeysMode::Threshold),
            "key-service" => Ok(KeysMode::KeyService),
            _ => Err(FedError::Config(format!(
                "keys must be `threshold` or `key-service`, not `{s}`"
            ))),
        }
    }
}

/// Server optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// FedAvg (McMahan et al. 2017): `w += η·Δ̄`.
    FedAvg,
    /// FedProx (Li et al. 2020): FedAvg with a proximal term μ/2‖w − w_g‖² in the local objective.
    FedProx,
    /// FedAdam (Reddi et al. 2021).
    FedAdam,
    /// FedYogi (Reddi et al. 2021).
    FedYogi,
}

impl StrategyKind {
    /// The name in configuration files and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Self::FedAvg => "fedavg",
            Self::FedProx => "fedprox",
            Self::FedAdam => "fedadam",
            Self::FedYogi => "fedyogi",
        }
    }
}

/// Server optimizer settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategyConfig {
    /// The optimizer.
    pub kind: StrategyKind,
    /// Server learning rate η (FedAvg: 1 replaces the model by the average).
    pub server_lr: f64,
    /// FedProx μ.
    pub mu: f64,
    /// FedAdam/FedYogi β1.
    pub beta1: f64,
    /// FedAdam/FedYogi β2.
    pub beta2: f64,
    /// FedAdam/FedYogi adaptivity τ.
    pub tau: f64,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        Self {
            kind: StrategyKind::FedAvg,
            server_lr: 1.0,
            mu: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        }
    }
}

/// Local training on each client (sent to clients with every round).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalTraining {
    /// Local epochs per round.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
}

impl Default for LocalTraining {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 16,
            lr: 0.1,
            momentum: 0.0,
        }
    }
}

/// Integer noise of distributed DP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseKind {
    /// Exact discrete Gaussian shares (Canonne–Kamath–Steinke sampler).
    DiscreteGaussian,
    /// Skellam shares.
    Skellam,
}

/// Client-level distributed differential privacy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpConfig {
    /// Total ε of the federation after all rounds.
    pub epsilon: f64,
    /// δ.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// L2 clipping norm of each client's update.
    #[serde(default = "default_clip")]
    pub clip: f64,
    /// Integer noise kind.
    #[serde(default = "default_noise")]
    pub noise: NoiseKind,
    /// Per-client budget (ε of the rounds a client took part in, without
    /// sampling amplification); `None`: not enforced beyond the global one.
    #[serde(default)]
    pub client_epsilon: Option<f64>,
    /// A dynamic privacy schedule (`[dp.schedule]`); `None`: the same
    /// noise every round.
    #[serde(default)]
    pub schedule: Option<crate::dp_schedule::DpScheduleConfig>,
}

fn default_delta() -> f64 {
    1e-5
}
fn default_clip() -> f64 {
    1.0
}
fn default_noise() -> NoiseKind {
    NoiseKind::DiscreteGaussian
}

/// Sample-level DP: every client trains with DP-SGD (`cipherflow-nn`'s
/// `SecureSgd`: Poisson sampling at `sample_rate`, per-example clipping,
/// Gaussian noise), calibrated so that any patient's ε over all rounds
/// stays within `epsilon` (RDP accountant; clients' data sets are disjoint,
/// so the federation's ε is one client's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDpConfig {
    /// Total ε per client over all rounds.
    pub epsilon: f64,
    /// δ.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Per-example clipping norm.
    #[serde(default = "default_local_clip")]
    pub clip: f32,
    /// Poisson sampling rate of a local step (the same for every client,
    /// so every client takes `epochs/sample_rate` steps per round).
    #[serde(default = "default_sample_rate")]
    pub sample_rate: f64,
}

fn default_local_clip() -> f32 {
    1.0
}
fn default_sample_rate() -> f64 {
    0.05
}

/// Wire encoding of updates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationConfig {
    /// Without DP: each coordinate of `[−clip, clip]` maps to the integers
    /// `[−2^quant_bits, 2^quant_bits]` (step `clip/2^quant_bits`).
    pub quant_bits: u32,
    /// Without DP: every coordinate of an update is clipped to `[−clip,
    /// clip]` (the range the modulus is sized for).
    pub clip: f64,
    /// Statistical security λ of the decryption-share smudging (bits).
    pub stat_sec_bits: u32,
}

impl Default for AggregationConfig {
    fn default() -> Self {
        Self {
            quant_bits: 16,
            clip: 1.0,
            stat_sec_bits: cipherflow_ckks::multiparty::DEFAULT_STAT_SEC_BITS,
        }
    }
}

/// The model the federation trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelChoice {
    /// A preset name of `cipherflow_nn::spec::ModelSpec::preset`.
    Preset(String),
    /// An explicit architecture.
    Spec(ModelSpec),
}

/// A federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Federation name (also the name of its audit log).
    pub name: String,
    /// Rounds to run.
    pub rounds: u64,
    /// Clients sampled per round (default: all).
    #[serde(default)]
    pub clients_per_round: Option<usize>,
    /// Or a fraction of the clients per round.
    #[serde(default)]
    pub fraction: Option<f64>,
    /// Updates needed to aggregate (default ⌈0.6 × sampled⌉).
    #[serde(default)]
    pub quorum: Option<usize>,
    /// Key holders needed to decrypt (default ⌊h/2⌋ + 1 of the `h` key
    /// holders).
    #[serde(default)]
    pub threshold: Option<usize>,
    /// Threshold mode: a committee of key holders — the clients with party
    /// ids `1..=k` — instead of every client (the default). Every client
    /// still encrypts under its own key share and deals it, but only to the
    /// committee, so the key setup costs `n·k` sealed shares instead of
    /// `n²`, and `t`, the Shamir state and the decryption stay the
    /// committee's size however many clients join. The committee must
    /// hold an honest majority as the whole federation did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_holders: Option<usize>,
    /// Key mode.
    #[serde(default = "default_keys")]
    pub keys: KeysMode,
    /// Checked decryption (threshold mode): each round's sum is decrypted
    /// by `t + 1` key holders whose shares check each other, so that a
    /// key holder lying about its share is caught (or its lie changes
    /// nothing). Unset: checked whenever there are more than `t` clients,
    /// falling back to `t` holders after one attempt window without `t + 1`
    /// online; `true`: always checked (rounds wait for `t + 1`); `false`:
    /// never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_decryption: Option<bool>,
    /// Seconds a round waits for updates (and a decryption attempt for shares).
    #[serde(default = "default_timeout")]
    pub round_timeout_s: f64,
    /// Decryption attempts (threshold mode; each waits `2·round_timeout_s`
    /// for its `t` shares, and the whole phase at most that many times as
    /// long) before a round whose key holders do not answer is aborted.
    /// Its updates are discarded, and the round still counts against the
    /// privacy budgets (shares of its sum may have been released).
    #[serde(default = "default_decrypt_attempts")]
    pub decrypt_attempts: u32,
    /// The model.
    pub model: ModelChoice,
    /// Input shape and classes, for presets.
    #[serde(default)]
    pub input: Vec<usize>,
    /// Number of classes, for presets.
    #[serde(default)]
    pub classes: usize,
    /// Class names in class-index order. Every client numbers the labels
    /// its own file names (a CSV column of names, ImageFolder's folders) by
    /// this list, so a hospital that lacks a class still numbers the
    /// others as everyone does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// Seed of the initial model (public).
    #[serde(default)]
    pub model_seed: u64,
    /// Server optimizer.
    #[serde(default)]
    pub strategy: StrategyConfig,
    /// Local training.
    #[serde(default)]
    pub training: LocalTraining,
    /// Client-level distributed DP (none: no DP).
    #[serde(default)]
    pub dp: Option<DpConfig>,
    /// Sample-level DP (local DP-SGD); exclusive with `dp`.
    #[serde(default)]
    pub local_dp: Option<LocalDpConfig>,
    /// Wire encoding.
    #[serde(default)]
    pub aggregation: AggregationConfig,
    /// Keep every round's uploaded ciphertexts in the state database
    /// (for audits); otherwise they are deleted when the round closes.
    #[serde(default)]
    pub keep_uploads: bool,
    /// Largest L2 norm of a global model a client accepts to train on
    /// (a coordinator sending absurd weights, e.g. 1e12, to make a
    /// client's update vanish or explode is refused before training).
    #[serde(default = "default_max_model_norm")]
    pub max_model_norm: f64,
}

fn default_max_model_norm() -> f64 {
    1e4
}

fn default_keys() -> KeysMode {
    KeysMode::Threshold
}
fn default_timeout() -> f64 {
    30.0
}

fn default_decrypt_attempts() -> u32 {
    5
}

/// The built-in federations of the shipped example data sets (what
/// `cipherflow fl simulate --data …` and `cipherflow demo` run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FederationPreset {
    /// UCI breast cancer: logistic regression, 20 rounds.
    BreastCancer,
    /// 8×8 digits: the small CNN, 20 rounds.
    Digits,
    /// MNIST: the small CNN, 10 rounds.
    Mnist,
}

impl FederationConfig {
    /// A federation of `model` with every other setting at its default
    /// (threshold keys, all clients each round, FedAvg, no DP), validated.
    pub fn new(
        name: &str,
        rounds: u64,
        model: ModelChoice,
        input: Vec<usize>,
        classes: usize,
        training: LocalTraining,
    ) -> Result<Self> {
        let cfg = Self {
            name: name.to_string(),
            rounds,
            clients_per_round: None,
            fraction: None,
            quorum: None,
            threshold: None,
            key_holders: None,
            checked_decryption: None,
            keys: default_keys(),
            round_timeout_s: default_timeout(),
            decrypt_attempts: default_decrypt_attempts(),
            model,
            input,
            classes,
            class_names: None,
            model_seed: 0,
            strategy: StrategyConfig::default(),
            training,
            dp: None,
            local_dp: None,
            aggregation: AggregationConfig::default(),
            keep_uploads: false,
            max_model_norm: default_max_model_norm(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The built-in federation `preset` for data of shape `input` with
    /// `classes` classes.
    pub fn preset(preset: FederationPreset, input: &[usize], classes: usize) -> Result<Self> {
        let (name, model, rounds, epochs, batch_size, lr, timeout) = match preset {
            FederationPreset::Mnist => ("mnist", "cnn", 10, 1, 32, 0.05, 120.0),
            FederationPreset::Digits => ("digits", "cnn", 20, 2, 16, 0.05, 60.0),
            FederationPreset::BreastCancer => ("breast-cancer", "logreg", 20, 2, 16, 0.1, 30.0),
        };
        let training = LocalTraining {
            epochs,
            batch_size,
            lr,
            momentum: 0.0,
        };
        let mut cfg = Self::new(
            name,
            rounds,
            ModelChoice::Preset(model.into()),
            input.to_vec(),
            classes,
            training,
        )?;
        cfg.round_timeout_s = timeout;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Client-level distributed DP at `epsilon` (δ = 1e-5) with `noise`
    /// shares, replacing any sample-level DP; keeps a configured clip and
    /// schedule.
    pub fn set_client_dp(&mut self, epsilon: f64, noise: NoiseKind) {
        self.local_dp = None;
        self.dp = Some(DpConfig {
            epsilon,
            delta: 1e-5,
            clip: self.dp.as_ref().map_or(1.0, |d| d.clip),
            noise,
            client_epsilon: None,
            schedule: self.dp.as_ref().and_then(|d| d.schedule.clone()),
        });
    }

    /// Sample-level DP (DP-SGD on every client) at `epsilon` (δ = 1e-5),
    /// replacing any client-level DP; keeps a configured clip and rate.
    pub fn set_sample_dp(&mut self, epsilon: f64) {
        self.dp = None;
        self.local_dp = Some(LocalDpConfig {
            epsilon,
            delta: 1e-5,
            clip: self.local_dp.as_ref().map_or(1.0, |d| d.clip),
            sample_rate: self.local_dp.as_ref().map_or(0.05, |d| d.sample_rate),
        });
    }

    /// Parses TOML (or JSON when the text starts with `{`) and validates.
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: Self = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| FedError::Config(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| FedError::Config(e.to_string()))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = crate::store::read_text_limited(path, 1 << 20)?;
        Self::parse(&text)
    }

    /// JSON (as sent to clients).
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// SHA-256 over a domain tag and the configuration's serde encoding
    /// (every field, in declaration order): what the coordinator sends a
    /// joining client and logs in its federation record, so that a client
    /// refuses a coordinator that runs another configuration than its own.
    pub fn digest(&self) -> Result<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"cipherflow-fed/v1/federation-config\0");
        h.update(self.to_json()?.as_bytes());
        Ok(h.finalize().into())
    }

    /// Checks ranges (federation size dependent checks are in [`Self::sizes`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(FedError::Config(m));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad("name must be 1–64 characters of [A-Za-z0-9-_.]".into());
        }
        if self.rounds == 0 || self.rounds > 1_000_000 {
            return bad("rounds must be in 1..=1e6".into());
        }
        if let Some(f) = self.fraction {
            if !(f > 0.0 && f <= 1.0) {
                return bad("fraction must be in (0, 1]".into());
            }
            if self.clients_per_round.is_some() {
                return bad("give clients_per_round or fraction, not both".into());
            }
        }
        if !(self.round_timeout_s.is_finite() && self.round_timeout_s > 0.0) {
            return bad("round_timeout_s must be positive".into());
        }
        if !(self.max_model_norm.is_finite() && self.max_model_norm > 0.0) {
            return bad("max_model_norm must be positive and finite".into());
        }
        if !(1..=1000).contains(&self.decrypt_attempts) {
            return bad("decrypt_attempts must be in 1..=1000".into());
        }
        let t = &self.training;
        if t.epochs == 0 || t.epochs > 1000 || t.batch_size == 0 {
            return bad("training epochs must be in 1..=1000 and batch_size ≥ 1".into());
        }
        if !(t.lr.is_finite() && t.lr > 0.0 && (0.0..1.0).contains(&t.momentum)) {
            return bad("training lr must be positive and momentum in [0, 1)".into());
        }
        let s = &self.strategy;
        let finite = [s.server_lr, s.mu, s.beta1, s.beta2, s.tau];
        if finite.iter().any(|x| !x.is_finite()) || s.server_lr <= 0.0 || s.tau <= 0.0 {
            return bad("strategy parameters must be finite, server_lr and tau positive".into());
        }
        if !(0.0..1.0).contains(&s.beta1) || !(0.0..1.0).contains(&s.beta2) || s.mu < 0.0 {
            return bad("beta1, beta2 must be in [0, 1) and mu ≥ 0".into());
        }
        if let Some(dp) = &self.dp {
            if !(dp.epsilon.is_finite() && dp.epsilon > 0.0 && dp.epsilon <= 100.0) {
                return bad("dp.epsilon must be in (0, 100]".into());
            }
            if !(dp.delta > 0.0 && dp.delta < 1.0) {
                return bad("dp.delta must be in (0, 1)".into());
            }
            if !(dp.clip.is_finite() && dp.clip > 0.0) {
                return bad("dp.clip must be positive".into());
            }
            if let Some(c) = dp.client_epsilon {
                if !(c.is_finite() && c > 0.0) {
                    return bad("dp.client_epsilon must be positive".into());
                }
            }
            if let Some(sc) = &dp.schedule {
                sc.validate()?;
            }
        }
        if let Some(l) = &self.local_dp {
            if self.dp.is_some() {
                return bad("choose client-level `dp` or sample-level `local_dp`, not both".into());
            }
            if !(l.epsilon.is_finite() && l.epsilon > 0.0 && l.epsilon <= 100.0) {
                return bad("local_dp.epsilon must be in (0, 100]".into());
            }
            if !(l.delta > 0.0 && l.delta < 1.0 && l.clip.is_finite() && l.clip > 0.0) {
                return bad("local_dp.delta must be in (0, 1) and clip positive".into());
            }
            if !(l.sample_rate > 0.0 && l.sample_rate <= 1.0) {
                return bad("local_dp.sample_rate must be in (0, 1]".into());
            }
        }
        let a = &self.aggregation;
        if !(4..=30).contains(&a.quant_bits) {
            return bad("aggregation.quant_bits must be in 4..=30".into());
        }
        if !(a.clip.is_finite() && a.clip > 0.0) {
            return bad("aggregation.clip must be positive".into());
        }
        if !(20..=80).contains(&a.stat_sec_bits) {
            return bad("aggregation.stat_sec_bits must be in 20..=80".into());
        }
        if let ModelChoice::Preset(_) = &self.model {
            if self.input.is_empty() || self.classes < 2 {
                return bad("a model preset needs `input` and `classes` (≥ 2)".into());
            }
        }
        if let Some(names) = &self.class_names {
            let mut sorted: Vec<&String> = names.iter().collect();
            sorted.sort();
            sorted.dedup();
            if names.len() < 2
                || names.len() > 100_000
                || sorted.len() != names.len()
                || names.iter().any(|n| n.is_empty() || n.len() > 256)
            {
                return bad(
                    "class_names must be 2 to 100,000 distinct, non-empty names of at most 256 \
                     bytes"
                        .into(),
                );
            }
            if matches!(self.model, ModelChoice::Preset(_)) && names.len() != self.classes {
                return bad(format!(
                    "{} class names for {} classes",
                    names.len(),
                    self.classes
                ));
            }
        }
        Ok(())
    }

    /// The model architecture.
    pub fn model_spec(&self) -> Result<ModelSpec> {
        match &self.model {
            ModelChoice::Spec(s) => Ok(s.clone()),
            ModelChoice::Preset(name) => Ok(ModelSpec::preset(
                name,
                &self.input,
                self.classes,
                self.dp.is_some() || self.local_dp.is_some(),
            )?),
        }
    }

    /// Per-round sizes for a federation of `clients` key holders.
    pub fn sizes(&self, clients: usize) -> Result<Sizes> {
        if clients == 0 || clients > 4096 {
            return Err(FedError::Config(format!(
                "{clients} clients: a federation needs 1..=4096 clients"
            )));
        }
        let sampled = match (self.clients_per_round, self.fraction) {
            (Some(k), _) => k,
            (None, Some(f)) => ((clients as f64 * f).ceil() as usize).max(1),
            (None, None) => clients,
        };
        if sampled == 0 || sampled > clients {
            return Err(FedError::Config(format!(
                "clients_per_round {sampled} must be in 1..={clients}"
            )));
        }
        let quorum = self
            .quorum
            .unwrap_or_else(|| ((sampled as f64 * 0.6).ceil() as usize).max(1));
        if quorum == 0 || quorum > sampled {
            return Err(FedError::Config(format!(
                "quorum {quorum} must be in 1..={sampled} (the clients sampled per round)"
            )));
        }
        let holders = match (self.keys, self.key_holders) {
            (KeysMode::KeyService, Some(_)) => {
                return Err(FedError::Config(
                    "key_holders is a threshold-mode setting: a key service holds the key".into(),
                ))
            }
            (KeysMode::KeyService, None) => 1,
            (KeysMode::Threshold, k) => k.unwrap_or(clients),
        };
        if holders == 0 || holders > clients || (self.key_holders.is_some() && holders < 2) {
            return Err(FedError::Config(format!(
                "key_holders {holders} must be in 2..={clients} (the clients with party ids \
                 1..=k hold the key)"
            )));
        }
        let threshold = match self.keys {
            KeysMode::Threshold => self.threshold.unwrap_or(holders / 2 + 1),
            KeysMode::KeyService => 1,
        };
        if threshold == 0 || threshold > holders {
            return Err(FedError::Config(format!(
                "threshold {threshold} must be in 1..={holders} (the key holders)"
            )));
        }
        if self.keys == KeysMode::Threshold && threshold < 2 {
            return Err(FedError::Config(format!(
                "threshold {threshold}: in threshold mode every key holder would hold the whole \
                 key; use t ≥ 2 (and at least 2 clients), or keys = \"key-service\""
            )));
        }
        if self.keys == KeysMode::Threshold && quorum < 2 && clients > 1 {
            return Err(FedError::Config(
                "a quorum of 1 would let the key holders decrypt a single client's update".into(),
            ));
        }
        if self.keys == KeysMode::Threshold && 2 * threshold <= holders {
            tracing::warn!(
                threshold,
                holders,
                "threshold ≤ h/2: two disjoint groups of key holders could each decrypt"
            );
        }
        let checked = self.keys == KeysMode::Threshold
            && self.checked_decryption.unwrap_or(holders > threshold);
        if checked && holders <= threshold {
            return Err(FedError::Config(format!(
                "checked_decryption needs t + 1 = {} key holders, but there are {holders}",
                threshold + 1
            )));
        }
        Ok(Sizes {
            clients,
            holders,
            sampled,
            quorum,
            threshold,
            checked,
        })
    }
}

/// Federation sizes derived from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// Enrolled clients.
    pub clients: usize,
    /// Key holders: the clients with party ids `1..=holders` (threshold
    /// mode; every client unless `key_holders` names a committee; 1 with a
    /// key service).
    pub holders: usize,
    /// Clients sampled per round.
    pub sampled: usize,
    /// Updates needed to aggregate (the smallest contributor set).
    pub quorum: usize,
    /// Decryption shares needed (1 in key-service mode).
    pub threshold: usize,
    /// Whether each decryption takes `t + 1` key holders whose shares
    /// check each other (`checked_decryption`).
    #[serde(default)]
    pub checked: bool,
}

impl Sizes {
    /// The key holders' party ids, `1..=holders` (threshold mode).
    pub fn holder_ids(&self) -> Vec<u64> {
        (1..=self.holders as u64).collect()
    }

    /// Whether `party` holds a share of the threshold key.
    pub fn is_holder(&self, party: u64) -> bool {
        party >= 1 && party <= self.holders as u64
    }

    /// Key holders asked per decryption attempt: `t`, or `t + 1` when
    /// checked (1 in key-service mode).
    pub fn decryptors(&self) -> usize {
        self.threshold + usize::from(self.checked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn presets_equal_their_configuration_files() {
        for (preset, text, input, classes) in [
            (
                FederationPreset::BreastCancer,
                "name = \"breast-cancer\"\nrounds = 20\nmodel = \"logreg\"\nround_timeout_s = 30.0\n\
                 input = [30]\nclasses = 2\n[training]\nepochs = 2\nbatch_size = 16\nlr = 0.1\n",
                vec![30],
                2,
            ),
            (
                FederationPreset::Digits,
                "name = \"digits\"\nrounds = 20\nmodel = \"cnn\"\nround_timeout_s = 60.0\n\
                 input = [1, 8, 8]\nclasses = 10\n[training]\nepochs = 2\nbatch_size = 16\nlr = 0.05\n",
                vec![1, 8, 8],
                10,
            ),
            (
                FederationPreset::Mnist,
                "name = \"mnist\"\nrounds = 10\nmodel = \"cnn\"\nround_timeout_s = 120.0\n\
                 input = [1, 28, 28]\nclasses = 10\n[training]\nepochs = 1\nbatch_size = 32\nlr = 0.05\n",
                vec![1, 28, 28],
                10,
            ),
        ] {
            let built = FederationConfig::preset(preset, &input, classes).unwrap();
            assert_eq!(built, FederationConfig::parse(text).unwrap(), "{preset:?}");
        }
    }

    #[test]
    fn class_names_are_checked() {
        let mut cfg = FederationConfig::preset(FederationPreset::BreastCancer, &[30], 2).unwrap();
        let names = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        cfg.class_names = names(&["benign", "malignant"]);
        assert!(cfg.validate().is_ok());
        for bad in [
            names(&["benign"]),
            names(&["benign", "benign"]),
            names(&["benign", ""]),
            names(&["a", "b", "c"]),
        ] {
            cfg.class_names = bad;
            assert!(cfg.validate().is_err(), "{:?}", cfg.class_names);
        }
        // Absent, it is not written (configurations hash as before).
        cfg.class_names = None;
        assert!(!toml::to_string(&cfg).unwrap().contains("class_names"));
    }

    #[test]
    fn dp_levels_replace_each_other_and_keep_the_clip() {
        let mut cfg = FederationConfig::preset(FederationPreset::BreastCancer, &[30], 2).unwrap();
        cfg.set_sample_dp(2.0);
        cfg.local_dp.as_mut().unwrap().clip = 0.5;
        cfg.set_sample_dp(3.0);
        let l = cfg.local_dp.as_ref().unwrap();
        assert_eq!((l.epsilon, l.clip, l.sample_rate), (3.0, 0.5, 0.05));
        cfg.set_client_dp(4.0, NoiseKind::Skellam);
        assert!(cfg.local_dp.is_none());
        let d = cfg.dp.as_ref().unwrap();
        assert_eq!(
            (d.epsilon, d.delta, d.noise),
            (4.0, 1e-5, NoiseKind::Skellam)
        );
        cfg.validate().unwrap();
        cfg.set_sample_dp(1.0);
        assert!(cfg.dp.is_none() && cfg.local_dp.is_some());
        // The builder validates what it builds.
        let e = FederationConfig::new(
            "",
            1,
            ModelChoice::Preset("logreg".into()),
            vec![30],
            2,
            LocalTraining::default(),
        )
        .unwrap_err();
        assert!(matches!(e, FedError::Config(_)), "{e}");
    }
}
