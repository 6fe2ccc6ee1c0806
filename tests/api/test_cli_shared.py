#!/usr/bin/env python3
"""The kiln CLI built against libkiln.so (kiln-cli-shared: the same objects
as `kiln`, linked to the shared library, which exports only kiln.h) on small
ONNX models made here, against numpy:

- `run --chunk-size/--chunks` with a state pair over y = cumsum(x) + s,
  s' = last row of y: the joined y is cumsum over the whole input plus the
  initial state, s' the final state, and an output without the chunk axis
  (sum of x) the last chunk's;
- the streaming errors: axis out of range, lengths that differ, nothing to
  split, an unknown --chunk-input, a failing chunk named, outputs that
  cannot be joined;
- `info` and `info --json` showing metadata_props;
- the preview of a float16 output.

usage: test_cli_shared.py KILN_CLI_SHARED
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper

failures = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else ": " + detail))
    if not ok:
        failures.append(what)


def stream_model(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 2])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", 2])
    s2 = helper.make_tensor_value_info("s_next", TensorProto.FLOAT, [1, 2])
    tot = helper.make_tensor_value_info("total", TensorProto.FLOAT, [])
    h16 = helper.make_tensor_value_info("h16", TensorProto.FLOAT16, ["T", 2])
    inits = [
        helper.make_tensor("axis0", TensorProto.INT64, [], [0]),
        helper.make_tensor("start", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("end", TensorProto.INT64, [1], [2**62]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [0]),
    ]
    nodes = [
        helper.make_node("CumSum", ["x", "axis0"], ["cs"]),
        helper.make_node("Add", ["cs", "s"], ["y"]),
        helper.make_node("Slice", ["y", "start", "end", "axes"], ["s_next"]),
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Cast", ["x"], ["h16"], to=TensorProto.FLOAT16),
    ]
    g = helper.make_graph(nodes, "stream", [x, s], [y, s2, tot, h16], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    helper.set_model_props(m, {"author": "kiln tests", "note": 'a "quoted"\nline'})
    onnx.checker.check_model(m)
    onnx.save(m, path)


def failing_model(path, reshape):
    """y = Reshape(x, [3, 2]) (only chunks of 3 rows fit) when `reshape`;
    z = Transpose(x): [2, T], whose chunks differ in dim 1 when they differ
    in length."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, "T"])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, 2])
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])] if reshape else []
    nodes.append(helper.make_node("Transpose", ["x"], ["z"]))
    g = helper.make_graph(nodes, "failing", [x], [y, z] if reshape else [z], [shape] if reshape else [])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def main():
    cli = sys.argv[1]
    ldd = subprocess.run(["ldd", cli], capture_output=True, text=True).stdout
    check("kiln-cli-shared runs on libkiln.so", "libkiln.so" in ldd, ldd)
    d = tempfile.mkdtemp(prefix="kiln-api-")

    def kiln(*args):
        return subprocess.run([cli, *map(str, args)], capture_output=True, text=True)

    model = os.path.join(d, "stream.onnx")
    stream_model(model)
    x = (np.arange(20, dtype=np.float32).reshape(10, 2) - 7) * 0.25
    s0 = np.array([[1.5, -3.0]], dtype=np.float32)
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "s0.npy"), s0)
    xi, si = "x=@" + os.path.join(d, "x.npy"), "s=@" + os.path.join(d, "s0.npy")

    for how, seed, init in ((["--chunk-size", 3], [], np.zeros((1, 2), np.float32)),
                            (["--chunks", 4], ["-i", si], s0), (["--chunk-size", 1], ["-i", si], s0),
                            (["--chunks", 1], ["-i", si], s0)):
        out = os.path.join(d, "out_" + "_".join(map(str, how)) + str(len(seed)))
        r = kiln("run", model, "-i", xi, *seed, "--state", "s=s_next", *how, "--out", out)
        tag = " ".join(map(str, how)) + (" (initial state given)" if seed else " (zero state)")
        if r.returncode != 0:
            check(tag, False, r.stderr)
            continue
        want_y = np.cumsum(x, axis=0) + init
        size = how[1] if how[0] == "--chunk-size" else -(-10 // how[1])
        last = x[(9 // size) * size:]
        y, sn, tot = (np.load(os.path.join(out, n + ".npy")) for n in ("y", "s_next", "total"))
        check(tag + ": y is cumsum(x) + s over the whole input", y.shape == (10, 2) and np.allclose(y, want_y),
              f"{y} vs {want_y}")
        check(tag + ": s_next is the final state", np.allclose(sn, want_y[-1:]), f"{sn} vs {want_y[-1:]}")
        check(tag + ": total (no chunk axis) is the last chunk's", tot.shape == () and np.isclose(tot, last.sum()),
              f"{tot} vs {last.sum()}")

    def refused(args, code, message, what):
        r = kiln("run", *args)
        check(what, r.returncode == code and r.stderr.startswith(message),
              f"exit {r.returncode}, stderr {r.stderr.strip()!r}, wanted {message!r}")

    refused([model, "-i", xi, "--chunks", 2, "--chunk-axis", 2, "--chunk-input", "x"], 2,
            "kiln run: chunk axis 2 is out of range for input 'x' of rank 2\n", "axis out of range")
    refused([model, "-i", xi, "--chunks", 2, "--chunk-axis", 2], 2,
            "kiln run: no input to split into chunks (axis 2)\n", "no input has the axis")
    refused([model, "-i", xi, "-i", si, "--chunk-input", "x", "--chunk-input", "s", "--chunks", 2], 2,
            "kiln run: chunked inputs differ in length along axis 0 (10 and 1)\n", "lengths differ")
    refused([model, "-i", si, "--state", "s=s_next", "--chunks", 2], 2,
            "kiln run: no input to split into chunks (axis 0)\n", "nothing to split")
    refused([model, "-i", xi, "--chunk-input", "nope", "--chunks", 2], 2,
            "kiln run: --chunk-input 'nope' is not given with -i\n", "unknown --chunk-input")
    bad = os.path.join(d, "failing.onnx")
    failing_model(bad, True)
    np.save(os.path.join(d, "x7.npy"), x[:7])
    np.save(os.path.join(d, "x6.npy"), x[:6])
    refused([bad, "-i", "x=@" + os.path.join(d, "x7.npy"), "--chunk-size", 3], 1, "kiln run: chunk 3 of 3: ",
            "a failing chunk is named")
    # Reshape fits every chunk of 3, but z's chunks are [2, 3] and [2, 3]: joined
    r = kiln("run", bad, "-i", "x=@" + os.path.join(d, "x6.npy"), "--chunk-size", 3, "--out", os.path.join(d, "f"))
    z = np.load(os.path.join(d, "f", "z.npy")) if r.returncode == 0 else None
    check("outputs with the axis elsewhere join along it", z is not None and z.shape == (4, 3)
          and np.allclose(z, np.concatenate([x[:3].T, x[3:6].T], axis=0)), r.stderr)
    np.save(os.path.join(d, "x4.npy"), x[:4])
    refused([bad, "-i", "x=@" + os.path.join(d, "x4.npy"), "--chunk-size", 3, "--chunk-input", "x"], 1,
            "kiln run: chunk 2 of 2: ", "a failing second chunk is named")

    join = os.path.join(d, "join.onnx")
    failing_model(join, False)
    refused([join, "-i", "x=@" + os.path.join(d, "x7.npy"), "--chunk-size", 3], 1,
            "kiln run: output 'z': pieces to concatenate along axis 0 differ in type or other dims\n",
            "outputs that cannot be joined")

    # preview of a float16 output (values exact in float16)
    r = kiln("run", model, "-i", xi, "-i", si)
    want = "h16: float16[10,2] = [" + ", ".join("%.6g" % v for v in x.reshape(-1)[:8]) + ", ...]"
    check("float16 preview", r.returncode == 0 and want in r.stdout.splitlines(), f"{r.stdout!r} lacks {want!r}")

    r = kiln("info", model)
    check("info shows metadata", r.returncode == 0 and "  author: kiln tests\n" in r.stdout, r.stdout + r.stderr)
    r = kiln("info", model, "--json")
    meta = json.loads(r.stdout).get("metadata") if r.returncode == 0 else None
    check("info --json metadata", meta == {"author": "kiln tests", "note": 'a "quoted"\nline'}, str(meta))

    print(f"{len(failures)} failures" if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
