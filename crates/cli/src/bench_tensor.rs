//! `cipherflow bench tensor`: encrypted tensor benchmarks (work in progress).

/// Arguments of `cipherflow bench tensor`.
#[derive(clap::Args)]
pub struct TensorArgs {}

/// Runs `cipherflow bench tensor`.
pub fn run(_args: TensorArgs) -> Result<(), String> {
    Err("cipherflow bench tensor is not built yet".into())
}
