#!/usr/bin/env bash
# Sets up the project and runs the test suite (CPU only, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m ruff check --quiet .
python3 -m pytest -q "$@"
