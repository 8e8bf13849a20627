//! A model's page: its card, its encrypted query, and for a model whose
//! creator keeps its tail, the split chooser: cost and measured leakage
//! per split, the recommended split, example reconstructions.

use crate::api::{self, HostInfo, ModelCard as Card, SplitLeakage as Leakage};
use crate::format;
use crate::js;
use crate::pages::or_dash;
use crate::plot::{self, SplitRow};
use leptos::prelude::*;

/// One row of the split table: the head's figures and the leakage.
#[derive(Clone, Default)]
struct Row {
    k: usize,
    after: Option<String>,
    head_ms: Option<f64>,
    rotations: Option<usize>,
    key_bytes: Option<f64>,
    query_bytes: Option<f64>,
    ssim: Option<f64>,
    psnr: Option<f64>,
}

fn cell<T>(v: Option<T>, f: impl Fn(T) -> String) -> impl IntoView {
    match v {
        None => view! { <td class="muted">"—"</td> }.into_any(),
        Some(v) => view! { <td>{f(v)}</td> }.into_any(),
    }
}

/// The held-out input and what the inversion attack made of it at each
/// measured split.
fn reconstructions(leak: &[Leakage], domain: Option<&str>) -> Option<impl IntoView> {
    let shown: Vec<&Leakage> = leak.iter().filter(|l| l.example.is_some()).collect();
    let first = shown.first().and_then(|l| l.example.clone())?;
    let figure = |canvas: AnyView, caption: String| {
        view! { <figure>{canvas}<figcaption>{caption}</figcaption></figure> }
    };
    let cells = shown
        .iter()
        .filter_map(|l| {
            let e = l.example.clone()?;
            let caption = format!("split {}: SSIM {:.2}", l.k, l.ssim);
            let label = format!("reconstruction at split {}", l.k);
            Some(figure(
                plot::pixels(e.shape.to_vec(), e.reconstruction, label).into_any(),
                caption,
            ))
        })
        .collect_view();
    Some(view! {
        <h3>"What an inversion attack recovers"</h3>
        <p>{format!("A held-out {} input, and what a network trained on public data to invert the activations at each split made of them — what the creator could see in plain-tail mode. The mpc and he modes reveal no activation.", domain.unwrap_or("public"))}</p>
        <div class="examples" role="group" aria-label="Example reconstructions">
            {figure(plot::pixels(first.shape.to_vec(), first.original, "the input".into()).into_any(), "input".into())}
            {cells}
        </div>
    })
}

/// How to query model `name` at split `k` from the user's computer (the
/// page queries only models the platform holds whole: a split query makes
/// the user one of the three parties that finish the model).
fn split_command(
    name: &str,
    k: usize,
    host: Option<&HostInfo>,
    leakage_measured: bool,
) -> impl IntoView {
    let origin = js::window().location().origin().unwrap_or_default();
    let base = format!("cipherflow query --server {origin} --model {name}");
    let host = match host {
        Some(h) => view! {
            <p>{format!("The creator's host the platform names has the certificate SHA-256 {}: compare it with the one the creator publishes, or give theirs with --host-fingerprint.", h.fingerprint)}</p>
        }
        .into_any(),
        None => view! {
            <p class="muted">"No host of the creator is online for it now: a query waits for their cipherflow model-host."</p>
        }
        .into_any(),
    };
    let plain = leakage_measured.then(|| {
        view! {
            <p>"Or in plain-tail mode, cheaper, where the creator sees the activations (what the SSIM and PSNR columns measure):"</p>
            <pre class="mono command">{format!("{base} --mode plain-tail --split {k} --accept-leakage --input YOUR_IMAGES")}</pre>
        }
    });
    view! {
        <p>{format!("Query it at split {k} from your computer, where a split query's third party runs (add --ca CA.pem when the platform's certificate is its own):")}</p>
        <pre class="mono command">{format!("{base} --mode mpc --split {k} --input YOUR_IMAGES")}</pre>
        {host}
        {plain}
    }
}

