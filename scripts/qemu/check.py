#!/usr/bin/env python3
"""Judges one QEMU system-test run from what it left in OUT (host.py's output directory):

  run.json                  the host side: guest finished, POWERDOWN seen, wall time
  guest/result.json         the guest's steps (drivers, waits met, button, camera unplug ...)
  guest/status/*.json       device A's and B's GET /status at each step
  guest/speaker.wav         what the recorder heard from device B's speaker
  playing.png ... idle.png  the screendumps of B's KMS display

Writes OUT/report.json (every check with its evidence) and prints one line per check.
Exit 0 when every check passed, 1 otherwise, 2 when the run left nothing to judge.
Usage: check.py OUT
Only the Python standard library is used.
"""

import json
import math
import os
import struct
import sys
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pictures  # noqa: E402  (scripts/qemu/pictures.py)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def player(status, stream_id):
    for p in (status or {}).get("players") or []:
        if p.get("stream_id") == stream_id:
            return p
    return None


def goertzel_power(samples, rate, freq):
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - k * s1 * s2) / len(samples) ** 2


def peak_hz(block, rate, lo=200.0, hi=4000.0):
    """The strongest frequency of `block`: a Goertzel scan every 20 Hz, refined every 2 Hz."""
    best = max((goertzel_power(block, rate, f), f) for f in frange(lo, hi, 20.0))[1]
    return max((goertzel_power(block, rate, f), f) for f in frange(best - 20, best + 20, 2.0))[1]


def frange(lo, hi, step):
    n = int((hi - lo) / step) + 1
    return [lo + i * step for i in range(n)]


# At least this much of the recording must carry sound for its frequency to be judged.
MIN_TONE_S = 0.4


