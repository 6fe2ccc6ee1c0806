"""Tensor files through kiln against numpy and onnx's numpy_helper.

1. Every input_*.pb / output_*.pb of the backend test suites: kiln reads it
   (kiln_pb_read) and writes .npy (kiln_npy_write); numpy loads that and it
   must equal onnx.numpy_helper.to_array of the same file, bit for bit.
   Files that are not TensorProto (sequences, optionals: known from the
   model's graph input/output types) are skipped and counted.
2. .npy both ways: numpy writes, kiln reads and writes .pb (checked with
   numpy_helper) and .npy (checked with numpy); every numeric dtype, bool,
   float16, 0-d, empty, a large array; Fortran order, object arrays and
   big-endian data are refused with a clear message."""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally, test_dirs  # noqa: E402


def value_kinds(model):
    """['tensor' | 'sequence' | ...] for the graph's data inputs and outputs."""
    inits = {t.name for t in model.graph.initializer}
    ins = [v for v in model.graph.input if v.name not in inits]
    kind = lambda v: (v.type.WhichOneof("value") or "tensor_type")[:-5]  # noqa: E731
    return [kind(v) for v in ins], [kind(v) for v in model.graph.output], len(model.graph.input)


def same(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False, f"{a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"
    return a.tobytes() == b.tobytes(), "values differ"


def pb_files(t, tc, data, tmp):
    pairs, refs, skipped, strings = [], [], 0, 0
    for d in test_dirs(data):
        model = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
        ins, outs, n_all_inputs = value_kinds(model)
        for f in sorted(glob.glob(os.path.join(d, "test_data_set_*", "*.pb"))):
            base = os.path.basename(f)
            io, idx = base[:-3].split("_")
            kinds = ins if io == "input" else outs
            idx = int(idx)
            if idx < len(kinds):
                k = kinds[idx]
            elif io == "input" and idx < n_all_inputs:
                k = "tensor"  # an input that also has an initializer
            else:
                k = "unknown"
            if k != "tensor":
                skipped += 1
                continue
            tp = onnx.TensorProto()
            with open(f, "rb") as fh:
                tp.ParseFromString(fh.read())
            ref = numpy_helper.to_array(tp)
            if tp.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.BFLOAT16):
                strings += 1  # .npy has no such dtype: checked through .pb below
                out = os.path.join(tmp, f"pb{len(pairs)}.pb")
            else:
                out = os.path.join(tmp, f"pb{len(pairs)}.npy")
            pairs.append((f, out))
            refs.append((os.path.relpath(f, data), ref, tp.data_type))
    # one kiln process converts them all
    fails = {}
    for i in range(0, len(pairs), 500):
        chunk = pairs[i:i + 500]
        r = subprocess.run([tc, "--many"] + [x for p in chunk for x in p], capture_output=True, text=True)
        t.ok(r.returncode in (0, 1) and not r.stderr, "kiln converter runs cleanly",
             f"exit {r.returncode}: {r.stderr[-2000:]}")
        for line in r.stdout.splitlines():
            if line.startswith("FAIL "):
                name, _, msg = line[5:].partition(": ")
                fails[name] = msg
    for (src, out), (label, ref, dt) in zip(pairs, refs):
        if not t.ok(src not in fails, f"{label}: kiln reads it", fails.get(src, "")):
            continue
        if not t.ok(os.path.exists(out), f"{label}: kiln wrote {os.path.basename(out)}"):
            continue
        if out.endswith(".npy"):
            got = np.load(out)
        else:
            tp = onnx.TensorProto()
            with open(out, "rb") as fh:
                tp.ParseFromString(fh.read())
            got = numpy_helper.to_array(tp)
            if dt == onnx.TensorProto.STRING:
                t.ok(ref.shape == got.shape and list(ref.ravel()) == list(got.ravel()),
                     f"{label}: string values")
                continue
        ok, why = same(ref, got)
        t.ok(ok, f"{label}: values", why)
    print(f"test-data .pb files: {len(pairs)} compared ({strings} string/bfloat16 through .pb), "
          f"{skipped} skipped (sequence/optional/map, not TensorProto)")
    t.ok(len(pairs) > 2500, "number of .pb files compared", str(len(pairs)))


def run(tc, src, dst):
    return subprocess.run([tc, src, dst], capture_output=True, text=True)


