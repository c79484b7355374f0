#!/bin/sh
# Call benchmark (issue 4). Two parts:
#
#  1. `cargo bench --bench call` (benches/call.rs): time to first frame and glass-to-glass
#     latency, everything in one process (room service + devices + players).
#  2. Processes: a release `roomcam-server` and two release `roomcam --config` devices in one
#     room for a 1:1 call, read from /proc: CPU (utime+stime deltas over the call) and memory
#     (VmRSS at the end, VmHWM = peak resident) of each process, and the player's own latency
#     from its status endpoint.
#       - publisher: test video WxH@30 (x264enc) + test tone (Opus), display none, playback none;
#         it also plays the player's stream (auto_join plays every stream in the room).
#       - player: auto_join = true is what makes a device play, and it also makes it publish; so
#         the player publishes a 64x48@5 test picture with no audio (capture = "none"), decodes
#         the publisher's stream into an appsink (display none: decode, read the stamp, count),
#         and plays no audio (playback none).
#       - server: signalling + SFU forwarding both streams.
#
# Usage: scripts/bench-call.sh [--processes-only | --bench-only] [-- ARGS for the bench]
# Environment: ROOMCAM_BENCH_QUICK=1 (short runs), CALL_SECS (default 30, quick 8),
#   WARMUP_SECS (default 5, quick 2), CALL_SIZE (default 1280x720), KEEP=1 keeps the temp dir,
#   SKIP_BUILD=1 uses the release binaries as they are.
set -eu
cd "$(dirname "$0")/.."

run_bench=1
run_procs=1
case "${1:-}" in
--processes-only) run_bench=0; shift ;;
--bench-only) run_procs=0; shift ;;
esac
[ "${1:-}" = "--" ] && shift

quick=0
case "${ROOMCAM_BENCH_QUICK:-}" in "" | 0) ;; *) quick=1 ;; esac
if [ "$quick" = 1 ]; then
    CALL_SECS=${CALL_SECS:-8}
    WARMUP_SECS=${WARMUP_SECS:-2}
else
    CALL_SECS=${CALL_SECS:-30}
    WARMUP_SECS=${WARMUP_SECS:-5}
fi
CALL_SIZE=${CALL_SIZE:-1280x720}
W=${CALL_SIZE%x*}
H=${CALL_SIZE#*x}

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1024) " MB"}' /proc/meminfo), $(uname -sr)"
grep -m1 'model name' /proc/cpuinfo | sed 's/^model name[^:]*: /cpu: /' || true
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$run_bench" = 1 ]; then
    cargo bench --bench call -- "$@"
fi
[ "$run_procs" = 1 ] || exit 0

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bins --quiet
SERVER=target/release/roomcam-server
DEVICE=target/release/roomcam

tmp=$(mktemp -d /tmp/bench-call.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT INT TERM

APP=1234567890
SECRET=0123456789abcdef0123456789abcdef
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
HTTP=$(free_port)
PUB_STATUS=$(free_port)
PLAY_STATUS=$(free_port)

cat >"$tmp/server.toml" <<EOF
listen = "127.0.0.1:$HTTP"
[media]
udp_port = 0
[[apps]]
app_id = $APP
server_secret = "$SECRET"
EOF

device_toml() { # user status_port width height fps capture
    tok=$($SERVER token --app-id $APP --server-secret $SECRET --user-id "$1")
    cat <<EOF
[server]
url = "ws://127.0.0.1:$HTTP/ws"
[identity]
app_id = $APP
user_id = "$1"
token = "$tok"
[room]
id = "bench-call"
auto_join = true
[video]
source = "test"
width = $3
height = $4
fps = $5
encoder = "x264enc"
max_bitrate_kbps = 2500
[audio]
capture = "$6"
playback = "none"
echo_cancel = false
[display]
sink = "none"
[status]
listen = "127.0.0.1:$2"
EOF
}
device_toml bench-pub "$PUB_STATUS" "$W" "$H" 30 test >"$tmp/publisher.toml"
device_toml bench-play "$PLAY_STATUS" 64 48 5 none >"$tmp/player.toml"

export RUST_LOG=${RUST_LOG:-warn}
$SERVER --config "$tmp/server.toml" >"$tmp/server.log" 2>&1 &
SRV=$!
pids="$SRV"
i=0
until curl -s "http://127.0.0.1:$HTTP/metrics" -o /dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "server did not start"; cat "$tmp/server.log"; exit 1; }
    sleep 0.1
