// Key generation of two builds of the browser client, alternating batch by
// batch in one node process (bench/web_ab.sh): the first module's and the
// second's `Bench.keygen` (secret, public and relinearization keys at
// N = 8192), 25 batches of 20 each after a warm-up; prints the medians and
// their ratio (second / first).
const path = require("path");
const [a, b] = process.argv.slice(2).map((d) => new (require(path.resolve(d, "cf.js")).Bench)());
for (let i = 0; i < 30; i++) { a.keygen(); b.keygen(); }
const ta = [], tb = [];
const batch = (m, out) => {
  const t = performance.now();
  for (let i = 0; i < 20; i++) m.keygen();
  out.push((performance.now() - t) / 20);
};
for (let k = 0; k < 25; k++) { batch(a, ta); batch(b, tb); }
const med = (x) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
console.log(`key generation, median ms: first ${med(ta).toFixed(3)}, second ${med(tb).toFixed(3)}, ` +
  `second / first ${(med(tb) / med(ta)).toFixed(3)}`);
