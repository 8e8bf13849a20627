//! The byte streams of a served `mpc` query and the computation's
//! transport over them.
//!
//! Every party reaches the others through the platform's HTTPS port: a
//! request upgraded to a raw stream (`Upgrade: cipherflow-mpc`, answered
//! 101), so that users and model hosts only dial out. The platform's own
//! channels to the user and to the host end there; the user–host channel
//! is relayed byte for byte, and the two run TLS 1.3 inside it (the host
//! the server, its certificate pinned by the user from the model card), so
//! that the platform relays bytes it cannot read.
//!
//! [`StreamTransport`] carries the three-party computation
//! (`cipherflow_mpc::Transport`) over such streams: frames as the mpc
//! crate's own TLS transport writes them (a 4-byte little-endian length,
//! then the message; `u32::MAX` then a reason for an abort notice), a
//! reader task per peer feeding an inbox, blocking sends with a deadline.
//! The computation runs on a plain thread; the streams live on the
//! runtime whose handle is given.

use cipherflow_mpc::transport::MAX_FRAME;
use cipherflow_mpc::{MpcError, Transport};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::runtime::Handle;

/// The protocol name of an upgraded channel.
pub const UPGRADE_PROTOCOL: &str = "cipherflow-mpc";

/// The length field of an abort notice.
const ABORT_MARK: u32 = u32::MAX;
/// Longest abort reason sent or accepted.
const MAX_REASON: usize = 1024;

/// A duplex byte stream of a channel.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed [`Stream`].
pub type BoxStream = Box<dyn Stream>;

type Inbox = Receiver<Result<Vec<u8>, MpcError>>;

struct Peer {
    write: WriteHalf<BoxStream>,
    inbox: Inbox,
}

/// Bytes a party sent to and received from each peer (frames included).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes sent, per peer.
    pub sent: [AtomicU64; 3],
    /// Bytes received, per peer.
    pub received: [AtomicU64; 3],
}

impl Traffic {
    /// Bytes exchanged with `peer` (both directions) so far.
    pub fn with(&self, peer: usize) -> u64 {
        let get = |a: &[AtomicU64; 3]| a.get(peer).map_or(0, |c| c.load(Ordering::Relaxed));
        get(&self.sent) + get(&self.received)
    }

    /// Bytes exchanged with every peer so far.
    pub fn total(&self) -> u64 {
        (0..3).map(|p| self.with(p)).sum()
    }

    fn add(counters: &[AtomicU64; 3], peer: usize, n: u64) {
        if let Some(c) = counters.get(peer) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// One party's end of a computation over two streams.
pub struct StreamTransport {
    me: usize,
    peers: [Option<Peer>; 3],
    handle: Handle,
    timeout: Duration,
    traffic: Arc<Traffic>,
}

impl std::fmt::Debug for StreamTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamTransport {{ me: {} }}", self.me)
    }
}

/// Reads frames from `from` into `tx` until the stream ends or fails.
async fn read_frames(
    from: usize,
    mut r: ReadHalf<BoxStream>,
    tx: Sender<Result<Vec<u8>, MpcError>>,
    traffic: Arc<Traffic>,
) {
    loop {
        let mut head = [0u8; 4];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            // A clean end between frames, or a cut: the inbox closes and
            // the party waiting on it hears PeerClosed.
            Err(_) => return,
        }
        let len = u32::from_le_bytes(head);
        let (limit, abort) = if len == ABORT_MARK {
            let mut l = [0u8; 4];
            if r.read_exact(&mut l).await.is_err() {
                return;
            }
            (u32::from_le_bytes(l) as usize, true)
        } else {
            (len as usize, false)
        };
        let max = if abort { MAX_REASON } else { MAX_FRAME };
        if limit > max {
            let _ = tx.send(Err(MpcError::FrameTooLarge(limit, max)));
            return;
        }
        let mut body = vec![0u8; limit];
        if r.read_exact(&mut body).await.is_err() {
            let _ = tx.send(Err(MpcError::Truncated {
                expected: limit,
                got: 0,
            }));
            return;
        }
        let item = if abort {
            let text = String::from_utf8_lossy(&body);
            Err(MpcError::Aborted {
                from,
                reason: text.chars().filter(|c| !c.is_control()).collect(),
            })
        } else {
            Ok(body)
        };
        Traffic::add(&traffic.received, from, 4 + limit as u64);
        let stop = item.is_err();
        if tx.send(item).is_err() || stop {
            return;
        }
    }
}

