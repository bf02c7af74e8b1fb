#!/usr/bin/env bash
# The full chaos matrix: every row of tests/test_chaos.py's table, the ones
# CI leaves out included (azureml-core's own retries wait tens of seconds per
# fault), then a long upload with the production stale threshold (60 s):
# the ensemble example (more files, so more requests) at 45 s per blob request. Prints each row's result and the run's length.
set -euo pipefail
cd "$(dirname "$0")/.."
CHAOS=full .venv/bin/python -m pytest -q -p no:logging -rA tests/test_chaos.py "$@"
CHAOS_STALE_AFTER=60 CHAOS_UPLOAD_PER_REQUEST=45 CHAOS_UPLOAD_EXAMPLE=ensemble .venv/bin/python -m pytest -q -p no:logging -s \
  tests/test_azure_engine_faults.py -k upload_longer
