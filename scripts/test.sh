#!/usr/bin/env bash
# Sets up the project (scripts/setup.sh) and runs the linter and the test suite (CPU, no network)
# in its virtual environment. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="$(bash scripts/venv_path.sh)"
export PATH="$venv/bin:$PATH"
python -m ruff check --quiet .
python -m pytest -q "$@"
