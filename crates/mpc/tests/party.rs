//! Three parties as three separate sessions over TLS on 127.0.0.1, each
//! started by `run_party` from the network file alone (the way
//! `cipherflow mpc party` runs one process per party), and the file's
//! refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_mpc::ndarray::array;
use cipherflow_mpc::transport::tls::write_credentials;
use cipherflow_mpc::{run_party, FixedPoint, MpcError, Party};

#[test]
fn three_parties_from_one_network_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_credentials(dir.path(), &cipherflow_testkit::free_addresses(3)).unwrap();
    let runs: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|id| {
                let cfg = &cfg;
                s.spawn(move || {
                    run_party::<u64, _, _>(id, cfg, FixedPoint::default(), |p: &mut Party| {
                        // Party 0 owns w, party 1 owns x; only party 1 learns w·x.
                        let w = p.private_input(
                            0,
                            (p.id() == 0).then(|| array![[2.0], [-1.0]]).as_ref(),
                        )?;
                        let x =
                            p.private_input(1, (p.id() == 1).then(|| array![[3.0, 0.5]]).as_ref())?;
                        let y = p.matmul_fx(&x, &w)?;
                        p.reveal_to(&y, &[1])
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    for (id, run) in runs.iter().enumerate() {
        assert_eq!(run.id, id);
        assert!(run.stats.bytes() > 0, "party {id} sent nothing");
        match (&run.output, id) {
            (Some(y), 1) => assert!((y[[0, 0]] - 5.5).abs() < 1e-3, "{y}"),
            (None, 0 | 2) => {}
            (other, _) => panic!("party {id} got {other:?}"),
        }
    }
}

#[test]
fn a_bad_party_id_or_network_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_credentials(dir.path(), &cipherflow_testkit::free_addresses(3)).unwrap();
    let noop = |_: &mut Party| Ok(());
    let e = run_party::<u64, _, _>(3, &cfg, FixedPoint::default(), noop).unwrap_err();
    assert!(
        matches!(&e, MpcError::Config(m) if m.contains("party 3")),
        "{e}"
    );
    std::fs::write(dir.path().join("mpc.toml"), "parties = 3").unwrap();
    let e = run_party::<u64, _, _>(0, &cfg, FixedPoint::default(), noop).unwrap_err();
    assert!(
        matches!(&e, MpcError::Config(m) if m.contains("mpc.toml")),
        "{e}"
    );
    let e = run_party::<u64, _, _>(
        0,
        &dir.path().join("absent.toml"),
        FixedPoint::default(),
        noop,
    )
    .unwrap_err();
    // The missing file is named.
    assert!(
        matches!(&e, MpcError::Config(m) if m.contains("absent.toml")),
        "{e}"
    );
}
