//! A client of the platform's API over HTTPS (hyper over rustls, one
//! connection per request), verifying the server against a CA file.
//! Answers are bounded in size before they are read.

use crate::channel::{BoxStream, UPGRADE_PROTOCOL};
use crate::error::PlatformError;
use crate::service::CREATOR_TOKEN_HEADER;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::Request;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Largest answer read (bytes).
pub const MAX_ANSWER_BYTES: usize = 1 << 30;

/// A platform at `https://host:port`.
#[derive(Clone)]
pub struct PlatformClient {
    host: String,
    port: u16,
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

fn transport(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::Transport(e.to_string())
}

impl PlatformClient {
    /// A client of `url` (`https://host:port`) trusting the CA in `ca`,
    /// each request bounded by `timeout`.
    pub fn new(url: &str, ca: &Path, timeout: Duration) -> Result<Self, PlatformError> {
        let rest = url.strip_prefix("https://").ok_or_else(|| {
            PlatformError::BadRequest(format!("server {url:?}: an https:// address"))
        })?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse()
                    .map_err(|_| PlatformError::BadRequest(format!("server {url:?}: port")))?,
            ),
            _ => (rest.to_string(), 443),
        };
        if host.is_empty() || host.contains('/') {
            return Err(PlatformError::BadRequest(format!("server {url:?}")));
        }
        let cfg = crate::tls::client_config(ca)?;
        Ok(Self {
            host,
            port,
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            timeout,
        })
    }

    /// Sends one request; returns the answer's body, or the platform's
    /// refusal with its status and reason.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Result<Bytes, PlatformError> {
        tokio::time::timeout(self.timeout, self.request_inner(method, path, body, token))
            .await
            .map_err(|_| {
                PlatformError::Transport(format!(
                    "no answer within {:.0} s",
                    self.timeout.as_secs_f64()
                ))
            })?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Result<Bytes, PlatformError> {
        let (mut send, conn) = hyper::client::conn::http1::handshake(self.tls_stream().await?)
            .await
            .map_err(transport)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream");
        if let Some(t) = token {
            req = req.header(CREATOR_TOKEN_HEADER, t);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PlatformError::BadRequest(e.to_string()))?;
        let resp = send.send_request(req).await.map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .map_err(transport);
        }
        Err(refusal(resp).await)
    }

    /// A TLS connection to the platform, the server verified.
    async fn tls_stream(
        &self,
    ) -> Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, PlatformError>
    {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| transport(format!("{}:{}: {e}", self.host, self.port)))?;
        // Headers and body go in separate writes: without this, Nagle's
        // algorithm and delayed acknowledgements add tens of milliseconds.
        tcp.set_nodelay(true).map_err(transport)?;
        let name = crate::tls::server_name(&self.host)?;
        let tls = self.tls.connect(name, tcp).await.map_err(transport)?;
        Ok(hyper_util::rt::TokioIo::new(tls))
    }

    /// Opens a raw channel: a request to `path` upgraded to
    /// [`UPGRADE_PROTOCOL`] (the platform answers 101, or refuses with its
    /// reason). `headers` go with the request.
    pub async fn channel(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<BoxStream, PlatformError> {
        tokio::time::timeout(self.timeout, async {
            let (mut send, conn) = hyper::client::conn::http1::handshake(self.tls_stream().await?)
                .await
                .map_err(transport)?;
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
            let mut req = Request::builder()
                .method("POST")
                .uri(path)
                .header(hyper::header::HOST, &self.host)
                .header(hyper::header::CONNECTION, "upgrade")
                .header(hyper::header::UPGRADE, UPGRADE_PROTOCOL);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(Bytes::new()))
                .map_err(|e| PlatformError::BadRequest(e.to_string()))?;
            let resp = send.send_request(req).await.map_err(transport)?;
            if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
                return Err(refusal(resp).await);
            }
            let up = hyper::upgrade::on(resp).await.map_err(transport)?;
            Ok(Box::new(hyper_util::rt::TokioIo::new(up)) as BoxStream)
        })
        .await
        .map_err(|_| {
            PlatformError::Transport(format!(
                "no channel within {:.0} s",
                self.timeout.as_secs_f64()
            ))
        })?
    }
}

/// The platform's refusal: its status and the reason in its JSON body.
async fn refusal(resp: hyper::Response<hyper::body::Incoming>) -> PlatformError {
    let status = resp.status();
    let bytes = match Limited::new(resp.into_body(), 64 << 10).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return transport(format!("status {status}: {e}")),
    };
    {
        let reason = serde_json::from_slice::<cipherflow_api::ErrorBody>(&bytes)
            .ok()
            .map(|b| b.error)
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(500).collect());
        PlatformError::Refused {
            status: status.as_u16(),
            reason,
        }
    }
}

impl PlatformClient {
    /// A JSON answer, read as `T` (one of `cipherflow-api`'s types).
    pub async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, PlatformError> {
        let b = self.request(method, path, body, None).await?;
        serde_json::from_slice(&b).map_err(|e| {
            PlatformError::Transport(format!("an answer that does not read as expected: {e}"))
        })
    }

    /// A JSON answer.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Result<serde_json::Value, PlatformError> {
        let b = self.request(method, path, body, token).await?;
        serde_json::from_slice(&b)
            .map_err(|e| PlatformError::Transport(format!("an answer that is not JSON: {e}")))
    }
}

/// Percent-encodes a query parameter value.
pub fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
