//! TCP with mutually authenticated TLS (rustls, ring provider).
//!
//! Each ordered pair of parties has its own connection: party `i` dials
//! party `j` (as TLS client) to send, and accepts party `j`'s dial (as TLS
//! server) to receive. A reader thread per incoming connection parses
//! frames into a channel, so sends never wait on a peer that is itself
//! sending (no write–write deadlock) and receives time out on the channel.
//!
//! Certificates: one CA (made by [`generate_credentials`] with rcgen) signs
//! one certificate per party with the DNS name `party-<id>`. A client checks
//! the server's name; a server requires a CA-signed client certificate and
//! that it is byte-for-byte the certificate of the party the client claims
//! to be in its first frame.

use super::{
    check_peer, read_frame, recv_inbox, write_abort, write_frame, Frame, Inbox, Transport,
    MAX_FRAME,
};
use crate::MpcError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, RootCertStore, ServerConnection, StreamOwned};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What one party needs to join: the CA, all three party certificates (to
/// recognise peers) and its own private key.
pub struct PartyCredentials {
    /// The CA certificate.
    pub ca: CertificateDer<'static>,
    /// Certificates of parties 0, 1, 2.
    pub certs: Vec<CertificateDer<'static>>,
    /// This party's private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for PartyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartyCredentials { key: <redacted>, .. }")
    }
}

fn party_name(id: usize) -> String {
    format!("party-{id}")
}

struct Generated {
    ca_pem: String,
    cert_pems: Vec<String>,
    key_pems: Vec<zeroize::Zeroizing<String>>,
}

fn generate() -> Result<Generated, MpcError> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cipherflow mpc CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut cert_pems = Vec::new();
    let mut key_pems = Vec::new();
    for id in 0..3 {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec![party_name(id)])?;
        p.distinguished_name
            .push(DnType::CommonName, party_name(id));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &ca)?;
        cert_pems.push(cert.pem());
        key_pems.push(zeroize::Zeroizing::new(key.serialize_pem()));
    }
    Ok(Generated {
        ca_pem: ca.pem(),
        cert_pems,
        key_pems,
    })
}

fn parse_cert(pem: &[u8]) -> Result<CertificateDer<'static>, MpcError> {
    CertificateDer::from_pem_slice(pem).map_err(|e| MpcError::Tls(format!("certificate: {e}")))
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, MpcError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| MpcError::Tls(format!("private key: {e}")))
}

/// Fresh in-memory credentials for the three parties (a new CA each call).
pub fn generate_credentials() -> Result<Vec<PartyCredentials>, MpcError> {
    let g = generate()?;
    let ca = parse_cert(g.ca_pem.as_bytes())?;
    let certs = g
        .cert_pems
        .iter()
        .map(|p| parse_cert(p.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    g.key_pems
        .iter()
        .map(|k| {
            Ok(PartyCredentials {
                ca: ca.clone(),
                certs: certs.clone(),
                key: parse_key(k.as_bytes())?,
            })
        })
        .collect()
}

/// One party's entry in a [`NetworkConfig`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartyEntry {
    /// 0, 1 or 2.
    pub id: usize,
    /// `host:port` it listens on.
    pub address: String,
    /// Its certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM); only that party reads it.
    pub key: PathBuf,
}

/// The network file read by `cipherflow mpc party --config …` (TOML).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Deadline of every blocking receive and send, and of connecting, in
    /// milliseconds (default 30,000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The three parties.
    pub parties: Vec<PartyEntry>,
}

fn default_timeout_ms() -> u64 {
    30_000
}

