//! One component per page, and the pieces they share.

pub mod federation;
mod keys;
pub mod model;
pub mod query;
pub mod repository;
pub mod upload;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// A labelled control with its hint and its error, shown beside it (the
/// control is `children`; it should carry [`invalid`] and [`described`]).
#[component]
pub fn Field(
    /// The label's text.
    label: &'static str,
    /// The control's id.
    id: &'static str,
    /// Its error (empty: none).
    err: RwSignal<String>,
    /// A hint under it.
    #[prop(optional)]
    hint: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            {children()}
            {hint.map(|h| view! { <small class="muted">{h}</small> })}
            <div class="error" id=format!("{id}-error") aria-live="polite">{move || err.get()}</div>
        </div>
    }
}

/// `aria-invalid` for a control whose error is `err`.
pub fn invalid(err: RwSignal<String>) -> impl Fn() -> Option<&'static str> + Send + Sync + Copy {
    move || (!err.with(String::is_empty)).then_some("true")
}

/// `aria-describedby` of control `id` (its error's element).
pub fn described(id: &str) -> String {
    format!("{id}-error")
}

/// The value of the input, select or text area `id` (empty when absent).
pub fn value_of(id: &str) -> String {
    let Some(el) = crate::js::document().get_element_by_id(id) else {
        return String::new();
    };
    if let Some(i) = el.dyn_ref::<web_sys::HtmlInputElement>() {
        i.value()
    } else if let Some(t) = el.dyn_ref::<web_sys::HtmlTextAreaElement>() {
        t.value()
    } else if let Some(s) = el.dyn_ref::<web_sys::HtmlSelectElement>() {
        s.value()
    } else {
        String::new()
    }
}

/// Clears the input `id`'s value.
pub fn clear(id: &str) {
    if let Some(i) = crate::js::document()
        .get_element_by_id(id)
        .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
    {
        i.set_value("");
    }
}

/// The files chosen in the file input `id`.
pub fn files_of(id: &str) -> Vec<web_sys::File> {
    crate::js::document()
        .get_element_by_id(id)
        .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        .map(|i| crate::js::files(i.files()))
        .unwrap_or_default()
}

/// Moves the focus to element `id`.
pub fn focus(id: &str) {
    if let Some(e) = crate::js::document()
        .get_element_by_id(id)
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = e.focus();
    }
}

/// A creator's optional text: `—` when absent.
pub fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "—".into())
}
