//! Keys kept on the device, only when the user asks: the query page
//! offers to seal the secret key under a passphrase (in the worker:
//! Argon2id, XChaCha20-Poly1305) and store it in the browser; a later
//! visit opens it with the passphrase, or forgets it.

use super::query::Query;
use super::{described, focus, invalid, value_of, Field};
use crate::api;
use crate::format;
use crate::js;
use crate::worker;
use leptos::prelude::*;
use std::rc::Rc;
use wasm_bindgen::JsValue;

/// What the page's "keys on this device" section shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Keep {
    /// Nothing saved, nothing offered yet.
    Nothing,
    /// The browser's storage could not be read.
    LookFailed(String),
    /// A record that cannot be opened; `error`: forgetting it failed.
    Damaged { why: String, error: Option<String> },
    /// Keys saved on `when`, offered to open with the passphrase.
    Saved { when: String, error: Option<String> },
    /// The saved keys are in use.
    Opened { when: String },
    /// New keys: the user may keep them.
    Offer,
    /// Kept: what was stored.
    Kept(String),
    /// Forgotten.
    Deleted,
}

/// A stored time (ISO 8601) in the user's locale.
fn local_time(iso: &str) -> String {
    let d = js_sys::Date::new(&JsValue::from_str(iso));
    let f = js::get(&d, "toLocaleString");
    js_sys::Function::from(f)
        .call0(&d)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| iso.to_string())
}

impl Query {
    /// Looks for keys saved for this model (their format checked by the
    /// worker, the key not opened).
    pub(super) async fn show_saved(self: Rc<Self>) {
        let saved = worker::call(
            "savedKey",
            js::obj(&[("model", JsValue::from_str(&self.name))]),
            &[],
        )
        .await;
        self.keep.set(match saved {
            Err(e) => Keep::LookFailed(e),
            Ok(s) if s.is_null() || s.is_undefined() => Keep::Nothing,
            Ok(s) => match js::text(&s, "damaged") {
                Some(why) => Keep::Damaged { why, error: None },
                None => Keep::Saved {
                    when: local_time(&js::text(&s, "savedAt").unwrap_or_default()),
                    error: None,
                },
            },
        });
    }

    /// Offers to keep the keys just made.
    pub(super) fn offer_to_keep(&self) {
        self.keep.set(Keep::Offer);
    }

    /// Remembers the saved keys' new session on the device.
    pub(super) async fn remember_session(&self) -> Result<(), String> {
        let session = self.session.borrow().clone();
        let args = js::obj(&[
            ("model", JsValue::from_str(&self.name)),
            (
                "session",
                session.map_or(JsValue::NULL, |s| JsValue::from_str(&s)),
            ),
            ("version", JsValue::from_f64(self.version() as f64)),
        ]);
        worker::call("rememberSession", args, &[]).await.map(drop)
    }

    /// Opens the saved keys with `passphrase`; `Err((opened, why))`.
    async fn open_saved(&self, passphrase: String, when: String) -> Result<(), (bool, String)> {
        let _held = self.lock.acquire().await;
        if self.session.borrow().is_some() {
            return Err((
                false,
                "This visit already uses keys made in this page; come back to use the saved ones."
                    .into(),
            ));
        }
        let s = self.step("Opening the keys saved on this device…");
        let (spec, prep) = self.spec();
        let args = js::obj(&[
            ("model", JsValue::from_str(&self.name)),
            ("spec", JsValue::from_str(&spec)),
            ("preprocessing", prep),
            ("passphrase", JsValue::from_str(&passphrase)),
        ]);
        drop(passphrase);
        let r = match worker::call("openSaved", args, &[]).await {
            Ok(r) => r,
            Err(e) => {
                self.remove(s);
                return Err((false, e));
            }
        };
        self.kept.set(true);
        // A session made for another version of the model is not reused.
        let same = js::num(&r, "version") == self.version() as f64;
        let session = js::text(&r, "session").filter(|_| same);
        self.resumed.set(session.is_some());
        let reuse = session.is_some();
        *self.session.borrow_mut() = session;
        self.done(s, Some(format!("Your saved keys were opened in this page in {} (passphrase stretched, key unsealed, evaluation keys made again in case their session is gone).", format::ms(js::num(&r, "ms")))));
        self.keep.set(Keep::Opened { when });
        if !reuse {
            let renewed = async {
                let k = worker::call("evalKeys", js::obj(&[]), &[]).await?;
                self.upload_keys(k.into()).await?;
                self.remember_session().await
            };
            if let Err(e) = renewed.await {
                // No session for the saved keys: the next images make new
                // keys and a session of their own, closed when the user
                // leaves.
                self.kept.set(false);
                return Err((true, e));
            }
        }
        Ok(())
    }

