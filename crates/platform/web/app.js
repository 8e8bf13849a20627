// cipherflow's pages are Rust (crates/web, Leptos) compiled to
// WebAssembly; this module only starts them (the content security policy
// allows no inline script). The cryptography runs in worker.js.
import init from "/ui/pkg/cipherflow_web.js";

init({ module_or_path: "/ui/pkg/cipherflow_web_bg.wasm" }).catch((e) => {
  const main = document.getElementById("main");
  const p = document.createElement("p");
  p.className = "error";
  p.setAttribute("role", "alert");
  p.textContent = "This browser cannot run these pages: they need WebAssembly (Chrome or Edge 91, " +
    `Firefox 89, Safari 16.4 or later). ${e && e.message ? e.message : e}`;
  main.replaceChildren(p);
});