impl NetworkConfig {
    /// Reads and checks a config file (relative paths are relative to it).
    pub fn load(path: &Path) -> Result<Self, MpcError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| MpcError::Config(format!("{}: {e}", path.display())))?;
        let mut cfg: NetworkConfig = toml::from_str(&text)
            .map_err(|e| MpcError::Config(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.ca = base.join(&cfg.ca);
        for p in &mut cfg.parties {
            p.cert = base.join(&p.cert);
            p.key = base.join(&p.key);
        }
        cfg.parties.sort_by_key(|p| p.id);
        if cfg.parties.iter().map(|p| p.id).collect::<Vec<_>>() != [0, 1, 2] {
            return Err(MpcError::Config(
                "the config must list parties 0, 1 and 2".into(),
            ));
        }
        Ok(cfg)
    }

    /// Addresses of parties 0, 1, 2.
    pub fn addresses(&self) -> Vec<String> {
        self.parties.iter().map(|p| p.address.clone()).collect()
    }

    /// Party `id`'s credentials, read from the files.
    pub fn credentials(&self, id: usize) -> Result<PartyCredentials, MpcError> {
        let entry = self
            .parties
            .get(id)
            .ok_or_else(|| MpcError::Party(format!("no party {id}")))?;
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| MpcError::Config(format!("{}: {e}", p.display())))
        };
        Ok(PartyCredentials {
            ca: parse_cert(&read(&self.ca)?)?,
            certs: self
                .parties
                .iter()
                .map(|p| parse_cert(&read(&p.cert)?))
                .collect::<Result<_, _>>()?,
            key: parse_key(&zeroize::Zeroizing::new(read(&entry.key)?))?,
        })
    }
}

/// Writes a CA, three party certificates and keys, and `mpc.toml` listing
/// `addresses` into `dir`; returns the config's path.
pub fn write_credentials(dir: &Path, addresses: &[String]) -> Result<PathBuf, MpcError> {
    if addresses.len() != 3 {
        return Err(MpcError::Config("need three addresses".into()));
    }
    std::fs::create_dir_all(dir)?;
    let g = generate()?;
    std::fs::write(dir.join("ca.pem"), &g.ca_pem)?;
    let mut parties = Vec::new();
    for (id, address) in addresses.iter().enumerate() {
        let cert = PathBuf::from(format!("party{id}.pem"));
        let key = PathBuf::from(format!("party{id}.key"));
        std::fs::write(dir.join(&cert), &g.cert_pems[id])?;
        write_private(&dir.join(&key), g.key_pems[id].as_bytes())?;
        parties.push(PartyEntry {
            id,
            address: address.clone(),
            cert,
            key,
        });
    }
    let cfg = NetworkConfig {
        ca: "ca.pem".into(),
        timeout_ms: default_timeout_ms(),
        parties,
    };
    let path = dir.join("mpc.toml");
    let text = toml::to_string(&cfg).map_err(|e| MpcError::Config(e.to_string()))?;
    std::fs::write(&path, text)?;
    Ok(path)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), MpcError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)?;
    Ok(())
}

type Outgoing = StreamOwned<ClientConnection, TcpStream>;

/// A party's end of the TLS mesh.
pub struct TlsTransport {
    me: usize,
    out: Vec<Option<Outgoing>>,
    inbox: Vec<Option<Inbox>>,
    timeout: Duration,
}

impl TlsTransport {
    /// Why a peer that can no longer be written to is gone: its abort
    /// notice, if one is waiting on its incoming stream (a peer that gives
    /// up while we are sending to it resets that connection before we
    /// read the notice on the other), else [`MpcError::PeerClosed`].
    fn why_gone(&self, peer: usize) -> MpcError {
        let Some(rx) = self.inbox.get(peer).and_then(Option::as_ref) else {
            return MpcError::PeerClosed(peer);
        };
        let until = Instant::now() + Duration::from_millis(500);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                // Messages it sent before giving up no longer matter.
                Ok(Ok(_)) if !left.is_zero() => continue,
                Ok(Err(e @ MpcError::Aborted { .. })) => return e,
                _ => return MpcError::PeerClosed(peer),
            }
        }
    }
}

impl Transport for TlsTransport {
    fn me(&self) -> usize {
        self.me
    }

