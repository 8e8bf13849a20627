//! The client agent of a hospital: deals its key share, trains locally,
//! clips, noises, quantizes and encrypts its update, and gives decryption
//! shares — only for an aggregate that the audit log shows to be the sum
//! of at least the quorum of this round's updates, and for one contributor
//! set per round.
//!
//! The agent never trusts the coordinator for parameters that protect it:
//! it recomputes the packing plan and the DP plan from its own copy of the
//! configuration and refuses a task that asks for a smaller shift, weaker
//! noise or another clip; it takes the other clients' key-agreement keys
//! from its own roster; it checks the ledger's signed tree heads and their
//! consistency with the last head it saw.

mod decrypt;
mod noise;
mod state;

pub use decrypt::check_aggregate;
pub(crate) use decrypt::smudging_seed;
use state::UploadMark;

use crate::config::{FederationConfig, KeysMode, Sizes};
use crate::dp_plan::{DpPlan, LocalDpPlan};
use crate::envelope;
use crate::error::{FedError, Result};
use crate::messages::{
    EnrollReply, JoinReply, JoinRequest, KeySetupBundle, KeySetupPost, KeySetupQuery, KeySetupTask,
    ProofReply, ProofRequest, Task, TrainTask, UploadChunk, UploadReceipt,
};
use crate::packing::PackingPlan;
use crate::quant::{self, Quantizer};
use crate::records::{KeySetupRecord, KIND_KEY_SETUP};
use crate::roster::{parse_public, KxSecret, Roster};
use crate::training;
use cipherflow_ckks::multiparty::{shamir_deal, share_encrypt, Crs, SecretShare, ShamirShare};
use cipherflow_ckks::CkksParams;
use cipherflow_ledger::entry::EntryBody;
use cipherflow_ledger::{EntryProof, PublicKey, SignedTreeHead};
use cipherflow_nn::data::Dataset;
use cipherflow_nn::Sequential;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the agent needs.
pub struct ClientOptions {
    /// Its id (the TLS certificate's common name).
    pub client_id: String,
    /// Its key-agreement secret (threshold mode).
    pub kx: Option<KxSecret>,
    /// Its own copy of the roster.
    pub roster: Roster,
    /// Its own copy of the federation configuration: the coordinator's must
    /// be identical.
    pub config: FederationConfig,
    /// Local training data.
    pub data: Dataset,
    /// State file for key material and decryption commitments (0600);
    /// `None` keeps them in memory only.
    pub state: Option<PathBuf>,
    /// Pinned ledger key (else taken from the coordinator on joining).
    pub ledger_key: Option<PublicKey>,
    /// Benchmarks: skip training and send a random update (N(0, 0.01²)
    /// per parameter) through the real quantization and encryption.
    pub synthetic: bool,
}

/// What the transport should do next for the agent.
#[derive(Debug)]
pub enum Action {
    /// Post a key-setup dealing, then poll the key setup until complete.
    PostKeySetup(KeySetupPost),
    /// Upload an update.
    Upload(Vec<UploadChunk>),
    /// Send a decryption share.
    Share(Vec<crate::messages::ShareChunk>),
    /// Nothing to do; ask again after this many milliseconds.
    Wait(u32),
    /// The federation finished.
    Finished(crate::messages::FinishedTask),
}

/// How long a client whose update was receipted waits before asking again
/// when it is handed the same round's training task.
const RECEIPT_WAIT_MS: u32 = 500;

/// The client agent.
pub struct ClientAgent {
    id: String,
    party: u64,
    kx: Option<KxSecret>,
    roster: Roster,
    cfg: FederationConfig,
    sizes: Sizes,
    dp: Option<DpPlan>,
    local_dp: Option<LocalDpPlan>,
    packing: PackingPlan,
    params: CkksParams,
    data: Dataset,
    model: Sequential,
    crs: Option<Crs>,
    epoch: u64,
    key: Option<SecretShare>,
    received: Vec<ShamirShare>,
    /// The key setup completed and its ledger entry checked out.
    key_setup_done: bool,
    dealt: Option<KeySetupPost>,
    ledger_key: Option<PublicKey>,
    log_id: Option<[u8; 32]>,
    last_head: Option<SignedTreeHead>,
    decrypted: BTreeMap<u64, [u8; 32]>,
    /// The key of this holder's smudging noise (see
    /// [`decrypt::smudging_seed`]): drawn at its first share, saved with
    /// its state.
    smudging_key: Option<zeroize::Zeroizing<[u8; 32]>>,
    uploads: BTreeMap<String, UploadMark>,
    /// Privacy-schedule histories, per (federation, key epoch).
    noise: BTreeMap<String, noise::NoiseRecord>,
    pinned_crs: Option<(Crs, u64)>,
    last_upload: Option<(u64, [u8; 32], Vec<UploadChunk>)>,
    unverified: Vec<(u64, [u8; 32])>,
    state: Option<PathBuf>,
    synthetic: bool,
    rng: ChaCha20Rng,
}

