// The page's cryptography, off the page's thread: cipherflow's client
// compiled to WebAssembly (crates/wasm). The secret key lives only in this
// worker's memory; what it posts back is evaluation keys, ciphertexts,
// preprocessed values for display, and decrypted scores.
import init, { Client, prepareUpload, verifyHead, verifyProof } from "/ui/pkg/cipherflow.js";

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
