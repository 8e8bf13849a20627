//! A creator's upload: the model file read in the page, cut to the layers
//! the platform may hold, with its metadata; errors shown beside the
//! field they concern, the platform's own included.

use crate::api::{self, Uploaded as Stored};
use crate::format;
use crate::js;
use crate::pages::{described, files_of, focus, invalid, value_of, Field};
use crate::worker;
use leptos::prelude::*;
use wasm_bindgen::JsValue;

/// The form's fields: id, label, hint, and the input's own attributes.
const TEXT_FIELDS: [(&str, &str, Option<&str>); 10] = [
    ("name", "Name", Some("Letters, digits, - _ . (at most 64).")),
    ("token", "Creator token (only for a new version)", None),
    ("task", "Task", None),
    ("license", "License", None),
    ("creator", "Creator", None),
    ("accuracy", "Accuracy (0 to 1)", None),
    ("domain", "Input domain", Some("Public data of this name lets the platform measure leakage (e.g. mnist).")),
    ("input_bound", "Input bound", Some("|x| ≤ bound after preprocessing; clients clamp to it.")),
    ("head_layers", "Layers the platform may hold", Some("all (empty): the whole model, queried encrypted. K: only layers 1..K are uploaded; the rest stays with you (cipherflow model-host).")),
    ("normalize", "Normalization (MEAN,STD or per channel)", Some("Replaces the file's.")),
];

/// The platform's refusals: a word of the message and the field it
/// concerns, the first match winning.
const PLATFORM_WORDS: [(&str, &str); 9] = [
    ("token", "token"),
    ("name", "name"),
    ("accuracy", "accuracy"),
    ("bound", "input_bound"),
    ("head", "head_layers"),
    ("layers", "head_layers"),
    ("domain", "domain"),
    ("license", "license"),
    ("task", "task"),
];

/// The client's refusals while reading the file, the same way.
const CLIENT_WORDS: [(&str, &str); 4] = [
    ("head layers", "head_layers"),
    ("class name", "classes"),
    ("normaliz", "normalize"),
    ("mean", "normalize"),
];

/// Which field a refusal's message concerns (the platform's answer, or
/// the client's reading of the file); `file` when no word matches.
pub fn field_of(message: &str, platform: bool) -> &'static str {
    let m = message.to_lowercase();
    let words: &[(&str, &'static str)] = if platform {
        &PLATFORM_WORDS
    } else {
        &CLIENT_WORDS
    };
    words
        .iter()
        .find(|(w, _)| m.contains(w))
        .map_or("file", |&(_, f)| f)
}

/// Where the upload stands.
#[derive(Clone)]
enum Status {
    Idle,
    Preparing,
    Uploading(String),
    Stored(Box<Stored>),
    Refused(String),
}

fn status_view(s: Status) -> AnyView {
    match s {
        Status::Idle => ().into_any(),
        Status::Preparing => view! { <p>"Preparing the file in this page…"</p> }.into_any(),
        Status::Uploading(t) => view! { <p>{t}</p> }.into_any(),
        Status::Refused(t) => view! { <p class="error" role="alert">{t}</p> }.into_any(),
        Status::Stored(r) => view! {
            <div class="notice" role="status">
                <p class="ok">{format!("Stored as {} v{}: ", r.model.name, r.model.version)}<a href=format!("#/model/{}", api::seg(&r.model.name))>"its page"</a></p>
                {r.creator_token.map(|t| view! {
                    <p>"Your creator token (shown once; needed for new versions and deletion): "<code class="creator-token">{t}</code></p>
                })}
            </div>
        }
        .into_any(),
    }
}

