//! The cryptography worker (`/ui/worker.js`, which runs cipherflow's
//! client from `crates/wasm`): keys, encryption, decryption, sealing and
//! proof verification run there, off the page's thread; the secret key
//! lives in its memory. One call is one message and one answer.

use crate::js;
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// The worker and the calls waiting for it.
struct Bridge {
    worker: web_sys::Worker,
    seq: u32,
    pending: HashMap<u32, (js_sys::Function, js_sys::Function)>,
    // Kept alive as long as the worker.
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::ErrorEvent)>,
}

thread_local! {
    static BRIDGE: RefCell<Option<Bridge>> = const { RefCell::new(None) };
}

fn on_message(e: web_sys::MessageEvent) {
    let data = e.data();
    let Some(id) = js::get(&data, "id").as_f64() else {
        return;
    };
    let waiting = BRIDGE.with(|b| {
        b.borrow_mut()
            .as_mut()
            .and_then(|b| b.pending.remove(&(id as u32)))
    });
    let Some((resolve, reject)) = waiting else {
        return;
    };
    if js::get(&data, "ok").is_truthy() {
        let _ = resolve.call1(&JsValue::NULL, &js::get(&data, "value"));
    } else {
        let _ = reject.call1(&JsValue::NULL, &js::get(&data, "error"));
    }
}

fn on_error(e: web_sys::ErrorEvent) {
    // The worker is gone: every waiting call fails, the next one starts
    // a new worker.
    let gone = BRIDGE.with(|b| b.borrow_mut().take());
    if let Some(b) = gone {
        let reason = if e.message().is_empty() {
            "could not load".into()
        } else {
            e.message()
        };
        let msg = JsValue::from_str(&format!("the cryptography worker failed: {reason}"));
        for (_, (_, reject)) in b.pending {
            let _ = reject.call1(&JsValue::NULL, &msg);
        }
        b.worker.terminate();
    }
}

fn start() -> Result<Bridge, String> {
    let opts = web_sys::WorkerOptions::new();
    opts.set_type(web_sys::WorkerType::Module);
    let worker =
        web_sys::Worker::new_with_options("/ui/worker.js", &opts).map_err(|e| js::message(&e))?;
    let m = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(on_message);
    let e = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(on_error);
    worker.set_onmessage(Some(m.as_ref().unchecked_ref()));
    worker.set_onerror(Some(e.as_ref().unchecked_ref()));
    Ok(Bridge {
        worker,
        seq: 0,
        pending: HashMap::new(),
        _on_message: m,
        _on_error: e,
    })
}

/// Runs `op` in the worker with `args` (a plain object), moving the
/// buffers in `transfer`; its answer, or its error's message.
pub async fn call(op: &str, args: JsValue, transfer: &[JsValue]) -> Result<JsValue, String> {
    let transfer: js_sys::Array = transfer.iter().collect();
    let mut failed = None;
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        let sent = BRIDGE.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(start()?);
            }
            let b = cell.as_mut().ok_or_else(|| "no worker".to_string())?;
            b.seq = b.seq.wrapping_add(1);
            let id = b.seq;
            b.pending.insert(id, (resolve, reject));
            let msg = js::obj(&[
                ("id", JsValue::from(id)),
                ("op", JsValue::from_str(op)),
                ("args", args.clone()),
            ]);
            b.worker
                .post_message_with_transfer(&msg, &transfer)
                .map_err(|e| {
                    b.pending.remove(&id);
                    js::message(&e)
                })
        });
        if let Err(e) = sent {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|e| js::message(&e))
}
