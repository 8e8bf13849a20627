//! The TLS layer under gRPC, built on rustls directly rather than through
//! tonic's TLS options, which can neither pin a certificate nor report why
//! a handshake failed.
//!
//! * **Clients** dial a role ([`Role`]) by the role's name from the roster
//!   — whatever address they connect to — and verify the server's
//!   certificate with rustls's WebPKI verifier (chain to the federation's
//!   CA, ServerAuth usage, validity, name), then require its SHA-256 to be
//!   the roster's fingerprint for that role ([`PinnedServerVerifier`]). So
//!   the coordinator's certificate never passes for the key service's, nor
//!   a client's for a server's.
//! * **Servers** require a client certificate chaining to the CA with the
//!   ClientAuth usage (WebPKI's client verifier), do the handshake
//!   themselves, and log every refused handshake at `warn` with its peer and
//!   reason, counting it in [`TransportRefusals`].
//! * A refused handshake reaches the caller as [`FedError::Refused`] naming
//!   the role, the address and the reason — at once, not retried as a
//!   transport error.

use crate::error::{FedError, Result};
use crate::metrics::TransportRefusals;
use crate::roster::{Role, ServerPin};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    ServerConfig, SignatureScheme,
};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;

/// How long a TLS handshake may take, either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const ALPN_H2: &[u8] = b"h2";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> FedError {
    FedError::Transport(format!("TLS: {e}"))
}

fn read_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(p).map_err(|e| FedError::io(p, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| FedError::Config(format!("{}: {e}", p.display())))?;
    if certs.is_empty() {
        return Err(FedError::Config(format!("{}: no certificate", p.display())));
    }
    Ok(certs)
}

fn read_key(p: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(p).map_err(|e| FedError::io(p, e))?);
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| FedError::Config(format!("{}: {e}", p.display())))
}

/// The certificates of a PEM file as trust roots.
pub(crate) fn roots(ca: &Path) -> Result<Arc<RootCertStore>> {
    let mut r = RootCertStore::empty();
    for c in read_certs(ca)? {
        r.add(c)
            .map_err(|e| FedError::Config(format!("{}: {e}", ca.display())))?;
    }
    Ok(Arc::new(r))
}

/// The pinned certificate did not match.
#[derive(Debug)]
struct PinMismatch {
    role: Role,
    expected: String,
    presented: String,
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the certificate (SHA-256 {}) is not the {}'s pinned in the roster (SHA-256 {})",
            self.presented, self.role, self.expected
        )
    }
}

impl std::error::Error for PinMismatch {}

/// WebPKI verification (chain to the CA, ServerAuth usage, validity, the
/// role's name), then the roster's fingerprint for the role.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    role: Role,
    pin: [u8; 32],
}

impl PinnedServerVerifier {
    /// A verifier for `pin` under the CA certificates in `ca`.
    pub fn new(ca: &Path, pin: &ServerPin) -> Result<Self> {
        let fp: [u8; 32] = hex::decode(&pin.cert_sha256)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                FedError::Config(format!("bad certificate fingerprint for the {}", pin.role))
            })?;
        let inner = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider())
            .build()
            .map_err(tls_err)?;
        Ok(Self {
            inner,
            role: pin.role,
            pin: fp,
        })
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let fp: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if fp != self.pin {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch {
                    role: self.role,
                    expected: hex::encode(self.pin),
                    presented: hex::encode(fp),
                })),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client's TLS configuration for dialling `pin`'s role with the
/// certificate and key in `cert`/`key`.
pub fn client_config(ca: &Path, cert: &Path, key: &Path, pin: &ServerPin) -> Result<ClientConfig> {
    let verifier = Arc::new(PinnedServerVerifier::new(ca, pin)?);
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| FedError::Config(format!("{}: {e}", cert.display())))?;
    c.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(c)
}

/// A server's TLS configuration: its certificate and key, client
/// certificates required and verified against the CA (ClientAuth usage).
pub fn server_config(ca: &Path, cert: &Path, key: &Path) -> Result<ServerConfig> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
            .build()
            .map_err(tls_err)?;
    let mut c = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| FedError::Config(format!("{}: {e}", cert.display())))?;
    c.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(c)
}

/// Why a connection to a server failed.
#[derive(Debug)]
pub enum ConnectFailure {
    /// The TCP connection failed (the server may be restarting).
    Unreachable(std::io::Error),
    /// The handshake was refused: by us (the server's certificate) or by
    /// the server (ours).
    Refused(rustls::Error),
    /// The handshake broke off or timed out.
    Broken(String),
}

