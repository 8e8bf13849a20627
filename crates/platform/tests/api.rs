//! The platform's API over real TLS on 127.0.0.1: a creator uploads, users
//! query encrypted (four at once), and hostile requests — garbage models,
//! keys and ciphertexts, unknown sessions, oversized bodies, another
//! creator's deletion, a client that trusts another CA — are refused with
//! a status and a reason while the platform keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cipherflow_platform::{LocalTls, PlatformClient, PlatformError, QuerySession};
use common::{digits_cnn_bytes, refused, start};
use std::time::Duration;

#[test]
fn creators_upload_users_query_encrypted_and_hostile_requests_are_refused() {
    let p = start(64 << 20);
    let c = p.client();
    let rt = &p.rt;
    let model = digits_cnn_bytes();
    let cnn = cipherflow_nn::examples::digits_cnn().unwrap();
    let layers = cnn.layers().len();
    // Upload: the whole model may run on the platform.
    let j = rt
        .block_on(c.json(
            "POST",
            &format!("/v1/models?name=digits&head_layers={layers}&input_bound=1"),
            model.clone(),
            None,
        ))
        .unwrap();
    let token = j["creator_token"].as_str().unwrap().to_string();
    assert_eq!(j["model"]["modes"][0], "he", "{j}");
    // Hostile uploads.
    refused(
        rt.block_on(c.json("POST", "/v1/models?name=x", b"garbage".to_vec(), None)),
        400,
        "neither an ONNX model nor a safetensors file",
    );
    refused(
        rt.block_on(c.json("POST", "/v1/models?name=..%2Fx", model.clone(), None)),
        400,
        "model name",
    );
    refused(
        rt.block_on(c.json("POST", "/v1/models?name=digits", model.clone(), None)),
        403,
        "creator's token",
    );
    refused(
        rt.block_on(c.request(
            "DELETE",
            "/v1/models/digits",
            Vec::new(),
            Some(&"0".repeat(64)),
        )),
        403,
        "only the creator",
    );
    refused(
        rt.block_on(c.json("GET", "/v1/models/nothing", Vec::new(), None)),
        404,
        "model nothing",
    );
    // Four users at once, each with its own keys: every answer agrees
    // with the plaintext model.
    let data = cipherflow_nn::examples::digits().unwrap();
    let plan = cipherflow_tensor::Plan::compile(&cnn).unwrap();
    let users: Vec<_> = (0..4)
        .map(|u| {
            let c = c.clone();
            let x: Vec<f64> = data
                .features()
                .row(u)
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            rt.spawn(async move {
                let s = QuerySession::open(c, "digits").await.unwrap();
                let a = s.classify(&x).await.unwrap();
                (u, a.class)
            })
        })
        .collect();
    for h in users {
        let (u, class) = rt.block_on(h).unwrap();
        let x: Vec<f64> = data
            .features()
            .row(u)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let want = cipherflow_tensor::job::argmax(&plan.eval_plain(&x).unwrap());
        assert_eq!(class, want, "user {u}");
    }
    // Usage is recorded after each answer leaves: wait for the four.
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
    assert_eq!(usage["usage"].as_array().unwrap().len(), 4, "{usage}");
    // Hostile session traffic.
    refused(
        rt.block_on(c.json(
            "POST",
            "/v1/models/digits/sessions",
            b"CFEK\x01xx".to_vec(),
            None,
        )),
        400,
        "malformed bytes",
    );
    refused(
        rt.block_on(c.request(
            "POST",
            &format!("/v1/sessions/{}/infer", "ab".repeat(16)),
            vec![1],
            None,
        )),
        404,
        "session",
    );
    let s = rt
        .block_on(QuerySession::open(c.clone(), "digits"))
        .unwrap();
    // A real session, a garbage ciphertext: refused, the session lives on.
    let sid = {
        // The session id is private to QuerySession; open another by hand.
        let mut rng = cipherflow_ring::sampler::secure_rng().unwrap();
        let spec: cipherflow_tensor::InputSpec =
            serde_json::from_value(s.card().he.as_ref().unwrap().spec.clone()).unwrap();
        let mc = cipherflow_tensor::ModelClient::new(spec).unwrap();
        let keys = cipherflow_tensor::KeySet::generate(&mc, &mut rng).unwrap();
        let j = rt
            .block_on(c.json(
                "POST",
                "/v1/models/digits/sessions",
                keys.eval_key_bytes().unwrap(),
                None,
            ))
            .unwrap();
        j["session"].as_str().unwrap().to_string()
    };
    for body in [Vec::new(), b"CFET\x01\x00".to_vec(), vec![0u8; 4096]] {
        refused(
            rt.block_on(c.request("POST", &format!("/v1/sessions/{sid}/infer"), body, None)),
            400,
            "malformed bytes",
        );
    }
    let x: Vec<f64> = data
        .features()
        .row(0)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    rt.block_on(s.classify(&x)).unwrap();
    // Over the body limit: 413 as soon as the length is seen (a client
    // still writing then sees the connection close); nothing stored.
    match rt.block_on(c.request("POST", "/v1/models?name=big", vec![0u8; 65 << 20], None)) {
        Err(PlatformError::Refused { status: 413, .. } | PlatformError::Transport(_)) => {}
        other => panic!("an oversized upload: {other:?}"),
    }
    refused(
        rt.block_on(c.json("GET", "/v1/models/big", Vec::new(), None)),
        404,
        "model big",
    );
    // A client that trusts another CA does not talk to this platform.
    let other = tempfile::tempdir().unwrap();
    let o = LocalTls::under(other.path());
    o.ensure(&["127.0.0.1".into()]).unwrap();
    let stranger = PlatformClient::new(&p.url, &o.ca, Duration::from_secs(10)).unwrap();
    assert!(matches!(
        rt.block_on(stranger.json("GET", "/v1/models", Vec::new(), None)),
        Err(PlatformError::Transport(_))
    ));
    // The creator deletes; the model is gone and its sessions with it.
    rt.block_on(c.request("DELETE", "/v1/models/digits", Vec::new(), Some(&token)))
        .unwrap();
    refused(rt.block_on(s.classify(&x)), 404, "session");
    let list = rt
        .block_on(c.json("GET", "/v1/models", Vec::new(), None))
        .unwrap();
    assert_eq!(list["models"].as_array().unwrap().len(), 0);
}

/// Every route the API serves is described in `openapi.yaml`.
#[test]
fn the_openapi_description_covers_every_route() {
    let source = include_str!("../src/service.rs");
    let spec = include_str!("../openapi.yaml");
    let routes: Vec<&str> = source
        .split(".route(\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(routes.len() >= 6, "{routes:?}");
    for r in routes {
        assert!(
            spec.contains(&format!("  {r}:\n")),
            "{r} is not in openapi.yaml"
        );
    }
}
