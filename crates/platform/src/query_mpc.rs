//! The user's side of a query in `mpc` mode: keys made here (the secret
//! key never leaves this process), the head's evaluation keys uploaded once
//! per session, two channels opened (to the platform; to the model host,
//! relayed by the platform, with TLS to the host inside it), and for each
//! input: encrypted, sent, the masked head output decrypted and decoded
//! into this party's shares, the tail run with the platform and the host.
//! Only this process learns the class.

use crate::channel::{BoxStream, StreamTransport, Traffic};
use crate::client::PlatformClient;
use crate::error::PlatformError;
use crate::query::{open_with_keys, send_encrypted, Answer, Opened};
use crate::served_mpc::SplitInfo;
use crate::split::SPLIT_FRAC_BITS;
use cipherflow_api::ModelCard;
use cipherflow_mpc::programs::handoff::{predict_from_handoff, ActivationShare, PLATFORM, USER};
use cipherflow_mpc::programs::predict::{share_model, SharedModel, MODEL_OWNER};
use cipherflow_mpc::{FixedPoint, Party};
use cipherflow_tensor::handoff::decrypt_handoff;
use cipherflow_tensor::{ActivationDecoding, KeySet, ModelClient};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An open `mpc` session with a model of the platform.
pub struct MpcQuerySession {
    client: PlatformClient,
    model: ModelClient,
    keys: KeySet,
    session: String,
    card: ModelCard,
    info: SplitInfo,
    party: Arc<Mutex<Party<u128>>>,
    tail: Arc<SharedModel<u128>>,
    traffic: Arc<Traffic>,
    decoding: Mutex<Option<ActivationDecoding>>,
    /// Bytes of evaluation keys uploaded.
    pub key_bytes: usize,
    /// Milliseconds making the keys.
    pub keygen_ms: f64,
    /// Milliseconds from the session's opening to the tail shared.
    pub setup_ms: f64,
}

