//! Moving bytes between the three parties.
//!
//! Protocols only see the [`Transport`] trait: send a message to a peer,
//! receive the next message from a peer. Every receive has a timeout, and
//! anything a peer can send that is not the expected message is a typed
//! [`MpcError`], never a panic or a hang.
//!
//! * [`local_mesh`]: three in-process transports over channels (tests,
//!   single-process runs);
//! * [`shaped`]: a wrapper that delays messages as a WAN link would
//!   (latency + bytes / bandwidth), for network-shaped figures;
//! * [`tls`]: TCP with mutually authenticated TLS 1.3 (rustls, ring
//!   provider), one connection per direction, certificates made by
//!   [`tls::generate_credentials`].
//!
//! On the wire a message is a frame: a 4-byte little-endian length, then
//! that many bytes ([`write_frame`], [`read_frame`]).

pub mod shaped;
pub mod tls;

use crate::MpcError;
use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// Default deadline of a blocking receive or send.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest frame accepted from a peer (1 GiB).
pub const MAX_FRAME: usize = 1 << 30;

/// Point-to-point messaging between the three parties.
pub trait Transport: Send {
    /// This party's id (0, 1 or 2).
    fn me(&self) -> usize;
    /// Sends one message to `to`.
    fn send(&mut self, to: usize, msg: Vec<u8>) -> Result<(), MpcError>;
    /// Receives the next message from `from`, waiting at most the
    /// transport's timeout.
    fn recv(&mut self, from: usize) -> Result<Vec<u8>, MpcError>;
    /// Tells the peers, best effort, that this party gives up and why, so
    /// that a party waiting on it reports the cause rather than a closed
    /// connection (in-process transports need not: one process sees every
    /// party's error).
    /// `culprit`, the party the reason names, is told last: it may be the
    /// one that stopped reading.
    fn abort(&mut self, _reason: &str, _culprit: Option<usize>) {}
}

/// What a party's inbox from one peer yields: a message or the error that
/// ended the connection.
pub(crate) type Inbox = Receiver<Result<Vec<u8>, MpcError>>;

/// The sending end of an [`Inbox`].
type Outbox = Sender<Result<Vec<u8>, MpcError>>;

fn check_peer(me: usize, p: usize) -> Result<(), MpcError> {
    if p >= 3 || p == me {
        return Err(MpcError::Party(format!(
            "party {me} cannot talk to party {p}"
        )));
    }
    Ok(())
}

fn recv_inbox(inbox: &Inbox, from: usize, timeout: Duration) -> Result<Vec<u8>, MpcError> {
    match inbox.recv_timeout(timeout) {
        Ok(r) => r,
        Err(RecvTimeoutError::Timeout) => Err(MpcError::Timeout {
            from,
            ms: timeout.as_millis(),
        }),
        Err(RecvTimeoutError::Disconnected) => Err(MpcError::PeerClosed(from)),
    }
}

/// An in-process transport: channels to and from the two other parties.
pub struct ChannelTransport {
    me: usize,
    out: Vec<Option<Outbox>>,
    inbox: Vec<Option<Inbox>>,
    timeout: Duration,
}

impl Transport for ChannelTransport {
    fn me(&self) -> usize {
        self.me
    }

    fn send(&mut self, to: usize, msg: Vec<u8>) -> Result<(), MpcError> {
        check_peer(self.me, to)?;
        let tx = self
            .out
            .get(to)
            .and_then(Option::as_ref)
            .ok_or(MpcError::PeerClosed(to))?;
        tx.send(Ok(msg)).map_err(|_| MpcError::PeerClosed(to))
    }

    fn recv(&mut self, from: usize) -> Result<Vec<u8>, MpcError> {
        check_peer(self.me, from)?;
        let rx = self
            .inbox
            .get(from)
            .and_then(Option::as_ref)
            .ok_or(MpcError::PeerClosed(from))?;
        recv_inbox(rx, from, self.timeout)
    }
}

/// Three connected in-process transports (index = party id) whose receives
/// time out after `timeout`.
pub fn local_mesh(timeout: Duration) -> [ChannelTransport; 3] {
    let mut out: Vec<Vec<Option<Outbox>>> = (0..3).map(|_| vec![None, None, None]).collect();
    let mut inbox: Vec<Vec<Option<Inbox>>> = (0..3).map(|_| vec![None, None, None]).collect();
    for from in 0..3 {
        for to in 0..3 {
            if from != to {
                let (tx, rx) = mpsc::channel();
                out[from][to] = Some(tx);
                inbox[to][from] = Some(rx);
            }
        }
    }
    let mut parties = out
        .into_iter()
        .zip(inbox)
        .enumerate()
        .map(|(me, (out, inbox))| ChannelTransport {
            me,
            out,
            inbox,
            timeout,
        });
    [(); 3].map(|_| {
        parties.next().unwrap_or_else(|| ChannelTransport {
            me: 0,
            out: Vec::new(),
            inbox: Vec::new(),
            timeout,
        })
    })
}

