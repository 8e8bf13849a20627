#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Views are uniform, bad peers give typed errors, and one run over real
//! TCP + mutual TLS on 127.0.0.1.

use cipherflow_mpc::transport::local_mesh;
use cipherflow_mpc::{run_local, FixedPoint, MpcError, Network, Party, Transport};
use ndarray::Array2;
use std::time::{Duration, Instant};

/// Chi-square statistic of the low bytes of `v` against uniform (255 dof).
fn chi2_low_byte(v: &[u64]) -> f64 {
    let mut counts = [0f64; 256];
    for &x in v {
        counts[(x & 0xff) as usize] += 1.0;
    }
    let e = v.len() as f64 / 256.0;
    counts.iter().map(|c| (c - e) * (c - e) / e).sum()
}

/// Party 1's view when party 0 inputs `secret` (everywhere) and the
/// parties multiply it by itself: its shares of the input (one from a PRF,
/// one received) and of the product (one computed, one received).
fn view_of_party1(secret: u64, n: usize) -> Vec<Vec<u64>> {
    let run = run_local::<u64, _, _>(Network::InProcess, FixedPoint::default(), |p| {
        let v = vec![secret; n];
        let x = p.share_ring(0, (p.id() == 0).then_some((1, n, v.as_slice())))?;
        let y = p.mul(&x, &x)?;
        let bits = p.a2b(&x)?;
        let (xa, xb) = x.components();
        let (ya, yb) = y.components();
        let (ba, bb) = bits.components();
        Ok([xa, xb, ya, yb, ba, bb].map(|c| c.to_vec()).to_vec())
    })
    .unwrap();
    run.outputs[1].clone()
}

#[test]
fn a_single_partys_view_is_uniform_whatever_the_secret() {
    // 255 degrees of freedom: P(χ² > 400) ≈ 1e-8 for uniform data.
    let n = 20_000;
    for secret in [0u64, 1, 0xdead_beef_0000_1234, u64::MAX] {
        for (k, part) in view_of_party1(secret, n).iter().enumerate() {
            let c = chi2_low_byte(part);
            assert!(c < 400.0, "secret {secret:#x}, view part {k}: chi2 = {c}");
        }
    }
    // And the test can fail: a constant is far from uniform.
    assert!(chi2_low_byte(&vec![7u64; n]) > 1e5);
}

/// A transport that behaves until `after` messages were sent, then
/// mangles every message with `f` (or drops it when `f` returns None).
struct Faulty<T: Transport> {
    inner: T,
    sent: usize,
    after: usize,
    f: fn(Vec<u8>) -> Option<Vec<u8>>,
}

impl<T: Transport> Transport for Faulty<T> {
    fn me(&self) -> usize {
        self.inner.me()
    }
    fn send(&mut self, to: usize, msg: Vec<u8>) -> Result<(), MpcError> {
        self.sent += 1;
        if self.sent <= self.after {
            return self.inner.send(to, msg);
        }
        match (self.f)(msg) {
            Some(m) => self.inner.send(to, m),
            None => Ok(()),
        }
    }
    fn recv(&mut self, from: usize) -> Result<Vec<u8>, MpcError> {
        self.inner.recv(from)
    }
}

