#!/usr/bin/python3
"""Hostile input: malformed models and tensor files must fail cleanly.

Every case is run through `kiln info` and/or `kiln run` with a 10 s timeout
and must give: a non-zero exit, a message on stderr, no signal, no sanitizer
report, and no file left in the output folder. Run it against a normal build
and against a sanitizer build:

    /usr/bin/python3 tests/python/test_hostile.py --kiln build/kiln \
        [--save-loop build/tests/kiln-save-loop]

Cases that need an operator kiln does not have yet are reported as skipped
(with the operator), never counted as passed. The save cases ("nothing
lost") SIGKILL kiln while it writes a large model and fill a small tmpfs.
Closing line: 'N passed, N failed'; exit status non-zero on any failure.
"""
import argparse
import glob
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                       r"ThreadSanitizer|MemorySanitizer")
UNSUPPORTED = re.compile(r"operator (\S+) \(opset \d+\) is not supported by kiln")

ARGS = None
WORK = None
passed, failed, skipped = [], [], []


# ---- model builders -------------------------------------------------------

def vi(name, dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def model(nodes, inputs, outputs, inits=(), opset=13, value_info=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), value_info=list(value_info))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="hostile")
    m.ir_version = 8
    return m


def add_model(**kw):
    return model([helper.make_node("Add", ["x", "y"], ["z"])], [vi("x", [2]), vi("y", [2])], [vi("z", [2])], **kw)


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):  # length-delimited field
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def deep_if_model(depth):
    """`depth` If nodes, each the then_branch of the one above: built as raw
    bytes (onnx's Python objects would hit the recursion limit)."""
    out_vi = vi("y", [1]).SerializeToString()
    inner = field(2, b"leaf") + field(12, out_vi)
    for _ in range(depth):
        attr = field(1, b"then_branch") + field(6, inner) + field_varint(20, 5)
        node = field(1, b"c") + field(2, b"y") + field(4, b"If") + field(5, attr)
        inner = field(1, node) + field(2, b"g") + field(12, out_vi)
    graph = inner + field(11, vi("c", [], TensorProto.BOOL).SerializeToString())
    return field_varint(1, 8) + field(8, field(1, b"") + field_varint(2, 13)) + field(7, graph)


def deep_type_model(depth):
    """An input whose type is sequence(sequence(...(tensor))) `depth` deep:
    protobuf nesting that is not a subgraph."""
    t = field(1, field_varint(1, 1))  # TypeProto.tensor_type{elem_type=FLOAT}
    for _ in range(depth):
        t = field(4, field(1, t))  # TypeProto.sequence_type{elem_type=t}
    inp = field(1, b"x") + field(2, t)
    out = vi("x", [1]).SerializeToString()
    graph = field(2, b"g") + field(11, inp) + field(12, out)
    return field_varint(1, 8) + field(8, field(1, b"") + field_varint(2, 13)) + field(7, graph)


def ext_init(name, dims, location, offset=None, length=None):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


def ext_model(inits):
    """y = x + w for each external initializer w (float[4])."""
    nodes, outs = [], []
    for i, t in enumerate(inits):
        nodes.append(helper.make_node("Add", ["x", t.name], ["o%d" % i]))
        outs.append(vi("o%d" % i, [4]))
    return model(nodes, [vi("x", [4])], outs, inits=inits)


def raw_tensor(name, dims, raw=None, floats=None, dtype=TensorProto.FLOAT):
    """A TensorProto built field by field (onnx.helper checks sizes)."""
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    if raw is not None:
        t.raw_data = raw
    if floats is not None:
        t.float_data.extend(floats)
    return t


def npy_bytes(header, data=b""):
    h = header.encode()
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


# ---- running kiln ---------------------------------------------------------

