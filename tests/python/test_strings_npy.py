"""String tensors through .npy as numpy writes them (fixed-width unicode,
'<U<width>', no pickle): kiln run reads them as inputs and writes string
outputs the same way; numpy reads them back equal.

usage: test_strings_npy.py KILN
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h


def main():
    kiln = sys.argv[1]
    d = tempfile.mkdtemp(prefix="kiln-strnpy-")
    g = h.make_graph([h.make_node("Identity", ["s"], ["y"]),
                      h.make_node("StringNormalizer", ["s1"], ["u"], case_change_action="UPPER")], "g",
                     [h.make_tensor_value_info("s", T.STRING, None), h.make_tensor_value_info("s1", T.STRING, None)],
                     [h.make_tensor_value_info("y", T.STRING, None), h.make_tensor_value_info("u", T.STRING, None)])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 7
    p = os.path.join(d, "m.onnx")
    onnx.save(m, p)
    s = np.array([["héllo", ""], ["wörld €", "𝄞 clef"]])
    s1 = np.array(["abc", "Straße", "x"])
    np.save(os.path.join(d, "s.npy"), s)
    np.save(os.path.join(d, "s1.npy"), s1)
    out = os.path.join(d, "out")
    r = subprocess.run([kiln, "run", p, "-i", "s=@" + os.path.join(d, "s.npy"), "-i",
                        "s1=@" + os.path.join(d, "s1.npy"), "--out", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    y = np.load(os.path.join(out, "y.npy"), allow_pickle=False)
    u = np.load(os.path.join(out, "u.npy"), allow_pickle=False)
    assert y.dtype.kind == "U" and y.shape == (2, 2) and (y == s).all(), (y, y.dtype)
    assert u.dtype.kind == "U" and u.shape == (3,) and u[0] == "ABC" and u[2] == "X", u
    # a truncated file is refused, never read past its end
    raw = open(os.path.join(d, "s.npy"), "rb").read()
    open(os.path.join(d, "bad.npy"), "wb").write(raw[:-3])
    r = subprocess.run([kiln, "run", p, "-i", "s=@" + os.path.join(d, "bad.npy"), "-i", "s1=@" +
                        os.path.join(d, "s1.npy")], capture_output=True, text=True)
    assert r.returncode != 0 and "data bytes" in r.stderr, r.stderr
    print("ok   strings through .npy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
