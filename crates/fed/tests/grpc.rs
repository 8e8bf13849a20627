//! The federation over real gRPC with mutual TLS on 127.0.0.1: a small
//! federation runs to the end; a certificate from another CA, a
//! certificate of the right CA that is not in the roster, and a revoked
//! client are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::tls::{tls, TlsFederation};

use cipherflow_fed::ca::{self, Credentials};
use cipherflow_fed::messages;
use cipherflow_fed::transport::agent::CoordinatorApi;
use cipherflow_fed::transport::grpc::CoordinatorRemote;
use cipherflow_fed::transport::metrics;
use cipherflow_fed::FedError;
use cipherflow_fed::Phase;
use cipherflow_fed::{Role, Roster};
use std::path::Path;
use std::time::Duration;

fn join(url: &str, c: &Credentials, roster: &Roster) -> Result<messages::JoinReply, FedError> {
    let pin = roster.server_pin(Role::Coordinator)?;
    let mut r = CoordinatorRemote::connect(url, &tls(c), &pin)?;
    r.join(&messages::JoinRequest {
        federation: "bc-grpc".into(),
        num_examples: 1,
    })
}

/// A certificate signed by the federation's CA but absent from the roster.
fn rogue_identity(pki: &Path, out: &Path) -> Credentials {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).unwrap()).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cipherflow federation CA: bc-grpc");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["mallory".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "mallory");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer).unwrap();
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(out.join("key.pem"), key.serialize_pem()).unwrap();
    Credentials {
        ca: pki.join("ca.pem"),
        cert: out.join("cert.pem"),
        key: out.join("key.pem"),
    }
}

