#!/usr/bin/env bash
# Appliance timings (release build, loopback, test sources):
#  1. process start -> PUBLISHING with auto_join (RUNS runs);
#  2. server back (restarted after a kill) -> the device PUBLISHING again (RUNS runs).
# Usage: scripts/bench-appliance.sh [RUNS]    (default 10). Prints a table; raw numbers in
# artifacts/bench-appliance/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-10}"
OUT=artifacts/bench-appliance
mkdir -p "$OUT"
cargo build --release --bin roomcam --bin roomcam-server 2>/dev/null
BIN=target/release
SECRET=benchbenchbenchbenchbenchbench12
APP=4242
PORT=18555
STATUS=19555
cat > "$OUT/server.toml" <<CFG
listen = "127.0.0.1:$PORT"
[media]
udp_port = 0
[[apps]]
app_id = $APP
server_secret = "$SECRET"
CFG
TOKEN=$("$BIN/roomcam-server" token --app-id $APP --server-secret $SECRET --user-id bench-dev --ttl 3600)
cat > "$OUT/device.toml" <<CFG
[server]
url = "ws://127.0.0.1:$PORT/ws"
[identity]
app_id = $APP
user_id = "bench-dev"
token = "$TOKEN"
[room]
id = "bench"
[video]
source = "test"
width = 640
height = 480
encoder = "x264enc"
[audio]
capture = "test"
playback = "none"
[display]
sink = "none"
[status]
listen = "127.0.0.1:$STATUS"
CFG
ms() { date +%s%3N; }
wait_publishing() { # deadline_ms
  while [ "$(ms)" -lt "$1" ]; do
    if curl -s "127.0.0.1:$STATUS/status" 2>/dev/null | grep -q '"state":"PUBLISHING"'; then return 0; fi
    sleep 0.01
  done
  return 1
}
start_server() { "$BIN/roomcam-server" --config "$OUT/server.toml" 2>>"$OUT/server.log" & SRV=$!; }
trap 'kill ${DEV:-} ${SRV:-} 2>/dev/null || true' EXIT
start_server
sleep 0.5
: > "$OUT/start.txt"; : > "$OUT/reconnect.txt"
for i in $(seq "$RUNS"); do
  t0=$(ms)
  "$BIN/roomcam" --config "$OUT/device.toml" 2>>"$OUT/device.log" & DEV=$!
  wait_publishing $(( t0 + 30000 )) || { echo "run $i: never PUBLISHING" >&2; exit 1; }
  echo $(( $(ms) - t0 )) >> "$OUT/start.txt"
  # kill the server, start it again, time until the device publishes again
  kill -9 "$SRV"; wait "$SRV" 2>/dev/null || true
  sleep 1
  start_server
  t1=$(ms)
  until curl -s "127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do sleep 0.01; done
  sleep 0.3
  wait_publishing $(( t1 + 30000 )) || { echo "run $i: never PUBLISHING after restart" >&2; exit 1; }
  echo $(( $(ms) - t1 )) >> "$OUT/reconnect.txt"
  kill "$DEV"; wait "$DEV" 2>/dev/null || true
done
stats() { sort -n "$1" | awk '{a[NR]=$1} END {printf "p50 %d ms, p95 %d ms, max %d ms (n=%d)\n", a[int((NR+1)/2)], a[int(NR*0.95+0.999)], a[NR], NR}'; }
echo "start -> PUBLISHING:          $(stats "$OUT/start.txt")"
echo "server back -> PUBLISHING:    $(stats "$OUT/reconnect.txt")"
