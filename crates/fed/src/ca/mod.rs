//! A small certificate authority for a federation (`cipherflow fl ca`),
//! on `rcgen` (ECDSA P-256, ring).
//!
//! **Identities.** Every role has its own certificate and its own name:
//!
//! * the coordinator's server certificate (ServerAuth only), issued to the
//!   configured coordinator name (default
//!   `coordinator.<federation>.cipherflow.internal`), plus any extra names
//!   or addresses asked for;
//! * the key service's server certificate (ServerAuth only), issued to the
//!   key-service name (default `key-service.<federation>.cipherflow.internal`);
//! * the coordinator's client certificate (ClientAuth only), with which it
//!   calls the key service;
//! * one client certificate per hospital (ClientAuth only, CN = client id,
//!   no subject alternative name: a client id never looks like a host name
//!   or an IP address, [`check_client_id`]).
//!
//! The roster records every fingerprint and both server names; clients dial
//! a role by its name (whatever address they connect to) and **pin** the
//! role's fingerprint, so one role's certificate never passes for
//! another's. Certificates are valid for [`DEFAULT_VALIDITY_DAYS`] unless
//! configured otherwise; [`renew`] re-issues one (see the crate README).
//!
//! **Enrollment.** [`init`] generates every private key itself, including
//! the hospitals': for a demo or tests on one machine only. In a real
//! deployment each hospital runs [`make_request`] (`cipherflow fl ca csr`):
//! it generates its TLS key and its X25519 key-agreement key, keeps both,
//! and sends the CA an [`EnrollmentRequest`] (a PKCS #10 CSR plus the
//! key-agreement *public* key); the CA checks the CSR's signature and
//! issues a certificate with [`sign_request`] (`cipherflow fl ca sign`),
//! adding the hospital to the roster. The CA never sees the hospital's
//! private keys on this path.
//!
//! Layout under `dir`: `ca.pem`, `ca.key`, `roster.json`,
//! `ledger.{key,pub}` (the audit log's Ed25519 signing key),
//! `coordinator/{cert,key}.pem`, `coordinator-client/{cert,key}.pem`,
//! `key-service/{cert,key}.pem`, `clients/<id>/cert.pem` and, for clients
//! whose keys the CA generated, `clients/<id>/{key.pem,kx.key}`. Private
//! keys are written with mode 0600 and never overwritten.

use crate::error::{FedError, Result};
use crate::roster::{
    check_client_id, check_server_name, parse_public, KxSecret, Roster, RosterEntry,
};
use crate::store::write_atomic;

mod regions;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CertifiedIssuer, DnType,
    DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use regions::issue_regions;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Default lifetime of the certificates the CA issues (the CA's own:
/// ten times as long).
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;

/// Longest lifetime accepted for an issued certificate.
pub const MAX_VALIDITY_DAYS: u32 = 3 * 365;

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

/// The file layout of a federation's PKI directory: what [`init_with`]
/// and [`sign_request`] write and every party reads (the one place that
/// names these files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiDir(PathBuf);

impl PkiDir {
    /// The layout under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The CA certificate (public).
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }

    /// The CA's private key (the CA only).
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }

    /// The roster (public; every party pins it).
    pub fn roster(&self) -> PathBuf {
        self.0.join("roster.json")
    }

    /// The prefix of the audit log's key files: `ledger.key` (the
    /// coordinator's signing key) and `ledger.pub` (pinned by everyone).
    pub fn ledger_keys(&self) -> PathBuf {
        self.0.join("ledger")
    }

    /// The audit log's signing key (the coordinator only).
    pub fn ledger_signing_key(&self) -> PathBuf {
        self.0.join("ledger.key")
    }

    /// The audit log's public key.
    pub fn ledger_public_key(&self) -> PathBuf {
        self.0.join("ledger.pub")
    }

    /// The directory of `who`'s certificate (and of its keys when the CA
    /// generated them): `coordinator`, `coordinator-client`, `key-service`
    /// or `clients/<id>`.
    pub fn party_dir(&self, who: &str) -> PathBuf {
        match who {
            "coordinator" | "key-service" | "coordinator-client" => self.0.join(who),
            id => self.0.join("clients").join(id),
        }
    }
}

