#!/usr/bin/env bash
# Starts the API on the embedded default (no Redis: tasks in process, plans in
# data/patchdrop.sqlite3) in the background, plans the HR purchase for a tile over
# HTTP, prints the plan and stops the API.
#   bash scripts/serve_and_plan.sh [TILE] [extra args of scripts/plan_over_http.py]
set -euo pipefail
cd "$(dirname "$0")/.."
# The bundled sample scene (8 x 8 model tiles, planned jointly) when present, else the one-tile sample.
default_tile=models/assets/sample_lr_tile.tif
[ -f models/assets/sample_lr_scene.tif ] && default_tile=models/assets/sample_lr_scene.tif
tile="${1:-$default_tile}"  # an empty first argument also takes the default
shift || true
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p data
env -u REDIS_URL -u PATCHDROP_REDIS_URL python3 -m patchdrop serve --port "$port" >data/serve.log 2>&1 &
server=$!
stop_server() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap stop_server EXIT
python3 scripts/plan_over_http.py --url "http://127.0.0.1:$port" --tile "$tile" "$@" || {
  echo "--- server log (data/serve.log) ---" >&2
  tail -n 30 data/serve.log >&2
  exit 1
}
