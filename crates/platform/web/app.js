// cipherflow's pages: the model repository, a model's splits, uploads,
// encrypted queries and proof verification. Plain modules, no framework:
// every element is built with `h` (text is never parsed as HTML, so a
// model card's fields cannot inject markup), and the cryptography runs in
// worker.js.

const main = () => document.getElementById("main");

// ---------- elements ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the policy refuses style attributes.
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function show(title, ...content) {
  document.title = `${title} · cipherflow`;
  const m = main();
  m.replaceChildren(...content);
  m.focus();
}

const fmtBytes = (n) => n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
const fmtMs = (ms) => ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
const nameOk = (s) => /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(s);

// ---------- the platform's API ----------

async function api(method, path, body, headers) {
  const r = await fetch(path, { method, body, headers: headers || {} });
  const type = r.headers.get("content-type") || "";
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    if (type.includes("json")) { try { msg = (await r.json()).error || msg; } catch (_) { /* keep the status */ } }
    const e = new Error(msg); e.status = r.status; throw e;
  }
  if (r.status === 204) return null;
  return type.includes("json") ? r.json() : new Uint8Array(await r.arrayBuffer());
}

// A binary upload with progress (fetch cannot report an upload's progress).
function upload(path, bytes, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", path);
    x.setRequestHeader("content-type", "application/octet-stream");
    x.responseType = "json";
    x.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    x.onload = () => x.status >= 200 && x.status < 300 ? resolve(x.response)
      : reject(new Error((x.response && x.response.error) || `${x.status} ${x.statusText}`));
    x.onerror = () => reject(new Error("the platform could not be reached"));
    x.send(bytes);
  });
}

// ---------- the worker ----------

let worker = null;
let seq = 0;
const pending = new Map();

function crypto(op, args, transfer) {
  if (!worker) {
    worker = new Worker("/ui/worker.js", { type: "module" });
    worker.onmessage = (e) => {
      const p = pending.get(e.data.id);
      if (!p) return;
      pending.delete(e.data.id);
      e.data.ok ? p.resolve(e.data.value) : p.reject(new Error(e.data.error));
    };
    worker.onerror = (e) => {
      for (const p of pending.values()) p.reject(new Error(`the cryptography worker failed: ${e.message || "could not load"}`));
      pending.clear();
      worker = null;
    };
  }
  const id = ++seq;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args }, transfer || []);
  });
}

// ---------- Repository ----------

function modelCard(m) {
  const i = m.info || {};
  return h("li", { class: "card" },
    h("h3", {}, h("a", { href: `#/model/${encodeURIComponent(m.name)}` }, m.name), h("span", { class: "muted" }, ` v${m.version}`)),
    h("div", {}, (m.modes || []).map((x) => h("span", { class: "badge", title: "served in this mode" }, x))),
    h("dl", {},
      h("dt", {}, "Task"), h("dd", {}, i.task || "—"),
      h("dt", {}, "Input"), h("dd", {}, `[${(m.input_shape || []).join(", ")}] → ${m.outputs} outputs`),
      h("dt", {}, "Accuracy"), h("dd", {}, i.accuracy != null ? `${(i.accuracy * 100).toFixed(1)} %` : "—"),
      h("dt", {}, "License"), h("dd", {}, i.license || "—"),
      h("dt", {}, "Creator"), h("dd", {}, i.creator || "—")));
}

async function repositoryPage(params) {
  const q = params.get("q") || "", mode = params.get("mode") || "";
  const list = h("ul", { class: "cards", "aria-live": "polite" });
  const search = h("input", { type: "search", name: "q", value: q, placeholder: "Search name, task, license, creator", "aria-label": "Search models" });
  const modeSel = h("select", { name: "mode", "aria-label": "Mode" },
    h("option", { value: "" }, "any mode"),
    ...["he", "mpc"].map((x) => h("option", { value: x, selected: x === mode }, x)));
  const form = h("form", { class: "toolbar", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (search.value.trim()) p.set("q", search.value.trim());
    if (modeSel.value) p.set("mode", modeSel.value);
    location.hash = `#/?${p}`;
  } }, search, modeSel, h("button", { type: "submit" }, "Search"));
  show("Models", h("h1", {}, "Models"), form, list);
  try {
    const p = new URLSearchParams();
    if (q) p.set("q", q);
    if (mode) p.set("mode", mode);
    const { models } = await api("GET", `/v1/models?${p}`);
    list.replaceChildren(...(models.length ? models.map(modelCard)
      : [h("li", { class: "muted" }, q || mode ? "No model matches." : "No models yet: upload one.")]));
  } catch (e) {
    list.replaceChildren(h("li", { class: "error", role: "alert" }, `Could not list the models: ${e.message}`));
  }
}

// ---------- Model ----------

