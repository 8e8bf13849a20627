//! A party's session: its id, transport, pairwise keys, fixed-point
//! parameters and communication counters. Protocols (in [`crate::protocols`])
//! are methods on [`Party`]; every party runs the same program.

use crate::prf::{fresh_key, PairwiseKeys};
use crate::transport::Transport;
use crate::z2k::{fill_random, from_bytes, to_bytes, FixedPoint, Z2k};
use crate::MpcError;
use std::collections::BTreeMap;
use std::fmt;

/// Communication of one kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpStats {
    /// Times the operation ran.
    pub calls: u64,
    /// Bytes this party sent (payloads plus 4-byte frame headers; TLS
    /// record overhead not included).
    pub bytes: u64,
    /// Communication rounds (steps where this party sends or waits).
    pub rounds: u64,
}

/// Per-operation counters of one party.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// By operation name (outermost operation wins: the multiplications
    /// inside a ReLU count as "relu").
    pub ops: BTreeMap<&'static str, OpStats>,
}

impl Stats {
    /// Total bytes sent.
    pub fn bytes(&self) -> u64 {
        self.ops.values().map(|o| o.bytes).sum()
    }

    /// Total rounds.
    pub fn rounds(&self) -> u64 {
        self.ops.values().map(|o| o.rounds).sum()
    }

    /// Combines the three parties' counters: bytes add up, rounds and calls
    /// are the maximum over parties.
    pub fn combine(all: &[Stats]) -> Stats {
        let mut out = Stats::default();
        for s in all {
            for (k, v) in &s.ops {
                let e = out.ops.entry(k).or_default();
                e.bytes += v.bytes;
                e.rounds = e.rounds.max(v.rounds);
                e.calls = e.calls.max(v.calls);
            }
        }
        out
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<14} {:>8} {:>14} {:>8}",
            "op", "calls", "bytes", "rounds"
        )?;
        for (k, v) in &self.ops {
            writeln!(f, "{k:<14} {:>8} {:>14} {:>8}", v.calls, v.bytes, v.rounds)?;
        }
        write!(
            f,
            "{:<14} {:>8} {:>14} {:>8}",
            "total",
            "",
            self.bytes(),
            self.rounds()
        )
    }
}

/// A replicated arithmetic sharing of a `rows × cols` matrix over `R`:
/// `x = x_0 + x_1 + x_2`, party `i` holds `(x_i, x_{i+1})` as `(a, b)`.
#[derive(Clone, PartialEq, Eq)]
pub struct AShare<R: Z2k> {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) a: Vec<R>,
    pub(crate) b: Vec<R>,
}

/// A replicated binary (XOR) sharing, bitwise over `R`'s words.
#[derive(Clone, PartialEq, Eq)]
pub struct BShare<R: Z2k> {
    pub(crate) a: Vec<R>,
    pub(crate) b: Vec<R>,
}

impl<R: Z2k> fmt::Debug for AShare<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AShare({}×{}, <shares>)", self.rows, self.cols)
    }
}

impl<R: Z2k> fmt::Debug for BShare<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BShare({}, <shares>)", self.a.len())
    }
}

impl<R: Z2k> AShare<R> {
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// This party's two components `(x_i, x_{i+1})` (its view).
    pub fn components(&self) -> (&[R], &[R]) {
        (&self.a, &self.b)
    }

    pub(crate) fn from_parts(rows: usize, cols: usize, a: Vec<R>, b: Vec<R>) -> Self {
        AShare { rows, cols, a, b }
    }
}

impl<R: Z2k> BShare<R> {
    /// This party's two components.
    pub fn components(&self) -> (&[R], &[R]) {
        (&self.a, &self.b)
    }
}

/// One of the three parties of a computation.
pub struct Party<R: Z2k = u64> {
    id: usize,
    transport: Box<dyn Transport>,
    keys: PairwiseKeys,
    fp: FixedPoint,
    stats: Stats,
    op: Option<&'static str>,
    _ring: std::marker::PhantomData<R>,
}

impl<R: Z2k> fmt::Debug for Party<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Party {{ id: {}, ring: Z_2^{}, {:?} }}",
            self.id,
            R::BITS,
            self.fp
        )
    }
}

impl<R: Z2k> Party<R> {
    /// Sets up a party over `transport`: draws its PRF key from the OS,
    /// sends it to the previous party and receives the next party's key.
    pub fn setup(transport: Box<dyn Transport>, fp: FixedPoint) -> Result<Self, MpcError> {
        let id = transport.me();
        if id >= 3 {
            return Err(MpcError::Party(format!("party id {id} is not 0, 1 or 2")));
        }
        FixedPoint::new::<R>(fp.frac)?;
        let own = fresh_key()?;
        let mut p = Party {
            id,
            transport,
            keys: PairwiseKeys::new(own.clone(), own.clone()),
            fp,
            stats: Stats::default(),
            op: None,
            _ring: std::marker::PhantomData,
        };
        let next = p.with_op("setup", |p| {
            p.transport.send(p.prev(), own.to_vec())?;
            let k = zeroize::Zeroizing::new(p.transport.recv(p.next())?);
            p.count(36, 1);
            let arr: [u8; 32] = k.as_slice().try_into().map_err(|_| MpcError::Malformed {
                from: p.next(),
                what: "PRF key must be 32 bytes".into(),
            })?;
            Ok(zeroize::Zeroizing::new(arr))
        })?;
        p.keys = PairwiseKeys::new(own, next);
        Ok(p)
    }

    /// Tells the other parties, best effort, that this party gives up
    /// because of `error` (see [`Transport::abort`]).
    pub fn abort(&mut self, error: &MpcError) {
        self.transport.abort(&error.to_string(), error.peer());
    }

    /// This party's id.
    pub fn id(&self) -> usize {
        self.id
    }

