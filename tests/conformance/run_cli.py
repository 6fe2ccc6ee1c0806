"""ONNX node tests driven through the `kiln run` command line, as a user
would: inputs `-i NAME=@input_k.pb`, outputs read back from `--out DIR`
(.npy, or .pb for types numpy lacks and for sequences/optionals), compared
with rtol 1e-3 / atol 1e-7 (NaN equal to NaN).

usage: run_cli.py KILN NODE_TEST_DIR [--jobs N] [--list-failures]
"""
import concurrent.futures as cf
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper


def load_pb(path, kind):
    data = open(path, "rb").read()
    if kind == "sequence":
        s = onnx.SequenceProto()
        s.ParseFromString(data)
        return [numpy_helper.to_array(t) for t in s.tensor_values]
    if kind == "optional":
        o = onnx.OptionalProto()
        o.ParseFromString(data)
        if o.HasField("tensor_value"):
            return numpy_helper.to_array(o.tensor_value)
        if o.HasField("sequence_value"):
            return [numpy_helper.to_array(t) for t in o.sequence_value.tensor_values]
        return None
    t = onnx.TensorProto()
    t.ParseFromString(data)
    return numpy_helper.to_array(t)


def kind_of(vi):
    f = vi.type.WhichOneof("value")
    return {"sequence_type": "sequence", "optional_type": "optional"}.get(f, "tensor")


def same(a, b):
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "OUS" or b.dtype.kind in "OUS":
        return a.astype(str).tolist() == b.astype(str).tolist()
    try:
        fa, fb = a.astype(np.float64), b.astype(np.float64)
    except (TypeError, ValueError):
        return a.tobytes() == b.tobytes()
    return bool(np.allclose(fa, fb, rtol=1e-3, atol=1e-7, equal_nan=True))


def one(kiln, d):
    m = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in inits]
    for ds in sorted(x for x in os.listdir(d) if x.startswith("test_data_set_")):
        sd = os.path.join(d, ds)
        n_in = len([f for f in os.listdir(sd) if f.startswith("input_")])
        args = []
        for k in range(n_in):
            args += ["-i", "%s=@%s" % (ins[k].name, os.path.join(sd, "input_%d.pb" % k))]
        out = tempfile.mkdtemp(prefix="kiln-cli-")
        r = subprocess.run([kiln, "run", os.path.join(d, "model.onnx"), *args, "--out", out], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            return "run: " + r.stderr.strip().split("\n")[-1][:200]
        for k, o in enumerate(m.graph.output):
            want = load_pb(os.path.join(sd, "output_%d.pb" % k), kind_of(o))
            npy, pb = os.path.join(out, o.name + ".npy"), os.path.join(out, o.name + ".pb")
            got = np.load(npy) if os.path.exists(npy) else load_pb(pb, kind_of(o)) if os.path.exists(pb) else "missing"
            if isinstance(got, str):
                return "output %s not written" % o.name
            if kind_of(o) == "tensor" and o.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16 and \
                    isinstance(want, np.ndarray) and want.dtype == np.uint16:
                want = want.view(np.uint16)
                got = np.asarray(got).view(np.uint16) if np.asarray(got).dtype.itemsize == 2 else got
            if not same(got, want):
                return "output %s differs" % o.name
    return None


def main():
    kiln, root = sys.argv[1], sys.argv[2]
    jobs = int(sys.argv[sys.argv.index("--jobs") + 1]) if "--jobs" in sys.argv else 2
    tests = sorted(os.path.join(root, t) for t in os.listdir(root))
    fails = {}
    with cf.ThreadPoolExecutor(jobs) as ex:
        for t, res in zip(tests, ex.map(lambda d: one(kiln, d), tests)):
            if res:
                fails[os.path.basename(t)] = res
    if "--list-failures" in sys.argv:
        for k, v in sorted(fails.items()):
            print(k, v)
    print("%d tests through kiln run: %d pass, %d fail" % (len(tests), len(tests) - len(fails), len(fails)))


if __name__ == "__main__":
    main()
