//! The model repository: search, filter by mode, a card per model.

use crate::api::{self, ModelCard as Card, ModelList};
use crate::format;
use crate::js;
use crate::pages::or_dash;
use crate::route::percent_encode;
use leptos::prelude::*;

/// One model's card in the list.
fn card(m: Card) -> impl IntoView {
    let i = m.info;
    let shape = m
        .input_shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    view! {
        <li class="card">
            <h3>
                <a href=format!("#/model/{}", api::seg(&m.name))>{m.name.clone()}</a>
                <span class="muted">{format!(" v{}", m.version)}</span>
            </h3>
            <div>
                {m.modes.into_iter().map(|x| view! { <span class="badge" title="served in this mode">{x}</span> }).collect_view()}
            </div>
            <dl>
                <dt>"Task"</dt><dd>{or_dash(&i.task)}</dd>
                <dt>"Input"</dt><dd>{format!("[{shape}] → {} outputs", m.outputs)}</dd>
                <dt>"Accuracy"</dt><dd>{i.accuracy.map_or("—".into(), format::percent)}</dd>
                <dt>"License"</dt><dd>{or_dash(&i.license)}</dd>
                <dt>"Creator"</dt><dd>{or_dash(&i.creator)}</dd>
            </dl>
        </li>
    }
}

/// What the list shows.
#[derive(Clone)]
enum Listed {
    Loading,
    Found(Vec<Card>),
    Failed(String),
}

/// The repository page, searched for `q` in `mode` (both may be empty).
#[component]
pub fn Repository(q: String, mode: String) -> impl IntoView {
    js::title("Models");
    let listed = RwSignal::new(Listed::Loading);
    let filtered = !q.is_empty() || !mode.is_empty();
    {
        let mut params = Vec::new();
        if !q.is_empty() {
            params.push(format!("q={}", percent_encode(&q)));
        }
        if !mode.is_empty() {
            params.push(format!("mode={}", percent_encode(&mode)));
        }
        let path = format!("/v1/models?{}", params.join("&"));
        leptos::task::spawn_local(async move {
            listed.set(match api::get::<ModelList>(&path).await {
                Ok(l) => Listed::Found(l.models),
                Err(e) => Listed::Failed(e.message),
            });
        });
    }
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut params = Vec::new();
        let q = super::value_of("q");
        if !q.trim().is_empty() {
            params.push(format!("q={}", percent_encode(q.trim())));
        }
        let mode = super::value_of("mode");
        if !mode.is_empty() {
            params.push(format!("mode={}", percent_encode(&mode)));
        }
        let _ = js::window()
            .location()
            .set_hash(&format!("#/?{}", params.join("&")));
    };
    let modes = ["he", "mpc"].map(|x| view! { <option value=x selected=mode == x>{x}</option> });
    view! {
        <h1>"Models"</h1>
        <form class="toolbar" role="search" on:submit=search>
            <input type="search" id="q" name="q" value=q placeholder="Search name, task, license, creator" aria-label="Search models"/>
            <select id="mode" name="mode" aria-label="Mode">
                <option value="">"any mode"</option>
                {modes}
            </select>
            <button type="submit">"Search"</button>
        </form>
        <ul class="cards" aria-live="polite">
            {move || match listed.get() {
                Listed::Loading => ().into_any(),
                Listed::Found(ms) if ms.is_empty() => view! {
                    <li class="muted">{if filtered { "No model matches." } else { "No models yet: upload one." }}</li>
                }.into_any(),
                Listed::Found(ms) => ms.into_iter().map(card).collect_view().into_any(),
                Listed::Failed(e) => view! {
                    <li class="error" role="alert">{format!("Could not list the models: {e}")}</li>
                }.into_any(),
            }}
        </ul>
    }
}
