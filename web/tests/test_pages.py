"""The platform's pages in a real browser (Debian's chromium, driven by
chromedriver) against a `cipherflow serve` the test starts over TLS on
127.0.0.1: a creator uploads a model through the Upload page, a user finds
it, opens its page and queries it encrypted from the Query page; the
classes equal what `cipherflow query` decides on the same images, and the
browser's network logs (DevTools' for the page, Chromium's NetLog for every
byte the browser sent, the worker's included) show that no request carried
the images, their preprocessed values or anything beside the evaluation
keys and the ciphertexts. The Federation page verifies a proof from `cipherflow audit
prove` and refuses a forged one. Screenshots of each page, at desktop and
phone width, go to target/web-screenshots/.

Run by scripts/test (CIPHERFLOW_BIN: the binary under test). Skipped,
saying so, where chromium or chromedriver is not installed.
"""

import base64
import gzip
import hashlib
import json
import os
import pathlib
import shutil
import ssl
import struct
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("CIPHERFLOW_BIN", str(ROOT / "target/debug/cipherflow"))
IMAGES = ROOT / "crates/nn/tests/fixtures/byo/images"
SHOTS = pathlib.Path(os.environ.get("CIPHERFLOW_SCREENSHOTS", ROOT / "target/web-screenshots"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# CI installs them and sets CIPHERFLOW_REQUIRE_BROWSER=1: there a missing
# browser fails the run instead of skipping it.
if not (CHROMIUM and DRIVER) and os.environ.get("CIPHERFLOW_REQUIRE_BROWSER") == "1":
    raise RuntimeError("CIPHERFLOW_REQUIRE_BROWSER=1 but chromium or chromedriver is missing")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)


def run(args, cwd, check=True):
    p = subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"cipherflow {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """A platform on a free port, its URL and its directory; the server's
    public key pinned for the browser (its SPKI hash), as a user who
    checked the certificate would."""
    d = tmp_path_factory.mktemp("platform")
    # A federation's audit ledger for the dashboard (three rounds).
    run(["audit", "demo-log", "--out", "fl.log", "--key", "fl", "--rounds", "3", "--clients", "4"], d)
    # Public data of the domain "digits" (the shipped digits as an IDX
    # image file), on which the platform measures plain-tail leakage.
    with gzip.open(ROOT / "data/digits.csv.gz", "rt") as f:
        rows = [[int(v) for v in line.split(",")[:64]] for line in f if line.strip()]
    header = bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in (len(rows), 8, 8))
    (d / "digits-idx3-ubyte").write_bytes(header + bytes(round(v * 255 / 16) for r in rows for v in r))
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", "127.0.0.1:0", "--repo", "repo", "--federation-log", "fl.log",
         "--federation-key", "fl.pub", "--epsilon-budget", "3",
         "--public", "digits=digits-idx3-ubyte", "--public-epochs", "2"],
        cwd=d, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = proc.stdout.readline()
    url = next(w for w in line.split() if w.startswith("https://"))
    der = subprocess.run(
        ["openssl", "x509", "-in", str(d / "repo/tls/server.pem"), "-pubkey", "-noout"],
        capture_output=True, check=True,
    ).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der,
                          capture_output=True, check=True).stdout
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    yield {"url": url, "dir": d, "pin": pin, "ca": str(d / "repo/tls/ca.pem")}
    proc.kill()
    proc.wait()


def browser(pin, width=1200, height=900, extra=()):
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--ignore-certificate-errors-spki-list={pin}", f"--window-size={width},{height}", *extra]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    d.execute_cdp_cmd("Network.enable", {"maxPostDataSize": 64 << 20})
    return d


@pytest.fixture(scope="module")
def chrome(platform):
    d = browser(platform["pin"])
    yield d
    d.quit()


def wait(d, cond, timeout=60):
    try:
        return WebDriverWait(d, timeout, poll_frequency=0.1).until(cond)
    except TimeoutException:
        # What the page showed, for the failure's report.
        print(f"waited {timeout} s at {d.current_url}; the page said:")
        print(d.find_element(By.ID, "main").text)
        raise


def shot(d, name):
    """The whole page (the window stretched to its height for the shot)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = d.get_window_size()
    height = d.execute_script("return document.documentElement.scrollHeight")
    if height > size["height"] and not name.startswith("phone"):
        d.set_window_size(size["width"], min(height + 120, 4000))
    d.save_screenshot(str(SHOTS / f"{name}.png"))
    d.set_window_size(size["width"], size["height"])


def requests_sent(d):
    """Every request the page and its worker made since the last call:
    (method, url, body bytes or None), from the DevTools network log."""
    out = []
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] != "Network.requestWillBeSent":
            continue
        r = m["params"]["request"]
        body = None
        if r.get("hasPostData"):
            entries = r.get("postDataEntries")
            if entries and all("bytes" in x for x in entries):
                body = b"".join(base64.b64decode(x["bytes"]) for x in entries)
            else:
                got = d.execute_cdp_cmd("Network.getRequestPostData",
                                        {"requestId": m["params"]["requestId"]})
                body = (base64.b64decode(got["postData"]) if got.get("base64Encoded")
                        else got["postData"].encode("latin-1"))
        out.append((r["method"], r["url"], body))
    return out


