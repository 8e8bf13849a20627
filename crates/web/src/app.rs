//! The router: the page of the location's hash, shown in `<main>`; the
//! header's links (static HTML) marked with the current page.

use crate::js;
use crate::pages::{federation, model, query, repository, upload};
use crate::route::Route;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// The location's route.
fn current() -> Route {
    Route::parse(&js::window().location().hash().unwrap_or_default())
}

/// Marks the header's link of `route` with `aria-current="page"`.
fn mark_nav(route: &Route) {
    let Ok(links) = js::document().query_selector_all("nav a") else {
        return;
    };
    for i in 0..links.length() {
        let Some(a) = links
            .get(i)
            .and_then(|n| n.dyn_into::<web_sys::Element>().ok())
        else {
            continue;
        };
        if a.get_attribute("data-nav").as_deref() == Some(route.nav()) {
            let _ = a.set_attribute("aria-current", "page");
        } else {
            let _ = a.remove_attribute("aria-current");
        }
    }
}

/// The page of `route`.
fn page(route: Route) -> AnyView {
    match route {
        Route::Repository { q, mode } => view! { <repository::Repository q mode/> }.into_any(),
        Route::Model(name) => view! { <model::Model name/> }.into_any(),
        Route::Query(name) => view! { <query::Query name/> }.into_any(),
        Route::Upload => view! { <upload::Upload/> }.into_any(),
        Route::Federation => view! { <federation::Federation/> }.into_any(),
        Route::NotFound => {
            js::title("Not found");
            view! {
                <h1>"Not found"</h1>
                <p><a href="#/">"Back to the models"</a></p>
            }
            .into_any()
        }
    }
}

/// Shows the route's page in `<main>`, and a new page on each change of
/// the hash (the page left is disposed: a query page closes its session).
pub fn mount() {
    let Some(main) = js::document()
        .get_element_by_id("main")
        .and_then(|m| m.dyn_into::<web_sys::HtmlElement>().ok())
    else {
        return;
    };
    // What the page showed without scripts.
    main.set_inner_html("");
    let route = RwSignal::new(current());
    let handle = leptos::mount::mount_to(main, move || {
        let listener = window_event_listener(leptos::ev::hashchange, move |_| route.set(current()));
        on_cleanup(move || listener.remove());
        Effect::new(move |_| {
            let r = route.get();
            mark_nav(&r);
            // After the page's first render.
            js::focus_main();
        });
        move || page(route.get())
    });
    handle.forget();
}
