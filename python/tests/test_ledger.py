"""cipherflow.ledger on a log the CLI writes: a counted proof verifies, a
tampered one does not, keys and proofs that do not parse are refused."""

import json
import subprocess

import pytest

import cipherflow
from cipherflow import ledger


@pytest.fixture(scope="module")
def proof(cli, tmp_path_factory):
    d = tmp_path_factory.mktemp("ledger")
    subprocess.run([cli, "audit", "demo-log", "--out", str(d / "demo.db"), "--key", str(d / "log")],
                   check=True, capture_output=True)
    subprocess.run([cli, "audit", "prove", str(d / "demo.db"), "--client", "client-3", "--round", "1",
                    "--out", str(d / "proof.json")], check=True, capture_output=True)
    return d / "proof.json", d / "log.pub"


def test_a_counted_proof_verifies_from_files_text_or_dict(proof):
    path, key = proof
    for p in (path, str(path), path.read_text(), json.loads(path.read_text())):
        r = ledger.verify_proof(p, key)
        assert r["type"] == "counted_proof"
        assert r["counted"]["client_id"] == "client-3"
        assert r["counted"]["round"] == 1


def test_a_tampered_proof_does_not_verify(proof):
    path, key = proof
    p = json.loads(path.read_text())
    p["input_position"] = p["input_position"] + 1
    with pytest.raises(cipherflow.ProofError):
        ledger.verify_proof(p, key)


def test_another_logs_key_does_not_verify(proof, cli, tmp_path):
    path, _ = proof
    subprocess.run([cli, "audit", "keygen", "--out", str(tmp_path / "other")], check=True,
                   capture_output=True)
    with pytest.raises(cipherflow.ProofError):
        ledger.verify_proof(path, tmp_path / "other.pub")


@pytest.mark.parametrize(
    "proof_text,key_ok",
    [("not json", True), ('{"type": "nonsense"}', True), ('{"type": "counted_proof"}', True),
     (None, False)],
)
def test_what_does_not_parse_is_a_ledger_error(proof, proof_text, key_ok):
    path, key = proof
    text = path.read_text() if proof_text is None else proof_text
    k = key if key_ok else "cipherflow-ledger-public-key-v1 zz"
    with pytest.raises(cipherflow.LedgerError) as e:
        ledger.verify_proof(text, k)
    assert not isinstance(e.value, cipherflow.ProofError)