def responses(d):
    """(url, encoded bytes on the wire) of every response finished."""
    urls, sizes = {}, []
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        p = m["params"]
        if m["method"] == "Network.responseReceived":
            urls[p["requestId"]] = p["response"]["url"]
        elif m["method"] == "Network.loadingFinished":
            sizes.append((urls.get(p["requestId"], "?"), p["encodedDataLength"]))
    return sizes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A creator's model trained by the CLI on their own images."""
    d = tmp_path_factory.mktemp("creator")
    run(["train", "--data", str(IMAGES), "--model", "logreg", "--epochs", "5",
         "--out", "m.safetensors", "--json"], d)
    return d / "m.safetensors"


def test_upload_page_validates_and_stores_a_model(platform, chrome, trained):
    d = chrome
    d.get(platform["url"] + "/#/upload")
    wait(d, lambda d: d.find_elements(By.ID, "name"))
    # Errors beside their fields, before anything is sent.
    d.find_element(By.ID, "name").send_keys("bad name!")
    d.find_element(By.ID, "accuracy").send_keys("1.5")
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert "A name of letters" in d.find_element(By.ID, "name-error").text
    assert "from 0 to 1" in d.find_element(By.ID, "accuracy-error").text
    assert "Choose the model file" in d.find_element(By.ID, "file-error").text
    assert d.find_element(By.ID, "name").get_attribute("aria-invalid") == "true"
    shot(d, "upload-errors")
    # A class list that does not fit the model is refused in the page.
    d.find_element(By.ID, "file").send_keys(str(trained))
    for k, v in {"name": "digits", "accuracy": "0.9", "task": "digit classification",
                 "license": "Apache-2.0", "creator": "browser test lab",
                 "normalize": "0.3052,0.3749"}.items():
        el = d.find_element(By.ID, k)
        el.clear()
        el.send_keys(v)
    d.find_element(By.ID, "classes").send_keys("a\nb\nc")
    requests_sent(d)
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(d, lambda d: "class names" in d.find_element(By.ID, "classes-error").text)
    assert not [u for m, u, _ in requests_sent(d) if m != "GET"], "the refused file was sent"
    d.find_element(By.ID, "classes").clear()
    d.find_element(By.ID, "classes").send_keys("eight\nfive\nthree\nzero")
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    token = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".creator-token"))[0].text
    assert len(token) >= 32
    shot(d, "upload")
    # A second version without the creator's token: the platform's refusal
    # shown beside the token field.
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(d, lambda d: d.find_element(By.ID, "token-error").text)
    assert "token" in d.find_element(By.ID, "token-error").text.lower()


def test_repository_lists_searches_and_opens_the_model(platform, chrome):
    d = chrome
    d.get(platform["url"] + "/")
    card = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".cards .card"))[0]
    assert "digits" in card.text and "he" in card.text and "browser test lab" in card.text
    shot(d, "repository")
    search = d.find_element(By.CSS_SELECTOR, "input[type=search]")
    search.send_keys("no-such-model", Keys.ENTER)
    wait(d, lambda d: "No model matches" in d.find_element(By.CSS_SELECTOR, ".cards").text)
    search = d.find_element(By.CSS_SELECTOR, "input[type=search]")
    search.clear()
    search.send_keys("digit", Keys.ENTER)
    wait(d, lambda d: "q=digit" in d.current_url)
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".cards .card h3 a"))[0].click()
    wait(d, lambda d: "Query it" in d.find_element(By.ID, "main").text, timeout=120)
    text = d.find_element(By.ID, "main").text
    assert "eight, five, three, zero" in text and "Apache-2.0" in text
    shot(d, "model")