function splitPlot(rows) {
  // Head time (bars, left axis) and the inversion attack's SSIM (dots,
  // right axis, 0–1) per split.
  const W = 600, H = 220, L = 50, R = 50, T = 16, B = 34;
  const maxMs = Math.max(1, ...rows.map((r) => r.head_ms || 0));
  const x = (i) => L + (i + 0.5) * (W - L - R) / rows.length;
  const bw = Math.max(6, (W - L - R) / rows.length * 0.5);
  const yMs = (v) => H - B - v / maxMs * (H - T - B);
  const ySsim = (v) => H - B - v * (H - T - B);
  const g = [
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#888" }),
    svg("text", { x: 4, y: T + 4, "font-size": 11 }, `${fmtMs(maxMs)}`),
    svg("text", { x: W - R + 6, y: T + 4, "font-size": 11 }, "SSIM 1"),
    svg("text", { x: W - R + 6, y: H - B, "font-size": 11 }, "0"),
  ];
  rows.forEach((r, i) => {
    if (r.head_ms != null) g.push(svg("rect", { x: x(i) - bw / 2, y: yMs(r.head_ms), width: bw, height: H - B - yMs(r.head_ms), fill: "#0b5cad" },
      svg("title", {}, `split ${r.k}: head ${fmtMs(r.head_ms)}`)));
    if (r.ssim != null) g.push(svg("circle", { cx: x(i), cy: ySsim(r.ssim), r: 5, fill: "#b42318" },
      svg("title", {}, `split ${r.k}: SSIM ${r.ssim.toFixed(3)}`)));
    g.push(svg("text", { x: x(i), y: H - B + 16, "font-size": 11, "text-anchor": "middle" }, `k=${r.k}`));
  });
  return svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "Head time (bars) and reconstruction SSIM (dots) per split" }, g);
}

