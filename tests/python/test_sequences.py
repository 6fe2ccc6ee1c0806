#!/usr/bin/env python3
"""Sequence and optional values: kiln against ONNX's reference implementation.

Builds small graphs around the Sequence*, SplitToSequence,
ConcatFromSequence, SequenceMap and Optional* operators (edge cases the
node tests leave out: negative positions, split remainders, new_axis,
string elements, Loop-carried sequences, sequences through If and Identity),
runs each with `kiln run --out` on SequenceProto/OptionalProto/TensorProto
inputs, and compares what kiln writes with onnx.reference.

usage: test_sequences.py KILN   (run with a python whose onnx >= 1.23)
Closing line: 'N passed, N failed'.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

KILN = None
passed, failed = [], []


def tvi(name, elem=TP.FLOAT, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def svi(name, elem=TP.FLOAT):
    return helper.make_tensor_sequence_value_info(name, elem, None)


def ovi(name, inner):
    return helper.make_value_info(name, helper.make_optional_type_proto(inner))


def seq_type(elem=TP.FLOAT):
    return helper.make_sequence_type_proto(helper.make_tensor_type_proto(elem, None))


def make(nodes, inputs, outputs, opset=18, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def to_proto(v, name):
    """A Python value (array, list of arrays, ('opt', value|None)) as the .pb message onnx writes."""
    if isinstance(v, tuple) and v and v[0] == "opt":
        return onnx.numpy_helper.from_optional(v[1], name=name)
    if isinstance(v, list):
        return onnx.numpy_helper.from_list(v, name=name)
    return numpy_helper.from_array(np.asarray(v), name)


def from_file(path, kind):
    with open(path, "rb") as f:
        b = f.read()
    if kind == "tensor_type":
        t = TP()
        t.ParseFromString(b)
        return numpy_helper.to_array(t)
    if kind == "sequence_type":
        s = onnx.SequenceProto()
        s.ParseFromString(b)
        return numpy_helper.to_list(s)
    o = onnx.OptionalProto()
    o.ParseFromString(b)
    return ("opt", numpy_helper.to_optional(o))


def same(a, b):
    if isinstance(a, tuple) or isinstance(b, tuple):
        if not (isinstance(a, tuple) and isinstance(b, tuple)):
            return False
        if a[1] is None or b[1] is None:
            return a[1] is None and b[1] is None
        return same(a[1], b[1])
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(
            same(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "OUS":
        return a.tolist() == b.tolist()
    return np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)


def check(name, m, feeds, expect_error=None, want=None):
    """want: the expected outputs where onnx.reference cannot run the case."""
    d = tempfile.mkdtemp(prefix="kiln-seq-")
    path = os.path.join(d, "model.onnx")
    onnx.save(m, path)
    argv = [KILN, "run", path, "--out", os.path.join(d, "out")]
    for k, v in feeds.items():
        f = os.path.join(d, k + ".pb")
        with open(f, "wb") as fh:
            fh.write(to_proto(v, k).SerializeToString())
        argv += ["-i", "%s=@%s" % (k, f)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if expect_error:
        ok = p.returncode != 0 and expect_error in p.stderr
        (passed if ok else failed).append(name)
        print("%s %s%s" % ("ok  " if ok else "FAIL", name, "" if ok else ": " + (p.stderr or "exit 0")[-300:]))
        return
    if p.returncode != 0:
        failed.append(name)
        print("FAIL %s: kiln: %s" % (name, p.stderr.strip()[-400:]))
        return
    if want is None:
        want = ReferenceEvaluator(m).run(None, feeds)
    problems = []
    for o, w in zip(m.graph.output, want):
        kind = o.type.WhichOneof("value")
        ext = ".pb" if kind != "tensor_type" else ".npy"
        f = os.path.join(d, "out", o.name + ext)
        if not os.path.exists(f) and kind == "tensor_type":
            f = os.path.join(d, "out", o.name + ".pb")
        got = np.load(f) if f.endswith(".npy") else from_file(f, kind)
        if kind == "optional_type":
            w = ("opt", w)
        if not same(got, w):
            problems.append("%s: kiln %r, reference %r" % (o.name, got, w))
    (failed if problems else passed).append(name)
    print("%s %s%s" % ("FAIL" if problems else "ok  ", name, ": " + "; ".join(problems) if problems else ""))


def i64(v):
    return numpy_helper.from_array(np.array(v, np.int64))


def cases():
    f = lambda *shape: np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    seq3 = [f(2, 3), f(2, 1) + 10, f(2, 2) + 20]
    # positions, negative and default
    for pos in (None, 0, -1, -3, 3):
        ins = ["s", "t"] + (["p"] if pos is not None else [])
        inits = [numpy_helper.from_array(np.array(pos, np.int64), "p")] if pos is not None else []
        # position n appends (onnx.reference wraps it to the front)
        check("SequenceInsert position %s" % pos,
              make([helper.make_node("SequenceInsert", ins, ["y"])], [svi("s"), tvi("t")], [svi("y")], inits=inits),
              {"s": seq3, "t": f(2, 5)}, want=[seq3 + [f(2, 5)]] if pos == 3 else None)
    for pos in (None, 0, -1, 1):
        ins = ["s"] + (["p"] if pos is not None else [])
        inits = [numpy_helper.from_array(np.array(pos, np.int32), "p")] if pos is not None else []
        check("SequenceErase position %s" % pos,
              make([helper.make_node("SequenceErase", ins, ["y"])], [svi("s")], [svi("y")], inits=inits),
              {"s": seq3})
    for pos in (0, -1, 2):
        check("SequenceAt %d" % pos,
              make([helper.make_node("SequenceAt", ["s", "p"], ["y"])], [svi("s")], [tvi("y")],
                   inits=[numpy_helper.from_array(np.array(pos, np.int64), "p")]), {"s": seq3})
    check("SequenceAt past the end",
          make([helper.make_node("SequenceAt", ["s", "p"], ["y"])], [svi("s")], [tvi("y")],
               inits=[numpy_helper.from_array(np.array(3, np.int64), "p")]), {"s": seq3}, expect_error="out of range")
    check("SequenceLength and SequenceEmpty",
          make([helper.make_node("SequenceEmpty", [], ["e"], dtype=TP.INT32),
                helper.make_node("SequenceLength", ["e"], ["n0"]), helper.make_node("SequenceLength", ["s"], ["n"])],
               [svi("s")], [tvi("n0", TP.INT64), tvi("n", TP.INT64), ]), {"s": seq3})
    check("SequenceConstruct of strings, through Identity",
          make([helper.make_node("SequenceConstruct", ["a", "b"], ["s"]), helper.make_node("Identity", ["s"], ["y"])],
               [tvi("a", TP.STRING), tvi("b", TP.STRING)], [svi("y", TP.STRING)]),
          {"a": np.array(["x", "yz"], dtype=object), "b": np.array([["w"]], dtype=object)})
    # SplitToSequence: default, keepdims 0, scalar split with remainder, lengths, zero-length pieces, strings
    x = f(5, 4)
    check("SplitToSequence default", make([helper.make_node("SplitToSequence", ["x"], ["y"])], [tvi("x")], [svi("y")]),
          {"x": x})
    check("SplitToSequence keepdims 0 axis -1",
          make([helper.make_node("SplitToSequence", ["x"], ["y"], axis=-1, keepdims=0)], [tvi("x")], [svi("y")]),
          {"x": x})
    check("SplitToSequence scalar split 2 (remainder)",
          make([helper.make_node("SplitToSequence", ["x", "k"], ["y"])], [tvi("x")], [svi("y")],
               inits=[numpy_helper.from_array(np.array(2, np.int64), "k")]), {"x": x})
    check("SplitToSequence scalar split larger than the axis",
          make([helper.make_node("SplitToSequence", ["x", "k"], ["y"], axis=1)], [tvi("x")], [svi("y")],
               inits=[numpy_helper.from_array(np.array(9, np.int32), "k")]), {"x": x})
    check("SplitToSequence lengths with a zero",
          make([helper.make_node("SplitToSequence", ["x", "k"], ["y"])], [tvi("x")], [svi("y")],
               inits=[numpy_helper.from_array(np.array([2, 0, 3], np.int64), "k")]), {"x": x})
    check("SplitToSequence lengths not adding up",
          make([helper.make_node("SplitToSequence", ["x", "k"], ["y"])], [tvi("x")], [svi("y")],
               inits=[numpy_helper.from_array(np.array([2, 2], np.int64), "k")]), {"x": x}, expect_error="add up")
    check("SplitToSequence strings",
          make([helper.make_node("SplitToSequence", ["x"], ["y"], axis=1, keepdims=0)], [tvi("x", TP.STRING)],
               [svi("y", TP.STRING)]), {"x": np.array([["a", "b"], ["c", "dd"]], dtype=object)})
    # ConcatFromSequence: axes, new_axis at either end, strings
    for axis, new_axis in ((0, 0), (-1, 0), (1, 0), (0, 1), (-1, 1), (2, 1)):
        seq = [f(2, 3), f(2, 3) + 6, f(2, 3) + 12] if new_axis or axis == 0 else [f(2, 3), f(2, 1), f(2, 2)]
        if axis == 0 and not new_axis:
            seq = [f(1, 3), f(2, 3), f(3, 3)]
        check("ConcatFromSequence axis %d new_axis %d" % (axis, new_axis),
              make([helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=axis, new_axis=new_axis)], [svi("s")],
                   [tvi("y")]), {"s": seq})
    check("ConcatFromSequence shapes differ",
          make([helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)], [svi("s")], [tvi("y")]),
          {"s": [f(2, 3), f(2, 2)]}, expect_error="only axis 0")
    check("ConcatFromSequence strings",
          make([helper.make_node("ConcatFromSequence", ["s"], ["c"], axis=0),
                helper.make_node("SequenceConstruct", ["c"], ["y"])], [svi("s", TP.STRING)],
               [svi("y", TP.STRING)]),
          {"s": [np.array(["a"], dtype=object), np.array(["bc", "d"], dtype=object)]})
    # SequenceMap with a tensor and a second sequence, and an empty sequence
    body = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Shape", ["a"], ["d"])],
                             "body", [tvi("a"), tvi("b")], [tvi("c"), tvi("d", TP.INT64)])
    mm = make([helper.make_node("SequenceMap", ["s", "t"], ["y", "z"], body=body)], [svi("s"), tvi("t")],
              [svi("y"), svi("z", TP.INT64)])
    check("SequenceMap with a tensor", mm, {"s": [f(3), f(3) + 1], "t": np.ones(3, np.float32)})
    # (onnx.reference fails on an empty input sequence)
    check("SequenceMap of an empty sequence", mm, {"s": [], "t": np.ones(3, np.float32)}, want=[[], []])
    # Optional: of a tensor, of a sequence, empty; HasElement / GetElement on each
    # (expected values given: onnx.reference models an optional as a list)
    opt_t = helper.make_tensor_type_proto(TP.FLOAT, None)
    # (onnx.reference's Optional gives [x] for x)
    check("Optional of a tensor",
          make([helper.make_node("Optional", ["x"], ["o"]), helper.make_node("OptionalHasElement", ["o"], ["h"]),
                helper.make_node("OptionalGetElement", ["o"], ["g"])], [tvi("x")],
               [ovi("o", opt_t), tvi("h", TP.BOOL), tvi("g")]), {"x": f(2)}, want=[f(2), np.array(True), f(2)])
    check("Optional empty, of a sequence type",
          make([helper.make_node("Optional", [], ["o"], type=seq_type()),
                helper.make_node("OptionalHasElement", ["o"], ["h"])], [],
               [ovi("o", seq_type()), tvi("h", TP.BOOL)]), {}, want=[None, np.array(False)])
    check("Optional input: empty",
          make([helper.make_node("OptionalHasElement", ["o"], ["h"])], [ovi("o", opt_t)], [tvi("h", TP.BOOL)]),
          {"o": ("opt", None)}, want=[np.array(False)])
    check("Optional input: full",
          make([helper.make_node("OptionalHasElement", ["o"], ["h"])], [ovi("o", opt_t)], [tvi("h", TP.BOOL)]),
          {"o": ("opt", f(3))}, want=[np.array(True)])
    check("OptionalGetElement of an optional sequence",
          make([helper.make_node("OptionalGetElement", ["o"], ["y"])], [ovi("o", seq_type())], [svi("y")]),
          {"o": ("opt", [f(2), f(1)])}, want=[[f(2), f(1)]])
    # If returning sequences; Loop carrying one; a Loop scan output that views the iteration number
    then_g = helper.make_graph([helper.make_node("SequenceConstruct", ["a"], ["r"])], "t", [], [svi("r")])
    else_g = helper.make_graph([helper.make_node("SequenceEmpty", [], ["r2"])], "e", [], [svi("r2")])
    for c in (True, False):
        check("If returns a sequence (%s)" % c,
              make([helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
                   [tvi("c", TP.BOOL, []), tvi("a")], [svi("y")]), {"c": np.array(c), "a": f(3)})
    lbody = helper.make_graph([
        helper.make_node("Identity", ["ci"], ["co"]),
        helper.make_node("Cast", ["i"], ["fi"], to=TP.FLOAT),
        helper.make_node("SequenceInsert", ["si", "fi"], ["so"]),
        helper.make_node("Identity", ["i"], ["scan"]),
    ], "body", [tvi("i", TP.INT64, []), tvi("ci", TP.BOOL, []), svi("si")],
        [tvi("co", TP.BOOL, []), svi("so"), tvi("scan", TP.INT64, [])])
    check("Loop carries a sequence; scan output of the iteration number",
          make([helper.make_node("SequenceEmpty", [], ["s0"]),
                helper.make_node("Loop", ["m", "", "s0"], ["s", "scans"], body=lbody)],
               [tvi("m", TP.INT64, [])], [svi("s"), tvi("scans", TP.INT64)]), {"m": np.array(4, np.int64)},
          want=[[np.array(i, np.float32) for i in range(4)], np.arange(4, dtype=np.int64)])


def main():
    global KILN
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    KILN = os.path.abspath(sys.argv[1])
    cases()
    print("%d passed, %d failed" % (len(passed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
