#!/usr/bin/env bash
# Pi smoke test: what roomcam finds on this board and a short real call with it.
#
#  1. `roomcam devices --json` (what `auto` picks, and why not for every other device);
#  2. a loopback 1:1 call against a room service on 127.0.0.1: this board's device (camera,
#     encoder and microphone all `auto`) and a peer process (test pattern + tone, x264enc) that
#     publishes back, so the device also decodes a stream;
#  3. a JSON report a user can attach to a bug report: chosen devices, frames sent / decoded,
#     encode time per frame, CPU (100% = one core) and memory of each process.
#
# Usage: scripts/pi-smoke.sh [SECONDS]        (default 20)
# Environment (defaults): OUT=artifacts/pi-smoke, BIN=target/release (built when missing),
#   WIDTH=1280 HEIGHT=720 FPS=30, SOURCE=auto ENCODER=auto CAPTURE=auto,
#   PLAYBACK=none SINK=none (set PLAYBACK=auto SINK=auto to hear/see the peer on the board),
#   PORT=18655 STATUS=19655 PEER_STATUS=19656.
# On this build machine (no camera) it runs the same call on test sources: that is the
# 720p30 1:1 benchmark of docs/bench-devices-section.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN="${1:-20}"
OUT="${OUT:-artifacts/pi-smoke}"
BIN="${BIN:-target/release}"
WIDTH="${WIDTH:-1280}"; HEIGHT="${HEIGHT:-720}"; FPS="${FPS:-30}"
SOURCE="${SOURCE:-auto}"; ENCODER="${ENCODER:-auto}"; CAPTURE="${CAPTURE:-auto}"
PLAYBACK="${PLAYBACK:-none}"; SINK="${SINK:-none}"
PORT="${PORT:-18655}"; STATUS="${STATUS:-19655}"; PEER_STATUS="${PEER_STATUS:-19656}"
mkdir -p "$OUT"
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "pi-smoke: needs $tool" >&2; exit 2; }
done
if [ ! -x "$BIN/roomcam" ] || [ ! -x "$BIN/roomcam-server" ]; then
  cargo build --release --bin roomcam --bin roomcam-server
fi

echo "pi-smoke: devices" >&2
"$BIN/roomcam" devices --json > "$OUT/devices.json"
"$BIN/roomcam" devices > "$OUT/devices.txt" || true

SECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
APP=4343
cat > "$OUT/server.toml" <<CFG
listen = "127.0.0.1:$PORT"
[media]
udp_port = 0
[[apps]]
app_id = $APP
server_secret = "$SECRET"
CFG
token() { "$BIN/roomcam-server" token --app-id $APP --server-secret "$SECRET" --user-id "$1" --ttl 3600; }
device_cfg() { # user status source encoder capture playback sink
  cat <<CFG
[server]
url = "ws://127.0.0.1:$PORT/ws"
[identity]
app_id = $APP
user_id = "$1"
token = "$(token "$1")"
[room]
id = "smoke"
stream_id = "$1-main"
[video]
source = "$3"
width = $WIDTH
height = $HEIGHT
fps = $FPS
encoder = "$4"
[audio]
capture = "$5"
playback = "$6"
[display]
sink = "$7"
[status]
listen = "127.0.0.1:$2"
CFG
}
device_cfg smoke-device "$STATUS" "$SOURCE" "$ENCODER" "$CAPTURE" "$PLAYBACK" "$SINK" > "$OUT/device.toml"
device_cfg smoke-peer "$PEER_STATUS" test x264enc test none none > "$OUT/peer.toml"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
"$BIN/roomcam-server" --config "$OUT/server.toml" > "$OUT/server.log" 2>&1 & SRV=$!; pids+=($SRV)
for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$SRV" 2>/dev/null || { echo "pi-smoke: the room service did not start:" >&2; cat "$OUT/server.log" >&2; exit 1; }
ROOMCAM_LOG="${ROOMCAM_LOG:-info}" "$BIN/roomcam" --config "$OUT/device.toml" > "$OUT/device.log" 2>&1 & DEV=$!; pids+=($DEV)
"$BIN/roomcam" --config "$OUT/peer.toml" > "$OUT/peer.log" 2>&1 & PEER=$!; pids+=($PEER)