// An 8-bit image (`{shape: [C, H, W], …}`, C = 1 or 3, channel-major)
// on a canvas, one canvas pixel per image pixel (CSS scales it).
function pixels(shape, values, label) {
  const [c, rows, cols] = shape;
  const cv = h("canvas", { width: cols, height: rows, class: "pixels", role: "img", "aria-label": label });
  const ctx = cv.getContext("2d");
  const img = ctx.createImageData(cols, rows);
  const plane = rows * cols;
  for (let i = 0; i < plane; i++) {
    const r = values[i], g = c === 3 ? values[plane + i] : r, b = c === 3 ? values[2 * plane + i] : r;
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  return cv;
}

// One held-out input and what the inversion attack made of it at each
// measured split (plain-tail leakage, the SSIM and PSNR columns seen).
function reconstructions(rows, domain) {
  const shown = rows.filter((r) => r.example);
  if (!shown.length) return [];
  const first = shown[0].example;
  const cell = (canvas, caption) => h("figure", {}, canvas, h("figcaption", {}, caption));
  return [
    h("h3", {}, "What an inversion attack recovers"),
    h("p", {}, `A held-out ${domain || "public"} input, and what a network trained on public data to invert the activations at each split made of them — what the creator could see in plain-tail mode. The mpc and he modes reveal no activation.`),
    h("div", { class: "examples", role: "group", "aria-label": "Example reconstructions" },
      cell(pixels(first.shape, first.original, "the input"), "input"),
      shown.map((r) => cell(pixels(r.example.shape, r.example.reconstruction, `reconstruction at split ${r.k}`),
        r.ssim != null ? `split ${r.k}: SSIM ${r.ssim.toFixed(2)}` : `split ${r.k}`))),
  ];
}

async function modelPage(name) {
  show(name, h("h1", {}, name), h("p", { class: "muted", "aria-live": "polite" }, "Loading…"));
  let c;
  try {
    c = await api("GET", `/v1/models/${encodeURIComponent(name)}`);
  } catch (e) {
    show(name, h("h1", {}, name), h("p", { class: "error", role: "alert" }, `Could not load the model: ${e.message}`));
    return;
  }
  const i = c.info || {};
  const names = c.preprocessing && c.preprocessing.class_names;
  const parts = [
    h("h1", {}, `${c.name} `, h("span", { class: "muted" }, `v${c.version}`)),
    h("div", {}, (c.modes || []).map((x) => h("span", { class: "badge" }, x))),
    h("dl", { class: "facts" },
      h("dt", {}, "Task"), h("dd", {}, i.task || "—"),
      h("dt", {}, "Creator"), h("dd", {}, i.creator || "—"),
      h("dt", {}, "License"), h("dd", {}, i.license || "—"),
      h("dt", {}, "Accuracy"), h("dd", {}, i.accuracy != null ? `${(i.accuracy * 100).toFixed(1)} %` : "—"),
      h("dt", {}, "Layers"), h("dd", {}, `${c.layers} (the platform may hold the first ${c.head_layers})`),
      h("dt", {}, "Input"), h("dd", {}, `[${c.input_shape.join(", ")}]${c.input_bound != null ? `, |x| ≤ ${c.input_bound}` : ""}`),
      h("dt", {}, "Outputs"), h("dd", {}, names ? names.join(", ") : String(c.outputs)),
      h("dt", {}, "File"), h("dd", { class: "mono" }, `${fmtBytes(c.bytes)}, SHA-256 ${c.sha256}`)),
  ];
  if (c.he) {
    parts.push(h("h2", {}, "Encrypted query (he)"),
      h("p", {}, `The whole model runs on your encrypted input. Your browser makes the keys, ${c.he.rotations} of them rotation keys; one query took ${fmtMs(c.he.measured_ms)} on the platform.`),
      h("p", { class: "muted" }, c.he.output_privacy),
      h("p", {}, h("a", { href: `#/query/${encodeURIComponent(c.name)}`, class: "button" }, "Query it with your images →")));
  }
  if (c.mpc) {
    const leak = new Map(((c.plain_tail && c.plain_tail.leakage) || []).map((l) => [l.k, l]));
    const measured = new Map((c.mpc.measured || []).map((m) => [m.k, m]));
    const rows = c.mpc.splits.map((k) => ({ k, ...(measured.get(k) || {}), ...(leak.get(k) || {}) }));
    const cell = (v, f) => v == null ? h("td", { class: "muted" }, "—") : h("td", {}, f(v));
    parts.push(h("h2", {}, "Splits"),
      h("p", {}, "Split k: the platform runs the first k layers on your encrypted input; the rest runs without anyone seeing the activations (mpc), or in the creator's hands (plain-tail, which reveals what the leakage columns measure)."),
      h("div", { class: "scroll" }, h("table", {},
        h("thead", {}, h("tr", {}, ["split", "after", "head time", "rotations", "key bytes", "bytes / query", "SSIM", "PSNR"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows.map((r) => h("tr", { class: r.k === c.mpc.recommended ? "recommended" : "" },
          h("th", { scope: "row" }, `${r.k}${r.k === c.mpc.recommended ? " (recommended)" : ""}`),
          cell(r.after, String), cell(r.head_ms, fmtMs), cell(r.rotations, String), cell(r.key_bytes, fmtBytes),
          cell(r.upload_bytes != null ? r.upload_bytes + (r.download_bytes || 0) : null, fmtBytes),
          cell(r.ssim, (v) => v.toFixed(3)), cell(r.psnr, (v) => `${v.toFixed(1)} dB`)))))),
      splitPlot(rows),
      ...reconstructions(rows, c.plain_tail && c.plain_tail.domain),
      h("p", { class: "muted" }, "Head figures appear once a split has been prepared (its first query); leakage once the platform has measured it on the model's public data."));
  }
  show(c.name, ...parts);
}

// ---------- Query ----------

async function queryPage(name) {
  const steps = h("ol", { class: "steps", "aria-live": "polite" });
  const bar = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const results = h("div", {});
  const sent = h("div", { class: "notice", hidden: true });
  const files = h("input", { type: "file", accept: "image/png,image/jpeg", multiple: true, id: "images" });
  const drop = h("div", { class: "drop" },
    h("p", {}, "Drop PNG or JPEG images here, or ", h("label", { for: "images" }, "choose them:")), files);
  show(`Query ${name}`, h("h1", {}, `Query ${name}`),
    h("p", {}, "Your images are decoded, preprocessed and encrypted in this page. The platform computes on the ciphertexts and returns encrypted scores that only this page can decrypt."),
    drop, steps, bar, sent, results);
  // Files chosen before the model's card has loaded wait for it.
  let loaded;
  const cardLoaded = new Promise((resolve) => { loaded = resolve; });
  files.addEventListener("change", () => run(files.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); run(e.dataTransfer.files); });
  let card;
  try {
    card = await api("GET", `/v1/models/${encodeURIComponent(name)}`);
  } catch (e) {
    steps.append(h("li", { "data-state": "failed", class: "error", role: "alert" }, `Could not load ${name}: ${e.message}`));
    files.disabled = true;
    return loaded(false);
  }
  if (!card.he) {
    steps.append(h("li", { "data-state": "failed", class: "error", role: "alert" },
      `${name} cannot be queried encrypted here: its creator has not let the platform hold the whole model (use cipherflow query --mode mpc).`));
    files.disabled = true;
    return loaded(false);
  }
  // The module loads while the user picks files.
  crypto("ready").then(() => { drop.dataset.ready = "1"; }, () => {});
  const listed = card.preprocessing && card.preprocessing.class_names;
  const names = listed && listed.length === card.outputs ? listed : null;
  const specJson = JSON.stringify(card.he.spec);
  const prepJson = card.preprocessing ? JSON.stringify(card.preprocessing) : null;
  // `kept`: the session belongs to keys saved on this device, so it stays
  // open on the platform when the user leaves; `resumed`: this visit's
  // keys were opened from this device, and their session may have expired.
  let session = null, keyBytes = 0, sentBytes = 0, inputs = 0, left = false, kept = false, resumed = false;
  // Operations that make, open or use keys run one at a time: the worker
  // holds one client, and a session belongs to its keys.
  let keyOps = Promise.resolve();
  const exclusive = (f) => { const p = keyOps.then(f); keyOps = p.catch(() => {}); return p; };
  const step = (text) => { const li = h("li", { "data-state": "active" }, text); steps.append(li); return li; };
  const done = (li, text) => { li.dataset.state = "done"; if (text) li.textContent = text; };
  const fail = (li, e) => { li.dataset.state = "failed"; li.classList.add("error"); li.setAttribute("role", "alert"); li.textContent += ` — ${e.message}`; };

  async function uploadKeys(evalKeys) {
    const s2 = step(`Uploading evaluation keys (${fmtBytes(evalKeys.byteLength)})…`);
    bar.hidden = false; bar.value = 0;
    try {
      const r = await upload(`/v1/models/${encodeURIComponent(name)}/sessions`, evalKeys, (f) => { bar.value = f; });
      if (left) {
        // Not remembered anywhere yet: closed at once.
        fetch(`/v1/sessions/${encodeURIComponent(r.session)}`, { method: "DELETE", keepalive: true }).catch(() => {});
        throw new Error("you left the page");
      }
      session = r.session;
    } catch (e) { fail(s2, e); throw e; } finally { bar.hidden = true; }
    keyBytes += evalKeys.byteLength;
    done(s2, `Evaluation keys uploaded (${fmtBytes(evalKeys.byteLength)}): public, relinearization and rotation keys, none of which decrypts.`);
  }

  async function openSession() {
    const s1 = step("Making your keys in this page…");
    let keys;
    try {
      keys = await crypto("keys", { spec: specJson, preprocessing: prepJson });
    } catch (e) { fail(s1, e); throw e; }
    done(s1, `Keys made in this page in ${fmtMs(keys.keygenMs)} (${keys.rotations} rotation keys); your secret key stays here.`);
    await uploadKeys(keys.evalKeys);
    offerToKeep();
  }

  // Saved keys whose session the platform no longer holds: new evaluation
  // keys for the same secret key, a new session, remembered on the device.
  async function reopenSession() {
    const k = await crypto("evalKeys");
    await uploadKeys(k);
    resumed = false;
    await crypto("rememberSession", { model: name, session, version: card.version });
  }

  async function infer(ct) {
    const path = () => `/v1/sessions/${encodeURIComponent(session)}/infer`;
    try {
      return await api("POST", path(), ct, { "content-type": "application/octet-stream" });
    } catch (e) {
      if (!(resumed && e.status === 404)) throw e;
      step("The platform no longer holds your saved keys' session: opening a new one.").dataset.state = "done";
      await reopenSession();
      return api("POST", path(), ct, { "content-type": "application/octet-stream" });
    }
  }

  async function classify(file) {
    const li = step(`${file.name}: encrypting…`);
    try {
      const bytes = await file.arrayBuffer();
      const { ct, ms } = await crypto("encryptImage", { name: file.name, bytes }, [bytes]);
      li.textContent = `${file.name}: encrypted in ${fmtMs(ms)}, evaluating on the platform…`;
      const t = performance.now();
      const answer = await infer(ct);
      const scores = await crypto("decrypt", { answer }, [answer.buffer]);
      sentBytes += ct.byteLength; inputs += 1;
      const best = scores.indexOf(Math.max(...scores));
      done(li, `${file.name}: answered in ${fmtMs(performance.now() - t)} and decrypted here.`);
      const m = Math.max(...scores), ex = scores.map((s) => Math.exp(s - m)), sum = ex.reduce((a, b) => a + b, 0);
      const prob = ex.map((e) => e / sum);
      results.append(h("section", { class: "card", "data-file": file.name, "data-class": best },
        h("h3", {}, `${file.name}: `, h("span", { class: "result-class" }, names ? names[best] : `class ${best}`)),
        h("div", { class: "scroll" }, h("table", {}, h("tbody", {}, scores.map((s, k) => h("tr", { class: k === best ? "recommended" : "" },
          h("th", { scope: "row" }, names ? names[k] : String(k)), h("td", { class: "score", title: "score (logit)" }, s.toFixed(4)),
          h("td", {}, `${(prob[k] * 100).toFixed(1)} %`),
          h("td", {}, h("span", { class: "bar", style: { width: `${prob[k] * 160}px` } })))))))));
      sent.hidden = false;
      sent.replaceChildren(h("strong", {}, "What left this device: "),
        keyBytes ? `${fmtBytes(keyBytes)} of evaluation keys and ` : "no keys (the platform already held your saved keys' session) and ",
        `${inputs} encrypted input${inputs > 1 ? "s" : ""} (${fmtBytes(sentBytes)}). `,
        "Not your images, not their pixels, not your secret key: the scores were decrypted in this page.");
    } catch (e) { fail(li, e); }
  }

  // ----- keys kept on this device, only when the user asks -----
  const keep = h("section", { id: "keep" });
  drop.before(keep);
  // autocomplete off: a password manager would keep the passphrase beside
  // the key it protects.
  const passField = (id, label) => field(label, h("input", { id, type: "password", autocomplete: "off", maxlength: 1024 }));

  async function showSaved() {
    let saved;
    try {
      saved = await crypto("savedKey", { model: name });
    } catch (e) {
      keep.replaceChildren(h("p", { class: "notice bad", role: "alert" },
        `Keys saved on this device could not be looked for: ${e.message}`));
      return;
    }
    if (!saved) { keep.replaceChildren(); return; }
    const forget = h("button", { type: "button", id: "forget-keys", onclick: forgetSaved }, "Forget them");
    if (saved.damaged) {
      keep.replaceChildren(h("div", { class: "notice bad", role: "alert" },
        `The keys saved on this device for ${name} are damaged and cannot be opened (${saved.damaged}). `, forget));
      return;
    }
    const when = new Date(saved.savedAt).toLocaleString();
    const pass = passField("open-pass", "Passphrase");
    const submit = h("button", { type: "submit" }, "Open my keys");
    const form = h("form", { class: "card", id: "saved-keys", onsubmit: (e) => {
      e.preventDefault();
      pass.err.textContent = ""; pass.input.removeAttribute("aria-invalid");
      const passphrase = pass.input.value;
      pass.input.value = "";
      submit.disabled = true; files.disabled = true;
      exclusive(async () => {
        if (session) throw new Error("This visit already uses keys made in this page; come back to use the saved ones.");
        const s1 = step("Opening the keys saved on this device…");
        let r;
        try {
          r = await crypto("openSaved", { model: name, spec: specJson, preprocessing: prepJson, passphrase });
        } catch (err) { s1.remove(); throw err; }
        kept = true;
        // A session made for another version of the model is not reused.
        session = r.version === card.version ? r.session : null;
        resumed = Boolean(session);
        done(s1, `Your saved keys were opened in this page in ${fmtMs(r.ms)} (passphrase stretched, key unsealed, evaluation keys made again in case their session is gone).`);
        form.replaceChildren(h("p", {}, `Using the keys saved on this device on ${when}. Drop images to query with them.`));
        if (!session) {
          try {
            await uploadKeys(await crypto("evalKeys"));
            await crypto("rememberSession", { model: name, session, version: card.version });
          } catch (err) {
            // No session for the saved keys: the next images make new keys
            // and a session of their own, closed when the user leaves.
            kept = false;
            throw err;
          }
        }
      }).catch((err) => {
        if (!form.contains(pass.el)) return; // opened: the failed step says why
        pass.err.textContent = err.message; pass.input.setAttribute("aria-invalid", "true"); pass.input.focus();
      }).finally(() => { submit.disabled = false; files.disabled = false; });
    } },
    h("h2", {}, "Keys saved on this device"),
    h("p", {}, `Your secret key for ${name} was saved in this browser on ${when}, sealed under your passphrase. Open it to query without new keys — and without uploading any while the platform still holds their session.`),
    pass.el,
    h("div", { class: "actions" }, submit, " ", forget));
    keep.replaceChildren(form);
  }

  async function forgetSaved() {
    try {
      const saved = await crypto("forgetSaved", { model: name });
      // Its session is of no use to anyone without the key.
      if (saved && saved.session && saved.session !== session) {
        fetch(`/v1/sessions/${encodeURIComponent(saved.session)}`, { method: "DELETE" }).catch(() => {});
      }
      kept = false;
      keep.replaceChildren(h("p", { class: "notice", role: "status" }, `The keys saved on this device for ${name} were deleted.`));
    } catch (e) {
      keep.append(h("p", { class: "notice bad", role: "alert" }, `The saved keys could not be deleted: ${e.message}`));
    }
  }

  function offerToKeep() {
    const pass = passField("keep-pass", "Passphrase (at least 12 characters)");
    const again = passField("keep-pass2", "The passphrase again");
    const status = h("div", { "aria-live": "polite" });
    const form = h("form", { class: "card", id: "keep-keys", novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      for (const f of [pass, again]) { f.err.textContent = ""; f.input.removeAttribute("aria-invalid"); }
      const bad = (f, msg) => { f.err.textContent = msg; f.input.setAttribute("aria-invalid", "true"); f.input.focus(); };
      if ([...pass.input.value].length < 12) return bad(pass, "At least 12 characters: the passphrase is all that protects the saved key.");
      if (pass.input.value !== again.input.value) return bad(again, "The two passphrases differ.");
      try {
        const r = await crypto("saveKey", { model: name, passphrase: pass.input.value, session, version: card.version });
        kept = true;
        // The keys saved before (if any) are replaced: their session goes.
        if (r.replaced && r.replaced !== session) {
          fetch(`/v1/sessions/${encodeURIComponent(r.replaced)}`, { method: "DELETE" }).catch(() => {});
        }
        form.replaceChildren(h("p", { class: "notice", role: "status" },
          `Saved on this device (${fmtBytes(r.bytes)}, sealed). The passphrase was not stored, and nothing was sent. `,
          "Your session stays open on the platform when you leave, so that a later visit can use these keys without uploading new ones."));
      } catch (err) { bad(pass, err.message); } finally { pass.input.value = ""; again.input.value = ""; }
    } },
    h("h2", {}, "Keep these keys on this device?"),
    h("p", {}, "Only if you ask. Your secret key is sealed in this page under a passphrase (Argon2id, XChaCha20-Poly1305) and stored in this browser (IndexedDB) for this model. Anyone who can read this browser's storage and knows the passphrase can decrypt your answers; without it, the saved key is useless."),
    pass.el, again.el, h("button", { type: "submit" }, "Save my keys (encrypted)"), status);
    keep.replaceChildren(form);
  }

  showSaved();
  loaded(true);

  async function run(list) {
    if (!(await cardLoaded)) return;
    const imgs = [...list].filter((f) => /\.(png|jpe?g)$/i.test(f.name) || /^image\/(png|jpeg)$/.test(f.type));
    if (!imgs.length) { steps.append(h("li", { "data-state": "failed", class: "error", role: "alert" }, "Choose PNG or JPEG images.")); return; }
    files.disabled = true;
    await exclusive(async () => {
      if (!session) await openSession();
      for (const f of imgs) { if (left) break; await classify(f); }
    }).catch(() => { /* the failed step says why */ });
    files.disabled = false;
  }
  function closeSession() {
    if (session && !kept) fetch(`/v1/sessions/${encodeURIComponent(session)}`, { method: "DELETE", keepalive: true }).catch(() => {});
    session = null;
  }
  leave = () => {
    left = true;
    closeSession();
    crypto("forget").catch(() => {});
  };
}

// ---------- Upload ----------

function field(label, input, hint) {
  const err = h("div", { class: "error", id: `${input.id}-error`, "aria-live": "polite" });
  input.setAttribute("aria-describedby", `${input.id}-error`);
  return { el: h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("small", { class: "muted" }, hint) : null, err), err, input };
}

