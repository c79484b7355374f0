#!/usr/bin/env python3
"""Tests of the QEMU test's judges (pictures.py, check.py's tone) on pictures and sounds made
here: colour bars like vivid's, black, the idle card, a sine and silence. A judge that calls
everything "bars" or every sound "880 Hz" fails here before it can pass a broken run.
Run: python3 scripts/qemu/test_judges.py
"""

import math
import os
import struct
import sys
import tempfile
import unittest
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402
import pictures  # noqa: E402

W, H = 320, 180


def picture(fill):
    rgb = bytearray(W * H * 3)
    for y in range(H):
        for x in range(W):
            rgb[(y * W + x) * 3 : (y * W + x) * 3 + 3] = bytes(fill(x, y))
    return bytes(rgb)


def vivid_bars(x, _y, order=None):
    # white, yellow, cyan, green, magenta, red, blue, black: 8 bars of 75% like vivid's.
    cols = [(191, 191, 191)] + [c[1:] for c in (order or pictures.BARS)] + [(0, 0, 0)]
    return cols[x * 8 // W]


class Pictures(unittest.TestCase):
    def roundtrip(self, rgb):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "p.png")
            pictures.write_png(p, W, H, rgb)
            w, h, back = pictures.read_png(p)
        self.assertEqual((w, h, back), (W, H, rgb))
        return pictures.classify(w, h, back, step=2)

    def test_bars(self):
        self.assertEqual(self.roundtrip(picture(vivid_bars))["kind"], "bars")

    def test_bars_in_a_corner_of_a_black_screen(self):
        pic = picture(lambda x, y: vivid_bars(x * 3, y) if x < W // 3 and y < H // 3 else (0, 0, 0))
        self.assertEqual(self.roundtrip(pic)["kind"], "bars")

    def test_bars_in_another_order_are_not_vivid(self):
        shuffled = list(reversed(pictures.BARS))
        pic = picture(lambda x, y: vivid_bars(x, y, shuffled))
        self.assertEqual(self.roundtrip(pic)["kind"], "other")

    def test_black(self):
        self.assertEqual(self.roundtrip(picture(lambda x, y: (3, 3, 3)))["kind"], "black")

    def test_idle_card_with_text(self):
        pic = picture(lambda x, y: (230, 230, 230) if 60 < y < 80 and 100 < x < 220 else pictures.IDLE_CARD)
        self.assertEqual(self.roundtrip(pic)["kind"], "card")

    def test_grey_card_is_other(self):
        self.assertEqual(self.roundtrip(picture(lambda x, y: (90, 90, 90)))["kind"], "other")

    def test_ppm(self):
        rgb = picture(vivid_bars)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "p.ppm")
            with open(p, "wb") as f:
                f.write(b"P6\n# comment\n%d %d\n255\n" % (W, H) + rgb)
            self.assertEqual(pictures.read_ppm(p), (W, H, rgb))


RATE = 48000
BLOCK = 1920  # 40 ms, the judge's block


def sine(f_hz, i, amp=8000, rate=RATE):
    return int(amp * math.sin(2 * math.pi * f_hz * i / rate))


def wav_of(path, sample, seconds=2, rate=RATE):
    """A mono S16 WAV whose i-th sample is `sample(i)`."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(seconds * rate)
        w.writeframes(struct.pack(f"<{n}h", *(sample(i) for i in range(n))))


def wav(path, f_hz, seconds=3, amp=8000, rate=RATE):
    wav_of(path, lambda i: sine(f_hz, i, amp, rate), seconds, rate)


def judge_made(sample):
    """check.tone(…, 880) of two seconds made by `sample`."""
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.wav")
        wav_of(p, sample)
        return check.tone(p, 880)


class Tone(unittest.TestCase):
    def judge(self, f_hz, amp=8000):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "t.wav")
            wav(p, f_hz, amp=amp)
            return check.tone(p, 880)

    def test_the_tone(self):
        t = self.judge(880)
        self.assertLess(abs(t["peak_hz"] - 880), 10)
        self.assertLess(abs(t["zero_crossing_hz"] - 880), 10)
        self.assertGreater(t["tone_to_neighbours_db"], 20)
        self.assertGreater(t["rms"], 200)

    def test_another_tone(self):
        t = self.judge(440)
        self.assertLess(abs(t["peak_hz"] - 440), 13)
        self.assertGreater(abs(t["zero_crossing_hz"] - 880), 100)
        self.assertLess(t["tone_to_neighbours_db"], 0)

    def test_silence(self):
        t = self.judge(880, amp=0)
        self.assertLess(t["rms"], 1)
        self.assertEqual(t["sounding_share"], 0)

    def judge_gappy(self, f_hz, silent_every):
        """A tone with every `silent_every`-th 40 ms block silent (dropped audio)."""
        return judge_made(lambda i: 0 if (i // BLOCK) % silent_every == 0 else sine(f_hz, i))

    def test_the_tone_with_gaps(self):
        # A third of the blocks dropped: still the tone at its frequency.
        t = self.judge_gappy(880, 3)
        self.assertLess(abs(t["peak_hz"] - 880), 26)
        self.assertGreater(t["tone_to_neighbours_db"], 20)
        self.assertGreaterEqual(t["sounding_share"], 0.5)

    def test_the_tone_with_clicks(self):
        # Every 40 ms block starts with a full-scale click (dropouts, concealment): the zero
        # crossings climb, the strongest frequency stays the tone's.
        t = judge_made(lambda i: (30000 if (i // 8) % 2 else -30000) if i % BLOCK < 96 else sine(880, i))
        self.assertLess(abs(t["peak_hz"] - 880), 26)
        self.assertGreater(t["zero_crossing_hz"], 880 * 1.1)

    def test_bursts_of_the_tone_are_heard_and_their_share_reported(self):
        # Every block but one in three silent: the tone is there, a third of the time.
        t = judge_made(lambda i: sine(880, i) if (i // BLOCK) % 3 == 0 else 0)
        self.assertLess(t["sounding_share"], 0.4)
        self.assertTrue(check.heard(t, 880), t)

    def test_a_moment_of_sound_is_not_enough(self):
        # 0.2 s of the tone in 2 s of silence: too little to judge a frequency on.
        t = judge_made(lambda i: sine(880, i) if i < RATE // 5 else 0)
        self.assertAlmostEqual(t["sounding_s"], 0.2, delta=0.05)
        self.assertFalse(check.heard(t, 880), t)

    def test_silence_and_another_tone_are_not_heard(self):
        self.assertFalse(check.heard(self.judge(880, amp=0), 880))
        self.assertFalse(check.heard(self.judge(440), 880))
        self.assertTrue(check.heard(self.judge(880), 880))

    def test_another_tone_with_gaps(self):
        t = self.judge_gappy(440, 3)
        self.assertLess(abs(t["peak_hz"] - 440), 13)
        self.assertLess(t["tone_to_neighbours_db"], 0)


if __name__ == "__main__":
    unittest.main()