/// The upload page.
#[component]
pub fn Upload() -> impl IntoView {
    js::title("Upload a model");
    let ids = [
        "file",
        "name",
        "token",
        "task",
        "license",
        "creator",
        "accuracy",
        "domain",
        "input_bound",
        "head_layers",
        "normalize",
        "classes",
    ];
    let errs: Vec<(&'static str, RwSignal<String>)> = ids
        .iter()
        .map(|&id| (id, RwSignal::new(String::new())))
        .collect();
    let err = {
        let errs = errs.clone();
        move |id: &str| {
            errs.iter()
                .find(|(k, _)| *k == id)
                .map(|(_, e)| *e)
                .unwrap_or_else(|| RwSignal::new(String::new()))
        }
    };
    let status = RwSignal::new(Status::Idle);
    let busy = RwSignal::new(false);
    let submit = {
        let errs = errs.clone();
        let err = err.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            for (_, e) in &errs {
                e.set(String::new());
            }
            let bad = |k: &str, msg: &str| err(k).set(msg.to_string());
            let v = |k: &str| value_of(k).trim().to_string();
            let files = files_of("file");
            let mut first = None::<&str>;
            let mut check = |ok: bool, k: &'static str, msg: &str| {
                if !ok {
                    bad(k, msg);
                    first.get_or_insert(k);
                }
            };
            check(!files.is_empty(), "file", "Choose the model file.");
            check(
                format::name_ok(&v("name")),
                "name",
                "A name of letters, digits, - _ . (at most 64, not starting with .).",
            );
            check(
                v("accuracy").is_empty() || format::number_in(&v("accuracy"), 0.0..=1.0).is_some(),
                "accuracy",
                "A number from 0 to 1.",
            );
            check(
                v("input_bound").is_empty()
                    || format::number_in(&v("input_bound"), f64::MIN_POSITIVE..=1_048_576.0)
                        .is_some(),
                "input_bound",
                "A positive number, at most 1048576.",
            );
            let head = format::head_layers(&v("head_layers"));
            check(
                head.is_some(),
                "head_layers",
                "all, or a positive whole number.",
            );
            if let Some(k) = first {
                focus(k);
                return;
            }
            let (Some(file), Some(head)) = (files.into_iter().next(), head) else {
                return;
            };
            busy.set(true);
            status.set(Status::Preparing);
            let err = err.clone();
            leptos::task::spawn_local(async move {
                let refuse = |k: &'static str, msg: String, what: &str| {
                    err(k).set(msg.clone());
                    focus(k);
                    status.set(Status::Refused(format!("{what}: {msg}")));
                };
                let prepared = match prepare(&file, head.unwrap_or(0)).await {
                    Ok(p) => p,
                    Err(e) => {
                        refuse(field_of(&e, false), e, "Not uploaded");
                        busy.set(false);
                        return;
                    }
                };
                let mut params = vec![
                    ("name", v("name")),
                    ("head_layers", prepared.head_layers.to_string()),
                ];
                if prepared.head_layers < prepared.layers {
                    params.push(("layers", prepared.layers.to_string()));
                    params.push(("outputs", prepared.outputs.to_string()));
                }
                for k in [
                    "task",
                    "license",
                    "creator",
                    "accuracy",
                    "domain",
                    "input_bound",
                ] {
                    if !v(k).is_empty() {
                        params.push((k, v(k)));
                    }
                }
                let query = params
                    .iter()
                    .map(|(k, x)| format!("{k}={}", api::seg(x)))
                    .collect::<Vec<_>>()
                    .join("&");
                let token = v("token");
                let headers: Vec<(&str, &str)> = if token.is_empty() {
                    vec![]
                } else {
                    vec![("x-creator-token", token.as_str())]
                };
                status.set(Status::Uploading(format!(
                    "Uploading {} ({} of {} layers) and checking the model…",
                    format::bytes(prepared.bytes.length().into()),
                    prepared.head_layers,
                    prepared.layers
                )));
                match api::post::<Stored>(
                    &format!("/v1/models?{query}"),
                    &prepared.bytes.into(),
                    &headers,
                )
                .await
                {
                    Ok(r) => status.set(Status::Stored(Box::new(r))),
                    Err(e) => refuse(field_of(&e.message, true), e.message, "Not stored"),
                }
                busy.set(false);
            });
        }
    };
    let text_fields = TEXT_FIELDS
        .iter()
        .map(|&(id, label, hint)| {
            let e = err(id);
            let input = match id {
                "accuracy" | "input_bound" => view! { <input id=id name=id inputmode="decimal" aria-invalid=invalid(e) aria-describedby=described(id)/> }.into_any(),
                "head_layers" => view! { <input id=id name=id inputmode="numeric" placeholder="all" aria-invalid=invalid(e) aria-describedby=described(id)/> }.into_any(),
                "normalize" => view! { <input id=id name=id placeholder="from the file" aria-invalid=invalid(e) aria-describedby=described(id)/> }.into_any(),
                "name" => view! { <input id=id name=id required autocomplete="off" aria-invalid=invalid(e) aria-describedby=described(id)/> }.into_any(),
                "token" => view! { <input id=id name=id autocomplete="off" aria-invalid=invalid(e) aria-describedby=described(id)/> }.into_any(),
                _ => view! { <input id=id name=id maxlength=200 aria-invalid=invalid(e) aria-describedby=described(id)/> }.into_any(),
            };
            match hint {
                Some(h) => view! { <Field label id err=e hint=h>{input}</Field> }.into_any(),
                None => view! { <Field label id err=e>{input}</Field> }.into_any(),
            }
        })
        .collect_view();
    let (file_err, classes_err) = (err("file"), err("classes"));
    view! {
        <h1>"Upload a model"</h1>
        <p>"Your model file (ONNX, or safetensors from cipherflow train) is read in this page. Only the layers the platform may hold are uploaded, with the normalization and class names; the rest stays with you (serve it with cipherflow model-host)."</p>
        <form novalidate on:submit=submit>
            <Field label="Model file (ONNX or safetensors)" id="file" err=file_err>
                <input id="file" name="file" type="file" accept=".onnx,.safetensors" required aria-invalid=invalid(file_err) aria-describedby=described("file")/>
            </Field>
            <div class="grid2">
                {text_fields}
                <Field label="Class names, one per line" id="classes" err=classes_err hint="Replaces the file's.">
                    <textarea id="classes" name="classes" rows=4 aria-invalid=invalid(classes_err) aria-describedby=described("classes")></textarea>
                </Field>
            </div>
            <button type="submit" disabled=move || busy.get()>"Upload"</button>
        </form>
        <div aria-live="polite">{move || status_view(status.get())}</div>
    }
}

