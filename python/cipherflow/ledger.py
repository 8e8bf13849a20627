"""Offline verification of the audit log's proofs, with only the log's
public key: that an entry is in the log (``entry_proof``) or that a
client's update was logged and summed into a round's aggregate
(``counted_proof``, "my update was counted"). The same check as
``cipherflow audit verify-proof``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Union

from . import _native

__all__ = ["verify_proof"]

PathOrText = Union[str, "os.PathLike[str]"]


def _text(x: Union[PathOrText, Dict[str, Any]]) -> str:
    if isinstance(x, dict):
        return json.dumps(x)
    if isinstance(x, os.PathLike) or (isinstance(x, str) and os.path.isfile(x)):
        with open(x, encoding="utf-8") as f:
            return f.read()
    return str(x)


def verify_proof(
    proof: Union[PathOrText, Dict[str, Any]],
    public_key: PathOrText,
    log_id: Optional[str] = None,
) -> Dict[str, Any]:
    """Verifies ``proof`` (a proof file's path, its JSON text, or the parsed
    dict) against ``public_key`` (the ``.pub`` file's path or text);
    ``log_id`` (hex) pins the log. Returns ``{"type": ..., **detail}``:
    for a counted proof ``detail["counted"]`` names the client, the round,
    the update's ciphertext hash and the aggregate it went into.

    Raises :class:`cipherflow.ProofError` if the proof does not verify,
    :class:`cipherflow.LedgerError` if it or the key does not parse.
    """
    kind, detail = _native.ledger_verify_proof(_text(proof), _text(public_key), log_id)
    out: Dict[str, Any] = {"type": kind}
    out.update(json.loads(detail))
    return out