    fn send(&mut self, to: usize, msg: Vec<u8>) -> Result<(), MpcError> {
        check_peer(self.me, to)?;
        let timeout = self.timeout;
        let s = self
            .out
            .get_mut(to)
            .and_then(Option::as_mut)
            .ok_or(MpcError::PeerClosed(to))?;
        // One deadline for the whole message: a peer that stops reading
        // (SIGSTOP) fails the send after the timeout, naming it, however
        // many partial writes the message takes.
        let mut w = DeadlineWriter {
            s,
            deadline: Instant::now() + timeout,
        };
        let sent = write_frame(&mut w, &msg);
        if sent.is_err() {
            // A frame may have been cut: the stream is unusable.
            if let Some(slot) = self.out.get_mut(to) {
                *slot = None;
            }
        }
        sent.map_err(|e| match e {
            MpcError::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                MpcError::SendTimeout {
                    to,
                    ms: timeout.as_millis(),
                }
            }
            MpcError::Io(io) if gone(&io) => self.why_gone(to),
            other => other,
        })
    }

    fn recv(&mut self, from: usize) -> Result<Vec<u8>, MpcError> {
        check_peer(self.me, from)?;
        let rx = self
            .inbox
            .get(from)
            .and_then(Option::as_ref)
            .ok_or(MpcError::PeerClosed(from))?;
        match recv_inbox(rx, from, self.timeout) {
            // A peer waiting on a third party with the same deadline gives
            // up at about the same moment: its notice, if it comes within
            // the grace, says who actually stopped.
            Err(timeout @ MpcError::Timeout { .. }) => {
                match rx.recv_timeout(self.timeout.min(ABORT_GRACE)) {
                    Ok(r) => r,
                    Err(_) => Err(timeout),
                }
            }
            other => other,
        }
    }

    fn abort(&mut self, reason: &str, culprit: Option<usize>) {
        // At most a second per peer, the culprit last: a stopped peer does
        // not delay the notice to the other.
        let patience = self.timeout.min(Duration::from_secs(1));
        let mut order: Vec<usize> = (0..3).filter(|&j| Some(j) != culprit).collect();
        order.extend(culprit);
        for j in order {
            if let Some(s) = self.out.get_mut(j).and_then(Option::as_mut) {
                let mut w = DeadlineWriter {
                    s,
                    deadline: Instant::now() + patience,
                };
                let _ = write_abort(&mut w, reason);
            }
        }
    }
}

/// Writes to a peer's stream until a deadline: each write may block only
/// for the time left.
struct DeadlineWriter<'a> {
    s: &'a mut Outgoing,
    deadline: Instant,
}

impl DeadlineWriter<'_> {
    fn arm(&mut self) -> std::io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.s.sock.set_write_timeout(Some(left))
    }
}

impl std::io::Write for DeadlineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.s.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.arm()?;
        self.s.flush()
    }
}

