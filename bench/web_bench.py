"""Drives bench/web/index.html in headless chromium (bench/web.sh): serves
the repository's files on 127.0.0.1 (the page loads cipherflow's module
from crates/platform/web/pkg/ and node-seal from bench/web/node_modules/),
runs both libraries in the same page, and writes one JSON line of results.

Usage: python bench/web_bench.py --reps 15 --specs specs.json --out results.jsonl
"""

import argparse
import functools
import http.server
import json
import pathlib
import shutil
import threading

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Files(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript"}

    def log_message(self, *args):
        pass

    def end_headers(self):
        # Cross-origin isolation: the browser's clock then has microsecond
        # steps, not the 0.1 ms it gives other pages (a tenth of a
        # decryption's time).
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--specs", help="JSON list of {name, spec} (model heads' input specs)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    specs = json.loads(pathlib.Path(a.specs).read_text()) if a.specs else []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Files, directory=str(ROOT)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/bench/web/index.html"
    o = webdriver.ChromeOptions()
    o.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage"]:
        o.add_argument(arg)
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)
    try:
        d.set_script_timeout(3600)
        d.get(url)
        WebDriverWait(d, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        r = json.loads(d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.runBench(arguments[0], arguments[1]).then(done);", a.reps, specs))
    finally:
        d.quit()
        server.shutdown()
    if "error" in r:
        raise SystemExit(f"the page failed: {r['error']}")
    r["browser"] = r.pop("user_agent")
    with open(a.out, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(f"CKKS N=8192, moduli 60,40,40|60, 4096 values, median of {a.reps} (same page, same run; "
          f"clock step {r['clock_step_ms']} ms):")
    print(f"{'operation':<10} {'cipherflow ms':>14} {'node-seal ms':>13} {'ours/seal':>10} {'paired':>8} {'(quartiles)':>14}")
    for row in r["rows"]:
        q1, q3 = row["paired_quartiles"]
        print(f"{row['op']:<10} {row['ours_ms']:>14.3f} {row['seal_ms']:>13.3f} {row['ratio']:>10.3f} "
              f"{row['paired_ratio']:>8.3f} {f'({q1:.3f}–{q3:.3f})':>14}")
    print("ours/seal: ratio of the medians; paired: median of each rep's ratio (the two libraries back to back)")
    print(f"largest decryption error: cipherflow {r['max_error']['ours']:.2e}, node-seal {r['max_error']['seal']:.2e}")
    for h in r["heads"]:
        print(f"keys for {h['name']}: {h['keygen_ms']:.0f} ms ({h['rotations']} Galois keys, {h['key_bytes']} bytes of evaluation keys); "
              f"saved on the device: sealed in {h['seal_ms']:.0f} ms ({h['sealed_bytes']} bytes), opened in {h['open_ms']:.0f} ms")


if __name__ == "__main__":
    main()