def test_model_page_shows_the_splits(platform, chrome, tmp_path):
    """A model whose creator keeps its tail (mpc mode only): the split
    table with the recommended split, the figures of the heads prepared so
    far, the plot; its Query page says why it cannot be queried here."""
    run(["model", "upload", "--server", platform["url"], "--ca", platform["ca"],
         "--model", str(ROOT / "data/models/digits-cnn.safetensors"), "--name", "digits-cnn",
         "--head-layers", "4", "--input-bound", "1", "--task", "digit classification",
         "--creator", "browser test lab"], tmp_path)
    ctx = ssl.create_default_context(cafile=platform["ca"])
    for k in (1, 2):  # the platform prepares (and measures) a head when asked for it
        urllib.request.urlopen(f"{platform['url']}/v1/models/digits-cnn/splits/{k}", context=ctx, timeout=300).read()
    d = chrome
    d.get(platform["url"] + "/#/model/digits-cnn")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tbody tr"), timeout=120)
    rows = d.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 4, [r.text for r in rows]
    assert "recommended" in rows[0].text and "recommended" in rows[0].get_attribute("class")
    cells = [[c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in rows]
    assert cells[0][1].endswith("ms") and cells[0][3].endswith("MiB"), cells[0]
    # The heads prepared so far (at least the two asked for; the platform
    # may have prepared more) have figures and a bar; the others a dash.
    measured = [c for c in cells if c[1] != "—"]
    assert len(measured) >= 2 and all(c[1].endswith("ms") for c in measured), cells
    assert all(c[1:5] == ["—"] * 4 for c in cells if c[1] == "—"), cells
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.plot rect")) == len(measured)
    shot(d, "model-splits")
    # The split chooser: the recommended split is chosen, and choosing
    # another gives the command that queries at it.
    command = d.find_element(By.ID, "split-command")
    assert "--mode mpc --split 1 " in command.text and "digits-cnn" in command.text, command.text
    assert d.find_element(By.ID, "split-1").is_selected()
    d.find_element(By.ID, "split-3").click()
    wait(d, lambda d: "--mode mpc --split 3 " in d.find_element(By.ID, "split-command").text)
    assert not d.find_element(By.ID, "split-1").is_selected()
    d.get(platform["url"] + "/#/query/digits-cnn")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-state=failed]"))
    assert "cannot be queried encrypted here" in d.find_element(By.ID, "main").text
    assert d.find_element(By.ID, "images").get_attribute("disabled")


def test_model_page_shows_what_an_inversion_recovers(platform, chrome, tmp_path):
    """A model uploaded with its domain: the platform measures the
    plain-tail leakage of its splits on the domain's public data; the page
    shows the SSIM and PSNR columns and, drawn from the card's 8-bit
    pixels, the held-out input and each split's reconstruction."""
    run(["model", "upload", "--server", platform["url"], "--ca", platform["ca"],
         "--model", str(ROOT / "data/models/digits-cnn.safetensors"), "--name", "digits-leak",
         "--head-layers", "2", "--input-bound", "1", "--domain", "digits"], tmp_path)
    ctx = ssl.create_default_context(cafile=platform["ca"])
    card = {}
    deadline = time.time() + 600
    while time.time() < deadline:
        card = json.load(urllib.request.urlopen(f"{platform['url']}/v1/models/digits-leak", context=ctx, timeout=60))
        if card["plain_tail"]["status"].startswith(("measured", "failed")):
            break
        time.sleep(1)
    assert card["plain_tail"]["status"] == "measured at 2 splits", card["plain_tail"]
    leak = card["plain_tail"]["leakage"]
    assert [l["k"] for l in leak] == [1, 2] and all(l["example"]["shape"] == [1, 8, 8] for l in leak)
    d = chrome
    d.get(platform["url"] + "/#/model/digits-leak")
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".examples canvas")) == 3)
    cells = [[c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in d.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert [c[-2] for c in cells[:2]] == [f"{l['ssim']:.3f}" for l in leak], cells
    assert all(c[-1].endswith("dB") for c in cells[:2]), cells
    captions = [f.text for f in d.find_elements(By.CSS_SELECTOR, ".examples figcaption")]
    assert captions == ["input"] + [f"split {l['k']}: SSIM {l['ssim']:.2f}" for l in leak], captions
    # The canvases hold exactly the card's pixels (grey: R = G = B).
    drawn = d.execute_script("""
        return [...document.querySelectorAll('.examples canvas')].map((c) => {
          const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          return [c.width, c.height, Array.from({ length: c.width * c.height }, (_, i) => px[4 * i])];
        });""")
    assert drawn[0] == [8, 8, leak[0]["example"]["original"]]
    assert [x[2] for x in drawn[1:]] == [l["example"]["reconstruction"] for l in leak]
    assert leak[0]["example"]["reconstruction"] != leak[0]["example"]["original"]
    shot(d, "model-leakage")


def test_keyboard_reaches_every_page(platform, chrome):
    d = chrome
    d.get(platform["url"] + "/#/")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "nav a"))
    # From the top of the page: the skip link first, then the header.
    d.execute_script("document.querySelector('.skip').focus()")
    assert d.switch_to.active_element.get_attribute("textContent") == "Skip to content"
    seen = []
    for _ in range(4):
        d.switch_to.active_element.send_keys(Keys.TAB)
        seen.append(d.switch_to.active_element.get_attribute("textContent"))
    assert seen == ["cipherflow", "Models", "Upload", "Federation"]
    d.switch_to.active_element.send_keys(Keys.ENTER)
    wait(d, lambda d: "Verify that my update was counted" in d.find_element(By.ID, "main").text)
    wait(d, lambda d: d.find_elements(By.ID, "head-key"))
    # Each page moves the focus to its content, and its controls follow.
    assert d.switch_to.active_element.get_attribute("id") == "main"
    d.switch_to.active_element.send_keys(Keys.TAB)
    assert d.switch_to.active_element.get_attribute("id") == "head-key"
    # (Keys sent to a file input would be read as a file name.)
    ActionChains(d).send_keys(Keys.TAB).perform()
    assert d.switch_to.active_element.get_attribute("id") == "proof"


