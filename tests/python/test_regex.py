"""RegexFullMatch (opset 20) against Python's re.fullmatch with re.ASCII (RE2's
classes are ASCII), on patterns whose meaning RE2 and Python share: classes,
escapes, anchors, word boundaries, groups, alternation, counted and lazy
repetition, UTF-8 text. Also checks that syntax RE2 lacks (backreferences,
lookaround) is refused with a message, and that a pattern which backtracking
engines take exponential time on runs at once."""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402

PATTERNS = [
    r"a*b", r"(a|ab)(c|bcd)(d*)", r"[^a-c]+x?", r"\d{2,4}-\w+", r"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)",
    r"www\.[\w.-]+\.\bcom\b", r".*", r"", r"a{3}", r"a{2,}b+?", r"(?:ab)+|c", r"\bfoo\b.*", r"[]a]+", r"[\s\S]*z",
    "\u00e9+.", r"x\B.", r"(a*)*b", r"[a-]+", r"^a$|b", r"\.\*\+\?\(\)", r"[\d\s]+", r"\S+\s\S+", r"(?P<w>\w+)!",
    r"[^\n]*", r"a??b*?c{0,2}?", r"(a|b|)+c", r"[A-Fa-f0-9]{2}(:[A-Fa-f0-9]{2}){5}",
]
STRINGS = [
    "", "a", "b", "ab", "aab", "abcd", "abbcd", "xyz", "12-ab_c", "1234-x", "12345-x", "foo@gmail.com",
    " x.y@yahoo.com ", "www.abc.com", "www.a-b.c.com", "www.abc.comx", "foo bar", "foo", "aaa", "aaaa", "ababc", "c",
    "]a]", "a\nz", "\u00e9\u00e9!", "\u00e9a", "xy", "x y", "a-a-", "abbb", ".*+?()", "\n", "1 2 3", "word!",
    "bac", "cc", "acc", "00:1a:2B:3c:4D:5e", "00:1a:2B:3c:4D", "abababc",
]


def model(path, pattern):
    node = helper.make_node("RegexFullMatch", ["x"], ["y"], pattern=pattern)
    g = helper.make_graph([node], "rx", [helper.make_tensor_value_info("x", TensorProto.STRING, [None])],
                          [helper.make_tensor_value_info("y", TensorProto.BOOL, [None])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), path)


def run(kiln, tmp, pattern, strings):
    m, xp, out = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "x.pb"), os.path.join(tmp, "out")
    model(m, pattern)
    t = helper.make_tensor("x", TensorProto.STRING, [len(strings)], [s.encode() for s in strings])
    with open(xp, "wb") as f:
        f.write(t.SerializeToString())
    r = subprocess.run([kiln, "run", m, "-i", f"x=@{xp}", "--out", out], capture_output=True, text=True, timeout=60)
    return r, (np.load(os.path.join(out, "y.npy")) if r.returncode == 0 else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    args = ap.parse_args()
    t = Tally("regex")
    with tempfile.TemporaryDirectory(prefix="kiln-rx-") as tmp:
        for p in PATTERNS:
            want = np.array([re.fullmatch(p, s, re.ASCII) is not None for s in STRINGS])  # RE2 classes are ASCII
            r, got = run(args.kiln, tmp, p, STRINGS)
            if t.ok(r.returncode == 0, f"pattern {p!r} runs", r.stderr.strip()):
                bad = [STRINGS[i] for i in range(len(STRINGS)) if got[i] != want[i]]
                t.ok(not bad, f"pattern {p!r} matches as re.fullmatch", f"differs on {bad!r}")
        for p in [r"(a)\1", r"a(?=b)", r"(?<=a)b", r"a{2000}", r"[a", r"(a"]:
            r, _ = run(args.kiln, tmp, p, ["a"])
            t.ok(r.returncode != 0 and "pattern" in r.stderr, f"pattern {p!r} is refused", r.stderr.strip())
        s = "a" * 5000
        start = time.time()
        r, got = run(args.kiln, tmp, r"(a*)*(a|b)*c", [s, s + "c"])
        t.ok(r.returncode == 0 and list(got) == [False, True] and time.time() - start < 20,
             "a pathological pattern runs in linear time", r.stderr.strip())
    t.finish()


if __name__ == "__main__":
    main()