function uploadPage() {
  const inp = (id, attrs) => h("input", { id, name: id, ...attrs });
  const f = {
    file: field("Model file (ONNX or safetensors)", inp("file", { type: "file", accept: ".onnx,.safetensors", required: true })),
    name: field("Name", inp("name", { required: true, autocomplete: "off" }), "Letters, digits, - _ . (at most 64)."),
    token: field("Creator token (only for a new version)", inp("token", { autocomplete: "off" })),
    task: field("Task", inp("task", { maxlength: 200 })),
    license: field("License", inp("license", { maxlength: 200 })),
    creator: field("Creator", inp("creator", { maxlength: 200 })),
    accuracy: field("Accuracy (0 to 1)", inp("accuracy", { inputmode: "decimal" })),
    domain: field("Input domain", inp("domain", { maxlength: 200 }), "Public data of this name lets the platform measure leakage (e.g. mnist)."),
    input_bound: field("Input bound", inp("input_bound", { inputmode: "decimal" }), "|x| ≤ bound after preprocessing; clients clamp to it."),
    head_layers: field("Layers the platform may hold", inp("head_layers", { inputmode: "numeric", placeholder: "all" }),
      "all (empty): the whole model, queried encrypted. K: only layers 1..K are uploaded; the rest stays with you (cipherflow model-host)."),
    normalize: field("Normalization (MEAN,STD or per channel)", inp("normalize", { placeholder: "from the file" }), "Replaces the file's."),
    classes: field("Class names, one per line", h("textarea", { id: "classes", name: "classes", rows: 4 }), "Replaces the file's."),
  };
  const status = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Upload");
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    for (const x of Object.values(f)) { x.err.textContent = ""; x.input.removeAttribute("aria-invalid"); }
    const bad = (k, msg) => { f[k].err.textContent = msg; f[k].input.setAttribute("aria-invalid", "true"); return true; };
    const v = (k) => f[k].input.value.trim();
    let invalid = false;
    if (!f.file.input.files.length) invalid = bad("file", "Choose the model file.") || invalid;
    if (!nameOk(v("name"))) invalid = bad("name", "A name of letters, digits, - _ . (at most 64, not starting with .).") || invalid;
    if (v("accuracy") && !(Number(v("accuracy")) >= 0 && Number(v("accuracy")) <= 1)) invalid = bad("accuracy", "A number from 0 to 1.") || invalid;
    if (v("input_bound") && !(Number(v("input_bound")) > 0 && Number(v("input_bound")) <= 1048576)) invalid = bad("input_bound", "A positive number, at most 1048576.") || invalid;
    if (v("head_layers") && v("head_layers") !== "all" && !/^[1-9][0-9]{0,5}$/.test(v("head_layers"))) invalid = bad("head_layers", "all, or a positive whole number.") || invalid;
    if (invalid) { form.querySelector("[aria-invalid=true]").focus(); return; }
    submit.disabled = true;
    status.replaceChildren(h("p", {}, "Preparing the file in this page…"));
    let prepared;
    try {
      const head = v("head_layers") && v("head_layers") !== "all" ? Number(v("head_layers")) : 0;
      prepared = await crypto("prepare", { bytes: await f.file.input.files[0].arrayBuffer(), head, normalize: v("normalize"), classes: f.classes.input.value });
    } catch (e) {
      const m = e.message.toLowerCase();
      const k = m.includes("head layers") ? "head_layers" : m.includes("class name") ? "classes" : m.includes("normaliz") || m.includes("mean") ? "normalize" : "file";
      bad(k, e.message);
      f[k].input.focus();
      status.replaceChildren(h("p", { class: "error", role: "alert" }, `Not uploaded: ${e.message}`));
      submit.disabled = false;
      return;
    }
    const p = new URLSearchParams({ name: v("name"), head_layers: String(prepared.headLayers) });
    if (prepared.headLayers < prepared.layers) { p.set("layers", prepared.layers); p.set("outputs", prepared.outputs); }
    for (const k of ["task", "license", "creator", "accuracy", "domain", "input_bound"]) if (v(k)) p.set(k, v(k));
    const headers = { "content-type": "application/octet-stream" };
    if (v("token")) headers["x-creator-token"] = v("token");
    status.replaceChildren(h("p", {}, `Uploading ${fmtBytes(prepared.bytes.byteLength)} (${prepared.headLayers} of ${prepared.layers} layers) and checking the model…`));
    try {
      const r = await api("POST", `/v1/models?${p}`, prepared.bytes, headers);
      status.replaceChildren(h("div", { class: "notice", role: "status" },
        h("p", { class: "ok" }, `Stored as ${r.model.name} v${r.model.version}: `, h("a", { href: `#/model/${encodeURIComponent(r.model.name)}` }, "its page")),
        r.creator_token ? h("p", {}, "Your creator token (shown once; needed for new versions and deletion): ", h("code", { class: "creator-token" }, r.creator_token)) : null));
    } catch (e) {
      // The platform's reason, beside the field it names when it names one.
      const m = e.message.toLowerCase();
      const k = m.includes("token") ? "token" : m.includes("name") ? "name" : m.includes("accuracy") ? "accuracy"
        : m.includes("bound") ? "input_bound" : m.includes("head") || m.includes("layers") ? "head_layers"
        : m.includes("domain") ? "domain" : m.includes("license") ? "license" : m.includes("task") ? "task" : "file";
      bad(k, e.message);
      f[k].input.focus();
      status.replaceChildren(h("p", { class: "error", role: "alert" }, `Not stored: ${e.message}`));
    } finally { submit.disabled = false; }
  } }, f.file.el, h("div", { class: "grid2" }, Object.entries(f).filter(([k]) => k !== "file").map(([, x]) => x.el)), submit);
  show("Upload a model", h("h1", {}, "Upload a model"),
    h("p", {}, "Your model file (ONNX, or safetensors from cipherflow train) is read in this page. Only the layers the platform may hold are uploaded, with the normalization and class names; the rest stays with you (serve it with cipherflow model-host)."),
    form, status);
}

