"""Reading and judging the QEMU screendumps (and writing them as PNG), standard library only.

QEMU's screendump is taken as PPM (`P6`) and kept as PNG (host.py converts it); check.py reads
the PNGs back. The judgement is about what is on the screen:

  black   almost every pixel dark
  bars    the vivid camera's 75% colour bars: yellow, cyan, green, magenta, red and blue areas
          (at least five of them), left to right in that order
  card    mostly the idle card's background (IDLE_CARD, src/media/screen.rs), with its text
  other   anything else (the camera-unavailable card, a console)
"""

import struct
import zlib

# (name, r, g, b) of the 75% bars vivid draws, in their order from the left.
BARS = [
    ("yellow", 191, 191, 0),
    ("cyan", 0, 191, 191),
    ("green", 0, 191, 0),
    ("magenta", 191, 0, 191),
    ("red", 191, 0, 0),
    ("blue", 0, 0, 191),
]


# The idle card's background colour (0x263040, the screen's `videotestsrc solid-color`).
IDLE_CARD = (0x26, 0x30, 0x40)


class PictureError(Exception):
    """A file that is not the picture it should be."""


def read_ppm(path):
    """(width, height, RGB bytes) of a binary PPM (P6, maxval 255)."""
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise PictureError(f"{path}: not a P6 PPM with maxval 255")
    w, h = int(fields[1]), int(fields[2])
    rgb = data[pos + 1 : pos + 1 + w * h * 3]
    if len(rgb) != w * h * 3:
        raise PictureError(f"{path}: truncated ({len(rgb)} of {w * h * 3} bytes)")
    return w, h, rgb


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png(path, w, h, rgb):
    """An 8-bit RGB PNG, rows unfiltered."""
    rows = b"".join(b"\0" + rgb[y * w * 3 : (y + 1) * w * 3] for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(_chunk(b"IDAT", zlib.compress(rows, 6)))
        f.write(_chunk(b"IEND", b""))


def read_png(path):
    """(width, height, RGB bytes) of an 8-bit RGB or RGBA PNG without interlacing."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise PictureError(f"{path}: not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None:
        raise PictureError(f"{path}: no IHDR")
    w, h, depth, ctype, _c, _f, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise PictureError(f"{path}: only 8-bit RGB/RGBA, non-interlaced PNGs are read")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    out = bytearray()
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if ft == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ft == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif ft == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ft == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        elif ft != 0:
            raise PictureError(f"{path}: bad filter type {ft} in row {y}")
        prev = line
        if bpp == 4:
            del line[3::4]
        out += line
    return w, h, bytes(out)


def classify(w, h, rgb, step=4):
    """What the picture shows: a dict with `kind` (black, bars, other) and the measures."""
    total = dark = card = 0
    cr, cg, cb = IDLE_CARD
    counts = {name: 0 for name, *_ in BARS}
    xsum = {name: 0 for name, *_ in BARS}
    for y in range(0, h, step):
        row = y * w * 3
        for x in range(0, w, step):
            i = row + x * 3
            r, g, b = rgb[i], rgb[i + 1], rgb[i + 2]
            total += 1
            hi, lo = max(r, g, b), min(r, g, b)
            if hi < 24:
                dark += 1
            if abs(r - cr) + abs(g - cg) + abs(b - cb) < 30:
                card += 1
            if hi < 120 or hi - lo < 90:
                continue
            # The nearest bar colour, when it is near enough.
            best, bd = None, 1 << 30
            for name, br, bg, bb in BARS:
                d = (r - br) ** 2 + (g - bg) ** 2 + (b - bb) ** 2
                if d < bd:
                    best, bd = name, d
            if bd < 70**2:
                counts[best] += 1
                xsum[best] += x
    if total == 0:
        raise PictureError("empty picture")
    share = {n: counts[n] / total for n in counts}
    present = [n for n, *_ in BARS if share[n] >= 0.002]
    mean_x = {n: xsum[n] / counts[n] for n in present}
    ordered = all(mean_x[a] < mean_x[b] for a, b in zip(present, present[1:]))
    dark_share = dark / total
    if dark_share > 0.98:
        kind = "black"
    elif len(present) >= 5 and ordered:
        kind = "bars"
    elif card / total > 0.5:
        kind = "card"
    else:
        kind = "other"
    return {
        "kind": kind,
        "width": w,
        "height": h,
        "dark_share": round(dark_share, 4),
        "idle_card_share": round(card / total, 4),
        "bar_share": {n: round(v, 4) for n, v in share.items()},
        "bars_present": present,
        "bars_in_order": ordered,
    }