/// A model file made ready in the worker.
struct Prepared {
    bytes: js_sys::Uint8Array,
    layers: u64,
    head_layers: u64,
    outputs: u64,
}

/// Reads `file` and has the worker keep its first `head` layers (0: all)
/// with the form's normalization and class names.
async fn prepare(file: &web_sys::File, head: u32) -> Result<Prepared, String> {
    let bytes = js::file_bytes(file).await?;
    let args = js::obj(&[
        ("bytes", bytes.clone().into()),
        ("head", JsValue::from(head)),
        ("normalize", JsValue::from_str(value_of("normalize").trim())),
        ("classes", JsValue::from_str(&value_of("classes"))),
    ]);
    let r = worker::call("prepare", args, &[]).await?;
    let whole = |k: &str| {
        let v = js::num(&r, k);
        (v.is_finite() && v >= 0.0)
            .then_some(v as u64)
            .ok_or_else(|| format!("the client's answer lacks {k}"))
    };
    Ok(Prepared {
        bytes: js::get(&r, "bytes").into(),
        layers: whole("layers")?,
        head_layers: whole("headLayers")?,
        outputs: whole("outputs")?,
    })
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn refusals_land_beside_their_field() {
        assert_eq!(
            field_of("a new version needs the creator token", true),
            "token"
        );
        assert_eq!(field_of("bad name", true), "name");
        assert_eq!(field_of("input bound too large", true), "input_bound");
        assert_eq!(field_of("the file is not a model", true), "file");
        assert_eq!(field_of("4 class names for 10 outputs", false), "classes");
        assert_eq!(
            field_of("more head layers than layers", false),
            "head_layers"
        );
        assert_eq!(field_of("normalization needs 2 values", false), "normalize");
        assert_eq!(field_of("not ONNX", false), "file");
    }
}
