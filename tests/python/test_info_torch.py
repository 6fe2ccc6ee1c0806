"""`kiln info` on a model exported from PyTorch with a dynamic batch axis:
symbolic dims appear by name, in text and in JSON, and every input/output
shape, dtype, opset and op count agrees with what the onnx package reads."""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

import onnx
from onnx import numpy_helper
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402

DTYPES = {0: "undefined", 1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
          8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
          15: "complex128", 16: "bfloat16"}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(10, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x, y):
        h = torch.relu(self.fc1(x))
        return self.fc2(h) + y, h.sum(dim=1)


def dims_of(v):
    out = []
    for d in v.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.HasField("dim_param") else d.dim_value if d.HasField("dim_value") else None)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--data", help="also check `kiln info --json` on every backend-test model")
    args = ap.parse_args()
    t = Tally("info")
    with tempfile.TemporaryDirectory(prefix="kiln-info-") as tmp:
        path = os.path.join(tmp, "net.onnx")
        torch.manual_seed(0)
        torch.onnx.export(Net(), (torch.randn(2, 10), torch.randn(2, 4)), path,
                          input_names=["x", "y"], output_names=["out", "hsum"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}, "out": {0: "batch"}},
                          opset_version=13)
        m = onnx.load(path)
        t.ok(dims_of(m.graph.input[0]) == ["batch", 10], "export has a symbolic batch",
             str(dims_of(m.graph.input[0])))
        inits = {i.name for i in m.graph.initializer}
        ins = [v for v in m.graph.input if v.name not in inits]

        # text
        r = subprocess.run([args.kiln, "info", path], capture_output=True, text=True)
        t.ok(r.returncode == 0, "kiln info exit", r.stderr)
        text = r.stdout
        t.ok("[batch,10]" in text, "text shows [batch,10]", text)
        lines = text.splitlines()
        for v in list(ins) + list(m.graph.output):
            want = "[" + ",".join("?" if d is None else str(d) for d in dims_of(v)) + "]"
            dt = DTYPES[v.type.tensor_type.elem_type]
            hit = [ln for ln in lines if ln.split() and ln.split()[0] == v.name]
            t.ok(len(hit) == 1 and (dt + want) in hit[0], f"text line of '{v.name}'",
                 f"want {dt}{want} in {hit}")
        t.ok(f"ai.onnx {m.opset_import[0].version}" in text or
             any(f"{o.domain or 'ai.onnx'} {o.version}" in text for o in m.opset_import), "text opsets")

        # json
        r = subprocess.run([args.kiln, "info", "--json", path], capture_output=True, text=True)
        t.ok(r.returncode == 0, "kiln info --json exit", r.stderr)
        try:
            j = json.loads(r.stdout)
        except ValueError as e:
            t.fail("json parses", f"{e}: {r.stdout[:400]}")
            t.finish()
        t.ok([i["name"] for i in j["inputs"]] == [v.name for v in m.graph.input], "json input names",
             str(j["inputs"]))
        t.ok([o["name"] for o in j["outputs"]] == [v.name for v in m.graph.output], "json output names")
        for got, v in zip(j["inputs"] + j["outputs"], list(m.graph.input) + list(m.graph.output)):
            t.ok(got["shape"] == dims_of(v), f"json shape of '{v.name}'", f"{got['shape']} vs {dims_of(v)}")
            t.ok(got["dtype"] == DTYPES[v.type.tensor_type.elem_type], f"json dtype of '{v.name}'", got["dtype"])
        t.ok(j["inputs"][0]["shape"] == ["batch", 10], "json x shape is ['batch', 10]", str(j["inputs"][0]))
        t.ok(j["ir_version"] == m.ir_version, "json ir_version")
        t.ok({(o["domain"], o["version"]) for o in j["opset_imports"]} ==
             {(o.domain, o.version) for o in m.opset_import}, "json opsets")
        t.ok(j["producer"] == m.producer_name and j["producer_version"] == m.producer_version, "json producer")
        ops = collections.Counter(n.op_type for n in m.graph.node)
        t.ok(j["ops"] == dict(ops), "json op counts", f"{j['ops']} vs {dict(ops)}")
        t.ok(j["nodes"] == len(m.graph.node), "json node count")
        nbytes = sum(numpy_helper.to_array(i).nbytes for i in m.graph.initializer)
        t.ok(j["initializers"]["count"] == len(m.graph.initializer) and j["initializers"]["bytes"] == nbytes,
             "json initializers", f"{j['initializers']} vs {len(m.graph.initializer)}, {nbytes}")

        # a name that needs JSON escaping, and a dim without value or name
        m2 = onnx.load(path)
        m2.graph.input[0].type.tensor_type.shape.dim[0].dim_param = 'b"a\\q\x01h'
        m2.graph.input[1].type.tensor_type.shape.dim[1].Clear()
        p2 = os.path.join(tmp, "odd.onnx")
        onnx.save(m2, p2)
        r = subprocess.run([args.kiln, "info", "--json", p2], capture_output=True, text=True)
        try:
            j2 = json.loads(r.stdout)
            t.ok(j2["inputs"][0]["shape"] == ['b"a\\q\x01h', 10], "json escapes dim names", str(j2["inputs"][0]))
            t.ok(j2["inputs"][1]["shape"] == ["batch", None], "json unknown dim is null", str(j2["inputs"][1]))
        except ValueError as e:
            t.fail("json with odd dim names parses", f"{e}: {r.stdout[:400]}")
        r = subprocess.run([args.kiln, "info", p2], capture_output=True, text=True)
        t.ok("[batch,?]" in r.stdout, "text unknown dim is ?", r.stdout)
    if args.data:
        every_model(t, args)
    t.finish()


