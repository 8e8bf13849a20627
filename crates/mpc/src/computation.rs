//! The user-facing API: a computation names its three parties, each party
//! runs the same program on a [`Party`], and placements read at a glance:
//!
//! ```no_run
//! use cipherflow_mpc::{run_local, Network, FixedPoint, Party};
//! use ndarray::array;
//! const MODEL_OWNER: usize = 0;
//! const CLIENT: usize = 1;
//! let run = run_local::<u64, _, _>(Network::InProcess, FixedPoint::default(), |p: &mut Party| {
//!     let w = p.private_input(MODEL_OWNER, (p.id() == MODEL_OWNER).then(|| array![[0.5], [2.0]]).as_ref())?;
//!     let x = p.private_input(CLIENT, (p.id() == CLIENT).then(|| array![[1.0, 3.0]]).as_ref())?;
//!     let y = p.matmul_fx(&x, &w)?;
//!     p.reveal_to(&y, &[CLIENT]) // Some([[6.5]]) at the client, None elsewhere
//! })?;
//! # Ok::<(), cipherflow_mpc::MpcError>(())
//! ```

use crate::party::{AShare, Party, Stats};
use crate::transport::{local_mesh, tls, Transport, DEFAULT_TIMEOUT};
use crate::z2k::{FixedPoint, Z2k};
use crate::MpcError;
use ndarray::Array2;
use std::time::{Duration, Instant};

/// Names of the three parties of a computation (for printing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roles(pub [&'static str; 3]);

impl Roles {
    /// The name of party `id`.
    pub fn name(&self, id: usize) -> &'static str {
        self.0.get(id).copied().unwrap_or("?")
    }
}

impl<R: Z2k> Party<R> {
    /// Secret-shares `owner`'s real matrix (`Some` at the owner, `None`
    /// elsewhere), encoded in fixed point.
    pub fn private_input(
        &mut self,
        owner: usize,
        tensor: Option<&Array2<f64>>,
    ) -> Result<AShare<R>, MpcError> {
        let fp = self.fixed_point();
        let enc = tensor.map(|t| {
            (
                t.nrows(),
                t.ncols(),
                fp.encode::<R>(&t.iter().copied().collect::<Vec<_>>()),
            )
        });
        self.share_ring(owner, enc.as_ref().map(|(r, c, v)| (*r, *c, v.as_slice())))
    }

    /// A shared variable with a public initial value (e.g. zero weights),
    /// created without communication; it stays secret once updated with
    /// secret values.
    pub fn private_variable(&self, init: &Array2<f64>) -> Result<AShare<R>, MpcError> {
        let v = self
            .fixed_point()
            .encode::<R>(&init.iter().copied().collect::<Vec<_>>());
        self.share_public(init.nrows(), init.ncols(), &v)
    }