impl Drop for TlsTransport {
    fn drop(&mut self) {
        for s in self.out.iter_mut().flatten() {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Joins the mesh as party `me`: listens on `listener` (already bound to
/// `addresses[me]`), dials the two peers at `addresses` (retrying until
/// `timeout`), authenticates everyone, and returns the transport.
pub fn connect(
    me: usize,
    listener: TcpListener,
    addresses: &[String],
    creds: &PartyCredentials,
    timeout: Duration,
) -> Result<TlsTransport, MpcError> {
    if me >= 3 || addresses.len() != 3 || creds.certs.len() != 3 {
        return Err(MpcError::Config(
            "three parties, addresses and certificates needed".into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    roots.add(creds.ca.clone())?;
    let roots = Arc::new(roots);
    let chain = vec![creds.certs[me].clone()];
    let client_cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), creds.key.clone_key())?,
    );
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| MpcError::Tls(e.to_string()))?;
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, creds.key.clone_key())?;
    server_cfg.send_tls13_tickets = 0;
    let server_cfg = Arc::new(server_cfg);
    let deadline = Instant::now() + timeout;

    // Dial the peers in background threads while accepting here.
    let dials: Vec<_> = (0..3)
        .filter(|&j| j != me)
        .map(|j| {
            let addr = addresses[j].clone();
            let cfg = client_cfg.clone();
            (
                j,
                std::thread::spawn(move || dial(me, j, &addr, cfg, deadline, timeout)),
            )
        })
        .collect();
    let mut inbox: Vec<Option<Inbox>> = vec![None, None, None];
    listener.set_nonblocking(true)?;
    let mut accepted = 0;
    while accepted < 2 {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false)?;
                // A peer that fails authentication is dropped; keep waiting
                // for the genuine one until the deadline.
                if let Ok((from, stream)) = accept_one(me, sock, &server_cfg, creds, timeout) {
                    if inbox[from].is_none() {
                        inbox[from] = Some(spawn_reader(from, stream));
                        accepted += 1;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(MpcError::Timeout {
                        from: (0..3)
                            .find(|&j| j != me && inbox[j].is_none())
                            .unwrap_or(me),
                        ms: timeout.as_millis(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut out: Vec<Option<Outgoing>> = vec![None, None, None];
    for (j, h) in dials {
        let s = h
            .join()
            .map_err(|_| MpcError::Tls(format!("dialling party {j} failed")))??;
        out[j] = Some(s);
    }
    Ok(TlsTransport {
        me,
        out,
        inbox,
        timeout,
    })
}

fn dial(
    me: usize,
    to: usize,
    addr: &str,
    cfg: Arc<rustls::ClientConfig>,
    deadline: Instant,
    timeout: Duration,
) -> Result<Outgoing, MpcError> {
    let sock = loop {
        let a = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| MpcError::Config(format!("cannot resolve {addr}")))?;
        match TcpStream::connect_timeout(&a, Duration::from_secs(1)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    let name = ServerName::try_from(party_name(to)).map_err(|e| MpcError::Tls(e.to_string()))?;
    let conn = ClientConnection::new(cfg, name)?;
    let mut s = StreamOwned::new(conn, sock);
    write_frame(&mut s, &[me as u8])?;
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

fn accept_one(
    me: usize,
    sock: TcpStream,
    cfg: &Arc<rustls::ServerConfig>,
    creds: &PartyCredentials,
    timeout: Duration,
) -> Result<(usize, StreamOwned<ServerConnection, TcpStream>), MpcError> {
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(timeout))?;
    let conn = ServerConnection::new(cfg.clone())?;
    let mut s = StreamOwned::new(conn, sock);
    let hello = read_frame(&mut s, 16)?.ok_or(MpcError::PeerClosed(3))?;
    let hello = match hello {
        Frame::Data(h) => h,
        Frame::Abort(_) => Vec::new(),
    };
    let from = match hello.as_slice() {
        [id] if (*id as usize) < 3 && *id as usize != me => *id as usize,
        _ => {
            return Err(MpcError::Malformed {
                from: 3,
                what: "bad hello".into(),
            })
        }
    };
    let presented = s
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| MpcError::Tls("peer presented no certificate".into()))?;
    if presented.as_ref() != creds.certs[from].as_ref() {
        return Err(MpcError::Tls(format!(
            "certificate does not belong to party {from}"
        )));
    }
    // The reader blocks indefinitely; receive timeouts apply on the channel.
    s.sock.set_read_timeout(None)?;
    Ok((from, s))
}

/// How long a receive that timed out still waits for the peer's abort
/// notice (see [`TlsTransport::recv`]): more than the patience of a
/// notice's writer.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// Whether an I/O error means the peer's end is gone (killed, closed):
/// reported as [`MpcError::PeerClosed`], naming it.
fn gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof
    )
}

fn spawn_reader(from: usize, mut s: StreamOwned<ServerConnection, TcpStream>) -> Inbox {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || loop {
        let r = read_frame(&mut s, MAX_FRAME);
        let stop = !matches!(r, Ok(Some(Frame::Data(_))));
        let msg = match r {
            Ok(Some(Frame::Data(f))) => Ok(f),
            Ok(Some(Frame::Abort(reason))) => Err(MpcError::Aborted { from, reason }),
            Ok(None) => Err(MpcError::PeerClosed(from)),
            Err(MpcError::Io(io)) if gone(&io) => Err(MpcError::PeerClosed(from)),
            Err(e) => Err(e),
        };
        if tx.send(msg).is_err() || stop {
            break;
        }
    });
    rx
}
