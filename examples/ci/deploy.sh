#!/usr/bin/env bash
# What both example pipelines run (github-actions.yml, azure-pipelines.yml),
# and what tests/test_cli_pipeline.py runs against a live dashboard:
# record the repository, deploy it to staging and wait until it is healthy,
# try it with a test inference, then ask for the same deployment in prod
# (which waits there for a second person's approval).
#
# Needs the CLI alone (pip install "triton-dashboard-cli @ git+<this repository>#subdirectory=cli"),
# jq, and in the environment:
#   DASHBOARD_URL, DASHBOARD_TOKEN  the dashboard, and a deploy-scoped API token
#   MODEL_REPOSITORY                a directory or .zip/.tar.gz: <model>/<version>/<file> (+ config.pbtxt)
#   DEPLOYMENT_NAME                 lower-case letters, digits and hyphens, e.g. add-sub-<short sha>
#   STAGING_TARGET, PROD_TARGET     target names (or ids)
#   INFER_BODY                      a JSON file: {"model", "inputs": [{"name", "datatype", "shape", "data"}]}
set -euo pipefail

repository=$(triton-dashboard --json repo upload "$MODEL_REPOSITORY" | jq -r .id)
echo "repository $repository recorded"

staging=$(triton-dashboard --json deploy --repository "$repository" --target "$STAGING_TARGET" \
  --name "$DEPLOYMENT_NAME" --wait --timeout 1800 | jq -r .id)
echo "deployment $staging is healthy on $STAGING_TARGET"

triton-dashboard infer "$staging" --body "$INFER_BODY"

prod=$(triton-dashboard --json deploy --repository "$repository" --target "$PROD_TARGET" \
  --name "$DEPLOYMENT_NAME" | jq -r '"\(.id) \(.status)"')
echo "deployment ${prod% *} requested on $PROD_TARGET: ${prod#* }"
