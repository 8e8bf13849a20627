//! Synthetic audit logs: the entries of a federation without running one.

use crate::error::{FedError, Result};
use cipherflow_ledger::LogSigner;

/// Writes a synthetic audit log of `rounds` rounds with `clients` clients
/// each — the entries a federation with DP-SGD clients logs (round opened
/// with its DP settings, one update per client, the aggregate, a
/// decryption share, round closed with the ε that `FedEpsilon` recomputes)
/// over made-up hashes — signed by `signer`. For exercising the verifier
/// and the proofs at scale without running a federation. Returns the
/// number of entries.
pub fn synthetic_audit_log(
    path: &std::path::Path,
    signer: LogSigner,
    rounds: u64,
    clients: usize,
) -> Result<u64> {
    use cipherflow_ledger::entry::{
        ClientEpsilon, DecryptionShareReceived, DpSettings, EntryBody, RoundClosed, RoundOpened,
        UpdateReceived,
    };
    use cipherflow_ledger::{merkle, AggregateInput, EpsilonRecompute, Hash, Ledger, NewEntry};
    if rounds == 0 || rounds > 1000 || clients == 0 || clients > 100_000 {
        return Err(FedError::Config(
            "a synthetic log has 1..=1000 rounds and 1..=100000 clients".into(),
        ));
    }
    let made_up = |parts: &[&[u8]]| -> Hash { merkle::leaf_hash(&parts.concat()) };
    let mut log = Ledger::create(path, "cipherflow-demo", signer)?;
    let steps = 50u64;
    let recompute = crate::dp_plan::FedEpsilon::default();
    let ids: Vec<String> = (0..clients).map(|c| format!("client-{c}")).collect();
    for r in 1..=rounds {
        let rb = r.to_be_bytes();
        let dp = DpSettings {
            accountant: cipherflow_ledger::entry::DpAccounting::Rdp,
            sampling_rate: 0.01,
            noise_multiplier: 1.1,
            delta: 1e-5,
            steps_this_round: steps,
            steps_cumulative: steps * r,
        };
        let parameters = [
            ("ckks_preset".to_string(), "aggregation".into()),
            ("model".to_string(), "logistic-regression".into()),
        ]
        .into_iter()
        .collect();
        log.append(
            r,
            EntryBody::RoundOpened(RoundOpened {
                parameters,
                participants: ids
                    .iter()
                    .map(|c| made_up(&[b"pk", c.as_bytes()]))
                    .collect(),
                dp: dp.clone(),
            }),
        )?;
        let ct = |c: &String| made_up(&[b"ct", &rb, c.as_bytes()]);
        let updates: Vec<NewEntry> = ids
            .iter()
            .map(|c| {
                NewEntry::new(
                    r,
                    EntryBody::UpdateReceived(UpdateReceived {
                        client_id: c.clone(),
                        ciphertext_hash: ct(c),
                    }),
                )
            })
            .collect();
        let appended = log.append_batch(updates)?;
        let inputs: Vec<AggregateInput> = ids
            .iter()
            .zip(&appended)
            .map(|(c, a)| AggregateInput {
                update_index: a.index,
                client_id: c.clone(),
                ciphertext_hash: ct(c),
            })
            .collect();
        log.append_aggregate(r, made_up(&[b"sum", &rb]), inputs)?;
        log.append(
            r,
            EntryBody::DecryptionShareReceived(DecryptionShareReceived {
                party_id: "keyholder-0".into(),
                share_hash: made_up(&[b"share", &rb]),
            }),
        )?;
        let eps = recompute
            .epsilon(&dp, dp.steps_cumulative)
            .map_err(FedError::Config)?;
        log.append(
            r,
            EntryBody::RoundClosed(RoundClosed {
                model_hash: made_up(&[b"model", &rb]),
                epsilon_global: eps,
                clients: ids
                    .iter()
                    .map(|c| ClientEpsilon {
                        client_id: c.clone(),
                        steps: dp.steps_cumulative,
                        epsilon: eps,
                    })
                    .collect(),
            }),
        )?;
    }
    Ok(log.len())
}
