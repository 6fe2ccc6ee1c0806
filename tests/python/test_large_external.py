#!/usr/bin/env python3
"""A model past protobuf's 2 GB limit stays loadable after kiln freeze.

Ten 8192x8192 float32 MatMul weights (2.5 GiB) are written with a numpy
memmap into one external data file in /tmp; kiln freezes the model (binding
one input, with --inline, which a model this size must ignore), and the result
is loaded with onnx (onnx.load resolves the data) and run with onnxruntime
against the original. Everything is deleted afterwards.

Needs 8 GB free in /tmp (the source, the result and its temporary); exits 77
(ctest's SKIP_RETURN_CODE) when there is less, or without onnxruntime.

  test_large_external.py KILN
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402

N, K = 8192, 10
NEED = 8 << 30


def main():
    kiln = os.path.abspath(sys.argv[1])
    free = shutil.disk_usage("/tmp").free
    if free < NEED:
        print(f"SKIP: /tmp has {free >> 20} MiB free, this test needs {NEED >> 20}")
        sys.exit(77)
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError as e:
        print(f"SKIP: {e}")
        sys.exit(77)
    t = Tally("large external data")
    tmp = tempfile.mkdtemp(prefix="kiln-large-", dir="/tmp")
    try:
        src = os.path.join(tmp, "big.onnx")
        data = os.path.join(tmp, "big.weights")
        nbytes = N * N * 4
        mm = np.memmap(data, dtype=np.float32, mode="w+", shape=(K, N, N))
        rng = np.random.default_rng(5)
        for i in range(K):
            for r in range(0, N, 1024):
                mm[i, r:r + 1024] = rng.standard_normal((1024, N), dtype=np.float32) * np.float32(1 / np.sqrt(N))
        mm.flush()
        del mm
        inits, nodes, prev = [], [], "x"
        for i in range(K):
            w = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[N, N],
                            data_location=TensorProto.EXTERNAL)
            for k, v in (("location", "big.weights"), ("offset", str(i * nbytes)), ("length", str(nbytes))):
                e = w.external_data.add()
                e.key, e.value = k, v
            inits.append(w)
            nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"], name=f"mm{i}"))
            prev = f"h{i}"
        nodes.append(helper.make_node("Mul", [prev, "scale"], ["y"], name="scale_out"))
        g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", N]),
                                             helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", N])], initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        with open(src, "wb") as f:
            f.write(m.SerializeToString())
        del m
        out = os.path.join(tmp, "frozen.onnx")
        r = subprocess.run([kiln, "freeze", src, "-o", out, "--bind", "scale=[0.5]", "--dim", "B=2", "--inline"],
                           capture_output=True, text=True, timeout=1800)
        print(r.stderr.strip()[-800:])
        if not t.ok(r.returncode == 0, "kiln freeze of a 2.5 GiB external-data model", r.stderr[-500:]):
            t.finish()
        t.ok(os.path.getsize(out) < (1 << 20), "the frozen model file is small (its weights are external)",
             str(os.path.getsize(out)))
        datas = [f for f in os.listdir(tmp) if f.startswith("frozen.onnx.") and f.endswith(".data")]
        t.ok(len(datas) == 1, "one data file beside the model", str(os.listdir(tmp)))
        left = [f for f in os.listdir(tmp) if "kiln-tmp" in f]
        t.ok(not left, "no temporary files left", str(left))
        # onnx loads it, resolving the external data
        try:
            lm = onnx.load(out)
            ws = [i for i in lm.graph.initializer if i.name.startswith("w")]
            t.ok(len(ws) == K and all(len(i.raw_data) == nbytes for i in ws), "onnx.load reads every weight",
                 str([(i.name, len(i.raw_data)) for i in lm.graph.initializer]))
            del ws
            ref = np.fromfile(data, dtype=np.float32, count=N * N, offset=3 * nbytes).reshape(N, N)
            got = next(i for i in lm.graph.initializer if i.name == "w3")
            t.ok(np.array_equal(np.frombuffer(got.raw_data, np.float32).reshape(N, N), ref), "weights unchanged")
            del lm, ref, got
        except Exception as e:  # noqa: BLE001
            t.fail("onnx.load of the frozen model", str(e))
        r = subprocess.run([kiln, "info", out], capture_output=True, text=True)
        t.ok(r.returncode == 0 and "kiln.source.sha256" in r.stdout, "kiln info of the frozen model", r.stderr)
        x = np.random.default_rng(1).standard_normal((2, N)).astype(np.float32)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        want = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"]).run(
            None, {"x": x, "scale": np.array([0.5], np.float32)})[0]
        try:
            got = ort.InferenceSession(out, so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            t.ok(got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-5),
                 "onnxruntime: the frozen model gives the original's outputs",
                 f"max diff {np.abs(got - want).max() if got.shape == want.shape else got.shape}")
        except Exception as e:  # noqa: BLE001
            t.fail("onnxruntime runs the frozen model", str(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t.finish()


if __name__ == "__main__":
    main()