# Both publishing and each playing the other: at most 30 s.
status() { curl -s --max-time 2 "127.0.0.1:$1/status" 2>/dev/null || echo '{}'; }
in_call() { python3 -c 'import json,sys
s=json.loads(sys.argv[1] or "{}")
p=s.get("players") or []
sys.exit(0 if s.get("publisher",{}).get("state")=="PUBLISHING" and any(x.get("video_frames_decoded",0)>0 for x in p) else 1)' "$1"; }
echo "pi-smoke: waiting for the call" >&2
ok=0
for _ in $(seq 300); do
  if in_call "$(status "$STATUS")" && in_call "$(status "$PEER_STATUS")"; then ok=1; break; fi
  kill -0 "$DEV" 2>/dev/null || break
  sleep 0.1
done
[ "$ok" = 1 ] || echo "pi-smoke: the call did not come up within 30 s (see $OUT/device.log)" >&2

ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
status "$STATUS" > "$OUT/status-start.json"; status "$PEER_STATUS" > "$OUT/peer-start.json"
t0=$(date +%s.%N); d0=$(ticks "$DEV"); p0=$(ticks "$PEER"); s0=$(ticks "$SRV")
echo "pi-smoke: measuring ${SECONDS_RUN}s" >&2
: > "$OUT/encode-samples.txt"
for _ in $(seq "$SECONDS_RUN"); do
  sleep 1
  status "$STATUS" | python3 -c 'import json,sys
v=json.load(sys.stdin).get("publisher",{}).get("encode_time_us_mean")
print(v if v is not None else "")' >> "$OUT/encode-samples.txt" || true
done
t1=$(date +%s.%N); d1=$(ticks "$DEV"); p1=$(ticks "$PEER"); s1=$(ticks "$SRV")
status "$STATUS" > "$OUT/status-end.json"; status "$PEER_STATUS" > "$OUT/peer-end.json"
mem() { grep -E "^$2:" "/proc/$1/status" 2>/dev/null | awk '{print $2}' || echo 0; }
DEV_HWM=$(mem "$DEV" VmHWM); DEV_RSS=$(mem "$DEV" VmRSS); PEER_HWM=$(mem "$PEER" VmHWM)
alive=$(kill -0 "$DEV" 2>/dev/null && echo true || echo false)

python3 - "$OUT" "$t0" "$t1" "$d0" "$d1" "$p0" "$p1" "$(getconf CLK_TCK)" "$DEV_HWM" "$DEV_RSS" "$PEER_HWM" "$alive" "$ok" "$s0" "$s1" "$(mem "$SRV" VmHWM)" <<'PY' > "$OUT/report.json"
import json, os, platform, re, sys
out, t0, t1, d0, d1, p0, p1, hz, dev_hwm, dev_rss, peer_hwm, alive, ok, sv0, sv1, srv_hwm = sys.argv[1:]
wall = float(t1) - float(t0)
hz = float(hz)
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception:
        return {}
def cpu(a, b):
    return round(100.0 * (float(b) - float(a)) / hz / wall, 1) if wall > 0 else None
def kb_to_mb(v):
    return round(int(v or 0) / 1024, 1)
devices = load("devices.json")
choice = devices.get("choice", {})
s0, s1 = load("status-start.json"), load("status-end.json")
q0, q1 = load("peer-start.json"), load("peer-end.json")
def rate(a, b, path):
    def get(s):
        for k in path:
            s = s.get(k, {}) if isinstance(s, dict) else {}
        return s if isinstance(s, (int, float)) else 0
    return round((get(b) - get(a)) / wall, 1) if wall > 0 else None
def player(s):
    p = (s.get("players") or [{}])[0]
    return {k: p.get(k) for k in ("stream_id", "video_frames_decoded", "audio_frames_decoded", "width", "height", "latency_ms_p50", "latency_ms_p95")}
def decoded_fps(a, b):
    n = lambda s: player(s).get("video_frames_decoded") or 0
    return round((n(b) - n(a)) / wall, 1) if wall > 0 else None
samples = [int(x) for x in open(os.path.join(out, "encode-samples.txt")).read().split() if x.isdigit()]
model = "unknown"
try:
    model = open("/proc/device-tree/model").read().strip("\0\n ")
except Exception:
    model = platform.machine()
chosen_log = []
try:
    for line in open(os.path.join(out, "device.log"), errors="replace"):
        if re.search(r"video source|audio capture auto|audio playback auto|v4l2h264enc|first frame|no frame", line):
            chosen_log.append(re.sub(r"\x1b\[[0-9;]*m", "", line.strip())[:300])
except Exception:
    pass
report = {
    "machine": model,
    "cores": os.cpu_count(),
    "seconds": round(wall, 1),
    "call_established": ok == "1",
    "device_still_running": alive == "true",
    "chosen": {
        "video": (choice.get("video") or [{"kind": "test"}])[0],
        "video_candidates": len(choice.get("video") or []),
        "encoder": choice.get("encoder"),
        "microphone": choice.get("capture"),
        "speaker": choice.get("playback"),
        "display": choice.get("connector"),
        "warnings": choice.get("warnings"),
        "log": chosen_log[-20:],
    },
    "device": {
        "encoder": s1.get("publisher", {}).get("encoder"),
        "video_source": s1.get("publisher", {}).get("video_source"),
        "video_fps_sent": rate(s0, s1, ["publisher", "video_frames_sent"]),
        "audio_fps_sent": rate(s0, s1, ["publisher", "audio_frames_sent"]),
        "bitrate_kbps": s1.get("publisher", {}).get("bitrate_kbps"),
        "encode_ms_per_frame_mean": round(sum(samples) / len(samples) / 1000, 2) if samples else None,
        "encode_ms_per_frame_max_sample": round(max(samples) / 1000, 2) if samples else None,
        "video_fps_decoded": decoded_fps(s0, s1),
        "playing": player(s1),
        "cpu_percent_of_one_core": cpu(d0, d1),
        "rss_mb": kb_to_mb(dev_rss),
        "peak_rss_mb": kb_to_mb(dev_hwm),
    },
    "peer": {
        "video_fps_decoded": decoded_fps(q0, q1),
        "playing": player(q1),
        "cpu_percent_of_one_core": cpu(p0, p1),
        "peak_rss_mb": kb_to_mb(peer_hwm),
    },
    "room_service": {
        "cpu_percent_of_one_core": cpu(sv0, sv1),
        "peak_rss_mb": kb_to_mb(srv_hwm),
    },
}
print(json.dumps(report, indent=2))
PY
cat "$OUT/report.json"
echo "pi-smoke: report in $OUT/report.json (logs and configs next to it)" >&2
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["call_established"] and r["device_still_running"] and (r["device"]["video_fps_sent"] or 0) > 0 else 1)' "$OUT/report.json"