    /// Deletes the saved keys (and closes their session).
    async fn forget_saved(&self) {
        match worker::call(
            "forgetSaved",
            js::obj(&[("model", JsValue::from_str(&self.name))]),
            &[],
        )
        .await
        {
            Ok(saved) => {
                // Its session is of no use to anyone without the key.
                let old = js::text(&saved, "session");
                if let Some(old) = old.filter(|o| Some(o) != self.session.borrow().as_ref()) {
                    api::delete(format!("/v1/sessions/{}", api::seg(&old)), false);
                }
                self.kept.set(false);
                self.keep.set(Keep::Deleted);
            }
            Err(e) => self.keep.update(|k| match k {
                Keep::Saved { error, .. } | Keep::Damaged { error, .. } => {
                    *error = Some(format!("The saved keys could not be deleted: {e}"));
                }
                _ => {}
            }),
        }
    }

    /// Seals the keys in memory under `passphrase` and stores them.
    async fn save(&self, passphrase: String) -> Result<String, String> {
        let session = self.session.borrow().clone();
        let args = js::obj(&[
            ("model", JsValue::from_str(&self.name)),
            ("passphrase", JsValue::from_str(&passphrase)),
            (
                "session",
                session
                    .clone()
                    .map_or(JsValue::NULL, |s| JsValue::from_str(&s)),
            ),
            ("version", JsValue::from_f64(self.version() as f64)),
        ]);
        drop(passphrase);
        let r = worker::call("saveKey", args, &[]).await?;
        self.kept.set(true);
        // The keys saved before (if any) are replaced: their session goes.
        if let Some(old) = js::text(&r, "replaced").filter(|o| Some(o) != session.as_ref()) {
            api::delete(format!("/v1/sessions/{}", api::seg(&old)), false);
        }
        Ok(format!(
            "Saved on this device ({}, sealed). The passphrase was not stored, and nothing was sent. Your session stays open on the platform when you leave, so that a later visit can use these keys without uploading new ones.",
            format::bytes(js::num(&r, "bytes"))
        ))
    }

    /// The section's view.
    pub(super) fn keep_view(self: Rc<Self>) -> AnyView {
        let name = self.name.clone();
        let error =
            |e: Option<String>| e.map(|e| view! { <p class="notice bad" role="alert">{e}</p> });
        let forget = {
            let q = self.clone();
            move |_| {
                let q = q.clone();
                leptos::task::spawn_local(async move { q.forget_saved().await });
            }
        };
        match self.keep.get() {
            Keep::Nothing => ().into_any(),
            Keep::LookFailed(e) => view! {
                <p class="notice bad" role="alert">{format!("Keys saved on this device could not be looked for: {e}")}</p>
            }
            .into_any(),
            Keep::Damaged { why, error: e } => view! {
                <div class="notice bad" role="alert">
                    {format!("The keys saved on this device for {name} are damaged and cannot be opened ({why}). ")}
                    <button type="button" id="forget-keys" on:click=forget>"Forget them"</button>
                </div>
                {error(e)}
            }
            .into_any(),
            Keep::Saved { when, error: e } => self.open_form(when, e.map(|e| error(Some(e)).into_any()), forget),
            Keep::Opened { when } => view! {
                <div class="card"><p>{format!("Using the keys saved on this device on {when}. Drop images to query with them.")}</p></div>
            }
            .into_any(),
            Keep::Offer => self.offer_form(),
            Keep::Kept(text) => view! { <p class="notice" role="status">{text}</p> }.into_any(),
            Keep::Deleted => view! {
                <p class="notice" role="status">{format!("The keys saved on this device for {name} were deleted.")}</p>
            }
            .into_any(),
        }
    }