/// The split table, plot and reconstructions of an `mpc` model.
fn splits(c: &Card) -> Option<impl IntoView> {
    let mpc = c.mpc.clone()?;
    let leak = c
        .plain_tail
        .as_ref()
        .map(|p| p.leakage.clone())
        .unwrap_or_default();
    let rows: Vec<Row> = mpc
        .splits
        .iter()
        .map(|&k| {
            let h = mpc.measured.iter().find(|m| m.k == k);
            let l = leak.iter().find(|l| l.k == k);
            Row {
                k,
                after: h.map(|h| h.after.clone()),
                head_ms: h.map(|h| h.head_ms),
                rotations: h.map(|h| h.rotations),
                key_bytes: h.map(|h| h.key_bytes as f64),
                query_bytes: h.map(|h| h.upload_bytes.saturating_add(h.download_bytes) as f64),
                ssim: l.map(|l| l.ssim),
                psnr: l.map(|l| l.psnr),
            }
        })
        .collect();
    let plotted: Vec<SplitRow> = rows
        .iter()
        .map(|r| SplitRow {
            k: r.k,
            head_ms: r.head_ms,
            ssim: r.ssim,
        })
        .collect();
    let recommended = mpc.recommended;
    // The split the command below is for: the recommended one first.
    let chosen = RwSignal::new(recommended.or(mpc.splits.first().copied()).unwrap_or(0));
    let heads = [
        "split",
        "after",
        "head time",
        "rotations",
        "key bytes",
        "bytes / query",
        "SSIM",
        "PSNR",
    ];
    let body = rows
        .into_iter()
        .map(|r| {
            let (k, best) = (r.k, Some(r.k) == recommended);
            let id = format!("split-{k}");
            view! {
                <tr class={if best { "recommended" } else { "" }}>
                    <th scope="row">
                        <input type="radio" name="split" id=id.clone() value=k.to_string()
                            prop:checked=move || chosen.get() == k on:change=move |_| chosen.set(k)/>
                        " "
                        <label for=id>{format!("{k}{}", if best { " (recommended)" } else { "" })}</label>
                    </th>
                    {cell(r.after, |v| v)}
                    {cell(r.head_ms, format::ms)}
                    {cell(r.rotations, |v| v.to_string())}
                    {cell(r.key_bytes, format::bytes)}
                    {cell(r.query_bytes, format::bytes)}
                    {cell(r.ssim, |v| format!("{v:.3}"))}
                    {cell(r.psnr, |v| format!("{v:.1} dB"))}
                </tr>
            }
        })
        .collect_view();
    let domain = c.plain_tail.as_ref().and_then(|p| p.domain.clone());
    let measured: Vec<usize> = leak.iter().map(|l| l.k).collect();
    let (name, host) = (c.name.clone(), mpc.host.clone());
    let command = move || {
        split_command(
            &name,
            chosen.get(),
            host.as_ref(),
            measured.contains(&chosen.get()),
        )
    };
    Some(view! {
        <h2>"Splits"</h2>
        <p>"Split k: the platform runs the first k layers on your encrypted input; the rest runs without anyone seeing the activations (mpc), or in the creator's hands (plain-tail, which reveals what the leakage columns measure)."</p>
        <div class="scroll">
            <table>
                <thead><tr>{heads.map(|t| view! { <th scope="col">{t}</th> })}</tr></thead>
                <tbody>{body}</tbody>
            </table>
        </div>
        <div class="notice" id="split-command" aria-live="polite">{command}</div>
        {plot::splits(&plotted)}
        {reconstructions(&leak, domain.as_deref())}
        <p class="muted">"Head figures appear once a split has been prepared (its first query); leakage once the platform has measured it on the model's public data."</p>
    })
}

/// The card's facts, its `he` query and its splits.
fn card(c: Card) -> impl IntoView {
    let i = c.info.clone();
    let names = c.class_names();
    let shape = c
        .input_shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let bound = c
        .input_bound
        .map(|b| format!(", |x| ≤ {b}"))
        .unwrap_or_default();
    let he = c.he.clone().map(|he| {
        view! {
            <h2>"Encrypted query (he)"</h2>
            <p>{format!("The whole model runs on your encrypted input. Your browser makes the keys, {} of them rotation keys; one query took {} on the platform.", he.rotations, format::ms(he.measured_ms))}</p>
            <p class="muted">{he.output_privacy}</p>
            <p><a href=format!("#/query/{}", api::seg(&c.name)) class="button">"Query it with your images →"</a></p>
        }
    });
    view! {
        <h1>{format!("{} ", c.name)}<span class="muted">{format!("v{}", c.version)}</span></h1>
        <div>{c.modes.iter().map(|x| view! { <span class="badge">{x.clone()}</span> }).collect_view()}</div>
        <dl class="facts">
            <dt>"Task"</dt><dd>{or_dash(&i.task)}</dd>
            <dt>"Creator"</dt><dd>{or_dash(&i.creator)}</dd>
            <dt>"License"</dt><dd>{or_dash(&i.license)}</dd>
            <dt>"Accuracy"</dt><dd>{i.accuracy.map_or("—".into(), format::percent)}</dd>
            <dt>"Layers"</dt><dd>{format!("{} (the platform may hold the first {})", c.layers, c.head_layers)}</dd>
            <dt>"Input"</dt><dd>{format!("[{shape}]{bound}")}</dd>
            <dt>"Outputs"</dt><dd>{names.map_or(c.outputs.to_string(), |n| n.join(", "))}</dd>
            <dt>"File"</dt><dd class="mono">{format!("{}, SHA-256 {}", format::bytes(c.bytes as f64), c.sha256)}</dd>
        </dl>
        {he}
        {splits(&c)}
    }
}

/// A model's page.
#[component]
pub fn Model(name: String) -> impl IntoView {
    js::title(&name);
    let loaded = RwSignal::new(None::<Result<Card, String>>);
    {
        let path = format!("/v1/models/{}", api::seg(&name));
        leptos::task::spawn_local(async move {
            loaded.set(Some(api::get::<Card>(&path).await.map_err(|e| e.message)));
        });
    }
    move || match loaded.get() {
        None => view! {
            <h1>{name.clone()}</h1>
            <p class="muted" aria-live="polite">"Loading…"</p>
        }
        .into_any(),
        Some(Err(e)) => view! {
            <h1>{name.clone()}</h1>
            <p class="error" role="alert">{format!("Could not load the model: {e}")}</p>
        }
        .into_any(),
        Some(Ok(c)) => card(c).into_any(),
    }
}