def run_kiln(argv, timeout=10):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    try:
        p = subprocess.run([ARGS.kiln] + argv, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, b"", b"timeout"
    return p.returncode, p.stdout, p.stderr


def check_fail(rc, err, outdir=None):
    """Returns an error text, or None when kiln failed cleanly."""
    text = err.decode(errors="replace")
    if rc is None:
        return "timed out after 10 s"
    if rc < 0:
        return "killed by signal %d: %s" % (-rc, text[-400:])
    if SANITIZER.search(text):
        return "sanitizer report: " + text[-800:]
    if rc == 0:
        return "exit status 0 (expected a failure)"
    if not text.strip():
        return "exit status %d but nothing on stderr" % rc
    if outdir and os.listdir(outdir):
        return "files left in the output folder: %s" % os.listdir(outdir)
    return None


def write_case(name, data, suffix=".onnx"):
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model" + suffix)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, (bytes, bytearray)) else data.SerializeToString())
    return d, path


def case(name, data, expect=None, info=True, run=True, inputs=("x=[1,2]", "y=[3,4]"), needs=None, setup=None,
         expect_ok=False, any_ok=False):
    """info/run: check that command (True), or skip it.
    expect: a regex the stderr must match. needs: operators the case relies on
    (a 'not supported' error for one of them makes the case a skip).
    expect_ok: the input is hostile but harmless; kiln must accept it.
    any_ok: success or a clean failure are both fine (no signal, no report)."""
    d, path = write_case(name, data)
    if setup:
        setup(d)
    problems = []
    missing = None
    cmds = []
    if info:
        cmds.append(("info", ["info", path], None))
    if run:
        outdir = tempfile.mkdtemp(dir=d, prefix="out-")
        argv = ["run", path, "--out", outdir]
        for i in inputs:
            argv += ["-i", i]
        cmds.append(("run", argv, outdir))
    for label, argv, outdir in cmds:
        rc, out, err = run_kiln(argv)
        text = err.decode(errors="replace")
        if expect_ok:
            if rc != 0 or SANITIZER.search(text):
                problems.append("%s: expected success, got %s: %s" % (label, rc, text.strip()[-300:]))
            continue
        if any_ok and rc == 0:
            if SANITIZER.search(text):
                problems.append("%s: sanitizer report: %s" % (label, text[-800:]))
            continue
        m = UNSUPPORTED.search(text)
        if m and needs and m.group(1) in needs:
            missing = m.group(1)
            break
        e = check_fail(rc, err, outdir)
        if e is None and expect and not re.search(expect, text):
            e = "message does not match /%s/: %s" % (expect, text.strip()[-300:])
        if e:
            problems.append("%s: %s" % (label, e))
    report(name, problems, missing)


def report(name, problems, missing=None):
    if missing:
        skipped.append("%s (needs operator %s)" % (name, missing))
        print("SKIP %s: needs operator %s, which this build lacks" % (name, missing))
    elif problems:
        failed.append(name)
        for p in problems:
            print("FAIL %s: %s" % (name, p))
    else:
        passed.append(name)
        print("ok   %s" % name)


# ---- the cases ------------------------------------------------------------

def load_cases():
    good = add_model().SerializeToString()
    case("empty-file", b"", r"empty")
    case("garbage-bytes", bytes(random.Random(1).getrandbits(8) for _ in range(4096)), r"not a valid ONNX model")
    case("truncated-model", good[: len(good) // 2], r"not a valid ONNX model")
    case("flipped-bytes", bytes(b ^ 0xFF if i % 7 == 3 else b for i, b in enumerate(good)), None)
    case("bad-wire-type", good + b"\x0f", r"not a valid ONNX model")
    case("reserved-marker-field", field(7, field(5, varint(536870000 << 3) + varint(1))), r"reserved")
    case("no-graph", field_varint(1, 8), r"no graph")

    # Tensor shapes and sizes.
    t = raw_tensor("w", [1 << 40, 1 << 40], raw=b"\0" * 4)
    case("huge-dims-overflow", add_model(inits=[t]), r"overflow|limit")
    t = raw_tensor("w", [1 << 20, 1 << 20], raw=b"\0" * 8)
    case("huge-dims-over-limit", add_model(inits=[t]), r"max_tensor_bytes|limit")
    t = raw_tensor("w", [-3], floats=[])
    case("negative-dim-initializer", add_model(inits=[t]), r"negative")
    case("negative-dim-input", model([helper.make_node("Add", ["x", "x"], ["z"])], [vi("x", [-5])], [vi("z", [2])]),
         r"negative")
    case("rank-100-input", model([helper.make_node("Add", ["x", "x"], ["z"])], [vi("x", [1] * 100)],
                                 [vi("z", [1])]), r"rank 100")
    t = helper.make_tensor("w", TensorProto.FLOAT, [1] * 100, [1.0])
    case("rank-100-initializer", add_model(inits=[t]), r"rank 100")
    t = raw_tensor("w", [4], raw=b"\0" * 12)
    case("raw-data-too-short", add_model(inits=[t]), r"raw_data has 12 bytes")
    t = raw_tensor("w", [1000], raw=b"\0" * 4004)
    case("raw-data-too-long-lifted", add_model(inits=[t]), r"raw_data has 4004 bytes")
    t = raw_tensor("w", [3], floats=[1.0, 2.0])
    case("typed-data-count-mismatch", add_model(inits=[t]), r"has 2 values")
    t = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    t.data_type = 999
    case("unknown-data-type", add_model(inits=[t]), r"unknown data type")

    # Strings and nesting.
    big = "n" * (17 << 20)
    m = add_model()
    m.graph.node[0].name = big
    case("node-name-17MiB", m, r"max_string_bytes")
    m = add_model()
    m.graph.node[0].attribute.append(helper.make_attribute("junk", big.encode()))
    case("attribute-string-17MiB", m, r"max_string_bytes")
    # 24 MB of empty attributes: 2 bytes each on the wire, ~250 unpacked.
    node = field(1, b"x") + field(1, b"y") + field(2, b"z") + field(4, b"Add") + b"\x2a\x00" * 12000000
    g = field(1, node) + field(2, b"g") + b"".join(field(11, vi(n, [2]).SerializeToString()) for n in "xy") + \
        field(12, vi("z", [2]).SerializeToString())
    case("attribute-flood-24MB", field_varint(1, 8) + field(8, field(1, b"") + field_varint(2, 13)) + field(7, g),
         r"decoding the model's structure would take more than")
    case("if-nested-10000-deep", deep_if_model(10000), r"nested more than \d+ deep")
    case("if-nested-65-deep", deep_if_model(65), r"nested more than 64 deep")
    case("sequence-type-nested-100000-deep", deep_type_model(100000), r"nested more than \d+ deep")


def plan_cases():
    x2, y2, z2 = vi("x", [2]), vi("y", [2]), vi("z", [2])
    case("input-names-no-value",
         model([helper.make_node("Add", ["x", "ghost"], ["z"])], [x2, y2], [z2]), r"names no value", info=False)
    case("value-produced-twice",
         model([helper.make_node("Add", ["x", "y"], ["z"]), helper.make_node("Sub", ["x", "y"], ["z"])],
               [x2, y2], [z2]), r"already produced", info=False)
    case("output-overwrites-input",
         model([helper.make_node("Add", ["x", "y"], ["x"])], [x2, y2], [x2]), r"already a graph input", info=False)
    case("cycle",
         model([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Add", ["a", "y"], ["b"]),
                helper.make_node("Add", ["a", "b"], ["z"])], [x2, y2], [z2]), r"cycle", info=False)
    case("self-loop", model([helper.make_node("Add", ["z", "y"], ["z"])], [x2, y2], [z2]), r"cycle|already",
         info=False)
    case("output-never-produced", model([helper.make_node("Add", ["x", "y"], ["w"])], [x2, y2], [z2]),
         r"not produced", info=False)
    case("node-without-op-type", model([helper.make_node("", ["x", "y"], ["z"])], [x2, y2], [z2]), r"op_type")
    case("unknown-operator", model([helper.make_node("NoSuchOp", ["x", "y"], ["z"])], [x2, y2], [z2]),
         r"not supported", info=False)
    case("unknown-domain", model([helper.make_node("Add", ["x", "y"], ["z"], domain="evil.example")],
                                 [x2, y2], [z2]), r"not supported", info=False)
    case("duplicate-graph-input", model([helper.make_node("Add", ["x", "y"], ["z"])], [x2, x2, y2], [z2]),
         r"listed twice", info=False)
    then_g = helper.make_graph([helper.make_node("Add", ["x", "ghost"], ["t"])], "then", [], [vi("t", [2])])
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "y"], ["e"])], "else", [], [vi("e", [2])])
    case("subgraph-reads-undefined-outer-value",
         model([helper.make_node("If", ["c"], ["z"], then_branch=then_g, else_branch=else_g)],
               [vi("c", [], TensorProto.BOOL), x2, y2], [z2]),
         r"no enclosing graph defines", info=False, inputs=("c=true", "x=[1,2]", "y=[3,4]"), needs={"If"})
    # Attributes: wrong type, missing, out of range (each needs its operator).
    case("attribute-wrong-type",
         model([helper.make_node("Concat", ["x", "y"], ["z"], axis="zero")], [x2, y2], [vi("z", [4])]),
         r"axis", info=False, needs={"Concat"})
    case("required-attribute-missing",
         model([helper.make_node("Cast", ["x"], ["z"])], [x2], [z2]), r"to", info=False, inputs=("x=[1,2]",),
         needs={"Cast"})
    case("axis-out-of-range",
         model([helper.make_node("Concat", ["x", "y"], ["z"], axis=7)], [x2, y2], [vi("z", [4])]),
         r"axis", info=False, needs={"Concat"})


