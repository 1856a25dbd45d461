#!/usr/bin/env bash
# Sets up the project, starts the planning API on the embedded default (no Redis) in the
# background, plans the HR purchase for the bundled Sentinel-2 sample (the 8 x 8-tile sample
# scene, models/assets/sample_lr_scene.tif, when present; else the one-tile sample) over HTTP,
# prints the plan and stops the API. Extra arguments go to scripts/plan_over_http.py
# (e.g. --max-price 80).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$(bash scripts/venv_path.sh)/bin:$PATH"
bash scripts/serve_and_plan.sh "" "$@"
