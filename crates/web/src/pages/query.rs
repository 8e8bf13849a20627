//! A user's encrypted query: images dropped in the page are decoded,
//! preprocessed and encrypted by the worker under keys made in the page;
//! the platform returns encrypted scores only the page can decrypt. The
//! steps, the upload's progress, the results and what left the device are
//! shown as they happen. (Keys kept on the device: `keys.rs`.)

use crate::api::{self, ModelCard as Card, SessionOpened as Session};
use crate::format;
use crate::js;
use crate::pages::keys::Keep;
use crate::worker;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// One step shown in the list (`data-state`: active, done or failed).
#[derive(Clone, Copy)]
pub(super) struct Step {
    id: u32,
    text: RwSignal<String>,
    state: RwSignal<&'static str>,
}

/// One image's decrypted answer.
#[derive(Clone)]
struct Answer {
    file: String,
    scores: Vec<f64>,
}

/// Operations that make, open or use keys run one at a time: the worker
/// holds one client, and a session belongs to its keys. (A queue of
/// waiters, each woken when the one before is done.)
#[derive(Default)]
pub(super) struct Lock {
    held: Cell<bool>,
    waiters: RefCell<VecDeque<js_sys::Function>>,
}

/// Held while an operation runs; the next waiter runs when it drops.
pub(super) struct Guard<'a>(&'a Lock);

impl Lock {
    pub(super) async fn acquire(&self) -> Guard<'_> {
        if self.held.replace(true) {
            let wait = js_sys::Promise::new(&mut |resolve, _| {
                self.waiters.borrow_mut().push_back(resolve)
            });
            // Resolved by the guard before this one; never rejected.
            let _ = JsFuture::from(wait).await;
        }
        Guard(self)
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let next = self.0.waiters.borrow_mut().pop_front();
        match next {
            // Handed on: the lock stays held.
            Some(resume) => drop(resume.call0(&JsValue::NULL)),
            None => self.0.held.set(false),
        }
    }
}

/// The page's state: the model, the session, what was sent, and the
/// signals its view shows.
pub(super) struct Query {
    pub(super) name: String,
    pub(super) card: RefCell<Option<Card>>,
    pub(super) session: RefCell<Option<String>>,
    key_bytes: Cell<f64>,
    sent_bytes: Cell<f64>,
    inputs: Cell<u32>,
    left: Cell<bool>,
    /// The session belongs to keys saved on this device: it stays open on
    /// the platform when the user leaves.
    pub(super) kept: Cell<bool>,
    /// This visit's keys were opened from the device; their session may
    /// have expired.
    pub(super) resumed: Cell<bool>,
    pub(super) lock: Lock,
    loaded: js_sys::Promise,
    on_loaded: RefCell<Option<js_sys::Function>>,
    steps: RwSignal<Vec<Step>>,
    next_step: Cell<u32>,
    answers: RwSignal<Vec<Answer>>,
    sent: RwSignal<Option<String>>,
    bar: RwSignal<Option<f64>>,
    pub(super) files_disabled: RwSignal<bool>,
    ready: RwSignal<bool>,
    pub(super) keep: RwSignal<Keep>,
}

impl Query {
    fn new(name: String) -> Rc<Self> {
        let on_loaded = RefCell::new(None);
        let loaded =
            js_sys::Promise::new(&mut |resolve, _| *on_loaded.borrow_mut() = Some(resolve));
        Rc::new(Self {
            name,
            card: RefCell::new(None),
            session: RefCell::new(None),
            key_bytes: Cell::new(0.0),
            sent_bytes: Cell::new(0.0),
            inputs: Cell::new(0),
            left: Cell::new(false),
            kept: Cell::new(false),
            resumed: Cell::new(false),
            lock: Lock::default(),
            loaded,
            on_loaded,
            steps: RwSignal::new(Vec::new()),
            next_step: Cell::new(0),
            answers: RwSignal::new(Vec::new()),
            sent: RwSignal::new(None),
            bar: RwSignal::new(None),
            files_disabled: RwSignal::new(false),
            ready: RwSignal::new(false),
            keep: RwSignal::new(Keep::Nothing),
        })
    }

    /// The model's spec and preprocessing as JSON text (the worker's
    /// arguments).
    pub(super) fn spec(&self) -> (String, JsValue) {
        let card = self.card.borrow();
        let he = card.as_ref().and_then(|c| c.he.as_ref());
        let spec = he.map(|h| h.spec.to_string()).unwrap_or_default();
        let prep = card
            .as_ref()
            .and_then(|c| c.preprocessing.as_ref())
            .map(|p| p.to_string());
        (spec, prep.map_or(JsValue::NULL, |p| JsValue::from_str(&p)))
    }