/// A party's key-agreement secret in its own directory (`kx.key`).
pub fn kx_key_file(own: &Path) -> PathBuf {
    own.join("kx.key")
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
    /// The credentials of `who` (`coordinator`, `coordinator-client`,
    /// `key-service` or a client id) under `dir`.
    pub fn under(dir: &Path, who: &str) -> Self {
        let pki = PkiDir::new(dir);
        let base = pki.party_dir(who);
        Self {
            ca: pki.ca_cert(),
            cert: base.join("cert.pem"),
            key: base.join("key.pem"),
        }
    }

    /// A hospital's own credentials: `cert.pem` and `key.pem` in `own`
    /// (where [`make_request`] wrote the key), the CA certificate from
    /// `ca`.
    pub fn own(ca: &Path, own: &Path) -> Self {
        Self {
            ca: ca.to_path_buf(),
            cert: own.join("cert.pem"),
            key: own.join("key.pem"),
        }
    }
}

/// What [`init_with`] creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaOptions {
    /// Federation name (must match the configuration's).
    pub federation: String,
    /// Clients whose keys the CA generates (local use only; may be empty
    /// when every hospital enrolls by [`sign_request`]).
    pub clients: Vec<String>,
    /// The coordinator's server name (`None`: the default for the federation).
    pub coordinator_name: Option<String>,
    /// The key service's server name (`None`: the default for the federation).
    pub key_service_name: Option<String>,
    /// Further names or IP addresses for the coordinator's certificate
    /// (e.g. `localhost`, `127.0.0.1` for other tools).
    pub coordinator_extra_names: Vec<String>,
    /// Further names or IP addresses for the key service's certificate.
    pub key_service_extra_names: Vec<String>,
    /// Lifetime of issued certificates, days.
    pub validity_days: u32,
    /// Regional aggregators `region-1 … region-K` to create (server and
    /// client certificates, ledger keys); client `i` is assigned to region
    /// `i mod K`. 0: every client uploads to the coordinator.
    pub regions: usize,
}

impl CaOptions {
    /// Defaults for `federation` with these locally generated clients.
    pub fn new(federation: &str, clients: &[String]) -> Self {
        Self {
            federation: federation.into(),
            clients: clients.to_vec(),
            coordinator_name: None,
            key_service_name: None,
            coordinator_extra_names: Vec::new(),
            key_service_extra_names: Vec::new(),
            validity_days: DEFAULT_VALIDITY_DAYS,
            regions: 0,
        }
    }
}

/// The default server name of `role` (`coordinator` or `key-service`) in
/// `federation`: `<role>.<federation as a DNS label>.cipherflow.internal`.
pub fn default_server_name(role: &str, federation: &str) -> String {
    let mut label = String::new();
    for c in federation.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c.to_ascii_lowercase());
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    let label: String = label.trim_matches('-').chars().take(63).collect();
    let label = label.trim_matches('-');
    let label = if label.is_empty() {
        "federation"
    } else {
        label
    };
    format!("{role}.{label}.cipherflow.internal")
}

fn check_validity(days: u32) -> Result<()> {
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(FedError::Config(format!(
            "certificate validity must be 1..={MAX_VALIDITY_DAYS} days, not {days}"
        )));
    }
    Ok(())
}

/// Validity window: from an hour ago (clock skew) for `days` days.
fn set_validity(p: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(i64::from(days));
}

/// The EKU and names of each kind of certificate the CA issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Server,
    Client,
}