/// A failed connection to a role.
#[derive(Debug)]
pub struct ConnectError {
    /// The role dialled.
    pub role: Role,
    /// The address dialled.
    pub addr: String,
    /// The name the server had to prove.
    pub name: String,
    /// What went wrong.
    pub failure: ConnectFailure,
}

impl ConnectError {
    /// Whether the failure is a refusal (not worth retrying).
    pub fn is_refusal(&self) -> bool {
        matches!(self.failure, ConnectFailure::Refused(_))
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (role, addr) = (self.role, &self.addr);
        match &self.failure {
            ConnectFailure::Unreachable(e) => write!(f, "cannot reach the {role} at {addr}: {e}"),
            ConnectFailure::Broken(e) => {
                write!(f, "TLS handshake with the {role} at {addr} failed: {e}")
            }
            ConnectFailure::Refused(e) => write!(
                f,
                "TLS handshake with the {role} at {addr} refused: {}",
                explain(e, role, &self.name)
            ),
        }
    }
}

impl std::error::Error for ConnectError {}

/// A rustls error in words, from the point of view of a party dialling
/// `role` under `name`.
pub fn explain(e: &rustls::Error, role: Role, name: &str) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            let why = match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    issuer_problem(c)
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    format!("it is not issued to the {role}'s name {name:?} ({c})")
                }
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => {
                    "it is not a server certificate (extended key usage)".to_string()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    format!("it has expired ({c})")
                }
                CertificateError::Other(o) => o.to_string(),
                other => other.to_string(),
            };
            format!("the server's certificate is refused: {why}")
        }
        rustls::Error::AlertReceived(a) => {
            let why = match a {
                AlertDescription::UnknownCA => "it does not trust the CA that issued it",
                AlertDescription::BadCertificate => {
                    "it is not acceptable (e.g. not issued by the federation's CA)"
                }
                AlertDescription::DecryptError => {
                    "it does not verify (e.g. issued by another CA of the same name)"
                }
                AlertDescription::UnsupportedCertificate => {
                    "it is not a client certificate (extended key usage)"
                }
                AlertDescription::CertificateExpired => "it has expired or is not yet valid",
                AlertDescription::CertificateRevoked => "it was revoked",
                AlertDescription::CertificateRequired => "none was presented",
                _ => "the server sent an alert",
            };
            format!("the server refused our certificate: {why} (TLS alert {a:?})")
        }
        other => other.to_string(),
    }
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Dials TCP and does the TLS handshake with the pinned configuration; the
/// `Service<Uri>` tonic's `Endpoint::connect_with_connector` takes.
#[derive(Clone)]
pub struct PinnedConnector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    role: Role,
}

impl PinnedConnector {
    /// A connector for `pin`'s role.
    pub fn new(ca: &Path, cert: &Path, key: &Path, pin: &ServerPin) -> Result<Self> {
        let name = ServerName::try_from(pin.name.clone()).map_err(|_| {
            FedError::Config(format!("{:?} is not a DNS name or an IP address", pin.name))
        })?;
        Ok(Self {
            config: Arc::new(client_config(ca, cert, key, pin)?),
            name,
            role: pin.role,
        })
    }
}

type IoStream = hyper_util::rt::TokioIo<Prefixed<tokio_rustls::client::TlsStream<TcpStream>>>;

/// How long a client waits, after a TLS 1.3 handshake, for the server's
/// first bytes (an HTTP/2 server speaks first) or its refusal.
const VERDICT_WAIT: Duration = Duration::from_secs(2);

