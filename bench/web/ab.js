// One operation of two builds of the browser client, alternating batch by
// batch in one node process (bench/web_ab.sh): the first module's and the
// second's `Bench` at N = 8192, 25 batches of 20 each after a warm-up;
// prints the medians and their ratio (second / first).
//
// Usage: node ab.js OP FIRST SECOND, OP one of
//   keygen   secret, public and relinearization keys
//   encrypt  encode and encrypt a vector under the public key
//   decrypt  decrypt and decode that vector's ciphertext
const path = require("path");
const [op, ...dirs] = process.argv.slice(2);
const ops = {
  keygen: (m) => m.keygen(),
  encrypt: (m, v) => m.encrypt(v),
  decrypt: (m) => m.decrypt(),
};
if (!ops[op] || dirs.length !== 2) {
  console.error("usage: node ab.js keygen|encrypt|decrypt FIRST SECOND");
  process.exit(2);
}
const [a, b] = dirs.map((d) => new (require(path.resolve(d, "cf.js")).Bench)());
const values = Array.from({ length: a.slots() }, (_, i) => Math.sin(i));
for (const m of [a, b]) { m.keygen(); m.prepare(); m.encrypt(values); }
const run = (m) => ops[op](m, values);
for (let i = 0; i < 30; i++) { run(a); run(b); }
const ta = [], tb = [];
const batch = (m, out) => {
  const t = performance.now();
  for (let i = 0; i < 20; i++) run(m);
  out.push((performance.now() - t) / 20);
};
for (let k = 0; k < 25; k++) { batch(a, ta); batch(b, tb); }
const med = (x) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
console.log(`${op}, median ms: first ${med(ta).toFixed(3)}, second ${med(tb).toFixed(3)}, ` +
  `second / first ${(med(tb) / med(ta)).toFixed(3)}`);