// ---------- Federation ----------

function epsilonPlot(rounds, budget) {
  // ε spent after each round (line) against the budget (dashed).
  const W = 600, H = 220, L = 46, R = 16, T = 14, B = 30;
  const pts = rounds.filter((r) => r.epsilon != null);
  const top = Math.max(budget || 0, ...pts.map((r) => r.epsilon), 1e-9) * 1.1;
  const last = Math.max(1, ...rounds.map((r) => r.round));
  const x = (k) => L + (last === 1 ? 0.5 : (k - 1) / (last - 1)) * (W - L - R);
  const y = (v) => H - B - v / top * (H - T - B);
  const g = [
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#888" }),
    svg("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#888" }),
    svg("text", { x: 4, y: T + 6, "font-size": 11 }, `ε ${top.toFixed(2)}`),
    svg("text", { x: L, y: H - 8, "font-size": 11 }, "round 1"),
    svg("text", { x: W - R, y: H - 8, "font-size": 11, "text-anchor": "end" }, `round ${last}`),
  ];
  if (budget) g.push(svg("line", { x1: L, y1: y(budget), x2: W - R, y2: y(budget), stroke: "#b42318", "stroke-dasharray": "6 4" }),
    svg("text", { x: W - R, y: y(budget) - 4, "font-size": 11, "text-anchor": "end", fill: "#b42318" }, `budget ε = ${budget}`));
  if (pts.length) g.push(svg("polyline", { fill: "none", stroke: "#0b5cad", "stroke-width": 2, points: pts.map((r) => `${x(r.round)},${y(r.epsilon)}`).join(" ") }));
  for (const r of pts) g.push(svg("circle", { cx: x(r.round), cy: y(r.epsilon), r: 3.5, fill: "#0b5cad" }, svg("title", {}, `round ${r.round}: ε = ${r.epsilon.toFixed(3)}`)));
  return svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "ε spent over rounds against the budget" }, g);
}