    /// `id + 1 mod 3`.
    pub fn next(&self) -> usize {
        (self.id + 1) % 3
    }

    /// `id − 1 mod 3`.
    pub fn prev(&self) -> usize {
        (self.id + 2) % 3
    }

    /// Fixed-point parameters.
    pub fn fixed_point(&self) -> FixedPoint {
        self.fp
    }

    /// Communication counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Resets the counters (e.g. after setup, before a timed section).
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    /// Runs `f` with its communication attributed to `name` (unless an
    /// enclosing operation already is being counted).
    pub fn with_op<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, MpcError>,
    ) -> Result<T, MpcError> {
        if self.op.is_some() {
            return f(self);
        }
        self.op = Some(name);
        self.stats.ops.entry(name).or_default().calls += 1;
        let r = f(self);
        self.op = None;
        r
    }

    fn count(&mut self, bytes: u64, rounds: u64) {
        let e = self
            .stats
            .ops
            .entry(self.op.unwrap_or("other"))
            .or_default();
        e.bytes += bytes;
        e.rounds += rounds;
    }

    /// Marks one communication round.
    pub(crate) fn round(&mut self) {
        self.count(0, 1);
    }

    /// Sends ring elements to a peer (no round counted).
    pub(crate) fn send_ring(&mut self, to: usize, v: &[R]) -> Result<(), MpcError> {
        let bytes = to_bytes(v);
        self.count(bytes.len() as u64 + 4, 0);
        self.transport.send(to, bytes)
    }

    /// Receives exactly `n` ring elements from a peer.
    pub(crate) fn recv_ring(&mut self, from: usize, n: usize) -> Result<Vec<R>, MpcError> {
        let bytes = self.transport.recv(from)?;
        from_bytes(&bytes, n, from)
    }

    /// Sends raw bytes (headers) to a peer.
    pub(crate) fn send_bytes(&mut self, to: usize, v: Vec<u8>) -> Result<(), MpcError> {
        self.count(v.len() as u64 + 4, 0);
        self.transport.send(to, v)
    }

    /// Receives raw bytes.
    pub(crate) fn recv_bytes(&mut self, from: usize) -> Result<Vec<u8>, MpcError> {
        self.transport.recv(from)
    }

    /// Opens this operation's PRF streams and draws `n` elements from each:
    /// `(F(k_i), F(k_{i+1}))`.
    pub(crate) fn prf_pair(&mut self, n: usize) -> (Vec<R>, Vec<R>) {
        let (mut s0, mut s1) = self.keys.streams();
        let mut r0 = vec![R::ZERO; n];
        let mut r1 = vec![R::ZERO; n];
        fill_random(&mut s0, &mut r0);
        fill_random(&mut s1, &mut r1);
        (r0, r1)
    }

    /// An arithmetic zero sharing: `α_i = F(k_i) − F(k_{i+1})`, Σ α = 0.
    pub(crate) fn zero_share(&mut self, n: usize) -> Vec<R> {
        let (r0, r1) = self.prf_pair(n);
        r0.into_iter().zip(r1).map(|(x, y)| x.sub(y)).collect()
    }

    /// A binary zero sharing: `F(k_i) ⊕ F(k_{i+1})`.
    pub(crate) fn zero_share_xor(&mut self, n: usize) -> Vec<R> {
        let (r0, r1) = self.prf_pair(n);
        r0.into_iter().zip(r1).map(|(x, y)| x.xor(y)).collect()
    }

    /// Turns three-out-of-three shares `z_i` (already masked by a zero
    /// sharing) into a replicated sharing: send `z_i` to the previous
    /// party, receive `z_{i+1}` from the next. One round.
    pub(crate) fn reshare(&mut self, z: Vec<R>) -> Result<(Vec<R>, Vec<R>), MpcError> {
        self.round();
        self.send_ring(self.prev(), &z)?;
        let zn = self.recv_ring(self.next(), z.len())?;
        Ok((z, zn))
    }
}

/// What a party's fields hold while [`Party::in_ring`] lends them to a
/// party of another ring: any use is an error.
struct Lent(usize);

impl Transport for Lent {
    fn me(&self) -> usize {
        self.0
    }
    fn send(&mut self, _: usize, _: Vec<u8>) -> Result<(), MpcError> {
        Err(MpcError::Party("transport lent to another ring".into()))
    }
    fn recv(&mut self, _: usize) -> Result<Vec<u8>, MpcError> {
        Err(MpcError::Party("transport lent to another ring".into()))
    }
}

impl<R: Z2k> Party<R> {
    /// Runs `f` as this party in the ring `S` (the same session: transport,
    /// PRF keys and counters; fixed point `fp`), then returns to `R`.
    pub(crate) fn in_ring<S: Z2k, T>(
        &mut self,
        fp: FixedPoint,
        f: impl FnOnce(&mut Party<S>) -> Result<T, MpcError>,
    ) -> Result<T, MpcError> {
        let placeholder = || PairwiseKeys::new(Default::default(), Default::default());
        let mut other = Party::<S> {
            id: self.id,
            transport: std::mem::replace(&mut self.transport, Box::new(Lent(self.id))),
            keys: std::mem::replace(&mut self.keys, placeholder()),
            fp,
            stats: std::mem::take(&mut self.stats),
            op: self.op,
            _ring: std::marker::PhantomData,
        };
        let out = f(&mut other);
        self.transport = other.transport;
        self.keys = other.keys;
        self.stats = other.stats;
        out
    }

    /// This operation's raw PRF streams `(F(k_i), F(k_{i+1}))`.
    pub(crate) fn streams(&mut self) -> (rand_chacha::ChaCha20Rng, rand_chacha::ChaCha20Rng) {
        self.keys.streams()
    }
}