def npy_both_ways(t, tc, tmp):
    rng = np.random.default_rng(7)
    cases = []
    for dt in (np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64,
               np.uint8, np.uint16, np.uint32, np.uint64, np.complex64, np.complex128):
        info = np.finfo(dt) if np.issubdtype(dt, np.inexact) else np.iinfo(dt)
        if np.issubdtype(dt, np.integer):
            a = rng.integers(info.min, info.max, size=(3, 4, 5), dtype=dt, endpoint=True)
            a.flat[0], a.flat[1] = info.min, info.max
        elif np.issubdtype(dt, np.complexfloating):
            a = (rng.standard_normal((2, 7)) + 1j * rng.standard_normal((2, 7))).astype(dt)
        else:
            a = rng.standard_normal((3, 4, 5)).astype(dt)
            a.flat[:6] = [np.inf, -np.inf, np.nan, -0.0, info.max, info.tiny]
        cases.append((np.dtype(dt).name, a))
        cases.append((np.dtype(dt).name + " 0-d", np.array(a.flat[7], dtype=dt)))
        cases.append((np.dtype(dt).name + " empty", np.zeros((0, 3), dtype=dt)))
    cases.append(("float16 subnormals", np.array([6e-8, 6.1e-5, -3e-7, 65504], dtype=np.float16)))
    cases.append(("bool", rng.integers(0, 2, size=(4, 9)).astype(bool)))
    cases.append(("bool 0-d", np.array(True)))
    cases.append(("float32 empty middle", np.zeros((3, 0, 2), dtype=np.float32)))
    cases.append(("float32 rank 8", rng.standard_normal((2, 1, 2, 1, 2, 1, 2, 3)).astype(np.float32)))
    cases.append(("float32 rank 1 of 1", np.array([1.5], dtype=np.float32)))
    cases.append(("uint8 long", rng.integers(0, 255, size=100003, dtype=np.uint8)))
    for name, a in cases:
        src = os.path.join(tmp, "in.npy")
        np.save(src, a)
        for ext in (".npy", ".pb"):
            dst = os.path.join(tmp, "out" + ext)
            r = run(tc, src, dst)
            if not t.ok(r.returncode == 0, f"npy {name} -> {ext}", r.stderr.strip()):
                continue
            if ext == ".npy":
                got = np.load(dst)
            else:
                tp = onnx.TensorProto()
                with open(dst, "rb") as fh:
                    tp.ParseFromString(fh.read())
                got = numpy_helper.to_array(tp)
            ok, why = same(a, got)
            t.ok(ok, f"npy {name} -> {ext}: values", why)
            os.unlink(dst)
        # and back: the .pb numpy_helper wrote, read by kiln
        pb = os.path.join(tmp, "ref.pb")
        with open(pb, "wb") as fh:
            fh.write(numpy_helper.from_array(a, "x").SerializeToString())
        dst = os.path.join(tmp, "back.npy")
        r = run(tc, pb, dst)
        if t.ok(r.returncode == 0, f"numpy_helper .pb {name} -> npy", r.stderr.strip()):
            ok, why = same(a, np.load(dst))
            t.ok(ok, f"numpy_helper .pb {name} -> npy: values", why)
    # version 2.0 header, written by numpy on request
    a = rng.standard_normal((5, 6)).astype(np.float32)
    src = os.path.join(tmp, "v2.npy")
    with open(src, "wb") as fh:
        np.lib.format.write_array(fh, a, version=(2, 0))
    r = run(tc, src, os.path.join(tmp, "v2out.npy"))
    if t.ok(r.returncode == 0, "npy version 2.0", r.stderr.strip()):
        t.ok(same(a, np.load(os.path.join(tmp, "v2out.npy")))[0], "npy version 2.0: values")
    # a large array: 50M float32 (200 MB)
    big = np.arange(50_000_000, dtype=np.float32)
    big[::7] *= -1.5
    src = os.path.join(tmp, "big.npy")
    np.save(src, big)
    dst = os.path.join(tmp, "bigout.npy")
    r = run(tc, src, dst)
    if t.ok(r.returncode == 0, "npy 50M float32", r.stderr.strip()):
        got = np.load(dst, mmap_mode="r")
        t.ok(got.shape == big.shape and got.dtype == big.dtype and np.array_equal(got, big),
             "npy 50M float32: values")
        del got
    for f in (src, dst):
        os.unlink(f)
    del big
    # Fortran order: transposed into C order, never read as C order
    for shape in [(2, 3), (2, 3, 4), (5, 1, 3, 2)]:
        a = np.asfortranarray(np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) * 1.5)
        src = os.path.join(tmp, "fortran.npy")
        np.save(src, a)
        dst = os.path.join(tmp, "fortran_out.npy")
        r = run(tc, src, dst)
        if t.ok(r.returncode == 0, f"Fortran order {shape}: read", r.stderr.strip()):
            got = np.load(dst)
            t.ok(got.shape == a.shape and np.array_equal(got, a), f"Fortran order {shape}: values")
            os.unlink(dst)
        os.unlink(src)
    # numpy's fixed-width unicode strings (no pickle) round trip
    src, dst = os.path.join(tmp, "u.npy"), os.path.join(tmp, "u_out.npy")
    a = np.array([["ab", "ç€𝄞"], ["", "x"]])
    np.save(src, a)
    r = run(tc, src, dst)
    t.ok(r.returncode == 0, "unicode strings: converted", r.stderr.strip())
    if r.returncode == 0:
        got = np.load(dst, allow_pickle=False)
        t.ok(got.dtype.kind == "U" and got.shape == a.shape and (got == a).all(), "unicode strings: values")
        os.unlink(dst)
    os.unlink(src)
    # refused, with a message that says why
    refused = [
        ("object array", np.array([1, "a", None], dtype=object), "object"),
        ("big-endian", np.arange(4, dtype=">f4"), "big-endian"),
        ("structured", np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]), "structured"),
    ]
    for name, a, word in refused:
        src = os.path.join(tmp, "bad.npy")
        np.save(src, a, allow_pickle=True)
        dst = os.path.join(tmp, "bad_out.npy")
        r = run(tc, src, dst)
        t.ok(r.returncode != 0 and r.returncode > 0, f"{name}: refused", f"exit {r.returncode}")
        t.ok("bad.npy" in r.stderr and word in r.stderr.lower(), f"{name}: clear message", r.stderr.strip())
        t.ok(not os.path.exists(dst), f"{name}: no output file")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tensorconv", required=True)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    t = Tally("tensor files")
    with tempfile.TemporaryDirectory(prefix="kiln-tf-") as tmp:
        pb_files(t, args.tensorconv, args.data, tmp)
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        npy_both_ways(t, args.tensorconv, tmp)
        stray = [f for f in os.listdir(tmp) if "kiln-tmp" in f]
        t.ok(not stray, "no temporary files left", str(stray))
    t.finish()


if __name__ == "__main__":
    main()