    /// The model's version, once loaded.
    pub(super) fn version(&self) -> i64 {
        self.card.borrow().as_ref().map_or(0, |c| c.version)
    }

    /// A new active step.
    pub(super) fn step(&self, text: impl Into<String>) -> Step {
        let id = self.next_step.get();
        self.next_step.set(id + 1);
        let s = Step {
            id,
            text: RwSignal::new(text.into()),
            state: RwSignal::new("active"),
        };
        self.steps.update(|v| v.push(s));
        s
    }

    /// A step that failed at once.
    fn failed(&self, text: impl Into<String>) {
        self.step(text).state.set("failed");
    }

    pub(super) fn done(&self, s: Step, text: Option<String>) {
        s.state.set("done");
        if let Some(t) = text {
            s.text.set(t);
        }
    }

    pub(super) fn fail(&self, s: Step, e: &str) {
        s.state.set("failed");
        s.text.update(|t| t.push_str(&format!(" — {e}")));
    }

    pub(super) fn remove(&self, s: Step) {
        self.steps.update(|v| v.retain(|x| x.id != s.id));
    }

    /// The session's path under `/v1/sessions/`.
    fn session_path(&self, tail: &str) -> Option<String> {
        self.session
            .borrow()
            .as_ref()
            .map(|s| format!("/v1/sessions/{}{tail}", api::seg(s)))
    }

    /// Uploads evaluation keys: a new session for them.
    pub(super) async fn upload_keys(&self, eval_keys: js_sys::Uint8Array) -> Result<(), String> {
        let size = f64::from(eval_keys.length());
        let s = self.step(format!(
            "Uploading evaluation keys ({})…",
            format::bytes(size)
        ));
        let bar = self.bar;
        bar.set(Some(0.0));
        let path = format!("/v1/models/{}/sessions", api::seg(&self.name));
        let r = api::upload::<Session>(&path, &eval_keys, move |f| bar.set(Some(f))).await;
        bar.set(None);
        let r = match r {
            Ok(r) if self.left.get() => {
                // Not remembered anywhere yet: closed at once.
                api::delete(format!("/v1/sessions/{}", api::seg(&r.session)), true);
                Err("you left the page".to_string())
            }
            Ok(r) => Ok(r),
            Err(e) => Err(e.message),
        };
        match r {
            Ok(r) => *self.session.borrow_mut() = Some(r.session),
            Err(e) => {
                self.fail(s, &e);
                return Err(e);
            }
        }
        self.key_bytes.set(self.key_bytes.get() + size);
        self.done(s, Some(format!("Evaluation keys uploaded ({}): public, relinearization and rotation keys, none of which decrypts.", format::bytes(size))));
        Ok(())
    }

    /// Makes keys in the worker and opens a session for them.
    async fn open_session(&self) -> Result<(), String> {
        let s = self.step("Making your keys in this page…");
        let (spec, prep) = self.spec();
        let args = js::obj(&[("spec", JsValue::from_str(&spec)), ("preprocessing", prep)]);
        let keys = match worker::call("keys", args, &[]).await {
            Ok(k) => k,
            Err(e) => {
                self.fail(s, &e);
                return Err(e);
            }
        };
        self.done(
            s,
            Some(format!(
                "Keys made in this page in {} ({} rotation keys); your secret key stays here.",
                format::ms(js::num(&keys, "keygenMs")),
                js::num(&keys, "rotations")
            )),
        );
        self.upload_keys(js::get(&keys, "evalKeys").into()).await?;
        self.offer_to_keep();
        Ok(())
    }

    /// Saved keys whose session the platform no longer holds: new
    /// evaluation keys for the same secret key, a new session, remembered
    /// on the device.
    async fn reopen_session(&self) -> Result<(), String> {
        let k = worker::call("evalKeys", js::obj(&[]), &[]).await?;
        self.upload_keys(k.into()).await?;
        self.resumed.set(false);
        self.remember_session().await
    }

    /// The platform's encrypted answer to ciphertext `ct`.
    async fn infer(&self, ct: &js_sys::Uint8Array) -> Result<js_sys::Uint8Array, String> {
        let path = self.session_path("/infer").ok_or("no session")?;
        match api::post_binary(&path, ct).await {
            Err(e) if self.resumed.get() && e.status == 404 => {
                let s = self.step(
                    "The platform no longer holds your saved keys' session: opening a new one.",
                );
                self.done(s, None);
                self.reopen_session().await?;
                let path = self.session_path("/infer").ok_or("no session")?;
                api::post_binary(&path, ct).await.map_err(|e| e.message)
            }
            r => r.map_err(|e| e.message),
        }
    }

