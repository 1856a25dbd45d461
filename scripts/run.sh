#!/usr/bin/env bash
# Sets up the project and plans the HR purchase for the bundled Sentinel-2 sample tile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
patchdrop plan models/assets/sample_lr_tile.tif "$@"
