"""kiln vs onnxruntime, measured back to back in one run.

usage: /opt/kiln-venv/bin/python bench/ort_compare.py [--kiln build/kiln] [--runs 30]
                                                     [--threads 1,2] [MODEL.onnx ...]
Without models it exports torchvision resnet18 and mobilenet_v2 (weights=None,
eval, batch 1) into bench/models/. For every model and thread count it times
`kiln bench` and an onnxruntime InferenceSession (intra_op_num_threads, same
input shape) and prints median latencies and the ratio kiln/onnxruntime
(lower is better; 1.0 = same speed).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def export_defaults():
    import torch
    import torchvision
    os.makedirs(os.path.join(HERE, "models"), exist_ok=True)
    paths = []
    for name in ("resnet18", "mobilenet_v2"):
        path = os.path.join(HERE, "models", name + ".onnx")
        if not os.path.exists(path):
            model = getattr(torchvision.models, name)(weights=None).eval()
            torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, opset_version=13,
                              input_names=["input"], output_names=["output"])
        paths.append(path)
    return paths


def ort_time(path, threads, runs, warmup=3):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = {}
    rng = np.random.default_rng(42)
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if i.type == "tensor(float)":
            feeds[i.name] = rng.uniform(-1, 1, shape).astype(np.float32)
        else:
            feeds[i.name] = np.zeros(shape, dtype=np.int64)
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def kiln_time(kiln, path, threads, runs):
    out = subprocess.run([kiln, "bench", path, "--threads", str(threads), "--runs", str(runs), "--json",
                          "--dim", "batch=1"], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    r = json.loads(out.stdout)
    return (r["median_ms"], r["min_ms"], r["peak_arena_bytes"]), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=os.path.join(HERE, "..", "build", "kiln"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    models = a.models or export_defaults()
    print(f"{'model':<22}{'thr':>4}{'kiln ms':>10}{'ort ms':>10}{'kiln/ort':>10}{'arena MiB':>11}")
    for path in models:
        for t in [int(x) for x in a.threads.split(",")]:
            k, err = kiln_time(a.kiln, path, t, a.runs)
            o_med, _ = ort_time(path, t, a.runs)
            name = os.path.basename(path)
            if k is None:
                print(f"{name:<22}{t:>4}{'error':>10}{o_med:>10.3f}{'-':>10}   ({err[:80]})")
                continue
            print(f"{name:<22}{t:>4}{k[0]:>10.3f}{o_med:>10.3f}{k[0] / o_med:>10.2f}{k[2] / 2**20:>11.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