    /// The form that opens saved keys.
    fn open_form(
        self: Rc<Self>,
        when: String,
        error: Option<AnyView>,
        forget: impl FnMut(leptos::ev::MouseEvent) + 'static,
    ) -> AnyView {
        let err = RwSignal::new(String::new());
        let busy = RwSignal::new(false);
        let name = self.name.clone();
        let opened_when = when.clone();
        let submit = move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            err.set(String::new());
            let passphrase = value_of("open-pass");
            super::clear("open-pass");
            busy.set(true);
            self.files_disabled.set(true);
            let q = self.clone();
            let when = opened_when.clone();
            leptos::task::spawn_local(async move {
                if let Err((opened, e)) = q.open_saved(passphrase, when).await {
                    // Opened: the failed step says why.
                    if !opened {
                        err.set(e);
                        focus("open-pass");
                    }
                }
                busy.set(false);
                q.files_disabled.set(false);
            });
        };
        view! {
            <form class="card" id="saved-keys" on:submit=submit>
                <h2>"Keys saved on this device"</h2>
                <p>{format!("Your secret key for {name} was saved in this browser on {when}, sealed under your passphrase. Open it to query without new keys — and without uploading any while the platform still holds their session.")}</p>
                // autocomplete off: a password manager would keep the
                // passphrase beside the key it protects.
                <Field label="Passphrase" id="open-pass" err>
                    <input id="open-pass" type="password" autocomplete="off" maxlength=1024 aria-invalid=invalid(err) aria-describedby=described("open-pass")/>
                </Field>
                <div class="actions">
                    <button type="submit" disabled=move || busy.get()>"Open my keys"</button>
                    " "
                    <button type="button" id="forget-keys" on:click=forget>"Forget them"</button>
                </div>
            </form>
            {error}
        }
        .into_any()
    }

    /// The offer to keep new keys.
    fn offer_form(self: Rc<Self>) -> AnyView {
        let (err1, err2) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
        let submit = move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            err1.set(String::new());
            err2.set(String::new());
            let (p1, p2) = (value_of("keep-pass"), value_of("keep-pass2"));
            if p1.chars().count() < 12 {
                err1.set(
                    "At least 12 characters: the passphrase is all that protects the saved key."
                        .into(),
                );
                return focus("keep-pass");
            }
            if p1 != p2 {
                err2.set("The two passphrases differ.".into());
                return focus("keep-pass2");
            }
            drop(p2);
            let q = self.clone();
            leptos::task::spawn_local(async move {
                match q.save(p1).await {
                    Ok(text) => q.keep.set(Keep::Kept(text)),
                    Err(e) => {
                        err1.set(e);
                        focus("keep-pass");
                    }
                }
                super::clear("keep-pass");
                super::clear("keep-pass2");
            });
        };
        view! {
            <form class="card" id="keep-keys" novalidate on:submit=submit>
                <h2>"Keep these keys on this device?"</h2>
                <p>"Only if you ask. Your secret key is sealed in this page under a passphrase (Argon2id, XChaCha20-Poly1305) and stored in this browser (IndexedDB) for this model. Anyone who can read this browser's storage and knows the passphrase can decrypt your answers; without it, the saved key is useless."</p>
                <Field label="Passphrase (at least 12 characters)" id="keep-pass" err=err1>
                    <input id="keep-pass" type="password" autocomplete="off" maxlength=1024 aria-invalid=invalid(err1) aria-describedby=described("keep-pass")/>
                </Field>
                <Field label="The passphrase again" id="keep-pass2" err=err2>
                    <input id="keep-pass2" type="password" autocomplete="off" maxlength=1024 aria-invalid=invalid(err2) aria-describedby=described("keep-pass2")/>
                </Field>
                <button type="submit">"Save my keys (encrypted)"</button>
            </form>
        }
        .into_any()
    }
}
