#!/usr/bin/env bash
# Crash test of the audit ledger (cipherflow-ledger): a writer process is
# SIGKILLed at random points 100 times while appending (single entries and
# batches); the log must then open, verify, and hold every entry whose
# append had returned. Prints one summary line. About 15-60 s.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test -p cipherflow-ledger --test crash -- --ignored crash_100_kills --nocapture
