//! `plain-tail` mode over real TLS on 127.0.0.1: the platform measures the
//! leakage of each split on the public data of the model's domain (here
//! the digits themselves, as an IDX file) after the upload; a user reads
//! it, accepts it, and gets the plaintext model's classes from the
//! creator's host. Without acceptance, with other figures than the
//! platform's, or at a split whose leakage is not measured, no session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_platform::{
    run_model_host, HostConfig, InversionSettings, PlainTailSession, PlatformError,
};
use common::{refused, start_with};
use std::sync::Arc;
use std::time::Duration;

/// The digits' features as an IDX image file (pixels in [0, 1] × 255).
fn digits_idx(path: &std::path::Path) {
    let d = cipherflow_nn::examples::digits().unwrap();
    let f = d.features();
    let mut b = vec![0, 0, 8, 3];
    for v in [f.nrows() as u32, 8, 8] {
        b.extend(v.to_be_bytes());
    }
    b.extend(f.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8));
    std::fs::write(path, b).unwrap();
}

#[test]
fn plain_tail_is_served_only_after_its_measured_leakage_is_accepted() {
    let public = tempfile::tempdir().unwrap();
    let idx = public.path().join("digits-idx3-ubyte");
    digits_idx(&idx);
    let p = start_with(64 << 20, |cfg| {
        cfg.public = vec![("digits".into(), idx.clone())];
        cfg.inversion = InversionSettings {
            epochs: 2,
            hidden: 64,
            ..InversionSettings::default()
        };
        cfg.held_out = 100;
    });
    let c = p.client();
    let rt = &p.rt;
    let cnn = cipherflow_nn::examples::digits_cnn().unwrap();
    let layers = cnn.layers().len();
    let (head, _) = cnn.split_at(2).unwrap();
    let upload = |name: &str, domain: &str| {
        rt.block_on(c.json(
            "POST",
            &format!(
                "/v1/models?name={name}&layers={layers}&outputs=10&input_bound=1{domain}&task=digits&license=MIT"
            ),
            cipherflow_nn::io::safetensors::to_bytes(&head).unwrap(),
            None,
        ))
        .unwrap()
    };
    let j = upload("digits", "&domain=digits");
    let token = j["creator_token"].as_str().unwrap().to_string();
    let j2 = upload("unmeasured", "");
    let token2 = j2["creator_token"].as_str().unwrap().to_string();
    // Hosts for both.
    let idle = Duration::from_secs(60);
    for (name, token) in [("digits", token), ("unmeasured", token2)] {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        rt.spawn(run_model_host(
            c.clone(),
            HostConfig {
                name: name.into(),
                token,
                model: Arc::new(cnn.clone()),
                idle,
            },
            move |_| tx.send(()).unwrap(),
            |_| {},
            std::future::pending(),
        ));
        rx.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    // The measurement runs after the upload; the card shows its status.
    let mut card = serde_json::Value::Null;
    for _ in 0..600 {
        card = rt
            .block_on(c.json("GET", "/v1/models/digits", Vec::new(), None))
            .unwrap();
        if card["plain_tail"]["status"] == "measured at 2 splits" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        card["plain_tail"]["status"], "measured at 2 splits",
        "{card}"
    );
    assert_eq!(card["info"]["task"], "digits", "{card}");
    let (_, leak) = rt
        .block_on(PlainTailSession::leakage(&c, "digits", 1))
        .unwrap();
    let leak = leak.unwrap();
    assert!(
        (-1.0..=1.0).contains(&leak.ssim) && leak.psnr > 0.0 && leak.held_out == 100,
        "{leak:?}"
    );
    // Holding only the head, the platform does not classify the
    // reconstructions.
    assert!(leak.agreement_on_reconstructions.is_none(), "{leak:?}");
    // Search: by task and license words, by mode.
    let found = rt
        .block_on(c.json("GET", "/v1/models?q=DIGITS+mit&mode=mpc", Vec::new(), None))
        .unwrap();
    assert_eq!(found["models"].as_array().unwrap().len(), 2, "{found}");
    let none = rt
        .block_on(c.json("GET", "/v1/models?q=gpl", Vec::new(), None))
        .unwrap();
    assert!(none["models"].as_array().unwrap().is_empty(), "{none}");
    // Not accepted; accepted but not measured.
    refused(
        rt.block_on(c.json(
            "POST",
            "/v1/models/digits/sessions?mode=plain-tail&split=1",
            Vec::new(),
            None,
        )),
        403,
        "accept it with accept_leakage=1",
    );
    refused(
        rt.block_on(c.json(
            "POST",
            "/v1/models/unmeasured/sessions?mode=plain-tail&split=1&accept_leakage=1",
            Vec::new(),
            None,
        )),
        403,
        "has not been measured",
    );
    // Other figures than the platform's: no session.
    let mut other = leak.clone();
    other.ssim = 0.0;
    match rt.block_on(PlainTailSession::open(c.clone(), "digits", 1, &other, None)) {
        Err(PlatformError::Forbidden(m)) => assert!(m.contains("not what was accepted"), "{m}"),
        r => panic!("{:?}", r.map(|_| ())),
    }
    // Accepted: the plaintext model's classes.
    let data = cipherflow_nn::examples::digits().unwrap();
    let n = 4;
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
    let want = cipherflow_nn::loss::predict_classes(&cnn.clone().predict(&t).unwrap());
    let s = rt
        .block_on(PlainTailSession::open(c.clone(), "digits", 1, &leak, None))
        .unwrap();
    for (xi, &w) in x.iter().zip(&want) {
        let a = rt.block_on(s.classify(xi)).unwrap();
        assert_eq!(a.class, w);
        assert_eq!(a.scores.len(), 10);
    }
    rt.block_on(s.close()).unwrap();
    // A whole model on the platform: the reconstructions are classified
    // too, at every split.
    let whole = rt
        .block_on(c.json(
            "POST",
            "/v1/models?name=whole&input_bound=1&domain=digits",
            cipherflow_nn::io::safetensors::to_bytes(&cnn).unwrap(),
            None,
        ))
        .unwrap();
    let splits = whole["model"]["splits"].as_array().unwrap().len();
    let want_status = format!("measured at {splits} splits");
    for _ in 0..600 {
        card = rt
            .block_on(c.json("GET", "/v1/models/whole", Vec::new(), None))
            .unwrap();
        if card["plain_tail"]["status"] == want_status.as_str() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = card["plain_tail"]["leakage"].as_array().unwrap();
    assert_eq!(rows.len(), splits, "{card}");
    for r in rows {
        let a = r["agreement_on_reconstructions"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "{r}");
    }
}
