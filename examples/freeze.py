"""kiln from Python: the demo's freeze, run and check of
examples/configurable.onnx with the kiln package (scripts/setup installs it
into .venv). usage: .venv/bin/python examples/freeze.py [OUT_DIR]"""
import os
import sys

import numpy as np

import kiln

here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else "out"
os.makedirs(out, exist_ok=True)
src = os.path.join(here, "configurable.onnx")
args = {"scale": 2.0, "bias": 0.5, "use_mult": True}

m = kiln.load(src)
print("inputs: ", m.inputs)
rep = m.freeze(bind=args)
print("frozen: ", rep["nodes"]["total"], "nodes; inputs now", [v.name for v in m.inputs])
frozen = os.path.join(out, "configurable.frozen.py.onnx")
m.save(frozen)
with kiln.Session(m, threads=2) as s:
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    print("run:    ", s.run({"x": x})["y"].round(4).tolist())
res = kiln.check(src, frozen, bind=args, runs=5)
print("check:  ", "ok" if res.ok else "MISMATCH", {k: v.max_abs for k, v in res.outputs.items()})
pic = os.path.join(out, "configurable.frozen." + ("svg" if __import__("shutil").which("dot") else "dot"))
m.picture(pic, original=True)
print("picture:", pic)