def tone(path, want_hz):
    """The recording's level and frequency near `want_hz`, judged on the 40 ms blocks that carry
    sound: an emulated guest drops and clicks audio now and then, and neither the gaps nor the
    clicks may decide. Per sounding block: its strongest frequency (a Goertzel scan, so clicks'
    broadband energy does not move it as it moves a zero-crossing count) and its power at
    `want_hz` against neighbours an octave away; the medians are reported, with the seconds and
    the share of the recording that carry sound, and the zero-crossing rate for reference."""
    with wave.open(path) as w:
        rate, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(n)
    if width != 2 or ch != 1:
        return {"error": f"expected mono S16, got {ch} channels of {width * 8} bits"}
    count = len(raw) // 2
    samples = struct.unpack(f"<{count}h", raw[: count * 2])
    if not samples:
        return {"error": "empty recording"}
    rms = math.sqrt(sum(x * x for x in samples) / len(samples))
    block = rate // 25
    blocks = [samples[i : i + block] for i in range(0, len(samples) - block + 1, block)]
    sounding = [b for b in blocks if math.sqrt(sum(x * x for x in b) / len(b)) > 200]
    zc, ratio, peaks = [], [], []
    for b in sounding:
        crossings = sum(1 for x, y in zip(b, b[1:]) if (x < 0) != (y < 0))
        zc.append(crossings / 2 / (len(b) / rate))
        p_tone = goertzel_power(b, rate, want_hz)
        p_other = max(goertzel_power(b, rate, f) for f in (want_hz / 2, want_hz * 1.5, want_hz * 2))
        ratio.append(10 * math.log10((p_tone + 1e-9) / (p_other + 1e-9)))
        peaks.append(peak_hz(b, rate))
    median = lambda v: sorted(v)[len(v) // 2] if v else 0.0
    return {
        "rate": rate,
        "seconds": round(count / rate, 2),
        "rms": round(rms, 1),
        "sounding_share": round(len(sounding) / max(len(blocks), 1), 2),
        "sounding_s": round(len(sounding) * block / rate, 2),
        "peak_hz": round(median(peaks), 1),
        "zero_crossing_hz": round(median(zc), 1),
        "tone_to_neighbours_db": round(median(ratio), 1),
    }


def heard(t, want_hz):
    """Whether a `tone` result carries the tone `want_hz`: at least MIN_TONE_S of sound, whose
    strongest frequency is within 3 % of it and 15 dB above the neighbours. How much of the
    recording sounds is reported, not judged: under TCG it measures the emulator's speed (the
    devices' audio threads are held up), not whether the path from A's microphone to B's
    speaker works (docs/qemu.md "Status")."""
    return ("error" not in t and t["sounding_s"] >= MIN_TONE_S
            and abs(t["peak_hz"] - want_hz) < 0.03 * want_hz and t["tone_to_neighbours_db"] > 15)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    run = load(os.path.join(out, "run.json"))
    result = load(os.path.join(out, "guest", "result.json"))
    checks = []

    def check(name, ok, evidence):
        checks.append({"name": name, "ok": bool(ok), "evidence": evidence})

    if run is None:
        print(f"check: no {out}/run.json: the run did not happen", file=sys.stderr)
        return 2
    check("guest finished and wrote its results", run.get("finished") and result is not None,
          {k: run.get(k) for k in ("finished", "guest_exit", "error", "wall_s", "qemu_exit")})
    check("whole QEMU run under 10 minutes", (run.get("wall_s") or 1e9) < 600,
          {"wall_s": run.get("wall_s")})
    result = result or {}
    steps = {s["name"]: s for s in result.get("steps", [])}

    def step_ok(name, label):
        s = steps.get(name)
        check(label, s is not None and s.get("ok") is True, s or "step missing")

    st = lambda n: load(os.path.join(out, "guest", "status", n + ".json")) or {}  # noqa: E731
    step_ok("drivers", "real drivers present (vivid, snd-aloop, virtio-gpu, PL061), no gpio_keys")
    mods = result.get("modules", "")
    check("vivid, snd_aloop and virtio_gpu loaded",
          all(m in mods.split() for m in ("vivid", "snd_aloop", "virtio_gpu")), mods)

    # A captures from vivid through `auto`.
    a_pub = st("a-playing").get("publisher", {})
    check("device A publishes the vivid camera picked by auto",
          a_pub.get("state") == "PUBLISHING" and str(a_pub.get("video_source", "")).startswith("/dev/video"),
          {k: a_pub.get(k) for k in ("state", "video_source", "encoder", "video_frames_sent")})

    # B decodes A's stream.
    b_play = player(st("b-playing"), "qemu-a-main") or {}
    b_end = player(st("b-before-press"), "qemu-a-main") or {}
    frames = max(b_play.get("video_frames_decoded", 0), b_end.get("video_frames_decoded", 0))
    check("device B decoded at least 100 of A's video frames", frames >= 100,
          {"video_frames_decoded": frames, "width": b_play.get("width"), "height": b_play.get("height")})

    # Pictures.
    pics = {}
    for name in ("playing", "camera-unavailable", "camera-resumed", "idle"):
        path = os.path.join(out, name + ".png")
        try:
            pics[name] = pictures.classify(*pictures.read_png(path))
        except (OSError, pictures.PictureError) as e:
            pics[name] = {"kind": "missing", "error": str(e)}
    check("screen while playing shows A's video (vivid bars)", pics["playing"]["kind"] == "bars", pics["playing"])
    check("screen with the camera unplugged is not the camera and not black",
          pics["camera-unavailable"]["kind"] in ("other", "card"), pics["camera-unavailable"])
    check("screen after the camera came back shows the vivid bars again",
          pics["camera-resumed"]["kind"] == "bars", pics["camera-resumed"])
    check("screen after the call is the idle card", pics["idle"]["kind"] == "card", pics["idle"])
    # B's `[display] mode` (scripts/test-qemu.sh sets it; `auto`: the GPU's preferred mode).
    b_mode = os.environ.get("ROOMCAM_QEMU_B_MODE", "640x480")
    want_size = os.environ.get("ROOMCAM_QEMU_DISPLAY", "1920x1080") if b_mode == "auto" else b_mode
    b_screen = st("b-playing").get("screen") or {}
    sizes = {n: f'{p.get("width")}x{p.get("height")}' for n, p in pics.items()}
    check(f"B's display runs the mode its config asks for ({want_size})",
          f'{b_screen.get("width")}x{b_screen.get("height")}' == want_size
          and all(v == want_size for v in sizes.values()),
          {"status": {k: b_screen.get(k) for k in ("connector", "width", "height")}, "screendumps": sizes})

    # Sound.
    want = result.get("tone_hz", 880)
    wav = os.path.join(out, "guest", "speaker.wav")
    t = tone(wav, want) if os.path.exists(wav) else {"error": "no recording"}
    # B's view of its mix during the recording (evidence only: where audio is lost).
    t["b_during_recording"] = [
        {**{k: st(f"b-recording-{i}").get("audio", {}).get(k)
            for k in ("mix_tone_hz", "mix_sounding_share", "mix_buffers")},
         **{k: (player(st(f"b-recording-{i}"), "qemu-a-main") or {}).get(k)
            for k in ("audio_frames_received", "audio_frames_decoded", "audio_frames_dropped",
                      "late_frames", "playout_adjustments")}}
        for i in (1, 2, 3)
    ]
    check("the speaker recording carries A's tone at its frequency", heard(t, want), t)

    # Camera hot-plug.
    step_ok("camera-unplugged", "vivid unbound mid-call")
    step_ok("vivid-unloaded", "vivid unloaded after A released it")
    step_ok("vivid-loaded", "vivid loaded again")
    gone = st("a-camera-gone").get("publisher", {})
    check("device A reports the camera unavailable while it is gone (and keeps publishing)",
          gone.get("camera_unavailable") is True and gone.get("state") == "PUBLISHING", gone)
    step_ok("camera-resumed", "device A resumed the camera by itself")
    back = st("a-resumed").get("publisher", {})
    check("device A publishes the camera again, not the card",
          back.get("camera_unavailable") is False and str(back.get("video_source", "")).startswith("/dev/video"),
          back)

    # Call button.
    press = [x for x in run.get("asks", []) if x.get("verb") == "press"]
    check("QMP system_powerdown pressed the button (POWERDOWN event)",
          bool(press) and press[0].get("powerdown_event"), press)
    step_ok("a-call-ended", "device A ended the call on the button press")
    a_end = st("a-ended")
    check("device A is out of the call and no longer publishes",
          a_end.get("call") in ("standby", "idle") and a_end.get("publisher", {}).get("state") == "NO_PUBLISH",
          {"call": a_end.get("call"), "publisher": a_end.get("publisher", {}).get("state")})
    step_ok("b-stream-deleted", "device B saw A's stream DELETE")
    b_ended = st("b-ended")
    check("device B no longer plays A", "call" in b_ended and player(b_ended, "qemu-a-main") is None,
          b_ended.get("players", "no status"))
    step_ok("devices-stopped", "both devices stopped on SIGTERM")

    report = {"checks": checks, "frames_decoded": frames, "wall_s": run.get("wall_s"),
              "guest_steps": result.get("steps", [])}
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    failed = [c for c in checks if not c["ok"]]
    for c in checks:
        print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}")
        if not c["ok"]:
            print(f"     {json.dumps(c['evidence'])[:400]}")
    print(f"check: {len(checks) - len(failed)}/{len(checks)} passed; B decoded {frames} frames; "
          f"QEMU run {run.get('wall_s')} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