fn leaf_params(cn: &str, names: Vec<String>, kind: Kind, days: u32) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(names).map_err(rc)?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![match kind {
        Kind::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Kind::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    p.use_authority_key_identifier_extension = true;
    set_validity(&mut p, days);
    Ok(p)
}

/// Issues a certificate for `key` (generated here when `None`) and writes
/// `cert.pem` (and `key.pem` when generated) for `who`; returns the
/// certificate's fingerprint.
fn issue_local(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    who: &str,
    names: Vec<String>,
    kind: Kind,
    days: u32,
) -> Result<String> {
    issue_to(
        &Credentials::under(dir, who),
        issuer,
        who,
        names,
        kind,
        days,
    )
}

/// As [`issue_local`], to the files `c` names, with common name `cn`.
fn issue_to(
    c: &Credentials,
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    names: Vec<String>,
    kind: Kind,
    days: u32,
) -> Result<String> {
    let key = KeyPair::generate().map_err(rc)?;
    let cert = leaf_params(cn, names, kind, days)?
        .signed_by(&key, issuer)
        .map_err(rc)?;
    write_atomic(
        &c.key,
        zeroize::Zeroizing::new(key.serialize_pem()).as_bytes(),
        true,
    )?;
    write_atomic(&c.cert, cert.pem().as_bytes(), false)?;
    cert_fingerprint(&cert.pem())
}

fn server_names(primary: &str, extra: &[String]) -> Result<Vec<String>> {
    let mut v = vec![primary.to_string()];
    for n in extra {
        check_server_name(n)?;
        if !v.contains(n) {
            v.push(n.clone());
        }
    }
    check_server_name(primary)?;
    Ok(v)
}

/// Creates the CA, the service certificates, the local clients `names` and
/// the roster, with the default names and lifetime ([`CaOptions::new`]).
pub fn init(dir: &Path, federation: &str, names: &[String]) -> Result<Roster> {
    init_with(dir, &CaOptions::new(federation, names))
}

/// Creates the CA, the coordinator's (server and client) and key
/// service's certificates, the locally generated client identities (keys
/// included: local use only) and the roster.
pub fn init_with(dir: &Path, o: &CaOptions) -> Result<Roster> {
    if PkiDir::new(dir).ca_key().exists() {
        return Err(FedError::Config(format!(
            "{} already holds a CA",
            dir.display()
        )));
    }
    check_validity(o.validity_days)?;
    if o.clients.len() > 4096 {
        return Err(FedError::Config(
            "a roster holds at most 4096 clients".into(),
        ));
    }
    for n in &o.clients {
        check_client_id(n)?;
    }
    let coordinator_name = o
        .coordinator_name
        .clone()
        .unwrap_or_else(|| default_server_name("coordinator", &o.federation));
    let key_service_name = o
        .key_service_name
        .clone()
        .unwrap_or_else(|| default_server_name("key-service", &o.federation));
    let coordinator_names = server_names(&coordinator_name, &o.coordinator_extra_names)?;
    let key_service_names = server_names(&key_service_name, &o.key_service_extra_names)?;
    if coordinator_names
        .iter()
        .any(|n| key_service_names.contains(n))
    {
        return Err(FedError::Config(
            "the coordinator and the key service need different names".into(),
        ));
    }
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("cipherflow federation CA: {}", o.federation),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut ca_params, o.validity_days.saturating_mul(10));
    let ca_key = KeyPair::generate().map_err(rc)?;
    let ca_key_pem = zeroize::Zeroizing::new(ca_key.serialize_pem());
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(rc)?;
    write_atomic(&PkiDir::new(dir).ca_key(), ca_key_pem.as_bytes(), true)?;
    write_atomic(&PkiDir::new(dir).ca_cert(), ca.pem().as_bytes(), false)?;
    let issuer = load_issuer(dir)?;
    let days = o.validity_days;
    let coordinator = issue_local(
        dir,
        &issuer,
        "coordinator",
        coordinator_names,
        Kind::Server,
        days,
    )?;
    let coordinator_client = issue_local(
        dir,
        &issuer,
        "coordinator-client",
        Vec::new(),
        Kind::Client,
        days,
    )?;
    let key_service = issue_local(
        dir,
        &issuer,
        "key-service",
        key_service_names,
        Kind::Server,
        days,
    )?;
    let mut clients = Vec::with_capacity(o.clients.len());
    for (i, name) in o.clients.iter().enumerate() {
        let fp = issue_local(dir, &issuer, name, Vec::new(), Kind::Client, days)?;
        let kx = KxSecret::generate()?;
        kx.save(&kx_key_file(&PkiDir::new(dir).party_dir(name)))?;
        clients.push(RosterEntry {
            client_id: name.clone(),
            party_id: i as u64 + 1,
            cert_sha256: Some(fp),
            kx_public: kx.public_hex(),
            region: None,
        });
    }
    let regions = issue_regions(dir, &issuer, o, &mut clients)?;
    let roster = Roster {
        federation: o.federation.clone(),
        clients,
        revoked: Vec::new(),
        coordinator_cert_sha256: Some(coordinator),
        key_service_cert_sha256: Some(key_service),
        coordinator_client_cert_sha256: Some(coordinator_client),
        coordinator_name: Some(coordinator_name),
        key_service_name: Some(key_service_name),
        regions,
    };
    save_roster(dir, &roster)?;
    // The coordinator's audit-log signing key; clients and the key service
    // pin `ledger.pub`.
    cipherflow_ledger::LogSigner::generate()?.save(&PkiDir::new(dir).ledger_keys())?;
    Ok(roster)
}