def test_encrypted_query_matches_the_cli_and_sends_no_plaintext(platform, chrome, tmp_path):
    d = chrome
    images = sorted(IMAGES.glob("*/*.png"))
    d.get(platform["url"] + "/#/query/digits")
    wait(d, lambda d: d.find_elements(By.ID, "images"))
    requests_sent(d)  # what loading the page sent: no bodies
    responses(d)
    d.find_element(By.ID, "images").send_keys("\n".join(str(p) for p in images))
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-class]")) == len(images)
         or d.find_elements(By.CSS_SELECTOR, "[data-state=failed]"), timeout=300)
    assert not d.find_elements(By.CSS_SELECTOR, "[data-state=failed]"), d.find_element(By.ID, "main").text
    shot(d, "query")
    browser_classes = {
        s.get_attribute("data-file"): s.find_element(By.CSS_SELECTOR, ".result-class").text
        for s in d.find_elements(By.CSS_SELECTOR, "[data-class]")
    }
    assert "What left this device" in d.find_element(By.ID, "main").text

    # The CLI's query on the same files (a user in another directory).
    folder = tmp_path / "images"
    shutil.copytree(IMAGES, folder)
    out = run(["query", "--server", platform["url"], "--ca", platform["ca"], "--model", "digits", "--mode", "he",
               "--input", str(folder), "--json"], tmp_path)
    rows = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    cli = {r["id"].split("/")[-1]: r["class_name"] for r in rows if "id" in r}
    assert cli == browser_classes, (cli, browser_classes)
    summary = rows[-1]

    # What the browser sent, from its network log.
    sent = requests_sent(d)
    posts = [(u, b) for m, u, b in sent if m == "POST"]
    assert all(u.startswith(platform["url"]) for _, u, _ in sent), "a request left the platform's origin"
    # Exactly these requests, no other (no GET carrying data in its URL).
    got = sorted((m, session_route(u[len(platform["url"]):])) for m, u, _ in sent)
    want = sorted([("POST", "/v1/models/digits/sessions")] + [("POST", "/v1/sessions/ID/infer")] * len(images))
    assert got == want, got
    keys = [b for u, b in posts if u.endswith("/v1/models/digits/sessions")]
    queries = [b for u, b in posts if u.endswith("/infer")]
    assert len(keys) == 1 and len(queries) == len(images), [u for u, _ in posts]
    assert len(posts) == 1 + len(images), [u for u, _ in posts]
    assert keys[0][:4] == b"CFEK" and all(q[:4] == b"CFET" for q in queries)
    # Exactly the sizes of the CLI's evaluation keys and ciphertexts: the
    # strict encodings of public, relinearization and Galois keys and of one
    # ciphertext, with no room for anything else (a secret key, an input).
    assert len(keys[0]) == summary["key_bytes"], (len(keys[0]), summary)
    assert all(len(q) == summary["upload_bytes"] for q in queries), (len(queries[0]), summary)
    # No body holds an image's bytes or its preprocessed values (as f64 or
    # f32, the forms a leak would take).
    bodies = b"".join(b for _, b in posts)
    for p in images:
        raw = p.read_bytes()
        assert raw[16:80] not in bodies
        assert raw[len(raw) // 2: len(raw) // 2 + 48] not in bodies
    x = [(v - 0.3052) / 0.3749 for v in (0.0, 1.0)]
    for v in x:
        assert struct.pack("<8d", *[v] * 8) not in bodies
        assert struct.pack("<16f", *[v] * 16) not in bodies

    # Leaving the page closes its session (these keys were not kept): the
    # platform drops the evaluation keys at once.
    sid = next(u for u, _ in posts if u.endswith("/infer")).split("/")[-2]
    d.get(platform["url"] + "/#/")
    deleted = []
    wait(d, lambda d: deleted.extend(u for m, u, _ in requests_sent(d) if m == "DELETE") or deleted, timeout=10)
    assert deleted == [f"{platform['url']}/v1/sessions/{sid}"], deleted



# Chromium's own services (sync, updates, time, autofill) kept quiet, so
# that what the browser sends is the page's and its worker's.
QUIET = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-default-apps", "--disable-domain-reliability", "--no-pings"]


def netlog_events(path):
    """The events of a Chromium NetLog file, with their type names. The
    browser closes the file as it exits: until then (a slow exit) the
    text is retried, and a log left open ends after its last whole event."""
    for _ in range(50):
        try:
            log = json.loads(path.read_text())
            break
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.2)
    else:
        text = path.read_text().rstrip()
        log = json.loads(text[:text.rfind("}") + 1].rstrip(",") + "]}")
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    return [dict(e, name=names.get(e["type"], "?")) for e in log["events"]]


def netlog_browser(pin, log):
    """A browser writing every byte it sends and receives to the NetLog
    file `log`, Chromium's own services quiet."""
    return browser(pin, extra=[f"--log-net-log={log}", "--net-log-capture-mode=Everything", *QUIET])


