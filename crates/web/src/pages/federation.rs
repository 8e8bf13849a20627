//! The federation's dashboard (rounds, participants, dropouts, ε against
//! the budget, the ledger's signed head verified in the page) and "verify
//! that my update was counted" from a proof file, checked in the page.

use crate::api::{self, FederationSummary as Summary};
use crate::js;
use crate::pages::files_of;
use crate::plot;
use crate::worker;
use leptos::prelude::*;
use wasm_bindgen::JsValue;

/// A verdict shown in the page: verified (`Some(true)`), refused
/// (`Some(false)`) or nothing to verify (`None`), and what.
#[derive(Clone)]
struct Verdict {
    ok: Option<bool>,
    text: String,
}

/// Checks the signed head `head` (JSON) with `key` (hex, or a PREFIX.pub
/// file's text) in the worker.
async fn check_head(head: String, key: String, whose: String) -> Verdict {
    let args = js::obj(&[
        ("head", JsValue::from_str(&head)),
        ("publicKey", JsValue::from_str(&key)),
    ]);
    match worker::call("verifyHead", args, &[]).await {
        Ok(v) => {
            let root = js::text(&v, "root_hash").unwrap_or_default();
            let when = js_sys::Date::new(&JsValue::from_f64(js::num(&v, "timestamp_ms")));
            let when = when.to_iso_string().as_string().unwrap_or_default();
            Verdict {
                ok: Some(true),
                text: format!(
                    "Signed head verified in this page with {whose}: {} entries, root {}…, signed {when}.",
                    js::num(&v, "tree_size"),
                    root.get(..16).unwrap_or(&root)
                ),
            }
        }
        Err(e) => Verdict {
            ok: Some(false),
            text: format!("The signed head does not verify with {whose}: {e}"),
        },
    }
}

fn verdict_view(id: &'static str, v: Option<Verdict>) -> impl IntoView {
    match v {
        None => view! { <p id=id aria-live="polite"></p> }.into_any(),
        Some(Verdict { ok: None, text }) => {
            view! { <p id=id aria-live="polite">{text}</p> }.into_any()
        }
        Some(Verdict {
            ok: Some(true),
            text,
        }) => view! { <p id=id class="ok" aria-live="polite">{text}</p> }.into_any(),
        Some(Verdict {
            ok: Some(false),
            text,
        }) => {
            view! { <p id=id class="error" role="alert" aria-live="polite">{text}</p> }.into_any()
        }
    }
}

