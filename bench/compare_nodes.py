#!/usr/bin/python3
"""Node counts after `kiln freeze` vs onnxruntime's basic-level optimizer vs
onnxsim, on the freeze test models (tests/python/test_freeze_torch.py).

usage: bench/compare_nodes.py [KILN_BINARY] [--venv DIR]

For the peers the frozen inputs are turned into initializers and the same
dims fixed (a plain ONNX edit), then onnxruntime
(SessionOptions.graph_optimization_level = ORT_ENABLE_BASIC,
optimized_model_filepath) and onnxsim simplify that model. Counts include
nodes inside subgraphs. Exits 1 if kiln leaves more nodes than either peer.

Setup: the peers run in a separate venv without system packages (the
onnxsim next to Debian's onnx 1.12 is broken): created on first use at
/opt/kiln-venv-sim with pip install onnx onnxsim onnxruntime 'numpy<2'.
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
args = [a for a in sys.argv[1:]]
VENV = "/opt/kiln-venv-sim"
if "--venv" in args:
    i = args.index("--venv")
    VENV = args[i + 1]
    del args[i:i + 2]
KILN = args[0] if args else os.path.join(ROOT, "build", "kiln")
PY = os.path.join(VENV, "bin", "python")


def setup_venv():
    if os.path.exists(PY) and subprocess.run([PY, "-c", "import onnxsim, onnxruntime"],
                                             capture_output=True).returncode == 0:
        return
    print("setting up %s (onnx, onnxsim, onnxruntime, numpy<2)..." % VENV, file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", "onnx", "onnxsim", "onnxruntime",
                    "numpy<2"], check=True)


# the test's modules; its command line parsing sees ours
sys.argv = [sys.argv[0], KILN]
spec = importlib.util.spec_from_file_location("tft", os.path.join(ROOT, "tests", "python", "test_freeze_torch.py"))
tft = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tft)
nn = torch.nn
TMP = tempfile.mkdtemp(prefix="kiln-nodes-")


def count(path):
    m = onnx.load(path)
    n = 0

    def walk(g):
        nonlocal n
        for node in g.node:
            n += 1
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for g2 in a.graphs:
                    walk(g2)
    walk(m.graph)
    return n


def prepare(src, frozen, dims, dst):
    """Frozen inputs -> initializers, dims fixed: what the peers start from."""
    m = onnx.load(src)
    g = m.graph
    keep = []
    for i in g.input:
        if i.name in frozen:
            g.initializer.append(numpy_helper.from_array(np.asarray(frozen[i.name]), i.name))
        else:
            keep.append(i)
    del g.input[:]
    g.input.extend(keep)
    fixed = dict(d.split("=") for d in dims)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in fixed:
                d.dim_value = int(fixed[d.dim_param])
    onnx.save(m, dst)


PEERS = r'''
import sys, onnx, onnxruntime as ort
src, ort_out, sim_out = sys.argv[1:4]
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
so.optimized_model_filepath = ort_out
ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
import onnxsim
m, ok = onnxsim.simplify(onnx.load(src))
onnx.save(m, sim_out)
'''


def models():
    T = tft
    x = torch.randn(2, 4)
    yield ("scale_bias", T.ScaleBias().eval(), (x, torch.tensor(2.0), torch.tensor(0.5)), ["x", "scale_factor", "bias"],
           {"scale_factor": np.float32(2.0), "bias": np.float32(0.5)}, {"x": {0: "batch"}}, False, [])
    for flag in (True, False):
        yield ("if_%s" % flag, T.MultOrAdd().eval(), (x, torch.tensor(flag)), ["x", "use_mult"],
               {"use_mult": np.bool_(flag)}, {"x": {0: "batch"}}, True, [])
    w = T.WhereMean().eval()
    x3 = torch.randn(3, 4)
    yield ("where_t", w, (x3, torch.tensor(0.0), torch.tensor(True)), ["x", "t", "sel"], {"t": np.float32(0.1)},
           None, False, [])
    yield ("where_sel", w, (x3, torch.tensor(0.0), torch.tensor(False)), ["x", "t", "sel"],
           {"sel": np.bool_(False)}, None, False, [])
    yield ("linear_npy", T.TwoLinear(), (x, torch.randn(6, 4), torch.randn(6), torch.randn(3, 6)),
           ["x", "w1", "b1", "w2"], {"w1": np.random.randn(6, 4).astype(np.float32),
                                     "b1": np.random.randn(6).astype(np.float32),
                                     "w2": np.random.randn(3, 6).astype(np.float32)}, {"x": {0: "batch"}}, False, [])
    for n in (3, 0):
        yield ("loop_%d" % n, T.RepeatLoop(), (x, 2), ["x", "n"], {"n": np.int64(n)}, None, True, [])
    yield ("view_b1", T.ViewLinear().eval(), (torch.randn(1, 3, 4),), ["x"], {}, {"x": {0: "batch"}}, False,
           ["batch=1"])
    yield ("view_dyn", T.ViewLinear().eval(), (torch.randn(2, 3, 4),), ["x"], {}, {"x": {0: "batch"}}, False, [])
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    yield ("encoder", T.Encoder().eval(), (torch.randn(5, 2, 8), mask), ["src", "mask"], {"mask": mask.numpy()},
           None, False, [])


def main():
    setup_venv()
    rows, worse = [], []
    for opset in (11, 13, 17):
        for name, mod, a, names, frozen, dyn, script, dims in models():
            tag = "%s@%d" % (name, opset)
            src = tft.export(mod, a, names, os.path.join(TMP, tag + ".onnx"), opset, dyn, script)
            out = os.path.join(TMP, tag + "_kiln.onnx")
            binds = []
            for k, v in frozen.items():
                p = os.path.join(TMP, "%s_%s.npy" % (tag, k))
                np.save(p, np.asarray(v))
                binds += ["--bind", "%s=@%s" % (k, p)]
            for d in dims:
                binds += ["--dim", d]
            subprocess.run([KILN, "freeze", src, "-o", out, "--quiet", *binds], check=True)
            prep = os.path.join(TMP, tag + "_prep.onnx")
            prepare(src, frozen, dims, prep)
            o_ort, o_sim = os.path.join(TMP, tag + "_ort.onnx"), os.path.join(TMP, tag + "_sim.onnx")
            r = subprocess.run([PY, "-c", PEERS, prep, o_ort, o_sim], capture_output=True, text=True)
            c_ort = count(o_ort) if os.path.exists(o_ort) else None
            c_sim = count(o_sim) if os.path.exists(o_sim) else None
            if r.returncode != 0 and c_sim is None:
                print("peer failure on %s: %s" % (tag, r.stderr[-500:]), file=sys.stderr)
            row = (tag, count(src), count(out), c_ort, c_sim)
            rows.append(row)
            if any(c is not None and row[2] > c for c in (c_ort, c_sim)):
                worse.append(tag)
    print("%-22s %8s %6s %9s %8s" % ("model", "original", "kiln", "ort-basic", "onnxsim"))
    for tag, o, k, c1, c2 in rows:
        print("%-22s %8d %6d %9s %8s%s" % (tag, o, k, c1 if c1 is not None else "-", c2 if c2 is not None else "-",
                                          "   <- kiln leaves more" if tag in worse else ""))
    if any(t.startswith("loop_") for t in worse):
        print("note: kiln unrolls Loops with a constant trip count (no control flow is left); the peers keep\n"
              "the Loop and its body, which can be fewer nodes. `kiln freeze --unroll-limit 0` keeps the Loop.")
    print(json.dumps({"kiln_worse": worse}))
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
