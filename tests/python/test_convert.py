#!/usr/bin/env python3
"""kiln convert against ONNX 1.23's node tests.

Every node-test model whose ai.onnx opset is above the target is converted to
the target opset (by `kiln convert`, and for comparison by onnx's own
version_converter); a conversion counts when the result passes
onnx.checker (full_check) and onnxruntime reproduces the test's expected
outputs. Up-conversion is checked on the tests below opset 12 as well.

Usage:
  test_convert.py --kiln KILN [--node DIR] [--target N]... [--up N]...
                  [--floor TARGET=COUNT]... [--onnx] [--jobs N] [--filter RE]
                  [--failures FILE] [--json FILE]

  --target N        down-convert the tests above opset N to N (default: 13 and 11)
  --up N            up-convert the tests at opset 9..11 to N (default: 17 and 21)
  --floor T=C       fail unless kiln converts at least C tests to opset T
  --onnx            also count onnx.version_converter on the same tests
  --failures FILE   write every test kiln did not convert, with the reason
"""
import argparse
import glob
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

import onnxruntime as ort

ort.set_default_logger_severity(3)


def opset_of(m):
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 0


def load_pb(path, proto):
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def read_value(path):
    """A .pb test value: tensor, sequence or optional (as numpy / list / None)."""
    data = open(path, "rb").read()
    t = onnx.TensorProto()
    try:
        t.ParseFromString(data)
        if t.data_type or t.dims or t.name:
            return numpy_helper.to_array(t)
    except Exception:
        pass
    s = onnx.SequenceProto()
    try:
        s.ParseFromString(data)
        return numpy_helper.to_list(s)
    except Exception:
        pass
    o = onnx.OptionalProto()
    o.ParseFromString(data)
    return numpy_helper.to_optional(o)


def datasets(test_dir, model):
    sets = []
    for d in sorted(glob.glob(os.path.join(test_dir, "test_data_set_*"))):
        ins = {}
        for i, vi in enumerate(model.graph.input):
            p = os.path.join(d, f"input_{i}.pb")
            if os.path.exists(p):
                ins[vi.name] = read_value(p)
        outs = []
        for i in range(len(model.graph.output)):
            p = os.path.join(d, f"output_{i}.pb")
            outs.append(read_value(p) if os.path.exists(p) else None)
        sets.append((ins, outs))
    return sets


def close(a, b, rtol=1e-3, atol=1e-5):
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(close(x, y, rtol, atol) for x, y in zip(a, b))
    if b is None:
        return a is None
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        return False
    if b.dtype.kind in "OSU":
        return a.tolist() == b.tolist()
    if b.dtype.kind == "b" or b.dtype.kind in "iu":
        return np.array_equal(a.astype(b.dtype) if a.dtype != b.dtype else a, b)
    try:
        a = a.astype(np.float64)
        b = b.astype(np.float64)
    except (TypeError, ValueError):
        return np.array_equal(a.view(np.uint8), b.view(np.uint8))
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def verify(path, test_dir, target):
    """None when the model at `path` is at opset `target`, valid and right."""
    try:
        m = onnx.load(path)
    except Exception as e:
        return f"unreadable: {e}"
    if opset_of(m) != target:
        return f"opset {opset_of(m)}, not {target}"
    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:
        return "checker: " + str(e).strip().split("\n")[0][:300]
    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        return "onnxruntime load: " + str(e).strip().split("\n")[0][:300]
    names = [o.name for o in sess.get_outputs()]
    for ins, outs in datasets(test_dir, m):
        try:
            got = sess.run(names, ins)
        except Exception as e:
            return "onnxruntime run: " + str(e).strip().split("\n")[0][:300]
        for name, g, want in zip(names, got, outs):
            if want is not None and not close(g, want):
                return f"output '{name}' differs from the expected values"
    return None


