//! Identities on the wire (issue 15, items 5–7), over real gRPC with
//! mutual TLS on 127.0.0.1: a coordinator posing as the key service, a
//! client certificate used as a server's and a server certificate used as
//! a client's, a client of another CA, client ids that look like host
//! names, enrollment by certificate signing request, and certificate
//! lifetimes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_fed::ca::{self, CaOptions, Credentials, EnrollmentRequest};
use cipherflow_fed::messages;
use cipherflow_fed::sim::split_among;
use cipherflow_fed::transport::agent::{run_agent, CoordinatorApi, KeyServiceApi};
use cipherflow_fed::transport::grpc::{
    serve_key_service_on, CoordinatorRemote, CoordinatorServer, KeyServiceRemote, TlsFiles,
};
use cipherflow_fed::FedError;
use cipherflow_fed::KeyService;
use cipherflow_fed::KeysMode;
use cipherflow_fed::{check_client_id, KxSecret, Role, Roster, ServerPin};
use cipherflow_fed::{real_clock, Coordinator, CoordinatorOptions, Phase};
use cipherflow_fed::{ClientAgent, ClientOptions};
use cipherflow_ledger::{LogSigner, PublicKey};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

fn tls(c: &Credentials) -> TlsFiles<'_> {
    TlsFiles {
        ca: &c.ca,
        cert: &c.cert,
        key: &c.key,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Everything logged at warn or above, by every test of this binary.
fn warnings() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b2 = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Sink(b2.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        std::io::stderr().write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&warnings().lock().unwrap()).into_owned()
}

fn key_service_config(name: &str) -> cipherflow_fed::FederationConfig {
    common::config(name, 1, "keys = \"key-service\"")
}

/// Serves the key-service API on 127.0.0.1 with the certificate `creds`
/// (the genuine key service's, or an impostor's); returns its URL.
fn serve_key_service_as(
    rt: &tokio::runtime::Runtime,
    pki: &Path,
    federation: &str,
    creds: Credentials,
) -> String {
    let roster = Roster::load(&pki.join("roster.json")).unwrap();
    let ks = KeyService::new(
        key_service_config(federation),
        roster.clone(),
        zeroize::Zeroizing::new([7u8; 32]),
        PublicKey::load(&pki.join("ledger.pub")).unwrap(),
        "coordinator",
        None,
    )
    .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        let t = tls(&creds);
        serve_key_service_on(ks, roster, listener, &t).await
    });
    url
}

fn enroll(
    url: &str,
    c: &Credentials,
    pin: &ServerPin,
    federation: &str,
) -> Result<messages::EnrollReply, FedError> {
    let mut k = KeyServiceRemote::connect(url, &tls(c), pin)?;
    k.enroll(&messages::EnrollRequest {
        federation: federation.into(),
    })
}

/// A certificate issued by the federation's CA (as a careless or
/// compromised CA operator might) with the given names and usage.
fn issue_with_ca(
    pki: &Path,
    out: &Path,
    names: Vec<String>,
    eku: rcgen::ExtendedKeyUsagePurpose,
) -> Credentials {
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(pki.join("ca.pem")).unwrap(),
        ca_key,
    )
    .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(names).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "impostor");
    p.extended_key_usages = vec![eku];
    let cert = p.signed_by(&key, &issuer).unwrap();
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(out.join("key.pem"), key.serialize_pem()).unwrap();
    Credentials::own(&pki.join("ca.pem"), out)
}