def socket_peers(events):
    """The address each socket of the log connected to, by its source id."""
    return {e["source"]["id"]: e["params"]["address_list"] for e in events
            if e["name"] == "TCP_CONNECT" and (e.get("params") or {}).get("address_list")}


def session_route(path):
    """A request path with its session id replaced by ID."""
    if path.startswith("/v1/sessions/") and path.endswith("/infer"):
        return "/v1/sessions/ID/infer"
    return path


def http_requests(stream):
    """HTTP/1.1 requests parsed from the plaintext a TLS socket sent:
    (method, path, headers, body), every byte accounted for."""
    out = []
    while stream:
        head, sep, rest = stream.partition(b"\r\n\r\n")
        assert sep, f"bytes outside any request: {stream[:80]!r}"
        line, *fields = head.decode("latin-1").split("\r\n")
        method, path, version = line.split(" ")
        assert version == "HTTP/1.1", line
        headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        assert "transfer-encoding" not in headers, headers
        n = int(headers.get("content-length", "0"))
        assert len(rest) >= n, f"{method} {path}: {len(rest)} bytes of a {n}-byte body"
        out.append((method, path, headers, rest[:n]))
        stream = rest[n:]
    return out


def test_the_whole_browser_sends_only_keys_and_ciphertexts(platform, tmp_path):
    """The browser's own network log (NetLog, every byte any part of
    Chromium sent, TLS plaintext included): the page's and the worker's
    requests, the worker's module download among them, go to the platform
    only, and every byte they sent is HTTP framing or a body the server
    parsed as evaluation keys or a ciphertext. No byte the browser sent
    anywhere (TLS, plain TCP, UDP) holds an image or its preprocessed
    values."""
    log = tmp_path / "netlog.json"
    d = netlog_browser(platform["pin"], log)
    images = sorted(IMAGES.glob("*/*.png"))[:2]
    try:
        d.get(platform["url"] + "/#/query/digits")
        wait(d, lambda d: d.find_elements(By.ID, "images"))
        d.find_element(By.ID, "images").send_keys("\n".join(str(p) for p in images))
        wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-class]")) == len(images)
             or d.find_elements(By.CSS_SELECTOR, "[data-state=failed]"), timeout=300)
        assert not d.find_elements(By.CSS_SELECTOR, "[data-state=failed]"), d.find_element(By.ID, "main").text
    finally:
        d.quit()  # writes the log's end
    events = netlog_events(log)
    origin = platform["url"]

    # Every request the page or its worker started went to the platform;
    # the others are the browser's own (no page initiated them).
    starts = [e["params"] for e in events if e["name"] == "URL_REQUEST_START_JOB" and e.get("params", {}).get("url")]
    ours = [(p["method"], p["url"][len(origin):]) for p in starts if p["url"].startswith(origin + "/")]
    for p in starts:
        if not p["url"].startswith(origin + "/"):
            assert p.get("initiator") in (None, "not an origin"), f"the page sent {p['method']} {p['url']}"
    assert ("GET", "/ui/pkg/cipherflow_bg.wasm") in ours, ours  # the worker's own download
    assert ("GET", "/ui/worker.js") in ours, ours

    # The plaintext of every TLS connection the browser opened, by socket.
    sent, peer = {}, socket_peers(events)
    for e in events:
        if e["name"] == "SSL_SOCKET_BYTES_SENT":
            sent.setdefault(e["source"]["id"], []).append(base64.b64decode(e["params"]["bytes"]))
    port = origin.rsplit(":", 1)[1]
    assert sent, "the log holds no TLS plaintext (capture mode)"
    requests = []
    for src, chunks in sent.items():
        assert peer.get(src) == [f"127.0.0.1:{port}"], f"TLS data to {peer.get(src)}"
        requests += http_requests(b"".join(chunks))
    assert (sorted((m, session_route(p)) for m, p, _, _ in requests)
            == sorted((m, session_route(p.split("#")[0])) for m, p in ours))
    posts = [(session_route(p), b) for m, p, _, b in requests if m == "POST"]
    assert sorted(r for r, _ in posts) == ["/v1/models/digits/sessions"] + ["/v1/sessions/ID/infer"] * len(images)
    assert all(not b for m, _, _, b in requests if m != "POST")
    for r, b in posts:
        assert b[:4] == (b"CFEK" if r.endswith("/sessions") else b"CFET"), (r, b[:8])
    assert len({len(b) for r, b in posts if r.endswith("/infer")}) == 1
    # Headers: Chromium's own, short, none carrying data.
    for m, p, h, _ in requests:
        assert sum(len(k) + len(v) for k, v in h.items()) < 2048, (m, p, h)

    # Nothing anywhere holds the images or their preprocessed values.
    every = b"".join(base64.b64decode(e["params"]["bytes"]) for e in events
                     if e["name"].endswith("BYTES_SENT") and e.get("params", {}).get("bytes"))
    for p in images:
        raw = p.read_bytes()
        assert raw[16:80] not in every
        assert raw[len(raw) // 2: len(raw) // 2 + 48] not in every
    for v in [(v - 0.3052) / 0.3749 for v in (0.0, 1.0)]:
        assert struct.pack("<8d", *[v] * 8) not in every
        assert struct.pack("<16f", *[v] * 16) not in every


def saved_record(d, model):
    """What the page saved in IndexedDB for `model`: its fields, its
    session, its sealed bytes; None when nothing is saved."""
    r = d.execute_async_script("""
        const [model, done] = [arguments[0], arguments[arguments.length - 1]];
        const open = indexedDB.open("cipherflow", 1);
        open.onupgradeneeded = () => open.result.createObjectStore("keys", { keyPath: "model" });
        open.onerror = () => done({ error: String(open.error) });
        open.onsuccess = () => {
          const g = open.result.transaction("keys").objectStore("keys").get(model);
          g.onsuccess = () => {
            const r = g.result;
            open.result.close();
            if (!r) return done(null);
            let bin = "";
            for (const b of r.sealed) bin += String.fromCharCode(b);
            done({ fields: Object.keys(r).sort(), session: r.session, model: r.model,
                   text: JSON.stringify({ ...r, sealed: null }), sealed: btoa(bin) });
          };
        };
    """, model)
    if r is not None:
        assert "error" not in r, r
        r["sealed"] = base64.b64decode(r["sealed"])
    return r


def fill(d, field_id, text):
    el = d.find_element(By.ID, field_id)
    el.clear()
    el.send_keys(text)
    return el


def query_images(d, images, settle="[data-class]"):
    d.find_element(By.ID, "images").send_keys("\n".join(str(p) for p in images))
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, settle)) == len(images)
         or d.find_elements(By.CSS_SELECTOR, "[data-state=failed]"), timeout=300)
    assert not d.find_elements(By.CSS_SELECTOR, "[data-state=failed]"), d.find_element(By.ID, "main").text
    return {s.get_attribute("data-file"): s.find_element(By.CSS_SELECTOR, ".result-class").text
            for s in d.find_elements(By.CSS_SELECTOR, "[data-class]")}