def run_kiln(kiln, test_dir, target, tmp):
    out = os.path.join(tmp, "kiln.onnx")
    r = subprocess.run([kiln, "convert", os.path.join(test_dir, "model.onnx"), "-o", out, "--opset", str(target),
                        "--quiet"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return "kiln: " + (r.stderr.strip().split("\n")[-1] if r.stderr.strip() else f"exit {r.returncode}")[:400]
    return verify(out, test_dir, target)


def run_onnx(test_dir, target, tmp):
    from onnx import version_converter
    out = os.path.join(tmp, "onnx.onnx")
    try:
        m = onnx.load(os.path.join(test_dir, "model.onnx"))
        c = version_converter.convert_version(m, target)
        onnx.save(c, out)
    except Exception as e:
        return "onnx: " + str(e).strip().split("\n")[0][:300]
    return verify(out, test_dir, target)


def cli_checks(kiln, node):
    """The command line: refusals write nothing and name the node, --report
    lists changes and refusals, --verify, freeze --target-opset, local
    functions inlined on the way."""
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        out, rep = os.path.join(tmp, "o.onnx"), os.path.join(tmp, "r.json")
        r = subprocess.run([kiln, "convert", "--help"], capture_output=True, text=True)
        if r.returncode != 0 or "--opset" not in r.stdout:
            bad.append("convert --help")
        m = os.path.join(node, "test_cast_FLOAT_to_FLOAT8E4M3FN", "model.onnx")
        if os.path.exists(m):
            r = subprocess.run([kiln, "convert", m, "-o", out, "--opset", "13", "--report", rep, "-q"],
                               capture_output=True, text=True)
            if r.returncode == 0 or os.path.exists(out):
                bad.append("a refused conversion wrote its output")
            if "node 'output' (Cast" not in r.stderr or "float8e4m3fn" not in r.stderr:
                bad.append("the refusal does not name the node, operator and type: " + r.stderr.strip())
            try:
                refused = json.load(open(rep))["convert"]["refused"]
                if not refused or refused[0]["op"] != "Cast":
                    bad.append("the report does not list the refusal")
            except Exception as e:
                bad.append(f"report after a refusal: {e}")
        m = os.path.join(node, "test_layer_normalization_4d_axis1", "model.onnx")
        if os.path.exists(m):
            r = subprocess.run([kiln, "convert", m, "-o", out, "--opset", "13", "--report", rep, "--verify", "-q"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                bad.append("convert --verify: " + r.stderr.strip())
            else:
                ch = json.load(open(rep))["convert"]["changes"]
                if not any(c["op"] == "LayerNormalization" and c["from"] == 17 and "decomposed" in c["how"]
                           for c in ch):
                    bad.append(f"the report does not list the decomposition: {ch}")
                if opset_of(onnx.load(out)) != 13:
                    bad.append("convert wrote another opset")
        m = os.path.join(node, "test_gelu_tanh_1", "model.onnx")
        if os.path.exists(m):
            r = subprocess.run([kiln, "freeze", m, "-o", out, "--target-opset", "11", "--verify", "-q"],
                               capture_output=True, text=True)
            if r.returncode != 0 or opset_of(onnx.load(out)) != 11:
                bad.append("freeze --target-opset 11: " + r.stderr.strip())
            elif verify(out, os.path.dirname(m), 11) is not None:
                bad.append("freeze --target-opset 11: " + verify(out, os.path.dirname(m), 11))
        # a local function at opset 18 (ReduceMean with axes as an input), called twice
        from onnx import helper, TensorProto
        fn = helper.make_function(
            "local", "Center", ["X"], ["Y"],
            [helper.make_node("Constant", [], ["ax"], value_ints=[-1]),
             helper.make_node("ReduceMean", ["X", "ax"], ["M"], keepdims=1),
             helper.make_node("Sub", ["X", "M"], ["Y"])],
            [helper.make_opsetid("", 18)])
        g = helper.make_graph(
            [helper.make_node("Center", ["x"], ["t"], domain="local"),
             helper.make_node("Center", ["t"], ["y"], domain="local")], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])])
        fm = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)],
                               functions=[fn], ir_version=9)
        src = os.path.join(tmp, "fn.onnx")
        onnx.save(fm, src)
        r = subprocess.run([kiln, "convert", src, "-o", out, "--opset", "13", "--verify", "-q"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            bad.append("a local function: " + r.stderr.strip())
        else:
            cm = onnx.load(out)
            onnx.checker.check_model(cm, full_check=True)
            x = np.random.RandomState(0).rand(2, 5).astype(np.float32)
            want = x - x.mean(-1, keepdims=True)
            want = want - want.mean(-1, keepdims=True)
            got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            if cm.functions or opset_of(cm) != 13 or not close(got, want):
                bad.append("a local function: not inlined, or other values")
    for b in bad:
        print("FAIL " + b, flush=True)
    print(f"command line checks: {len(bad)} failures", flush=True)
    return not bad


def job(args):
    kiln, test_dir, target, use_onnx = args
    with tempfile.TemporaryDirectory() as tmp:
        try:
            k = run_kiln(kiln, test_dir, target, tmp)
        except subprocess.TimeoutExpired:
            k = "kiln: timeout"
        o = run_onnx(test_dir, target, tmp) if use_onnx else "not run"
    return test_dir, target, k, o


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--node", default="/work/onnx123/node")
    ap.add_argument("--target", type=int, action="append")
    ap.add_argument("--up", type=int, action="append")
    ap.add_argument("--floor", action="append", default=[])
    ap.add_argument("--onnx", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--filter")
    ap.add_argument("--failures")
    ap.add_argument("--json")
    a = ap.parse_args()
    targets = a.target or [13, 11]
    ups = a.up if a.up is not None else [17, 21]
    if a.up == [0]:
        ups = []
    tests = []
    for d in sorted(glob.glob(os.path.join(a.node, "*", "model.onnx"))):
        d = os.path.dirname(d)
        if a.filter and not re.search(a.filter, os.path.basename(d)):
            continue
        m = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
        tests.append((d, opset_of(m)))
    jobs = []
    for t in targets:
        jobs += [(a.kiln, d, t, a.onnx) for d, v in tests if v > t]
    for u in ups:
        jobs += [(a.kiln, d, u, a.onnx) for d, v in tests if 9 <= v <= 11]
    with multiprocessing.Pool(a.jobs) as pool:
        results = pool.map(job, jobs, chunksize=4)
    summary = {}
    fails = []
    for d, t, k, o in results:
        key = ("down" if t in targets else "up") + f" to {t}"
        s = summary.setdefault(key, {"tests": 0, "kiln": 0, "onnx": 0})
        s["tests"] += 1
        s["kiln"] += k is None
        s["onnx"] += o is None
        if k is not None:
            fails.append(f"{os.path.basename(d)} -> {t}: {k}")
    for key, s in summary.items():
        line = f"{key}: {s['tests']} tests, kiln converted {s['kiln']}"
        if a.onnx:
            line += f", onnx version_converter {s['onnx']}"
        print(line, flush=True)
    if a.failures:
        with open(a.failures, "w") as f:
            f.write("\n".join(sorted(fails)) + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)
    bad = not cli_checks(a.kiln, a.node)
    for fl in a.floor:
        t, c = fl.split("=")
        got = summary.get(f"down to {t}", summary.get(f"up to {t}", {"kiln": 0}))["kiln"]
        if got < int(c):
            print(f"FAIL kiln converted {got} tests to opset {t}, the floor is {c}", flush=True)
            bad = True
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
