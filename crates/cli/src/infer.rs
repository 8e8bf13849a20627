//! `cipherflow infer`: encrypted inference (work in progress).

/// Arguments of `cipherflow infer`.
#[derive(clap::Args)]
pub struct InferArgs {}

/// Runs `cipherflow infer`.
pub fn run(_args: InferArgs) -> Result<(), String> {
    Err("cipherflow infer is not built yet".into())
}
