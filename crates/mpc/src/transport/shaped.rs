//! Network emulation for in-process runs: each message arrives one-way
//! latency plus its transmission time (`bytes / bandwidth`, links
//! serialised per direction) after it was sent, as on a WAN link.

use super::Transport;
use crate::MpcError;
use std::time::{Duration, Instant};

/// Wraps a transport so messages are delivered as over a shaped link.
pub struct Shaped<T: Transport> {
    inner: T,
    epoch: Instant,
    latency: Duration,
    bytes_per_sec: f64,
    link_free: [Instant; 3],
}

impl<T: Transport> Shaped<T> {
    /// `latency` one way (RTT = 2 × latency), `bytes_per_sec` per link.
    /// All parties of one mesh must share `epoch`.
    pub fn new(inner: T, epoch: Instant, latency: Duration, bytes_per_sec: f64) -> Self {
        Shaped {
            inner,
            epoch,
            latency,
            bytes_per_sec: bytes_per_sec.max(1.0),
            link_free: [epoch; 3],
        }
    }
}

impl<T: Transport> Transport for Shaped<T> {
    fn me(&self) -> usize {
        self.inner.me()
    }

    fn send(&mut self, to: usize, msg: Vec<u8>) -> Result<(), MpcError> {
        let now = Instant::now();
        let slot = self
            .link_free
            .get_mut(to)
            .ok_or_else(|| MpcError::Party(format!("no party {to}")))?;
        let start = (*slot).max(now);
        let done = start + Duration::from_secs_f64(msg.len() as f64 / self.bytes_per_sec);
        *slot = done;
        let at = (done + self.latency).duration_since(self.epoch).as_nanos() as u64;
        let mut framed = Vec::with_capacity(8 + msg.len());
        framed.extend_from_slice(&at.to_le_bytes());
        framed.extend_from_slice(&msg);
        self.inner.send(to, framed)
    }

    fn recv(&mut self, from: usize) -> Result<Vec<u8>, MpcError> {
        let mut m = self.inner.recv(from)?;
        let head: [u8; 8] =
            m.get(..8)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| MpcError::Malformed {
                    from,
                    what: "missing delivery time".into(),
                })?;
        let at = self.epoch + Duration::from_nanos(u64::from_le_bytes(head));
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        m.drain(..8);
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local_mesh;

    #[test]
    fn messages_arrive_after_latency_plus_transmission() {
        let [a, b, _c] = local_mesh(Duration::from_secs(5));
        let epoch = Instant::now();
        let lat = Duration::from_millis(20);
        let mut a = Shaped::new(a, epoch, lat, 1e6);
        let mut b = Shaped::new(b, epoch, lat, 1e6);
        let t = Instant::now();
        a.send(1, vec![7u8; 10_000]).ok();
        let m = b.recv(0).ok();
        let took = t.elapsed();
        assert_eq!(m.map(|m| m.len()), Some(10_000));
        // 20 ms latency + 10 kB at 1 MB/s = 30 ms.
        assert!(took >= Duration::from_millis(29), "{took:?}");
    }
}
