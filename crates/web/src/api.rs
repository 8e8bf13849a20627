//! The platform's JSON API as the pages read it: its types, and the
//! requests (`fetch`, and `XMLHttpRequest` where an upload's progress is
//! shown).

use crate::js;
use serde::de::DeserializeOwned;
use serde::Deserialize;
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

/// What a creator states about a model.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Info {
    /// Its task.
    pub task: Option<String>,
    /// Its license.
    pub license: Option<String>,
    /// Who made it.
    pub creator: Option<String>,
    /// Accuracy, 0 to 1.
    pub accuracy: Option<f64>,
    /// The public data it is measured on.
    pub domain: Option<String>,
}

/// A model's card: the list's entries and the model page's header.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Card {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: i64,
    /// `he`, `mpc`.
    pub modes: Vec<String>,
    /// Per-example input shape.
    pub input_shape: Vec<u64>,
    /// Number of outputs.
    pub outputs: u64,
    /// Layers.
    pub layers: u64,
    /// Leading layers the platform may hold.
    pub head_layers: u64,
    /// `|x| ≤ input_bound` after preprocessing.
    pub input_bound: Option<f64>,
    /// Size of the file.
    pub bytes: f64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Normalization and class names, passed to the client as they are.
    pub preprocessing: Option<serde_json::Value>,
    /// What the creator states.
    pub info: Info,
    /// The encrypted (`he`) query, when the platform holds the whole model.
    pub he: Option<He>,
    /// The splits served in `mpc` mode.
    pub mpc: Option<Mpc>,
    /// What the plain-tail mode would reveal, measured.
    pub plain_tail: Option<PlainTail>,
}

impl Card {
    /// The class names, when the card lists one per output.
    pub fn class_names(&self) -> Option<Vec<String>> {
        let names: Vec<String> = self
            .preprocessing
            .as_ref()?
            .get("class_names")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()?;
        (!names.is_empty()).then_some(names)
    }
}

/// A model the platform evaluates whole on encrypted inputs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct He {
    /// The evaluation spec the client makes keys for (passed on as it is).
    pub spec: serde_json::Value,
    /// What the answer reveals of the model.
    pub output_privacy: String,
    /// One query's time on the platform.
    pub measured_ms: f64,
    /// Rotation keys the client makes.
    pub rotations: u64,
}

/// The `mpc` splits of a model.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Mpc {
    /// The splits offered.
    pub splits: Vec<u64>,
    /// The recommended one.
    pub recommended: Option<u64>,
    /// Figures of the heads prepared so far.
    pub measured: Vec<Head>,
}

/// A prepared head's figures.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Head {
    /// Its split.
    pub k: u64,
    /// The layer it ends after.
    pub after: Option<String>,
    /// Its time on the platform.
    pub head_ms: Option<f64>,
    /// Rotation keys it needs.
    pub rotations: Option<u64>,
    /// Evaluation key bytes.
    pub key_bytes: Option<f64>,
    /// Bytes a query sends.
    pub upload_bytes: Option<f64>,
    /// Bytes a query receives.
    pub download_bytes: Option<f64>,
}

/// The plain-tail leakage measured on a model's public data.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlainTail {
    /// The public data's name.
    pub domain: Option<String>,
    /// Where the measurement stands.
    pub status: String,
    /// Per split.
    pub leakage: Vec<Leakage>,
}

/// What an inversion attack recovers at one split.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Leakage {
    /// The split.
    pub k: u64,
    /// Structural similarity of the reconstructions.
    pub ssim: Option<f64>,
    /// Their PSNR, dB.
    pub psnr: Option<f64>,
    /// One held-out input and its reconstruction.
    pub example: Option<Example>,
}

/// An 8-bit image and its reconstruction, channel-major.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Example {
    /// `[C, H, W]`, C = 1 or 3.
    pub shape: Vec<usize>,
    /// The input's pixels.
    pub original: Vec<u8>,
    /// The reconstruction's pixels.
    pub reconstruction: Vec<u8>,
}

/// The repository's list.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelList {
    /// The models found.
    pub models: Vec<Card>,
}

/// What an upload stored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Stored {
    /// The model's card.
    pub model: Card,
    /// The creator's token, shown once (a new name only).
    pub creator_token: Option<String>,
}

/// A new session for evaluation keys.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Session {
    /// Its id.
    pub session: String,
}

/// The federation's summary, from its ledger.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Federation {
    /// The ledger's name.
    pub name: String,
    /// Entries under its signed head.
    pub entries: u64,
    /// Later entries, not yet signed.
    pub unsigned_entries: u64,
    /// The ledger's public key, hex.
    pub public_key: String,
    /// Its signed head (verified in the page).
    pub signed_head: Option<serde_json::Value>,
    /// The ε budget.
    pub epsilon_budget: Option<f64>,
    /// Per round.
    pub rounds: Vec<Round>,
}

/// A federation's round.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Round {
    /// Its number.
    pub round: u64,
    /// Clients that took part.
    pub participants: u64,
    /// Updates received.
    pub updates: u64,
    /// Updates summed.
    pub summed: u64,
    /// Clients that dropped out.
    pub dropouts: u64,
    /// ε spent after it.
    pub epsilon: Option<f64>,
    /// Whether it closed.
    pub closed: bool,
}

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
    fn refusals_and_cards_parse() {
        assert_eq!(
            error_field(r#"{"error":"no such model"}"#).as_deref(),
            Some("no such model")
        );
        assert_eq!(error_field("not json"), None);
        let c: Card = serde_json::from_str(
            r#"{"name":"d","version":2,"modes":["he"],"input_shape":[1,8,8],"outputs":4,
                "preprocessing":{"class_names":["a","b","c","d"],"mean":[0.3]},
                "info":{"task":"t","accuracy":0.9},"unknown":1}"#,
        )
        .unwrap();
        assert_eq!(c.class_names().unwrap(), ["a", "b", "c", "d"]);
        assert_eq!(c.info.accuracy, Some(0.9));
        assert!(c.he.is_none() && c.info.license.is_none());
        // Class names that are not all strings are not shown as names.
        let c: Card = serde_json::from_str(r#"{"preprocessing":{"class_names":["a",1]}}"#).unwrap();
        assert!(c.class_names().is_none());
    }
}