/// A stream with bytes already read from it put back in front.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.prefix.get(this.pos..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::codegen::Service<Uri> for PinnedConnector {
    type Response = IoStream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<IoStream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.config.clone();
        let name = self.name.clone();
        let role = self.role;
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let addr = format!("{}:{port}", uri.host().unwrap_or(""));
            let err = |failure| ConnectError {
                role,
                addr: addr.clone(),
                name: name.to_str().into_owned(),
                failure,
            };
            let tcp = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect((host, port)))
                .await
                .map_err(|_| {
                    err(ConnectFailure::Unreachable(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connection timed out",
                    )))
                })?
                .map_err(|e| err(ConnectFailure::Unreachable(e)))?;
            let _ = tcp.set_nodelay(true);
            let connector = tokio_rustls::TlsConnector::from(config);
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name.clone(), tcp))
                .await
                .map_err(|_| err(ConnectFailure::Broken("handshake timed out".into())))?
                .map_err(|e| classify(e, &err))?;
            // In TLS 1.3 the server checks our certificate after our side
            // of the handshake is done: wait for its first bytes or its
            // refusal, so that a refusal is reported here, with its reason.
            let mut tls = Prefixed {
                prefix: Vec::new(),
                pos: 0,
                inner: tls,
            };
            if tls.inner.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
                use tokio::io::AsyncReadExt;
                let mut first = vec![0u8; 4096];
                match tokio::time::timeout(VERDICT_WAIT, tls.inner.read(&mut first)).await {
                    Ok(Ok(0)) => {
                        return Err(err(ConnectFailure::Broken(
                            "the server closed the connection after the handshake".into(),
                        )))
                    }
                    Ok(Ok(n)) => {
                        first.truncate(n);
                        tls.prefix = first;
                    }
                    Ok(Err(e)) => return Err(classify(e, &err)),
                    Err(_) => {} // a server that waits for us to speak
                }
            }
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

fn classify(e: std::io::Error, err: &impl Fn(ConnectFailure) -> ConnectError) -> ConnectError {
    match rustls_error(&e) {
        Some(r) => {
            let e = err(ConnectFailure::Refused(r.clone()));
            tracing::warn!(error = %e, "connection refused");
            e
        }
        None => err(ConnectFailure::Broken(e.to_string())),
    }
}

/// The refusal, if any, behind a failed call: a refused handshake found
/// in the error's sources (ours, or the server's alert after a TLS 1.3
/// handshake), in words, from the point of view of a party dialling
/// `role` under `name`.
pub fn refusal_in(e: &(dyn std::error::Error + 'static), role: Role, name: &str) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<ConnectError>() {
            return c.is_refusal().then(|| c.to_string());
        }
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(format!("TLS: {}", explain(r, role, name)));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(r) = rustls_error(io) {
                return Some(format!("TLS with the {role}: {}", explain(r, role, name)));
            }
        }
        cur = err.source();
    }
    None
}

/// Accepts TCP connections on `listener` and does the TLS handshake with
/// `config`, each in its own task; yields the established streams. Every
/// failed handshake is logged at `warn` with the peer and the reason and
/// counted in `refusals`. Ends when the returned stream is dropped.
pub fn accept_tls(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    server: &'static str,
    refusals: Arc<TransportRefusals>,
) -> (
    tokio_stream::wrappers::ReceiverStream<
        std::result::Result<tokio_rustls::server::TlsStream<TcpStream>, std::io::Error>,
    >,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let handle = tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(server, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, refusals) = (acceptor.clone(), tx.clone(), refusals.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => {
                        let _ = tx.send(Ok(s)).await;
                    }
                    Ok(Err(e)) => match rustls_error(&e) {
                        Some(r) => {
                            // Logged before counted: whoever sees the count
                            // finds the reason in the log.
                            tracing::warn!(
                                server,
                                %peer,
                                reason = %describe_server_side(r),
                                "TLS handshake refused"
                            );
                            refusals.count_handshake();
                        }
                        None => {
                            tracing::info!(server, %peer, error = %e, "TLS handshake broken off");
                        }
                    },
                    Err(_) => {
                        tracing::warn!(server, %peer, "TLS handshake timed out");
                        refusals.count_handshake();
                    }
                }
            });
        }
    });
    (tokio_stream::wrappers::ReceiverStream::new(rx), handle)
}

/// Why a certificate of another CA (or of a CA of the same name with
/// another key) is refused, in words both sides use.
fn issuer_problem(c: &CertificateError) -> String {
    match c {
        CertificateError::BadSignature => {
            "it was not issued by the federation's CA (its signature does not verify)".into()
        }
        _ => "it was not issued by the federation's CA".into(),
    }
}

/// A server's view of a refused handshake.
fn describe_server_side(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            let why = match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    issuer_problem(c)
                }
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => {
                    "it is not a client certificate (extended key usage)".to_string()
                }
                other => other.to_string(),
            };
            format!("the client's certificate is refused: {why}")
        }
        rustls::Error::NoCertificatesPresented => "the client presented no certificate".into(),
        rustls::Error::AlertReceived(a) => {
            format!("the client refused our certificate (TLS alert {a:?})")
        }
        other => other.to_string(),
    }
}
