//! TLS for the platform: the operator's certificate and key, or — for local
//! use — a certificate authority and a server certificate made on first run
//! under `<repo>/tls/` (`ca.pem` is what clients trust; the CA's key is not
//! kept, the server key is written with mode 0600). Clients verify the
//! server against the CA file they are given (WebPKI: chain, name,
//! validity, ServerAuth).

use crate::error::PlatformError;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Lifetime of the local server certificate (days).
pub const LOCAL_CERT_DAYS: i64 = 365;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cfg(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::BadRequest(format!("TLS configuration: {e}"))
}

/// The certificate, key and CA files of a local setup in `repo`.
#[derive(Clone, Debug)]
pub struct LocalTls {
    /// What clients trust.
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's key.
    pub key: PathBuf,
}

impl LocalTls {
    /// The files under `<repo>/tls/`.
    pub fn under(repo: &Path) -> Self {
        let d = repo.join("tls");
        Self {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server-key.pem"),
        }
    }

    /// Makes them if any is missing, for `names` (host names or IP
    /// addresses the server is reached by). Returns whether it made them.
    pub fn ensure(&self, names: &[String]) -> Result<bool, PlatformError> {
        if self.ca.exists() && self.cert.exists() && self.key.exists() {
            return Ok(false);
        }
        let (ca, cert, key) = issue(names, "cipherflow platform")?;
        if let Some(d) = self.ca.parent() {
            std::fs::create_dir_all(d)?;
        }
        write_file(&self.key, key.serialize_pem().as_bytes(), true)?;
        write_file(&self.cert, cert.pem().as_bytes(), false)?;
        write_file(&self.ca, ca.pem().as_bytes(), false)?;
        Ok(true)
    }
}

/// A fresh CA (its key dropped once it has signed) and a server
/// certificate for `names` signed by it, valid [`LOCAL_CERT_DAYS`].
fn issue(
    names: &[String],
    cn: &str,
) -> Result<(rcgen::Certificate, rcgen::Certificate, KeyPair), PlatformError> {
    let rc = |e: rcgen::Error| PlatformError::Storage(format!("certificate: {e}"));
    let now = time::OffsetDateTime::now_utc();
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("{cn} CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(LOCAL_CERT_DAYS);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(rc)?).map_err(rc)?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(rc)?;
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - time::Duration::hours(1);
    leaf.not_after = now + time::Duration::days(LOCAL_CERT_DAYS);
    let key = KeyPair::generate().map_err(rc)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(rc)?;
    let ca_cert: rcgen::Certificate = issuer.as_ref().clone();
    Ok((ca_cert, cert, key))
}

/// The name in a model host's certificate.
pub const HOST_NAME: &str = "model-host";

/// A model host's identity for one run: a CA of its own (published
/// through the platform, pinned by users) and the TLS server it runs,
/// inside the relayed channel, for each user.
pub struct HostIdentity {
    /// The CA certificate (DER) users trust for this host.
    pub ca_der: Vec<u8>,
    /// The host's TLS server configuration.
    pub server: Arc<ServerConfig>,
}

impl HostIdentity {
    /// A fresh identity (keys from the OS's randomness, kept in memory).
    pub fn generate() -> Result<Self, PlatformError> {
        let (ca, cert, key) = issue(&[HOST_NAME.to_string()], "cipherflow model host")?;
        let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(cfg)?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(cfg)?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .map_err(cfg)?;
        Ok(Self {
            ca_der: ca.der().to_vec(),
            server: Arc::new(server),
        })
    }

    /// SHA-256 of the CA certificate, hex: what a user may pin.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.ca_der)
    }
}

/// SHA-256 of a certificate (DER), hex.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

/// A user's side of the channel to a model host: TLS 1.3, the host
/// verified against its CA `ca_der` (from the model card) and [`HOST_NAME`].
pub fn host_client_config(ca_der: &[u8]) -> Result<ClientConfig, PlatformError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| PlatformError::Transport(format!("the model host's certificate: {e}")))?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(cfg)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Writes a file (mode 0600 for a secret, set on the file before any byte
/// is written), flushed, then renamed into place.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PlatformError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, PlatformError> {
    let v: Vec<_> = CertificateDer::pem_file_iter(p)
        .map_err(|e| cfg(format!("{}: {e}", p.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| cfg(format!("{}: {e}", p.display())))?;
    if v.is_empty() {
        return Err(cfg(format!("{}: no certificate", p.display())));
    }
    Ok(v)
}

/// The server side: `cert` (chain) and `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, PlatformError> {
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| cfg(format!("{}: {e}", key.display())))?;
    let mut c = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(cfg)?
        .with_no_client_auth()
        .with_single_cert(certs(cert)?, key)
        .map_err(cfg)?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

/// The client side: servers verified against the CA certificates in `ca`.
pub fn client_config(ca: &Path) -> Result<ClientConfig, PlatformError> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c).map_err(cfg)?;
    }
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(cfg)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

/// The name a client checks the server's certificate against.
pub fn server_name(host: &str) -> Result<ServerName<'static>, PlatformError> {
    ServerName::try_from(host.to_string())
        .map_err(|e| PlatformError::BadRequest(format!("server name {host:?}: {e}")))
}