def runtime_cases():
    x2, y2 = vi("x", [2]), vi("y", [2])
    case("input-shape-mismatch", add_model(), None, info=False, inputs=("x=[1,2,3]", "y=[[1],[2]]"),
         expect_ok=False)
    case("input-not-in-model", add_model(), r"not an input", info=False, inputs=("x=[1,2]", "y=[1,2]", "q=1"))
    case("input-missing", add_model(), r"required", info=False, inputs=("x=[1,2]",))
    case("uneven-literal", add_model(), r"uneven|different lengths", info=False, inputs=("x=[[1,2],[3]]", "y=[1,2]"))
    case("garbage-literal", add_model(), r"expected", info=False, inputs=("x=[1,,2]", "y=[1,2]"))
    case("literal-nested-deep", add_model(), r"nested deeper", info=False,
         inputs=("x=" + "[" * 5000 + "1" + "]" * 5000, "y=[1,2]"))
    idx = numpy_helper.from_array(np.array([5], np.int64), "i")
    case("gather-index-out-of-range",
         model([helper.make_node("Gather", ["x", "i"], ["z"])], [x2], [vi("z", [1])], inits=[idx]),
         r"out of range|index", info=False, inputs=("x=[1,2]",), needs={"Gather"})
    shape = numpy_helper.from_array(np.array([1 << 20, 1 << 20, 1 << 10], np.int64), "s")
    case("expand-to-huge",
         model([helper.make_node("Expand", ["x", "s"], ["z"])], [vi("x", [1])], [vi("z", None)], inits=[shape]),
         r"limit|too large|memory|overflow", info=False, inputs=("x=[1]",), needs={"Expand"})
    case("constantofshape-huge",
         model([helper.make_node("ConstantOfShape", ["s"], ["z"])], [], [vi("z", None)], inits=[shape]),
         r"limit|too large|memory|overflow", info=False, inputs=(), needs={"ConstantOfShape"})
    case("reshape-negative",
         model([helper.make_node("Reshape", ["x", "s"], ["z"])], [x2], [vi("z", None)],
               inits=[numpy_helper.from_array(np.array([-3], np.int64), "s")]),
         r"shape|-3", info=False, inputs=("x=[1,2]",), needs={"Reshape"})
    t = vi("z", [2])
    m = model([helper.make_node("Add", ["x", "y"], ["a"]), helper.make_node("Div", ["a", "y"], ["z"])],
              [vi("x", [2], TensorProto.INT64), vi("y", [2], TensorProto.INT64)], [vi("z", [2], TensorProto.INT64)])
    # Integer division by zero is undefined in ONNX: any result or a clean
    # error is fine, a SIGFPE is not.
    case("integer-divide-by-zero", m, None, info=False, inputs=("x=[1,2]", "y=[0,0]"), any_ok=True)
    m2 = model([helper.make_node("Div", ["x", "y"], ["z"])],
               [vi("x", [1], TensorProto.INT64), vi("y", [1], TensorProto.INT64)], [vi("z", [1], TensorProto.INT64)])
    case("integer-divide-int64-min-by-minus-1", m2, None, info=False,
         inputs=("x=[-9223372036854775808]", "y=[-1]"), any_ok=True)
    m3 = model([helper.make_node("Div", ["x", "y"], ["z"])],
               [vi("x", [1], TensorProto.INT32), vi("y", [1], TensorProto.INT32)], [vi("z", [1], TensorProto.INT32)])
    case("integer-divide-int32-min-by-minus-1", m3, None, info=False, inputs=("x=[-2147483648]", "y=[-1]"),
         any_ok=True)