/// The CA's issuer (its certificate and key) from `dir`.
fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>> {
    let kp = PkiDir::new(dir).ca_key();
    let key_pem =
        zeroize::Zeroizing::new(std::fs::read_to_string(&kp).map_err(|e| FedError::io(&kp, e))?);
    let key = KeyPair::from_pem(&key_pem).map_err(rc)?;
    let cp = PkiDir::new(dir).ca_cert();
    let ca_pem = std::fs::read_to_string(&cp).map_err(|e| FedError::io(&cp, e))?;
    Issuer::from_ca_cert_pem(&ca_pem, key).map_err(rc)
}

/// Loads the CA's roster without requiring a client (a CA whose hospitals
/// all enroll by request starts with none).
fn load_roster(dir: &Path) -> Result<Roster> {
    let path = PkiDir::new(dir).roster();
    let text = std::fs::read_to_string(&path).map_err(|e| FedError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| FedError::Config(format!("roster: {e}")))
}

fn save_roster(dir: &Path, r: &Roster) -> Result<()> {
    if !r.clients.is_empty() {
        r.validate()?;
    }
    r.save(&PkiDir::new(dir).roster())
}

/// Marks `client` revoked in `dir/roster.json`.
pub fn revoke(dir: &Path, client: &str) -> Result<Roster> {
    let mut r = load_roster(dir)?;
    if r.by_id(client).is_none() {
        return Err(FedError::Config(format!("{client} is not in the roster")));
    }
    if !r.is_revoked(client) {
        r.revoked.push(client.to_string());
    }
    save_roster(dir, &r)?;
    Ok(r)
}

/// A hospital's enrollment request: what it sends the CA. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    /// The client id asked for (also the CSR's common name).
    pub client_id: String,
    /// PKCS #10 certificate signing request, PEM, signed with the
    /// hospital's TLS key.
    pub csr_pem: String,
    /// The hospital's X25519 key-agreement public key, hex.
    pub kx_public: String,
}

impl EnrollmentRequest {
    /// SHA-256 (hex) of the request's JSON as written: the CA operator and
    /// the hospital compare it out of band before the CA signs.
    pub fn fingerprint(&self) -> Result<String> {
        Ok(hex::encode(Sha256::digest(
            serde_json::to_string_pretty(self)?.as_bytes(),
        )))
    }

    /// Loads a request file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| FedError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| FedError::Config(format!("request: {e}")))
    }
}

/// The files [`make_request`] writes under its `out` directory.
pub const REQUEST_FILE: &str = "request.json";