impl std::fmt::Debug for ClientAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAgent")
            .field("id", &self.id)
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

impl ClientAgent {
    /// A new agent (loads its state file when present).
    pub fn new(opts: ClientOptions) -> Result<Self> {
        opts.roster.validate()?;
        opts.config.validate()?;
        let party = opts.roster.admit(&opts.client_id)?.party_id;
        let sizes = opts.config.sizes(opts.roster.clients.len())?;
        let mut model = opts.config.model_spec()?.build(opts.config.model_seed)?;
        let dim = model.num_params();
        let dp = match &opts.config.dp {
            Some(d) => Some(DpPlan::new(d, &sizes, opts.config.rounds, dim as u64)?),
            None => None,
        };
        let local_dp = match &opts.config.local_dp {
            Some(l) => Some(LocalDpPlan::new(
                l,
                opts.config.rounds,
                opts.config.training.epochs,
            )?),
            None => None,
        };
        let packing = PackingPlan::for_federation(&opts.config, &sizes, dp.as_ref(), dim)?;
        let params = packing.params()?;
        if opts.config.keys == KeysMode::Threshold && opts.kx.is_none() {
            return Err(FedError::Config(
                "threshold mode needs a key-agreement secret".into(),
            ));
        }
        let _ = training::flatten(&mut model);
        let mut agent = Self {
            id: opts.client_id,
            party,
            kx: opts.kx,
            roster: opts.roster,
            cfg: opts.config,
            sizes,
            dp,
            local_dp,
            packing,
            params,
            data: opts.data,
            model,
            crs: None,
            epoch: 0,
            key: None,
            received: Vec::new(),
            key_setup_done: false,
            dealt: None,
            ledger_key: opts.ledger_key,
            log_id: None,
            last_head: None,
            decrypted: BTreeMap::new(),
            smudging_key: None,
            uploads: BTreeMap::new(),
            noise: BTreeMap::new(),
            pinned_crs: None,
            last_upload: None,
            unverified: Vec::new(),
            state: opts.state,
            synthetic: opts.synthetic,
            rng: cipherflow_ring::sampler::secure_rng()?,
        };
        agent.load_state()?;
        Ok(agent)
    }
    /// This client's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its Shamir party id.
    pub fn party(&self) -> u64 {
        self.party
    }

    /// Whether it holds its key material: its key share, and in threshold
    /// mode a completed key setup (a key holder then holds every dealer's
    /// Shamir share).
    pub fn has_keys(&self) -> bool {
        self.key.is_some() && (self.cfg.keys == KeysMode::KeyService || self.key_setup_done)
    }

    /// Whether this client holds a share of the threshold key (its party id
    /// is within the key-holder committee).
    pub fn is_key_holder(&self) -> bool {
        self.cfg.keys == KeysMode::Threshold && self.sizes.is_holder(self.party)
    }

    /// The join request.
    pub fn join_request(&self) -> JoinRequest {
        JoinRequest {
            federation: self.cfg.name.clone(),
            num_examples: self.data.len() as u64,
        }
    }