done
$DEVICE --config "$tmp/publisher.toml" >"$tmp/publisher.log" 2>&1 &
PUB=$!
pids="$pids $PUB"
sleep 1
$DEVICE --config "$tmp/player.toml" >"$tmp/player.log" 2>&1 &
PLAY=$!
pids="$pids $PLAY"

status() { curl -fs "http://127.0.0.1:$1/status" || echo '{}'; }
# Wait until the player decodes the publisher's stream.
i=0
until status "$PLAY_STATUS" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if any(p.get("stream_id")=="bench-pub-main" and p.get("video_frames_decoded",0)>0 for p in d.get("players",[])) else 1)' 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 200 ] || { echo "the player never decoded"; tail -20 "$tmp"/*.log; exit 1; }
    sleep 0.1
done
sleep "$WARMUP_SECS"

ticks() { # utime+stime in clock ticks
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
echo
echo "## 1:1 call as processes: ${W}x${H}@30 x264enc, ${CALL_SECS} s after ${WARMUP_SECS} s warm-up"
echo
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
s_srv=$(ticks $SRV); s_pub=$(ticks $PUB); s_play=$(ticks $PLAY)
peak_srv=0; peak_pub=0; peak_play=0
t=0
while [ $t -lt "$CALL_SECS" ]; do
    sleep 1
    t=$((t + 1))
    r=$(kb $SRV VmRSS); [ "$r" -gt $peak_srv ] && peak_srv=$r
    r=$(kb $PUB VmRSS); [ "$r" -gt $peak_pub ] && peak_pub=$r
    r=$(kb $PLAY VmRSS); [ "$r" -gt $peak_play ] && peak_play=$r
done
e_srv=$(ticks $SRV); e_pub=$(ticks $PUB); e_play=$(ticks $PLAY)
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| process | what it does | CPU % of one core | VmRSS at end MB | peak VmRSS (1-s samples) MB | VmHWM MB |"
echo "|---|---|---|---|---|---|"
row() { # name desc pid start end peak
    awk -v n="$1" -v d="$2" -v s="$4" -v e="$5" -v hz="$HZ" -v secs="$CALL_SECS" \
        -v rss="$(kb "$3" VmRSS)" -v hwm="$(kb "$3" VmHWM)" -v peak="$6" \
        'BEGIN {printf "| %s | %s | %.0f | %.1f | %.1f | %.1f |\n", n, d, 100*(e-s)/hz/secs, rss/1024, peak/1024, hwm/1024}'
}
row roomcam-server "signalling + SFU, forwarding both streams" $SRV "$s_srv" "$e_srv" $peak_srv
row "roomcam (publisher)" "publishes ${W}x${H}@30 + Opus tone; plays the player's 64x48@5 stream" $PUB "$s_pub" "$e_pub" $peak_pub
row "roomcam (player)" "plays ${W}x${H}@30 (decode to appsink, no audio out); publishes 64x48@5, no audio" $PLAY "$s_play" "$e_play" $peak_play
echo
status "$PLAY_STATUS" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for p in d.get("players", []):
    if p.get("stream_id") == "bench-pub-main":
        print("player status endpoint: decoded %s pictures at %sx%s, latency_ms_p50 %s, latency_ms_p95 %s (capture to decoded-and-due, last 512 pictures)"
              % (p["video_frames_decoded"], p["width"], p["height"], p["latency_ms_p50"], p["latency_ms_p95"]))'
status "$PUB_STATUS" | python3 -c '
import json, sys
p = json.load(sys.stdin).get("publisher", {})
print("publisher status endpoint: state %s, encoder %s, %s video frames sent, bitrate %s kbps"
      % (p.get("state"), p.get("encoder"), p.get("video_frames_sent"), p.get("bitrate_kbps")))'