    /// Reveals a fixed-point matrix to the parties in `to` only.
    pub fn reveal_to(
        &mut self,
        x: &AShare<R>,
        to: &[usize],
    ) -> Result<Option<Array2<f64>>, MpcError> {
        let fp = self.fixed_point();
        match self.reveal_ring(x, to)? {
            Some(v) => Ok(Some(
                Array2::from_shape_vec(x.shape(), fp.decode(&v))
                    .map_err(|e| MpcError::Config(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// Reveals an integer sharing (indices, bits) to the parties in `to`.
    pub fn reveal_int_to(
        &mut self,
        x: &AShare<R>,
        to: &[usize],
    ) -> Result<Option<Vec<i64>>, MpcError> {
        Ok(self
            .reveal_ring(x, to)?
            .map(|v| v.iter().map(|e| e.decode(0) as i64).collect()))
    }
}

/// How the three local parties talk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Network {
    /// Channels between threads.
    InProcess,
    /// Channels with emulated links: one-way `latency` and
    /// `bytes_per_sec` per direction of each link.
    Shaped {
        /// One-way latency (RTT is twice this).
        latency: Duration,
        /// Bandwidth of each link, bytes per second.
        bytes_per_sec: f64,
    },
    /// TCP + mutually authenticated TLS on 127.0.0.1 (fresh certificates).
    LocalTls,
}

/// The outcome of [`run_local`].
#[derive(Debug)]
pub struct LocalRun<T> {
    /// Each party's result, by id.
    pub outputs: Vec<T>,
    /// Counters combined over parties (bytes summed, rounds max), without
    /// the key setup.
    pub stats: Stats,
    /// Seconds from the end of setup to the last party's end.
    pub seconds: f64,
}

/// Runs `program` as three parties in threads of this process and
/// collects their results. Setup (connections, PRF keys) is not timed or
/// counted.
pub fn run_local<R, T, F>(net: Network, fp: FixedPoint, program: F) -> Result<LocalRun<T>, MpcError>
where
    R: Z2k,
    T: Send,
    F: Fn(&mut Party<R>) -> Result<T, MpcError> + Sync,
{
    run_local_with_timeout(net, fp, DEFAULT_TIMEOUT, program)
}

/// [`run_local`] with a receive timeout.
pub fn run_local_with_timeout<R, T, F>(
    net: Network,
    fp: FixedPoint,
    timeout: Duration,
    program: F,
) -> Result<LocalRun<T>, MpcError>
where
    R: Z2k,
    T: Send,
    F: Fn(&mut Party<R>) -> Result<T, MpcError> + Sync,
{
    let transports: Vec<Box<dyn Transport>> = match net {
        Network::InProcess => local_mesh(timeout)
            .into_iter()
            .map(|t| Box::new(t) as Box<dyn Transport>)
            .collect(),
        Network::LocalTls => local_tls(timeout)?,
        Network::Shaped {
            latency,
            bytes_per_sec,
        } => {
            let epoch = Instant::now();
            local_mesh(timeout)
                .into_iter()
                .map(|t| {
                    Box::new(crate::transport::shaped::Shaped::new(
                        t,
                        epoch,
                        latency,
                        bytes_per_sec,
                    )) as Box<dyn Transport>
                })
                .collect()
        }
    };
    let barrier = std::sync::Barrier::new(3);
    let results: Vec<Result<(T, Stats, Instant, Instant), MpcError>> = std::thread::scope(|s| {
        let handles: Vec<_> = transports
            .into_iter()
            .map(|t| {
                let program = &program;
                let barrier = &barrier;
                s.spawn(move || {
                    let mut p = Party::<R>::setup(t, fp);
                    barrier.wait();
                    let p = p.as_mut().map_err(|e| MpcError::Party(e.to_string()))?;
                    p.reset_stats();
                    let t0 = Instant::now();
                    let out = program(p)?;
                    Ok((out, p.stats().clone(), t0, Instant::now()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(MpcError::Party("a party thread panicked".into())))
            })
            .collect()
    });
    // Report the failure that caused the others: a party that failed on
    // its own, rather than one that saw its peer leave or time out.
    let mut ok = Vec::with_capacity(3);
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let first_cause = errors.iter().position(|e| !e.is_consequence()).unwrap_or(0);
        return Err(errors.swap_remove(first_cause));
    }
    let mut outputs = Vec::new();
    let mut stats = Vec::new();
    let mut start: Option<Instant> = None;
    let mut end: Option<Instant> = None;
    for (o, st, t0, t1) in ok {
        outputs.push(o);
        stats.push(st);
        start = Some(start.map_or(t0, |s| s.min(t0)));
        end = Some(end.map_or(t1, |e| e.max(t1)));
    }
    let seconds = match (start, end) {
        (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => 0.0,
    };
    Ok(LocalRun {
        outputs,
        stats: Stats::combine(&stats),
        seconds,
    })
}

/// The outcome of [`run_party`] for this process's party.
#[derive(Debug)]
pub struct PartyRun<T> {
    /// This party's id.
    pub id: usize,
    /// This party's result.
    pub output: T,
    /// This party's counters, without the key setup.
    pub stats: Stats,
    /// Seconds from the end of setup to this party's end.
    pub seconds: f64,
}

/// Runs `program` as party `id` of a three-process computation described
/// by the network file `config` ([`tls::NetworkConfig`]): binds this
/// party's address, connects to the two peers over mutually authenticated
/// TLS (retrying until the file's timeout), sets up the pairwise keys and
/// runs. Only this party's credentials are read.
pub fn run_party<R, T, F>(
    id: usize,
    config: &std::path::Path,
    fp: FixedPoint,
    program: F,
) -> Result<PartyRun<T>, MpcError>
where
    R: Z2k,
    F: FnOnce(&mut Party<R>) -> Result<T, MpcError>,
{
    if id >= 3 {
        return Err(MpcError::Config(format!(
            "party {id}: the parties are 0, 1 and 2"
        )));
    }
    let cfg = tls::NetworkConfig::load(config)?;
    let creds = cfg.credentials(id)?;
    let addrs = cfg.addresses();
    let addr = addrs
        .get(id)
        .ok_or_else(|| MpcError::Config(format!("party {id}: no address in the network file")))?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| MpcError::Config(format!("party {id}: cannot listen on {addr}: {e}")))?;
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let t = tls::connect(id, listener, &addrs, &creds, timeout)?;
    let mut p = Party::<R>::setup(Box::new(t), fp)?;
    p.reset_stats();
    let t0 = Instant::now();
    let output = match program(&mut p) {
        Ok(o) => o,
        Err(e) => {
            // The peers waiting on this party learn why it stops.
            p.abort(&e);
            return Err(e);
        }
    };
    Ok(PartyRun {
        id,
        output,
        stats: p.stats().clone(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Three TLS transports on 127.0.0.1 with fresh credentials.
fn local_tls(timeout: Duration) -> Result<Vec<Box<dyn Transport>>, MpcError> {
    let creds = tls::generate_credentials()?;
    let listeners = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let joined: Vec<Result<tls::TlsTransport, MpcError>> = std::thread::scope(|s| {
        let hs: Vec<_> = listeners
            .into_iter()
            .zip(&creds)
            .enumerate()
            .map(|(id, (l, c))| {
                let addrs = &addrs;
                s.spawn(move || tls::connect(id, l, addrs, c, timeout))
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(MpcError::Tls("connect panicked".into())))
            })
            .collect()
    });
    joined
        .into_iter()
        .map(|t| t.map(|t| Box::new(t) as Box<dyn Transport>))
        .collect()
}
