#![doc = include_str!("../README.md")]
//!
//! ## Modules, low to high
//!
//! * `error`: [`PlatformError`], each with its HTTP status;
//! * `repo`: [`Repository`] — content-addressed model files, metadata and
//!   usage in SQLite;
//! * `tls`: the local CA and server certificate, client and server TLS;
//! * `service`: [`Platform`] — the HTTPS API and [`serve`];
//! * `client`, `query`: [`PlatformClient`] and the user's
//!   [`QuerySession`];
//! * `leakage`: what a split's activations reveal, measured by a learned
//!   inversion attack ([`inversion_leakage`]: SSIM, PSNR, accuracy on the
//!   reconstructions);
//! * `split`: split inference in `mpc` mode — the encrypted head handed
//!   off as shares to a three-party tail ([`run_split_local`]);
//! * `channel`: raw channels (HTTPS upgraded) and the computation's
//!   transport over them ([`StreamTransport`]);
//! * `served_mpc`, `host`, `query_mpc`: `mpc` mode across processes — the
//!   platform's side, the creator's host ([`run_model_host`]) and the
//!   user's [`MpcQuerySession`];
//! * `federation`: [`federation_summary`] — a coordinator's audit ledger,
//!   checked and summarized per round for the dashboard;
//! * `web`: the pages (repository, model, upload, query, federation) and
//!   the browser client built from `crates/wasm`, embedded and served at
//!   `/` and `/ui/` ([`page_weights`]);
//! * `session`: a user's [`Session`] in any mode (what the CLI's `query`
//!   and the Python package open), `plain-tail` only once its measured
//!   leakage is accepted.

mod channel;
mod client;
mod error;
mod federation;
mod host;
mod leakage;
mod query;
mod query_mpc;
mod query_plain;
mod repo;
mod repo_leakage;
mod served_mpc;
mod served_plain;
mod service;
mod session;
mod split;
mod tls;
mod web;

pub use channel::{BoxStream, StreamTransport, Traffic, UPGRADE_PROTOCOL};
pub use client::{encode_query, PlatformClient, MAX_ANSWER_BYTES};
pub use error::PlatformError;
pub use federation::{federation_summary, FederationLog, MAX_DASHBOARD_ENTRIES};
pub use host::{run_model_host, tail_for, HostConfig, SessionEnd};
pub use leakage::{
    inversion_leakage, inversion_leakage_of_head, psnr, ssim, InversionData, InversionSettings,
    Leakage, LeakageExample,
};
pub use query::{Answer, QuerySession};
pub use query_mpc::MpcQuerySession;
pub use query_plain::PlainTailSession;
pub use repo::{
    check_name, default_input_bound, ModelInfo, ModelRecord, Repository, UploadMeta, Usage,
    MAX_INFO_LEN, MAX_NAME_LEN,
};
pub use repo_leakage::{example_image, ExampleImage, SplitLeakage, MAX_EXAMPLE_SIDE};
pub use served_mpc::{HostInfo, Notice, SplitInfo, HOST_CA_HEADER};
pub use service::{
    serve, Config, Platform, APPROXIMATION_DEGREE, CREATOR_TOKEN_HEADER, OUTPUT_PRECISION_BITS,
};
pub use session::{QueryMode, Session, SessionOptions};
pub use split::{
    compile_encrypted_head, compile_head, run_split_local, servable_splits, split_table,
    SplitReport, SplitRow, SPLIT_FRAC_BITS, SPLIT_STAT_BITS,
};
pub use tls::{
    client_config, fingerprint, host_client_config, server_config, HostIdentity, LocalTls,
    HOST_NAME, LOCAL_CERT_DAYS,
};
pub use web::{page_weights, CONTENT_SECURITY_POLICY};
