//! `cipherflow fl` and `cipherflow key-service`: federated learning (work in progress).

/// `cipherflow fl` subcommands.
#[derive(clap::Subcommand)]
pub enum FlCommand {}

/// Arguments of `cipherflow key-service`.
#[derive(clap::Args)]
pub struct KeyServiceArgs {}

/// Runs a `cipherflow fl` subcommand.
pub fn run(what: FlCommand) -> Result<(), String> {
    match what {}
}

/// Runs `cipherflow key-service`.
pub fn run_key_service(_args: KeyServiceArgs) -> Result<(), String> {
    Err("cipherflow key-service is not built yet".into())
}
