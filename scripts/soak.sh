#!/usr/bin/env bash
# Soak test: two roomcam devices in a call through roomcam-server for HOURS hours (fractions
# allowed: 0.1 = 6 minutes), with packet loss injected on the server's media port. Every minute
# it records each device's resident memory, frame rate and latency; at the end it prints the
# first and last samples side by side. Needs root (a network namespace, veth, nftables).
#
#   scripts/soak.sh HOURS [LOSS_PERCENT]      (default loss: 2)
#
# The server runs in its own network namespace (10.200.0.2) reached over a veth pair from the
# host (10.200.0.1); nftables in the namespace drops LOSS_PERCENT % of the UDP media packets
# arriving at the server, at random. Results: artifacts/soak/samples.csv and summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

HOURS="${1:?usage: scripts/soak.sh HOURS [LOSS_PERCENT]}"
LOSS="${2:-2}"
NS=rcsoak
OUT=artifacts/soak
mkdir -p "$OUT"
command -v nft >/dev/null || { echo "nft missing: apt-get install nftables" >&2; exit 1; }

cargo build --release --bin roomcam --bin roomcam-server
BIN=target/release

cleanup() {
  set +e
  [ -n "${DEV_A:-}" ] && kill "$DEV_A" 2>/dev/null
  [ -n "${DEV_B:-}" ] && kill "$DEV_B" 2>/dev/null
  sleep 2
  [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  ip link del rcsoak0 2>/dev/null
}
trap cleanup EXIT

ip netns del "$NS" 2>/dev/null || true
ip link del rcsoak0 2>/dev/null || true
ip netns add "$NS"
ip link add rcsoak0 type veth peer name rcsoak1
ip link set rcsoak1 netns "$NS"
ip addr add 10.200.0.1/24 dev rcsoak0
ip link set rcsoak0 up
ip netns exec "$NS" ip addr add 10.200.0.2/24 dev rcsoak1
ip netns exec "$NS" ip link set rcsoak1 up
ip netns exec "$NS" ip link set lo up

SECRET=soaksoaksoaksoaksoaksoaksoaksoak
APP=4242
cat > "$OUT/server.toml" <<CFG
listen = "10.200.0.2:8080"
allow_insecure = true
[media]
udp_port = 50000
candidate_ips = ["10.200.0.2"]
[[apps]]
app_id = $APP
server_secret = "$SECRET"
CFG
ip netns exec "$NS" nft -f - <<NFT
table inet soak {
  chain input {
    type filter hook input priority 0;
    udp dport 50000 numgen random mod 100 < $LOSS drop
  }
}
NFT
ip netns exec "$NS" "$BIN/roomcam-server" --config "$OUT/server.toml" 2> "$OUT/server.log" &
SRV=$!
sleep 1

device() { # name status_port
  local token
  token=$("$BIN/roomcam-server" token --app-id $APP --server-secret $SECRET --user-id "$1" --ttl 600)
  cat > "$OUT/$1.toml" <<CFG
[server]
url = "ws://10.200.0.2:8080/ws"
allow_insecure = true
[identity]
app_id = $APP
user_id = "$1"
token = "$token"
[room]
id = "soak"
[video]
source = "test"
width = 640
height = 480
encoder = "x264enc"
max_bitrate_kbps = 1500
[audio]
capture = "test"
playback = "none"
[display]
sink = "none"
[status]
listen = "127.0.0.1:$2"
CFG
  "$BIN/roomcam" --config "$OUT/$1.toml" 2> "$OUT/$1.log" &
}
device soak-a 19201; DEV_A=$!
device soak-b 19202; DEV_B=$!

echo "time_s,device,rss_kb,video_frames_decoded,fps,latency_p50_ms,latency_p95_ms" > "$OUT/samples.csv"
declare -A LAST
START=$(date +%s)
END=$(( START + $(printf '%.0f' "$(echo "$HOURS * 3600" | bc -l)") ))
echo "soak: ${HOURS} h with ${LOSS}% media loss; samples every 60 s in $OUT/samples.csv"
while [ "$(date +%s)" -lt "$END" ]; do
  sleep 60
  now=$(( $(date +%s) - START ))
  for d in a:$DEV_A:19201 b:$DEV_B:19202; do
    IFS=: read -r name pid port <<<"$d"
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    js=$(curl -s "127.0.0.1:$port/status" || echo '{}')
    frames=$(jq '[.players[]?.video_frames_decoded] | add // 0' <<<"$js")
    p50=$(jq '[.players[]?.latency_ms_p50] | map(select(. != null)) | first // "null"' <<<"$js")
    p95=$(jq '[.players[]?.latency_ms_p95] | map(select(. != null)) | first // "null"' <<<"$js")
    prev=${LAST[$name]:-0}
    fps=$(echo "($frames - $prev) / 60" | bc -l | xargs printf '%.1f')
    LAST[$name]=$frames
    echo "$now,$name,$rss,$frames,$fps,$p50,$p95" >> "$OUT/samples.csv"
  done
done
{
  echo "soak ${HOURS} h, ${LOSS}% loss"
  echo "first samples:"; sed -n '2,3p' "$OUT/samples.csv"
  echo "last samples:"; tail -2 "$OUT/samples.csv"
} | tee "$OUT/summary.txt"
