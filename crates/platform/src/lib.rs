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
//!   off as shares to a three-party tail ([`run_split_local`]).

mod client;
mod error;
mod leakage;
mod query;
mod repo;
mod service;
mod split;
mod tls;

pub use client::{encode_query, PlatformClient, MAX_ANSWER_BYTES};
pub use error::PlatformError;
pub use leakage::{inversion_leakage, psnr, ssim, InversionData, InversionSettings, Leakage};
pub use query::{Answer, QuerySession};
pub use repo::{
    check_name, default_input_bound, ModelRecord, Repository, UploadMeta, Usage, MAX_NAME_LEN,
};
pub use service::{
    serve, Config, Platform, APPROXIMATION_DEGREE, CREATOR_TOKEN_HEADER, OUTPUT_PRECISION_BITS,
};
pub use split::{
    compile_head, run_split_local, split_table, SplitReport, SplitRow, SPLIT_FRAC_BITS,
    SPLIT_STAT_BITS,
};
pub use tls::{client_config, server_config, LocalTls, LOCAL_CERT_DAYS};
