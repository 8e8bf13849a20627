//! Plaintext baselines, to measure what encryption costs: the same
//! federation with updates averaged in the clear. Updates still cross the
//! transport encoding (a protobuf round trip each), are stored durably in
//! groups of [`UPLOAD_BATCH`] (segment file, state rows, ledger entries,
//! as the coordinator stores ciphertexts) and logged; only the
//! quantization, encryption, decryption and the ciphertext sums are gone.

use crate::config::{FederationConfig, StrategyKind};
use crate::error::{FedError, Result};
use crate::messages::UploadChunk;
use crate::sim::UPLOAD_BATCH;
use crate::store::{self, Store};
use crate::training;
use crate::transport::inproc::roundtrip;
use cipherflow_ledger::entry::{DpSettings, EntryBody, RoundOpened, UpdateReceived};
use cipherflow_ledger::{Ledger, LogSigner, NewEntry};
use cipherflow_nn::data::Dataset;
use rand_core::SeedableRng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The plaintext server: durable state and audit log, no keys.
struct PlainServer {
    store: Store,
    ledger: Ledger,
}

impl PlainServer {
    fn open(dir: &Path) -> Result<Self> {
        Ok(Self {
            store: Store::open(&dir.join("plain.db").into(), dir)?,
            ledger: Ledger::create(
                &dir.join("plain-ledger.db"),
                "plain",
                LogSigner::generate()?,
            )?,
        })
    }

    fn open_round(&mut self, round: u64) -> Result<()> {
        self.ledger.append(
            round,
            EntryBody::RoundOpened(RoundOpened {
                parameters: Default::default(),
                participants: Vec::new(),
                dp: DpSettings::no_dp(1.0, round),
            }),
        )?;
        Ok(())
    }

    /// Receives one group of updates `(client, weight, update)`: each
    /// through the transport encoding, all stored with one group commit;
    /// adds `weight · update` to `sum`.
    fn collect(
        &mut self,
        round: u64,
        first: usize,
        group: &[(String, u64, Vec<f32>)],
        sum: &mut [f64],
    ) -> Result<()> {
        let dim = sum.len();
        let mut received = Vec::with_capacity(group.len());
        for (client, weight, u) in group {
            let r = roundtrip(UploadChunk {
                federation: "plain".into(),
                round,
                index: 0,
                total: 1,
                num_examples: *weight,
                ciphertext: training::to_bytes(u),
            })?;
            let got = training::from_bytes(&r.ciphertext, dim)?;
            let w = r.num_examples as f64;
            for (s, &x) in sum.iter_mut().zip(&got) {
                *s += w * f64::from(x);
            }
            let hash: [u8; 32] = Sha256::digest(&r.ciphertext).into();
            received.push((client.as_str(), r.num_examples, r.ciphertext, hash));
        }
        let parts: Vec<&[u8]> = received.iter().map(|x| x.2.as_slice()).collect();
        let ranges = self
            .store
            .save_segment(&store::upload_segment(round, first), &parts)?;
        self.store.tx(|tx| {
            for ((client, n, _, hash), at) in received.iter().zip(&ranges) {
                store::insert_upload(tx, round, client, hash, *n, at)?;
            }
            Ok(())
        })?;
        self.ledger.append_batch(
            received
                .iter()
                .map(|(client, _, _, hash)| {
                    NewEntry::new(
                        round,
                        EntryBody::UpdateReceived(UpdateReceived {
                            client_id: client.to_string(),
                            ciphertext_hash: *hash,
                        }),
                    )
                })
                .collect(),
        )?;
        Ok(())
    }
}

/// The plaintext baseline of a round, for benchmarks: `clients` updates of
/// `params` values (Gaussian, σ = 0.01, fixed seed) are received, stored,
/// logged and averaged. Returns the seconds the round took (generating the
/// updates excluded).
pub fn plaintext_round(params: usize, clients: usize, dir: &Path) -> Result<f64> {
    let mut server = PlainServer::open(dir)?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let updates: Vec<(String, u64, Vec<f32>)> = (0..clients)
        .map(|i| {
            let mut u = vec![0f64; params];
            cipherflow_dp::try_gaussian_noise(&mut rng, 0.01, &mut u)?;
            Ok((
                format!("client-{i}"),
                1,
                u.iter().map(|&x| x as f32).collect(),
            ))
        })
        .collect::<Result<_>>()?;
    let t = std::time::Instant::now();
    server.open_round(1)?;
    let mut sum = vec![0f64; params];
    for (b, group) in updates.chunks(UPLOAD_BATCH).enumerate() {
        server.collect(1, b * UPLOAD_BATCH, group, &mut sum)?;
    }
    let mean: Vec<f32> = sum
        .iter()
        .map(|s| (s / clients.max(1) as f64) as f32)
        .collect();
    std::hint::black_box(&mean);
    Ok(t.elapsed().as_secs_f64())
}

/// What plaintext federated training did.
#[derive(Clone, Debug, Serialize)]
pub struct PlainReport {
    /// Seconds per round: every client's local training, the transport,
    /// durable storage and the log, the average and the evaluation.
    pub round_seconds: Vec<f64>,
    /// Evaluation accuracy after each round (when evaluation data is given).
    pub accuracy: Vec<f32>,
}

/// Plaintext FedAvg with the federation's model, local training and data:
/// every client trains from the global model each round, as the encrypted
/// simulation's clients do (one after the other, on the same cores), and
/// the coordinator averages the updates weighted by example counts.
pub fn plaintext_training(
    config: &FederationConfig,
    client_data: &[Dataset],
    eval: Option<&Dataset>,
    dir: &Path,
) -> Result<PlainReport> {
    if config.strategy.kind != StrategyKind::FedAvg || config.strategy.server_lr != 1.0 {
        return Err(FedError::Config(
            "the plaintext baseline runs FedAvg with server_lr = 1".into(),
        ));
    }
    if config.dp.is_some() || config.local_dp.is_some() {
        return Err(FedError::Config(
            "the plaintext baseline runs without differential privacy".into(),
        ));
    }
    let mut server = PlainServer::open(dir)?;
    let mut model = config.model_spec()?.build(config.model_seed)?;
    let mut global = training::flatten(&mut model);
    let dim = global.len();
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let mut report = PlainReport {
        round_seconds: Vec::new(),
        accuracy: Vec::new(),
    };
    for round in 1..=config.rounds {
        let t = std::time::Instant::now();
        server.open_round(round)?;
        let mut sum = vec![0f64; dim];
        let mut total = 0u64;
        let mut group = Vec::with_capacity(UPLOAD_BATCH);
        let mut first = 0;
        for (i, data) in client_data.iter().enumerate() {
            let u =
                training::local_update(&mut model, &global, data, &config.training, 0.0, &mut rng)?;
            let n = data.len() as u64;
            total += n;
            group.push((format!("client-{}", i + 1), n, u));
            if group.len() == UPLOAD_BATCH {
                server.collect(round, first, &group, &mut sum)?;
                first += group.len();
                group.clear();
            }
        }
        if !group.is_empty() {
            server.collect(round, first, &group, &mut sum)?;
        }
        let total = total.max(1) as f64;
        for (g, s) in global.iter_mut().zip(&sum) {
            *g += (s / total) as f32;
        }
        if let Some(e) = eval {
            report
                .accuracy
                .push(training::evaluate(&mut model, &global, e)?);
        }
        report.round_seconds.push(t.elapsed().as_secs_f64());
    }
    Ok(report)
}
