#!/usr/bin/env bash
# The full chaos matrix: every row of tests/test_chaos.py's table, the ones
# CI leaves out included (azureml-core's own retries wait tens of seconds per
# fault), then a long upload with the production stale threshold (60 s):
# add_sub with 16 versions (18 blob requests, about three at a time) at 50 s each:
# an upload of about five minutes. Prints each row's result and the run's length.
set -euo pipefail
cd "$(dirname "$0")/.."
CHAOS=full .venv/bin/python -m pytest -q -p no:logging -rA tests/test_chaos.py "$@"
CHAOS_STALE_AFTER=60 CHAOS_UPLOAD_PER_REQUEST=50 CHAOS_UPLOAD_VERSIONS=16 .venv/bin/python -m pytest -q -p no:logging -s \
  tests/test_azure_engine_faults.py -k upload_longer