/// The dashboard of a federation's summary.
fn dashboard(f: Summary) -> impl IntoView {
    let now = f.rounds.iter().filter_map(|r| r.epsilon).next_back();
    let budget = f.epsilon_budget;
    let head = RwSignal::new(None::<Verdict>);
    let mine = RwSignal::new(None::<Verdict>);
    let sth = f.signed_head.as_ref().map(|h| h.to_string());
    match &sth {
        None => head.set(Some(Verdict {
            ok: None,
            text: "The ledger has no signed head yet.".into(),
        })),
        Some(s) => {
            let (s, key) = (s.clone(), f.public_key.clone());
            let whose = format!(
                "the key the platform names ({}…)",
                key.get(..16).unwrap_or(&key)
            );
            leptos::task::spawn_local(
                async move { head.set(Some(check_head(s, key, whose).await)) },
            );
        }
    }
    let has_head = sth.is_some();
    let on_key = move |_| {
        let (Some(s), Some(file)) = (sth.clone(), files_of("head-key").into_iter().next()) else {
            return;
        };
        leptos::task::spawn_local(async move {
            let v = match js::file_text(&file).await {
                Ok(key) => check_head(s, key, "your key".into()).await,
                Err(e) => Verdict {
                    ok: Some(false),
                    text: format!("The key file could not be read: {e}"),
                },
            };
            mine.set(Some(v));
        });
    };
    let unsigned = if f.unsigned_entries > 0 {
        format!(
            " ({} later ones not yet signed, not shown)",
            f.unsigned_entries
        )
    } else {
        String::new()
    };
    let spent = match now {
        None => "—".to_string(),
        Some(e) => format!(
            "{e:.3}{}",
            budget.map(|b| format!(" of {b}")).unwrap_or_default()
        ),
    };
    let rows = f
        .rounds
        .iter()
        .map(|r| {
            let over = matches!((budget, r.epsilon), (Some(b), Some(e)) if b > 0.0 && e > b);
            view! {
                <tr>
                    <th scope="row">{r.round}</th>
                    <td>{r.participants}</td>
                    <td>{r.updates}</td>
                    <td>{r.summed}</td>
                    <td class={if r.dropouts > 0 { "warn" } else { "" }}>{r.dropouts}</td>
                    <td class={if over { "error" } else { "" }}>{r.epsilon.map_or("—".into(), |e| format!("{e:.3}"))}</td>
                    <td>{if r.closed { "yes" } else { "open" }}</td>
                </tr>
            }
        })
        .collect_view();
    let heads = [
        "round",
        "participants",
        "updates",
        "summed",
        "dropouts",
        "ε after",
        "closed",
    ];
    view! {
        <dl class="facts">
            <dt>"Ledger"</dt><dd>{format!("{}, {} entries under its signed head{unsigned}", f.name, f.entries)}</dd>
            <dt>"Rounds"</dt><dd>{f.rounds.len()}</dd>
            <dt>"ε spent"</dt><dd>{spent}</dd>
            <dt>"Public key"</dt><dd class="mono">{f.public_key.clone()}</dd>
        </dl>
        {move || match head.get() {
            None => view! { <p id="head-verdict" aria-live="polite">"Verifying the signed head in this page…"</p> }.into_any(),
            v => verdict_view("head-verdict", v).into_any(),
        }}
        <div class="field">
            <label for="head-key">"Check the head with your own copy of the ledger's key (PREFIX.pub): the platform could name any key"</label>
            <input type="file" id="head-key" accept=".pub,text/plain" disabled=!has_head on:change=on_key/>
        </div>
        {move || verdict_view("head-key-verdict", mine.get())}
        {plot::epsilon(&f.rounds, budget)}
        <div class="scroll">
            <table id="rounds">
                <thead><tr>{heads.map(|t| view! { <th scope="col">{t}</th> })}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// What the proof check shows.
#[derive(Clone)]
enum Checked {
    Idle,
    Missing,
    Checking,
    Verified { summary: String, detail: String },
    Refused(String),
}

/// Verifies a proof file against a public key file in the worker.
async fn verify(proof: web_sys::File, key: web_sys::File) -> Result<serde_json::Value, String> {
    let (proof, key) = (js::file_text(&proof).await?, js::file_text(&key).await?);
    let args = js::obj(&[
        ("proof", JsValue::from_str(&proof)),
        ("publicKey", JsValue::from_str(&key)),
    ]);
    let r = worker::call("verify", args, &[]).await?;
    js::to_json(&js::get(&r, "verified"))
}

/// What a verified proof established, in words.
fn summary(v: &serde_json::Value) -> String {
    match v.get("counted") {
        Some(c) if c.is_object() => format!(
            "Verified: client {}'s update in round {} was logged (entry {}) and summed into the round's aggregate (entry {}, {} inputs), under a signed head of {} entries.",
            c["client_id"].as_str().unwrap_or("?"),
            c["round"],
            c["update_index"],
            c["aggregate_index"],
            c["input_count"],
            c["tree_size"]
        ),
        _ => format!("Verified: the entry is in the log of {} entries.", v["tree_size"]),
    }
}

/// The federation page.
#[component]
pub fn Federation() -> impl IntoView {
    js::title("Federation");
    let board = RwSignal::new(None::<Result<Summary, api::ApiError>>);
    leptos::task::spawn_local(async move {
        board.set(Some(api::get::<Summary>("/v1/federation").await))
    });
    let checked = RwSignal::new(Checked::Idle);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (Some(proof), Some(key)) = (
            files_of("proof").into_iter().next(),
            files_of("pubkey").into_iter().next(),
        ) else {
            checked.set(Checked::Missing);
            return;
        };
        checked.set(Checked::Checking);
        leptos::task::spawn_local(async move {
            checked.set(match verify(proof, key).await {
                Ok(v) => Checked::Verified {
                    summary: summary(&v),
                    detail: serde_json::to_string_pretty(&v).unwrap_or_default(),
                },
                Err(e) => Checked::Refused(e),
            });
        });
    };
    view! {
        <h1>"Federation"</h1>
        <div id="dashboard" aria-live="polite">
            {move || match board.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Ok(f)) => dashboard(f).into_any(),
                Some(Err(e)) if e.status == 404 => view! {
                    <p class="muted">"No federation is shown on this platform (cipherflow serve --federation-log LOG --federation-key LOG.pub)."</p>
                }.into_any(),
                Some(Err(e)) => view! {
                    <p class="error" role="alert">{format!("Could not read the federation's ledger: {e}")}</p>
                }.into_any(),
            }}
        </div>
        <h2>"Verify that my update was counted"</h2>
        <p>"The coordinator's ledger signs its head; a proof shows your update's entry under that head and its place among the aggregate's inputs. It is checked here, with nothing sent."</p>
        <form on:submit=submit>
            <div class="field">
                <label for="proof">"Proof file (cipherflow audit prove LOG --client ID --round R --out proof.json)"</label>
                <input type="file" id="proof" accept=".json,application/json"/>
            </div>
            <div class="field">
                <label for="pubkey">"The log's public key (PREFIX.pub), from a source you trust"</label>
                <input type="file" id="pubkey" accept=".pub,text/plain"/>
            </div>
            <button type="submit">"Verify"</button>
        </form>
        <div aria-live="polite" id="verdict">
            {move || match checked.get() {
                Checked::Idle => ().into_any(),
                Checked::Missing => view! { <p class="error" role="alert">"Choose the proof file and the log's public key file."</p> }.into_any(),
                Checked::Checking => view! { <p>"Verifying in this page…"</p> }.into_any(),
                Checked::Verified { summary, detail } => view! {
                    <div class="notice" role="status">
                        <p class="ok verified">{summary}</p>
                        <pre class="mono">{detail}</pre>
                    </div>
                }.into_any(),
                Checked::Refused(e) => view! {
                    <div class="notice bad" role="alert"><p class="error">{format!("Not verified: {e}")}</p></div>
                }.into_any(),
            }}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn what_a_proof_established() {
        let v = serde_json::json!({"tree_size": 9, "counted": {"client_id": "h1", "round": 1,
            "update_index": 3, "aggregate_index": 7, "input_count": 4, "tree_size": 9}});
        assert_eq!(summary(&v), "Verified: client h1's update in round 1 was logged (entry 3) and summed into the round's aggregate (entry 7, 4 inputs), under a signed head of 9 entries.");
        assert_eq!(
            summary(&serde_json::json!({"tree_size": 9, "counted": null})),
            "Verified: the entry is in the log of 9 entries."
        );
    }
}
