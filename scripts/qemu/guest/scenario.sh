#!/bin/bash
# The call the QEMU system test makes inside the guest (run by /init, output in
# /results/scenario.log). It only drives and records: the host (scripts/qemu/check.py) judges
# the evidence it leaves in /results:
#   result.json          what happened: steps with guest uptimes, waits met or not, frame counts
#   status/*.json        device A's and B's GET /status at each step
#   speaker.wav          what the recorder captured from device B's speaker (snd-aloop)
#   logs/*.log           room service, device A and B, tone generator, recorder
# Talking to the host: a line "@@roomcam <verb> <name> @@" on the console asks it for a
# screendump or a press of the call button (QMP); it answers "ok <name>" on the console. A
# screendump named NAME=KIND/KIND is retaken by the host until it shows one of those kinds (up
# to 30 s): under TCG, B's screen follows A's camera seconds late in some runs.
set -u
R=/results
B=/opt/roomcam/bin
C=/roomcam
mkdir -p "$R/status" "$R/logs"
export GST_REGISTRY=/tmp/gst-registry.bin
export ROOMCAM_LOG=info,roomcam=debug,str0m=debug
TONE_HZ=880
STEPS=()

now() { cut -d' ' -f1 /proc/uptime; }
say() { echo "[guest $(now)] $*" > /dev/console; echo "[$(now)] $*" >&2; }
# step NAME OK DETAIL: one line of result.json's "steps".
step() {
  say "step $1: $2 ${3:-}"
  STEPS+=("{\"name\": \"$1\", \"ok\": $2, \"t\": $(now), \"detail\": \"${3:-}\"}")
}
# host VERB NAME: ask the host, wait (at most 120 s) for its "ok NAME".
host() {
  echo "@@roomcam $1 $2 @@" > /dev/console
  local line
  while read -r -t 120 line; do
    line=${line%$'\r'}
    [ "$line" = "ok $2" ] && return 0
  done
  say "no answer from the host to $1 $2"
  return 1
}
# ask STEP VERB NAME: ask the host, record whether it answered.
ask() { if host "$2" "$3"; then step "$1" true; else step "$1" false "no answer"; fi; }
# http_get PORT PATH: the body of a 200 answer from 127.0.0.1 (bash's /dev/tcp: the guest has
# no HTTP client), false otherwise.
http_get() {
  local reply
  reply=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" >&3
    cat <&3' "$1" "$2" 2>/dev/null | tr -d '\r') || return 1
  case "$reply" in "HTTP/1."?" 200"*) ;; *) return 1 ;; esac
  printf '%s\n' "$reply" | sed '1,/^$/d'
}
status() { http_get "$1" /status; }
snap() { status "$2" > "$R/status/$1.json" || echo '{}' > "$R/status/$1.json"; }
# A number from a status document (the first occurrence of the key).
num() { grep -o "\"$2\":[0-9]*" <<< "$1" | head -n1 | cut -d: -f2; }
# wait_for SECONDS COMMAND...: polls twice a second; true when COMMAND succeeded in time.
wait_for() {
  local until=$(( $(cut -d. -f1 /proc/uptime) + $1 )); shift
  while [ "$(cut -d. -f1 /proc/uptime)" -lt "$until" ]; do
    "$@" && return 0
    sleep 0.5
  done
  return 1
}
frames_b() { num "$(status 19102)" video_frames_decoded; }
LAST_REPORT=0
b_decoded_at_least() {
  local n; n=$(frames_b)
  # Progress on the console every 15 s while waiting (the host keeps console.log).
  if [ "$(cut -d. -f1 /proc/uptime)" -ge $(( LAST_REPORT + 15 )) ]; then
    LAST_REPORT=$(cut -d. -f1 /proc/uptime)
    say "waiting: A sent $(a_sent) video frames, B decoded ${n:-0}; load $(cut -d" " -f1-3 /proc/loadavg)"
  fi
  [ "${n:-0}" -ge "$1" ]
}
a_sent() { num "$(status 19101)" video_frames_sent; }
# B plays A's audio steadily: over 2 s it decoded at least 80 % of the audio frames it received
# (the emulated CPU drops audio in bursts while B's pipelines settle; the recording waits).
b_audio_steady() {
  local s1 s2 d1 r1 d2 r2
  s1=$(status 19102); sleep 2; s2=$(status 19102)
  d1=$(num "$s1" audio_frames_decoded); r1=$(num "$s1" audio_frames_received)
  d2=$(num "$s2" audio_frames_decoded); r2=$(num "$s2" audio_frames_received)
  [ "${r2:-0}" -gt "${r1:-0}" ] && [ $(( (${d2:-0} - ${d1:-0}) * 100 )) -ge $(( (${r2:-0} - ${r1:-0}) * 80 )) ]
}
a_publishing() { status 19101 | grep -q '"state":"PUBLISHING"'; }
b_playing_a() { status 19102 | grep -q '"stream_id":"qemu-a-main"'; }
a_call() { status 19101 | grep -q "\"call\":\"$1\""; }
a_ended() { ! a_call in_call && ! a_call joining; }
b_not_playing_a() { ! b_playing_a; }
a_sending_more_than() { local n; n=$(a_sent); [ "${n:-0}" -gt "$1" ]; }
a_source_is_camera() { status 19101 | grep -q '"video_source":"/dev/video'; }