def test_keys_saved_on_the_device_only_sealed_and_reused(platform, chrome):
    """The user asks to keep their keys: they are sealed under a passphrase
    and stored in the browser (never sent); a later visit opens them with
    the passphrase and queries without new keys while the platform holds
    the session, makes a new session for them when it no longer does, and
    refuses a wrong passphrase without losing them; "Forget" deletes them."""
    d = chrome
    url = platform["url"]
    passphrase = "a long passphrase, for this test"
    images = sorted(IMAGES.glob("*/*.png"))

    def revisit(ready):
        d.get(url + "/#/")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#main h1"))
        d.get(url + "/#/query/digits")
        wait(d, lambda d: d.find_elements(By.ID, ready))

    revisit("images")
    assert saved_record(d, "digits") is None
    requests_sent(d)
    first = query_images(d, images)
    bodies = {u[len(url):].split("/")[-1]: b for m, u, b in requests_sent(d) if m == "POST"}
    key_bytes, ct_bytes = len(bodies["sessions"]), len(bodies["infer"])
    # Offered, not done: nothing is saved until the user asks.
    wait(d, lambda d: d.find_elements(By.ID, "keep-keys"))
    assert saved_record(d, "digits") is None
    # Too short, then two that differ: refused beside the field.
    fill(d, "keep-pass", "short pass")
    fill(d, "keep-pass2", "short pass").submit()
    wait(d, lambda d: "12 characters" in d.find_element(By.ID, "keep-pass-error").text)
    fill(d, "keep-pass", passphrase)
    fill(d, "keep-pass2", passphrase + "!").submit()
    wait(d, lambda d: "differ" in d.find_element(By.ID, "keep-pass2-error").text)
    assert saved_record(d, "digits") is None
    requests_sent(d)
    fill(d, "keep-pass", passphrase)
    fill(d, "keep-pass2", passphrase).submit()
    wait(d, lambda d: "Saved on this device" in d.find_element(By.ID, "keep").text)
    assert requests_sent(d) == [], "saving sent something"
    rec = saved_record(d, "digits")
    assert rec["fields"] == ["model", "savedAt", "sealed", "session", "version"], rec["fields"]
    assert rec["sealed"][:5] == b"CFSK\x01" and len(rec["sealed"]) > 1000
    session = rec["session"]
    assert len(session) == 32
    for form in (passphrase.encode(), passphrase.encode("utf-16-le")):
        assert form not in rec["sealed"] and form not in rec["text"].encode()

    # Later (the page left and reopened): the session was not closed, the
    # saved keys are offered; a wrong passphrase is refused and nothing is
    # lost.
    revisit("saved-keys")
    assert not [r for r in requests_sent(d) if r[0] != "GET"], "leaving closed or sent something"
    fill(d, "open-pass", passphrase[:-1]).submit()
    wait(d, lambda d: "wrong" in d.find_element(By.ID, "open-pass-error").text)
    assert d.find_element(By.ID, "open-pass").get_attribute("aria-invalid") == "true"
    assert saved_record(d, "digits")["sealed"] == rec["sealed"]
    fill(d, "open-pass", passphrase).submit()
    wait(d, lambda d: "Using the keys saved on this device" in d.find_element(By.ID, "keep").text)
    shot(d, "query-saved-keys")
    requests_sent(d)
    again = query_images(d, images)
    assert again == first, (again, first)
    sent = requests_sent(d)
    # Only the encrypted inputs: no new keys, no new session.
    assert sorted(m for m, _, _ in sent) == ["POST"] * len(images), [(m, u) for m, u, _ in sent]
    assert all(u == f"{url}/v1/sessions/{session}/infer" and b[:4] == b"CFET" for _, u, b in sent)
    # Exactly a ciphertext's size each, as on the first visit.
    assert all(len(b) == ct_bytes for _, _, b in sent), [len(b) for _, _, b in sent]
    bodies = b"".join(b for _, _, b in sent)
    assert rec["sealed"][-64:] not in bodies and passphrase.encode() not in bodies
    assert "no keys" in d.find_element(By.ID, "main").text

    # The platform dropped the session (a restart, an eviction): the saved
    # key gets a new session, with evaluation keys made for it again.
    d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(`/v1/sessions/${arguments[0]}`, { method: "DELETE" }).then((r) => done(r.status));
    """, session)
    revisit("saved-keys")
    fill(d, "open-pass", passphrase).submit()
    wait(d, lambda d: "Using the keys saved on this device" in d.find_element(By.ID, "keep").text)
    requests_sent(d)
    assert query_images(d, images[:1]) == {images[0].name: first[images[0].name]}
    sent = requests_sent(d)
    routes = [(m, u[len(url):]) for m, u, _ in sent]
    assert [r for r in routes if r[1] == "/v1/models/digits/sessions"] == [("POST", "/v1/models/digits/sessions")], routes
    keys = next(b for m, u, b in sent if u.endswith("/v1/models/digits/sessions"))
    assert keys[:4] == b"CFEK" and len(keys) == key_bytes
    renewed = saved_record(d, "digits")
    assert renewed["sealed"] == rec["sealed"] and renewed["session"] not in (None, session)
    assert ("POST", f"/v1/sessions/{renewed['session']}/infer") in routes

    # Saved for another version of the model (its record says so): that
    # session is not reused; the keys open and get a new one at once.
    d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const open = indexedDB.open("cipherflow", 1);
        open.onsuccess = () => {
          const s = open.result.transaction("keys", "readwrite").objectStore("keys");
          const g = s.get("digits");
          g.onsuccess = () => { s.put({ ...g.result, version: 0 }).onsuccess = () => { open.result.close(); done(true); }; };
        };
    """)
    revisit("saved-keys")
    requests_sent(d)
    fill(d, "open-pass", passphrase).submit()
    wait(d, lambda d: "Evaluation keys uploaded" in d.find_element(By.ID, "main").text)
    routes = [(m, u[len(url):]) for m, u, _ in requests_sent(d)]
    assert ("POST", "/v1/models/digits/sessions") in routes, routes
    wait(d, lambda d: saved_record(d, "digits")["session"] != renewed["session"])
    renewed = saved_record(d, "digits")
    assert renewed["text"].count('"version":1') == 1, renewed["text"]

    # Forgotten: the record deleted, and its session closed on the platform.
    revisit("saved-keys")
    requests_sent(d)
    d.find_element(By.ID, "forget-keys").click()
    wait(d, lambda d: "were deleted" in d.find_element(By.ID, "keep").text)
    assert saved_record(d, "digits") is None
    deleted = []
    wait(d, lambda d: deleted.extend(u for m, u, _ in requests_sent(d) if m == "DELETE") or deleted, timeout=10)
    assert deleted == [f"{url}/v1/sessions/{renewed['session']}"], deleted