/// A hospital's side of enrollment: generates its TLS key (`out/key.pem`)
/// and its key-agreement key (`out/kx.key`), both mode 0600 and never
/// leaving `out`, and writes the request for the CA (`out/request.json`).
pub fn make_request(out: &Path, client_id: &str) -> Result<EnrollmentRequest> {
    check_client_id(client_id)?;
    let key_path = out.join("key.pem");
    let kx_path = kx_key_file(out);
    for p in [&key_path, &kx_path] {
        if p.exists() {
            return Err(FedError::Config(format!(
                "{} exists: a hospital's keys are never overwritten",
                p.display()
            )));
        }
    }
    let key = KeyPair::generate().map_err(rc)?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    p.distinguished_name.push(DnType::CommonName, client_id);
    let csr = p.serialize_request(&key).map_err(rc)?;
    let kx = KxSecret::generate()?;
    write_atomic(
        &key_path,
        zeroize::Zeroizing::new(key.serialize_pem()).as_bytes(),
        true,
    )?;
    kx.save(&kx_path)?;
    let req = EnrollmentRequest {
        client_id: client_id.into(),
        csr_pem: csr.pem().map_err(rc)?,
        kx_public: kx.public_hex(),
    };
    write_atomic(
        &out.join(REQUEST_FILE),
        serde_json::to_string_pretty(&req)?.as_bytes(),
        false,
    )?;
    Ok(req)
}

/// The CA's side of enrollment: verifies the request's CSR (its signature
/// proves possession of the key; its common name must be the client id),
/// issues a ClientAuth-only certificate for the CSR's public key — nothing
/// else the CSR asks for is honoured — writes it to
/// `dir/clients/<id>/cert.pem` and adds the client to the roster under the
/// next party id. A client already in the roster with the same
/// key-agreement key gets a renewed certificate (same party id); with
/// another, the request is refused. Returns the certificate's PEM.
pub fn sign_request(dir: &Path, req: &EnrollmentRequest, validity_days: u32) -> Result<String> {
    check_validity(validity_days)?;
    check_client_id(&req.client_id)?;
    parse_public(&req.kx_public)?;
    let csr = CertificateSigningRequestParams::from_pem(&req.csr_pem)
        .map_err(|e| FedError::Refused(format!("certificate signing request: {e}")))?;
    let cn = csr
        .params
        .distinguished_name
        .get(&DnType::CommonName)
        .and_then(|v| match v {
            DnValue::Utf8String(s) => Some(s.clone()),
            DnValue::PrintableString(s) => Some(s.as_str().to_string()),
            _ => None,
        });
    if cn.as_deref() != Some(req.client_id.as_str()) {
        return Err(FedError::Refused(format!(
            "the request's CSR names {cn:?}, not {:?}",
            req.client_id
        )));
    }
    let mut roster = load_roster(dir)?;
    if roster.clients.len() >= 4096 {
        return Err(FedError::Config(
            "a roster holds at most 4096 clients".into(),
        ));
    }
    if roster.is_revoked(&req.client_id) {
        return Err(FedError::Refused(format!(
            "{} is revoked; enroll under a new id",
            req.client_id
        )));
    }
    let issuer = load_issuer(dir)?;
    let signed = CertificateSigningRequestParams {
        params: leaf_params(&req.client_id, Vec::new(), Kind::Client, validity_days)?,
        public_key: csr.public_key,
    }
    .signed_by(&issuer)
    .map_err(rc)?;
    let pem = signed.pem();
    let fp = cert_fingerprint(&pem)?;
    let next_party = roster.clients.len() as u64 + 1;
    match roster
        .clients
        .iter_mut()
        .find(|c| c.client_id == req.client_id)
    {
        Some(e) if e.kx_public == req.kx_public => e.cert_sha256 = Some(fp),
        Some(_) => {
            return Err(FedError::Refused(format!(
                "{} is enrolled with another key-agreement key",
                req.client_id
            )))
        }
        None => roster.clients.push(RosterEntry {
            client_id: req.client_id.clone(),
            party_id: next_party,
            cert_sha256: Some(fp),
            kx_public: req.kx_public.clone(),
            region: None,
        }),
    }
    let cert_path = PkiDir::new(dir).party_dir(&req.client_id).join("cert.pem");
    save_roster(dir, &roster)?;
    write_atomic(&cert_path, pem.as_bytes(), false)?;
    Ok(pem)
}