#[test]
fn federation_over_mutual_tls_and_refusals() {
    let fed = TlsFederation::start("bc-grpc", 3, 2);
    let (dir, pki, roster, url) = (&fed.dir, &fed.pki, &fed.roster, &fed.url);
    let (server, rt) = (&fed.server, &fed.rt);

    // A certificate from another CA fails the TLS handshake.
    let other = dir.path().join("other");
    ca::init(&other, "bc-grpc", &["client-1".to_string()]).unwrap();
    let foreign = Credentials::under(&other, "client-1");
    assert!(matches!(
        join(url, &foreign, roster),
        Err(FedError::Refused(_))
    ));
    // The right CA, but not in the roster: unenrolled.
    let rogue = rogue_identity(pki, &dir.path().join("rogue"));
    assert!(
        matches!(join(url, &rogue, roster), Err(FedError::Unenrolled(_))),
        "{:?}",
        join(url, &rogue, roster)
    );

    let handles = fed.run_clients(|pki, id| pki.join("clients").join(id).join("state.json"));
    let summaries: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    for s in &summaries {
        assert_eq!(s.uploads, 2);
        assert_eq!(s.counted_proofs, 2);
        assert_eq!(s.refused, 0);
    }
    assert_eq!(
        summaries.iter().map(|s| s.shares).sum::<u64>(),
        6,
        "t + 1 = 3 shares per round (checked decryption)"
    );
    let (hist, phase) = server
        .with(|c| (c.history().to_vec(), c.phase().clone()))
        .unwrap();
    assert_eq!(hist.len(), 2);
    assert!(matches!(phase, Phase::Finished(_)));
    assert!(hist.iter().all(|h| h.contributors == 3));
    // The private state files are 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(pki.join("clients/client-1/state.json")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }

    // Revocation: the coordinator re-reads the roster.
    ca::revoke(pki, "client-3").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let c3 = Credentials::under(pki, "client-3");
    assert!(matches!(join(url, &c3, roster), Err(FedError::Revoked(_))));
    assert!(join(url, &Credentials::under(pki, "client-1"), roster).is_ok());

    // The Prometheus endpoint: the counters of this run; other paths 404.
    let listener = rt
        .block_on(metrics::bind("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(metrics::serve(listener, server.handle()));
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let page = get("/metrics");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/plain; version=0.0.4"), "{page}");
    assert!(page.contains("cipherflow_fed_uploads_total 6"), "{page}");
    // Uploads are committed in groups: at least one commit, at most one per
    // upload (three clients uploading at once may share one).
    let commits = server.with(|c| c.metrics().upload_commits).unwrap();
    assert!(
        (1..=6).contains(&commits),
        "{commits} commits for 6 uploads"
    );
    assert!(
        page.contains(&format!("cipherflow_fed_upload_commits_total {commits}")),
        "{page}"
    );
    assert!(
        page.contains("cipherflow_fed_rounds_closed_total 2"),
        "{page}"
    );
    // Per client: three clients joined both rounds, each gave shares in
    // both (checked: t + 1 = 3 of 3), none missed a round; client-3's
    // refusal after revocation is its own.
    for id in ["client-1", "client-2", "client-3"] {
        let l =
            |name: &str, v: &str| format!("cipherflow_fed_client_{name}{{client=\"{id}\"}} {v}\n");
        assert!(
            page.contains(&l("rounds_joined_total", "2")),
            "{id}: {page}"
        );
        assert!(
            page.contains(&l("rounds_missed_total", "0")),
            "{id}: {page}"
        );
        assert!(
            page.contains(&l("decryption_shares_total", "2")),
            "{id}: {page}"
        );
        assert!(
            page.contains(&l("upload_latency_seconds_count", "2")),
            "{id}: {page}"
        );
    }
    assert!(
        page.contains("cipherflow_fed_client_refused_total{client=\"client-3\"} 1\n"),
        "{page}"
    );
    // Liveness and readiness, for Kubernetes' probes.
    let h = get("/healthz");
    assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok\n"), "{h}");
    let r = get("/readyz");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("ready\n"),
        "{r}"
    );
    assert!(get("/").starts_with("HTTP/1.1 404"));
    let TlsFederation { rt, server, .. } = fed;
    rt.block_on(server.stop()).unwrap();
}

/// A region's calls — what to collect, its sum — are taken only from the
/// certificates the roster pins as regions' client certificates, and
/// only for this federation; a region's sum outside a round is refused.
#[test]
fn region_calls_are_taken_from_region_client_certificates_only() {
    use cipherflow_fed::messages::RegionalSum;
    use cipherflow_fed::transport::region::CoordinatorLink;
    let name = "bc-grpc-regions";
    let fed = TlsFederation::with_regions(name, 4, 1, 2);
    let pin = fed.roster.server_pin(Role::Coordinator).unwrap();
    let link = |c: &Credentials, federation: &str| {
        let _rt = fed.rt.enter();
        CoordinatorLink::connect(&fed.url, &tls(c), &pin, federation).unwrap()
    };
    let region = Credentials::region_client(&fed.pki, "region-1");
    // A region, before the key setup: nothing to collect yet.
    let st = fed.rt.block_on(link(&region, name).poll()).unwrap();
    assert!(st.keys.is_none() && st.round.is_none() && st.finished.is_none());
    // Another federation's name is refused.
    let e = fed.rt.block_on(link(&region, "other").poll()).unwrap_err();
    assert!(e.to_string().contains("federation"), "{e}");
    // A hospital, the coordinator's own client certificate and a region's
    // *server* certificate are no region's client certificate.
    for (who, c) in [
        ("a client", Credentials::under(&fed.pki, "client-1")),
        (
            "the coordinator",
            Credentials::under(&fed.pki, "coordinator-client"),
        ),
        (
            "a region's server certificate",
            Credentials::region_server(&fed.pki, "region-2"),
        ),
    ] {
        let e = fed.rt.block_on(link(&c, name).poll()).unwrap_err();
        assert!(
            matches!(&e, FedError::Refused(_))
                || e.to_string().contains("no region's client certificate"),
            "{who}: {e}"
        );
    }
    let sum = RegionalSum {
        federation: name.into(),
        round: 1,
        chunks: vec![vec![0u8; 8]],
        aggregate_proof: common::opened_round_proof(
            &cipherflow_fed::region_ledger_name(name, "region-1"),
            cipherflow_ledger::LogSigner::generate().unwrap(),
        ),
        inputs: Vec::new(),
        examples: Vec::new(),
    };
    let client = Credentials::under(&fed.pki, "client-1");
    let e = fed
        .rt
        .block_on(link(&client, name).submit(sum.clone()))
        .unwrap_err();
    assert!(
        e.to_string().contains("no region's client certificate"),
        "{e}"
    );
    // From the region itself, but no round collects: refused, nothing summed.
    let e = fed
        .rt
        .block_on(link(&region, name).submit(sum))
        .unwrap_err();
    assert!(
        matches!(&e, FedError::Replay(m) if m.contains("no round is open")),
        "{e}"
    );
    assert!(fed.server.with(|c| c.running_sum().is_none()).unwrap());
}
