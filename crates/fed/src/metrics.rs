//! Coordinator counters, rendered in the Prometheus text format: totals,
//! and per roster client (rounds joined and missed, refusals, bytes,
//! decryption shares, upload latency). Per-client labels exist only for the
//! roster's clients, so their number is bounded by the roster.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// One roster client's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientCounters {
    /// Rounds in which its update was accepted.
    pub joined: u64,
    /// Rounds it was sampled for that ended without its update.
    pub missed: u64,
    /// Its messages the coordinator refused.
    pub refused: u64,
    /// Its ciphertext bytes accepted.
    pub upload_bytes: u64,
    /// Its decryption shares accepted.
    pub shares: u64,
    /// Sum of the seconds from a round's opening to its accepted update.
    pub upload_latency_sum: f64,
    /// Updates whose latency is in the sum.
    pub upload_latency_count: u64,
}

/// Counters of the coordinator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Updates accepted.
    pub uploads: u64,
    /// Group commits that made accepted updates durable (`uploads /
    /// upload_commits` uploads share one fsync on average).
    pub upload_commits: u64,
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
    /// Per roster client.
    pub clients: BTreeMap<String, ClientCounters>,
    /// Privacy (client-level DP): the total budget, ε spent by the rounds
    /// closed so far, and the current round's noise multiplier.
    pub privacy: Option<PrivacyGauges>,
}

/// The privacy gauges: what a dashboard plots against the budget.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PrivacyGauges {
    /// The federation's total ε.
    pub epsilon_budget: f64,
    /// ε after the rounds closed or aborted so far.
    pub epsilon_spent: f64,
    /// The noise multiplier of the round opened last.
    pub noise_multiplier: f64,
}

/// A Prometheus label value, escaped (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
    /// Revoked roster clients' refused calls, by client id (bounded by the
    /// roster).
    revoked_by: std::sync::Mutex<BTreeMap<String, u64>>,
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

    /// Counts a call from the revoked roster client `client`.
    pub fn count_revoked(&self, client: &str) {
        self.revoked.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.revoked_by.lock() {
            *m.entry(client.to_string()).or_default() += 1;
        }
    }

    /// Adds the per-client transport refusals to `clients`' counters.
    pub fn add_per_client(&self, clients: &mut BTreeMap<String, ClientCounters>) {
        if let Ok(m) = self.revoked_by.lock() {
            for (id, n) in m.iter() {
                clients.entry(id.clone()).or_default().refused += n;
            }
        }
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
    /// Records ε after a closed or aborted round (client-level DP only).
    pub fn set_epsilon_spent(&mut self, epsilon: Option<f64>) {
        if let (Some(g), Some(e)) = (&mut self.privacy, epsilon) {
            g.epsilon_spent = e;
        }
    }

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
            "upload_commits_total",
            "Group commits of accepted updates (one fsync of payloads, state and ledger each).",
            self.upload_commits,
        );
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
        if let Some(p) = self.privacy {
            for (name, help, v) in [
                (
                    "dp_epsilon_budget",
                    "The federation's total ε.",
                    p.epsilon_budget,
                ),
                (
                    "dp_epsilon_spent",
                    "ε after the rounds closed so far.",
                    p.epsilon_spent,
                ),
                (
                    "dp_noise_multiplier",
                    "Noise multiplier of the round opened last (a privacy schedule changes it).",
                    p.noise_multiplier,
                ),
            ] {
                let _ = writeln!(s, "# HELP cipherflow_fed_{name} {help}");
                let _ = writeln!(s, "# TYPE cipherflow_fed_{name} gauge");
                let _ = writeln!(s, "cipherflow_fed_{name} {v}");
            }
        }
        self.render_clients(&mut s);
        s
    }

    fn render_clients(&self, s: &mut String) {
        type Get = fn(&ClientCounters) -> String;
        let families: [(&str, &str, &str, Get); 7] = [
            (
                "client_rounds_joined_total",
                "counter",
                "Rounds in which the client's update was accepted.",
                |c| c.joined.to_string(),
            ),
            (
                "client_rounds_missed_total",
                "counter",
                "Rounds the client was sampled for that ended without its update.",
                |c| c.missed.to_string(),
            ),
            (
                "client_refused_total",
                "counter",
                "The client's messages the coordinator refused.",
                |c| c.refused.to_string(),
            ),
            (
                "client_upload_bytes_total",
                "counter",
                "The client's ciphertext bytes accepted.",
                |c| c.upload_bytes.to_string(),
            ),
            (
                "client_decryption_shares_total",
                "counter",
                "The client's decryption shares accepted.",
                |c| c.shares.to_string(),
            ),
            (
                "client_upload_latency_seconds_sum",
                "counter",
                "Seconds from a round's opening to the client's accepted update, summed.",
                |c| format!("{}", c.upload_latency_sum),
            ),
            (
                "client_upload_latency_seconds_count",
                "counter",
                "Updates in the latency sum.",
                |c| c.upload_latency_count.to_string(),
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(s, "# HELP cipherflow_fed_{name} {help}");
            let _ = writeln!(s, "# TYPE cipherflow_fed_{name} {kind}");
            for (id, c) in &self.clients {
                let _ = writeln!(
                    s,
                    "cipherflow_fed_{name}{{client=\"{}\"}} {}",
                    label(id),
                    get(c)
                );
            }
        }
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

    #[test]
    fn per_client_families_escape_their_labels() {
        let mut m = Metrics::default();
        m.clients.insert(
            "client-1".into(),
            ClientCounters {
                joined: 3,
                missed: 1,
                upload_latency_sum: 1.5,
                upload_latency_count: 3,
                ..Default::default()
            },
        );
        m.clients
            .insert("odd\"id\\x\n".into(), ClientCounters::default());
        m.privacy = Some(PrivacyGauges {
            epsilon_budget: 3.0,
            epsilon_spent: 1.25,
            noise_multiplier: 0.75,
        });
        let text = m.render(2, false);
        assert!(
            text.contains("cipherflow_fed_dp_epsilon_spent 1.25\n"),
            "{text}"
        );
        assert!(text.contains("cipherflow_fed_dp_noise_multiplier 0.75\n"));
        assert!(text.contains("# TYPE cipherflow_fed_dp_epsilon_budget gauge\n"));
        assert!(
            text.contains("cipherflow_fed_client_rounds_joined_total{client=\"client-1\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("cipherflow_fed_client_rounds_missed_total{client=\"client-1\"} 1\n"));
        assert!(text.contains(
            "cipherflow_fed_client_upload_latency_seconds_sum{client=\"client-1\"} 1.5\n"
        ));
        assert!(
            text.contains("{client=\"odd\\\"id\\\\x\\n\"} 0\n"),
            "{text}"
        );
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.rsplit(' ').count(), 2, "{line}");
        }
    }
}
