#!/usr/bin/env python3
"""Builds the QEMU guest's root file system as one initramfs (a newc cpio archive).

The guest root is a slice of the arm64 sysroot (scripts/sysroot.sh): the programs named in
guest-programs.txt, the GStreamer plugins of guest-plugins.txt, the kernel modules of
guest-modules.txt with the modules they depend on, the paths of guest-paths.txt, and every
shared library those ELF files need (DT_NEEDED, followed through symlinks, RUNPATH and the
loader). Everything else (compilers, headers, documentation, locales, the other 250 MB of
modules) stays out, so the archive is small enough to unpack in seconds under TCG and the
guest's GStreamer registry scan sees only the plugins the call uses.

Our own files are added on top: the guest init, the scenario, the configs and the aarch64
roomcam binaries. The archive is written without root: owners are 0 and /dev/console is a
device entry of the archive itself.

Usage: initramfs.py --sysroot DIR --out FILE --add SRC:DEST[:MODE] ... [--lists DIR]
Prints the kernel image path and the archive size on stdout.
Only the Python standard library is used.
"""

import argparse
import os
import stat
import struct
import sys

LIB_DIRS = ["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib", "usr/lib"]
BIN_DIRS = ["usr/local/bin", "bin", "sbin", "usr/bin", "usr/sbin"]
PLUGIN_DIR = "usr/lib/aarch64-linux-gnu/gstreamer-1.0"


class BuildError(Exception):
    """The sysroot lacks something the guest needs."""


