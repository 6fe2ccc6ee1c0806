"""Models whose dynamic dims are written as `dim_value: -1` (paddle2onnx does
this) load: such a dim is unknown, like one without value or name. `kiln
info` shows it as "?" (null in JSON), `kiln run` takes any size there, and
`kiln freeze --shape` fixes it. Other negative dims stay errors."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402


def model(path, dim=-1):
    """y = relu(x + b) with x, y of shape [dim, 3] and a value_info of the
    same shape for the sum."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [dim, 3])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [dim, 3])
    b = numpy_helper.from_array(np.array([1, -2, 3], dtype=np.float32), "b")
    nodes = [helper.make_node("Add", ["x", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    g = helper.make_graph(nodes, "paddle_like", [x], [y], initializer=[b], value_info=[s])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="paddle2onnx")
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == dim
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    args = ap.parse_args()
    t = Tally("dynamic_dims")
    with tempfile.TemporaryDirectory(prefix="kiln-dyn-") as tmp:
        path = os.path.join(tmp, "m.onnx")
        model(path)
        r = subprocess.run([args.kiln, "info", path], capture_output=True, text=True, timeout=60)
        t.ok(r.returncode == 0, "kiln info loads a model with dim_value -1", r.stderr.strip())
        t.ok("float32[?,3]" in r.stdout, "kiln info shows the -1 dim as '?'", r.stdout)
        r = subprocess.run([args.kiln, "info", "--json", path], capture_output=True, text=True, timeout=60)
        if t.ok(r.returncode == 0, "kiln info --json loads it", r.stderr.strip()):
            j = json.loads(r.stdout)
            t.ok(j["inputs"][0]["shape"] == [None, 3], "input shape is [null, 3] in JSON", str(j["inputs"]))
            t.ok(j["outputs"][0]["shape"] == [None, 3], "output shape is [null, 3] in JSON", str(j["outputs"]))
        for n in (1, 4):
            x = np.arange(n * 3, dtype=np.float32).reshape(n, 3) - 4
            xp, out = os.path.join(tmp, f"x{n}.npy"), os.path.join(tmp, f"out{n}")
            np.save(xp, x)
            r = subprocess.run([args.kiln, "run", path, "-i", f"x=@{xp}", "--out", out], capture_output=True,
                               text=True, timeout=60)
            if t.ok(r.returncode == 0, f"kiln run with {n} rows", r.stderr.strip()):
                y = np.load(os.path.join(out, "y.npy"))
                want = np.maximum(x + np.array([1, -2, 3], dtype=np.float32), 0)
                t.ok(y.shape == want.shape and np.array_equal(y, want), f"run output with {n} rows", str(y))
        frozen = os.path.join(tmp, "frozen.onnx")
        r = subprocess.run([args.kiln, "freeze", path, "-o", frozen, "--shape", "x=5,3", "--quiet"],
                           capture_output=True, text=True, timeout=60)
        if t.ok(r.returncode == 0, "kiln freeze --shape fixes the -1 dim", r.stderr.strip()):
            dims = [d.dim_value for d in onnx.load(frozen).graph.input[0].type.tensor_type.shape.dim]
            t.ok(dims == [5, 3], "frozen input shape", str(dims))
        bad = os.path.join(tmp, "bad.onnx")
        model(bad, dim=-2)
        r = subprocess.run([args.kiln, "info", bad], capture_output=True, text=True, timeout=60)
        t.ok(r.returncode != 0 and "negative" in r.stderr, "dim_value -2 is still refused", r.stderr.strip())
    t.finish()


if __name__ == "__main__":
    main()