fn run_with_faulty_party2(f: fn(Vec<u8>) -> Option<Vec<u8>>) -> Vec<Result<(), MpcError>> {
    let [t0, t1, t2] = local_mesh(Duration::from_millis(300));
    let t2 = Faulty {
        inner: t2,
        sent: 0,
        after: 1, // the PRF key goes through
        f,
    };
    let ts: Vec<Box<dyn Transport>> = vec![Box::new(t0), Box::new(t1), Box::new(t2)];
    std::thread::scope(|s| {
        let hs: Vec<_> = ts
            .into_iter()
            .map(|t| {
                s.spawn(move || -> Result<(), MpcError> {
                    let mut p = Party::<u64>::setup(t, FixedPoint::default())?;
                    let x =
                        p.private_input(2, (p.id() == 2).then(|| Array2::ones((3, 3))).as_ref())?;
                    let y = p.mul_fx(&x, &x)?;
                    p.reveal_to(&y, &[0, 1, 2])?;
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    })
}

#[test]
fn malformed_truncated_or_missing_messages_are_errors_not_hangs() {
    let t0 = Instant::now();
    // Truncated by one byte: the receivers see a wrong length.
    let r = run_with_faulty_party2(|mut m| {
        m.pop();
        Some(m)
    });
    assert!(
        matches!(r[0], Err(MpcError::Malformed { from: 2, .. })),
        "{:?}",
        r[0]
    );
    assert!(
        matches!(r[1], Err(MpcError::Malformed { from: 2, .. })),
        "{:?}",
        r[1]
    );
    // Garbage input header announcing an absurd shape.
    let r = run_with_faulty_party2(|_| Some(vec![0xff; 20]));
    assert!(
        matches!(r[0], Err(MpcError::Malformed { .. })),
        "{:?}",
        r[0]
    );
    // Silence: the peers time out.
    let r = run_with_faulty_party2(|_| None);
    // Each honest party times out, or sees party 2 give up first (party 2
    // itself times out waiting for them).
    for r in &r[..2] {
        assert!(
            matches!(
                r,
                Err(MpcError::Timeout { from: 2, .. }) | Err(MpcError::PeerClosed(2))
            ),
            "{r:?}"
        );
    }
    assert!(r.iter().any(|r| matches!(r, Err(MpcError::Timeout { .. }))));
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn truncated_frame_on_a_real_socket_is_an_error() {
    use cipherflow_mpc::transport::{read_frame, MAX_FRAME};
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&100u32.to_le_bytes()).unwrap();
        s.write_all(b"only a few bytes").unwrap();
    });
    let (mut sock, _) = l.accept().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    h.join().unwrap();
    let r = read_frame(&mut sock, MAX_FRAME);
    assert!(
        matches!(
            r,
            Err(MpcError::Truncated {
                expected: 100,
                got: 16
            })
        ),
        "{r:?}"
    );
}

#[test]
fn three_parties_over_tcp_with_mutual_tls() {
    let x = Array2::from_shape_fn((6, 5), |(i, j)| i as f64 - j as f64 * 0.5);
    let w = Array2::from_shape_fn((5, 4), |(i, j)| (i * j) as f64 * 0.25 - 1.0);
    let run = run_local::<u64, _, _>(Network::LocalTls, FixedPoint::default(), |p| {
        let xs = p.private_input(1, (p.id() == 1).then_some(&x))?;
        let ws = p.private_input(0, (p.id() == 0).then_some(&w))?;
        let z = p.matmul_fx(&xs, &ws)?;
        let r = p.relu(&z)?;
        p.reveal_to(&r, &[1])
    })
    .unwrap();
    let want = x.dot(&w).mapv(|v| v.max(0.0));
    let got = run.outputs[1].as_ref().unwrap();
    assert_eq!(got.shape(), &[6, 4], "x·w is 6×4");
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-3));
    assert!(run.outputs[0].is_none() && run.outputs[2].is_none());
    assert!(run.stats.bytes() > 0 && run.stats.rounds() >= 10);
}

/// A cascade: party 2 falls silent; party 0, waiting on it, times out and
/// gives up; party 1, waiting on party 0, learns why from party 0's abort
/// notice (without it, it would see only a closed connection) — so both
/// name party 2.
#[test]
fn an_abort_notice_names_the_silent_party_to_the_party_behind() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<String> = (0..3)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        })
        .collect();
    let config = cipherflow_mpc::transport::tls::write_credentials(dir.path(), &ports).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("timeout_ms") {
                "timeout_ms = 1000".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    let errors: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|id| {
                let config = &config;
                s.spawn(move || {
                    cipherflow_mpc::run_party::<u64, (), _>(
                        id,
                        config,
                        FixedPoint::default(),
                        |p| {
                            match p.id() {
                                // Silent for longer than the timeout.
                                2 => std::thread::sleep(Duration::from_millis(3000)),
                                // Waits on party 2 (a reveal to party 0
                                // needs party 2's component).
                                0 => {
                                    p.reveal_ring(&p.share_public(1, 1, &[0])?, &[0])?;
                                }
                                // Waits on party 0, from a little later
                                // (its own timeout comes after party 0's).
                                _ => {
                                    std::thread::sleep(Duration::from_millis(400));
                                    p.reveal_ring(&p.share_public(1, 1, &[0])?, &[1])?;
                                }
                            }
                            Ok(())
                        },
                    )
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(errors[0].contains("waiting for party 2"), "{errors:?}");
    assert!(
        errors[1].contains("party 0 aborted") && errors[1].contains("party 2"),
        "{errors:?}"
    );
}