impl StreamTransport {
    /// Party `me`'s end: `streams` to the two other parties (`(peer,
    /// stream)`), every receive and send bounded by `timeout`. Must be
    /// called from within the runtime of `handle` or given it.
    pub fn new(
        me: usize,
        streams: Vec<(usize, BoxStream)>,
        handle: Handle,
        timeout: Duration,
    ) -> Result<Self, MpcError> {
        let mut peers: [Option<Peer>; 3] = [None, None, None];
        let traffic = Arc::new(Traffic::default());
        for (peer, s) in streams {
            let slot = peers
                .get_mut(peer)
                .filter(|_| peer != me)
                .ok_or_else(|| MpcError::Config(format!("party {me} cannot talk to {peer}")))?;
            let (r, w) = tokio::io::split(s);
            let (tx, rx) = mpsc::channel();
            handle.spawn(read_frames(peer, r, tx, traffic.clone()));
            *slot = Some(Peer {
                write: w,
                inbox: rx,
            });
        }
        let have = peers.iter().filter(|p| p.is_some()).count();
        if have != 2 || me >= 3 {
            return Err(MpcError::Config(format!(
                "party {me}: two peers needed, {have} given"
            )));
        }
        Ok(Self {
            me,
            peers,
            handle,
            timeout,
            traffic,
        })
    }

    /// This party's traffic counters (shared: they keep counting).
    pub fn traffic(&self) -> Arc<Traffic> {
        self.traffic.clone()
    }

    fn peer(&mut self, p: usize) -> Result<&mut Peer, MpcError> {
        if p == self.me {
            return Err(MpcError::Party(format!("party {p} cannot talk to itself")));
        }
        self.peers
            .get_mut(p)
            .and_then(Option::as_mut)
            .ok_or(MpcError::PeerClosed(p))
    }

    fn write(
        &mut self,
        to: usize,
        head: &[u8],
        body: &[u8],
        within: Duration,
    ) -> Result<(), MpcError> {
        let handle = self.handle.clone();
        let peer = self.peer(to)?;
        let w = &mut peer.write;
        let sent = handle.block_on(async {
            tokio::time::timeout(within, async {
                w.write_all(head).await?;
                w.write_all(body).await?;
                w.flush().await
            })
            .await
        });
        match sent {
            Ok(Ok(())) => {
                Traffic::add(&self.traffic.sent, to, (head.len() + body.len()) as u64);
                Ok(())
            }
            Ok(Err(_)) => {
                // The stream is gone; an abort notice may say why.
                let why = match peer.inbox.recv_timeout(Duration::from_millis(500)) {
                    Ok(Err(e @ MpcError::Aborted { .. })) => e,
                    _ => MpcError::PeerClosed(to),
                };
                self.peers[to] = None;
                Err(why)
            }
            Err(_) => {
                self.peers[to] = None;
                Err(MpcError::SendTimeout {
                    to,
                    ms: within.as_millis(),
                })
            }
        }
    }
}

impl Transport for StreamTransport {
    fn me(&self) -> usize {
        self.me
    }

    fn send(&mut self, to: usize, msg: Vec<u8>) -> Result<(), MpcError> {
        let len = u32::try_from(msg.len())
            .ok()
            .filter(|&l| (l as usize) <= MAX_FRAME)
            .ok_or(MpcError::FrameTooLarge(msg.len(), MAX_FRAME))?;
        self.write(to, &len.to_le_bytes(), &msg, self.timeout)
    }

    fn recv(&mut self, from: usize) -> Result<Vec<u8>, MpcError> {
        let timeout = self.timeout;
        let peer = self.peer(from)?;
        match peer.inbox.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(MpcError::Timeout {
                from,
                ms: timeout.as_millis(),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(MpcError::PeerClosed(from)),
        }
    }

    fn abort(&mut self, reason: &str, culprit: Option<usize>) {
        let mut end = reason.len().min(MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let text = reason.get(..end).unwrap_or_default().as_bytes().to_vec();
        let mut head = ABORT_MARK.to_le_bytes().to_vec();
        head.extend((text.len() as u32).to_le_bytes());
        // The peers, the culprit last (it may be the one not reading).
        let mut order: Vec<usize> = (0..3).filter(|&j| j != self.me).collect();
        order.sort_by_key(|&j| Some(j) == culprit);
        for j in order {
            let _ = self.write(j, &head, &text, Duration::from_secs(1));
        }
    }
}

impl Drop for StreamTransport {
    fn drop(&mut self) {
        // Close the write halves so that the peers see the end at once
        // (on the runtime: a drop may happen inside it).
        for slot in &mut self.peers {
            if let Some(p) = slot.take() {
                let mut w = p.write;
                self.handle.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
                });
            }
        }
    }
}

