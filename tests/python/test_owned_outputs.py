"""Outputs of a run belong to the caller: builds the model that
tests/tools/owned_outputs.c expects (a view of the input, a weight, a weight
in external data mapped read-only, a state pair) and runs that program.

usage: test_owned_outputs.py OWNED_OUTPUTS_TOOL
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


def main():
    d = tempfile.mkdtemp(prefix="kiln-owned-")
    w = nh.from_array(np.array([10, 20, 30, 40], np.float32), "W")
    e = nh.from_array(np.arange(4, dtype=np.float32) * 0.5, "E")
    g = h.make_graph([h.make_node("Identity", ["x"], ["view"]), h.make_node("Identity", ["W"], ["weight"]),
                      h.make_node("Identity", ["E"], ["ext"]), h.make_node("Add", ["h", "x"], ["hn"]),
                      h.make_node("Add", ["x", "W"], ["sum"])], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [4]), h.make_tensor_value_info("h", T.FLOAT, [4])],
                     [h.make_tensor_value_info(n, T.FLOAT, [4]) for n in ("view", "weight", "ext", "hn", "sum")],
                     [w, e])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 7
    path = os.path.join(d, "m.onnx")
    onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.data",
              size_threshold=0)
    assert os.path.exists(os.path.join(d, "m.data"))
    os.chmod(os.path.join(d, "m.data"), 0o444)
    r = subprocess.run([sys.argv[1], path], capture_output=True, text=True)
    print(r.stdout + r.stderr)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
