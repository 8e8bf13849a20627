//! Blocking gRPC clients for the agents (each with its own Tokio runtime)
//! and the coordinator's async key-service client, over mutual TLS with
//! the server's roster name and certificate pinned (see [`super::tls`]).

use super::agent::{CoordinatorApi, KeyServiceApi};
use super::convert::{all_in, all_out, OnWire};
use super::grpc::{from_call, received, TlsFiles, MAX_MESSAGE_BYTES};
use crate::error::{FedError, Result};
use crate::messages as m;
use crate::proto::{self, coordinator_client, key_service_client};
use crate::roster::ServerPin;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Response, Status};

/// A lazily connected channel to `url`, over TLS with `tls`'s certificate,
/// to the server that proves `pin`'s name and certificate.
pub(crate) fn channel(url: &str, tls: &TlsFiles<'_>, pin: &ServerPin) -> Result<Channel> {
    // The connector does TLS itself; tonic sees plain HTTP/2.
    let plain = match url.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => {
            return Err(FedError::Config(format!(
                "{url}: the {} is dialled over https://",
                pin.role
            )))
        }
    };
    let endpoint = Endpoint::from_shared(plain)
        .map_err(|e| FedError::Config(format!("{url}: {e}")))?
        .timeout(Duration::from_secs(120));
    let connector = super::tls::PinnedConnector::new(tls.ca, tls.cert, tls.key, pin)?;
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// A blocking coordinator client (its own Tokio runtime).
pub struct CoordinatorRemote {
    rt: tokio::runtime::Runtime,
    client: coordinator_client::CoordinatorClient<Channel>,
    pin: ServerPin,
}

impl CoordinatorRemote {
    /// Connects (lazily) to `url` (e.g. `https://127.0.0.1:7443`), where
    /// the coordinator must prove `pin` (`roster.server_pin(Role::Coordinator)`).
    pub fn connect(url: &str, tls: &TlsFiles<'_>, pin: &ServerPin) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| FedError::Transport(e.to_string()))?;
        let ch = {
            let _guard = rt.enter();
            channel(url, tls, pin)?
        };
        let client = coordinator_client::CoordinatorClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            rt,
            client,
            pin: pin.clone(),
        })
    }

    fn fail(&self) -> impl Fn(Status) -> FedError + '_ {
        |s| from_call(&self.pin, s)
    }
}

impl CoordinatorRemote {
    /// One unary call: the request in its protobuf form, the reply back
    /// in its domain type.
    fn unary<Q: OnWire + Clone, R: OnWire, F, Fut>(&self, r: &Q, call: F) -> Result<R>
    where
        F: FnOnce(coordinator_client::CoordinatorClient<Channel>, Q::Proto) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Response<R::Proto>, Status>>,
    {
        let c = self.client.clone();
        let req = Q::Proto::from(r.clone());
        let reply = self.rt.block_on(call(c, req)).map_err(self.fail())?;
        received(reply)
    }
}

impl CoordinatorApi for CoordinatorRemote {
    fn join(&mut self, r: &m::JoinRequest) -> Result<m::JoinReply> {
        self.unary(r, |mut c, r| async move { c.join(r).await })
    }
    fn post_key_setup(&mut self, r: &m::KeySetupPost) -> Result<m::KeySetupBundle> {
        self.unary(r, |mut c, r| async move { c.post_key_setup(r).await })
    }
    fn get_key_setup(&mut self, r: &m::KeySetupQuery) -> Result<m::KeySetupBundle> {
        self.unary(r, |mut c, r| async move { c.get_key_setup(r).await })
    }
    fn next_task(&mut self, r: &m::TaskRequest) -> Result<m::Task> {
        self.unary(r, |mut c, r| async move { c.next_task(r).await })
    }
    fn upload(&mut self, chunks: Vec<m::UploadChunk>) -> Result<m::UploadReceipt> {
        let mut c = self.client.clone();
        let chunks: Vec<proto::UploadChunk> = all_out(chunks);
        let reply = self
            .rt
            .block_on(async move { c.upload(tokio_stream::iter(chunks)).await })
            .map_err(self.fail())?;
        received(reply)
    }
    fn send_share(&mut self, parts: Vec<m::ShareChunk>) -> Result<m::ShareReceipt> {
        let mut c = self.client.clone();
        let parts: Vec<proto::ShareChunk> = all_out(parts);
        let reply = self
            .rt
            .block_on(async move { c.send_share(tokio_stream::iter(parts)).await })
            .map_err(self.fail())?;
        received(reply)
    }
    fn counted_proof(&mut self, r: &m::ProofRequest) -> Result<m::ProofReply> {
        self.unary(r, |mut c, r| async move { c.counted_proof(r).await })
    }
}

/// A key-service client (async inside the coordinator; blocking for agents).
pub struct KeyServiceRemote {
    client: key_service_client::KeyServiceClient<Channel>,
    rt: Option<tokio::runtime::Runtime>,
    pin: ServerPin,
}

impl KeyServiceRemote {
    pub(crate) async fn connect_async(
        url: &str,
        tls: &TlsFiles<'_>,
        pin: &ServerPin,
    ) -> Result<Self> {
        let ch = channel(url, tls, pin)?;
        Ok(Self {
            client: key_service_client::KeyServiceClient::new(ch)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            rt: None,
            pin: pin.clone(),
        })
    }

    /// A blocking client (for agents) of the key service at `url`, which
    /// must prove `pin` (`roster.server_pin(Role::KeyService)`).
    pub fn connect(url: &str, tls: &TlsFiles<'_>, pin: &ServerPin) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| FedError::Transport(e.to_string()))?;
        let mut k = rt.block_on(Self::connect_async(url, tls, pin))?;
        k.rt = Some(rt);
        Ok(k)
    }

    pub(crate) async fn decrypt_async(
        &mut self,
        req: m::KeyServiceDecrypt,
    ) -> Result<Vec<m::ShareChunk>> {
        let pin = self.pin.clone();
        let mut stream = self
            .client
            .decrypt(proto::KeyServiceDecrypt::from(req))
            .await
            .map_err(|s| from_call(&pin, s))?
            .into_inner();
        let mut parts = Vec::new();
        while let Some(p) = stream.message().await.map_err(|s| from_call(&pin, s))? {
            if parts.len() > cipherflow_ckks::multiparty::MAX_CHUNKS {
                return Err(FedError::Protocol("too many share parts".into()));
            }
            parts.push(p);
        }
        all_in(parts).map_err(|e| FedError::Malformed(e.to_string()))
    }
}

impl KeyServiceApi for KeyServiceRemote {
    fn enroll(&mut self, r: &m::EnrollRequest) -> Result<m::EnrollReply> {
        let mut c = self.client.clone();
        let r = proto::EnrollRequest::from(r.clone());
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| FedError::Transport("async key-service client used blocking".into()))?;
        let reply = rt
            .block_on(async move { c.enroll(r).await })
            .map_err(|s| from_call(&self.pin, s))?;
        received(reply)
    }
}