/// Re-issues the certificate of `who` (`coordinator`, `coordinator-client`,
/// `key-service`, or a client whose key the CA holds) for its existing key,
/// names and usage, valid for `validity_days` from now, and updates the
/// roster's fingerprint. Hospitals that hold their own keys renew by
/// sending their request again ([`sign_request`]). Every party must then
/// get the new roster (clients pin the servers' fingerprints); a running
/// coordinator re-reads it.
pub fn renew(dir: &Path, who: &str, validity_days: u32) -> Result<String> {
    check_validity(validity_days)?;
    let mut roster = load_roster(dir)?;
    let (names, kind) =
        match who {
            "coordinator" => {
                let mut n = vec![roster.coordinator_name.clone().ok_or_else(|| {
                    FedError::Config("the roster has no coordinator name".into())
                })?];
                n.extend(existing_names(dir, who)?);
                n.dedup();
                (n, Kind::Server)
            }
            "key-service" => {
                let mut n = vec![roster.key_service_name.clone().ok_or_else(|| {
                    FedError::Config("the roster has no key-service name".into())
                })?];
                n.extend(existing_names(dir, who)?);
                n.dedup();
                (n, Kind::Server)
            }
            "coordinator-client" => (Vec::new(), Kind::Client),
            id => {
                if roster.by_id(id).is_none() {
                    return Err(FedError::Config(format!("{id} is not in the roster")));
                }
                (Vec::new(), Kind::Client)
            }
        };
    let c = Credentials::under(dir, who);
    if !c.key.exists() {
        return Err(FedError::Config(format!(
            "the CA does not hold {who}'s key: it renews by sending its request again"
        )));
    }
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read_to_string(&c.key).map_err(|e| FedError::io(&c.key, e))?,
    );
    let key = KeyPair::from_pem(&key_pem).map_err(rc)?;
    let issuer = load_issuer(dir)?;
    let cert = leaf_params(who, names, kind, validity_days)?
        .signed_by(&key, &issuer)
        .map_err(rc)?;
    let fp = cert_fingerprint(&cert.pem())?;
    match who {
        "coordinator" => roster.coordinator_cert_sha256 = Some(fp.clone()),
        "key-service" => roster.key_service_cert_sha256 = Some(fp.clone()),
        "coordinator-client" => roster.coordinator_client_cert_sha256 = Some(fp.clone()),
        id => {
            if let Some(e) = roster.clients.iter_mut().find(|e| e.client_id == id) {
                e.cert_sha256 = Some(fp.clone());
            }
        }
    }
    // The new certificate first: a crash between the two leaves a roster
    // that still pins the old one, which is still valid.
    let old = std::fs::read(&c.cert).map_err(|e| FedError::io(&c.cert, e))?;
    write_atomic(&c.cert.with_extension("pem.old"), &old, false)?;
    write_atomic(&c.cert, cert.pem().as_bytes(), false)?;
    save_roster(dir, &roster)?;
    Ok(fp)
}

fn parse_pem_cert(pem: &str) -> Result<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| FedError::Config(format!("certificate: {e}")))
}

/// The subject alternative names (DNS names and IP addresses) of the
/// certificate `who` holds now.
fn existing_names(dir: &Path, who: &str) -> Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let c = Credentials::under(dir, who);
    let pem = std::fs::read_to_string(&c.cert).map_err(|e| FedError::io(&c.cert, e))?;
    let der = parse_pem_cert(&pem)?;
    let (_, x) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| FedError::Config(format!("certificate: {e}")))?;
    let mut out = Vec::new();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => out.push((*d).to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        out.push(std::net::IpAddr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        out.push(std::net::IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The validity window of a PEM certificate, as Unix seconds
/// (not before, not after).
pub fn validity(pem: &str) -> Result<(i64, i64)> {
    let der = parse_pem_cert(pem)?;
    let (_, x) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| FedError::Config(format!("certificate: {e}")))?;
    Ok((
        x.validity().not_before.timestamp(),
        x.validity().not_after.timestamp(),
    ))
}