def type_text(tp, depth=0):
    """A non-tensor type as kiln info prints it: seq(tensor(float32)), optional(...)."""
    which = tp.WhichOneof("value")
    if depth > 64 or which is None:
        return "?"
    if which in ("tensor_type", "sparse_tensor_type"):
        tt = getattr(tp, which)
        elem = DTYPES.get(tt.elem_type, "unknown") if tt.HasField("elem_type") else "?"
        return f"{'tensor' if which == 'tensor_type' else 'sparse_tensor'}({elem})"
    if which in ("sequence_type", "optional_type"):
        inner = getattr(tp, which)
        sub = type_text(inner.elem_type, depth + 1) if inner.HasField("elem_type") else "?"
        return f"{'seq' if which == 'sequence_type' else 'optional'}({sub})"
    if which == "map_type":
        mt = tp.map_type
        key = DTYPES.get(mt.key_type, "unknown") if mt.HasField("key_type") else "?"
        val = type_text(mt.value_type, depth + 1) if mt.HasField("value_type") else "?"
        return f"map({key}, {val})"
    return "?"


def expected_io(v):
    """(dtype, shape) as kiln info --json should report a graph input/output."""
    which = v.type.WhichOneof("value")
    if which is None:
        return "untyped", None
    if which != "tensor_type":
        return type_text(v.type), None
    tt = v.type.tensor_type
    return DTYPES.get(tt.elem_type, "unknown"), dims_of(v) if tt.HasField("shape") else None


def every_model(t, args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from kiln_testlib import test_dirs
    n = 0
    for d in test_dirs(args.data):
        path = os.path.join(d, "model.onnx")
        label = os.path.relpath(d, args.data)
        r = subprocess.run([args.kiln, "info", "--json", path], capture_output=True, text=True)
        if not t.ok(r.returncode == 0 and not r.stderr, f"{label}: kiln info --json", r.stderr.strip()):
            continue
        try:
            j = json.loads(r.stdout)
        except ValueError as e:
            t.fail(f"{label}: JSON parses", str(e))
            continue
        m = onnx.load(path)
        got = [(i["name"], i["dtype"], i["shape"]) for i in j["inputs"] + j["outputs"]]
        want = [(v.name,) + expected_io(v) for v in list(m.graph.input) + list(m.graph.output)]
        t.ok(got == want, f"{label}: inputs/outputs", f"{got} vs {want}")
        ops = collections.Counter()
        subgraphs = [0]

        def walk(g, depth):
            if depth:
                subgraphs[0] += 1
            for node in g.node:
                ops[(node.domain + "." if node.domain and node.domain != "ai.onnx" else "") + node.op_type] += 1
                for a in node.attribute:
                    if a.HasField("g"):
                        walk(a.g, depth + 1)
                    for sg in a.graphs:
                        walk(sg, depth + 1)
        walk(m.graph, 0)
        t.ok(j["ops"] == dict(ops) and j["nodes"] == sum(ops.values()) and j["subgraphs"] == subgraphs[0],
             f"{label}: op counts", f"{j['ops']} {j['nodes']} {j['subgraphs']} vs {dict(ops)} {subgraphs[0]}")
        t.ok(j["functions"] == [f.name for f in m.functions], f"{label}: functions")
        n += 1
        r = subprocess.run([args.kiln, "info", path], capture_output=True, text=True)
        t.ok(r.returncode == 0 and not r.stderr and "inputs (" in r.stdout, f"{label}: kiln info (text)")
    print(f"kiln info checked on {n} backend-test models")


if __name__ == "__main__":
    main()
