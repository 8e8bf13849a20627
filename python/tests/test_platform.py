"""cipherflow.torch.query against a real `cipherflow serve` and the
creator's `cipherflow model-host`, separate processes over TLS on
127.0.0.1: the same classes as the CLI's `query` in he and mpc modes, a
host that is not the pinned one refused, plain-tail refused until its
leakage is accepted."""

import json
import pathlib
import subprocess

import numpy as np
import pytest

pytest.importorskip("torch")
import cipherflow.torch as ct  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
BYO = ROOT / "crates" / "nn" / "tests" / "fixtures" / "byo"


class Proc:
    def __init__(self, args, cwd):
        self.p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, text=True)

    def line(self):
        return self.p.stdout.readline()

    def stop(self):
        self.p.kill()
        self.p.wait()


@pytest.fixture(scope="module")
def platform(cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("platform")
    for d in ("platform", "creator", "user"):
        (root / d).mkdir()
    serve = Proc(
        [cli, "serve", "--listen", "127.0.0.1:0", "--repo", "repo",
         "--public", f"digits={BYO / 'inputs-idx3-ubyte.gz'}", "--public-epochs", "1"],
        root / "platform",
    )
    url = next(w for w in serve.line().split() if w.startswith("https://"))
    ca = root / "platform" / "repo" / "tls" / "ca.pem"
    model = BYO / "digits_norm_cnn_plain.onnx"

    def run(cwd, *args):
        out = subprocess.run([cli, *args], cwd=root / cwd, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return out.stdout

    for name, head in (("digits-all", "all"), ("digits", "2")):
        run("creator", "model", "upload", "--server", url, "--ca", str(ca), "--model", str(model),
            "--name", name, "--head-layers", head, "--domain", "digits", "--normalize", "0.3052,0.3749")
    host = Proc(
        [cli, "model-host", "--server", url, "--ca", str(ca), "--model", "digits", "--tail", str(model)],
        root / "creator",
    )
    fingerprint = json.loads(host.line())["fingerprint"]
    yield dict(url=url, ca=ca, run=run, fingerprint=fingerprint)
    host.stop()
    serve.stop()


def cli_classes(platform, model, mode):
    out = platform["run"](
        "user", "query", "--server", platform["url"], "--ca", str(platform["ca"]), "--model", model,
        "--mode", mode, "--input", str(BYO / "inputs.npy"), "--json",
    )
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return [l["class"] for l in lines[:-1]]


def test_he_mode_gives_the_cli_classes(platform):
    images = np.load(BYO / "inputs.npy")
    answer = ct.query(platform["url"], "digits-all", images, ca=platform["ca"], mode="he")
    assert answer.classes == cli_classes(platform, "digits-all", "he")
    assert answer.scores.shape == (8, 10)
    assert all(b > 0 for b in answer.upload_bytes)


def test_mpc_mode_gives_the_cli_classes_and_pins_the_host(platform):
    images = np.load(BYO / "inputs.npy")
    with ct.PlatformSession(
        platform["url"], "digits", ca=platform["ca"], host_fingerprint=platform["fingerprint"]
    ) as s:
        assert s.mode == "mpc" and s.split in (1, 2)  # the recommended split
        assert "secret-shared" in s.description
        answer = s.classify(images)
    assert answer.classes == cli_classes(platform, "digits", "mpc")
    assert all(b > 0 for b in answer.mpc_bytes)
    # A host whose certificate is not the pinned one is refused.
    with pytest.raises(ct.PlatformError, match="(?i)fingerprint|certificate"):
        ct.query(platform["url"], "digits", images[:1], ca=platform["ca"], host_fingerprint="00" * 32)


def test_plain_tail_is_refused_until_its_leakage_is_accepted(platform):
    images = np.load(BYO / "inputs.npy")[:2]
    with pytest.raises(ct.PlatformError) as e:
        for _ in range(300):  # the leakage job runs after the upload
            try:
                ct.query(platform["url"], "digits", images, ca=platform["ca"], mode="plain-tail", split=1)
            except ct.PlatformError as err:
                if "SSIM" in str(err):
                    raise
                import time

                time.sleep(0.1)
    assert "SSIM" in str(e.value) and "mpc" in str(e.value)
    answer = ct.query(platform["url"], "digits", images, ca=platform["ca"], mode="plain-tail",
                      split=1, accept_leakage=True)
    assert answer.classes == cli_classes(platform, "digits", "mpc")[:2]
    with pytest.raises(ct.PlatformError, match="mode"):
        ct.query(platform["url"], "digits", images, ca=platform["ca"], mode="cleartext")