def test_first_load_weighs_under_2_mb(platform, tmp_path):
    """A first visit (empty profile) to the query page until its module is
    ready, from Chromium's NetLog: every byte received over TLS from the
    platform (headers and gzip bodies), the worker's own downloads of its
    module included."""
    log = tmp_path / "netlog.json"
    d = netlog_browser(platform["pin"], log)
    try:
        d.get(platform["url"] + "/#/query/digits")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".drop[data-ready='1']"), timeout=120)
    finally:
        d.quit()
    events = netlog_events(log)
    urls, wire, total = {}, {}, 0
    for e in events:
        src, p = e["source"]["id"], e.get("params") or {}
        if e["name"] == "URL_REQUEST_START_JOB" and p.get("url"):
            urls[src] = p["url"]
        elif e["name"] == "URL_REQUEST_JOB_BYTES_READ":
            wire[src] = wire.get(src, 0) + p.get("byte_count", 0)
    port = platform["url"].rsplit(":", 1)[1]
    peers = socket_peers(events)
    for e in events:
        if e["name"] == "SSL_SOCKET_BYTES_RECEIVED" and peers.get(e["source"]["id"]) == [f"127.0.0.1:{port}"]:
            total += e["params"]["byte_count"]
    got = sorted((urls[s][len(platform["url"]):], n) for s, n in wire.items()
                 if urls.get(s, "").startswith(platform["url"]))
    names = {u for u, _ in got}
    assert {"/ui/app.js", "/ui/worker.js", "/ui/pkg/cipherflow.js", "/ui/pkg/cipherflow_bg.wasm",
            "/ui/pkg/cipherflow_web.js", "/ui/pkg/cipherflow_web_bg.wasm"} <= names, got
    assert sum(n for _, n in got) <= total, (got, total)
    print(f"first load of the query page: {total} bytes received from the platform (bodies on the wire: {got})")
    assert total <= 2_000_000, got


