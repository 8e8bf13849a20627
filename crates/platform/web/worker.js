// The page's cryptography, off the page's thread: cipherflow's client
// compiled to WebAssembly (crates/wasm). The secret key lives in this
// worker's memory, and on this device only when the user asks: sealed by
// the module under their passphrase, in IndexedDB. What the worker posts
// back is evaluation keys, ciphertexts, preprocessed values for display,
// and decrypted scores.
import init, { Client, prepareUpload, sealedInfo, verifyHead, verifyProof } from "/ui/pkg/cipherflow.js";

// The module uses WebAssembly SIMD128 (ChaCha20, the Gaussian sampler):
// a browser without it cannot compile the module, and is told why.
const ready = init({ module_or_path: "/ui/pkg/cipherflow_bg.wasm" }).catch((e) => {
  throw new Error("This browser cannot run the client: it needs WebAssembly with SIMD128 " +
    `(Chrome or Edge 91, Firefox 89, Safari 16.4 or later). ${e && e.message ? e.message : e}`);
});
let client = null;

function forget() {
  if (client) { client.free(); client = null; }
}

// Keys kept on this device: IndexedDB "cipherflow", store "keys", one
// record per model — { model, sealed (the module's sealed secret key),
// session and version (the platform's session for its evaluation keys,
// and the model version it serves), savedAt }. The passphrase is never
// stored.
function keyStore(mode, f) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("cipherflow", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys", { keyPath: "model" });
    open.onerror = () => reject(open.error || new Error("the browser's storage cannot be opened"));
    open.onblocked = () => reject(new Error("the browser's storage is in use by another page"));
    open.onsuccess = () => {
      const db = open.result;
      try {
        const t = db.transaction("keys", mode);
        const req = f(t.objectStore("keys"));
        t.oncomplete = () => { db.close(); resolve(req ? req.result : undefined); };
        t.onerror = t.onabort = () => { db.close(); reject(t.error || new Error("the browser's storage refused")); };
      } catch (e) { db.close(); reject(e); }
    };
  });
}

// A session id as the platform makes them (128 bits, hex); anything else
// read back from storage is dropped, not put in a URL.
const sessionId = (s) => (typeof s === "string" && /^[0-9a-f]{32}$/.test(s) ? s : null);

const ops = {
  // Loads the module ahead of the first key generation.
  async ready() { return { value: true }; },
  // Checks the model's spec, makes keys; answers the evaluation keys.
  async keys({ spec, preprocessing }) {
    forget();
    const t = performance.now();
    client = new Client(spec, preprocessing ?? undefined);
    const keygenMs = performance.now() - t;
    const evalKeys = client.evalKeys();
    return { value: { evalKeys, keygenMs, rotations: client.rotations(), shape: Array.from(client.inputShape()) }, transfer: [evalKeys.buffer] };
  },
  // A dropped file: preprocessed and encrypted in one step, so that the
  // plaintext values never need to leave the worker.
  async encryptImage({ name, bytes }) {
    if (!client) throw new Error("no keys yet");
    const t = performance.now();
    const x = client.preprocessImage(name, new Uint8Array(bytes));
    const ct = client.encrypt(x);
    return { value: { ct, ms: performance.now() - t }, transfer: [ct.buffer] };
  },
  async decrypt({ answer }) {
    if (!client) throw new Error("no keys yet");
    return { value: Array.from(client.decrypt(new Uint8Array(answer))) };
  },
  async verifyHead({ head, publicKey }) {
    return { value: JSON.parse(verifyHead(head, publicKey)) };
  },
  async verify({ proof, publicKey }) {
    return { value: JSON.parse(verifyProof(proof, publicKey)) };
  },
  // A model file made ready for upload: only the layers the platform may
  // hold, with the creator's normalization and class names.
  async prepare({ bytes, head, normalize, classes }) {
    const p = prepareUpload(new Uint8Array(bytes), head, normalize, classes);
    try {
      const out = p.bytes();
      return { value: { bytes: out, layers: p.layers(), headLayers: p.headLayers(), outputs: p.outputs() }, transfer: [out.buffer] };
    } finally { p.free(); }
  },
  async forget() { forget(); return { value: true }; },
  // The evaluation keys of the keys in memory (a new session for them).
  async evalKeys() {
    if (!client) throw new Error("no keys yet");
    const k = client.evalKeys();
    return { value: k, transfer: [k.buffer] };
  },
  // What is saved for a model (its format checked), without the key.
  async savedKey({ model }) {
    const r = await keyStore("readonly", (s) => s.get(model));
    if (!r) return { value: null };
    let damaged = null;
    try {
      if (!(r.sealed instanceof Uint8Array)) throw new Error("not a sealed key");
      if (JSON.parse(sealedInfo(r.sealed)).model !== model) throw new Error("saved for another model");
    } catch (e) { damaged = String(e && e.message ? e.message : e); }
    return { value: { savedAt: String(r.savedAt), session: sessionId(r.session), damaged } };
  },
  // Seals the keys in memory under the user's passphrase and stores them;
  // answers the session of the keys it replaced, if any.
  async saveKey({ model, passphrase, session, version }) {
    if (!client) throw new Error("no keys yet");
    const sealed = client.seal(model, passphrase);
    let replaced = null;
    await keyStore("readwrite", (s) => {
      const g = s.get(model);
      g.onsuccess = () => {
        replaced = g.result ? sessionId(g.result.session) : null;
        s.put({ model, sealed, session, version, savedAt: new Date().toISOString() });
      };
      return g;
    });
    return { value: { bytes: sealed.byteLength, replaced } };
  },
  // Opens a model's saved key with its passphrase; the stored record is
  // left as it was whether or not it opens.
  async openSaved({ model, spec, preprocessing, passphrase }) {
    const r = await keyStore("readonly", (s) => s.get(model));
    if (!r) throw new Error("no key is saved for this model");
    const t = performance.now();
    const opened = Client.fromSealed(spec, preprocessing ?? undefined, model, r.sealed, passphrase);
    forget();
    client = opened;
    return { value: { ms: performance.now() - t, session: sessionId(r.session), version: r.version } };
  },
  // The saved key's new session (after the platform dropped the old one).
  async rememberSession({ model, session, version }) {
    await keyStore("readwrite", (s) => {
      const g = s.get(model);
      g.onsuccess = () => { if (g.result) s.put({ ...g.result, session, version }); };
      return g;
    });
    return { value: true };
  },
  // Deletes a model's saved key; answers its session, if any.
  async forgetSaved({ model }) {
    let old = null;
    await keyStore("readwrite", (s) => {
      const g = s.get(model);
      g.onsuccess = () => { old = g.result ? sessionId(g.result.session) : null; s.delete(model); };
      return g;
    });
    return { value: { session: old } };
  },
};

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  try {
    await ready;
    const f = ops[op];
    if (!f) throw new Error(`unknown operation ${op}`);
    const { value, transfer } = await f(args || {});
    self.postMessage({ id, ok: true, value }, transfer || []);
  } catch (err) {
    self.postMessage({ id, ok: false, error: String(err && err.message ? err.message : err) });
  }
};