    /// Encrypts, evaluates and decrypts one image; its answer shown.
    async fn classify(&self, file: &web_sys::File) {
        let name = file.name();
        let s = self.step(format!("{name}: encrypting…"));
        if let Err(e) = self.classify_steps(file, s).await {
            self.fail(s, &e);
        }
    }

    async fn classify_steps(&self, file: &web_sys::File, s: Step) -> Result<(), String> {
        let name = file.name();
        let bytes = js::file_bytes(file).await?;
        let args = js::obj(&[
            ("name", JsValue::from_str(&name)),
            ("bytes", bytes.clone().into()),
        ]);
        let enc = worker::call("encryptImage", args, &[bytes.into()]).await?;
        let ct: js_sys::Uint8Array = js::get(&enc, "ct").into();
        s.text.set(format!(
            "{name}: encrypted in {}, evaluating on the platform…",
            format::ms(js::num(&enc, "ms"))
        ));
        let t = js::now();
        let answer = self.infer(&ct).await?;
        let args = js::obj(&[("answer", answer.clone().into())]);
        let scores = worker::call("decrypt", args, &[answer.buffer().into()]).await?;
        let scores: Vec<f64> = js_sys::Array::from(&scores)
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        self.sent_bytes
            .set(self.sent_bytes.get() + f64::from(ct.length()));
        self.inputs.set(self.inputs.get() + 1);
        self.done(
            s,
            Some(format!(
                "{name}: answered in {} and decrypted here.",
                format::ms(js::now() - t)
            )),
        );
        self.answers
            .update(|a| a.push(Answer { file: name, scores }));
        let n = self.inputs.get();
        let keys = if self.key_bytes.get() > 0.0 {
            format!(
                "{} of evaluation keys and ",
                format::bytes(self.key_bytes.get())
            )
        } else {
            "no keys (the platform already held your saved keys' session) and ".into()
        };
        self.sent.set(Some(format!(
            "{keys}{n} encrypted input{} ({}). Not your images, not their pixels, not your secret key: the scores were decrypted in this page.",
            if n > 1 { "s" } else { "" },
            format::bytes(self.sent_bytes.get())
        )));
        Ok(())
    }

    /// Queries the images among `files`, one after the other.
    async fn run(self: Rc<Self>, files: Vec<web_sys::File>) {
        // Files chosen before the card has loaded wait for it.
        if !JsFuture::from(self.loaded.clone())
            .await
            .map(|v| v.is_truthy())
            .unwrap_or(false)
        {
            return;
        }
        let images: Vec<web_sys::File> = files
            .into_iter()
            .filter(|f| {
                let n = f.name().to_lowercase();
                [".png", ".jpg", ".jpeg"].iter().any(|e| n.ends_with(e))
                    || ["image/png", "image/jpeg"].contains(&f.type_().as_str())
            })
            .collect();
        if images.is_empty() {
            self.failed("Choose PNG or JPEG images.");
            return;
        }
        self.files_disabled.set(true);
        {
            let _held = self.lock.acquire().await;
            let opened = if self.session.borrow().is_none() {
                self.open_session().await
            } else {
                Ok(())
            };
            if opened.is_ok() {
                for f in &images {
                    if self.left.get() {
                        break;
                    }
                    self.classify(f).await;
                }
            }
        }
        self.files_disabled.set(false);
    }

    /// Sets the loaded card (or its failure) and wakes the waiting runs.
    fn loaded(&self, ok: bool) {
        if let Some(resolve) = self.on_loaded.borrow_mut().take() {
            let _ = resolve.call1(&JsValue::NULL, &JsValue::from_bool(ok));
        }
    }

    /// The page is left: its session closed unless saved keys use it, and
    /// the worker's keys dropped.
    fn leave(&self) {
        self.left.set(true);
        if !self.kept.get() {
            if let Some(p) = self.session_path("") {
                api::delete(p, true);
            }
        }
        *self.session.borrow_mut() = None;
        wasm_bindgen_futures::spawn_local(async {
            let _ = worker::call("forget", js::obj(&[]), &[]).await;
        });
    }
}

