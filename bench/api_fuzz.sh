#!/usr/bin/env bash
# The full API fuzzing run: 200 examples per operation, each sent with every
# role's token (make test runs 20). Prints schemathesis's findings, if any, with a curl line each.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-200}" .venv/bin/python -m pytest -q tests/test_api_fuzz.py "$@"