# give_up STEP: a step the rest depends on failed; record what there is and stop.
# The threads (id, name, state, kernel wait) of every process still running, into the logs.
dump_threads() {
  local p t
  for p in "${pids[@]}"; do
    [ -d "/proc/$p" ] || continue
    for t in /proc/"$p"/task/*; do
      echo "$(basename "$t") $(cat "$t/comm") $(sed 's/.*) //; s/ .*//' "$t/stat") $(cat "$t/wchan")"
    done > "$R/logs/threads-$p.txt" 2>&1
  done
}
give_up() {
  say "giving up after $1"
  dump_threads
  snap a-final 19101
  snap b-final 19102
  write_result
  exit 1
}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
}
trap cleanup EXIT

write_result() {
  local IFS=,
  {
    echo "{"
    echo "  \"tone_hz\": $TONE_HZ,"
    echo "  \"kernel\": \"$(uname -r)\","
    echo "  \"modules\": \"$(lsmod | awk 'NR>1{print $1}' | sort | tr '\n' ' ')\","
    echo "  \"uptime_end\": $(now),"
    echo "  \"steps\": [${STEPS[*]}]"
    echo "}"
  } > "$R/result.json"
}

say "drivers: $(ls /dev/video* /dev/dri/card* /dev/gpiochip* 2>&1 | tr '\n' ' ')"
cat /proc/asound/cards
if lsmod | grep -q '^gpio_keys'; then step drivers false "gpio_keys is loaded: it owns the call button"; else
  step drivers "$([ -e /dev/video0 ] && [ -e /dev/dri/card0 ] && [ -e /dev/snd/pcmC0D0c ] && [ -e /dev/gpiochip0 ] && echo true || echo false)"; fi

# The first GStreamer registry scan, once, before the devices start (they share the file).
t0=$(now)
gst-inspect-1.0 kmssink > /dev/null 2>&1
step gst-registry true "scan took $(awk "BEGIN{print $(now)-$t0}") s"

# Tokens for both devices (token_file in their configs).
SECRET=$(grep -o 'server_secret = "[0-9a-f]*"' $C/server.toml | cut -d'"' -f2)
for u in qemu-a qemu-b; do
  $B/roomcam-server token --app-id 4343 --server-secret "$SECRET" --user-id "$u" --ttl 3600 \
    > "/run/roomcam/$u.token" || step token false "$u"
done

# The tone into A's microphone: snd-aloop playback 0,0 comes out at capture 1,0.
# The tone generator and the recorder stand for the world outside the devices (a voice, an
# ear), not for the system under test: they run at nice -15 so that the saturated emulated CPU
# does not starve them into xruns (silence the devices would be blamed for).
speaker-test -D plughw:Loopback,0,0 -c 1 -r 48000 -F S16_LE -t sine -f $TONE_HZ -l 0 \
  > "$R/logs/tone.log" 2>&1 < /dev/null & pids+=($!)
renice -15 -p $! > /dev/null || step tone-priority false "renice failed"

$B/roomcam-server --config $C/server.toml > "$R/logs/server.log" 2>&1 < /dev/null & pids+=($!)
wait_for 30 http_get 18655 /healthz > /dev/null
step server "$(http_get 18655 /healthz > /dev/null && echo true || echo false)"
http_get 18655 /healthz > /dev/null || give_up server

$B/roomcam --config $C/device-a.toml > "$R/logs/device-a.log" 2>&1 < /dev/null & PID_A=$!; pids+=($PID_A)

# Ready = the status endpoint answers: the device serves it only after its buttons are requested.
wait_for 120 status 19101 > /dev/null
step a-ready "$(status 19101 > /dev/null && echo true || echo false)"
status 19101 > /dev/null || give_up a-ready
wait_for 120 a_publishing
step a-publishing "$(a_publishing && echo true || echo false)"
a_publishing || give_up a-publishing
wait_for 60 a_sending_more_than 10
step a-sending "$(a_sending_more_than 10 && echo true || echo false)" "video_frames_sent=$(a_sent)"
a_sending_more_than 10 || give_up a-sending
# B starts once A publishes: two pipelines starting at once on the emulated CPU can miss the
# media code's start deadlines.
# B's GStreamer state changes, kmssink's decisions and ALSA xruns go to their own log: a pipeline that
# does not stop, or a display that shows nothing, shows there.
GST_DEBUG=GST_STATES:4,kmssink:5,alsa:2 GST_DEBUG_NO_COLOR=1 GST_DEBUG_FILE="$R/logs/device-b-gst.log" \
  $B/roomcam --config $C/device-b.toml > "$R/logs/device-b.log" 2>&1 < /dev/null & PID_B=$!; pids+=($PID_B)
