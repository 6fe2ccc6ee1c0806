#!/usr/bin/env python3
"""Prints the operator table of docs/CONVERT.md: for every ai.onnx operator in
ONNX's node tests, the lowest opset `kiln convert` brings one of its tests down
to (a bisection over opsets of the test models, conversion only), and how.

  /opt/kiln-venv/bin/python scripts/convert_table.py build/kiln [/work/onnx123/node]
"""
import collections
import json
import re
import os
import subprocess
import sys
import tempfile

import onnx
from onnx import defs


def opset_of(m):
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 0


def convert(kiln, model, opset, tmp):
    out, rep = os.path.join(tmp, "o.onnx"), os.path.join(tmp, "r.json")
    r = subprocess.run([kiln, "convert", model, "-o", out, "--opset", str(opset), "--quiet", "--report", rep],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    with open(rep) as f:
        return json.load(f)["convert"]["changes"]


def generic(how):
    """A change's text without the values particular to one test."""
    how = re.sub(r"'[^']*'", "'..'", how) if "attribute" in how or "input '" in how else how
    return re.sub(r"(?<![A-Za-z-])-?\d+(?![\d-]*[A-Za-z])", "N", how)


def main():
    kiln = sys.argv[1]
    node = sys.argv[2] if len(sys.argv) > 2 else "/work/onnx123/node"
    hist = collections.defaultdict(list)
    for s in defs.get_all_schemas_with_history():
        if s.domain in ("", "ai.onnx") and s.since_version <= 28:
            hist[s.name].append(s.since_version)
    tests = collections.defaultdict(list)  # op -> [(dir, opset)]
    for d in sorted(os.listdir(node)):
        if d.endswith("_expanded") or "_expanded_" in d:
            continue
        p = os.path.join(node, d, "model.onnx")
        if not os.path.exists(p):
            continue
        m = onnx.load(p, load_external_data=False)
        ops = {n.op_type for n in m.graph.node if n.domain in ("", "ai.onnx")}
        if len(ops) == 1:
            tests[ops.pop()].append((p, opset_of(m)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for op in sorted(tests):
            best, how = None, set()
            for p, v in tests[op][:6]:
                lo, hi = 1, v  # hi converts (itself)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if convert(kiln, p, mid, tmp) is not None:
                        hi = mid
                    else:
                        lo = mid + 1
                ch = convert(kiln, p, hi, tmp) or []
                if best is None or hi < best:
                    best, how = hi, set()
                if hi == best:
                    how |= {generic(c["how"]) for c in ch if c["op"] == op}
            first = min(hist[op]) if hist[op] else "?"
            versions = ", ".join(str(v) for v in sorted(hist[op]))
            h = "; ".join(sorted(how)) if how else "schema checked, opset relabelled"
            rows.append(f"| {op} | {versions} | {best} | {h} |")
    print("| operator | schema versions | lowest opset reached | how |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
