"""Round trip of every model of ONNX's backend test suites through kiln:
load, save, reload with the onnx package and compare with the original.

Structure (graph, nodes, attributes, value_info, opsets, metadata, functions,
everything else in the message) must be equal field for field; tensors are
compared by value (numpy_helper.to_array), since kiln may re-encode typed
fields (float_data, ...) as raw_data. The saved model must pass
onnx.checker.check_model(full_check=True) wherever the original does.
Then a round trip with external data (small threshold) that onnx.load
resolves to the same values."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally, test_dirs  # noqa: E402

DATA_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data",
               "uint64_data", "raw_data", "external_data", "data_location")


def tensors_of_graph(g, out):
    """Every TensorProto in a graph, depth first, in a fixed order."""
    out.extend(g.initializer)
    for n in g.node:
        for a in n.attribute:
            if a.HasField("t"):
                out.append(a.t)
            out.extend(a.tensors)
            if a.HasField("g"):
                tensors_of_graph(a.g, out)
            for sg in a.graphs:
                tensors_of_graph(sg, out)
    return out


def attrs_of_graph(g, out):
    for n in g.node:
        out.extend(n.attribute)
        for a in n.attribute:
            if a.HasField("g"):
                attrs_of_graph(a.g, out)
            for sg in a.graphs:
                attrs_of_graph(sg, out)
    return out


def split_values(model):
    """Strips tensor data (and float attributes, which may hold NaN, never
    equal to itself) from a copy of the model; returns (copy, arrays)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    arrays = []
    for t in tensors_of_graph(m.graph, []):
        arrays.append(numpy_helper.to_array(t))
        for f in DATA_FIELDS:
            t.ClearField(f)
    for a in attrs_of_graph(m.graph, []):
        if a.HasField("f"):
            arrays.append(np.array([a.f], np.float32))
            a.ClearField("f")
        if a.floats:
            arrays.append(np.array(a.floats, np.float32))
            a.ClearField("floats")
    return m, arrays