def output_name_cases():
    """Output names become file names under --out: they must stay inside."""
    for oname in ("../escaped", "/tmp/kiln-hostile-abs", "a/../../b", ".."):
        m = model([helper.make_node("Add", ["x", "y"], [oname])], [vi("x", [2]), vi("y", [2])], [vi(oname, [2])])
        d, path = write_case("output-name-" + re.sub(r"\W", "_", oname), m)
        outdir = tempfile.mkdtemp(dir=d, prefix="out-")
        before = set(os.listdir(d)) | set(os.listdir(os.path.dirname(d)))
        rc, out, err = run_kiln(["run", path, "--out", outdir, "-i", "x=[1,2]", "-i", "y=[3,4]"])
        probs = []
        if rc is None or rc < 0 or SANITIZER.search(err.decode(errors="replace")):
            probs.append("crashed or hung: %s" % err.decode(errors="replace")[-300:])
        after = set(os.listdir(d)) | set(os.listdir(os.path.dirname(d)))
        if after != before or os.path.exists("/tmp/kiln-hostile-abs.npy"):
            probs.append("a file was written outside --out: %s" % sorted(after - before))
        if rc == 0 and len(os.listdir(outdir)) != 1:
            probs.append("expected one file in --out, found %s" % os.listdir(outdir))
        report("output-name %r stays inside --out" % oname, probs)


def tensor_file_cases():
    cases = {
        "npy-bad-magic.npy": b"\x93NUMPX\x01\x00\x10\x00" + b" " * 16,
        "npy-truncated-header.npy": b"\x93NUMPY\x01\x00\xff\x00{'descr'",
        "npy-header-too-long.npy": b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{",
        "npy-no-shape.npy": npy_bytes("{'descr': '<f4', 'fortran_order': False, }\n"),
        "npy-shape-garbage.npy": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }\n"),
        "npy-huge-shape.npy": npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                        "'shape': (4294967296, 4294967296, 4294967296), }\n"),
        "npy-dim-over-int64.npy": npy_bytes("{'descr': '<f4', 'fortran_order': False, "
                                            "'shape': (99999999999999999999,), }\n"),
        "npy-data-short.npy": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }\n", b"\0" * 8),
        "npy-rank-100.npy": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }\n"
                                      % ("1," * 100)),
        "npy-object.npy": npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n", b"\0" * 16),
        "npy-big-endian.npy": npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", b"\0" * 8),
        "npy-unterminated-descr.npy": npy_bytes("{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }\n"),
        "pb-garbage.pb": b"\xff" * 64,
        "pb-truncated.pb": numpy_helper.from_array(np.arange(2, dtype=np.float32), "x").SerializeToString()[:-3],
        "pb-external-data.pb": ext_init("x", [2], "w.bin").SerializeToString(),
        "pb-huge-dims.pb": raw_tensor("x", [1 << 31, 1 << 31, 1 << 31], raw=b"").SerializeToString(),
        "empty.npy": b"",
        "empty.pb": b"",
    }
    d, path = write_case("tensor-files", add_model())
    for name, data in cases.items():
        f = os.path.join(d, name)
        with open(f, "wb") as fh:
            fh.write(data)
        outdir = tempfile.mkdtemp(dir=d, prefix="out-")
        rc, out, err = run_kiln(["run", path, "--out", outdir, "-i", "x=@" + f, "-i", "y=[1,2]"])
        e = check_fail(rc, err, outdir)
        report("tensor-file " + name, [e] if e else [])
    # Device files and FIFOs as tensor files must not hang or read forever.
    fifo = os.path.join(d, "fifo.npy")
    os.mkfifo(fifo)
    for name, f in (("dev-zero", "/dev/zero"), ("fifo", fifo), ("folder", d)):
        outdir = tempfile.mkdtemp(dir=d, prefix="out-")
        rc, out, err = run_kiln(["run", path, "--out", outdir, "-i", "x=@%s.npy" % f if name != "dev-zero" else
                                 "x=@/dev/zero.npy", "-i", "y=[1,2]"])
        e = check_fail(rc, err, outdir)
        report("tensor-file " + name, [e] if e else [])
    for name, f in (("model-is-dev-zero", "/dev/zero"), ("model-is-fifo", fifo), ("model-is-folder", d)):
        rc, out, err = run_kiln(["info", f])
        e = check_fail(rc, err)
        report(name, [e] if e else [])


def seq_vi(name, elem=TensorProto.FLOAT):
    return helper.make_tensor_sequence_value_info(name, elem, None)


def opt_vi(name, inner):
    return helper.make_value_info(name, helper.make_optional_type_proto(inner))


def seq_bytes(tensors=(), elem_type=1, extra=b""):
    """A SequenceProto on the wire (onnx-data.proto: 2 elem_type, 3 tensor_values)."""
    return field_varint(2, elem_type) + b"".join(field(3, t.SerializeToString()) for t in tensors) + extra


