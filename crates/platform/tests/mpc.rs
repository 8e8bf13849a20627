//! `mpc` mode served over real TLS on 127.0.0.1: the creator uploads only
//! the head of the digits CNN (the tail never reaches the platform), runs a
//! host, and users query through the platform — each answer the plaintext
//! model's class — one at a time and four at once. A session without a
//! host, a host with another's token, a user pinning another host's
//! certificate, a bare request to a channel and a stranger's session are
//! refused with their reasons; a closed session ends the host's part.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_platform::{run_model_host, HostConfig, MpcQuerySession, PlatformError, SessionEnd};
use common::{refused, start};
use std::sync::Arc;
use std::time::Duration;

fn inputs(n: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut model = cipherflow_nn::examples::digits_cnn().unwrap();
    let data = cipherflow_nn::examples::digits().unwrap();
    let x: Vec<Vec<f64>> = data
        .features()
        .outer_iter()
        .take(n)
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let t = ndarray::ArrayD::from_shape_vec(
        ndarray::IxDyn(&[n, 1, 8, 8]),
        x.iter().flatten().map(|&v| v as f32).collect(),
    )
    .unwrap();
    let want = cipherflow_nn::loss::predict_classes(&model.predict(&t).unwrap());
    (x, want)
}

#[test]
fn a_user_platform_and_host_answer_like_the_plaintext_model() {
    let p = start(64 << 20);
    let c = p.client();
    let rt = &p.rt;
    let cnn = cipherflow_nn::examples::digits_cnn().unwrap();
    let layers = cnn.layers().len();
    // The creator lets the platform hold two layers and uploads only them.
    let (head, _) = cnn.split_at(2).unwrap();
    let j = rt
        .block_on(c.json(
            "POST",
            &format!("/v1/models?name=digits&layers={layers}&outputs=10&input_bound=1"),
            cipherflow_nn::io::safetensors::to_bytes(&head).unwrap(),
            None,
        ))
        .unwrap();
    let token = j["creator_token"].as_str().unwrap().to_string();
    assert_eq!(j["model"]["modes"], serde_json::json!(["mpc"]), "{j}");
    let idle = Duration::from_secs(60);
    // No host yet.
    no_host(rt.block_on(MpcQuerySession::open(
        c.clone(),
        "digits",
        Some(1),
        None,
        idle,
    )));
    // A host with another token is refused.
    let host = |token: String| HostConfig {
        name: "digits".into(),
        token,
        model: Arc::new(cnn.clone()),
        idle,
    };
    refused(
        rt.block_on(run_model_host(
            c.clone(),
            host("0".repeat(64)),
            |_| {},
            |_| {},
            std::future::pending(),
        )),
        403,
        "only the creator of digits",
    );
    // The creator's host.
    let (fp_tx, fp_rx) = std::sync::mpsc::channel::<String>();
    let (end_tx, end_rx) = std::sync::mpsc::channel::<SessionEnd>();
    let end_tx = std::sync::Mutex::new(end_tx);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(run_model_host(
        c.clone(),
        host(token),
        move |f| fp_tx.send(f.to_string()).unwrap(),
        move |e| {
            let _ = end_tx.lock().unwrap().send(e);
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let fp = fp_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let card = rt
        .block_on(c.json("GET", "/v1/models/digits", Vec::new(), None))
        .unwrap();
    assert_eq!(card["mpc"]["splits"], serde_json::json!([1, 2]), "{card}");
    assert_eq!(card["mpc"]["host"]["fingerprint"], fp.as_str(), "{card}");
    // A user who pinned another host's certificate stops before its keys
    // leave.
    match rt.block_on(MpcQuerySession::open(
        c.clone(),
        "digits",
        Some(1),
        Some(&"ab".repeat(32)),
        idle,
    )) {
        Err(PlatformError::Forbidden(m)) => assert!(m.contains("pinned"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    // One user, several inputs, the host pinned: the plaintext classes.
    let (x, want) = inputs(4);
    let s = rt
        .block_on(MpcQuerySession::open(
            c.clone(),
            "digits",
            Some(1),
            Some(&fp),
            idle,
        ))
        .unwrap();
    for (xi, &w) in x.iter().zip(&want) {
        let a = rt.block_on(s.classify(xi)).unwrap();
        assert_eq!(a.class, w);
        assert!(a.mpc_bytes > 0 && a.upload_bytes > 0 && a.download_bytes > 0);
    }
    // The card shows every split's cost: the platform prepares the heads
    // in the background after the upload.
    let mut card = serde_json::Value::Null;
    for _ in 0..300 {
        card = rt
            .block_on(c.json("GET", "/v1/models/digits", Vec::new(), None))
            .unwrap();
        if card["mpc"]["measured"].as_array().map(Vec::len) == Some(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(card["mpc"]["measured"][1]["k"], 2, "{card}");
    assert_eq!(card["mpc"]["measured"][0]["k"], 1, "{card}");
    let m = &card["mpc"]["measured"][0];
    assert!(m["head_ms"].as_f64().unwrap() > 0.0, "{m}");
    for k in ["key_bytes", "upload_bytes", "download_bytes"] {
        assert!(m[k].as_u64().unwrap() > 1000, "{k}: {m}");
    }
    // The session's channels are taken: a second claim (a replay, or a
    // stranger who learned the id) is refused.
    refused(
        rt.block_on(c.channel(
            &format!("/v1/sessions/{}/channel?peer=host", s.session_id()),
            &[],
        ))
        .map(|_| ()),
        400,
        "already open",
    );
    let id = s.session_id().to_string();
    rt.block_on(s.close()).unwrap();
    refused(
        rt.block_on(c.request("POST", &format!("/v1/sessions/{id}/infer"), vec![1], None)),
        404,
        "session",
    );
    // Usage: one record per query, with the platform-host link's bytes
    // (recorded once the tail has run).
    let mut usage = serde_json::Value::Null;
    for _ in 0..100 {
        usage = rt
            .block_on(c.json("GET", "/v1/models/digits/usage", Vec::new(), None))
            .unwrap();
        if usage["usage"].as_array().unwrap().len() == 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let records = usage["usage"].as_array().unwrap();
    assert_eq!(records.len(), 4, "{usage}");
    for r in records {
        assert_eq!(r["mode"], "mpc", "{r}");
        assert!(r["platform_host_bytes"].as_i64().unwrap() > 0, "{r}");
    }
    let end = end_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(
        (end.split, end.queries, end.error.as_deref()),
        (1, 4, None),
        "{end:?}"
    );
    // Four users at once, at split 2 (the recommended one is 1).
    let users: Vec<_> = (0..4)
        .map(|u| {
            let c = c.clone();
            let xi = x[u].clone();
            rt.spawn(async move {
                let s = MpcQuerySession::open(c, "digits", Some(2), None, idle)
                    .await
                    .unwrap();
                let a = s.classify(&xi).await.unwrap();
                s.close().await.unwrap();
                a.class
            })
        })
        .collect();
    for (u, h) in users.into_iter().enumerate() {
        assert_eq!(rt.block_on(h).unwrap(), want[u], "user {u}");
    }
    // Hostile channel requests.
    refused(
        rt.block_on(c.channel(
            &format!("/v1/sessions/{}/channel?peer=platform", "ab".repeat(16)),
            &[],
        ))
        .map(|_| ()),
        404,
        "mpc session",
    );
    refused(
        rt.block_on(c.channel(
            &format!("/v1/hosts/{}/channel?peer=user", "ab".repeat(16)),
            &[(cipherflow_platform::CREATOR_TOKEN_HEADER, &"0".repeat(64))],
        ))
        .map(|_| ()),
        404,
        "host ticket",
    );
    refused(
        rt.block_on(c.json(
            "POST",
            &format!("/v1/sessions/{}/channel?peer=platform", "ab".repeat(16)),
            Vec::new(),
            None,
        )),
        404,
        "mpc session",
    );
    refused(
        rt.block_on(c.json("GET", "/v1/models/digits/splits/3", Vec::new(), None)),
        400,
        "served in mpc mode at splits [1, 2]",
    );
    // The host stops: new sessions are refused with the reason.
    stop_tx.send(()).unwrap();
    rt.block_on(running).unwrap().unwrap();
    let mut last = None;
    for _ in 0..100 {
        match rt.block_on(MpcQuerySession::open(
            c.clone(),
            "digits",
            Some(1),
            None,
            idle,
        )) {
            Err(e) => {
                last = Some(e);
                break;
            }
            Ok(s) => {
                let _ = rt.block_on(s.close());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    no_host(last.map_or(Err(PlatformError::Storage("no error".into())), Err));
}

fn no_host(r: Result<MpcQuerySession, PlatformError>) {
    match r {
        // Seen by the user in the split's description.
        Err(PlatformError::Unavailable(m)) => assert!(m.contains("no host of digits"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a session without a host"),
    }
}