def read_list(path):
    """Non-comment words of a list file, one entry a line."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    return out


def real_in_root(root, path, depth=0):
    """The path inside `root` that `path` (absolute, in the guest's view) resolves to, with
    symlinks followed as the guest would (absolute targets are relative to `root`). Returns the
    resolved guest path and the list of symlinks passed on the way."""
    parts = [p for p in path.split("/") if p]
    cur = ""
    links = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            cur = cur.rsplit("/", 1)[0] if "/" in cur else ""
            continue
        cand = cur + "/" + part
        full = root + cand
        if os.path.islink(full):
            hops += 1
            if hops > 40:
                raise BuildError(f"symlink loop at {cand}")
            links.append(cand)
            target = os.readlink(full)
            if target.startswith("/"):
                cur = ""
            parts = [p for p in target.split("/") if p] + parts
        else:
            cur = cand
    return (cur or "/"), links


def elf_info(data):
    """(DT_NEEDED names, RUNPATH/RPATH entries, interpreter) of a 64-bit little-endian ELF file,
    or None when `data` is not one."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dyn, interp = [], None, None
    for i in range(phnum):
        p_type, _flags, off, vaddr, _pa, filesz, _memsz, _al = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize
        )
        if p_type == 1:
            loads.append((vaddr, off, filesz))
        elif p_type == 2:
            dyn = (off, filesz)
        elif p_type == 3:
            interp = data[off : off + filesz].rstrip(b"\0").decode()
    if dyn is None:
        return [], [], interp
    needed, paths, strtab = [], [], None
    for off in range(dyn[0], dyn[0] + dyn[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        if tag == 1:
            needed.append(val)
        elif tag in (15, 29):
            paths.append(val)
        elif tag == 5:
            strtab = val
    if strtab is None:
        return [], [], interp
    base = None
    for vaddr, off, size in loads:
        if vaddr <= strtab < vaddr + size:
            base = strtab - vaddr + off
    if base is None:
        return [], [], interp

    def string(i):
        end = data.index(b"\0", base + i)
        return data[base + i : end].decode()

    runpath = []
    for p in paths:
        runpath.extend(x for x in string(p).split(":") if x)
    return [string(n) for n in needed], runpath, interp


class Slice:
    """The set of guest paths to copy from the sysroot."""

    def __init__(self, root):
        self.root = root.rstrip("/")
        self.paths = set()
        self.seen_elf = set()
        self.missing = []
        self.links = {}

    def add_path(self, guest_path):
        """Adds a path (and the symlinks leading to it, and its parents); follows ELF needs."""
        real, links = real_in_root(self.root, guest_path)
        if not os.path.lexists(self.root + real):
            raise BuildError(f"{guest_path}: not in the sysroot")
        for p in links + [real]:
            self.paths.add(p)
        if os.path.isdir(self.root + real):
            for dirpath, dirnames, filenames in os.walk(self.root + real):
                rel = dirpath[len(self.root) :]
                for n in dirnames + filenames:
                    p = rel + "/" + n
                    self.paths.add(p)
                    if n in filenames and not os.path.islink(self.root + p):
                        self.follow_elf(p)
        else:
            self.follow_elf(real)
        return real

    def follow_elf(self, real):
        if real in self.seen_elf:
            return
        self.seen_elf.add(real)
        try:
            with open(self.root + real, "rb") as f:
                head = f.read(4)
                if head != b"\x7fELF":
                    return
                data = head + f.read()
        except OSError:
            return
        info = elf_info(data)
        if info is None:
            return
        needed, runpath, interp = info
        if interp:
            self.add_path(interp)
        origin = os.path.dirname(real)
        dirs = [r.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for r in runpath]
        dirs += ["/" + d for d in LIB_DIRS]
        for name in needed:
            for d in dirs:
                cand = d.rstrip("/") + "/" + name
                r, _ = real_in_root(self.root, cand)
                if os.path.isfile(self.root + r):
                    self.add_path(cand)
                    break
            else:
                if not self.add_alternative(name):
                    self.missing.append(f"{real} needs {name}")

    def add_alternative(self, name):
        """A library that Debian provides through update-alternatives (libblas.so.3 in
        blas/, ...), which an unconfigured sysroot has no link for: link it into the main
        library directory, as the alternative would."""
        main = "/" + LIB_DIRS[1]
        for sub in sorted(os.listdir(self.root + main)):
            cand = f"{main}/{sub}/{name}"
            if os.path.isdir(self.root + main + "/" + sub) and os.path.isfile(self.root + cand):
                self.add_path(cand)
                self.links[f"{main}/{name}"] = f"{sub}/{name}"
                return True
        return False

    def add_program(self, name):
        for d in BIN_DIRS:
            p = "/" + d + "/" + name
            if os.path.lexists(self.root + p):
                return self.add_path(p)
        raise BuildError(f"program {name}: not in the sysroot's {', '.join(BIN_DIRS)}")


def module_closure(root, release, names):
    """The module files (guest paths) for `names` and everything they depend on, read from each
    module's .modinfo `depends=` (the sysroot's modules were never depmod-ed)."""
    base = f"/lib/modules/{release}"
    by_name = {}
    for dirpath, _dirs, files in os.walk(root + base + "/kernel"):
        for f in files:
            if f.endswith(".ko"):
                by_name[f[:-3].replace("-", "_")] = dirpath[len(root) :] + "/" + f
    out, todo = set(), [n.replace("-", "_") for n in names]
    while todo:
        n = todo.pop()
        if n not in by_name:
            raise BuildError(f"kernel module {n}: not in {base} (built in, or misspelt?)")
        path = by_name[n]
        if path in out:
            continue
        out.add(path)
        with open(root + path, "rb") as f:
            data = f.read()
        i = data.find(b"\0depends=")
        if i >= 0:
            end = data.index(b"\0", i + 1)
            deps = data[i + 9 : end].decode()
            todo.extend(d.replace("-", "_") for d in deps.split(",") if d)
    return sorted(out), base


def kernel_release(root):
    mods = os.listdir(root + "/lib/modules")
    if len(mods) != 1:
        raise BuildError(f"expected one kernel in {root}/lib/modules, found {mods}")
    return mods[0]


class Cpio:
    """A newc ("070701") archive writer."""

    def __init__(self, f):
        self.f = f
        self.ino = 1

    def entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.lstrip("/").encode() + b"\0"
        hdr = "070701" + "".join(
            f"{v:08x}"
            for v in (
                self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0,
            )
        )
        self.ino += 1
        self.f.write(hdr.encode() + name_b)
        self.f.write(b"\0" * ((-(110 + len(name_b))) % 4))
        self.f.write(data)
        self.f.write(b"\0" * ((-len(data)) % 4))

    def trailer(self):
        self.entry("TRAILER!!!", 0)
        self.f.write(b"\0" * ((-self.f.tell()) % 512))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sysroot", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lists", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--add", action="append", default=[], help="SRC:DEST[:MODE] (octal)")
    a = ap.parse_args()
    root = os.path.abspath(a.sysroot)
    try:
        sl = Slice(root)
        release = kernel_release(root)
        for name in read_list(os.path.join(a.lists, "guest-programs.txt")):
            sl.add_program(name)
        for name in read_list(os.path.join(a.lists, "guest-plugins.txt")):
            sl.add_path(f"/{PLUGIN_DIR}/libgst{name}.so")
        for p in read_list(os.path.join(a.lists, "guest-paths.txt")):
            sl.add_path(p)
        mods, mbase = module_closure(
            root, release, read_list(os.path.join(a.lists, "guest-modules.txt"))
        )
        for m in mods:
            sl.add_path(m)
        for f in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
            if os.path.exists(root + mbase + "/" + f):
                sl.add_path(mbase + "/" + f)
        extra = []
        for spec in a.add:
            parts = spec.split(":")
            if len(parts) not in (2, 3):
                raise BuildError(f"--add {spec}: use SRC:DEST[:MODE]")
            mode = int(parts[2], 8) if len(parts) == 3 else None
            with open(parts[0], "rb") as f:
                data = f.read()
            if mode is None:
                mode = stat.S_IMODE(os.stat(parts[0]).st_mode)
            extra.append((parts[1], data, mode))
            info = elf_info(data)
            if info is not None:
                for name in info[0]:
                    for d in LIB_DIRS:
                        if os.path.isfile(root + real_in_root(root, f"/{d}/{name}")[0]):
                            sl.add_path(f"/{d}/{name}")
                            break
                    else:
                        if not sl.add_alternative(name):
                            sl.missing.append(f"{parts[0]} needs {name}")
                if info[2]:
                    sl.add_path(info[2])
        if sl.missing:
            raise BuildError("unresolved libraries:\n  " + "\n  ".join(sorted(set(sl.missing))))
    except BuildError as e:
        print(f"initramfs: {e}", file=sys.stderr)
        return 2

    # Parents of everything, then the entries in path order (a directory before its contents).
    paths = set(sl.paths)
    for p in list(paths) + [d for d, _, _ in extra]:
        d = os.path.dirname(p)
        while d not in ("/", ""):
            paths.add(d)
            d = os.path.dirname(d)
    extra_names = {d for d, _, _ in extra}
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        c = Cpio(f)
        for d in ("/dev", "/proc", "/sys", "/run", "/tmp", "/results"):
            if d not in paths:
                c.entry(d, stat.S_IFDIR | 0o755)
        c.entry("/dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
        for p in sorted(paths):
            if p in extra_names:
                continue
            full = root + p
            if not os.path.lexists(full):  # a parent of one of our own files
                c.entry(p, stat.S_IFDIR | 0o755)
                continue
            st = os.lstat(full)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                c.entry(p, stat.S_IFLNK | 0o777, os.readlink(full).encode())
            elif stat.S_ISDIR(st.st_mode):
                c.entry(p, stat.S_IFDIR | perm)
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as src:
                    c.entry(p, stat.S_IFREG | perm, src.read())
        for dest, data, mode in extra:
            c.entry(dest, stat.S_IFREG | mode, data)
        for link, target in sorted(sl.links.items()):
            c.entry(link, stat.S_IFLNK | 0o777, target.encode())
        c.trailer()
    os.replace(tmp, a.out)
    print(f"{root}/boot/vmlinuz-{release} {os.path.getsize(a.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
