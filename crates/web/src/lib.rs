#![doc = include_str!("../README.md")]

// Module map, low to high:
// - `format`, `route`: plain Rust (sizes, names, addresses), tested natively;
// - `js`, `api`, `worker`: the browser — its objects, the platform's API,
//   the cryptography worker;
// - `plot`: the pages' SVG plots and canvases;
// - `pages`: one component per page; `app`: the router that shows them.
mod api;
mod app;
mod format;
mod js;
mod pages;
mod plot;
mod route;
mod worker;

pub use route::Route;

/// Mounts the pages on the document's `<main>` (the module's start).
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    app::mount();
}
