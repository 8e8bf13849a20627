//! Small helpers over the browser's objects.

use wasm_bindgen::{JsCast, JsValue};

/// The page's window. Every page runs in one: without it nothing here
/// could have started.
pub fn window() -> web_sys::Window {
    web_sys::window().unwrap_or_else(|| wasm_bindgen::throw_str("cipherflow's pages need a window"))
}

/// The page's document.
pub fn document() -> web_sys::Document {
    window()
        .document()
        .unwrap_or_else(|| wasm_bindgen::throw_str("cipherflow's pages need a document"))
}

/// An error's message (`Error.message`, or the value as text).
pub fn message(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

/// A plain object of these fields.
pub fn obj(fields: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in fields {
        // Setting a field of a fresh plain object cannot fail.
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

/// A field of an object (`undefined` when absent).
pub fn get(v: &JsValue, k: &str) -> JsValue {
    js_sys::Reflect::get(v, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// A number field (`NaN` when absent).
pub fn num(v: &JsValue, k: &str) -> f64 {
    get(v, k).as_f64().unwrap_or(f64::NAN)
}

/// A text field.
pub fn text(v: &JsValue, k: &str) -> Option<String> {
    get(v, k).as_string()
}

/// `performance.now()`.
pub fn now() -> f64 {
    window().performance().map(|p| p.now()).unwrap_or(0.0)
}

/// Sets the document's title.
pub fn title(t: &str) {
    document().set_title(&format!("{t} · cipherflow"));
}

/// Moves the focus to the page's content (`<main>`).
pub fn focus_main() {
    if let Some(m) = document()
        .get_element_by_id("main")
        .and_then(|m| m.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = m.focus();
    }
}

/// A file's bytes.
pub async fn file_bytes(f: &web_sys::File) -> Result<js_sys::ArrayBuffer, String> {
    let b = wasm_bindgen_futures::JsFuture::from(f.array_buffer())
        .await
        .map_err(|e| message(&e))?;
    b.dyn_into().map_err(|e| message(&e))
}

/// A file's text.
pub async fn file_text(f: &web_sys::File) -> Result<String, String> {
    let t = wasm_bindgen_futures::JsFuture::from(f.text())
        .await
        .map_err(|e| message(&e))?;
    Ok(t.as_string().unwrap_or_default())
}

/// A JavaScript value as JSON, read into Rust.
pub fn to_json(v: &JsValue) -> Result<serde_json::Value, String> {
    let s = js_sys::JSON::stringify(v).map_err(|e| message(&e))?;
    serde_json::from_str(&String::from(s)).map_err(|e| e.to_string())
}

/// The files of a file input, as a vector.
pub fn files(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}
