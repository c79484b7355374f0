#!/usr/bin/env python3
"""Boots the QEMU guest of the system test and serves its requests until it powers off.

qemu-system-aarch64 -M virt (TCG), Debian's arm64 kernel, the initramfs of initramfs.py, a
virtio GPU (1920x1080 preferred, with the standard modes below it), a raw results disk (the guest
writes a tar to it), no network, the serial console on this process's pipes and QMP on a unix
socket. The guest asks on the console ("@@roomcam <verb> <name> @@"); this side answers
"ok <name>" once done:
  screendump NAME   QMP screendump (PPM), kept as OUT/NAME.png
  screendump NAME=KIND/KIND  the same, retaken once a second (up to 30 s) until the picture is
                    one of those kinds (pictures.classify: bars, card, other, black)
  press NAME        QMP system_powerdown: the virt board pulses PL061 line 3 (the call button);
                    answered once QMP reported the POWERDOWN event
At power-off the results disk is unpacked into OUT/guest. Writes OUT/console.log and OUT/run.json
(boot and run times). Everything it started is gone when it returns, also on a timeout or
Ctrl-C. Only the Python standard library is used.

Usage: host.py --kernel FILE --initrd FILE --out DIR [--timeout SECONDS] [--smp N] [--mem MB]
Exit: 0 when the guest finished and its results were unpacked, 1 otherwise.
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pictures  # noqa: E402  (scripts/qemu/pictures.py)

ASK = re.compile(r"@@roomcam (\S+) (\S+) @@")


# How long a screendump that names the picture it waits for is retaken (once a second).
SCREENDUMP_WAIT_S = 30.0


def screendump(qmp, tmp, out, token):
    """QMP screendump into OUT/NAME.png. TOKEN is NAME, or NAME=KIND/KIND...: then the picture is
    retaken once a second until pictures.classify() calls it one of those kinds, for at most
    SCREENDUMP_WAIT_S (a hang guard: the emulated CPU shows a change seconds late in some runs);
    the last picture is kept either way and check.py judges it."""
    name, _, want = token.partition("=")
    kinds = [k for k in want.split("/") if k]
    ppm = os.path.join(tmp, name + ".ppm")
    start = time.monotonic()
    tries, kind = 0, None
    while True:
        tries += 1
        qmp.execute("screendump", filename=ppm)
        picture = pictures.read_ppm(ppm)
        if not kinds:
            break
        kind = pictures.classify(*picture)["kind"]
        if kind in kinds or time.monotonic() - start >= SCREENDUMP_WAIT_S:
            break
        time.sleep(1.0)
    path = os.path.join(out, name + ".png")
    pictures.write_png(path, *picture)
    os.remove(ppm)
    return {"file": path, "wanted": kinds, "kind": kind, "tries": tries,
            "waited_s": round(time.monotonic() - start, 1)}


class RunTimeout(Exception):
    """The guest did not finish within --timeout."""


class Qmp:
    """A minimal QMP client: one command at a time; events are kept."""

    def __init__(self, path, deadline):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(60)
        self.file = self.sock.makefile("rwb")
        self.events = []
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("QMP closed")
        return json.loads(line)

    def execute(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        while True:
            m = self._read()
            if "event" in m:
                self.events.append(m)
                continue
            if "error" in m:
                raise RuntimeError(f"QMP {cmd}: {m['error'].get('desc')}")
            return m.get("return")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=540)
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--mem", type=int, default=2048)
    ap.add_argument("--qemu", default="qemu-system-aarch64")
    ap.add_argument("--display", default="1920x1080", help="the virtio GPU's preferred mode, WxH")
    a = ap.parse_args()
    try:
        xres, yres = (int(v) for v in a.display.lower().split("x"))
    except ValueError:
        ap.error(f"--display must be WIDTHxHEIGHT, got {a.display!r}")
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="roomcam-qemu-")
    disk = os.path.join(tmp, "results.img")
    with open(disk, "wb") as f:
        f.truncate(256 * 1024 * 1024)
    qmp_path = os.path.join(tmp, "qmp.sock")
    cmd = [
        a.qemu, "-M", "virt", "-cpu", "cortex-a72", "-smp", str(a.smp), "-m", str(a.mem),
        "-nic", "none", "-display", "none", "-monitor", "none", "-serial", "stdio",
        "-no-reboot",
        "-kernel", a.kernel, "-initrd", a.initrd,
        "-append", "console=ttyAMA0 rdinit=/init quiet loglevel=4",
        "-device", f"virtio-gpu-pci,xres={xres},yres={yres}",
        "-drive", f"file={disk},format=raw,if=none,id=results",
        "-device", "virtio-blk-pci,drive=results",
        "-qmp", f"unix:{qmp_path},server=on,wait=off",
    ]
    console = open(os.path.join(out, "console.log"), "w")
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    lines = queue.Queue()

    def reader():
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    run = {"timeout_s": a.timeout, "asks": [], "finished": False}

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    ok = False
    try:
        qmp = Qmp(qmp_path, deadline)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                print("qemu-host: timed out; stopping the guest", file=sys.stderr)
                run["error"] = "timeout"
                raise RunTimeout
            try:
                line = lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                break
            console.write(line)
            console.flush()
            if line.startswith("[guest"):
                sys.stderr.write("qemu-guest: " + line.rstrip() + "\n")
            m = ASK.search(line)
            if not m:
                continue
            verb, name = m.group(1), m.group(2)
            t = round(time.monotonic() - t0, 1)
            if verb == "screendump":
                shot = screendump(qmp, tmp, out, name)
                run["asks"].append({"verb": verb, "name": name, "t": t, **shot})
            elif verb == "press":
                qmp.events.clear()
                qmp.execute("system_powerdown")
                got = any(e.get("event") == "POWERDOWN" for e in qmp.events)
                run["asks"].append({"verb": verb, "name": name, "t": t, "powerdown_event": got})
            else:
                if verb == "finished":
                    run["guest_exit"] = int(name) if name.isdigit() else name
                if verb == "results-written":
                    run["finished"] = True
                if verb == "error":
                    run.setdefault("guest_errors", []).append(name)
                continue
            print(f"qemu-host: {verb} {name} at {t} s", file=sys.stderr)
            proc.stdin.write(f"ok {name}\n".encode())
            proc.stdin.flush()
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    except RunTimeout:
        pass
    except KeyboardInterrupt:
        run["error"] = "interrupted"
    except Exception as e:  # noqa: BLE001 - reported, then everything is cleaned up
        run["error"] = f"{type(e).__name__}: {e}"
        print(f"qemu-host: {run['error']}", file=sys.stderr)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        run["qemu_exit"] = proc.returncode
        run["wall_s"] = round(time.monotonic() - t0, 1)
        console.close()
        try:
            if run["finished"]:
                guest = os.path.join(out, "guest")
                shutil.rmtree(guest, ignore_errors=True)
                with tarfile.open(disk) as tf:
                    if hasattr(tarfile, "data_filter"):
                        tf.extractall(guest, filter="data")
                    else:
                        tf.extractall(guest)
                ok = True
        except (tarfile.TarError, OSError) as e:
            run["error"] = f"results disk: {e}"
        shutil.rmtree(tmp, ignore_errors=True)
        with open(os.path.join(out, "run.json"), "w") as f:
            json.dump(run, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
