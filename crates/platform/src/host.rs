//! The model creator's host (`cipherflow model-host`): it holds the whole
//! model (or the tail), registers with the platform, and for every session
//! the platform announces it opens its two channels — to the platform,
//! and relayed to the user with TLS inside (this host the server, its
//! certificate the one the model card publishes) — and takes part in the
//! tail's computation with the tail's weights as its private input. It
//! learns nothing of the user's input or activations: it sees replicated
//! shares only, and no output. In a `plain-tail` session (the user having
//! accepted the measured leakage) it receives the activations and runs the
//! tail in the clear.

use crate::channel::{read_message, read_message_max, write_message, BoxStream, StreamTransport};
use crate::client::PlatformClient;
use crate::error::PlatformError;
use crate::served_mpc::{Notice, HOST_CA_HEADER};
use crate::service::CREATOR_TOKEN_HEADER;
use crate::split::SPLIT_FRAC_BITS;
use crate::tls::HostIdentity;
use cipherflow_mpc::programs::handoff::{predict_from_handoff, PLATFORM, USER};
use cipherflow_mpc::programs::predict::{share_model, MODEL_OWNER};
use cipherflow_mpc::{FixedPoint, MpcError, Party};
use cipherflow_nn::Sequential;
use std::sync::Arc;
use std::time::Duration;

/// What a host serves.
#[derive(Clone)]
pub struct HostConfig {
    /// The model's name in the repository.
    pub name: String,
    /// The creator's token.
    pub token: String,
    /// The whole model, or its tail after the platform's head.
    pub model: Arc<Sequential>,
    /// How long a party waits for a message (and a session for its next
    /// query).
    pub idle: Duration,
}

/// How one session went, as the host logs it.
#[derive(Clone, Debug)]
pub struct SessionEnd {
    /// The split.
    pub split: usize,
    /// Queries answered.
    pub queries: usize,
    /// Why it ended (`None`: the user closed it).
    pub error: Option<String>,
}

/// The tail after split `k` of a model whose whole has `layers` layers:
/// from the whole model, or the file is exactly that tail.
pub fn tail_for(model: &Sequential, layers: usize, k: usize) -> Result<Sequential, PlatformError> {
    let have = model.layers().len();
    if have == layers {
        return Ok(model.split_at(k)?.1);
    }
    if have + k == layers {
        return Ok(model.clone());
    }
    Err(PlatformError::BadRequest(format!(
        "this host's model has {have} layers; the platform's has {layers}, split after {k}: \
         the host needs the whole model or the {} layers after the split",
        layers.saturating_sub(k)
    )))
}

/// Registers with the platform and serves sessions until the platform
/// closes the host's channel (an error) or `shutdown` resolves (`Ok`).
/// `ready` is called with the host's certificate fingerprint once
/// registered; `ended` with each session's outcome.
pub async fn run_model_host(
    client: PlatformClient,
    cfg: HostConfig,
    ready: impl FnOnce(&str),
    ended: impl Fn(SessionEnd) + Send + Sync + 'static,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PlatformError> {
    crate::repo::check_name(&cfg.name)?;
    let id = HostIdentity::generate()?;
    let ca = hex::encode(&id.ca_der);
    let mut control = client
        .channel(
            &format!("/v1/models/{}/host", cfg.name),
            &[(CREATOR_TOKEN_HEADER, &cfg.token), (HOST_CA_HEADER, &ca)],
        )
        .await?;
    ready(&id.fingerprint());
    let ended = Arc::new(ended);
    tokio::pin!(shutdown);
    loop {
        let msg = tokio::select! {
            m = read_message(&mut control) => m,
            () = &mut shutdown => return Ok(()),
        };
        let msg = msg
            .map_err(|e| PlatformError::Transport(format!("the host's channel: {e}")))?
            .ok_or_else(|| {
                PlatformError::Transport("the platform closed the host's channel".into())
            })?;
        let notice: Notice = serde_json::from_slice(&msg)
            .map_err(|e| PlatformError::Transport(format!("a malformed notice: {e}")))?;
        let (client, cfg, server, ended) = (
            client.clone(),
            cfg.clone(),
            id.server.clone(),
            ended.clone(),
        );
        tokio::spawn(async move {
            let split = notice.split;
            let out = serve_session(client, cfg, server, notice).await;
            ended(match out {
                Ok(queries) => SessionEnd {
                    split,
                    queries,
                    error: None,
                },
                Err((queries, e)) => SessionEnd {
                    split,
                    queries,
                    error: Some(e.to_string()),
                },
            });
        });
    }
}