/// Writes one message (a length, then the bytes; at most
/// [`MAX_FRAME`]).
pub async fn write_message(w: &mut (impl AsyncWrite + Unpin), msg: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(msg.len())
        .ok()
        .filter(|&l| (l as usize) <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("message too long"))?;
    w.write_all(&len.to_le_bytes()).await?;
    w.write_all(msg).await?;
    w.flush().await
}

/// Reads one control message of at most [`MAX_CONTROL`] bytes;
/// `Ok(None)` at a clean end.
pub async fn read_message(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    read_message_max(r, MAX_CONTROL).await
}

/// Reads one message of at most `max` bytes (refused before allocation);
/// `Ok(None)` at a clean end.
pub async fn read_message_max(
    r: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 4];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(head) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message of {len} bytes (at most {max})"),
        ));
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).await?;
    Ok(Some(b))
}

/// Longest control message (a host's registration or a session notice).
pub const MAX_CONTROL: usize = 64 << 10;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn mesh(rt: &tokio::runtime::Runtime, timeout: Duration) -> Vec<StreamTransport> {
        let (a01, a10) = tokio::io::duplex(1 << 16);
        let (a02, a20) = tokio::io::duplex(1 << 16);
        let (a12, a21) = tokio::io::duplex(1 << 16);
        let b = |s: tokio::io::DuplexStream| -> BoxStream { Box::new(s) };
        let h = rt.handle().clone();
        vec![
            StreamTransport::new(0, vec![(1, b(a01)), (2, b(a02))], h.clone(), timeout).unwrap(),
            StreamTransport::new(1, vec![(0, b(a10)), (2, b(a12))], h.clone(), timeout).unwrap(),
            StreamTransport::new(2, vec![(0, b(a20)), (1, b(a21))], h, timeout).unwrap(),
        ]
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn frames_cross_and_an_abort_names_its_reason() {
        let rt = rt();
        let mut t = mesh(&rt, Duration::from_secs(5));
        assert_eq!(format!("{:?}", t[2]), "StreamTransport { me: 2 }");
        let big = vec![7u8; 300_000];
        t[0].send(1, big.clone()).unwrap();
        assert_eq!(t[1].recv(0).unwrap(), big);
        t[2].send(0, vec![]).unwrap();
        assert_eq!(t[0].recv(2).unwrap(), Vec::<u8>::new());
        t[1].abort("the host's model does not fit", None);
        match t[2].recv(1) {
            Err(MpcError::Aborted { from: 1, reason }) => {
                assert!(reason.contains("does not fit"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(t[0].send(0, vec![1]), Err(MpcError::Party(_))));
        // A reason is cut to the longest one accepted, which still arrives.
        t[0].abort(&"é".repeat(2000), None);
        match t[1].recv(0) {
            Err(MpcError::Aborted { from: 0, reason }) => {
                assert_eq!(reason.len(), MAX_REASON, "{}", reason.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_silent_peer_times_out_and_a_gone_one_is_named() {
        let rt = rt();
        let mut t = mesh(&rt, Duration::from_millis(200));
        assert!(matches!(
            t[0].recv(1),
            Err(MpcError::Timeout { from: 1, .. })
        ));
        let gone = t.remove(2);
        drop(gone);
        assert!(matches!(t[0].recv(2), Err(MpcError::PeerClosed(2))));
    }

    #[test]
    fn traffic_is_counted_per_peer_with_its_framing() {
        let rt = rt();
        let mut t = mesh(&rt, Duration::from_secs(5));
        t[0].send(1, vec![0; 100]).unwrap();
        t[0].send(2, vec![0; 10]).unwrap();
        assert_eq!(t[1].recv(0).unwrap().len(), 100);
        assert_eq!(t[2].recv(0).unwrap().len(), 10);
        let a = t[0].traffic();
        assert_eq!((a.with(1), a.with(2), a.total()), (104, 14, 118));
        let b = t[1].traffic();
        assert_eq!((b.with(0), b.with(2), b.total()), (104, 0, 104));
    }

    #[test]
    fn control_messages_are_bounded() {
        let rt = rt();
        rt.block_on(async {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            write_message(&mut a, b"notice").await.unwrap();
            write_message(&mut a, &[7u8; 33]).await.unwrap();
            assert_eq!(read_message(&mut b).await.unwrap().unwrap(), b"notice");
            // At the bound: read; one over: refused.
            assert_eq!(
                read_message_max(&mut b, 33).await.unwrap().unwrap().len(),
                33
            );
            write_message(&mut a, &[7u8; 34]).await.unwrap();
            assert!(read_message_max(&mut b, 33).await.is_err());
            // A hostile length without the bytes behind it.
            let (mut c, mut d) = tokio::io::duplex(64);
            c.write_all(&(u32::MAX).to_le_bytes()).await.unwrap();
            assert!(read_message(&mut d).await.is_err());
            // A clean end between messages.
            drop(c);
            let (e, mut f) = tokio::io::duplex(64);
            drop(e);
            assert!(read_message(&mut f).await.unwrap().is_none());
        });
    }

    #[test]
    fn each_end_knows_its_id_and_an_abort_ends_its_peers_stream() {
        let rt = rt();
        let mut t = mesh(&rt, Duration::from_secs(5));
        for (i, x) in t.iter().enumerate() {
            assert_eq!(x.me(), i);
        }
        // What a peer sends after its abort notice is never read.
        t[1].abort("gave up", None);
        t[1].send(0, vec![1, 2, 3]).unwrap();
        assert!(matches!(
            t[0].recv(1),
            Err(MpcError::Aborted { from: 1, .. })
        ));
        assert!(matches!(t[0].recv(1), Err(MpcError::PeerClosed(1))));
        // The culprit is told too (last), and a reason not cut at a
        // character boundary is cut at the one before.
        t[0].abort(&"€".repeat(1000), Some(2));
        for j in [1, 2] {
            match t[j].recv(0) {
                Err(MpcError::Aborted { from: 0, reason }) => assert_eq!(reason.len(), 1023),
                other => panic!("party {j}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_send_to_a_peer_that_gave_up_names_its_reason() {
        let rt = rt();
        let (mut a, b) = tokio::io::duplex(1 << 10);
        let (_c, d) = tokio::io::duplex(1 << 10);
        let mut t = StreamTransport::new(
            0,
            vec![(1, Box::new(b) as BoxStream), (2, Box::new(d) as BoxStream)],
            rt.handle().clone(),
            Duration::from_secs(5),
        )
        .unwrap();
        // Peer 1 writes its notice and goes away.
        rt.block_on(async {
            a.write_all(&ABORT_MARK.to_le_bytes()).await.unwrap();
            a.write_all(&4u32.to_le_bytes()).await.unwrap();
            a.write_all(b"done").await.unwrap();
        });
        drop(a);
        match t.send(1, vec![0; 1 << 16]) {
            Err(MpcError::Aborted { from: 1, reason }) => assert_eq!(reason, "done"),
            other => panic!("{other:?}"),
        }
    }

    /// A stream whose reads fail (a reset connection).
    struct Reset;

    impl AsyncRead for Reset {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()))
        }
    }

    #[test]
    fn a_failed_read_is_an_error_not_an_end() {
        let rt = rt();
        let r = rt.block_on(read_message(&mut Reset));
        assert_eq!(
            r.map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::ConnectionReset)
        );
    }

    #[test]
    fn a_hostile_length_is_refused_before_allocation() {
        let rt = rt();
        let (mut a, b) = tokio::io::duplex(64);
        let (c, _d) = tokio::io::duplex(64);
        let mut t = StreamTransport::new(
            0,
            vec![(1, Box::new(b) as BoxStream), (2, Box::new(c) as BoxStream)],
            rt.handle().clone(),
            Duration::from_secs(5),
        )
        .unwrap();
        rt.block_on(a.write_all(&(u32::MAX - 1).to_le_bytes()))
            .unwrap();
        assert!(matches!(t.recv(1), Err(MpcError::FrameTooLarge(..))));
    }
}
