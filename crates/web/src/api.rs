//! The platform's JSON API as the pages read it: its types, and the
//! requests (`fetch`, and `XMLHttpRequest` where an upload's progress is
//! shown).

use crate::js;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A request that failed: the platform's reason (its `error` field) or the
/// HTTP status, or why the platform could not be reached (`status` 0).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status (0: no answer).
    pub status: u16,
    /// What the platform said, or what went wrong.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    fn unreachable(e: JsValue) -> Self {
        Self {
            status: 0,
            message: format!("the platform could not be reached: {}", js::message(&e)),
        }
    }

    fn malformed(e: impl std::fmt::Display) -> Self {
        Self {
            status: 0,
            message: format!("the platform's answer could not be read: {e}"),
        }
    }
}

// The API's types are the server's own (cipherflow-api): what the
// platform writes is what the pages read.
pub use cipherflow_api::{
    FederationSummary, HostInfo, ModelCard, ModelList, Round, SessionOpened, SplitLeakage, Uploaded,
};

/// A URL path segment (a model's name, a session id) encoded.
pub fn seg(s: &str) -> String {
    crate::route::percent_encode(s)
}

/// `fetch(path, {method, body, headers, keepalive})`.
async fn request(
    method: &str,
    path: &str,
    body: Option<&JsValue>,
    headers: &[(&str, &str)],
    keepalive: bool,
) -> Result<web_sys::Response, ApiError> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(b) = body {
        init.set_body(b);
    }
    let h = web_sys::Headers::new().map_err(ApiError::unreachable)?;
    for (k, v) in headers {
        h.set(k, v).map_err(ApiError::unreachable)?;
    }
    init.set_headers(&h);
    if keepalive {
        // (web-sys has no setter for it without its unstable APIs.)
        let _ = js_sys::Reflect::set(&init, &JsValue::from_str("keepalive"), &JsValue::TRUE);
    }
    let r = JsFuture::from(js::window().fetch_with_str_and_init(path, &init))
        .await
        .map_err(ApiError::unreachable)?;
    let r: web_sys::Response = r.dyn_into().map_err(ApiError::unreachable)?;
    if !r.ok() {
        let mut message = format!("{} {}", r.status(), r.status_text());
        if let Ok(p) = r.text() {
            if let Ok(t) = JsFuture::from(p).await {
                if let Some(e) = t.as_string().and_then(|t| error_field(&t)) {
                    message = e;
                }
            }
        }
        return Err(ApiError {
            status: r.status(),
            message,
        });
    }
    Ok(r)
}

/// The `error` field of the platform's JSON refusal.
fn error_field(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("error")?.as_str().map(str::to_string)
}

async fn json_of<T: DeserializeOwned>(r: web_sys::Response) -> Result<T, ApiError> {
    let t = JsFuture::from(r.text().map_err(ApiError::unreachable)?)
        .await
        .map_err(ApiError::unreachable)?;
    serde_json::from_str(&t.as_string().unwrap_or_default()).map_err(ApiError::malformed)
}

/// `GET path`, its JSON answer.
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    json_of(request("GET", path, None, &[], false).await?).await
}

/// `POST path` with a binary body; the JSON answer.
pub async fn post<T: DeserializeOwned>(
    path: &str,
    body: &JsValue,
    headers: &[(&str, &str)],
) -> Result<T, ApiError> {
    let mut h = vec![("content-type", "application/octet-stream")];
    h.extend_from_slice(headers);
    json_of(request("POST", path, Some(body), &h, false).await?).await
}

/// `POST path` with a binary body; the binary answer.
pub async fn post_binary(path: &str, body: &JsValue) -> Result<js_sys::Uint8Array, ApiError> {
    let r = request(
        "POST",
        path,
        Some(body),
        &[("content-type", "application/octet-stream")],
        false,
    )
    .await?;
    let b = JsFuture::from(r.array_buffer().map_err(ApiError::unreachable)?)
        .await
        .map_err(ApiError::unreachable)?;
    Ok(js_sys::Uint8Array::new(&b))
}

/// `DELETE path`, not waited for (kept alive when the page goes).
pub fn delete(path: String, keepalive: bool) {
    wasm_bindgen_futures::spawn_local(async move {
        // Closing a session is a courtesy: the platform expires it anyway.
        let _ = request("DELETE", &path, None, &[], keepalive).await;
    });
}

/// `POST path` with a binary body and its progress reported (0 to 1):
/// `fetch` cannot report an upload's progress, `XMLHttpRequest` can.
pub async fn upload<T: DeserializeOwned>(
    path: &str,
    body: &js_sys::Uint8Array,
    on_progress: impl Fn(f64) + 'static,
) -> Result<T, ApiError> {
    use wasm_bindgen::closure::Closure;
    let x = web_sys::XmlHttpRequest::new().map_err(ApiError::unreachable)?;
    x.open("POST", path).map_err(ApiError::unreachable)?;
    x.set_request_header("content-type", "application/octet-stream")
        .map_err(ApiError::unreachable)?;
    let progress =
        Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
            if e.length_computable() && e.total() > 0.0 {
                on_progress(e.loaded() / e.total());
            }
        });
    x.upload()
        .map_err(ApiError::unreachable)?
        .set_onprogress(Some(progress.as_ref().unchecked_ref()));
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        x.set_onload(Some(&resolve));
        x.set_onerror(Some(&reject));
    });
    x.send_with_opt_buffer_source(Some(body))
        .map_err(ApiError::unreachable)?;
    let outcome = JsFuture::from(done).await;
    drop(progress);
    if outcome.is_err() {
        return Err(ApiError {
            status: 0,
            message: "the platform could not be reached".into(),
        });
    }
    let status = x.status().unwrap_or(0);
    let text = x.response_text().ok().flatten().unwrap_or_default();
    if !(200..300).contains(&status) {
        let reason = x.status_text().unwrap_or_default();
        let message = error_field(&text).unwrap_or_else(|| format!("{status} {reason}"));
        return Err(ApiError { status, message });
    }
    serde_json::from_str(&text).map_err(ApiError::malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read() {
        assert_eq!(
            error_field(r#"{"error":"no such model"}"#).as_deref(),
            Some("no such model")
        );
        assert_eq!(error_field("not json"), None);
        assert_eq!(error_field(r#"{"other":1}"#), None);
    }
}
