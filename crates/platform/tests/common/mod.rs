//! What the platform's integration tests share: a platform on 127.0.0.1
//! over real TLS, in a temporary repository.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cipherflow_platform::{serve, Config, LocalTls, Platform, PlatformClient, PlatformError};
use std::time::Duration;

pub struct Running {
    pub url: String,
    pub ca: std::path::PathBuf,
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
}

pub fn start(max_upload: usize) -> Running {
    start_with(max_upload, |_| {})
}

/// [`start`], the configuration changed by `tune`.
pub fn start_with(max_upload: usize, tune: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let local = LocalTls::under(&repo);
    local
        .ensure(&["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    let tls = cipherflow_platform::server_config(&local.cert, &local.key).unwrap();
    let mut cfg = Config::new(repo);
    cfg.max_upload_bytes = max_upload;
    tune(&mut cfg);
    let platform = Platform::open(cfg).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        serve(listener, tls, platform, std::future::pending())
            .await
            .unwrap();
    });
    Running {
        url,
        ca: local.ca,
        dir,
        rt,
    }
}

impl Running {
    pub fn client(&self) -> PlatformClient {
        PlatformClient::new(&self.url, &self.ca, Duration::from_secs(120)).unwrap()
    }
}

pub fn digits_cnn_bytes() -> Vec<u8> {
    let m = cipherflow_nn::examples::digits_cnn().unwrap();
    cipherflow_nn::io::safetensors::to_bytes(&m).unwrap()
}

pub fn refused(r: Result<impl std::fmt::Debug, PlatformError>, status: u16, needle: &str) {
    match r {
        Err(PlatformError::Refused { status: s, reason }) => {
            assert_eq!(s, status, "{reason}");
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
        }
        other => panic!("expected {status} ({needle}), got {other:?}"),
    }
}
