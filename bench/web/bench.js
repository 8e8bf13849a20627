// The browser benchmark's page (bench/web.sh): cipherflow's client
// (crates/wasm, the module the platform's pages load) and node-seal
// (Microsoft SEAL 4.x in WebAssembly) run the same CKKS operations at
// N = 8192, moduli 60, 40, 40 | 60 bits, scale 2^40, 4096 values, in the
// same page, alternating rep by rep. Then cipherflow's key generation for
// given model specs (the repository's MNIST CNN heads): secret, public,
// relinearization and exactly the spec's Galois keys, and the time to seal
// the secret key for the device and to open it again.
import initOurs, { Bench, Client } from "/crates/platform/web/pkg/cipherflow.js";
import SEAL from "/bench/web/node_modules/node-seal/dist/index_throws.js";

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const time = (f) => { const t = performance.now(); f(); return performance.now() - t; };

async function run(reps, specs) {
  await initOurs({ module_or_path: "/crates/platform/web/pkg/cipherflow_bg.wasm" });
  const seal = await SEAL();
  const parms = new seal.EncryptionParameters(seal.SchemeType.ckks);
  parms.setPolyModulusDegree(8192);
  parms.setCoeffModulus(seal.CoeffModulus.Create(8192, Int32Array.from([60, 40, 40, 60])));
  const ctx = new seal.SEALContext(parms, true, seal.SecLevelType.tc128);
  const encoder = new seal.CKKSEncoder(ctx);
  const ours = new Bench();
  const values = Float64Array.from({ length: 4096 }, (_, i) => Math.sin(i) * 8);
  const t = { ours: { keygen: [], encrypt: [], decrypt: [] }, seal: { keygen: [], encrypt: [], decrypt: [] } };
  const err = { ours: 0, seal: 0 };
  for (let r = 0; r < reps + 1; r++) {
    const keep = r > 0; // the first rep warms both up
    // cipherflow
    const k1 = time(() => ours.keygen());
    ours.prepare(); // as SEAL's Encryptor and Decryptor below: untimed
    const e1 = time(() => ours.encrypt(values));
    let out;
    const d1 = time(() => { out = ours.decrypt(); });
    for (let i = 0; i < values.length; i++) err.ours = Math.max(err.ours, Math.abs(out[i] - values[i]));
    // SEAL
    let kg, pk, rk, sk;
    const k2 = time(() => { kg = new seal.KeyGenerator(ctx); pk = kg.createPublicKey(); rk = kg.createRelinKeys(); sk = kg.secretKey(); });
    const enc = new seal.Encryptor(ctx, pk);
    const dec = new seal.Decryptor(ctx, sk);
    const pt = new seal.Plaintext(), ct = new seal.Ciphertext(), pt2 = new seal.Plaintext();
    const e2 = time(() => { encoder.encode(values, 2 ** 40, pt); enc.encrypt(pt, ct); });
    let out2;
    const d2 = time(() => { dec.decrypt(ct, pt2); out2 = encoder.decodeFloat64(pt2); });
    for (let i = 0; i < values.length; i++) err.seal = Math.max(err.seal, Math.abs(out2[i] - values[i]));
    for (const x of [kg, pk, rk, enc, dec, pt, ct, pt2]) x.delete();
    ours.clear(); // our keys freed (secrets zeroized) outside the timing, as SEAL's above
    if (keep) {
      t.ours.keygen.push(k1); t.ours.encrypt.push(e1); t.ours.decrypt.push(d1);
      t.seal.keygen.push(k2); t.seal.encrypt.push(e2); t.seal.decrypt.push(d2);
    }
  }
  const quantile = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(p * (s.length - 1))]; };
  const rows = ["keygen", "encrypt", "decrypt"].map((op) => {
    // Each rep ran both libraries back to back: its ratio is paired.
    const paired = t.ours[op].map((x, i) => x / t.seal[op][i]);
    return {
      op, ours_ms: median(t.ours[op]), seal_ms: median(t.seal[op]), ratio: median(t.ours[op]) / median(t.seal[op]),
      paired_ratio: median(paired), paired_quartiles: [quantile(paired, 0.25), quantile(paired, 0.75)],
    };
  });
  // The clock's step: the smallest nonzero difference of two successive
  // readings, over many (one reading can straddle a preemption).
  let step = Infinity;
  for (let i = 0, last = performance.now(); i < 200000; i++) {
    const now = performance.now();
    if (now > last) step = Math.min(step, now - last);
    last = now;
  }
  const heads = [];
  for (const { name, spec } of specs) {
    const ms = [];
    let rotations = 0, keyBytes = 0;
    for (let r = 0; r < Math.min(reps, 3); r++) {
      let c;
      ms.push(time(() => { c = new Client(spec); }));
      rotations = c.rotations();
      keyBytes = c.evalKeys().length;
      c.free();
    }
    // Keys kept on the device: sealed under a passphrase (Argon2id,
    // XChaCha20-Poly1305), then opened, which makes the evaluation keys
    // again.
    const pass = "a benchmark's passphrase";
    const c = new Client(spec);
    let sealed, opened;
    const sealMs = time(() => { sealed = c.seal("bench", pass); });
    const openMs = time(() => { opened = Client.fromSealed(spec, undefined, "bench", sealed, pass); });
    c.free(); opened.free();
    heads.push({ name, rotations, key_bytes: keyBytes, keygen_ms: median(ms), seal_ms: sealMs, open_ms: openMs, sealed_bytes: sealed.length });
  }
  return { reps, rows, max_error: err, heads, clock_step_ms: Number(step.toPrecision(2)), cross_origin_isolated: self.crossOriginIsolated, user_agent: navigator.userAgent };
}

window.runBench = (reps, specs) => run(reps, specs).then((r) => JSON.stringify(r), (e) => JSON.stringify({ error: String(e && e.stack || e) }));
document.body.dataset.ready = "1";