/// The length field that marks an abort notice instead of a data frame
/// (data frames are at most [`MAX_FRAME`] bytes, far below it).
const ABORT_MARK: u32 = u32::MAX;

/// Longest abort reason sent or accepted.
pub const MAX_ABORT_REASON: usize = 1024;

/// What one frame on a peer's stream holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A message of the computation.
    Data(Vec<u8>),
    /// The peer gives up: its reason, printable characters only.
    Abort(String),
}

/// Writes an abort notice: [`ABORT_MARK`], the reason's length, the
/// reason (cut to [`MAX_ABORT_REASON`] bytes at a character boundary).
pub fn write_abort(w: &mut impl Write, reason: &str) -> Result<(), MpcError> {
    let mut end = reason.len().min(MAX_ABORT_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let text = reason.get(..end).unwrap_or_default().as_bytes();
    w.write_all(&ABORT_MARK.to_le_bytes())?;
    w.write_all(&(text.len() as u32).to_le_bytes())?;
    w.write_all(text)?;
    w.flush()?;
    Ok(())
}

/// Writes one frame: 4-byte little-endian length, then the payload.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> Result<(), MpcError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| (l as usize) <= MAX_FRAME)
        .ok_or(MpcError::FrameTooLarge(payload.len(), MAX_FRAME))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame of at most `max` bytes (an abort notice: at most
/// [`MAX_ABORT_REASON`]). `Ok(None)` is a clean end of stream between
/// frames; an end inside a frame is [`MpcError::Truncated`].
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Option<Frame>, MpcError> {
    let mut head = [0u8; 4];
    let got = read_full(r, &mut head)?;
    if got == 0 {
        return Ok(None);
    }
    if got < 4 {
        return Err(MpcError::Truncated { expected: 4, got });
    }
    if u32::from_le_bytes(head) == ABORT_MARK {
        return read_body(r, MAX_ABORT_REASON).map(|b| {
            let text = String::from_utf8_lossy(&b);
            Some(Frame::Abort(
                text.chars().filter(|c| !c.is_control()).collect(),
            ))
        });
    }
    let len = u32::from_le_bytes(head) as usize;
    read_body_of(r, len, max).map(|b| Some(Frame::Data(b)))
}

/// A length-prefixed body of at most `max` bytes.
fn read_body(r: &mut impl Read, max: usize) -> Result<Vec<u8>, MpcError> {
    let mut head = [0u8; 4];
    let got = read_full(r, &mut head)?;
    if got < 4 {
        return Err(MpcError::Truncated { expected: 4, got });
    }
    read_body_of(r, u32::from_le_bytes(head) as usize, max)
}

/// A body of `len` bytes, refused over `max`.
fn read_body_of(r: &mut impl Read, len: usize, max: usize) -> Result<Vec<u8>, MpcError> {
    if len > max {
        return Err(MpcError::FrameTooLarge(len, max));
    }
    let mut body = vec![0u8; len];
    let got = read_full(r, &mut body)?;
    if got < len {
        return Err(MpcError::Truncated { expected: len, got });
    }
    Ok(body)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, MpcError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_truncation() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").ok();
        write_frame(&mut buf, b"").ok();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r, 100).ok().flatten(),
            Some(Frame::Data(b"hello".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r, 100).ok().flatten(),
            Some(Frame::Data(Vec::new()))
        );
        assert!(matches!(read_frame(&mut r, 100), Ok(None)));
        let mut t = &buf[..7];
        assert!(matches!(
            read_frame(&mut t, 100),
            Err(MpcError::Truncated { .. })
        ));
        let mut h = &buf[..2];
        assert!(matches!(
            read_frame(&mut h, 100),
            Err(MpcError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        // A frame of exactly the limit is accepted.
        let mut exact = &buf[..];
        assert_eq!(
            read_frame(&mut exact, 5).ok().flatten(),
            Some(Frame::Data(b"hello".to_vec()))
        );
        let mut big = &buf[..];
        assert!(matches!(
            read_frame(&mut big, 3),
            Err(MpcError::FrameTooLarge(5, 3))
        ));
    }

    #[test]
    #[allow(clippy::panic)]
    fn abort_notices_are_bounded_and_printable() {
        let mut buf = Vec::new();
        write_abort(&mut buf, "timed out waiting for party 2").ok();
        write_frame(&mut buf, b"after").ok();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r, 100).ok().flatten(),
            Some(Frame::Abort("timed out waiting for party 2".into()))
        );
        assert_eq!(
            read_frame(&mut r, 100).ok().flatten(),
            Some(Frame::Data(b"after".to_vec()))
        );
        // A long reason is cut at a character boundary; control
        // characters (a terminal escape) are dropped on receipt.
        let mut buf = Vec::new();
        write_abort(&mut buf, &format!("\u{1b}[2J{}", "é".repeat(1000))).ok();
        let Ok(Some(Frame::Abort(text))) = read_frame(&mut &buf[..], 10) else {
            panic!("no abort notice");
        };
        assert!(text.len() <= MAX_ABORT_REASON && !text.contains('\u{1b}'));
        assert!(text.starts_with("[2Jé"));
        // 1024 falls inside a 3-byte character: cut before it.
        let mut buf = Vec::new();
        write_abort(&mut buf, &"€".repeat(400)).ok();
        let Ok(Some(Frame::Abort(text))) = read_frame(&mut &buf[..], 10) else {
            panic!("no abort notice");
        };
        assert_eq!(text, "€".repeat(341));
        // A peer announcing a longer reason is refused before allocating.
        let mut bad = ABORT_MARK.to_le_bytes().to_vec();
        bad.extend(((MAX_ABORT_REASON + 1) as u32).to_le_bytes());
        assert!(matches!(
            read_frame(&mut &bad[..], 100),
            Err(MpcError::FrameTooLarge(..))
        ));
        let mut short = ABORT_MARK.to_le_bytes().to_vec();
        short.extend([5, 0]);
        assert!(matches!(
            read_frame(&mut &short[..], 100),
            Err(MpcError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        let mut cut = ABORT_MARK.to_le_bytes().to_vec();
        cut.extend(5u32.to_le_bytes());
        cut.extend(b"ab");
        assert!(matches!(
            read_frame(&mut &cut[..], 100),
            Err(MpcError::Truncated {
                expected: 5,
                got: 2
            })
        ));
    }

    #[test]
    fn channel_receive_times_out() {
        let [mut a, _b, _c] = local_mesh(Duration::from_millis(50));
        assert!(matches!(a.recv(1), Err(MpcError::Timeout { from: 1, .. })));
    }

    #[test]
    fn a_party_talks_only_to_the_two_others() {
        assert!(check_peer(0, 1).is_ok() && check_peer(0, 2).is_ok());
        for (me, p) in [(0, 0), (1, 1), (0, 3), (2, 7)] {
            assert!(
                matches!(check_peer(me, p), Err(MpcError::Party(_))),
                "{me} → {p}"
            );
        }
        let [mut a, _b, _c] = local_mesh(Duration::from_millis(50));
        assert!(matches!(a.send(0, vec![]), Err(MpcError::Party(_))));
        assert!(matches!(a.send(3, vec![]), Err(MpcError::Party(_))));
        assert!(matches!(a.recv(0), Err(MpcError::Party(_))));
    }

    /// A reader that fails with `kinds` (one per call) before the data.
    struct Flaky<'a> {
        kinds: Vec<std::io::ErrorKind>,
        data: &'a [u8],
    }

    impl std::io::Read for Flaky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if let Some(k) = self.kinds.pop() {
                return Err(k.into());
            }
            self.data.read(buf)
        }
    }

    #[test]
    fn interrupted_reads_are_retried_and_other_errors_are_reported() {
        use std::io::ErrorKind;
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").ok();
        let mut r = Flaky {
            kinds: vec![ErrorKind::Interrupted, ErrorKind::Interrupted],
            data: &buf,
        };
        assert_eq!(
            read_frame(&mut r, 100).ok().flatten(),
            Some(Frame::Data(b"hello".to_vec()))
        );
        // An end of stream reported as an error is an end of stream.
        let mut r = Flaky {
            kinds: vec![ErrorKind::UnexpectedEof],
            data: &buf,
        };
        assert!(matches!(read_frame(&mut r, 100), Ok(None)));
        let mut r = Flaky {
            kinds: vec![ErrorKind::ConnectionReset],
            data: &buf,
        };
        assert!(matches!(read_frame(&mut r, 100), Err(MpcError::Io(_))));
    }
}
