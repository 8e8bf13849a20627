//! `cipherflow bench fl`: the encrypted-aggregation costs that the peer
//! benchmark (`bench/fl.sh`: TenSEAL as in NVIDIA FLARE, Flower SecAgg+)
//! compares with — upload bytes per parameter, client encryption time,
//! coordinator time per client, whole-round time against our own plaintext
//! round, and the precision of the decrypted aggregate.

use anyhow::anyhow;
use cipherflow_ckks::multiparty::{
    combine_aggregate, key_holder_share, Crs, SecretShare, SharedCiphertext,
};
use cipherflow_fed::messages::EnrollReply;
use cipherflow_fed::quant;
use cipherflow_fed::sim::{make_roster, simulate, ManualClock, SimOptions};
use cipherflow_fed::PackingPlan;
use cipherflow_fed::{ClientAgent, ClientOptions};
use cipherflow_fed::{Coordinator, CoordinatorOptions};
use cipherflow_fed::{FederationConfig, ModelChoice};
use cipherflow_ledger::LogSigner;
use cipherflow_nn::data::Dataset;
use cipherflow_nn::spec::{LayerSpec, ModelSpec};
use rand_core::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Arguments of `cipherflow bench fl`.
#[derive(clap::Args)]
pub struct FlBenchArgs {
    /// Parameter counts, comma separated.
    #[arg(long, default_value = "100000,1000000")]
    params: String,
    /// Client counts, comma separated.
    #[arg(long, default_value = "10,50")]
    clients: String,
    /// Timed repetitions (micro-benchmarks); whole rounds run twice.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Rayon threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Statistical security λ of the smudging.
    #[arg(long, default_value_t = 40)]
    stat_sec: u32,
    /// Skip whole-round simulations (micro-benchmarks only).
    #[arg(long)]
    no_rounds: bool,
    /// JSON lines.
    #[arg(long)]
    json: bool,
}

fn list(s: &str) -> anyhow::Result<Vec<usize>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| anyhow!("bad number {x:?}"))
        })
        .collect()
}

fn config(
    params: usize,
    rounds: u64,
    keys: &str,
    stat_sec: u32,
) -> anyhow::Result<FederationConfig> {
    let mut cfg = FederationConfig::parse(&format!(
        "name = \"bench-{params}\"\nrounds = {rounds}\nmodel = \"logreg\"\ninput = [1]\nclasses = 2\n\
         keys = \"{keys}\"\nround_timeout_s = 600\n[aggregation]\nstat_sec_bits = {stat_sec}\n"
    ))
    ?;
    cfg.model = ModelChoice::Spec(ModelSpec {
        input: vec![params - 1],
        layers: vec![LayerSpec::Dense { units: 1 }],
    });
    cfg.validate()?;
    Ok(cfg)
}

