//! A bad network, emulated in the transport where the kernel has no
//! `netem` (testing): every call to the coordinator is delayed, and some are
//! lost — the request before it arrives, or the reply after the
//! coordinator acted on it (the client then sends it again, which must be
//! harmless: a resent upload gets its receipt again, a resent share is the
//! same share). Losses are transport errors, which the agent retries.

use super::agent::CoordinatorApi;
use crate::error::{FedError, Result};
use crate::messages::{
    JoinReply, JoinRequest, KeySetupBundle, KeySetupPost, KeySetupQuery, ProofReply, ProofRequest,
    ShareChunk, ShareReceipt, Task, TaskRequest, UploadChunk, UploadReceipt,
};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use std::time::Duration;

/// Latency and loss per call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Added to every call, each way.
    pub delay: Duration,
    /// The delay varies uniformly by up to this much, each way.
    pub jitter: Duration,
    /// Probability that a call is lost (half of the losses drop the
    /// request, half the reply).
    pub loss: f64,
}

impl std::str::FromStr for Shape {
    type Err = FedError;

    /// `delay=20ms,jitter=5ms,loss=0.05` (any subset; milliseconds).
    fn from_str(s: &str) -> Result<Self> {
        let mut shape = Shape {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
        };
        let bad = |m: &str| FedError::Config(format!("network shape {s:?}: {m}"));
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad("expected key=value pairs"))?;
            let ms = |v: &str| -> Result<Duration> {
                let n: u64 = v
                    .strip_suffix("ms")
                    .unwrap_or(v)
                    .parse()
                    .map_err(|_| bad("delays are whole milliseconds"))?;
                if n > 10_000 {
                    return Err(bad("delays are at most 10000 ms"));
                }
                Ok(Duration::from_millis(n))
            };
            match k {
                "delay" => shape.delay = ms(v)?,
                "jitter" => shape.jitter = ms(v)?,
                "loss" => {
                    let p: f64 = v.parse().map_err(|_| bad("loss is a probability"))?;
                    if !(0.0..0.5).contains(&p) {
                        return Err(bad("loss must be in [0, 0.5)"));
                    }
                    shape.loss = p;
                }
                _ => return Err(bad("keys are delay, jitter and loss")),
            }
        }
        if shape.jitter > shape.delay {
            return Err(bad("jitter must not exceed the delay"));
        }
        Ok(shape)
    }
}

/// What the shaping did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShapeCounts {
    /// Calls made.
    pub calls: u64,
    /// Requests dropped before reaching the coordinator.
    pub requests_lost: u64,
    /// Replies dropped after the coordinator acted.
    pub replies_lost: u64,
}

/// A coordinator connection behind an emulated bad network.
pub struct Shaped<'a> {
    inner: &'a mut dyn CoordinatorApi,
    shape: Shape,
    rng: ChaCha20Rng,
    counts: ShapeCounts,
}

impl<'a> Shaped<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn CoordinatorApi, shape: Shape) -> Result<Self> {
        Ok(Self {
            inner,
            shape,
            rng: cipherflow_ring::sampler::secure_rng()?,
            counts: ShapeCounts::default(),
        })
    }

    /// What the shaping did so far.
    pub fn counts(&self) -> ShapeCounts {
        self.counts
    }

    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn wait(&mut self) {
        let j = self.shape.jitter.as_secs_f64();
        let d = self.shape.delay.as_secs_f64() + j * (2.0 * self.uniform() - 1.0);
        if d > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(d));
        }
    }

    fn call<T>(&mut self, f: impl FnOnce(&mut dyn CoordinatorApi) -> Result<T>) -> Result<T> {
        self.counts.calls += 1;
        let lost = self.uniform() < self.shape.loss;
        let reply_lost = lost && self.uniform() < 0.5;
        self.wait();
        if lost && !reply_lost {
            self.counts.requests_lost += 1;
            return Err(FedError::Transport("emulated loss of the request".into()));
        }
        let out = f(&mut *self.inner);
        self.wait();
        if reply_lost {
            self.counts.replies_lost += 1;
            return Err(FedError::Transport("emulated loss of the reply".into()));
        }
        out
    }
}

impl CoordinatorApi for Shaped<'_> {
    fn join(&mut self, r: &JoinRequest) -> Result<JoinReply> {
        self.call(|c| c.join(r))
    }
    fn post_key_setup(&mut self, r: &KeySetupPost) -> Result<KeySetupBundle> {
        self.call(|c| c.post_key_setup(r))
    }
    fn get_key_setup(&mut self, r: &KeySetupQuery) -> Result<KeySetupBundle> {
        self.call(|c| c.get_key_setup(r))
    }
    fn next_task(&mut self, r: &TaskRequest) -> Result<Task> {
        self.call(|c| c.next_task(r))
    }
    fn upload(&mut self, chunks: Vec<UploadChunk>) -> Result<UploadReceipt> {
        self.call(|c| c.upload(chunks))
    }
    fn send_share(&mut self, parts: Vec<ShareChunk>) -> Result<ShareReceipt> {
        self.call(|c| c.send_share(parts))
    }
    fn counted_proof(&mut self, r: &ProofRequest) -> Result<ProofReply> {
        self.call(|c| c.counted_proof(r))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shapes_parse_and_bad_ones_are_refused() {
        let s: Shape = "delay=20ms,jitter=5ms,loss=0.05".parse().unwrap();
        assert_eq!(
            s,
            Shape {
                delay: Duration::from_millis(20),
                jitter: Duration::from_millis(5),
                loss: 0.05
            }
        );
        assert_eq!("loss=0.1".parse::<Shape>().unwrap().delay, Duration::ZERO);
        for bad in [
            "delay",
            "delay=-1",
            "delay=20s",
            "delay=99999",
            "loss=0.5",
            "loss=nan",
            "jitter=5",
            "speed=1",
        ] {
            assert!(bad.parse::<Shape>().is_err(), "{bad}");
        }
    }
}
