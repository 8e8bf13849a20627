//! Coordinator counters, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Messages the coordinator refused (replayed, malformed, out of phase,
    /// unenrolled or revoked at the protocol level).
    pub refused: u64,
    /// Refusals by the transport, before a message reaches the coordinator.
    pub transport: TransportCounts,
}

/// Refusals by the transport (a snapshot of [`TransportRefusals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportCounts {
    /// TLS handshakes refused (a certificate from another CA, a server
    /// certificate used as a client's, none presented, a timeout).
    pub handshake: u64,
    /// Calls with a certificate of the CA that is not in the roster.
    pub unenrolled: u64,
    /// Calls from revoked clients.
    pub revoked: u64,
}

/// Live counters of transport refusals, shared by a server's tasks.
#[derive(Debug, Default)]
pub struct TransportRefusals {
    handshake: AtomicU64,
    unenrolled: AtomicU64,
    revoked: AtomicU64,
}

impl TransportRefusals {
    /// Counts a refused TLS handshake.
    pub fn count_handshake(&self) {
        self.handshake.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call from an unenrolled certificate.
    pub fn count_unenrolled(&self) {
        self.unenrolled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call from a revoked client.
    pub fn count_revoked(&self) {
        self.revoked.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> TransportCounts {
        TransportCounts {
            handshake: self.handshake.load(Ordering::Relaxed),
            unenrolled: self.unenrolled.load(Ordering::Relaxed),
            revoked: self.revoked.load(Ordering::Relaxed),
        }
    }
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
        let t = self.transport;
        counter(
            "refused_total",
            "Connections and messages refused, all reasons.",
            self.refused + t.handshake + t.unenrolled + t.revoked,
        );
        let _ = writeln!(
            s,
            "# HELP cipherflow_fed_refusals_total Connections and messages refused, by reason."
        );
        let _ = writeln!(s, "# TYPE cipherflow_fed_refusals_total counter");
        for (reason, v) in [
            ("tls_handshake", t.handshake),
            ("unenrolled", t.unenrolled),
            ("revoked", t.revoked),
            ("message", self.refused),
        ] {
            let _ = writeln!(
                s,
                "cipherflow_fed_refusals_total{{reason=\"{reason}\"}} {v}"
            );
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refused_total_sums_every_reason() {
        let live = TransportRefusals::default();
        live.count_handshake();
        live.count_handshake();
        live.count_unenrolled();
        let m = Metrics {
            refused: 3,
            transport: live.snapshot(),
            ..Metrics::default()
        };
        let text = m.render(1, false);
        assert!(text.contains("cipherflow_fed_refused_total 6\n"), "{text}");
        assert!(text.contains("cipherflow_fed_refusals_total{reason=\"tls_handshake\"} 2\n"));
        assert!(text.contains("cipherflow_fed_refusals_total{reason=\"message\"} 3\n"));
    }
}