    /// Checks the coordinator's reply against this client's own configuration.
    pub fn on_join(&mut self, reply: &JoinReply) -> Result<()> {
        if reply.config_digest != self.cfg.digest()? {
            return Err(FedError::Refused(
                "the coordinator runs another configuration than this client's".into(),
            ));
        }
        if reply.party_id != self.party {
            return Err(FedError::Refused(
                "the coordinator assigned another party id".into(),
            ));
        }
        let (crs, key) = (reply.crs, reply.ledger_public_key);
        match &self.ledger_key {
            Some(pinned) if *pinned != key => {
                return Err(FedError::Refused(
                    "the ledger key differs from the pinned one".into(),
                ))
            }
            _ => self.ledger_key = Some(key),
        }
        let log_id = reply.ledger_log_id;
        // The log id is a function of the ledger key and the federation's
        // name: proofs from another log signed with the same key are
        // refused.
        if log_id != cipherflow_ledger::log_id(&key, &self.cfg.name) {
            return Err(FedError::Refused(
                "the ledger's log id is not this federation's".into(),
            ));
        }
        self.log_id = Some(log_id);
        // The CRS is pinned at the first join (and persisted): a coordinator
        // that changes it on a re-join would make this client encrypt
        // under public polynomials of its choosing. A new key epoch is a
        // new key setup, which this client does not support silently.
        match self.pinned_crs {
            Some((pinned, epoch)) if pinned != crs || epoch != reply.epoch => {
                tracing::warn!(
                    client = %self.id,
                    "the coordinator changed the CRS or key epoch on a re-join: refused"
                );
                return Err(FedError::Refused(
                    "the coordinator sent another CRS or key epoch than at the first join".into(),
                ));
            }
            Some(_) => {}
            None => {
                self.pinned_crs = Some((crs, reply.epoch));
                self.save_state()?;
            }
        }
        self.crs = Some(crs);
        self.epoch = reply.epoch;
        Ok(())
    }