fn bad(m: impl std::fmt::Display) -> PlatformError {
    PlatformError::Transport(m.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The platform's description of split `k` of `model`, checked to be
/// that split's.
pub(crate) async fn fetch_split(
    client: &PlatformClient,
    model: &str,
    k: usize,
) -> Result<SplitInfo, PlatformError> {
    crate::repo::check_name(model)?;
    let info: SplitInfo = serde_json::from_value(
        client
            .json(
                "GET",
                &format!("/v1/models/{model}/splits/{k}"),
                Vec::new(),
                None,
            )
            .await?,
    )
    .map_err(|e| bad(format!("a malformed split description: {e}")))?;
    if info.k != k {
        return Err(bad(format!("asked for split {k}, described {}", info.k)));
    }
    Ok(info)
}

/// The CA of the host a split's description names, checked against the
/// user's pin (its SHA-256) when given.
pub(crate) fn pinned_host(
    info: &SplitInfo,
    model: &str,
    pin: Option<&str>,
) -> Result<Vec<u8>, PlatformError> {
    let host = info.host.as_ref().ok_or_else(|| {
        PlatformError::Unavailable(format!(
            "no host of {model} is online: its creator runs `cipherflow model-host`"
        ))
    })?;
    let ca = hex::decode(&host.ca).map_err(|e| bad(format!("the host's certificate: {e}")))?;
    let seen = crate::tls::fingerprint(&ca);
    if let Some(p) = pin.filter(|p| !p.eq_ignore_ascii_case(&seen)) {
        return Err(PlatformError::Forbidden(format!(
            "the platform names a host whose certificate has SHA-256 {seen}, not the pinned {p}"
        )));
    }
    Ok(ca)
}

/// The session's channel to the model host: relayed by the platform, TLS
/// inside it against the host's CA `ca`.
pub(crate) async fn host_channel(
    client: &PlatformClient,
    session: &str,
    ca: &[u8],
) -> Result<BoxStream, PlatformError> {
    let relay = client
        .channel(&format!("/v1/sessions/{session}/channel?peer=host"), &[])
        .await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(crate::tls::host_client_config(ca)?));
    let name = crate::tls::server_name(crate::tls::HOST_NAME)?;
    Ok(Box::new(tls.connect(name, relay).await.map_err(|e| {
        bad(format!("TLS with the model host: {e}"))
    })?))
}

impl MpcQuerySession {
    /// Opens a session with `model` at `split` (default: the card's
    /// recommended split). `pin`: the SHA-256 (hex) the host's
    /// certificate must have — out of band, so that not even a platform
    /// that lies about the host could stand in for it. `idle`: how long
    /// a party waits for a message.
    pub async fn open(
        client: PlatformClient,
        model: &str,
        split: Option<usize>,
        pin: Option<&str>,
        idle: Duration,
    ) -> Result<Self, PlatformError> {
        let card = crate::query::fetch_card(&client, model).await?;
        let mpc = card.mpc.as_ref().ok_or_else(|| {
            PlatformError::Forbidden(format!(
                "{model} is not served in mpc mode (its modes: {})",
                if card.modes.is_empty() {
                    "none".into()
                } else {
                    card.modes.join(", ")
                }
            ))
        })?;
        let k = match split {
            Some(k) => k,
            None => mpc
                .recommended
                .ok_or_else(|| bad("the model card recommends no split"))?,
        };
        let info = fetch_split(&client, model, k).await?;
        let ca = pinned_host(&info, model, pin)?;
        let mc = ModelClient::new(info.spec.clone())?;
        let Opened {
            keys,
            keygen_ms,
            key_bytes,
            session,
        } = open_with_keys(
            &client,
            &mc,
            &format!("/v1/models/{model}/sessions?mode=mpc&split={k}"),
        )
        .await?;
        let t = Instant::now();
        let to_platform = client
            .channel(
                &format!("/v1/sessions/{session}/channel?peer=platform"),
                &[],
            )
            .await?;
        let to_host = host_channel(&client, &session, &ca).await?;
        let handle = tokio::runtime::Handle::current();
        let (party, tail, traffic) = tokio::task::spawn_blocking(move || {
            let t = StreamTransport::new(
                USER,
                vec![(PLATFORM, to_platform), (MODEL_OWNER, to_host)],
                handle,
                idle,
            )?;
            let traffic = t.traffic();
            let mut p =
                Party::<u128>::setup(Box::new(t), FixedPoint::new::<u128>(SPLIT_FRAC_BITS)?)?;
            let tail = share_model(&mut p, None)?;
            Ok::<_, PlatformError>((p, tail, traffic))
        })
        .await
        .map_err(bad)??;
        Ok(Self {
            client,
            model: mc,
            keys,
            session,
            card,
            info,
            party: Arc::new(Mutex::new(party)),
            tail: Arc::new(tail),
            traffic,
            decoding: Mutex::new(None),
            key_bytes,
            keygen_ms,
            setup_ms: t.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// The model's card as the platform published it.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The preprocessing the model declares (normalization, class names).
    pub fn preprocessing(&self) -> Result<Option<cipherflow_nn::Preprocessing>, PlatformError> {
        crate::query::preprocessing_of(&self.card)
    }

    /// The session's id (the user's credential for its channels).
    pub fn session_id(&self) -> &str {
        &self.session
    }

    /// The split's description.
    pub fn split(&self) -> &SplitInfo {
        &self.info
    }

    /// Bytes this party has sent and received in the computation so far
    /// (the tail's sharing included).
    pub fn mpc_bytes(&self) -> u64 {
        self.traffic.total()
    }

    /// Encrypts `x` (preprocessed), has the platform run the head, and
    /// runs the tail with the platform and the host; returns the class
    /// (`scores` stay empty: only the class is revealed).
    pub async fn classify(&self, x: &[f64]) -> Result<Answer, PlatformError> {
        let t = Instant::now();
        let before = self.traffic.total();
        let params = self.model.params();
        let (masked, upload_bytes, download_bytes) =
            send_encrypted(&self.client, &self.model, &self.keys, &self.session, x).await?;
        let shares = decrypt_handoff(&self.keys.decryptor(), &masked)?;
        let mine = {
            let mut d = lock(&self.decoding);
            let dec = match d.take() {
                Some(dec) if dec.fits(&masked) => dec,
                _ => ActivationDecoding::new(params, &masked, &self.info.handoff)?,
            };
            let mine = dec.apply(&shares)?;
            *d = Some(dec);
            mine
        };
        if mine.guard != self.info.guard {
            return Err(bad(format!(
                "guard bits {} here, {} announced",
                mine.guard, self.info.guard
            )));
        }
        let party = self.party.clone();
        let tail = self.tail.clone();
        let classes = tokio::task::spawn_blocking(move || {
            let share = ActivationShare {
                rows: mine.rows,
                cols: mine.cols,
                values: &mine.values,
            };
            let mut p = lock(&party);
            let r = predict_from_handoff(&mut p, &tail, Some(share), mine.guard);
            if let Err(e) = &r {
                p.abort(e);
            }
            r
        })
        .await
        .map_err(bad)??;
        let class = classes
            .and_then(|c| c.first().copied())
            .ok_or_else(|| bad("the computation revealed no class"))?;
        let mpc = self.traffic.total().saturating_sub(before) as usize;
        Ok(Answer {
            scores: Vec::new(),
            class,
            ms: t.elapsed().as_secs_f64() * 1e3,
            upload_bytes,
            download_bytes,
            mpc_bytes: mpc,
        })
    }

    /// Closes the session (the platform's and the host's parties end).
    pub async fn close(self) -> Result<(), PlatformError> {
        self.client
            .request(
                "DELETE",
                &format!("/v1/sessions/{}", self.session),
                Vec::new(),
                None,
            )
            .await?;
        Ok(())
    }
}