fn fingerprint(path: &Path) -> String {
    ca::cert_fingerprint(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (a) A coordinator serving the key-service API with its own certificate
/// is refused by the client, which never gets a key share from it; so is
/// a certificate of the right CA issued to the key service's name that is
/// not the one the roster pins. The genuine key service is accepted.
#[test]
fn coordinator_posing_as_key_service_is_refused() {
    warnings();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let names: Vec<String> = (1..=3).map(|i| format!("client-{i}")).collect();
    ca::init(&pki, "ks-pose", &names).unwrap();
    let roster = Roster::load(&pki.join("roster.json")).unwrap();
    let pin = roster.server_pin(Role::KeyService).unwrap();
    let client = Credentials::under(&pki, "client-1");
    let rt = runtime();

    // The coordinator's certificate behind the key-service API.
    let fake = serve_key_service_as(
        &rt,
        &pki,
        "ks-pose",
        Credentials::under(&pki, "coordinator"),
    );
    let t0 = Instant::now();
    let r = enroll(&fake, &client, &pin, "ks-pose");
    let took = t0.elapsed();
    match &r {
        Err(FedError::Refused(m)) => {
            assert!(m.contains("key service"), "{m}");
            assert!(m.contains("certificate"), "{m}");
        }
        other => panic!("the coordinator posing as the key service got {other:?}"),
    }
    assert!(took < Duration::from_secs(5), "refused after {took:?}");

    // A certificate of the right CA with the key service's name, not pinned.
    let imp = issue_with_ca(
        &pki,
        &dir.path().join("impostor"),
        vec![pin.name.clone()],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let fake2 = serve_key_service_as(&rt, &pki, "ks-pose", imp);
    match enroll(&fake2, &client, &pin, "ks-pose") {
        Err(FedError::Refused(m)) => assert!(m.contains("pinned"), "{m}"),
        other => panic!("an unpinned key-service certificate got {other:?}"),
    }

    // The genuine key service hands out the share.
    let real = serve_key_service_as(
        &rt,
        &pki,
        "ks-pose",
        Credentials::under(&pki, "key-service"),
    );
    let reply = enroll(&real, &client, &pin, "ks-pose").unwrap();
    assert_eq!(reply.party_id, 1);
    assert!(!reply.key_share.is_empty());
}

/// (b) Usage is enforced both ways: a client's certificate (ClientAuth
/// only) does not serve, even when pinned; a server's certificate
/// (ServerAuth only) does not authenticate a client, and the refusal is
/// counted.
#[test]
fn certificates_are_used_only_for_their_purpose() {
    warnings();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let names: Vec<String> = (1..=3).map(|i| format!("client-{i}")).collect();
    ca::init(&pki, "eku", &names).unwrap();
    let roster = Roster::load(&pki.join("roster.json")).unwrap();
    let rt = runtime();

    // Client-2's certificate serving the key-service API, pinned as such.
    let c2 = Credentials::under(&pki, "client-2");
    let url = serve_key_service_as(&rt, &pki, "eku", c2.clone());
    let pin = ServerPin {
        role: Role::KeyService,
        name: roster.key_service_name.clone().unwrap(),
        cert_sha256: fingerprint(&c2.cert),
    };
    match enroll(&url, &Credentials::under(&pki, "client-1"), &pin, "eku") {
        Err(FedError::Refused(m)) => {
            assert!(m.contains("not a server certificate"), "{m}")
        }
        other => panic!("a client certificate served: {other:?}"),
    }
    // Even one issued to the server's name, if its usage is ClientAuth.
    let named = issue_with_ca(
        &pki,
        &dir.path().join("named-client"),
        vec![pin.name.clone()],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let url2 = serve_key_service_as(&rt, &pki, "eku", named.clone());
    let pin2 = ServerPin {
        cert_sha256: fingerprint(&named.cert),
        ..pin.clone()
    };
    match enroll(&url2, &Credentials::under(&pki, "client-1"), &pin2, "eku") {
        Err(FedError::Refused(m)) => {
            assert!(m.contains("not a server certificate"), "{m}")
        }
        other => panic!("a ClientAuth certificate served: {other:?}"),
    }

    // The key service's certificate presented by a client to the coordinator.
    let server = start_coordinator(&rt, &pki, dir.path(), "eku", &roster);
    let url = format!("https://{}", server.addr);
    let ks_as_client = Credentials::under(&pki, "key-service");
    let coord_pin = roster.server_pin(Role::Coordinator).unwrap();
    let mut remote = CoordinatorRemote::connect(&url, &tls(&ks_as_client), &coord_pin).unwrap();
    let r = remote.join(&messages::JoinRequest {
        federation: "eku".into(),
        num_examples: 1,
    });
    match &r {
        Err(FedError::Refused(m)) => assert!(m.contains("certificate"), "{m}"),
        other => panic!("a server certificate authenticated a client: {other:?}"),
    }
    let m = wait_for_metric(
        &server,
        "cipherflow_fed_refusals_total{reason=\"tls_handshake\"} 1",
    );
    assert!(m.contains("cipherflow_fed_refused_total 1\n"), "{m}");
    assert!(
        log_text().contains("not a client certificate"),
        "{}",
        log_text()
    );
    rt.block_on(server.stop()).unwrap();
}

fn start_coordinator(
    rt: &tokio::runtime::Runtime,
    pki: &Path,
    state: &Path,
    federation: &str,
    roster: &Roster,
) -> CoordinatorServer {
    let (_, test) = common::breast_cancer();
    let coord = Coordinator::open(CoordinatorOptions {
        config: common::config(federation, 1, ""),
        roster: roster.clone(),
        state: state.join("c.db").into(),
        ledger: state.join("l.db"),
        signer: LogSigner::load(&pki.join("ledger.key")).unwrap(),
        eval: Some(test),
        clock: real_clock(),
    })
    .unwrap();
    let creds = Credentials::under(pki, "coordinator");
    rt.block_on(CoordinatorServer::start(
        coord,
        roster.clone(),
        "127.0.0.1:0".parse().unwrap(),
        &tls(&creds),
        None,
        Some(pki.join("roster.json")),
    ))
    .unwrap()
}

/// The metrics text once it contains `needle` (the server counts a refused
/// handshake in its own task), or after two seconds.
fn wait_for_metric(server: &CoordinatorServer, needle: &str) -> String {
    let t0 = Instant::now();
    loop {
        let m = server.handle().metrics_text();
        if m.contains(needle) || t0.elapsed() > Duration::from_secs(2) {
            assert!(m.contains(needle), "{needle} not in\n{m}");
            return m;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (c) A client of another CA is refused at once with a reason it can
/// read; the coordinator logs the refusal at warn with its reason and
/// counts it (refused_total > 0). Unenrolled and revoked calls are counted
/// as well.
#[test]
fn foreign_ca_client_is_refused_promptly_logged_and_counted() {
    warnings();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let names: Vec<String> = (1..=3).map(|i| format!("client-{i}")).collect();
    ca::init(&pki, "foreign", &names).unwrap();
    let roster = Roster::load(&pki.join("roster.json")).unwrap();
    let rt = runtime();
    let server = start_coordinator(&rt, &pki, dir.path(), "foreign", &roster);
    let url = format!("https://{}", server.addr);
    let pin = roster.server_pin(Role::Coordinator).unwrap();
    let join = |c: &Credentials| {
        let mut r = CoordinatorRemote::connect(&url, &tls(c), &pin)?;
        r.join(&messages::JoinRequest {
            federation: "foreign".into(),
            num_examples: 1,
        })
    };
    assert!(server
        .handle()
        .metrics_text()
        .contains("cipherflow_fed_refused_total 0\n"));

    let other = dir.path().join("other");
    ca::init(&other, "foreign", &["client-1".to_string()]).unwrap();
    // The foreign client trusts our CA (it has our ca.pem), but its own
    // certificate is from its CA.
    let foreign = Credentials {
        ca: pki.join("ca.pem"),
        ..Credentials::under(&other, "client-1")
    };
    let t0 = Instant::now();
    let r = join(&foreign);
    let took = t0.elapsed();
    match &r {
        Err(FedError::Refused(m)) => {
            assert!(m.contains("coordinator"), "{m}");
            assert!(m.contains("refused our certificate"), "{m}");
            // Same CA name, another key: the signature does not verify.
            assert!(m.contains("another CA"), "{m}");
        }
        other => panic!("a foreign client got {other:?}"),
    }
    assert!(took < Duration::from_secs(3), "refused after {took:?}");
    let m = wait_for_metric(
        &server,
        "cipherflow_fed_refusals_total{reason=\"tls_handshake\"} 1",
    );
    assert!(m.contains("cipherflow_fed_refused_total 1\n"), "{m}");
    let log = log_text();
    assert!(
        log.contains("WARN") && log.contains("TLS handshake refused"),
        "{log}"
    );
    assert!(log.contains("not issued by the federation's CA"), "{log}");

    // And a foreign client that does not trust our CA either refuses the
    // coordinator itself, promptly, saying why.
    let foreign_own = Credentials::under(&other, "client-1");
    match join(&foreign_own) {
        Err(FedError::Refused(m)) => {
            assert!(m.contains("not issued by the federation's CA"), "{m}")
        }
        other => panic!("{other:?}"),
    }

    // The right CA, not in the roster: refused and counted.
    let rogue = issue_with_ca(
        &pki,
        &dir.path().join("rogue"),
        Vec::new(),
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    assert!(matches!(join(&rogue), Err(FedError::Unenrolled(_))));
    // Revoked: refused and counted.
    ca::revoke(&pki, "client-3").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(matches!(
        join(&Credentials::under(&pki, "client-3")),
        Err(FedError::Revoked(_))
    ));
    let m = server.handle().metrics_text();
    assert!(
        m.contains("cipherflow_fed_refusals_total{reason=\"unenrolled\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("cipherflow_fed_refusals_total{reason=\"revoked\"} 1\n"),
        "{m}"
    );
    assert!(m.contains("cipherflow_fed_refused_total 4\n"), "{m}");
    assert!(join(&Credentials::under(&pki, "client-1")).is_ok());
    rt.block_on(server.stop()).unwrap();
}

/// (d) Client ids that look like host names or IP addresses are refused
/// by the CA, by enrollment requests and by the roster.
#[test]
fn host_like_client_ids_are_refused() {
    const HOST: &str = "looks like a host name or an IP address";
    const RESERVED: &str = "is reserved";
    /// The id check's refusal: a configuration error naming `why`.
    fn refused<T>(r: Result<T, FedError>, why: &str, what: &str) {
        match r {
            Err(FedError::Config(m)) if m.contains(why) => {}
            other => panic!(
                "{what}: expected Config(\"…{why}…\"), got {:?}",
                other.map(|_| ())
            ),
        }
    }
    for (id, why) in [
        ("a.example.org", HOST),
        ("10.0.0.1", HOST),
        ("localhost.", HOST),
        ("::1", HOST),
        ("coordinator", RESERVED),
        ("key-service", RESERVED),
    ] {
        refused(check_client_id(id), why, id);
        let dir = tempfile::tempdir().unwrap();
        refused(
            ca::init(&dir.path().join("pki"), "ids", &[id.to_string()]),
            why,
            &format!("ca init {id}"),
        );
        refused(
            ca::make_request(&dir.path().join("h"), id),
            why,
            &format!("request {id}"),
        );
    }
    check_client_id("hospital_3-b").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    ca::init(&pki, "ids", &["client-1".to_string()]).unwrap();
    // A request that names a host in the CSR and in the id.
    let mut req = ca::make_request(&dir.path().join("h"), "hospital").unwrap();
    req.client_id = "10.0.0.1".into();
    refused(ca::sign_request(&pki, &req, 365), HOST, "sign 10.0.0.1");
    // A CSR whose common name is not the id asked for.
    req.client_id = "other-hospital".into();
    let e = ca::sign_request(&pki, &req, 365).unwrap_err();
    assert!(
        matches!(&e, FedError::Refused(m) if m.contains("CSR names Some(\"hospital\")")),
        "{e}"
    );
    // A roster edited by hand.
    let mut r = Roster::load(&pki.join("roster.json")).unwrap();
    r.clients[0].client_id = "a.example.org".into();
    refused(r.validate(), HOST, "edited roster");
    assert_eq!(
        Roster::load(&pki.join("roster.json"))
            .unwrap()
            .clients
            .len(),
        1
    );
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// (e) A hospital enrolled by certificate signing request — its TLS and
/// key-agreement keys generated on its side, never in the CA's directory —
/// completes a federated round with two locally enrolled clients. The CA
/// issues a ClientAuth-only certificate whatever the CSR asks for.
#[test]
fn csr_enrolled_client_completes_a_round() {
    warnings();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let local: Vec<String> = vec!["client-1".into(), "client-2".into()];
    ca::init(&pki, "bc-csr", &local).unwrap();
    let hospital = dir.path().join("hospital-3");
    let req = ca::make_request(&hospital, "hospital-3").unwrap();
    // The request travels as a file; no secret in it.
    let sent = EnrollmentRequest::load(&hospital.join(ca::REQUEST_FILE)).unwrap();
    assert_eq!(sent, req);
    let req_text = std::fs::read_to_string(hospital.join(ca::REQUEST_FILE)).unwrap();
    assert!(!req_text.contains("PRIVATE KEY"));
    let kx = KxSecret::load(&hospital.join("kx.key")).unwrap();
    assert!(!req_text.contains(&hex::encode(*kx.to_bytes())));
    let pem = ca::sign_request(&pki, &sent, ca::DEFAULT_VALIDITY_DAYS).unwrap();
    std::fs::write(hospital.join("cert.pem"), &pem).unwrap();

    // The CA's directory holds no key of the hospital's.
    let key_pem = std::fs::read_to_string(hospital.join("key.pem")).unwrap();
    let kx_hex = std::fs::read_to_string(hospital.join("kx.key")).unwrap();
    let mut files = Vec::new();
    walk(&pki, &mut files);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(key_pem.trim()),
            "{} holds the hospital's key",
            f.display()
        );
        assert!(
            !text.contains(kx_hex.trim()),
            "{} holds the hospital's kx key",
            f.display()
        );
    }
    assert!(!pki.join("clients/hospital-3/key.pem").exists());
    assert!(!pki.join("clients/hospital-3/kx.key").exists());
    assert!(pki.join("clients/hospital-3/cert.pem").exists());

    let roster = Roster::load(&pki.join("roster.json")).unwrap();
    let e = roster.by_id("hospital-3").unwrap();
    assert_eq!(e.party_id, 3);
    assert_eq!(e.kx_public, kx.public_hex());
    assert_eq!(
        e.cert_sha256.as_deref(),
        Some(fingerprint(&hospital.join("cert.pem")).as_str())
    );

    // A CSR that asks for a server certificate gets a client certificate.
    {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(vec![roster.coordinator_name.clone().unwrap()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "greedy");
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let csr = p.serialize_request(&key).unwrap();
        let greedy = EnrollmentRequest {
            client_id: "greedy".into(),
            csr_pem: csr.pem().unwrap(),
            kx_public: KxSecret::generate().unwrap().public_hex(),
        };
        // Signed into a copy of the CA, to keep this federation at three.
        let copy = dir.path().join("pki-copy");
        copy_dir(&pki, &copy);
        let issued = ca::sign_request(&copy, &greedy, 365).unwrap();
        let der = rustls::pki_types::CertificateDer::from(rustls_pem_der(&issued));
        let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(x.subject_alternative_name().unwrap().is_none());
        assert!(!x.is_ca());
    }

    // One round, three clients, threshold keys.
    let cfg = common::config("bc-csr", 1, "");
    let (train, test) = common::breast_cancer();
    let coord = Coordinator::open(CoordinatorOptions {
        config: cfg.clone(),
        roster: roster.clone(),
        state: dir.path().join("c.db").into(),
        ledger: dir.path().join("l.db"),
        signer: LogSigner::load(&pki.join("ledger.key")).unwrap(),
        eval: Some(test),
        clock: real_clock(),
    })
    .unwrap();
    let rt = runtime();
    let creds = Credentials::under(&pki, "coordinator");
    let server = rt
        .block_on(CoordinatorServer::start(
            coord,
            roster.clone(),
            "127.0.0.1:0".parse().unwrap(),
            &tls(&creds),
            None,
            Some(pki.join("roster.json")),
        ))
        .unwrap();
    let url = format!("https://{}", server.addr);
    let parts = split_among(&train, 3, Some(0.5), 1).unwrap();
    let ledger_key = PublicKey::load(&pki.join("ledger.pub")).unwrap();
    let ids = ["client-1", "client-2", "hospital-3"];
    let handles: Vec<_> = parts
        .into_iter()
        .zip(ids)
        .map(|(data, id)| {
            let (pki, hospital, url, roster, cfg) = (
                pki.clone(),
                hospital.clone(),
                url.clone(),
                roster.clone(),
                cfg.clone(),
            );
            std::thread::spawn(move || {
                // Each party's own directory: the hospital's is outside the CA's.
                let own = if id == "hospital-3" {
                    hospital
                } else {
                    pki.join("clients").join(id)
                };
                let pin = roster.server_pin(Role::Coordinator).unwrap();
                let mut agent = ClientAgent::new(ClientOptions {
                    client_id: id.to_string(),
                    kx: Some(KxSecret::load(&own.join("kx.key")).unwrap()),
                    roster,
                    config: cfg,
                    data,
                    state: Some(own.join("state.json")),
                    ledger_key: Some(ledger_key),
                    synthetic: false,
                })
                .unwrap();
                let c = Credentials::own(&pki.join("ca.pem"), &own);
                let mut remote = CoordinatorRemote::connect(&url, &tls(&c), &pin).unwrap();
                let s = run_agent(
                    &mut agent,
                    &mut remote,
                    None,
                    KeysMode::Threshold,
                    Duration::from_secs(30),
                )
                .unwrap();
                (id, s)
            })
        })
        .collect();
    let summaries: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (id, s) in &summaries {
        assert_eq!(s.uploads, 1, "{id}");
        assert_eq!(s.counted_proofs, 1, "{id}");
    }
    let (hist, phase) = server
        .with(|c| (c.history().to_vec(), c.phase().clone()))
        .unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].contributors, 3);
    assert!(!hist[0].aborted);
    assert!(matches!(phase, Phase::Finished(_)));
    rt.block_on(server.stop()).unwrap();
}

fn rustls_pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

fn days_left(pem_path: &Path) -> f64 {
    let (_, not_after) = ca::validity(&std::fs::read_to_string(pem_path).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (not_after - now) as f64 / 86_400.0
}

/// (f) Certificates expire in about a year by default (the CA's in ten),
/// a configured lifetime is honoured, and a renewed server certificate is
/// pinned through the new roster: a client with the old roster refuses it.
#[test]
fn certificates_expire_in_a_year_and_renewal_goes_through_the_roster() {
    warnings();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    ca::init(&pki, "life", &["client-1".to_string()]).unwrap();
    for who in [
        "coordinator",
        "coordinator-client",
        "key-service",
        "client-1",
    ] {
        let d = days_left(&Credentials::under(&pki, who).cert);
        assert!((364.0..=365.1).contains(&d), "{who}: {d} days");
    }
    let d = days_left(&pki.join("ca.pem"));
    assert!((3649.0..=3650.1).contains(&d), "CA: {d} days");
    let h = dir.path().join("h");
    let req = ca::make_request(&h, "hospital").unwrap();
    let pem = ca::sign_request(&pki, &req, ca::DEFAULT_VALIDITY_DAYS).unwrap();
    std::fs::write(h.join("cert.pem"), pem).unwrap();
    let d = days_left(&h.join("cert.pem"));
    assert!((364.0..=365.1).contains(&d), "CSR client: {d} days");

    let short = dir.path().join("short");
    let mut o = CaOptions::new("life", &["client-1".to_string()]);
    o.validity_days = 30;
    ca::init_with(&short, &o).unwrap();
    let d = days_left(&Credentials::under(&short, "coordinator").cert);
    assert!((29.0..=30.1).contains(&d), "{d}");
    o.validity_days = 100 * 365;
    let e = ca::init_with(&dir.path().join("long"), &o).unwrap_err();
    assert!(
        matches!(&e, FedError::Config(m)
            if m.contains(&format!("validity must be 1..={} days, not 36500", ca::MAX_VALIDITY_DAYS))),
        "{e}"
    );

    // Renewal: new certificate, new fingerprint in the roster.
    let old_roster = Roster::load(&pki.join("roster.json")).unwrap();
    let fp = ca::renew(&pki, "coordinator", 365).unwrap();
    let new_roster = Roster::load(&pki.join("roster.json")).unwrap();
    assert_eq!(
        new_roster.coordinator_cert_sha256.as_deref(),
        Some(fp.as_str())
    );
    assert_ne!(
        old_roster.coordinator_cert_sha256,
        new_roster.coordinator_cert_sha256
    );
    assert_eq!(new_roster.coordinator_name, old_roster.coordinator_name);
    let rt = runtime();
    let server = start_coordinator(&rt, &pki, dir.path(), "life", &new_roster);
    let url = format!("https://{}", server.addr);
    let c1 = Credentials::under(&pki, "client-1");
    let join = |r: &Roster| {
        let mut remote =
            CoordinatorRemote::connect(&url, &tls(&c1), &r.server_pin(Role::Coordinator).unwrap())?;
        remote.join(&messages::JoinRequest {
            federation: "life".into(),
            num_examples: 1,
        })
    };
    match join(&old_roster) {
        Err(FedError::Refused(m)) => assert!(m.contains("pinned"), "{m}"),
        other => panic!("old pin accepted the renewed certificate: {other:?}"),
    }
    join(&new_roster).unwrap();
    rt.block_on(server.stop()).unwrap();
}

/// Regions get certificates for their purpose only: a server certificate
/// under their own name, which their clients pin (no other server's
/// fingerprint), and a client certificate with which they speak to the
/// coordinator; the roster refuses a fingerprint a region shares with
/// anyone, and the CA a region named like a client or without clients.
#[test]
fn regions_get_their_own_identities_and_the_roster_keeps_them_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=5).map(|i| format!("client-{i}")).collect();
    let mut o = CaOptions::new("fed-regions", &names);
    o.regions = 2;
    let roster = ca::init_with(tmp.path(), &o).unwrap();
    roster.validate().unwrap();
    assert_eq!(roster.regions.len(), 2);
    let regions: Vec<Option<&str>> = roster.clients.iter().map(|c| c.region.as_deref()).collect();
    assert_eq!(
        regions,
        [1, 2, 1, 2, 1].map(|j| Some(if j == 1 { "region-1" } else { "region-2" }))
    );
    let pin = roster.region_pin("region-1").unwrap();
    assert_eq!(pin.role, Role::Region);
    assert_eq!(pin.name, "region-1.fed-regions.cipherflow.internal");
    let server = Credentials::region_server(tmp.path(), "region-1");
    assert_eq!(pin.cert_sha256, fingerprint(&server.cert));
    let client = Credentials::region_client(tmp.path(), "region-1");
    let r1 = roster.region("region-1").unwrap();
    assert_eq!(
        r1.client_cert_sha256.as_deref(),
        Some(fingerprint(&client.cert).as_str())
    );
    assert!(
        roster.region_by_cert(&pin.cert_sha256).is_none(),
        "a server certificate as a region's client"
    );
    assert_eq!(
        roster
            .region_by_cert(r1.client_cert_sha256.as_deref().unwrap())
            .unwrap()
            .region_id,
        "region-1"
    );
    let signer =
        LogSigner::load(&ca::PkiDir::new(tmp.path()).region_ledger_signing_key("region-1"))
            .unwrap();
    assert_eq!(signer.public_key(), r1.public_key().unwrap());
    assert!(roster.region_pin("region-3").is_err());
    assert!(roster.server_pin(Role::Region).is_err());
    // A region pinning another party's certificate is refused.
    for steal in [
        roster.coordinator_cert_sha256.clone(),
        roster.clients[0].cert_sha256.clone(),
        roster.regions[1].server_cert_sha256.clone(),
    ] {
        let mut bad = roster.clone();
        bad.regions[0].server_cert_sha256 = steal;
        assert!(bad.validate().is_err());
    }
    let mut bad = roster.clone();
    bad.regions[0].server_name = Some("not a name".into());
    assert!(bad.validate().is_err());
    // As many regions as clients is allowed, one more is refused.
    let mut many = roster.clone();
    many.regions = (1..=5)
        .map(|j| cipherflow_fed::RegionEntry {
            region_id: format!("region-{j}"),
            ledger_key: roster.regions[0].ledger_key.clone(),
            server_name: None,
            server_cert_sha256: None,
            client_cert_sha256: None,
        })
        .collect();
    many.validate().unwrap();
    let mut extra = many.regions[0].clone();
    extra.region_id = "region-6".into();
    many.regions.push(extra);
    assert!(many.validate().is_err());
    // The CA refuses more regions than clients, and a client named as a region.
    let mut o = CaOptions::new("fed-regions", &names[..1]);
    o.regions = 2;
    assert!(ca::init_with(&tmp.path().join("few"), &o).is_err());
    let mut o = CaOptions::new("fed-regions", &["region-1".to_string(), "b".to_string()]);
    o.regions = 1;
    assert!(ca::init_with(&tmp.path().join("clash"), &o).is_err());
}