async function dashboard(box) {
  let f;
  try {
    f = await api("GET", "/v1/federation");
  } catch (e) {
    box.replaceChildren(h("p", { class: e.status === 404 ? "muted" : "error", role: e.status === 404 ? null : "alert" },
      e.status === 404 ? "No federation is shown on this platform (cipherflow serve --federation-log LOG --federation-key LOG.pub)." : `Could not read the federation's ledger: ${e.message}`));
    return;
  }
  const rounds = f.rounds || [];
  const spent = rounds.filter((r) => r.epsilon != null).map((r) => r.epsilon);
  const now = spent.length ? spent[spent.length - 1] : null;
  const head = h("p", { id: "head-verdict", "aria-live": "polite" }, "Verifying the signed head in this page…");
  const mine = h("input", { type: "file", id: "head-key", accept: ".pub,text/plain" });
  const mineVerdict = h("p", { id: "head-key-verdict", "aria-live": "polite" });
  box.replaceChildren(
    h("dl", { class: "facts" },
      h("dt", {}, "Ledger"), h("dd", {}, `${f.name}, ${f.entries} entries under its signed head${f.unsigned_entries ? ` (${f.unsigned_entries} later ones not yet signed, not shown)` : ""}`),
      h("dt", {}, "Rounds"), h("dd", {}, String(rounds.length)),
      h("dt", {}, "ε spent"), h("dd", {}, now == null ? "—" : `${now.toFixed(3)}${f.epsilon_budget ? ` of ${f.epsilon_budget}` : ""}`),
      h("dt", {}, "Public key"), h("dd", { class: "mono" }, f.public_key)),
    head,
    h("div", { class: "field" }, h("label", { for: "head-key" }, "Check the head with your own copy of the ledger's key (PREFIX.pub): the platform could name any key"), mine),
    mineVerdict,
    epsilonPlot(rounds, f.epsilon_budget),
    h("div", { class: "scroll" }, h("table", { id: "rounds" },
      h("thead", {}, h("tr", {}, ["round", "participants", "updates", "summed", "dropouts", "ε after", "closed"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rounds.map((r) => h("tr", {},
        h("th", { scope: "row" }, String(r.round)), h("td", {}, String(r.participants)), h("td", {}, String(r.updates)),
        h("td", {}, String(r.summed)), h("td", { class: r.dropouts ? "warn" : "" }, String(r.dropouts)),
        h("td", { class: f.epsilon_budget && r.epsilon > f.epsilon_budget ? "error" : "" }, r.epsilon == null ? "—" : r.epsilon.toFixed(3)),
        h("td", {}, r.closed ? "yes" : "open")))))));
  if (!f.signed_head) { head.textContent = "The ledger has no signed head yet."; mine.disabled = true; return; }
  const sth = JSON.stringify(f.signed_head);
  const check = async (el, key, whose) => {
    try {
      const v = await crypto("verifyHead", { head: sth, publicKey: key });
      el.className = "ok";
      el.removeAttribute("role");
      el.textContent = `Signed head verified in this page with ${whose}: ${v.tree_size} entries, root ${v.root_hash.slice(0, 16)}…, signed ${new Date(v.timestamp_ms).toISOString()}.`;
    } catch (e) {
      el.className = "error";
      el.setAttribute("role", "alert");
      el.textContent = `The signed head does not verify with ${whose}: ${e.message}`;
    }
  };
  mine.addEventListener("change", async () => {
    if (mine.files.length) await check(mineVerdict, await mine.files[0].text(), "your key");
  });
  await check(head, f.public_key, `the key the platform names (${f.public_key.slice(0, 16)}…)`);
}

function federationPage() {
  const board = h("div", { id: "dashboard", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const proof = h("input", { type: "file", id: "proof", accept: ".json,application/json" });
  const key = h("input", { type: "file", id: "pubkey", accept: ".pub,text/plain" });
  const out = h("div", { "aria-live": "polite", id: "verdict" });
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    if (!proof.files.length || !key.files.length) { out.replaceChildren(h("p", { class: "error", role: "alert" }, "Choose the proof file and the log's public key file.")); return; }
    out.replaceChildren(h("p", {}, "Verifying in this page…"));
    try {
      const r = await crypto("verify", { proof: await proof.files[0].text(), publicKey: await key.files[0].text() });
      const c = r.verified.counted;
      out.replaceChildren(h("div", { class: "notice", role: "status" }, h("p", { class: "ok verified" },
        c ? `Verified: client ${c.client_id}'s update in round ${c.round} was logged (entry ${c.update_index}) and summed into the round's aggregate (entry ${c.aggregate_index}, ${c.input_count} inputs), under a signed head of ${c.tree_size} entries.`
          : `Verified: the entry is in the log of ${r.verified.tree_size} entries.`),
        h("pre", { class: "mono" }, JSON.stringify(r.verified, null, 2))));
    } catch (err) {
      out.replaceChildren(h("div", { class: "notice bad", role: "alert" }, h("p", { class: "error" }, `Not verified: ${err.message}`)));
    }
  } },
  h("div", { class: "field" }, h("label", { for: "proof" }, "Proof file (cipherflow audit prove LOG --client ID --round R --out proof.json)"), proof),
  h("div", { class: "field" }, h("label", { for: "pubkey" }, "The log's public key (PREFIX.pub), from a source you trust"), key),
  h("button", { type: "submit" }, "Verify"));
  show("Federation", h("h1", {}, "Federation"), board,
    h("h2", {}, "Verify that my update was counted"),
    h("p", {}, "The coordinator's ledger signs its head; a proof shows your update's entry under that head and its place among the aggregate's inputs. It is checked here, with nothing sent."),
    form, out);
  dashboard(board);
}

// ---------- routing ----------

let leave = null;

function route() {
  if (leave) { leave(); leave = null; }
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch (_) {
    parts = ["not-found"];
  }
  const page = parts[0] || "repository";
  for (const a of document.querySelectorAll("nav a")) {
    a.toggleAttribute("aria-current", a.dataset.nav === page || (page === "model" && a.dataset.nav === "repository"));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  if (page === "repository") return repositoryPage(new URLSearchParams(query || ""));
  if (page === "model" && parts[1]) return modelPage(parts[1]);
  if (page === "query" && parts[1]) return queryPage(parts[1]);
  if (page === "upload") return uploadPage();
  if (page === "federation") return federationPage();
  show("Not found", h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the models")));
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
