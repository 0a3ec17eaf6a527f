#!/usr/bin/env bash
# Run exapt's checks on this machine with the real parts: bubblewrap, a Docker engine
# (started here if none runs, stopped at the end), the locally built sandbox image,
# Chroma, the embedded model; the import layers (lint-imports) and types (mypy).
# Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

DOCKERD_PID=""
cleanup() {
  if [ -n "$DOCKERD_PID" ]; then
    docker ps -aq --filter label=exapt.sandbox=1 | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null; then
    echo "exapt test: starting dockerd"
    dockerd --bridge=none --iptables=false --ip-forward=false >/tmp/exapt-dockerd.log 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
fi
if docker info >/dev/null 2>&1; then
  exapt sandbox build-image
else
  echo "exapt test: no Docker engine; docker tests will skip (see exapt doctor)"
fi

# Every check runs even when an earlier one fails; the script fails if any did.
status=0
exapt doctor || status=1
ruff check . || status=1
ruff format --check . || status=1
python scripts/check_layers.py --mypy || status=1  # import-linter layers + mypy on the package
python -m pytest -ra "$@" || status=1
exit $status
