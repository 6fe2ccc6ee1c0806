"""Depthwise Conv and global pooling layers: kiln vs onnxruntime, in one run.

usage: /opt/kiln-venv/bin/python bench/dw_pool.py [--kiln build/kiln] [--base OTHER_KILN]
                                                  [--threads 1,2] [--rounds 5] [--runs 30]

The layers are mobilenet_v3_small's depthwise convolutions (5x5 stride 1 and
2, 3x3 stride 2 and 1, with bias, some followed by a Relu kiln fuses) and its
global poolings (ReduceMean over H, W as the squeeze-excitation blocks
export it, GlobalAveragePool, GlobalMaxPool), plus a 112x112 pooling. Each
model holds 8 copies of the layer, each reading its own input (so no
common-subexpression pass can merge them), which keeps per-call overhead
small next to the work; kiln bench generates its inputs, onnxruntime gets
random ones of the same shapes. For each layer and thread count, rounds
alternate `kiln bench` (median of --runs) and an onnxruntime session
(median of as many runs); the ratio printed is the median over rounds of
kiln/onnxruntime (lower is better). --base times a second kiln binary in the
same rounds (e.g. a build of the previous version) and prints its ratio.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

REP = 8
# (name, C, H=W, kernel, stride, fused relu)
DW = [
    ("dw 3x3 s2 16x112", 16, 112, 3, 2, True),
    ("dw 3x3 s2 72x56", 72, 56, 3, 2, False),
    ("dw 3x3 s1 88x28", 88, 28, 3, 1, True),
    ("dw 5x5 s2 96x28", 96, 28, 5, 2, False),
    ("dw 5x5 s1 240x14", 240, 14, 5, 1, False),
    ("dw 5x5 s2 288x14", 288, 14, 5, 2, False),
    ("dw 5x5 s1 576x7", 576, 7, 5, 1, False),
]
# (name, op, shape)
POOL = [
    ("ReduceMean 16x56x56", "ReduceMean", [1, 16, 56, 56]),
    ("ReduceMean 96x14x14", "ReduceMean", [1, 96, 14, 14]),
    ("ReduceMean 576x7x7", "ReduceMean", [1, 576, 7, 7]),
    ("GlobalAveragePool 576x7x7", "GlobalAveragePool", [1, 576, 7, 7]),
    ("GlobalAveragePool 32x112x112", "GlobalAveragePool", [1, 32, 112, 112]),
    ("GlobalMaxPool 96x14x14", "GlobalMaxPool", [1, 96, 14, 14]),
]


def dw_model(C, HW, k, s, relu):
    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.uniform(-1, 1, [C, 1, k, k]).astype(np.float32), "w"),
             nh.from_array(rng.uniform(-1, 1, [C]).astype(np.float32), "b")]
    nodes, outs = [], []
    for r in range(REP):
        y = "y%d" % r
        nodes.append(h.make_node("Conv", ["x%d" % r, "w", "b"], ["c%d" % r if relu else y], group=C, kernel_shape=[k, k],
                                 strides=[s, s], pads=[k // 2] * 4))
        if relu:
            nodes.append(h.make_node("Relu", ["c%d" % r], [y]))
        outs.append(h.make_tensor_value_info(y, T.FLOAT, None))
    ins = [h.make_tensor_value_info("x%d" % r, T.FLOAT, [1, C, HW, HW]) for r in range(REP)]
    g = h.make_graph(nodes, "dw", ins, outs, inits)
    return g, [1, C, HW, HW]


def pool_model(op, shape):
    nodes, outs = [], []
    for r in range(REP):
        y = "y%d" % r
        at = {"axes": [2, 3], "keepdims": 1} if op == "ReduceMean" else {}
        nodes.append(h.make_node(op, ["x%d" % r], [y], **at))
        outs.append(h.make_tensor_value_info(y, T.FLOAT, None))
    ins = [h.make_tensor_value_info("x%d" % r, T.FLOAT, shape) for r in range(REP)]
    g = h.make_graph(nodes, "pool", ins, outs)
    return g, shape


def save(g, path):
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def kiln_ms(kiln, path, threads, runs):
    r = subprocess.run([kiln, "bench", path, "--threads", str(threads), "--runs", str(runs),
                        "--warmup", "3", "--json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["median_ms"]


def ort_ms(sess, feeds, runs):
    for _ in range(3):
        sess.run(None, feeds)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def main():
    import onnxruntime as ort
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--base", default=None)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kiln-dwbench-")
    layers = [(n, dw_model(C, HW, k, s, relu)) for n, C, HW, k, s, relu in DW]
    layers += [(n, pool_model(op, shp)) for n, op, shp in POOL]
    hdr = "| layer (x%d per model) | threads | kiln ms | ort ms | kiln/ort |" % REP
    if a.base:
        hdr += " base/ort |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for name, (g, shape) in layers:
        path = os.path.join(tmp, "m.onnx")
        save(g, path)
        rng = np.random.default_rng(1)
        feeds = {"x%d" % r: rng.uniform(-1, 1, shape).astype(np.float32) for r in range(REP)}
        for th in [int(t) for t in a.threads.split(",")]:
            so = ort.SessionOptions()
            so.intra_op_num_threads = th
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            ks, os_, bs, rk, rb = [], [], [], [], []
            for _ in range(a.rounds):
                k = kiln_ms(a.kiln, path, th, a.runs)
                o = ort_ms(sess, feeds, a.runs)
                ks.append(k)
                os_.append(o)
                rk.append(k / o)
                if a.base:
                    b = kiln_ms(a.base, path, th, a.runs)
                    bs.append(b)
                    rb.append(b / o)
            line = "| %s | %d | %.3f | %.3f | %.2f |" % (name, th, statistics.median(ks), statistics.median(os_),
                                                        statistics.median(rk))
            if a.base:
                line += " %.2f |" % statistics.median(rb)
            print(line, flush=True)


if __name__ == "__main__":
    main()
