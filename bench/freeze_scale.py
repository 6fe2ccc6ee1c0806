#!/usr/bin/env python3
"""Freeze time and peak memory against graph size: a chain of
Add -> Shape -> Reshape -> Relu blocks on a `batch`-dynamic input, frozen
with the batch fixed, at several sizes; onnxsim on the same models when it
is installed.

usage: freeze_scale.py --kiln build/kiln [--blocks 2000,8000] [--onnxsim]
(run with a python that has onnx: /usr/bin/python3 or the venv's)
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def chain(blocks):
    nodes, inits = [], [numpy_helper.from_array(np.ones((1, 16), np.float32), "one")]
    prev = "x"
    for i in range(blocks):
        nodes += [
            helper.make_node("Add", [prev, "one"], [f"a{i}"]),
            helper.make_node("Shape", [f"a{i}"], [f"s{i}"]),
            helper.make_node("Reshape", [f"a{i}", f"s{i}"], [f"r{i}"]),
            helper.make_node("Relu", [f"r{i}"], [f"y{i}"]),
        ]
        prev = f"y{i}"
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", 16])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def timed(cmd):
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return dt, int(r.stderr.strip().split("\n")[-1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--blocks", default="2000,8000")
    ap.add_argument("--onnxsim", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(f"{'nodes':>8} {'kiln s':>8} {'kiln MB':>8} {'after':>7}" + ("  onnxsim s" if a.onnxsim else ""))
        for b in map(int, a.blocks.split(",")):
            src, out = os.path.join(d, f"c{b}.onnx"), os.path.join(d, f"f{b}.onnx")
            onnx.save(chain(b), src)
            t, mb = timed([a.kiln, "freeze", src, "-o", out, "--dim", "batch=2", "--quiet"])
            after = len(onnx.load(out).graph.node)
            line = f"{4 * b:>8} {t:>8.2f} {mb:>8.1f} {after:>7}"
            if a.onnxsim:
                ts, _ = timed([sys.executable, "-m", "onnxsim", src, os.path.join(d, "s.onnx"),
                               "--overwrite-input-shape", "x:2,16"])
                line += f"  {ts:>9.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