/// One answer's card: the class and the scores.
fn answer_view(a: Answer, names: Option<Vec<String>>) -> impl IntoView {
    let best = format::argmax(&a.scores).unwrap_or(0);
    let label = |k: usize| {
        names
            .as_ref()
            .and_then(|n| n.get(k).cloned())
            .unwrap_or_else(|| k.to_string())
    };
    let class = names
        .as_ref()
        .and_then(|n| n.get(best).cloned())
        .unwrap_or_else(|| format!("class {best}"));
    let prob = format::softmax(&a.scores);
    let rows = a
        .scores
        .iter()
        .zip(&prob)
        .enumerate()
        .map(|(k, (s, p))| {
            view! {
                <tr class={if k == best { "recommended" } else { "" }}>
                    <th scope="row">{label(k)}</th>
                    <td class="score" title="score (logit)">{format!("{s:.4}")}</td>
                    <td>{format::percent(*p)}</td>
                    <td><span class="bar" style:width=format!("{}px", p * 160.0)></span></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" data-file=a.file.clone() data-class=best>
            <h3>{format!("{}: ", a.file)}<span class="result-class">{class}</span></h3>
            <div class="scroll"><table><tbody>{rows}</tbody></table></div>
        </section>
    }
}

/// The query page of model `name`.
#[component]
pub fn Query(name: String) -> impl IntoView {
    js::title(&format!("Query {name}"));
    let q = Query::new(name.clone());
    let (steps, answers, sent, bar, files_disabled, ready) =
        (q.steps, q.answers, q.sent, q.bar, q.files_disabled, q.ready);
    let over = RwSignal::new(false);
    let names = RwSignal::new(None::<Vec<String>>);
    let stored = StoredValue::new_local(q.clone());
    on_cleanup(move || {
        if let Some(q) = stored.try_get_value() {
            q.leave();
        }
    });
    {
        let q = q.clone();
        leptos::task::spawn_local(async move {
            let path = format!("/v1/models/{}", api::seg(&q.name));
            let card = match api::get::<Card>(&path).await {
                Ok(c) => c,
                Err(e) => {
                    q.failed(format!("Could not load {}: {}", q.name, e.message));
                    files_disabled.set(true);
                    return q.loaded(false);
                }
            };
            if card.he.is_none() {
                q.failed(format!("{} cannot be queried encrypted here: its creator has not let the platform hold the whole model (use cipherflow query --mode mpc).", q.name));
                files_disabled.set(true);
                return q.loaded(false);
            }
            // The module loads while the user picks files.
            leptos::task::spawn_local(async move {
                if worker::call("ready", js::obj(&[]), &[]).await.is_ok() {
                    ready.set(true);
                }
            });
            let listed = card.class_names().filter(|n| n.len() == card.outputs);
            names.set(listed);
            *q.card.borrow_mut() = Some(card);
            q.clone().show_saved().await;
            q.loaded(true);
        });
    }
    let start = move |files: Vec<web_sys::File>| {
        if let Some(q) = stored.try_get_value() {
            leptos::task::spawn_local(q.run(files));
        }
    };
    let on_change = move |ev: leptos::ev::Event| {
        let input: Option<web_sys::HtmlInputElement> = event_target_checked(&ev);
        start(js::files(input.and_then(|i| i.files())));
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        over.set(false);
        start(js::files(ev.data_transfer().and_then(|d| d.files())));
    };
    view! {
        <h1>{format!("Query {name}")}</h1>
        <p>"Your images are decoded, preprocessed and encrypted in this page. The platform computes on the ciphertexts and returns encrypted scores that only this page can decrypt."</p>
        <section id="keep">{move || stored.try_get_value().map(|q| q.keep_view())}</section>
        <div class="drop" class:over=move || over.get() data-ready=move || ready.get().then_some("1")
            on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); over.set(true); }
            on:dragleave=move |_| over.set(false)
            on:drop=on_drop>
            <p>"Drop PNG or JPEG images here, or "<label for="images">"choose them:"</label></p>
            <input type="file" accept="image/png,image/jpeg" multiple id="images" disabled=move || files_disabled.get() on:change=on_change/>
        </div>
        <ol class="steps" aria-live="polite">
            <For each=move || steps.get() key=|s| s.id let:s>
                <li data-state=move || s.state.get()
                    class=move || (s.state.get() == "failed").then_some("error")
                    role=move || (s.state.get() == "failed").then_some("alert")>
                    {move || s.text.get()}
                </li>
            </For>
        </ol>
        <progress max=1 value=move || bar.get().unwrap_or(0.0) hidden=move || bar.get().is_none() aria-label="Upload progress"></progress>
        <div class="notice" hidden=move || sent.with(Option::is_none)>
            <strong>"What left this device: "</strong>
            {move || sent.get()}
        </div>
        <div>
            {move || answers.get().into_iter().map(|a| answer_view(a, names.get())).collect_view()}
        </div>
    }
}

/// The element an event fired on, as `T`.
fn event_target_checked<T: JsCast>(ev: &web_sys::Event) -> Option<T> {
    ev.target().and_then(|t| t.dyn_into().ok())
}
