//! `cipherflow mpc`: three-party secret-shared computation (work in progress).

/// `cipherflow mpc` subcommands.
#[derive(clap::Subcommand)]
pub enum MpcCommand {}

/// Runs a `cipherflow mpc` subcommand.
pub fn run(what: MpcCommand) -> Result<(), String> {
    match what {}
}
