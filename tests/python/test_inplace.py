"""In-place reuse of a dying input's buffer must be element for element.

Each model makes an intermediate that dies at a broadcasting node whose
output has the intermediate's byte size but not its element count or width
(an int64 [2,1,4,1] against a bool [2,1,4,8]: 64 bytes each). Reusing the
buffer there would overwrite inputs the kernel has yet to read. Outputs are
compared with numpy.

usage: test_inplace.py KILN
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

KILN = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="kiln-inplace-")


def run(nodes, inits, feeds, out, out_type):
    inputs = [h.make_tensor_value_info(k, T.INT64 if v.dtype == np.int64 else T.FLOAT, list(v.shape))
              for k, v in feeds.items()]
    g = h.make_graph(nodes, "g", inputs, [h.make_tensor_value_info(out, out_type, None)],
                     [nh.from_array(v, k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 7
    path = os.path.join(TMP, "m.onnx")
    onnx.save(m, path)
    args = []
    for k, v in feeds.items():
        np.save(os.path.join(TMP, k + ".npy"), v)
        args += ["-i", "%s=@%s" % (k, os.path.join(TMP, k + ".npy"))]
    for threads in ("1", "2"):
        r = subprocess.run([KILN, "run", path, *args, "--out", TMP, "--threads", threads], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        yield np.load(os.path.join(TMP, out + ".npy"))


def main():
    rows = np.array([0, 1, 2, 3], np.int64).reshape(1, 1, 4, 1)
    off = np.array([3, 4], np.int64).reshape(2, 1, 1, 1)
    cols = np.arange(8, dtype=np.int64).reshape(1, 1, 1, 8)
    fails = 0
    cases = {
        # Less(int64 [2,1,4,1] dying, [1,1,1,8]) -> bool [2,1,4,8]
        "less": ([h.make_node("Add", ["r", "o"], ["a"]), h.make_node("Less", ["a", "c"], ["y"])],
                 {"r": rows, "c": cols}, {"o": off}, "y", T.BOOL, (rows + off) < cols),
        # the same with the second operand computed too (both could be taken over)
        "less_computed": ([h.make_node("Add", ["r", "o"], ["a"]), h.make_node("Add", ["c0", "z"], ["c"]),
                           h.make_node("Less", ["a", "c"], ["y"])],
                          {"r": rows, "c0": cols}, {"o": off, "z": np.zeros((1,), np.int64)}, "y", T.BOOL,
                          (rows + off) < cols),
        # Equal with the dying operand second
        "equal": ([h.make_node("Add", ["r", "o"], ["a"]), h.make_node("Add", ["c0", "z"], ["c"]),
                   h.make_node("Equal", ["c", "a"], ["y"])],
                  {"r": rows, "c0": cols}, {"o": off, "z": np.zeros((1,), np.int64)}, "y", T.BOOL, cols == (rows + off)),
        # float32 [2,1,4,1] dying into a float32 [2,1,4,2] (half the count, not the bytes): the
        # byte size differs, so nothing is reused; and Mul with the dying input broadcast
        "mul": ([h.make_node("Add", ["x", "x"], ["a"]), h.make_node("Mul", ["a", "w"], ["y"])],
                {"w": np.array([1.0, -2.0], np.float32).reshape(1, 1, 1, 2)},
                {"x": np.arange(8, dtype=np.float32).reshape(2, 1, 4, 1)}, "y", T.FLOAT,
                (2 * np.arange(8, dtype=np.float32).reshape(2, 1, 4, 1)) * np.array([1.0, -2.0], np.float32)
                .reshape(1, 1, 1, 2)),
    }
    for name, (nodes, inits, feeds, out, ot, want) in cases.items():
        try:
            for got in run(nodes, inits, feeds, out, ot):
                np.testing.assert_array_equal(got, want)
            print("ok   %s" % name)
        except AssertionError as e:
            fails += 1
            print("FAIL %s: %s" % (name, e))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
