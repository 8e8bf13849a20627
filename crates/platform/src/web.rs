//! The platform's pages (`web/`): the repository, a model's splits,
//! uploads, encrypted queries and proof verification. The pages are Rust
//! (`crates/web`, Leptos) and the browser client's cryptography is
//! `crates/wasm` (run in `worker.js`), both compiled to WebAssembly into
//! `web/pkg/` by `web/build.sh`; `app.js` only starts the pages. Every
//! file is embedded in the binary, so `cipherflow serve` needs nothing
//! beside it; each is served gzip-compressed to browsers that accept it
//! (compressed once, on first use), with an ETag, and under a content
//! security policy that lets the pages reach only this origin.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::OnceLock;

/// The policy every page and script is served under: scripts, workers,
/// WebAssembly and requests from this origin only, nothing inline, no
/// framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' \
     'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; style-src 'self'; img-src \
     'self' data: blob:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The pages' files, by their name under `/ui/` (`index.html` is `/`).
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../web/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/app.js"),
    },
    Asset {
        name: "worker.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/worker.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../web/style.css"),
    },
    Asset {
        name: "pkg/cipherflow_web.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/pkg/cipherflow_web.js"),
    },
    Asset {
        name: "pkg/cipherflow_web_bg.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!("../web/pkg/cipherflow_web_bg.wasm"),
    },
    Asset {
        name: "pkg/cipherflow.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/pkg/cipherflow.js"),
    },
    Asset {
        name: "pkg/cipherflow_bg.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!("../web/pkg/cipherflow_bg.wasm"),
    },
];

/// An asset's gzip form and its tag, made once.
struct Prepared {
    gzip: Vec<u8>,
    etag: String,
}

/// Every asset's gzip form and tag, in [`ASSETS`]' order (made on first
/// use: compressing the module takes a fraction of a second).
fn prepared() -> &'static [Prepared] {
    static ALL: OnceLock<Vec<Prepared>> = OnceLock::new();
    ALL.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to a Vec cannot fail; were it to, the file is
                // served uncompressed (an empty gzip form is never sent).
                let gzip = z
                    .write_all(a.bytes)
                    .and_then(|()| z.finish())
                    .unwrap_or_default();
                let etag = format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..32]);
                Prepared { gzip, etag }
            })
            .collect()
    })
}

/// Each embedded file's size and gzip size (the page weight the README
/// quotes and the browser test checks).
pub fn page_weights() -> Vec<(&'static str, usize, usize)> {
    ASSETS
        .iter()
        .zip(prepared())
        .map(|(a, p)| (a.name, a.bytes.len(), p.gzip.len()))
        .collect()
}

/// Whether an `Accept-Encoding` value accepts gzip (`gzip;q=0` does not).
fn accepts_gzip(v: &str) -> bool {
    v.split(',').any(|e| {
        let mut parts = e.split(';').map(str::trim);
        parts.next() == Some("gzip")
            && parts.all(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_none_or(|q| q > 0.0)
            })
    })
}

fn serve_asset(name: &str, headers: &HeaderMap) -> Response {
    let Some((a, p)) = ASSETS.iter().zip(prepared()).find(|(a, _)| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such page file").into_response();
    };
    let mut r = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == p.etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if !p.gzip.is_empty()
        && headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(accepts_gzip)
    {
        let mut r = Response::new(Body::from(p.gzip.as_slice()));
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        Response::new(Body::from(a.bytes))
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&p.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// `GET /`: the pages' shell.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve_asset("index.html", &headers)
}

/// `GET /ui/{*file}`: a page file.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve_asset(&file, &headers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn every_file_is_embedded_compressed_and_tagged() {
        let w = page_weights();
        assert_eq!(w.len(), ASSETS.len());
        for (name, raw, gz) in w {
            assert!(raw > 0 && gz > 0 && gz < raw, "{name}: {raw} → {gz}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        let r = serve_asset("pkg/cipherflow_bg.wasm", &h);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/wasm");
        let etag = r.headers()[header::ETAG].clone();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(
            serve_asset("pkg/cipherflow_bg.wasm", &h).status(),
            StatusCode::NOT_MODIFIED
        );
        // Every page file under the policy, not sniffed.
        for name in [
            "index.html",
            "app.js",
            "worker.js",
            "pkg/cipherflow.js",
            "pkg/cipherflow_web.js",
        ] {
            let r = serve_asset(name, &HeaderMap::new());
            assert_eq!(
                r.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        }
        assert!(CONTENT_SECURITY_POLICY.contains("default-src 'none'"));
        assert!(CONTENT_SECURITY_POLICY.contains("connect-src 'self'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(accepts_gzip("gzip") && accepts_gzip("br, gzip;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0") && !accepts_gzip("br") && !accepts_gzip("x-gzip"));
        // Nothing outside the list, however the name is spelled.
        for bad in ["../Cargo.toml", "pkg/../../src/lib.rs", "pkg/SOURCE", ""] {
            assert_eq!(
                serve_asset(bad, &HeaderMap::new()).status(),
                StatusCode::NOT_FOUND
            );
        }
    }
}