def value_file_cases():
    """Sequence and optional inputs read from SequenceProto / OptionalProto .pb files."""
    f32 = lambda *v: numpy_helper.from_array(np.array(v, np.float32))
    deep = b""
    for _ in range(2000):  # sequences of sequences, 2000 deep
        deep = field_varint(2, 3) + field(5, deep)
    seq_cases = {
        "seq-garbage.pb": b"\xff" * 64,
        "seq-truncated.pb": seq_bytes([f32(1, 2), f32(3)])[:-3],
        "seq-nested-2000-deep.pb": deep,
        "seq-300000-elements.pb": field_varint(2, 1) + field(3, b"") * 300000,
        "seq-elem-type-says-tensor-holds-sequence.pb": field_varint(2, 1) + field(5, seq_bytes([f32(1)])),
        "seq-mixed-element-types.pb": seq_bytes([f32(1, 2), numpy_helper.from_array(np.array([1], np.int64))]),
        "seq-of-maps.pb": field_varint(2, 4) + field(6, b""),
        "seq-unknown-elem-type.pb": field_varint(2, 99),
        "seq-name-length-past-end.pb": varint(1 << 3 | 2) + varint(1 << 40) + b"abc",
        "seq-bad-tensor.pb": field_varint(2, 1) + field(3, b"\xff\xff\xff"),
        "seq-huge-tensor.pb": seq_bytes([raw_tensor("t", [1 << 31, 1 << 31, 1 << 31], raw=b"")]),
        "seq-wrong-wire-type.pb": varint(3 << 3 | 7),
    }
    m = model([helper.make_node("Identity", ["x"], ["y"])], [seq_vi("x")], [seq_vi("y")], opset=16)
    d, path = write_case("sequence-files", m)
    for name, data in seq_cases.items():
        f = os.path.join(d, name)
        with open(f, "wb") as fh:
            fh.write(data)
        outdir = tempfile.mkdtemp(dir=d, prefix="out-")
        rc, out, err = run_kiln(["run", path, "--out", outdir, "-i", "x=@" + f])
        e = check_fail(rc, err, outdir)
        report("sequence-file " + name, [e] if e else [])
    # not a file, or not a .pb
    for name, arg in (("literal", "x=[1,2]"), ("npy", "x=@" + os.path.join(d, "x.npy"))):
        outdir = tempfile.mkdtemp(dir=d, prefix="out-")
        rc, out, err = run_kiln(["run", path, "--out", outdir, "-i", arg])
        e = check_fail(rc, err, outdir)
        if e is None and not re.search(r"SequenceProto", err.decode(errors="replace")):
            e = "message does not say how to give a sequence: " + err.decode(errors="replace")[-300:]
        report("sequence-input given as " + name, [e] if e else [])
    # a good sequence still runs, and comes out as a SequenceProto
    good = os.path.join(d, "good.pb")
    with open(good, "wb") as fh:
        fh.write(seq_bytes([f32(1, 2), f32(3)]))
    outdir = tempfile.mkdtemp(dir=d, prefix="out-")
    rc, out, err = run_kiln(["run", path, "--out", outdir, "-i", "x=@" + good])
    probs = []
    if rc != 0 or SANITIZER.search(err.decode(errors="replace")):
        probs.append("expected success, got %s: %s" % (rc, err.decode(errors="replace")[-300:]))
    else:
        sp = onnx.SequenceProto()
        with open(os.path.join(outdir, "y.pb"), "rb") as fh:
            sp.ParseFromString(fh.read())
        got = [numpy_helper.to_array(t).tolist() for t in sp.tensor_values]
        if got != [[1.0, 2.0], [3.0]]:
            probs.append("y.pb holds %s" % got)
    report("sequence-file round trip", probs)

    opt_seq = opt_vi("x", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None)))
    opt_cases = {
        "opt-two-values.pb": field_varint(2, 3) + field(5, seq_bytes([f32(1)])) * 2,
        "opt-of-optional.pb": field_varint(2, 5) + field(7, b""),
        "opt-holds-tensor-for-optional-seq.pb": field_varint(2, 1) + field(3, f32(1).SerializeToString()),
        "opt-garbage.pb": b"\x0a\xff\xff\xff\xff\x0f",
    }
    m = model([helper.make_node("Identity", ["x"], ["y"])], [opt_seq],
              [opt_vi("y", helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None)))],
              opset=16)
    d, path = write_case("optional-files", m)
    for name, data in opt_cases.items():
        f = os.path.join(d, name)
        with open(f, "wb") as fh:
            fh.write(data)
        outdir = tempfile.mkdtemp(dir=d, prefix="out-")
        rc, out, err = run_kiln(["run", path, "--out", outdir, "-i", "x=@" + f])
        e = check_fail(rc, err, outdir)
        report("optional-file " + name, [e] if e else [])


