//! Coordinator counters, rendered in the Prometheus text format.

use std::fmt::Write;

/// Counters of the coordinator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Updates accepted.
    pub uploads: u64,
    /// Ciphertext bytes accepted.
    pub upload_bytes: u64,
    /// Decryption shares accepted.
    pub shares: u64,
    /// Rounds closed with a new model.
    pub rounds: u64,
    /// Messages refused (unenrolled, revoked, replayed, malformed, out of phase).
    pub refused: u64,
}

impl Metrics {
    /// Prometheus exposition text (version 0.0.4), with the current round
    /// and phase as gauges.
    pub fn render(&self, round: u64, finished: bool) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP cipherflow_fed_{name} {help}");
            let _ = writeln!(s, "# TYPE cipherflow_fed_{name} counter");
            let _ = writeln!(s, "cipherflow_fed_{name} {v}");
        };
        counter("uploads_total", "Encrypted updates accepted.", self.uploads);
        counter(
            "upload_bytes_total",
            "Ciphertext bytes accepted.",
            self.upload_bytes,
        );
        counter(
            "decryption_shares_total",
            "Decryption shares accepted.",
            self.shares,
        );
        counter(
            "rounds_closed_total",
            "Rounds closed with a new model.",
            self.rounds,
        );
        counter("refused_total", "Messages refused.", self.refused);
        let _ = writeln!(s, "# HELP cipherflow_fed_round Current round.");
        let _ = writeln!(s, "# TYPE cipherflow_fed_round gauge");
        let _ = writeln!(s, "cipherflow_fed_round {round}");
        let _ = writeln!(
            s,
            "# HELP cipherflow_fed_finished 1 when the federation has finished."
        );
        let _ = writeln!(s, "# TYPE cipherflow_fed_finished gauge");
        let _ = writeln!(s, "cipherflow_fed_finished {}", u8::from(finished));
        s
    }
}