fn dummy(params: usize) -> anyhow::Result<Dataset> {
    Ok(Dataset::new(
        ndarray::Array2::zeros((1, params - 1)),
        vec![0],
        vec![params - 1],
        2,
    )?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn random_update(rng: &mut rand_chacha::ChaCha20Rng, n: usize) -> anyhow::Result<Vec<f32>> {
    let mut u = vec![0f64; n];
    cipherflow_dp::try_gaussian_noise(rng, 0.01, &mut u)?;
    Ok(u.iter().map(|&x| x as f32).collect())
}

struct Emit {
    json: bool,
}

impl Emit {
    fn line(&self, v: serde_json::Value) {
        if self.json {
            println!("{v}");
        } else {
            println!("{v:#}");
        }
    }
}

/// Runs `cipherflow bench fl`.
pub fn run(a: FlBenchArgs) -> anyhow::Result<()> {
    if a.threads == 0 || a.threads > 1024 || a.reps == 0 || a.reps > 1000 {
        return Err(anyhow!("--threads in 1..=1024 and --reps in 1..=1000"));
    }
    let (ps, cs) = (list(&a.params)?, list(&a.clients)?);
    if ps.iter().any(|&p| !(2..=10_000_000).contains(&p))
        || cs.iter().any(|&c| !(2..=1000).contains(&c))
    {
        return Err(anyhow!("--params in 2..=1e7 and --clients in 2..=1000"));
    }
    let out = Emit { json: a.json };
    cipherflow_ring::with_threads(a.threads, || -> anyhow::Result<()> {
        for &p in &ps {
            for &c in &cs {
                micro(&out, p, c, a.reps, a.stat_sec, a.threads)?;
                if !a.no_rounds {
                    rounds(&out, p, c, a.stat_sec, a.threads)?;
                }
            }
        }
        Ok(())
    })?
}

/// Encryption, bytes, coordinator accept (compute and durable), precision.
fn micro(
    out: &Emit,
    p: usize,
    c: usize,
    reps: usize,
    stat_sec: u32,
    threads: usize,
) -> anyhow::Result<()> {
    let cfg = config(p, 1, "key-service", stat_sec)?;
    let sizes = cfg.sizes(c)?;
    let packing = PackingPlan::for_federation(&cfg, &sizes, None, p)?;
    let params = packing.params()?;
    let (roster, _) = make_roster(&cfg.name, c)?;
    // Key shares, the CRS and the smudging come from the OS-seeded CSPRNG,
    // as in a deployment (a fixed seed would make the shares public).
    let mut rng = cipherflow_ring::sampler::secure_rng()?;
    let mut crs = Crs([0; 32]);
    rng.fill_bytes(&mut crs.0);
    // Clients with key-service keys (a key holder decrypts for precision).
    let keys: Vec<SecretShare> = (1..=c as u64)
        .map(|id| SecretShare::generate_for(&params, id, &mut rng))
        .collect();
    let q = quant::expected(&cfg, None, &packing, 1.0, None);
    let mut agents = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let mut agent = ClientAgent::new(ClientOptions {
            client_id: format!("client-{}", i + 1),
            kx: None,
            roster: roster.clone(),
            config: cfg.clone(),
            data: dummy(p)?,
            state: None,
            ledger_key: None,
            synthetic: true,
        })?;
        agent.on_enroll(EnrollReply {
            party_id: i as u64 + 1,
            key_share: zeroize::Zeroizing::new(k.to_bytes().to_vec()),
        })?;
        agents.push(agent);
    }
    let updates: Vec<Vec<f32>> = (0..c)
        .map(|_| random_update(&mut rng, p))
        .collect::<Result<_, _>>()?;
    // Client: quantize + encrypt + serialize (no training, no DP noise).
    let mut enc = Vec::new();
    let mut uploads = Vec::new();
    for r in 0..reps.max(1) {
        let t = Instant::now();
        let chunks = agents[0].encrypt_update(crs, 1, &q, &updates[0])?;
        enc.push(t.elapsed().as_secs_f64() * 1e3);
        if r == 0 {
            uploads.push(chunks);
        }
    }
    for (agent, u) in agents.iter_mut().zip(&updates).skip(1) {
        uploads.push(agent.encrypt_update(crs, 1, &q, u)?);
    }
    let bytes: usize = uploads[0].iter().map(|ch| ch.ciphertext.len()).sum();
    let base = json!({"lib": "cipherflow", "params": p, "clients": c, "threads": threads,
        "log_n": packing.log_n, "q_bits": packing.q_bits, "shift": packing.shift, "pack": packing.pack, "stat_sec_bits": stat_sec,
        "quant_bits": cfg.aggregation.quant_bits});
    let with = |mut v: serde_json::Value| {
        if let (Some(o), Some(b)) = (v.as_object_mut(), base.as_object()) {
            for (k, x) in b {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    };
    out.line(with(
        json!({"bench": "encrypt", "median_ms": median(enc.clone()),
        "min_ms": enc.iter().copied().fold(f64::INFINITY, f64::min), "reps": enc.len()}),
    ));
    out.line(with(
        json!({"bench": "bytes", "bytes": bytes, "bytes_per_param": bytes as f64 / p as f64,
        "ratio_to_float32": bytes as f64 / (4.0 * p as f64)}),
    ));
    // Coordinator compute: decode, validate (seed, shift, ranges), add.
    // The agents have not joined a coordinator: key epoch 0.
    let seeds = cipherflow_fed::round_seeds(&crs, &cfg.name, 0, 1, packing.chunks);
    let mut sum: Vec<SharedCiphertext> = Vec::new();
    let mut fold = Vec::new();
    for up in &uploads {
        let t = Instant::now();
        let mut h = Sha256::new();
        let cts: Vec<SharedCiphertext> = up
            .iter()
            .zip(&seeds)
            .map(|(ch, s)| {
                h.update(&ch.ciphertext);
                let ct = SharedCiphertext::from_bytes(&params, &ch.ciphertext)?;
                if ct.seed() != s || ct.shift() != packing.shift {
                    return Err(anyhow!("ciphertext for another seed or shift"));
                }
                Ok(ct)
            })
            .collect::<anyhow::Result<_>>()?;
        let _digest = h.finalize();
        if sum.is_empty() {
            sum = cts;
        } else {
            for (s, x) in sum.iter_mut().zip(&cts) {
                s.add_assign(x)?;
            }
        }
        fold.push(t.elapsed().as_secs_f64() * 1e3);
    }
    out.line(with(
        json!({"bench": "coordinator_fold", "median_ms": median(fold.clone()),
        "note": "per client: SHA-256, decode + validate every chunk, add into the running sum"}),
    ));
    // Precision of the decrypted aggregate (exact integer sum; only the
    // quantization is lossy).
    let smudging = packing.smudging()?;
    let refs: Vec<&SecretShare> = keys.iter().collect();
    let share = key_holder_share(&params, &refs, &seeds, &smudging, &mut rng)?;
    let t = Instant::now();
    let ints = combine_aggregate(&params, &sum, &[share], packing.noise_log2())?;
    let combine_ms = t.elapsed().as_secs_f64() * 1e3;
    let flat: Vec<i64> = packing.unpack_sums(&ints.into_iter().flatten().collect::<Vec<_>>());
    let mean = q.decode_mean(&flat, c as f64)?;
    let (mut err, mut top, mut e2, mut m2) = (0f64, 0f64, 0f64, 0f64);
    for (i, &m) in mean.iter().enumerate() {
        let truth: f64 = updates.iter().map(|u| f64::from(u[i])).sum::<f64>() / c as f64;
        let d = (f64::from(m) - truth).abs();
        err = err.max(d);
        top = top.max(truth.abs());
        e2 += d * d;
        m2 += truth * truth;
    }
    out.line(with(json!({"bench": "precision", "bits_max": (top / err).log2(), "bits_l2": (m2.sqrt() / e2.sqrt()).log2(),
        "max_abs_error": err, "combine_ms": combine_ms,
        "note": "decrypted mean of N(0, 0.01²) updates vs the plaintext mean; decryption is exact, the error is the quantization's"})));
    // Durable accept: the coordinator's full upload path (SQLite, ledger, fold).
    let dir = tempdir()?;
    let signer = LogSigner::generate()?;
    let ks_cfg = config(p, 1, "key-service", stat_sec)?;
    let (_clock, f) = ManualClock::new();
    let mut coord = Coordinator::open(CoordinatorOptions {
        config: ks_cfg.clone(),
        roster: roster.clone(),
        state: dir.join("c.db").into(),
        ledger: dir.join("l.db"),
        signer,
        eval: None,
        clock: f,
    })?;
    for agent in agents.iter_mut() {
        let r = coord.join(agent.id(), &agent.join_request())?;
        agent.on_join(&r)?;
    }
    coord.tick()?;
    let crs = coord.crs();
    let mut accept = Vec::new();
    for (agent, u) in agents.iter_mut().zip(&updates).take(c - 1) {
        let chunks = agent.encrypt_update(
            crs,
            1,
            &quant::expected(&ks_cfg, None, &packing, 1.0, None),
            u,
        )?;
        let t = Instant::now();
        coord.upload(agent.id(), &chunks)?;
        accept.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(coord);
    let _ = std::fs::remove_dir_all(&dir);
    out.line(with(json!({"bench": "coordinator_accept", "median_ms": median(accept),
        "note": "per client: Coordinator::upload — validate, SQLite insert (synchronous=FULL), ledger append with signed head (fsync), fold"})));
    Ok(())
}

/// Whole rounds: encrypted (threshold keys, real protocol, in-process) and
/// our plaintext baseline (same transport encoding, same durable storage
/// and ledger entries, float32 updates summed in the clear).
fn rounds(out: &Emit, p: usize, c: usize, stat_sec: u32, threads: usize) -> anyhow::Result<()> {
    let plain_dir = tempdir()?;
    let plain = cipherflow_fed::baseline::plaintext_round(p, c, &plain_dir)?;
    let _ = std::fs::remove_dir_all(&plain_dir);
    // Checked decryption (t + 1 holders, the default) and plain (t).
    for checked in [true, false] {
        let mut cfg = config(p, 2, "threshold", stat_sec)?;
        cfg.checked_decryption = Some(checked);
        let sizes = cfg.sizes(c)?;
        let packing = PackingPlan::for_federation(&cfg, &sizes, None, p)?;
        let bytes = packing.upload_bytes(&packing.params()?);
        let dir = tempdir()?;
        let data = (0..c).map(|_| dummy(p)).collect::<Result<Vec<_>, _>>()?;
        let report = simulate(SimOptions {
            config: cfg,
            client_data: data,
            eval: None,
            dropout: 0.0,
            dir: dir.clone(),
            state: None,
            synthetic: true,
            on_round: None,
            dropout_plan: None,
            regions: 0,
        })?;
        let _ = std::fs::remove_dir_all(&dir);
        let enc = report.round_seconds_median;
        let (mode, shares) = if checked {
            (
                "threshold-checked",
                "t + 1 decryption shares, checked against each other",
            )
        } else {
            ("threshold", "t decryption shares")
        };
        out.line(json!({"lib": "cipherflow", "bench": "round", "mode": mode, "params": p, "clients": c,
            "threads": threads, "seconds": enc, "plaintext_seconds": plain, "ratio_to_plaintext": enc / plain,
            "ledger": report.ledger, "upload_bytes": bytes, "bytes_per_param": bytes as f64 / p as f64,
            "log_n": packing.log_n, "q_bits": packing.q_bits, "shift": packing.shift, "pack": packing.pack,
            "decryptors": sizes.decryptors(),
            "note": format!("median of 2 rounds: every client's synthetic update quantized, encrypted, uploaded (protobuf round trip), stored, logged, summed; {shares}; combine; FedAvg. One process, 2 cores shared by all parties")}));
    }
    Ok(())
}

fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let mut r = cipherflow_ring::sampler::secure_rng()?;
    let d = std::env::temp_dir().join(format!("cipherflow-bench-fl-{:016x}", r.next_u64()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