def test_federation_dashboard_and_counted_proof(platform, chrome, tmp_path):
    shutil.copy(platform["dir"] / "fl.log", tmp_path / "fl.log")
    shutil.copy(platform["dir"] / "fl.pub", tmp_path / "fl.pub")
    log = json.loads(run(["audit", "show", "fl.log", "--json"], tmp_path).stdout)
    client = next(e["body"]["client_id"] for e in log["listed"]["entries"]
                  if e["body"]["type"] == "update_received")
    run(["audit", "prove", "fl.log", "--client", client, "--round", "1", "--out", "proof.json"], tmp_path)
    cli = json.loads(run(["audit", "verify-proof", "proof.json", "--key", "fl.pub", "--json"], tmp_path).stdout)
    assert cli["ok"] and cli["detail"]["counted"]["client_id"] == client
    forged = json.loads((tmp_path / "proof.json").read_text())
    text = json.dumps(forged)
    # Change one hex digit of the signed head's root: the signature fails.
    root = forged["sth"]["root_hash"]
    forged["sth"]["root_hash"] = ("0" if root[0] != "0" else "1") + root[1:]
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert text != json.dumps(forged)

    d = chrome
    d.get(platform["url"] + "/#/federation")
    wait(d, lambda d: d.find_elements(By.ID, "proof"))
    # The dashboard: the ledger's rounds, and its signed head verified in
    # the page with the ledger's key.
    wait(d, lambda d: "verified in this page" in d.find_element(By.ID, "head-verdict").text
         or "does not verify" in d.find_element(By.ID, "head-verdict").text)
    assert f"{log['entries']} entries" in d.find_element(By.ID, "head-verdict").text
    rows = d.find_elements(By.CSS_SELECTOR, "#rounds tbody tr")
    assert [r.find_element(By.TAG_NAME, "th").text for r in rows] == ["1", "2", "3"]
    cells = rows[0].find_elements(By.TAG_NAME, "td")
    assert [c.text for c in cells[:4]] == ["4", "4", "4", "0"]
    assert d.find_elements(By.CSS_SELECTOR, "svg.plot polyline")
    assert "of 3" in d.find_element(By.ID, "dashboard").text
    # The user's own copy of the key: the head verifies; another log's key
    # (what a platform naming a key of its choosing would be caught by) does not.
    d.find_element(By.ID, "head-key").send_keys(str(tmp_path / "fl.pub"))
    wait(d, lambda d: "with your key" in d.find_element(By.ID, "head-key-verdict").text)
    assert "verified" in d.find_element(By.ID, "head-key-verdict").text
    run(["audit", "keygen", "--out", "other"], tmp_path)
    d.find_element(By.ID, "head-key").send_keys(str(tmp_path / "other.pub"))
    wait(d, lambda d: "does not verify" in d.find_element(By.ID, "head-key-verdict").text)
    d.find_element(By.ID, "proof").send_keys(str(tmp_path / "proof.json"))
    d.find_element(By.ID, "pubkey").send_keys(str(tmp_path / "fl.pub"))
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".verified") or d.find_elements(By.CSS_SELECTOR, "#verdict .error"))
    verdict = d.find_element(By.ID, "verdict").text
    assert f"client {client}'s update in round 1" in verdict, verdict
    # The page's verdict is the CLI's: the same facts established.
    shown = json.loads(d.find_element(By.CSS_SELECTOR, "#verdict pre").text)
    assert shown == cli["detail"], (shown, cli)
    shot(d, "federation")
    sent = requests_sent(d)
    assert not [u for m, u, _ in sent if m == "POST"], "verification sent something"
    d.find_element(By.ID, "proof").send_keys(str(tmp_path / "forged.json"))
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#verdict .error"))
    assert "Not verified" in d.find_element(By.ID, "verdict").text


def test_pages_fit_a_phone(platform):
    d = browser(platform["pin"], width=390, height=844)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    try:
        for page in ["", "model/digits", "query/digits", "upload", "federation"]:
            d.get(f"{platform['url']}/#/{page}")
            wait(d, lambda d: d.find_element(By.ID, "main").text.strip() and "Loading" not in d.find_element(By.ID, "main").text, timeout=120)
            overflow = d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{page or 'repository'}: {overflow} px wider than the phone"
            shot(d, f"phone-{page.split('/')[0] or 'repository'}")
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        d.quit()