def value_runtime_cases():
    """Sequences and optionals where the graph does not allow them."""
    x2 = vi("x", [2])
    S = "SequenceConstruct"
    case("sequence-into-tensor-op",
         model([helper.make_node(S, ["x", "x"], ["s"]), helper.make_node("Add", ["s", "s"], ["z"])],
               [x2], [vi("z", None)], opset=16), r"takes tensors", info=False, inputs=("x=[1,2]",), needs={S})
    case("sequence-at-out-of-range",
         model([helper.make_node(S, ["x"], ["s"]), helper.make_node("SequenceAt", ["s", "i"], ["z"])],
               [x2], [vi("z", None)], opset=16, inits=[numpy_helper.from_array(np.array(5, np.int64), "i")]),
         r"out of range", info=False, inputs=("x=[1,2]",), needs={S})
    case("sequence-at-on-a-tensor",
         model([helper.make_node("SequenceAt", ["x", "i"], ["z"])], [x2], [vi("z", None)], opset=16,
               inits=[numpy_helper.from_array(np.array(0, np.int64), "i")]),
         r"must be a sequence", info=False, inputs=("x=[1,2]",), needs={"SequenceAt"})
    case("concat-from-empty-sequence",
         model([helper.make_node("SequenceEmpty", [], ["s"]), helper.make_node("ConcatFromSequence", ["s"], ["z"],
                                                                              axis=0)],
               [], [vi("z", None)], opset=16), r"empty", info=False, inputs=(), needs={"SequenceEmpty"})
    case("optional-get-element-of-empty",
         model([helper.make_node("Optional", [], ["o"], type=helper.make_tensor_type_proto(TensorProto.FLOAT, [2])),
                helper.make_node("OptionalGetElement", ["o"], ["z"])], [], [vi("z", None)], opset=16),
         r"empty", info=False, inputs=(), needs={"Optional"})
    body = helper.make_graph([helper.make_node(S, ["e"], ["r"])], "body", [vi("e", None)], [seq_vi("r")])
    case("sequence-map-body-returns-a-sequence",
         model([helper.make_node(S, ["x"], ["s"]), helper.make_node("SequenceMap", ["s"], ["z"], body=body)],
               [x2], [seq_vi("z")], opset=17), r"must be a tensor", info=False, inputs=("x=[1,2]",),
         needs={"SequenceMap"})
    shape = numpy_helper.from_array(np.array([1 << 21], np.int64), "sh")
    case("split-to-sequence-2M-pieces",
         model([helper.make_node("ConstantOfShape", ["sh"], ["big"]),
                helper.make_node("SplitToSequence", ["big"], ["z"])], [], [seq_vi("z")], opset=16, inits=[shape]),
         r"limit", info=False, inputs=(), needs={"SplitToSequence"})
    # A Loop without end growing a sequence: stops at kiln's sequence length limit, quickly.
    lbody = helper.make_graph([helper.make_node("Identity", ["c_in"], ["c_out"]),
                               helper.make_node("SequenceInsert", ["s_in", "x"], ["s_out"])], "body",
                              [vi("i", [], TensorProto.INT64), vi("c_in", [], TensorProto.BOOL), seq_vi("s_in")],
                              [vi("c_out", [], TensorProto.BOOL), seq_vi("s_out")])
    case("loop-grows-a-sequence-without-end",
         model([helper.make_node("SequenceEmpty", [], ["s0"]),
                helper.make_node("Loop", ["", "c", "s0"], ["s"], body=lbody),
                helper.make_node("SequenceLength", ["s"], ["z"])],
               [vi("c", [], TensorProto.BOOL), x2], [vi("z", [], TensorProto.INT64)], opset=16),
         r"more than \d+ elements", info=False, inputs=("c=true", "x=[1,2]"), needs={"SequenceInsert"})
    sbody = helper.make_graph([helper.make_node("Identity", ["c_in"], ["c_out"]),
                               helper.make_node(S, ["x"], ["k"])], "body",
                              [vi("i", [], TensorProto.INT64), vi("c_in", [], TensorProto.BOOL)],
                              [vi("c_out", [], TensorProto.BOOL), seq_vi("k")])
    case("loop-scan-output-is-a-sequence",
         model([helper.make_node("Loop", ["m", "", ], ["z"], body=sbody)],
               [vi("m", [], TensorProto.INT64), x2], [vi("z", None)], opset=16),
         r"must be a tensor", info=False, inputs=("m=2", "x=[1,2]"), needs={S})
    case("tensor-given-for-a-sequence-input",
         model([helper.make_node("SequenceLength", ["s"], ["z"])], [seq_vi("s")], [vi("z", [], TensorProto.INT64)],
               opset=16), r"SequenceProto", info=False, inputs=("s=[1,2]",))