snap a-publishing 19101
wait_for 150 b_decoded_at_least 100
step b-decoded-100 "$(b_decoded_at_least 100 && echo true || echo false)" "frames=$(frames_b)"
b_playing_a || give_up b-playing
snap a-playing 19101
snap b-playing 19102

ask screendump-playing screendump playing=bars

# Camera unplugged mid-call: vivid unbound (the node vanishes under A's capture), then unloaded
# once A let go of it, and loaded again.
echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind
step camera-unplugged "$([ -e /dev/video0 ] && echo false || echo true)"
sleep 4
snap a-camera-gone 19101
snap b-camera-gone 19102
ask screendump-camera-unavailable screendump camera-unavailable=other/card
wait_for 30 rmmod vivid
step vivid-unloaded "$(lsmod | grep -q '^vivid' && echo false || echo true)"
if lsmod | grep -q '^vivid'; then
  # Who holds it: open files and memory maps of video/media nodes, per process.
  {
    echo "vivid still in use after 30 s; holders:"
    for p in /proc/[0-9]*; do
      fds=$(ls -l "$p/fd" 2>/dev/null | grep -E 'video|media|v4l' || true)
      maps=$(grep -E 'video|media|v4l' "$p/maps" 2>/dev/null | head -5 || true)
      if [ -n "$fds$maps" ]; then
        echo "== ${p#/proc/} $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-80)"
        echo "$fds"
        echo "$maps"
      fi
    done
  } > "$R/logs/vivid-holders.txt" 2>&1
  # Still held: bring the camera back by binding the driver again, so the rest of the run
  # still tests the resume (the vivid-unloaded step above has failed already).
  echo vivid.0 > /sys/bus/platform/drivers/vivid/bind
else
  modprobe vivid n_devs=1 node_types=0x1
fi
wait_for 10 test -e /dev/video0
step vivid-loaded "$([ -e /dev/video0 ] && echo true || echo false)"
sent=$(a_sent)
wait_for 60 a_source_is_camera
wait_for 60 a_sending_more_than "$(( ${sent:-0} + 30 ))"
step camera-resumed "$(a_source_is_camera && a_sending_more_than "$(( ${sent:-0} + 30 ))" && echo true || echo false)" "sent_before=${sent:-0} now=$(a_sent)"
before=$(frames_b)
wait_for 60 b_decoded_at_least "$(( ${before:-0} + 30 ))"
snap a-resumed 19101
snap b-resumed 19102
ask screendump-camera-resumed screendump camera-resumed=bars

# The recorder behind B's speaker (snd-aloop playback 0,1 comes out at capture 1,1), once B has
# played A for a while: right after B starts, its speaker output goes through a settling phase
# of varying length under TCG (bursts of tone, docs/qemu.md "Status").
wait_for 30 b_audio_steady
step b-audio-steady "$(b_audio_steady && echo true || echo false)"
arecord -D plughw:Loopback,1,1 -f S16_LE -r 48000 -c 1 -d 4 "$R/speaker.wav" \
  > "$R/logs/recorder.log" 2>&1 < /dev/null & REC=$!
renice -15 -p $REC > /dev/null || step recorder-priority false "renice failed"
# B's own view of its mix meanwhile (status audio.mix_*): tells a mix that arrives in bursts
# from an output that loses a steady one.
for i in 1 2 3; do sleep 1; snap "b-recording-$i" 19102; done
wait "$REC"
step recorded "$([ -s "$R/speaker.wav" ] && echo true || echo false)"

# The call button: the host pulses PL061 line 3 (QMP system_powerdown); A ends the call, B sees
# the stream DELETE.
snap b-before-press 19102
ask press press call-button
wait_for 30 a_ended
step a-call-ended "$(a_ended && echo true || echo false)"
wait_for 30 b_not_playing_a
step b-stream-deleted "$(b_not_playing_a && grep -q 'Delete' "$R/logs/device-b.log" && echo true || echo false)"
sleep 3
snap a-ended 19101
snap b-ended 19102
ask screendump-idle screendump idle=card

kill "$PID_A" "$PID_B" 2>/dev/null
wait_for 20 bash -c "! kill -0 $PID_A 2>/dev/null && ! kill -0 $PID_B 2>/dev/null"
step devices-stopped "$(kill -0 "$PID_A" 2>/dev/null || kill -0 "$PID_B" 2>/dev/null && echo false || echo true)"
# A device still running here hangs.
dump_threads
write_result
say "done"
