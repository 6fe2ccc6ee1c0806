"""MaxPool (float32, 1-D and 2-D) against onnxruntime over windows, strides,
pads, ceil_mode and widths around the 16-output vector blocks (the last
block of a row is shifted back to end at the last window inside the row).

usage: test_maxpool.py KILN
"""
import itertools
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h

KILN = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="kiln-maxpool-")
RNG = np.random.default_rng(3)


def case(shape, k, s, p, ceil):
    nsp = len(shape) - 2
    attrs = dict(kernel_shape=[k] * nsp, strides=[s] * nsp, pads=[p] * (2 * nsp), ceil_mode=ceil)
    g = h.make_graph([h.make_node("MaxPool", ["x"], ["y"], **attrs)], "g", [h.make_tensor_value_info("x", T.FLOAT, shape)],
                     [h.make_tensor_value_info("y", T.FLOAT, None)])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    path = os.path.join(TMP, "m.onnx")
    onnx.save(m, path)
    x = RNG.standard_normal(shape).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.save(os.path.join(TMP, "x.npy"), x)
    out = os.path.join(TMP, "out")
    for threads in ("1", "2"):
        r = subprocess.run([KILN, "run", path, "-i", "x=@" + os.path.join(TMP, "x.npy"), "--out", out, "--threads",
                            threads], capture_output=True, text=True)
        if r.returncode != 0:
            return "kiln failed: " + r.stderr.strip()
        got = np.load(os.path.join(out, "y.npy"))
        if got.shape != want.shape or not np.array_equal(got, want):
            return "differs (shape %s vs %s)" % (got.shape, want.shape)
    return None


def main():
    bad = total = 0
    widths = [1, 5, 16, 17, 18, 31, 33, 34, 35, 47, 56, 57, 112, 113]
    for w, k, s, p, ceil in itertools.product(widths, [2, 3, 5], [1, 2], [0, 1, 2], [0, 1]):
        if p * 2 >= k or (w + 2 * p) < k:
            continue
        for shape in ([1, 2, k + 1, w], [1, 2, w]):
            total += 1
            err = case(shape, k, s, p, ceil)
            if err:
                bad += 1
                print("FAIL shape %s k %d s %d p %d ceil %d: %s" % (shape, k, s, p, ceil, err))
    print("%d of %d MaxPool cases equal onnxruntime" % (total - bad, total))
    sys.exit(1 if bad else 0)


main()
