"""Per-call overhead of kiln.Session.run next to onnxruntime's
InferenceSession.run, in the same process, on one-node models (Relu): what
a Python caller pays around the engine (argument conversion, the GIL, output
arrays). Both run with one thread; blocks of calls alternate between the two
engines and the median block is reported.

usage: .venv/bin/python bench/py_overhead.py [--calls N] [--blocks B]
(the venv scripts/setup makes, with kiln installed from this checkout)
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import kiln


def one_node(path, n):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def per_call_us(fn, calls):
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--blocks", type=int, default=15)
    args = ap.parse_args()
    print(f"kiln {kiln.version()}, onnxruntime {ort.__version__}, numpy {np.__version__}; one thread each")
    print(f"{'elements':>10} {'kiln us/call':>13} {'ort us/call':>12} {'kiln/ort':>9}")
    with tempfile.TemporaryDirectory() as d:
        for n in (16, 4096, 1 << 20):
            path = os.path.join(d, f"relu{n}.onnx")
            one_node(path, n)
            x = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32)
            ks = kiln.Session(path, threads=1)
            so = ort.SessionOptions()
            so.intra_op_num_threads = so.inter_op_num_threads = 1
            os_ = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            np.testing.assert_array_equal(ks.run({"x": x})["y"], os_.run(None, {"x": x})[0])
            calls = max(20, args.calls if n <= 4096 else args.calls // 50)
            kf = lambda: ks.run({"x": x})  # noqa: E731
            of = lambda: os_.run(None, {"x": x})  # noqa: E731
            for _ in range(3):  # warm up
                per_call_us(kf, calls // 10 + 1)
                per_call_us(of, calls // 10 + 1)
            kt, ot = [], []
            for _ in range(args.blocks):
                kt.append(per_call_us(kf, calls))
                ot.append(per_call_us(of, calls))
            k, o = statistics.median(kt), statistics.median(ot)
            print(f"{n:>10} {k:>13.2f} {o:>12.2f} {k / o:>9.2f}")


if __name__ == "__main__":
    main()
