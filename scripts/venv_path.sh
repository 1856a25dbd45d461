#!/usr/bin/env bash
# Prints the absolute path of the project's virtual environment ($PATCHDROP_VENV, default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PATCHDROP_VENV:-.venv}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
echo "$venv"
