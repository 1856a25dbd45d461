#!/usr/bin/env bash
# Starts a throwaway redis-server on a free 127.0.0.1 port, in the folder DIR (its pid file is
# DIR/redis.pid, its log DIR/redis.log), waits until it answers PING and prints its URL.
# Exits non-zero with a message naming the problem when it cannot. Used by .ci/run.
#   bash scripts/start_redis.sh DIR
# PATCHDROP_REDIS_SERVER: the binary (default redis-server); PATCHDROP_REDIS_WAIT_S: how long to
# wait for PING (default 10).
set -euo pipefail
dir="${1:?usage: start_redis.sh DIR}"
server="${PATCHDROP_REDIS_SERVER:-redis-server}"
fail() { echo "start_redis: $*" >&2; exit 1; }

command -v "$server" >/dev/null 2>&1 \
  || fail "'$server' not found: install it (apt-get install redis-server); the Celery-mode tests need a real Redis"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$server" --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" >"$dir/redis.start.log" 2>&1 \
  || fail "'$server' did not start on 127.0.0.1:$port: $(tail -n 3 "$dir/redis.start.log" "$dir/redis.log" 2>/dev/null)"

pong() {
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  local reply=""
  read -r -t 1 reply <&3 || true
  exec 3>&-
  [[ "$reply" == "+PONG"* ]]
}
wait_s="${PATCHDROP_REDIS_WAIT_S:-10}"
deadline=$((SECONDS + wait_s))
while [ "$SECONDS" -le "$deadline" ]; do
  pong && { echo "redis://127.0.0.1:$port/0"; exit 0; }
  sleep 0.1
done
fail "'$server' on 127.0.0.1:$port does not answer PING after $wait_s s: $(tail -n 3 "$dir/redis.log" 2>/dev/null)"