def same_array(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False, f"{a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"
    if a.dtype == object:
        return list(a.ravel()) == list(b.ravel()), "string values differ"
    # bit-exact: NaN payloads and -0.0 must survive too
    return a.tobytes() == b.tobytes(), "values differ"


def first_diff(a, b, path="model"):
    """A short description of where two messages differ."""
    for fd, va in a.ListFields():
        vb = getattr(b, fd.name)
        if fd.label == fd.LABEL_REPEATED:
            if len(va) != len(vb):
                return f"{path}.{fd.name}: {len(va)} vs {len(vb)} entries"
            for i, (x, y) in enumerate(zip(va, vb)):
                if x != y:
                    if fd.type == fd.TYPE_MESSAGE:
                        return first_diff(x, y, f"{path}.{fd.name}[{i}]")
                    return f"{path}.{fd.name}[{i}]: {x!r} vs {y!r}"
        elif va != vb or (fd.type != fd.TYPE_MESSAGE and not b.HasField(fd.name)):
            if fd.type == fd.TYPE_MESSAGE:
                return first_diff(va, vb, f"{path}.{fd.name}")
            return f"{path}.{fd.name}: {va!r} vs {vb!r} (present: {b.HasField(fd.name)})"
    for fd, vb in b.ListFields():
        if fd.label == fd.LABEL_REPEATED and not getattr(a, fd.name):
            return f"{path}.{fd.name}: only in the saved model ({len(vb)} entries)"
        if fd.label != fd.LABEL_REPEATED and not a.HasField(fd.name):
            return f"{path}.{fd.name}: only in the saved model ({vb!r})"
    return f"{path}: unknown fields or encoding differ"


def passes_checker(model_or_path):
    try:
        onnx.checker.check_model(model_or_path, full_check=True)
        return True, ""
    except Exception as e:  # checker raises several kinds
        return False, str(e).splitlines()[0] if str(e) else type(e).__name__


def compare(t, label, orig, saved):
    a, va = split_values(orig)
    b, vb = split_values(saved)
    t.ok(a == b, f"{label}: structure", "" if a == b else first_diff(a, b))
    if not t.ok(len(va) == len(vb), f"{label}: tensor count", f"{len(va)} vs {len(vb)}"):
        return
    bad = []
    for i, (x, y) in enumerate(zip(va, vb)):
        same, why = same_array(x, y)
        if not same:
            bad.append(f"tensor #{i}: {why}")
    t.ok(not bad, f"{label}: tensor values", "; ".join(bad[:3]))


def rich_model():
    """A model using every part of the format the test suites leave out:
    all attribute kinds (NaN and -0.0 in floats, bytes with NUL, sparse
    tensors, type protos, empty lists), custom domains and a local function,
    doc strings everywhere, denotations, sparse initializers, quantization
    annotations, training info, metadata, every tensor encoding, and an
    unknown field. Returned serialized."""
    from onnx import TensorProto as T
    from onnx import helper as H
    body = H.make_graph([H.make_node("Identity", ["a"], ["b"], name="inner", doc_string="inner node")], "body",
                        [H.make_tensor_value_info("a", T.FLOAT, [2])], [H.make_tensor_value_info("b", T.FLOAT, [2])],
                        [numpy_helper.from_array(np.arange(100, dtype=np.float32), "big_inner")])
    t_small = H.make_tensor("ts", T.INT32, [3], [1, 2, 3])
    t_big = numpy_helper.from_array(np.linspace(0, 1, 300).astype(np.float64), "tb")
    t_f16 = H.make_tensor("th", T.FLOAT16, [2], np.array([1.5, -2], np.float16).view(np.uint16).tolist())
    t_str = H.make_tensor("tstr", T.STRING, [2], [b"x", b""])
    sp = H.make_sparse_tensor(H.make_tensor("spv", T.FLOAT, [2], [1.0, 2.0]),
                              H.make_tensor("spi", T.INT64, [2], [0, 3]), [4])
    node = H.make_node("Custom", ["X", "W"], ["Y"], name="n1", domain="com.example", doc_string="a node",
                       f=float("nan"), i=-7, s=b"bytes\x00\xff", t=t_big, g=body,
                       floats=[1.0, float("nan"), -0.0], ints=[1, -2 ** 63], strings=[b"a", b""],
                       tensors=[t_small, t_f16, t_str], graphs=[body, body], sp=sp)
    node.attribute.append(onnx.AttributeProto(name="empty_ints", type=onnx.AttributeProto.INTS))
    tp_attr = onnx.AttributeProto(name="tp", type=onnx.AttributeProto.TYPE_PROTO)
    tp_attr.tp.CopyFrom(H.make_tensor_type_proto(T.FLOAT, [1, "n"]))
    node.attribute.append(tp_attr)
    nodes = [node, H.make_node("Add", ["Y", "B"], ["Z"], domain="ai.onnx"), H.make_node("Relu", ["Z"], ["R"], domain=""),
             H.make_node("MyFunc", ["R"], ["Out"], domain="local")]
    x = H.make_tensor_value_info("X", T.FLOAT, ["batch", 3, None], doc_string="input x")
    x.type.tensor_type.shape.dim[0].denotation = "DATA_BATCH"
    x.type.denotation = "TENSOR"
    seq = H.make_tensor_sequence_value_info("S", T.FLOAT, [2])
    w = numpy_helper.from_array(np.random.RandomState(0).randn(3, 3).astype(np.float32), "W")
    w.doc_string = "weights"
    inits = [w, H.make_tensor("B", T.FLOAT, [3], [0.5, -1.0, 2.0]), H.make_tensor("tbool", T.BOOL, [3], [True, False, True]),
             H.make_tensor("tu64", T.UINT64, [2], [2 ** 64 - 1, 5]), H.make_tensor("ti64", T.INT64, [2], [-1, 2 ** 62]),
             H.make_tensor("tf64", T.DOUBLE, [1], [0.1]), H.make_tensor("tu8", T.UINT8, [2], [255, 0]),
             numpy_helper.from_array(np.array([1 + 2j, 3 - 4j], np.complex64), "tc"),
             numpy_helper.from_array(np.zeros((0, 4), np.float32), "empty"),
             numpy_helper.from_array(np.array(3.5, np.float32), "scalar")]
    g = H.make_graph(nodes, "main", [x, H.make_tensor_value_info("W", T.FLOAT, [3, 3])],
                     [H.make_tensor_value_info("Out", T.FLOAT, None), seq], inits, doc_string="graph doc",
                     value_info=[H.make_tensor_value_info("Y", T.FLOAT, [1, "n"]), H.make_value_info("untyped", onnx.TypeProto())])
    g.sparse_initializer.append(sp)
    qa = g.quantization_annotation.add()
    qa.tensor_name = "Y"
    kv = qa.quant_parameter_tensor_names.add()
    kv.key, kv.value = "SCALE_TENSOR", "B"
    fn = onnx.FunctionProto(name="MyFunc", domain="local", input=["i"], output=["o"],
                            node=[H.make_node("Relu", ["i"], ["o"])], opset_import=[H.make_opsetid("", 15)])
    m = H.make_model(g, opset_imports=[H.make_opsetid("", 15), H.make_opsetid("com.example", 1), H.make_opsetid("local", 1)],
                     producer_name="rich", producer_version="1.0", domain="org.kiln", model_version=42,
                     doc_string="model doc", functions=[fn])
    m.ir_version = 8
    H.set_model_props(m, {"author": "kiln", "empty": ""})
    m.training_info.add().algorithm.CopyFrom(H.make_graph([], "algo", [], []))
    return m.SerializeToString() + b"\xc0\x0c\x05"  # field 200 = 5: unknown to onnx and kiln


def expected_edit(orig, value):
    """What tests/tools/edit_model.c must produce, built with onnx; value is
    the TensorProto frozen into the last input without initializer."""
    from onnx import helper as H
    m = onnx.ModelProto()
    m.CopyFrom(orig)
    g = m.graph
    inits = {t.name for t in g.initializer}
    free = [k for k, v in enumerate(g.input) if v.name not in inits]
    if value is not None and m.ir_version >= 4 and free:
        frozen = onnx.TensorProto()
        frozen.CopyFrom(value)
        frozen.name = g.input[free[-1]].name
        g.initializer.append(frozen)
        del g.input[free[-1]]
    out0 = g.output[0]
    copy = onnx.ValueInfoProto(name=out0.name + "_copy")
    default_opset = any(o.domain in ("", "ai.onnx") for o in m.opset_import)
    if out0.type.WhichOneof("value") == "tensor_type" and default_opset:
        tt = out0.type.tensor_type
        ct = copy.type.tensor_type
        if tt.elem_type:
            ct.elem_type = tt.elem_type
        if tt.HasField("shape"):
            ct.shape.SetInParent()
            for d in tt.shape.dim:
                nd = ct.shape.dim.add()
                if d.HasField("dim_value") and d.dim_value >= 0:
                    nd.dim_value = d.dim_value
                elif d.HasField("dim_param"):
                    nd.dim_param = d.dim_param
        g.node.append(onnx.NodeProto(name="kiln_added_identity", op_type="Identity", input=[out0.name],
                                     output=[out0.name + "_copy"]))
        g.output.append(copy)
    probe = H.make_node("Probe", [out0.name], ["probe_out"], name="probe", domain="kiln.test",
                        doc_string="added by edit_model")
    # in the order the tool adds them (make_node would sort keyword attributes)
    for k, v in (("f", -0.25), ("i", -(1 << 40)), ("s", b'a"b'),
                 ("t", numpy_helper.from_array((-3 * np.arange(6, dtype=np.int64)).reshape(2, 3), "probe_t")),
                 ("floats", [1.5, -2.0]), ("ints", [7, 0, -2 ** 63]), ("strings", [b"xy", b""]),
                 ("tensors", [numpy_helper.from_array(0.5 * np.arange(4, dtype=np.float32), "probe_ts")])):
        probe.attribute.append(H.make_attribute(k, v))
    g.node.append(probe)
    m.opset_import.append(H.make_opsetid("kiln.test", 1))
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--roundtrip", required=True)
    ap.add_argument("--edit", help="tests/tools/edit_model.c: edits without protobuf behind them, then save")
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    t = Tally("roundtrip")
    dirs = test_dirs(args.data)
    t.ok(len(dirs) > 1000, "model discovery", f"only {len(dirs)} models under {args.data}")
    checked = skipped_checker = 0
    with tempfile.TemporaryDirectory(prefix="kiln-rt-") as tmp:
        out = os.path.join(tmp, "model.onnx")
        for d in dirs:
            label = os.path.relpath(d, args.data)
            src = os.path.join(d, "model.onnx")
            r = subprocess.run([args.roundtrip, src, out], capture_output=True, text=True)
            if not t.ok(r.returncode == 0, f"{label}: kiln round trip", r.stderr.strip()):
                continue
            orig = onnx.load(src)
            try:
                saved = onnx.load(out)
            except Exception as e:
                t.fail(f"{label}: onnx.load of the saved model", str(e))
                continue
            compare(t, label, orig, saved)
            ok_orig, _ = passes_checker(orig)
            if ok_orig:
                checked += 1
                ok_saved, why = passes_checker(saved)
                t.ok(ok_saved, f"{label}: checker on the saved model", why)
            else:
                skipped_checker += 1
            # kiln's output is a fixed point: saving it again, also over
            # itself (the loaded file stays mapped while it is replaced),
            # gives the same bytes
            first = open(out, "rb").read()
            r = subprocess.run([args.roundtrip, out, out], capture_output=True, text=True)
            if t.ok(r.returncode == 0, f"{label}: save over the loaded file", r.stderr.strip()):
                t.ok(open(out, "rb").read() == first, f"{label}: second save gives the same bytes")
            leftovers = [f for f in os.listdir(tmp) if f != "model.onnx"]
            t.ok(not leftovers, f"{label}: no stray files", str(leftovers))
            os.unlink(out)
        print(f"checker: {checked} models checked, {skipped_checker} originals fail the checker themselves")

        if args.edit:
            n_edit = 0
            for ext, subset in (("0", dirs), ("64", dirs[::10])):
                for d in subset:
                    label = os.path.relpath(d, args.data) + f" (edited, external threshold {ext})"
                    src = os.path.join(d, "model.onnx")
                    orig = onnx.load(src)
                    if not orig.graph.output:
                        continue
                    out = os.path.join(tmp, "edited.onnx")
                    # freeze the last free input to its value from the test data
                    inits = {i.name for i in orig.graph.initializer}
                    free = [v for v in orig.graph.input if v.name not in inits]
                    pb = os.path.join(d, "test_data_set_0", f"input_{len(free) - 1}.pb")
                    value = None
                    if free and free[-1].type.WhichOneof("value") == "tensor_type" and os.path.exists(pb):
                        value = onnx.TensorProto()
                        with open(pb, "rb") as fh:
                            value.ParseFromString(fh.read())
                    r = subprocess.run([args.edit, src, out] + ([pb] if value is not None else []),
                                       capture_output=True, text=True, env=dict(os.environ, EDIT_MODEL_EXTERNAL=ext))
                    if not t.ok(r.returncode == 0, f"{label}: edit and save", r.stderr.strip()):
                        continue
                    compare(t, label, expected_edit(orig, value), onnx.load(out))
                    if ext == "0" and passes_checker(orig)[0]:
                        ok, why = passes_checker(saved)
                        t.ok(ok, f"{label}: checker on the edited model", why)
                    for f in os.listdir(tmp):
                        os.unlink(os.path.join(tmp, f))
                    n_edit += 1
            print(f"edited models: {n_edit}")

        rich = os.path.join(tmp, "rich.onnx")
        with open(rich, "wb") as f:
            f.write(rich_model())
        for extra in ([], ["--external-threshold", "16"]):
            label = "rich model" + (" (external data)" if extra else "")
            out = os.path.join(tmp, "rich_out.onnx")
            r = subprocess.run([args.roundtrip, rich, out] + extra, capture_output=True, text=True)
            if t.ok(r.returncode == 0, f"{label}: kiln round trip", r.stderr.strip()):
                saved = onnx.load(out)
                compare(t, label, onnx.load(rich), saved)
                t.ok(open(out, "rb").read().endswith(b"\xc0\x0c\x05"), f"{label}: unknown field kept")
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))

        # External data: every tensor of >= 64 bytes goes to the side file.
        n_ext = 0
        for d in dirs:
            src = os.path.join(d, "model.onnx")
            orig = onnx.load(src)
            if not any(a.nbytes >= 64 for a in split_values(orig)[1] if a.dtype != object):
                continue
            label = os.path.relpath(d, args.data) + " (external data)"
            sub = os.path.join(tmp, f"ext{n_ext}")
            os.mkdir(sub)
            out = os.path.join(sub, "m.onnx")
            r = subprocess.run([args.roundtrip, src, out, "--external-threshold", "64"],
                               capture_output=True, text=True)
            if not t.ok(r.returncode == 0, f"{label}: kiln round trip", r.stderr.strip()):
                continue
            files = sorted(os.listdir(sub))
            datas = [f for f in files if re.fullmatch(r"m\.onnx\.[0-9a-f]{16}\.data", f)]
            t.ok(len(files) == 2 and "m.onnx" in files and len(datas) == 1, f"{label}: files written",
                 str(files))
            data_name = datas[0] if datas else "?"
            raw = onnx.load(out, load_external_data=False)
            locs = [tp for tp in tensors_of_graph(raw.graph, [])
                    if tp.data_location == onnx.TensorProto.EXTERNAL]
            t.ok(locs, f"{label}: tensors stored externally")
            for tp in locs:
                kv = {e.key: e.value for e in tp.external_data}
                t.ok(kv.get("location") == data_name and int(kv.get("offset", "-1")) % 64 == 0,
                     f"{label}: external entry of '{tp.name}'", str(kv))
            saved = onnx.load(out)  # resolves the side file
            compare(t, label, orig, saved)
            # kiln reads its own external data back
            out2 = os.path.join(sub, "again.onnx")
            r = subprocess.run([args.roundtrip, out, out2], capture_output=True, text=True)
            if t.ok(r.returncode == 0, f"{label}: kiln reloads external data", r.stderr.strip()):
                compare(t, label + " reloaded", orig, onnx.load(out2))
            # in place, external data again: the side file being replaced is
            # the one the loaded weights are mapped from
            r = subprocess.run([args.roundtrip, out, out, "--external-threshold", "64"],
                               capture_output=True, text=True)
            if t.ok(r.returncode == 0, f"{label}: in-place save with external data", r.stderr.strip()):
                compare(t, label + " in place", orig, onnx.load(out))
                # kiln reloaded external data and saved it with external data
                # again (again.onnx + its own data file); in place, the same
                # content keeps the same data file name
                files = sorted(os.listdir(sub))
                t.ok(len(files) == 4 and data_name in files and "again.onnx" in files and
                     any(re.fullmatch(r"again\.onnx\.[0-9a-f]{16}\.data", f) for f in files),
                     f"{label}: in-place save leaves only its files", str(files))
            # last: the checker, given a path, writes inferred shapes into the file
            ok_orig, _ = passes_checker(orig)
            if ok_orig:
                ok_saved, why = passes_checker(out)
                t.ok(ok_saved, f"{label}: checker on the saved model", why)
            n_ext += 1
            if n_ext >= 40:
                break
        t.ok(n_ext >= 20, "external data models", f"only {n_ext}")
    t.finish()


if __name__ == "__main__":
    main()
