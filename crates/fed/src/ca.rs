//! A small certificate authority for a federation (`cipherflow fl ca`),
//! on `rcgen` (ECDSA P-256, ring): one CA, a server certificate for the
//! coordinator and for the key service (SAN `localhost`, `127.0.0.1`), a
//! client certificate per hospital (CN = client id), each client's X25519
//! key-agreement key, and the roster that binds them (certificate SHA-256,
//! party id, key-agreement public key).
//!
//! Layout under `dir`: `ca.pem`, `ca.key`, `roster.json`,
//! `ledger.{key,pub}` (the audit log's Ed25519 signing key),
//! `coordinator/{cert,key}.pem`, `key-service/{cert,key}.pem`,
//! `clients/<id>/{cert.pem,key.pem,kx.key}`. Private keys are written with
//! mode 0600 and never overwritten. This CA generates every private key
//! itself, which suits a demo or a single operator; a production
//! deployment would have each party send a certificate signing request and
//! keep its key.

use crate::error::{FedError, Result};
use crate::roster::{check_client_id, KxSecret, Roster, RosterEntry};
use crate::store::write_atomic;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn rc(e: rcgen::Error) -> FedError {
    FedError::Crypto(format!("certificate generation: {e}"))
}

/// SHA-256 (hex) of the DER certificate in a PEM file's text.
pub fn cert_fingerprint(pem: &str) -> Result<String> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| FedError::Config(format!("certificate: {e}")))?;
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

/// Paths of one party's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The party's certificate.
    pub cert: PathBuf,
    /// The party's private key.
    pub key: PathBuf,
}

impl Credentials {
    /// The credentials of `who` (`coordinator`, `key-service` or a client id) under `dir`.
    pub fn under(dir: &Path, who: &str) -> Self {
        let base = match who {
            "coordinator" | "key-service" => dir.join(who),
            id => dir.join("clients").join(id),
        };
        Self {
            ca: dir.join("ca.pem"),
            cert: base.join("cert.pem"),
            key: base.join("key.pem"),
        }
    }
}

/// Creates the CA, the service certificates, `clients` client identities
/// (named `names`, or `client-1 … client-n`) and the roster.
pub fn init(dir: &Path, federation: &str, names: &[String]) -> Result<Roster> {
    if dir.join("ca.key").exists() {
        return Err(FedError::Config(format!(
            "{} already holds a CA",
            dir.display()
        )));
    }
    for n in names {
        check_client_id(n)?;
        if n == "coordinator" || n == "key-service" {
            return Err(FedError::Config(format!("{n} is reserved")));
        }
    }
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("cipherflow federation CA: {federation}"),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(rc)?;
    let ca_key_pem = zeroize::Zeroizing::new(ca_key.serialize_pem());
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(rc)?;
    write_atomic(&dir.join("ca.pem"), ca.pem().as_bytes(), false)?;
    write_atomic(&dir.join("ca.key"), ca_key_pem.as_bytes(), true)?;
    let issue = |who: &str, sans: Vec<String>| -> Result<String> {
        let key = KeyPair::generate().map_err(rc)?;
        let mut p = CertificateParams::new(sans).map_err(rc)?;
        p.distinguished_name.push(DnType::CommonName, who);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &ca).map_err(rc)?;
        let c = Credentials::under(dir, who);
        write_atomic(&c.cert, cert.pem().as_bytes(), false)?;
        write_atomic(
            &c.key,
            zeroize::Zeroizing::new(key.serialize_pem()).as_bytes(),
            true,
        )?;
        cert_fingerprint(&cert.pem())
    };
    let server_sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let coordinator = issue("coordinator", server_sans.clone())?;
    let key_service = issue("key-service", server_sans)?;
    let mut clients = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let fp = issue(name, vec![name.clone()])?;
        let kx = KxSecret::generate();
        kx.save(&dir.join("clients").join(name).join("kx.key"))?;
        clients.push(RosterEntry {
            client_id: name.clone(),
            party_id: i as u64 + 1,
            cert_sha256: Some(fp),
            kx_public: kx.public_hex(),
        });
    }
    let roster = Roster {
        federation: federation.into(),
        clients,
        revoked: Vec::new(),
        coordinator_cert_sha256: Some(coordinator),
        key_service_cert_sha256: Some(key_service),
    };
    roster.validate()?;
    roster.save(&dir.join("roster.json"))?;
    // The coordinator's audit-log signing key; clients and the key service
    // pin `ledger.pub`.
    cipherflow_ledger::LogSigner::generate()?.save(&dir.join("ledger"))?;
    Ok(roster)
}

/// Marks `client` revoked in `dir/roster.json`.
pub fn revoke(dir: &Path, client: &str) -> Result<Roster> {
    let path = dir.join("roster.json");
    let mut r = Roster::load(&path)?;
    if r.by_id(client).is_none() {
        return Err(FedError::Config(format!("{client} is not in the roster")));
    }
    if !r.is_revoked(client) {
        r.revoked.push(client.to_string());
    }
    r.save(&path)?;
    Ok(r)
}
