#!/opt/kiln-venv/bin/python
"""Model-local functions (ModelProto.functions): models built with
onnx.helper.make_function (attribute references with and without defaults,
nested calls, an If inside a function, omitted optional inputs and outputs,
overloads, a function importing another opset than the model) run by
`kiln run` and compared with numpy and with onnxruntime (skipped when it is
not installed); `kiln freeze` inlines them (the result has no functions and
runs the same), `--keep-functions` keeps them; a load/save round trip keeps
them field for field; hostile ones (recursion, deep or exploding chains of
calls, bad calls) are refused with a message naming the function.

usage: test_functions.py --kiln build/kiln --roundtrip build/tests/kiln-roundtrip
Needs onnx >= 1.15 (FunctionProto.attribute_proto, overload), as in
/opt/kiln-venv."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as H

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402

try:
    import onnxruntime as ort
except ImportError:  # the comparison with onnxruntime is skipped
    ort = None

FLOAT = onnx.AttributeProto.FLOAT
TMP = tempfile.mkdtemp(prefix="kiln-functions-")
args = None
t = Tally("functions")
ort_skipped = []
ort_runs = [0]


def kiln(*a, timeout=60):
    return subprocess.run([args.kiln, *map(str, a)], capture_output=True, text=True, timeout=timeout)


def ref_attr(name, ref, type_=FLOAT):
    a = H.make_attribute_ref(name, type_)
    a.ref_attr_name = ref
    return a


def const_ref(out, ref):
    """Constant(value_float=@ref) -> out"""
    n = H.make_node("Constant", [], [out])
    n.attribute.append(ref_attr("value_float", ref))
    return n


def function(name, inputs, outputs, nodes, opset=18, attrs=(), defaults=None, domain="local", overload=None,
             extra_opsets=()):
    f = H.make_function(domain, name, inputs, outputs, nodes, [H.make_opsetid("", opset), *extra_opsets],
                        attributes=list(attrs))
    for k, v in (defaults or {}).items():
        f.attribute_proto.append(H.make_attribute(k, v))
    if overload:
        f.overload = overload
    return f


def call(op, ins, outs, name, overload=None, domain="local", **attrs):
    n = H.make_node(op, ins, outs, name=name, domain=domain, **attrs)
    if overload:
        n.overload = overload
    return n


def model(nodes, inputs, outputs, functions, opset=18, name="m"):
    g = H.make_graph(nodes, name, inputs, outputs)
    m = H.make_model(g, opset_imports=[H.make_opsetid("", opset), H.make_opsetid("local", 1)], functions=functions)
    m.ir_version = 10
    return m


def fvi(name, shape):
    return H.make_tensor_value_info(name, T.FLOAT, shape)


def save(m, name):
    p = os.path.join(TMP, name + ".onnx")
    onnx.save(m, p)
    return p


def run_kiln(path, feeds, label):
    d = tempfile.mkdtemp(dir=TMP)
    a = []
    for k, v in feeds.items():
        p = os.path.join(d, "in_" + k + ".npy")
        np.save(p, v)
        a += ["-i", f"{k}=@{p}"]
    r = kiln("run", path, *a, "--out", d)
    if not t.ok(r.returncode == 0, f"{label}: kiln run", r.stderr.strip()):
        return None
    m = onnx.load(path)
    return {o.name: np.load(os.path.join(d, o.name.replace("/", "_") + ".npy")) for o in m.graph.output}


def run_ort(path, feeds, label):
    if ort is None:
        return None
    try:
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [o.name for o in s.get_outputs()]
        out = dict(zip(names, s.run(names, feeds)))
        ort_runs[0] += 1
        return out
    except Exception as e:  # onnxruntime's own limits: noted, not a kiln failure
        ort_skipped.append(f"{label}: {str(e).splitlines()[0][:200]}")
        return None


def close(a, b):
    return a is not None and b is not None and a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-6)


def all_nodes(g):
    for n in g.node:
        yield n
        for a in n.attribute:
            if a.HasField("g"):
                yield from all_nodes(a.g)
            for sg in a.graphs:
                yield from all_nodes(sg)


def check_case(label, m, feeds_list, expect, ort_ok=True, checker=True):
    """Runs m with kiln on every feed, compares with expect(feeds) and with
    onnxruntime; then freeze (inlined) and freeze --keep-functions."""
    path = save(m, label)
    if checker:
        try:
            onnx.checker.check_model(m, full_check=True)
        except Exception as e:
            t.fail(f"{label}: the test model passes onnx.checker", str(e)[:300])
    frozen = os.path.join(TMP, label + "_frozen.onnx")
    kept = os.path.join(TMP, label + "_kept.onnx")
    rep = os.path.join(TMP, label + "_report.json")
    r = kiln("freeze", path, "-o", frozen, "--report", rep, "--quiet")
    froze = t.ok(r.returncode == 0, f"{label}: kiln freeze", r.stderr.strip())
    r = kiln("freeze", path, "-o", kept, "--keep-functions", "--quiet")
    kept_ok = t.ok(r.returncode == 0, f"{label}: kiln freeze --keep-functions", r.stderr.strip())
    if froze:
        fm = onnx.load(frozen)
        report = json.load(open(rep))
        calls = [n for n in all_nodes(fm.graph) if n.domain == "local"]
        if report["functions_kept"]:
            t.ok(len(fm.functions) == len(report["functions_kept"]), f"{label}: freeze keeps what it reports")
        else:
            t.ok(not fm.functions and not calls, f"{label}: freeze inlines every function",
                 f"{len(fm.functions)} functions, {len(calls)} calls left")
            if checker:
                try:
                    onnx.checker.check_model(fm, full_check=True)
                    t.ok(True, "")
                except Exception as e:
                    t.fail(f"{label}: the frozen model passes onnx.checker", str(e)[:300])
        t.ok(report["function_calls_inlined"] > 0 or report["functions_kept"], f"{label}: report counts calls")
    if kept_ok:
        km = onnx.load(kept)
        t.ok(len(km.functions) == len(m.functions) and any(n.domain == "local" for n in all_nodes(km.graph)),
             f"{label}: --keep-functions keeps functions and calls")
    for i, feeds in enumerate(feeds_list):
        want = expect(feeds)
        got = run_kiln(path, feeds, f"{label}[{i}]")
        if got is None:
            continue
        for k, v in want.items():
            t.ok(close(got.get(k), v), f"{label}[{i}]: kiln output '{k}' vs numpy", f"{got.get(k)} vs {v}")
        if ort_ok:
            o = run_ort(path, feeds, f"{label}[{i}]")
            for k in (o or {}):
                t.ok(close(got.get(k), o[k]), f"{label}[{i}]: kiln output '{k}' vs onnxruntime", f"{got.get(k)} vs {o[k]}")
        for which, p, ok in (("frozen", frozen, froze), ("kept", kept, kept_ok)):
            if not ok:
                continue
            g2 = run_kiln(p, {k: v for k, v in feeds.items()}, f"{label}[{i}] {which}")
            for k, v in want.items():
                t.ok(g2 is not None and close(g2.get(k), v), f"{label}[{i}]: {which} model output '{k}'")
    # round trip: load + save keeps the functions field for field
    out = os.path.join(TMP, label + "_rt.onnx")
    r = subprocess.run([args.roundtrip, path, out], capture_output=True, text=True)
    if t.ok(r.returncode == 0, f"{label}: kiln round trip", r.stderr.strip()):
        t.ok(onnx.load(out) == onnx.load(path), f"{label}: round trip keeps the model")


rng = np.random.RandomState(0)


def rand(*shape):
    return rng.randn(*shape).astype(np.float32)


def case_refs():
    """Attribute references: a default used, a default overridden, a
    required attribute; the same function called twice."""
    f = function("Affine", ["x", "y"], ["z"],
                 [const_ref("a", "alpha"), const_ref("b", "beta"), H.make_node("Mul", ["x", "a"], ["t"]),
                  H.make_node("Mul", ["y", "b"], ["u"]), H.make_node("Add", ["t", "u"], ["z"])],
                 attrs=["beta"], defaults={"alpha": 2.0})
    nodes = [call("Affine", ["X", "Y"], ["Z0"], "c0", beta=3.0),
             call("Affine", ["Z0", "X"], ["Z1"], "c1", alpha=0.5, beta=-1.0),
             H.make_node("Identity", ["Z1"], ["t"], name="t_in_main")]  # 't' is also a name inside Affine
    m = model(nodes, [fvi("X", [2, 3]), fvi("Y", [2, 3])], [fvi("Z0", [2, 3]), fvi("t", [2, 3])], [f])

    def expect(fd):
        z0 = 2 * fd["X"] + 3 * fd["Y"]
        return {"Z0": z0, "t": 0.5 * z0 - fd["X"]}
    check_case("refs", m, [{"X": rand(2, 3), "Y": rand(2, 3)}], expect)


def case_nested():
    """A function calling another twice, passing its own attribute on."""
    inner = function("Inner", ["x"], ["y"],
                     [const_ref("g", "gain"), H.make_node("Mul", ["x", "g"], ["p"]),
                      H.make_node("Constant", [], ["one"], value_float=1.0), H.make_node("Add", ["p", "one"], ["y"])],
                     defaults={"gain": 2.0})
    s_call = call("Inner", ["x"], ["s"], "first")
    s_call.attribute.append(ref_attr("gain", "k"))
    outer = function("Outer", ["x"], ["o"], [s_call, call("Inner", ["s"], ["r"], "second"),
                                             H.make_node("Neg", ["r"], ["o"])],
                     defaults={"k": 1.5}, extra_opsets=[H.make_opsetid("local", 1)])
    nodes = [call("Outer", ["X"], ["O1"], "o1"), call("Outer", ["X"], ["O2"], "o2", k=-1.0)]
    m = model(nodes, [fvi("X", [4])], [fvi("O1", [4]), fvi("O2", [4])], [outer, inner])

    def expect(fd):
        x = fd["X"]
        return {"O1": -((x * 1.5 + 1) * 2 + 1), "O2": -((x * -1.0 + 1) * 2 + 1)}
    check_case("nested", m, [{"X": rand(4)}], expect)


def case_if():
    """An If inside a function: the branches read a formal input and a value
    of the body, one takes an attribute reference; bound, freeze folds it."""
    then_g = H.make_graph([const_ref("h", "hi"), H.make_node("Mul", ["x", "h"], ["t"])], "then", [],
                          [fvi("t", None)])
    else_g = H.make_graph([H.make_node("Sub", ["x", "one"], ["t"])], "else", [], [fvi("t", None)])
    f = function("Sel", ["c", "x"], ["y"],
                 [H.make_node("Constant", [], ["one"], value_float=1.0),
                  H.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
                 defaults={"hi": 5.0})
    nodes = [call("Sel", ["C", "X"], ["Y"], "sel", hi=3.0), call("Sel", ["C", "Y"], ["W"], "sel2")]
    m = model(nodes, [H.make_tensor_value_info("C", T.BOOL, []), fvi("X", [3])], [fvi("W", [3])], [f])

    def expect(fd):
        x = fd["X"]
        y = x * 3 if fd["C"] else x - 1
        return {"W": y * 5 if fd["C"] else y - 1}
    feeds = [{"C": np.array(True), "X": rand(3)}, {"C": np.array(False), "X": rand(3)}]
    check_case("if", m, feeds, expect)
    # bound condition: the If inside the function folds away
    path = os.path.join(TMP, "if.onnx")
    out = os.path.join(TMP, "if_bound.onnx")
    r = kiln("freeze", path, "-o", out, "--bind", "C=true", "--quiet")
    if t.ok(r.returncode == 0, "if: freeze --bind C=true", r.stderr.strip()):
        fm = onnx.load(out)
        t.ok(all(n.op_type != "If" for n in fm.graph.node) and not fm.functions,
             "if: the bound If inside the function is folded", str([n.op_type for n in fm.graph.node]))
        got = run_kiln(out, {"X": feeds[0]["X"]}, "if bound")
        t.ok(got is not None and close(got["W"], feeds[0]["X"] * 15), "if: bound model output")


def case_optional():
    """Omitted optional inputs (Clip without max) and outputs."""
    f = function("TwoOut", ["x", "lo", "hi"], ["clipped", "doubled"],
                 [H.make_node("Clip", ["x", "lo", "hi"], ["clipped"]), H.make_node("Add", ["x", "x"], ["doubled"])])
    nodes = [call("TwoOut", ["X", "L"], ["Y", ""], "a"), call("TwoOut", ["X", "", ""], ["", "D"], "b")]
    m = model(nodes, [fvi("X", [5]), fvi("L", [])], [fvi("Y", [5]), fvi("D", [5])], [f])

    def expect(fd):
        return {"Y": np.maximum(fd["X"], fd["L"]), "D": 2 * fd["X"]}
    check_case("optional", m, [{"X": rand(5), "L": np.array(0.1, np.float32)}], expect)


def case_overload():
    """Two functions of the same name told apart by their overload."""
    f2 = function("Scale", ["x"], ["y"], [H.make_node("Constant", [], ["k"], value_float=2.0),
                                          H.make_node("Mul", ["x", "k"], ["y"])], overload="by2")
    f3 = function("Scale", ["x"], ["y"], [H.make_node("Constant", [], ["k"], value_float=3.0),
                                          H.make_node("Mul", ["x", "k"], ["y"])], overload="by3")
    nodes = [call("Scale", ["X"], ["A"], "s2", overload="by2"), call("Scale", ["A"], ["B"], "s3", overload="by3")]
    m = model(nodes, [fvi("X", [3])], [fvi("A", [3]), fvi("B", [3])], [f2, f3])
    check_case("overload", m, [{"X": rand(3)}], lambda fd: {"A": 2 * fd["X"], "B": 6 * fd["X"]})


def case_opset():
    """A function importing ai.onnx 11 in a model of opset 18: ReduceSum
    takes axes as an attribute there. kiln runs it at 11; freeze keeps it."""
    f = function("SumRows", ["x"], ["y"], [H.make_node("ReduceSum", ["x"], ["y"], axes=[1], keepdims=0)], opset=11)
    m = model([call("SumRows", ["X"], ["Y"], "sr")], [fvi("X", [2, 3])], [fvi("Y", [2])], [f])
    check_case("opset", m, [{"X": rand(2, 3)}], lambda fd: {"Y": fd["X"].sum(axis=1)}, checker=False)
    rep = json.load(open(os.path.join(TMP, "opset_report.json")))
    t.ok(rep["functions_kept"] == ["local.SumRows"], "opset: freeze reports the function kept", str(rep["functions_kept"]))


def case_loop_in_if():
    """A Loop inside a function (its body's inputs renamed too), the call
    inside a branch of an If of the main graph, and a function returning one
    of its inputs as an output."""
    body = H.make_graph([H.make_node("Add", ["acc_in", "x"], ["acc_out"]),
                         H.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                        [H.make_tensor_value_info("i", T.INT64, []), H.make_tensor_value_info("cond_in", T.BOOL, []),
                         fvi("acc_in", None)],
                        [H.make_tensor_value_info("cond_out", T.BOOL, []), fvi("acc_out", None)])
    f = function("Times", ["x", "n"], ["y"], [H.make_node("Constant", [], ["zero"], value_float=0.0),
                                              H.make_node("Mul", ["x", "zero"], ["acc0"]),
                                              H.make_node("Loop", ["n", "", "acc0"], ["y"], body=body)])
    then_g = H.make_graph([call("Times", ["X", "N"], ["r"], "times")], "then", [], [fvi("r", None)])
    else_g = H.make_graph([H.make_node("Neg", ["X"], ["r"])], "else", [], [fvi("r", None)])
    nodes = [H.make_node("If", ["C"], ["Y"], then_branch=then_g, else_branch=else_g, name="top_if")]
    ins = [H.make_tensor_value_info("C", T.BOOL, []), fvi("X", [3]), H.make_tensor_value_info("N", T.INT64, [])]
    m = model(nodes, ins, [fvi("Y", [3])], [f])

    def expect(fd):
        return {"Y": fd["X"] * int(fd["N"]) if fd["C"] else -fd["X"]}
    feeds = [{"C": np.array(True), "X": rand(3), "N": np.array(4, np.int64)},
             {"C": np.array(False), "X": rand(3), "N": np.array(4, np.int64)}]
    check_case("loop_in_if", m, feeds, expect)
    # an input returned as an output (onnxruntime and the checker refuse it; kiln adds an Identity)
    same = function("Same", ["x"], ["x", "neg"], [H.make_node("Neg", ["x"], ["neg"])])
    m = model([call("Same", ["X"], ["A", "B"], "same")], [fvi("X", [3])], [fvi("A", [3]), fvi("B", [3])], [same])
    check_case("passthrough", m, [{"X": rand(3)}], lambda fd: {"A": fd["X"], "B": -fd["X"]}, ort_ok=False,
               checker=False)


def case_graph_ref():
    """A graph-valued attribute reference: the If inside the function takes
    its then-branch from the call, a graph reading the caller's values."""
    a = ref_attr("then_branch", "tb", onnx.AttributeProto.GRAPH)
    else_g = H.make_graph([H.make_node("Neg", ["x"], ["t"])], "else", [], [fvi("t", None)])
    ifn = H.make_node("If", ["c"], ["y"], else_branch=else_g)
    ifn.attribute.append(a)
    f = function("G", ["c", "x"], ["y"], [ifn], attrs=["tb"])
    tb = H.make_graph([H.make_node("Add", ["X", "X"], ["r"])], "tb", [], [fvi("r", None)])
    m = model([call("G", ["C", "X"], ["Y"], "g0", tb=tb)], [H.make_tensor_value_info("C", T.BOOL, []), fvi("X", [2])],
              [fvi("Y", [2])], [f])
    feeds = [{"C": np.array(True), "X": rand(2)}, {"C": np.array(False), "X": rand(2)}]
    check_case("graph_ref", m, feeds, lambda fd: {"Y": 2 * fd["X"] if fd["C"] else -fd["X"]}, ort_ok=False,
               checker=False)


def case_info():
    f = function("Affine", ["x"], ["z"], [const_ref("a", "alpha"), H.make_node("Mul", ["x", "a"], ["z"])],
                 defaults={"alpha": 2.0}, overload="v1")
    m = model([call("Affine", ["X"], ["Z"], "c0", overload="v1")], [fvi("X", [2])], [fvi("Z", [2])], [f])
    path = save(m, "info")
    r = kiln("info", "--json", path)
    if t.ok(r.returncode == 0, "info: kiln info --json", r.stderr.strip()):
        j = json.loads(r.stdout)
        d = j.get("function_details", [{}])[0]
        t.ok(j["functions"] == ["Affine"] and d.get("domain") == "local" and d.get("overload") == "v1" and
             d.get("inputs") == ["x"] and d.get("attributes") == ["alpha"] and d.get("nodes") == 2,
             "info: functions listed", r.stdout)
    r = kiln("info", path)
    t.ok(r.returncode == 0 and "local.Affine:v1(x) -> (z)" in r.stdout, "info: text lists functions", r.stdout)


def expect_error(label, m, words, cmd="run", feeds=None):
    path = save(m, "bad_" + label.replace(" ", "_"))
    a = ["-o", path + ".out.onnx"] if cmd == "freeze" else []
    for k, v in (feeds or {}).items():
        a += ["-i", f"{k}={v}"]
    try:
        r = kiln(cmd, path, *a, timeout=20)
    except subprocess.TimeoutExpired:
        t.fail(f"hostile {label}: finishes in time")
        return
    msg = r.stderr.strip()
    t.ok(r.returncode != 0 and r.returncode < 128 and all(w in msg for w in words),
         f"hostile {label}: refused with a message naming {words}", f"rc {r.returncode}: {msg[:400]}")


def case_hostile():
    x1 = [fvi("X", [2])]
    # a function calling itself
    f = function("Loop1", ["x"], ["y"], [call("Loop1", ["x"], ["y"], "again")])
    expect_error("self call", model([call("Loop1", ["X"], ["Y"], "c")], x1, [fvi("Y", [2])], [f]),
                 ["Loop1", "calls itself"], cmd="info")
    # mutual recursion, through an If inside one of them
    sub = H.make_graph([call("A", ["x"], ["t"], "back")], "br", [], [fvi("t", None)])
    fa = function("A", ["x"], ["y"], [call("B", ["x"], ["y"], "to_b")])
    fb = function("B", ["x"], ["y"], [H.make_node("Constant", [], ["c"], value=H.make_tensor("c", T.BOOL, [], [True])),
                                      H.make_node("If", ["c"], ["y"], then_branch=sub, else_branch=sub)])
    expect_error("mutual recursion", model([call("A", ["X"], ["Y"], "c")], x1, [fvi("Y", [2])], [fa, fb]),
                 ["local.A", "local.B", "calls itself"], cmd="info")
    # a chain of 200 functions each calling the next
    fs = [function(f"F{i}", ["x"], ["y"], [call(f"F{i + 1}", ["x"], ["y"], "n")]) for i in range(199)]
    fs.append(function("F199", ["x"], ["y"], [H.make_node("Neg", ["x"], ["y"])]))
    expect_error("deep chain", model([call("F0", ["X"], ["Y"], "c")], x1, [fvi("Y", [2])], fs),
                 ["more than 64 deep"], cmd="info")
    # 40 levels each calling the one below twice: 2^40 nodes once inlined
    fs = [function("E0", ["x"], ["y"], [H.make_node("Neg", ["x"], ["y"])])]
    for i in range(1, 41):
        fs.append(function(f"E{i}", ["x"], ["y"], [call(f"E{i - 1}", ["x"], ["t"], "a"),
                                                   call(f"E{i - 1}", ["t"], ["y"], "b")]))
    m = model([call("E40", ["X"], ["Y"], "c")], x1, [fvi("Y", [2])], fs)
    expect_error("exploding calls", m, ["max_nodes"], feeds={"X": "[1,2]"})
    expect_error("exploding calls (freeze)", m, ["max_nodes"], cmd="freeze")
    # too many inputs for the function
    f = function("One", ["x"], ["y"], [H.make_node("Neg", ["x"], ["y"])])
    expect_error("call arity", model([call("One", ["X", "X"], ["Y"], "c2")], x1, [fvi("Y", [2])], [f]),
                 ["c2", "local.One", "2 inputs"], feeds={"X": "[1,2]"})
    # an attribute reference outside any function
    n = H.make_node("Constant", [], ["Y"], name="stray")
    n.attribute.append(ref_attr("value_float", "alpha"))
    expect_error("stray reference", model([n], [], [fvi("Y", [])], []), ["stray", "alpha", "not inside a function"])
    # an unknown operator inside a function: the call site is named
    f = function("Bad", ["x"], ["y"], [H.make_node("NoSuchOp", ["x"], ["y"], name="inner")])
    expect_error("unknown op inside", model([call("Bad", ["X"], ["Y"], "site")], x1, [fvi("Y", [2])], [f]),
                 ["function 'local.Bad' (called by node 'site')", "NoSuchOp"], feeds={"X": "[1,2]"})
    # a run-time error inside a function
    f = function("Resh", ["x"], ["y"], [H.make_node("Constant", [], ["s"], value=H.make_tensor("s", T.INT64, [1], [7])),
                                        H.make_node("Reshape", ["x", "s"], ["y"], name="rs")])
    expect_error("run-time error inside", model([call("Resh", ["X"], ["Y"], "site2")], x1, [fvi("Y", [7])], [f]),
                 ["function 'local.Resh' (called by node 'site2')", "site2/rs"], feeds={"X": "[1,2]"})
    # the same function twice
    f = function("Twice", ["x"], ["y"], [H.make_node("Neg", ["x"], ["y"])])
    expect_error("duplicate", model([call("Twice", ["X"], ["Y"], "c")], x1, [fvi("Y", [2])], [f, f]),
                 ["local.Twice", "defined twice"], cmd="info")
    # an attribute given with another type than the reference declares
    f = function("Typed", ["x"], ["y"], [const_ref("a", "alpha"), H.make_node("Mul", ["x", "a"], ["y"])],
                 attrs=["alpha"])
    expect_error("attribute type", model([call("Typed", ["X"], ["Y"], "c", alpha="text")], x1, [fvi("Y", [2])], [f]),
                 ["local.Typed", "alpha", "string", "float"], feeds={"X": "[1,2]"})


def main():
    global args
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--roundtrip", required=True)
    args = ap.parse_args()
    for c in (case_refs, case_nested, case_if, case_optional, case_overload, case_opset, case_loop_in_if, case_graph_ref, case_info, case_hostile):
        try:
            c()
        except Exception as e:  # a broken case is a failure, the others still run
            t.fail(c.__name__, repr(e))
    if ort is None:
        print("onnxruntime not installed: the comparisons with it were skipped")
    else:
        print(f"compared with onnxruntime on {ort_runs[0]} runs")
    for s in ort_skipped:
        print("onnxruntime could not run", s)
    t.finish()


if __name__ == "__main__":
    main()