def external_data_cases():
    def data_file(size):
        def setup(d):
            with open(os.path.join(d, "w.bin"), "wb") as f:
                f.write(np.arange(size // 4, dtype=np.float32).tobytes())
        return setup

    case("external-offset-length-past-end", ext_model([ext_init("w", [4], "w.bin", 8, 16)]),
         r"goes past its end", setup=data_file(16), inputs=("x=[1,2,3,4]",))
    case("external-offset-past-end", ext_model([ext_init("w", [4], "w.bin", 1 << 40)]),
         r"goes past its end", setup=data_file(16), inputs=("x=[1,2,3,4]",))
    case("external-length-overflow", ext_model([ext_init("w", [4], "w.bin", 8, (1 << 64) - 4)]),
         r"goes past its end", setup=data_file(16), inputs=("x=[1,2,3,4]",))
    case("external-zero-length", ext_model([ext_init("w", [4], "w.bin", 0, 0)]),
         r"length 0", setup=data_file(16), inputs=("x=[1,2,3,4]",))
    case("external-negative-offset", ext_model([ext_init("w", [4], "w.bin", -16)]),
         r"not a number", setup=data_file(16), inputs=("x=[1,2,3,4]",))
    case("external-absolute", ext_model([ext_init("w", [4], "/etc/passwd")]), r"absolute",
         inputs=("x=[1,2,3,4]",))
    case("external-dotdot", ext_model([ext_init("w", [4], "../../etc/passwd")]), r"'\.\.'",
         inputs=("x=[1,2,3,4]",))
    case("external-missing-file", ext_model([ext_init("w", [4], "nope.bin")]), r"cannot be opened",
         inputs=("x=[1,2,3,4]",))
    case("external-no-location", ext_model([ext_init("w", [4], "")]), r"without a location",
         inputs=("x=[1,2,3,4]",))

    def symlink(target):
        def setup(d):
            os.symlink(target, os.path.join(d, "w.bin"))
        return setup
    case("external-symlink-escape", ext_model([ext_init("w", [4], "w.bin")]), r"outside the model's folder",
         setup=symlink("/etc/passwd"), inputs=("x=[1,2,3,4]",))
    case("external-symlink-dev-zero", ext_model([ext_init("w", [4], "w.bin", 0, 16)]), r"outside the model's folder",
         setup=symlink("/dev/zero"), inputs=("x=[1,2,3,4]",))
    case("external-folder", ext_model([ext_init("w", [4], "sub")]), r"not a regular file",
         setup=lambda d: os.mkdir(os.path.join(d, "sub")), inputs=("x=[1,2,3,4]",))
    case("external-fifo", ext_model([ext_init("w", [4], "w.bin")]), r"not a regular file",
         setup=lambda d: os.mkfifo(os.path.join(d, "w.bin")), inputs=("x=[1,2,3,4]",))
    st = ext_init("w", [1], "w.bin")
    st.data_type = TensorProto.STRING
    case("external-string-tensor", ext_model([st]), r"string tensors cannot use external data", setup=data_file(16),
         inputs=("x=[1,2,3,4]",))
    # Two tensors sharing bytes is allowed: the mapping is read-only.
    case("external-overlapping", ext_model([ext_init("w", [4], "w.bin", 0, 16), ext_init("v", [4], "w.bin", 8, 16)]),
         None, setup=data_file(32), inputs=("x=[1,2,3,4]",), expect_ok=True)


# ---- nothing lost: interrupted and failing saves --------------------------

def big_model(path, mb, value):
    w = np.full((mb << 18,), value, np.float32)  # mb MiB
    m = model([helper.make_node("Add", ["x", "w"], ["z"])], [vi("x", [mb << 18])], [vi("z", [mb << 18])],
              inits=[numpy_helper.from_array(w, "w")])
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def temps(path):
    return glob.glob(glob.escape(path) + ".kiln-tmp-*")


def save_cases():
    if not ARGS.save_loop:
        skipped.append("save cases (no --save-loop)")
        return
    d = os.path.join(WORK, "save")
    os.makedirs(d)
    src = os.path.join(d, "big.onnx")
    big_model(src, 96, 1.0)
    small = os.path.join(d, "small.onnx")
    with open(small, "wb") as f:
        f.write(add_model().SerializeToString())
    ref = os.path.join(d, "ref.onnx")
    subprocess.run([ARGS.save_loop, src, ref, "1"], check=True, capture_output=True)
    with open(ref, "rb") as f:
        saved_big = f.read()
    with open(small, "rb") as f:
        old = f.read()
    out = os.path.join(d, "out.onnx")
    problems, windows = [], 0
    rng = random.Random(7)
    for trial in range(6):
        with open(out, "wb") as f:
            f.write(old)
        p = subprocess.Popen([ARGS.save_loop, src, out, "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.05 + rng.random() * 0.6)
        p.send_signal(signal.SIGKILL)
        p.wait()
        with open(out, "rb") as f:
            now = f.read()
        left = temps(out)
        if left:
            windows += 1
        if any(not re.fullmatch(r".*\.kiln-tmp-[A-Za-z0-9]{6}", t) for t in left):
            problems.append("trial %d: unrecognisable temporary files %s" % (trial, left))
        if now != old and now != saved_big:
            problems.append("trial %d: the file at the output path is neither the old nor the new model "
                            "(%d bytes)" % (trial, len(now)))
        for t in left:
            os.unlink(t)
    print("     (killed mid-write in %d of 6 trials)" % windows)
    report("sigkill-mid-save keeps the old file", problems)

    # A full disk: a 1 MiB tmpfs.
    mnt = os.path.join(d, "mnt")
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], capture_output=True)
    if r.returncode != 0:
        skipped.append("ENOSPC cases (mount -t tmpfs not permitted: %s)" % r.stderr.decode().strip())
        print("SKIP ENOSPC cases: cannot mount a tmpfs (%s)" % r.stderr.decode().strip())
        return
    try:
        dest = os.path.join(mnt, "model.onnx")
        rc = subprocess.run([ARGS.save_loop, src, dest, "1"], capture_output=True, timeout=60)
        e = check_fail(rc.returncode, rc.stderr)
        probs = [e] if e else []
        if not probs and not re.search(r"No space left", rc.stderr.decode()):
            probs.append("message does not say 'No space left': " + rc.stderr.decode().strip())
        if os.path.exists(dest):
            probs.append("a partial file was left at the output path")
        if temps(dest):
            probs.append("temporary files left: %s" % temps(dest))
        report("enospc-save-new-file", probs)

        with open(dest, "wb") as f:
            f.write(old)
        rc = subprocess.run([ARGS.save_loop, src, dest, "1"], capture_output=True, timeout=60)
        e = check_fail(rc.returncode, rc.stderr)
        probs = [e] if e else []
        with open(dest, "rb") as f:
            if f.read() != old:
                probs.append("the previous file at the output path changed")
        if temps(dest):
            probs.append("temporary files left: %s" % temps(dest))
        report("enospc-save-keeps-old-file", probs)
        os.unlink(dest)

        # Outputs of `kiln run --out` on a full disk.
        n = 1 << 19  # 2 MiB of float32
        xs = os.path.join(d, "x.npy")
        np.save(xs, np.ones(n, np.float32))
        m = model([helper.make_node("Add", ["x", "x"], ["z"])], [vi("x", [n])], [vi("z", [n])])
        mp = os.path.join(d, "add_big.onnx")
        onnx.save(m, mp)
        rc, _, err = run_kiln(["run", mp, "-i", "x=@" + xs, "--out", mnt], timeout=60)
        e = check_fail(rc, err, mnt)
        if not e and not re.search(r"No space left", err.decode()):
            e = "message does not say 'No space left': " + err.decode().strip()
        report("enospc-run-out", [e] if e else [])
    finally:
        subprocess.run(["umount", mnt])


# ---- kiln_limits through the C API ----------------------------------------

def limits_cases():
    if not ARGS.limits_probe:
        skipped.append("kiln_limits cases (no --limits-probe)")
        return
    d = os.path.join(WORK, "limits")
    os.makedirs(d)

    def probe(name, m, limits, expect):
        path = os.path.join(d, name + ".onnx")
        with open(path, "wb") as f:
            f.write(m if isinstance(m, bytes) else m.SerializeToString())
        try:
            p = subprocess.run([ARGS.limits_probe, path] + [str(v) for v in limits], capture_output=True,
                               timeout=10)
        except subprocess.TimeoutExpired:
            return report("limits " + name, ["timed out"])
        err = p.stderr.decode(errors="replace")
        probs = []
        if p.returncode < 0 or SANITIZER.search(err):
            probs.append("crashed or sanitizer report: %s" % err[-500:])
        elif expect is None and p.returncode != 0:
            probs.append("expected to load, got: " + err.strip())
        elif expect is not None and (p.returncode == 0 or not re.search(expect, err)):
            probs.append("expected /%s/, got %d: %s" % (expect, p.returncode, err.strip()))
        report("limits " + name, probs)

    chain = [helper.make_node("Add", ["x" if i == 0 else "a%d" % (i - 1), "x"], ["a%d" % i]) for i in range(49)]
    chain.append(helper.make_node("Add", ["a48", "x"], ["z"]))
    many = model(chain, [vi("x", [2])], [vi("z", [2])])
    probe("50-nodes-max-10", many, (0, 0, 10, 0, 0), r"limit exceeded.*max_nodes")
    probe("50-nodes-max-50", many, (0, 0, 50, 0, 0), None)
    probe("if-3-deep-max-2", deep_if_model(3), (0, 0, 0, 2, 0), r"limit exceeded.*max_nesting")
    probe("if-3-deep-max-3", deep_if_model(3), (0, 0, 0, 3, 0), None)
    big = add_model(inits=[numpy_helper.from_array(np.zeros(1000, np.float32), "w")])
    probe("4000-byte-tensor-max-1000", big, (1000, 0, 0, 0, 0), r"limit exceeded.*max_tensor_bytes")
    probe("4000-byte-tensor-max-4000", big, (4000, 0, 0, 0, 0), None)
    small = add_model(inits=[raw_tensor("w", [40], floats=[0.0] * 40)])
    probe("160-byte-typed-tensor-max-100", small, (100, 0, 0, 0, 0), r"limit exceeded.*max_tensor_bytes")
    r3 = model([helper.make_node("Add", ["x", "x"], ["z"])], [vi("x", [1, 1, 1])], [vi("z", [1, 1, 1])])
    probe("rank-3-max-2", r3, (0, 2, 0, 0, 0), r"limit exceeded.*max_rank")
    probe("rank-3-max-3", r3, (0, 3, 0, 0, 0), None)
    named = add_model()
    named.graph.node[0].name = "n" * 11
    probe("11-byte-name-max-10", named, (0, 0, 0, 0, 10), r"limit exceeded.*max_string_bytes")
    probe("11-byte-name-max-11", named, (0, 0, 0, 0, 11), None)
    probe("if-300-deep-nesting-clamped", deep_if_model(300), (0, 0, 0, 100000, 0), r"limit exceeded.*nested")
    probe("defaults", many, (0, 0, 0, 0, 0), None)


def main():
    global ARGS, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--save-loop", default=None, help="kiln-save-loop test tool (build/tests/kiln-save-loop)")
    ap.add_argument("--limits-probe", default=None, help="kiln-limits-probe test tool")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ARGS = ap.parse_args()
    ARGS.kiln = os.path.abspath(ARGS.kiln)
    if ARGS.save_loop:
        ARGS.save_loop = os.path.abspath(ARGS.save_loop)
    if ARGS.limits_probe:
        ARGS.limits_probe = os.path.abspath(ARGS.limits_probe)
    WORK = tempfile.mkdtemp(prefix="kiln-hostile-")
    try:
        for group in (load_cases, plan_cases, runtime_cases, output_name_cases, tensor_file_cases,
                      value_file_cases, value_runtime_cases, external_data_cases, limits_cases,
                      save_cases):
            group()
    finally:
        if ARGS.keep:
            print("scratch folder kept: " + WORK)
        else:
            shutil.rmtree(WORK, ignore_errors=True)
    if skipped:
        print("%d skipped: %s" % (len(skipped), "; ".join(skipped)))
    print("%d passed, %d failed" % (len(passed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