/// Opens the relayed channel to the user, TLS inside (this host the
/// server).
async fn user_channel(
    client: &PlatformClient,
    base: &str,
    token: &str,
    server: Arc<rustls::ServerConfig>,
) -> Result<BoxStream, PlatformError> {
    let relay = client
        .channel(
            &format!("{base}?peer=user"),
            &[(CREATOR_TOKEN_HEADER, token)],
        )
        .await?;
    Ok(Box::new(
        tokio_rustls::TlsAcceptor::from(server)
            .accept(relay)
            .await
            .map_err(|e| PlatformError::Transport(format!("TLS with the user: {e}")))?,
    ))
}

/// A `plain-tail` session: the user's activations arrive in the clear
/// (inside TLS), the tail runs here, the scores go back.
async fn serve_plain(
    client: PlatformClient,
    cfg: HostConfig,
    server: Arc<rustls::ServerConfig>,
    n: Notice,
) -> Result<usize, (usize, PlatformError)> {
    let base = format!("/v1/hosts/{}/channel", n.ticket);
    let mut user = user_channel(&client, &base, &cfg.token, server)
        .await
        .map_err(|e| (0, e))?;
    let mut tail = tail_for(&cfg.model, n.layers, n.split).map_err(|e| (0, e))?;
    let shape = tail.input_shape().to_vec();
    let width: usize = shape.iter().product();
    let mut queries = 0;
    loop {
        let msg = match tokio::time::timeout(cfg.idle, read_message_max(&mut user, width * 8)).await
        {
            Ok(Ok(Some(m))) => m,
            // The user closed the session, or left it idle.
            Ok(Ok(None)) | Err(_) => return Ok(queries),
            Ok(Err(e)) => {
                return Err((queries, PlatformError::Transport(format!("the user: {e}"))))
            }
        };
        if msg.len() != width * 8 {
            let e = format!(
                "{} bytes of activations, the tail takes {width} values",
                msg.len()
            );
            return Err((queries, PlatformError::BadRequest(e)));
        }
        let x: Vec<f32> = msg
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect();
        let mut dims = vec![1];
        dims.extend(&shape);
        let t = cipherflow_nn::Tensor::from_shape_vec(ndarray::IxDyn(&dims), x)
            .map_err(|e| (queries, PlatformError::BadRequest(e.to_string())))?;
        let y = tail.predict(&t).map_err(|e| (queries, e.into()))?;
        let scores: Vec<u8> = y.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect();
        write_message(&mut user, &scores)
            .await
            .map_err(|e| (queries, PlatformError::Transport(format!("the user: {e}"))))?;
        queries += 1;
    }
}

async fn serve_session(
    client: PlatformClient,
    cfg: HostConfig,
    server: Arc<rustls::ServerConfig>,
    n: Notice,
) -> Result<usize, (usize, PlatformError)> {
    if n.mode == "plain-tail" {
        return serve_plain(client, cfg, server, n).await;
    }
    let base = format!("/v1/hosts/{}/channel", n.ticket);
    let auth = [(CREATOR_TOKEN_HEADER, cfg.token.as_str())];
    let open = async {
        let to_platform = client
            .channel(&format!("{base}?peer=platform"), &auth)
            .await?;
        let to_user = user_channel(&client, &base, &cfg.token, server).await?;
        Ok::<_, PlatformError>((to_platform, to_user))
    };
    let (to_platform, to_user) = open.await.map_err(|e| (0, e))?;
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let t = StreamTransport::new(
            MODEL_OWNER,
            vec![(PLATFORM, to_platform), (USER, to_user)],
            handle,
            cfg.idle,
        )
        .map_err(|e| (0, e.into()))?;
        let fp = FixedPoint::new::<u128>(SPLIT_FRAC_BITS).map_err(|e| (0, e.into()))?;
        let mut p = Party::<u128>::setup(Box::new(t), fp).map_err(|e| (0, e.into()))?;
        let tail = match tail_for(&cfg.model, n.layers, n.split) {
            Ok(t) => t,
            Err(e) => {
                p.abort(&MpcError::Config(e.to_string()));
                return Err((0, e));
            }
        };
        let shared = match share_model(&mut p, Some(&tail)) {
            Ok(s) => s,
            Err(e) => {
                p.abort(&e);
                return Err((0, e.into()));
            }
        };
        let mut queries = 0;
        loop {
            match predict_from_handoff(&mut p, &shared, None, n.guard) {
                Ok(_) => queries += 1,
                // The user or the platform closed the session between
                // queries: its normal end.
                Err(MpcError::PeerClosed(_)) => return Ok(queries),
                Err(e) => {
                    p.abort(&e);
                    return Err((queries, e.into()));
                }
            }
        }
    })
    .await
    .map_err(|e| (0, PlatformError::Transport(e.to_string())))?
}
