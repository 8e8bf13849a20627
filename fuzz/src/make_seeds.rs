//! Writes the seed corpus of every fuzz target under `fuzz/seeds/<target>/`:
//! valid encodings made by the libraries themselves (deterministic seeds,
//! small insecure parameters as in the targets), so that the fuzzers start
//! past the headers and checksums they could not guess.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make-seeds` (from the
//! repository root; an argument overrides the output folder).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../fuzz_targets/common.rs"]
mod common;
#[path = "../fuzz_targets/fed_common.rs"]
mod fed_common;

use cipherflow_ckks::multiparty::{
    aggregate_decryption_share, aggregation_seed, combine_public_key, decryption_share,
    public_key_share, share_encrypt, Crs, LocalParties, Smudging,
};
use cipherflow_ckks::{Encoder, Encryptor, GaloisKeys, PublicKey, RelinKey, SecretKey};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::{Path, PathBuf};

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn ckks(out: &Out) {
    let p = common::params();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(p, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let enc = Encoder::new(p);
    let values: Vec<f64> = (0..p.slots()).map(|i| (i as f64 * 0.1).sin()).collect();
    let ct = Encryptor::with_public_key(&pk)
        .encrypt_values(&enc, &values, &mut rng)
        .unwrap();
    out.put("ciphertext", "public-key-encryption", &ct.to_bytes(p).unwrap());
    let ct = Encryptor::with_secret_key(&sk)
        .encrypt_values(&enc, &values[..3], &mut rng)
        .unwrap();
    out.put("ciphertext", "seeded-secret-key-encryption", &ct.to_bytes(p).unwrap());
    out.put("public_key", "valid", &pk.to_bytes());
    out.put("secret_key", "valid", &sk.to_bytes());
    out.put("relin_key", "valid", &RelinKey::generate(&sk, &mut rng).unwrap().to_bytes());
    let gk = GaloisKeys::generate(&sk, &[1, -2], true, &mut rng).unwrap();
    out.put("galois_keys", "rotations-and-conjugation", &gk.to_bytes(p));
    for (name, preset) in [("depth2", cipherflow_ckks::Preset::Depth2), ("n15", cipherflow_ckks::Preset::N15)] {
        let lit = preset.build().unwrap().literal();
        out.put("params_literal", &format!("{name}.bin"), &lit.to_bytes().unwrap());
        out.put("params_literal", &format!("{name}.json"), serde_json::to_string(&lit).unwrap().as_bytes());
    }
    out.put("params_literal", "small.bin", &p.literal().to_bytes().unwrap());

    // Threshold multiparty objects: 3 parties, t = 2.
    let crs = Crs([3; 32]);
    let parties = LocalParties::setup(p, 3, 2, &mut rng).unwrap();
    let sks = &parties.keys;
    let pks: Vec<_> = sks
        .iter()
        .map(|s| public_key_share(p, s, &crs, &mut rng).unwrap())
        .collect();
    let jpk = combine_public_key(p, &crs, &pks).unwrap();
    // Party 1's dealing: to party 2 a seeded share (the first t − 1), to
    // party 3 a full one.
    let from_1 = |to: u64| parties.received_by(to).iter().find(|s| s.from() == 1).unwrap();
    let thr = parties.threshold_secrets(p).unwrap();
    out.put("multiparty", "0-secret-share", &[&[0u8][..], &sks[0].to_bytes()].concat());
    out.put("multiparty", "1-public-key-share", &[&[1u8][..], &pks[0].to_bytes()].concat());
    out.put("multiparty", "2-shamir-seeded", &[&[2u8][..], &from_1(2).to_bytes()].concat());
    out.put("multiparty", "2-shamir-full", &[&[2u8][..], &from_1(3).to_bytes()].concat());
    out.put("multiparty", "3-threshold-secret", &[&[3u8][..], &thr[0].to_bytes()].concat());
    let ct = Encryptor::with_public_key(&jpk)
        .encrypt_values(&enc, &values[..4], &mut rng)
        .unwrap();
    let sm = Smudging::for_fresh_sum(p, 3, 1, 40).unwrap();
    let ds = decryption_share(p, &thr[0], &[1, 3], &ct, &sm, &mut rng).unwrap();
    out.put("multiparty", "4-decryption-share", &[&[4u8][..], &ds.to_bytes()].concat());

    // Aggregation: a share encryption and an aggregate decryption share.
    let seed = aggregation_seed(&crs, b"fuzz", 0);
    let shift = 20;
    let sc = share_encrypt(p, &sks[0], &seed, &[1, -2, 3], shift, &mut rng).unwrap();
    out.put("aggregation", "shared-ciphertext", &sc.to_bytes());
    let sm = Smudging::for_share_sum(3, p.n(), 40).unwrap();
    let agg = aggregate_decryption_share(p, 1, parties.received_by(1), &parties.ids, &[1, 2], &[seed], &sm, &mut rng)
        .unwrap();
    out.put("aggregation", "aggregate-share", &agg.to_bytes());
}

fn ledger(out: &Out, tmp: &Path) {
    use cipherflow_ledger::entry::{CustomEntry, DpSettings, EntryBody, RoundOpened};
    use cipherflow_ledger::{Ledger, LogSigner};
    // The federated fuzz federation's ledger has every kind of entry.
    let path = tmp.join("coord/ledger.db");
    let log = Ledger::open_read_only(&path).unwrap();
    for i in 0..log.len() {
        let bytes = log.entry_bytes(i).unwrap();
        out.put("ledger_entry", &format!("entry-{i}"), &bytes);
        let p = log.entry_proof(i).unwrap();
        out.put("ledger_proofs", &format!("entry-proof-{i}"), &serde_json::to_vec(&p).unwrap());
        out.put("ledger_proofs", &format!("entry-proof-{i}.bin"), &p.encode());
        if i == 0 {
            out.put("ledger_proofs", "inclusion-proof.bin", &p.inclusion.encode());
        }
    }
    if let Ok(p) = log.counted_proof_for("client-1", 1) {
        out.put("ledger_proofs", "counted-proof", &serde_json::to_vec(&p).unwrap());
        out.put("ledger_proofs", "counted-proof.bin", &p.encode());
        let inputs = vec![p.input.clone(), p.input.clone()];
        out.put("ledger_proofs", "inputs.bin", &cipherflow_ledger::AggregateInput::encode_list(&inputs));
    }
    let n = log.len();
    let c = log.consistency_proof(n / 2, n).unwrap();
    out.put("ledger_proofs", "consistency-proof", &serde_json::to_vec(&c).unwrap());
    out.put("ledger_proofs", "consistency-proof.bin", &c.encode());
    let c2 = log.consistency_proof(n / 3, n).unwrap();
    out.put(
        "ledger_proofs",
        "consistency-proofs.bin",
        &cipherflow_ledger::ConsistencyProof::encode_list(&[c, c2]),
    );
    let head = log.latest_head().unwrap();
    out.put("ledger_proofs", "signed-head", &serde_json::to_vec(head).unwrap());
    // A custom entry, and a round opening with DP settings, from a fresh log.
    let path = tmp.join("seed-ledger.db");
    let _ = std::fs::remove_file(&path);
    let mut log = Ledger::create(&path, "seeds", LogSigner::from_seed(&[7; 32])).unwrap();
    let a = log
        .append(
            0,
            EntryBody::Custom(CustomEntry {
                kind: "note".into(),
                data: b"hello".to_vec(),
            }),
        )
        .unwrap();
    out.put("ledger_entry", "custom", &log.entry_bytes(a.index).unwrap());
    let a = log
        .append(
            1,
            EntryBody::RoundOpened(RoundOpened {
                parameters: [("preset".to_string(), "aggregation".into())].into(),
                participants: vec![[1; 32]],
                dp: DpSettings {
                    accountant: cipherflow_ledger::entry::DpAccounting::Rdp,
                    sampling_rate: 0.5,
                    noise_multiplier: 1.1,
                    delta: 1e-5,
                    steps_this_round: 3,
                    steps_cumulative: 3,
                },
            }),
        )
        .unwrap();
    out.put("ledger_entry", "round-opened-dp", &log.entry_bytes(a.index).unwrap());
    let input = cipherflow_ledger::AggregateInput {
        update_index: 4,
        client_id: "client-1".into(),
        ciphertext_hash: [9; 32],
    };
    out.put("ledger_entry", "aggregate-input", &input.encode());
}

fn fed(out: &Out, fed: &fed_common::Federation) {
    for (i, (which, msg)) in fed.seen.iter().enumerate() {
        out.put("fed_messages", &format!("{i:03}-{which}"), &[&[*which][..], msg].concat());
    }
    out.put("fed_config", "threshold.toml", fed_common::CONFIG.as_bytes());
    let dp = "name = \"dp\"\nrounds = 20\nclients_per_round = 3\nquorum = 2\nkeys = \"key-service\"\n\
              round_timeout_s = 30\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
              [strategy]\nkind = \"fedyogi\"\n[training]\nepochs = 1\nbatch_size = 16\nlr = 0.1\n\
              [dp]\nepsilon = 3.0\ndelta = 1e-5\nclip = 1.0\n[aggregation]\nquant_bits = 20\n";
    out.put("fed_config", "dp-key-service.toml", dp.as_bytes());
    let (roster, _) = cipherflow_fed::sim::make_roster("fuzz", 3).unwrap();
    out.put("fed_config", "roster.json", &serde_json::to_vec_pretty(&roster).unwrap());
}

fn mpc(out: &Out) {
    let mut framed = Vec::new();
    for n in [1u32, 3, 16] {
        let payload: Vec<u8> = (0..n * 8).map(|i| i as u8).collect();
        framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        framed.extend_from_slice(&payload);
    }
    out.put("mpc_messages", "three-frames", &framed);
    let mut counted = 4u16.to_le_bytes().to_vec();
    counted.extend((0..32u8).collect::<Vec<_>>());
    out.put("mpc_messages", "four-u64", &counted);
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_and_data(out: &Out) {
    let models = repo().join("data/models");
    if let Ok(dir) = std::fs::read_dir(&models) {
        for e in dir.flatten() {
            let path = e.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // Large files make slow seeds: the fuzzer mutates small ones best.
            if bytes.len() > 256 * 1024 {
                continue;
            }
            let tag = if name.ends_with(".onnx") {
                0u8
            } else if name.ends_with(".safetensors") {
                1
            } else if name.ends_with(".json") || name.ends_with(".toml") {
                2
            } else {
                continue;
            };
            out.put("model_files", &name, &[&[tag][..], &bytes].concat());
        }
    }
    let spec = r#"{"input":[1,8,8],"layers":[
        {"type":"conv2d","out_channels":2,"kernel":3,"stride":1},{"type":"square"},
        {"type":"avg_pool2d","kernel":2},{"type":"flatten"},{"type":"dense","units":3}]}"#;
    out.put("model_files", "spec.json", &[&[2u8][..], spec.as_bytes()].concat());
    let mut model = cipherflow_nn::spec::ModelSpec::parse(spec).unwrap().build(1).unwrap();
    let st = cipherflow_nn::io::safetensors::to_bytes(&model).unwrap();
    out.put("model_files", "small-cnn.safetensors", &[&[1u8][..], &st].concat());
    let _ = cipherflow_fed::training::flatten(&mut model);

    // IDX: 2 images of 3×3 and their labels; CSV with a header.
    let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    img.extend((0..18u8).map(|i| i * 14));
    out.put("data_files", "images.idx", &[&[0u8][..], &img].concat());
    out.put("data_files", "labels.idx", &[1u8, 0, 0, 8, 1, 0, 0, 0, 2, 1, 0]);
    let csv = b"a,b,c,label\n0.5,1.5,-2,1\n3,4,5,0\n";
    out.put("data_files", "table.csv", &[&[2u8][..], csv].concat());
    // The files a user brings (crates/nn/tests/fixtures/byo): the tag picks
    // the reader (3: load_inputs, 4: stream_inputs, 5: load_inputs of a
    // .csv; +0x40: with the model's shape [1, 8, 8]).
    let byo = repo().join("crates/nn/tests/fixtures/byo");
    for (file, tags) in [
        ("images/zero/0.png", &[3u8, 0x43][..]),
        ("jpeg/0.jpg", &[0x43][..]),
        ("inputs.npy", &[3, 4, 0x44][..]),
        ("inputs-idx3-ubyte.gz", &[3 | 0x80, 4 | 0x80][..]),
        ("table.csv", &[5, 0x45][..]),
    ] {
        if let Ok(bytes) = std::fs::read(byo.join(file)) {
            for &tag in tags {
                let name = format!("byo-{}-{tag:02x}", file.replace('/', "-"));
                out.put("data_files", &name, &[&[tag][..], &bytes].concat());
            }
        }
    }
    for file in ["digits_norm_cnn_plain.onnx", "gelu_mlp13.onnx", "bn_cnn_unfolded.onnx"] {
        if let Ok(bytes) = std::fs::read(byo.join(file)) {
            out.put("model_files", &format!("byo-{file}"), &[&[0u8][..], &bytes].concat());
            out.put("model_files", &format!("byo-load-{file}"), &[&[3u8][..], &bytes].concat());
        }
    }
    // PyTorch's exports of padding, LeakyReLU, global pooling, LSTM and GRU
    // (crates/nn/tests/fixtures/layers): constant folding and the
    // recurrent patterns.
    let layers = repo().join("crates/nn/tests/fixtures/layers");
    for file in ["pad_leaky_gap.onnx", "lstm_last.onnx", "gru_h.onnx", "lstm_seq.onnx"] {
        if let Ok(bytes) = std::fs::read(layers.join(file)) {
            out.put("model_files", &format!("layers-{file}"), &[&[0u8][..], &bytes].concat());
        }
    }
    out.put(
        "model_files",
        "spec-lstm.json",
        &[
            &[2u8][..],
            br#"{"input": [1, 8, 8], "layers": [{"type": "reshape", "shape": [8, 8]},
                {"type": "lstm", "hidden": 4, "sequence": true}, {"type": "gru", "hidden": 3},
                {"type": "dense", "units": 2}]}"#,
        ]
        .concat(),
    );
    let bc = repo().join("data/breast_cancer.csv");
    if let Ok(text) = std::fs::read(bc) {
        let head: Vec<u8> = text.split(|&b| b == b'\n').take(6).collect::<Vec<_>>().join(&b'\n');
        out.put("data_files", "breast-cancer-head.csv", &[&[2u8][..], &head].concat());
    }
}

fn main() {
    let out = Out(std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("fuzz/seeds")));
    let tmp = std::env::temp_dir().join(format!("cipherflow-make-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    ckks(&out);
    mpc(&out);
    models_and_data(&out);
    let f = fed_common::build(tmp.clone());
    fed(&out, &f);
    drop(f);
    ledger(&out, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    println!("seeds written under {}", out.0.display());
}