    /// Checks the ledger's key-setup entry (its proof, in the bundle that
    /// completes the key setup) against the CRS, threshold and parties
    /// this client pinned: the CRS every client encrypts under is the one
    /// the audit log records.
    fn check_key_setup_entry(&self, proof: Option<&EntryProof>) -> Result<()> {
        let proof = proof
            .ok_or_else(|| FedError::Refused("the key setup carries no ledger proof".into()))?;
        let e = self.verify_entry(proof)?;
        let EntryBody::Custom(c) = &e.body else {
            return Err(FedError::Refused(
                "the key-setup proof is not of a key-setup entry".into(),
            ));
        };
        let logged = KeySetupRecord::parse(&c.data)?;
        let crs = self
            .crs
            .ok_or_else(|| FedError::NotReady("join first".into()))?;
        let pinned = KeySetupRecord::new(
            self.epoch,
            &crs,
            self.sizes.threshold,
            self.sizes.holder_ids(),
        );
        if c.kind != KIND_KEY_SETUP || logged != pinned {
            return Err(FedError::Refused(
                "the ledger's key-setup entry does not match this client's CRS, epoch, \
                 threshold or key holders"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Installs the key share a key service issued (key-service mode); the
    /// reply's copy of the key is zeroized.
    pub fn on_enroll(&mut self, reply: EnrollReply) -> Result<()> {
        let bytes = reply.key_share;
        if reply.party_id != self.party {
            return Err(FedError::Refused(
                "the key service issued another party id".into(),
            ));
        }
        let key = SecretShare::from_bytes(&self.params, &bytes)?;
        if key.party_id() != Some(self.party) {
            return Err(FedError::Refused("key share for another party".into()));
        }
        self.key = Some(key);
        self.save_state()
    }

    /// The key-setup query for polling.
    pub fn key_setup_query(&self) -> KeySetupQuery {
        KeySetupQuery {
            federation: self.cfg.name.clone(),
            epoch: self.epoch,
        }
    }

    /// Opens the dealing shares addressed to this client once complete
    /// (a key holder gets one from every client; any other client none);
    /// returns whether the key setup is done.
    pub fn on_key_setup(&mut self, bundle: &KeySetupBundle) -> Result<bool> {
        if !bundle.complete || self.has_keys() {
            return Ok(self.has_keys());
        }
        self.check_key_setup_entry(bundle.key_setup_proof.as_ref())?;
        if !self.is_key_holder() {
            if !bundle.shares.is_empty() {
                return Err(FedError::Protocol(
                    "dealing shares sent to a client outside the key-holder committee".into(),
                ));
            }
            self.key_setup_done = true;
            self.save_state()?;
            return Ok(true);
        }
        let kx = self
            .kx
            .as_ref()
            .ok_or_else(|| FedError::Config("no key-agreement secret".into()))?;
        let mut shares: Vec<ShamirShare> = self
            .received
            .iter()
            .filter(|s| s.from() == self.party)
            .cloned()
            .collect();
        let parties = self.sizes.holder_ids();
        for sealed in &bundle.shares {
            let dealer = self.roster.by_party(sealed.from_party).ok_or_else(|| {
                FedError::Protocol("share from a party outside the roster".into())
            })?;
            let peer = parse_public(&dealer.kx_public)?;
            let bytes = envelope::open(kx, &peer, &self.cfg.name, self.epoch, self.party, sealed)?;
            let s = ShamirShare::from_bytes(&self.params, &bytes)?;
            if s.from() != sealed.from_party
                || s.to() != self.party
                || s.threshold() != self.sizes.threshold
                || s.parties() != parties.as_slice()
            {
                return Err(FedError::Protocol(
                    "a dealing share does not match the federation".into(),
                ));
            }
            if shares.iter().any(|x| x.from() == s.from()) {
                return Err(FedError::Protocol("two shares from one dealer".into()));
            }
            shares.push(s);
        }
        if shares.len() != self.roster.clients.len() {
            return Err(FedError::Protocol(format!(
                "{} dealing shares, expected one from each of the {} clients",
                shares.len(),
                self.roster.clients.len()
            )));
        }
        self.received = shares;
        self.key_setup_done = true;
        self.save_state()?;
        Ok(true)
    }

    /// Acts on a task.
    pub fn handle(&mut self, task: &Task) -> Result<Action> {
        match task {
            Task::Wait { retry_ms, .. } => Ok(Action::Wait((*retry_ms).clamp(10, 60_000))),
            Task::Finished(f) => Ok(Action::Finished(f.clone())),
            Task::KeySetup(k) => self.deal(k),
            Task::Train(t) => self.train(t),
            Task::Decrypt(d) => self.decrypt(d),
        }
    }

    fn deal(&mut self, task: &KeySetupTask) -> Result<Action> {
        if self.cfg.keys != KeysMode::Threshold {
            return Err(FedError::Protocol("key setup in key-service mode".into()));
        }
        if task.epoch != self.epoch || task.threshold as usize != self.sizes.threshold {
            return Err(FedError::Refused(
                "key setup for another epoch or threshold".into(),
            ));
        }
        if let Some(post) = &self.dealt {
            return Ok(Action::PostKeySetup(post.clone()));
        }
        let kx = self
            .kx
            .as_ref()
            .ok_or_else(|| FedError::Config("no key-agreement secret".into()))?;
        let key = match &self.key {
            Some(k) => k.clone(),
            None => SecretShare::generate_for(&self.params, self.party, &mut self.rng),
        };
        // Dealt to the key holders only (every client, or the committee).
        let parties = self.sizes.holder_ids();
        let dealt = shamir_deal(
            &self.params,
            &key,
            self.sizes.threshold,
            &parties,
            &mut self.rng,
        )?;
        let mut sealed = Vec::new();
        let mut own = None;
        for s in dealt {
            if s.to() == self.party {
                own = Some(s);
                continue;
            }
            let peer = self.roster.by_party(s.to()).ok_or_else(|| {
                FedError::Protocol("dealing to a party outside the roster".into())
            })?;
            let pk = parse_public(&peer.kx_public)?;
            sealed.push(envelope::seal(
                kx,
                &pk,
                &self.cfg.name,
                self.epoch,
                self.party,
                s.to(),
                &s.to_bytes(),
            )?);
        }
        self.key = Some(key);
        self.received = own.into_iter().collect();
        self.save_state()?;
        let post = KeySetupPost {
            federation: self.cfg.name.clone(),
            epoch: self.epoch,
            shares: sealed,
        };
        self.dealt = Some(post.clone());
        Ok(Action::PostKeySetup(post))
    }

    fn check_quantization(&self, q: &Quantizer, task: &TrainTask, z: Option<f64>) -> Result<()> {
        let want = quant::expected(
            &self.cfg,
            self.dp.as_ref(),
            &self.packing,
            q.weight_reference,
            z,
        );
        if *q != want || task.chunks as usize != self.packing.chunks {
            return Err(FedError::Refused(
                "the round's quantization or noise differs from this client's configuration".into(),
            ));
        }
        Ok(())
    }

    fn upload_key(&self) -> String {
        format!("{}/{}", self.cfg.name, self.epoch)
    }

    fn train(&mut self, task: &TrainTask) -> Result<Action> {
        // A byte-identical resend of the last upload is harmless (the
        // coordinator already holds it); anything else for a round at or
        // before the last one this client uploaded in would put a second
        // update under the same key share and public polynomial — the
        // difference of the two would reveal the update.
        if let Some((r, _, chunks)) = &self.last_upload {
            if *r == task.round {
                // With the receipt in hand the update is durable where it
                // went (a region, which the coordinator learns of only when
                // the region forwards its sum): nothing to resend.
                if self.uploaded_in(task.round) {
                    return Ok(Action::Wait(RECEIPT_WAIT_MS));
                }
                return Ok(Action::Upload(chunks.clone()));
            }
        }
        if let Some(m) = self.uploads.get(&self.upload_key()) {
            if task.round <= m.round {
                tracing::warn!(
                    client = %self.id,
                    round = task.round,
                    last = m.round,
                    "training task for a round already uploaded in: refused"
                );
                return Err(FedError::Replay(format!(
                    "round {} is not after round {}, the last this client uploaded in: \
                     refusing to encrypt another update for it",
                    task.round, m.round
                )));
            }
        }
        if self.key.is_none() {
            return Err(FedError::NotReady("no key share yet".into()));
        }
        let crs = self
            .crs
            .ok_or_else(|| FedError::NotReady("join first".into()))?;
        let q = &task.quantization;
        let z = self.check_noise(task)?;
        self.check_quantization(q, task, z)?;
        if training::model_hash(&training::to_bytes(&task.model)) != task.model_hash {
            return Err(FedError::Protocol("model hash mismatch".into()));
        }
        let global = training::check_model(&task.model, self.model.num_params())?;
        let norm = global
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if !norm.is_finite() || norm > self.cfg.max_model_norm {
            return Err(FedError::Refused(format!(
                "the global model's L2 norm {norm:.3e} exceeds max_model_norm {:.3e}",
                self.cfg.max_model_norm
            )));
        }
        let training = &task.training;
        if *training != self.cfg.training {
            return Err(FedError::Refused(
                "training settings differ from the configuration".into(),
            ));
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let mut train_rng = ChaCha20Rng::from_seed(seed);
        let update = if self.synthetic {
            let mut u = vec![0f64; global.len()];
            cipherflow_dp::try_gaussian_noise(&mut train_rng, 0.01, &mut u)?;
            u.iter().map(|&x| x as f32).collect()
        } else if let Some(plan) = &self.local_dp {
            training::local_update_dp(&mut self.model, &global, &self.data, training, plan)?
        } else {
            training::local_update(
                &mut self.model,
                &global,
                &self.data,
                training,
                task.prox_mu.clamp(0.0, 10.0),
                &mut train_rng,
            )?
        };
        let chunks = self.encrypt_update(crs, task.round, q, &update)?;
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for c in &chunks {
            h.update(&c.ciphertext);
        }
        let hash: [u8; 32] = h.finalize().into();
        // Durable before the upload leaves: after a restart this client
        // still refuses to encrypt for this round again.
        let key = self.upload_key();
        self.uploads.insert(
            key,
            UploadMark {
                round: task.round,
                hash: hex::encode(hash),
            },
        );
        self.record_noise(task, z);
        self.save_state()?;
        self.last_upload = Some((task.round, hash, chunks.clone()));
        Ok(Action::Upload(chunks))
    }

    /// Quantizes, noises and encrypts `update` for `round` (chunks in
    /// parallel, each with its own generator seeded from the CSPRNG).
    pub fn encrypt_update(
        &mut self,
        crs: Crs,
        round: u64,
        q: &Quantizer,
        update: &[f32],
    ) -> Result<Vec<UploadChunk>> {
        let n_examples = self.data.len() as u64;
        let ints = self
            .packing
            .pack_values(q.encode(update, n_examples, &mut self.rng)?)?;
        let n = self.packing.n();
        let total = self.packing.chunks;
        let seeds: Vec<[u8; 32]> = (0..total)
            .map(|_| {
                let mut s = [0u8; 32];
                self.rng.fill_bytes(&mut s);
                s
            })
            .collect();
        let seeds_a = crate::packing::round_seeds(&crs, &self.cfg.name, self.epoch, round, total);
        let params = &self.params;
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| FedError::NotReady("no key share yet".into()))?;
        let fed = self.cfg.name.clone();
        (0..total)
            .into_par_iter()
            .map(|c| {
                let lo = (c * n).min(ints.len());
                let hi = ((c + 1) * n).min(ints.len());
                let seed = seeds
                    .get(c)
                    .ok_or_else(|| FedError::Protocol("chunk index".into()))?;
                let mut rng = ChaCha20Rng::from_seed(*seed);
                let a = seeds_a
                    .get(c)
                    .ok_or_else(|| FedError::Protocol("chunk index".into()))?;
                let ct = share_encrypt(params, key, a, &ints[lo..hi], q.shift, &mut rng)?;
                Ok(UploadChunk {
                    federation: fed.clone(),
                    round,
                    index: c as u32,
                    total: total as u32,
                    num_examples: n_examples,
                    ciphertext: ct.to_bytes(),
                })
            })
            .collect()
    }

    /// Records the coordinator's receipt; its entry proof must verify.
    pub fn on_receipt(&mut self, receipt: &UploadReceipt) -> Result<()> {
        let Some((round, hash, _)) = &self.last_upload else {
            return Ok(());
        };
        let (round, hash) = (*round, *hash);
        let proof = receipt
            .entry_proof
            .as_ref()
            .ok_or_else(|| FedError::Refused("a receipt without its ledger proof".into()))?;
        // A client of a region gets its region's receipt, signed under the
        // key the roster pins for the region, in the region's log.
        let e = match self.roster.region_of(&self.id) {
            Some(r) => {
                let key = r.public_key()?;
                let log = cipherflow_ledger::log_id(
                    &key,
                    &crate::roster::region_ledger_name(&self.cfg.name, &r.region_id),
                );
                proof
                    .verify(&key, Some(&log))
                    .map_err(|e| FedError::Refused(format!("region ledger proof: {e}")))?
            }
            None => self.verify_entry(proof)?,
        };
        match &e.body {
            EntryBody::UpdateReceived(u)
                if u.client_id == self.id && u.ciphertext_hash == hash && e.round == round => {}
            _ => {
                return Err(FedError::Refused(
                    "the receipt is not for this client's update".into(),
                ))
            }
        }
        if !self.unverified.iter().any(|(r, _)| *r == round) {
            self.unverified.push((round, hash));
        }
        Ok(())
    }
    /// The proof request for the oldest update not yet shown counted, if
    /// its round is at most `closed` (the last round known closed).
    pub fn proof_request(&self, closed: u64) -> Option<ProofRequest> {
        self.unverified
            .first()
            .filter(|(r, _)| *r <= closed)
            .map(|(r, _)| ProofRequest {
                federation: self.cfg.name.clone(),
                round: *r,
            })
    }

    /// Gives up on proving the update of `round` counted (e.g. it never
    /// reached the coordinator).
    pub fn forget_unverified(&mut self, round: u64) {
        self.unverified.retain(|(r, _)| *r != round);
    }

    /// Whether this client holds its own key share (it dealt, or enrolled).
    pub fn has_key_share(&self) -> bool {
        self.key.is_some()
    }

    /// Whether this client uploaded in `round` (its update awaits a proof).
    pub fn uploaded_in(&self, round: u64) -> bool {
        self.unverified.iter().any(|(r, _)| *r == round)
    }

    /// Verifies "my update was counted" for the pending round.
    pub fn on_counted_proof(&mut self, reply: &ProofReply) -> Result<cipherflow_ledger::Counted> {
        let (round, hash) = self
            .unverified
            .first()
            .copied()
            .ok_or_else(|| FedError::Protocol("no proof pending".into()))?;
        let proof = &reply.counted_proof;
        let key = self
            .ledger_key
            .ok_or_else(|| FedError::NotReady("no ledger key".into()))?;
        let c = proof
            .verify(&key, self.log_id.as_ref())
            .map_err(|e| FedError::Refused(format!("counted proof: {e}")))?;
        if c.client_id != self.id || c.round != round || c.ciphertext_hash != hash {
            return Err(FedError::Refused(
                "the counted proof is for another update".into(),
            ));
        }
        self.unverified.remove(0);
        Ok(c)
    }

    /// Local data size.
    pub fn num_examples(&self) -> usize {
        self.data.len()
    }
}
