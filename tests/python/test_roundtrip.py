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


def split_values(model):
    """Strips tensor data from a copy of the model; returns (copy, arrays)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    arrays = []
    for t in tensors_of_graph(m.graph, []):
        arrays.append(numpy_helper.to_array(t))
        for f in DATA_FIELDS:
            t.ClearField(f)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--roundtrip", required=True)
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
            t.ok(sorted(os.listdir(sub)) == ["m.onnx", "m.onnx.data"], f"{label}: files written",
                 str(sorted(os.listdir(sub))))
            raw = onnx.load(out, load_external_data=False)
            locs = [tp for tp in tensors_of_graph(raw.graph, [])
                    if tp.data_location == onnx.TensorProto.EXTERNAL]
            t.ok(locs, f"{label}: tensors stored externally")
            for tp in locs:
                kv = {e.key: e.value for e in tp.external_data}
                t.ok(kv.get("location") == "m.onnx.data" and int(kv.get("offset", "-1")) % 64 == 0,
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
                t.ok(sorted(os.listdir(sub)) == ["again.onnx", "m.onnx", "m.onnx.data"],
                     f"{label}: in-place save leaves only its files", str(sorted(os.listdir(sub))))
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
