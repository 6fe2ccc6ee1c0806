"""Bad input never crashes kiln: each case exits non-zero with a message on
stderr that names the file and the problem, and leaves no output file (nor
a temporary one) behind. Runs the CLI (`kiln info`), the round-trip tool
(load + save) and the tensor-file converter."""
import argparse
import glob
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402


def npy_with_header(blob, old, new):
    """A version 1.0 .npy file like `blob` with `old` replaced by `new` in its
    header, the header padded and its length set as the format defines."""
    hlen = blob[8] | blob[9] << 8
    head = blob[10:10 + hlen].decode().rstrip(" \n").replace(old, new)
    pad = (64 - (10 + len(head) + 1) % 64) % 64
    head = (head + " " * pad + "\n").encode()
    return blob[:8] + bytes([len(head) & 0xff, len(head) >> 8]) + head + blob[10 + hlen:]


class Runner:
    def __init__(self, args, t, tmp):
        self.a, self.t, self.tmp = args, t, tmp

    def leftovers(self, folder):
        return [f for f in os.listdir(folder) if "kiln-tmp" in f or f.startswith("out")]

    def expect_fail(self, label, path, words, info=True, save=True):
        """kiln info and a load+save of `path` both fail cleanly."""
        words = [w.lower() for w in words]
        cmds = []
        if info:
            cmds.append(("info", [self.a.kiln, "info", path]))
        if save:
            out = os.path.join(self.tmp, "out.onnx")
            cmds.append(("save", [self.a.roundtrip, path, out]))
        for what, cmd in cmds:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            err = r.stderr.strip()
            self.t.ok(r.returncode > 0, f"{label} [{what}]: exit status", f"{r.returncode} ({err})")
            self.t.ok(len(err.splitlines()) == 1 and path in err, f"{label} [{what}]: one-line message naming the file",
                      err)
            self.t.ok(all(w in err.lower() for w in words), f"{label} [{what}]: message says {words}", err)
            self.t.ok(not self.leftovers(self.tmp), f"{label} [{what}]: no output left", str(self.leftovers(self.tmp)))
            for f in self.leftovers(self.tmp):
                os.unlink(os.path.join(self.tmp, f))


def simple_model(init, shape):
    """Y = X + W with W the given initializer."""
    g = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)], [init])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def save(m, path):
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def ext_tensor(location, n=100, offset=None, length=None):
    tp = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[n])
    tp.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = tp.external_data.add()
            e.key, e.value = k, str(v)
    return tp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--roundtrip", required=True)
    ap.add_argument("--tensorconv", required=True)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    t = Tally("bad input")
    with tempfile.TemporaryDirectory(prefix="kiln-bad-") as tmp:
        work = os.path.join(tmp, "work")
        os.mkdir(work)
        R = Runner(args, t, work)
        p = lambda name: os.path.join(work, name)  # noqa: E731

        R.expect_fail("missing file", p("nothere.onnx"), ["no such file"])
        open(p("empty.onnx"), "wb").close()
        R.expect_fail("empty file", p("empty.onnx"), ["empty"])
        os.mkdir(p("adir.onnx"))
        R.expect_fail("a folder", p("adir.onnx"), ["not a regular file"])
        rng = random.Random(5)
        for i, n in enumerate((1, 7, 100, 4096, 100000)):
            with open(p(f"random{i}.onnx"), "wb") as f:
                f.write(bytes(rng.getrandbits(8) for _ in range(n)))
            R.expect_fail(f"random bytes ({n})", p(f"random{i}.onnx"), ["onnx"])
        with open(p("text.onnx"), "w") as f:
            f.write("ir_version: 7\ngraph { name: 'x' }\n")
        R.expect_fail("a text file", p("text.onnx"), [])

        # A valid model cut at every 1/50th of its length. A cut that falls on
        # a field boundary can leave a valid (smaller) message: then kiln may
        # accept it, but only if onnx itself parses those bytes.
        for src in ("pytorch-converted/test_Conv2d/model.onnx", "node/test_loop11/model.onnx",
                    "node/test_if_seq/model.onnx"):
            blob = open(os.path.join(args.data, src), "rb").read()
            accepted = 0
            for k in range(1, 50):
                cut = len(blob) * k // 50
                path = p("trunc.onnx")
                with open(path, "wb") as f:
                    f.write(blob[:cut])
                r = subprocess.run([args.roundtrip, path, p("out.onnx")], capture_output=True, text=True)
                label = f"{src} cut at {cut}/{len(blob)}"
                if r.returncode == 0:
                    accepted += 1
                    m = onnx.ModelProto()
                    try:
                        m.ParseFromString(blob[:cut])
                        ok = True
                    except Exception:
                        ok = False
                    t.ok(ok, f"{label}: accepted only if onnx parses it too")
                    os.unlink(p("out.onnx"))
                    continue
                err = r.stderr.strip()
                t.ok(r.returncode > 0, f"{label}: exit status", str(r.returncode))
                t.ok(path in err and len(err.splitlines()) == 1, f"{label}: message", err)
                t.ok(not R.leftovers(work), f"{label}: no output left")
                r = subprocess.run([args.kiln, "info", path], capture_output=True, text=True)
                t.ok(r.returncode > 0 and path in r.stderr, f"{label}: kiln info fails cleanly", r.stderr)
            t.ok(accepted < 10, f"{src}: most cuts refused", f"{accepted} of 49 accepted")

        # random byte changes in valid models (subgraphs, strings, weights):
        # accepted or refused with one line, never a crash
        mrng = random.Random(11)
        for src in ("pytorch-converted/test_Conv2d", "node/test_loop11", "node/test_if_seq", "node/test_scan9_sum",
                    "node/test_lstm_defaults", "node/test_strnormalizer_export_monday_casesensintive_lower"):
            blob = open(os.path.join(args.data, src, "model.onnx"), "rb").read()
            bad = []
            for k in range(30):
                b = bytearray(blob)
                for _ in range(mrng.randint(1, 4)):
                    b[mrng.randrange(len(b))] = mrng.randrange(256)
                with open(p("mut.onnx"), "wb") as f:
                    f.write(b)
                for cmd in ([args.roundtrip, p("mut.onnx"), p("out.onnx")], [args.kiln, "info", "--json", p("mut.onnx")]):
                    r = subprocess.run(cmd, capture_output=True)
                    err = r.stderr.decode("utf-8", "replace")
                    if r.returncode not in (0, 1) or len(err.splitlines()) > 1 or (r.returncode and not err):
                        bad.append(f"#{k} {os.path.basename(cmd[0])}: exit {r.returncode}: {err[:300]}")
                if os.path.exists(p("out.onnx")):
                    os.unlink(p("out.onnx"))
            t.ok(not bad, f"{src}: 30 mutated copies handled", "; ".join(bad[:3]))

        # tensors that lie about their size
        big = [2 ** 40, 2 ** 40, 2 ** 40]
        save(simple_model(TensorProto(name="W", data_type=TensorProto.FLOAT, dims=big, raw_data=b"\0" * 4), big),
             p("overflow.onnx"))
        R.expect_fail("dims overflow int64", p("overflow.onnx"), ["'w'", "overflow"])
        huge = [2 ** 31, 2 ** 31]  # fits int64 as a count, not as bytes on 64-bit
        save(simple_model(TensorProto(name="W", data_type=TensorProto.DOUBLE, dims=[2 ** 61, 2]), huge),
             p("overflow2.onnx"))
        R.expect_fail("byte size overflows", p("overflow2.onnx"), ["'w'", "overflow"])
        save(simple_model(TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[-3]), [3]), p("negdim.onnx"))
        R.expect_fail("negative dim", p("negdim.onnx"), ["'w'", "negative"])
        for n in (10, 100, 1000):  # below and above the loader's lifting size
            tp = numpy_helper.from_array(np.ones(n, np.float32), "W")
            tp.raw_data = tp.raw_data[:-4]
            save(simple_model(tp, [n]), p(f"short{n}.onnx"))
            R.expect_fail(f"raw_data short by 4 of {4 * n}", p(f"short{n}.onnx"),
                          ["'w'", "raw_data", str(4 * n - 4), str(4 * n)])
            tp = numpy_helper.from_array(np.ones(n, np.float32), "W")
            tp.raw_data = tp.raw_data + b"\0" * 4
            save(simple_model(tp, [n]), p(f"long{n}.onnx"))
            R.expect_fail(f"raw_data long by 4 of {4 * n}", p(f"long{n}.onnx"), ["'w'", "raw_data"])
        tp = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[10], float_data=[1.0] * 9)
        save(simple_model(tp, [10]), p("fewfloats.onnx"))
        R.expect_fail("float_data with 9 of 10 values", p("fewfloats.onnx"), ["'w'", "9", "10"])
        tp = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[10])
        save(simple_model(tp, [10]), p("nodata.onnx"))
        R.expect_fail("tensor without data", p("nodata.onnx"), ["'w'", "no data"])
        tp = TensorProto(name="W", data_type=99, dims=[1], raw_data=b"\0")
        save(simple_model(tp, [1]), p("baddtype.onnx"))
        R.expect_fail("unknown data type", p("baddtype.onnx"), ["'w'", "99"])

        # external data that points where it must not
        outside = os.path.join(tmp, "outside")
        os.mkdir(outside)
        np.ones(100, np.float32).tofile(os.path.join(outside, "w.bin"))
        np.ones(100, np.float32).tofile(p("w.bin"))
        np.ones(25, np.float32).tofile(p("short.bin"))
        os.symlink(os.path.join(outside, "w.bin"), p("link.bin"))
        os.symlink(outside, p("linkdir"))
        cases = [
            ("absolute", ext_tensor(os.path.join(outside, "w.bin")), ["'w'", "absolute"]),
            ("dot-dot", ext_tensor("../outside/w.bin"), ["'w'", ".."]),
            ("dot-dot inside", ext_tensor("sub/../../outside/w.bin"), ["'w'", ".."]),
            ("symlink file out", ext_tensor("link.bin"), ["'w'", "outside"]),
            ("symlink dir out", ext_tensor("linkdir/w.bin"), ["'w'", "outside"]),
            ("missing", ext_tensor("nope.bin"), ["'w'", "nope.bin", "no such file"]),
            ("shorter than offset+length", ext_tensor("short.bin", offset=64, length=400), ["'w'", "short.bin", "400"]),
            ("offset past end", ext_tensor("w.bin", offset=4096, length=400), ["'w'", "4096"]),
            ("length disagrees with shape", ext_tensor("w.bin", length=200), ["'w'", "200", "400"]),
            ("file shorter than shape", ext_tensor("short.bin"), ["'w'", "100", "400"]),
            ("bad offset", ext_tensor("w.bin", offset="12x"), ["'w'", "12x"]),
            ("negative offset", ext_tensor("w.bin", offset="-4"), ["'w'", "-4"]),
            ("no location", ext_tensor(None), ["'w'", "location"]),
            ("location is a folder", ext_tensor("linkdir"), ["'w'"]),
        ]
        for name, tp, words in cases:
            save(simple_model(tp, [100]), p("ext.onnx"))
            R.expect_fail(f"external data: {name}", p("ext.onnx"), words)
        # and the good one loads (so the cases above fail for their reason)
        save(simple_model(ext_tensor("w.bin", offset=0, length=400), [100]), p("ext_ok.onnx"))
        r = subprocess.run([args.roundtrip, p("ext_ok.onnx"), p("out.onnx")], capture_output=True, text=True)
        t.ok(r.returncode == 0, "external data inside the folder loads", r.stderr)
        if r.returncode == 0:
            got = numpy_helper.to_array(onnx.load(p("out.onnx")).graph.initializer[0])
            t.ok(np.array_equal(got, np.ones(100, np.float32)), "external data values")
            # loaded with external data, saved with external data (its own data file)
            t.ok(len(glob.glob(p("out.onnx.*.data"))) == 1, "external data kept external")
            for f in glob.glob(p("out.onnx*")):
                os.unlink(f)

        # saving where it cannot be written
        good = os.path.join(args.data, "pytorch-converted/test_Conv2d/model.onnx")
        open(p("afile"), "w").close()
        for name, target, extra in (
                ("parent is a regular file", p("afile/out.onnx"), []),
                ("parent is missing", p("nodir/out.onnx"), []),
                ("target is a folder", p("adir.onnx"), []),
                ("external data, parent is a file", p("afile/out.onnx"), ["--external-threshold", "64"])):
            r = subprocess.run([args.roundtrip, good, target] + extra, capture_output=True, text=True)
            err = r.stderr.strip()
            t.ok(r.returncode > 0, f"save: {name}: exit status", str(r.returncode))
            t.ok(target in err or target + ".data" in err, f"save: {name}: message names the file", err)
            t.ok(not R.leftovers(work), f"save: {name}: nothing left", str(R.leftovers(work)))
        # as an unprivileged user into a folder it may not write
        ro = os.path.join(tmp, "readonly")
        os.mkdir(ro, 0o755)
        os.chmod(tmp, 0o755)
        shutil.copy(good, os.path.join(ro, "in.onnx"))
        os.chmod(os.path.join(ro, "in.onnx"), 0o644)
        tool = os.path.join(tmp, "roundtrip")
        shutil.copy(args.roundtrip, tool)
        os.chmod(tool, 0o755)
        setpriv = shutil.which("setpriv")
        if os.geteuid() == 0 and setpriv:
            r = subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", tool,
                                os.path.join(ro, "in.onnx"), os.path.join(ro, "out.onnx")],
                               capture_output=True, text=True)
            err = r.stderr.strip()
            t.ok(r.returncode > 0, "save as nobody into a root folder: exit status", f"{r.returncode} {err}")
            t.ok("permission denied" in err.lower() and os.path.join(ro, "out.onnx") in err,
                 "save as nobody: message", err)
            t.ok(sorted(os.listdir(ro)) == ["in.onnx"], "save as nobody: nothing left", str(os.listdir(ro)))
        else:
            print("note: not root or no setpriv; unprivileged save not tested")

        # a save that fails half way (file size limit) leaves nothing behind
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
        half = os.path.join(tmp, "half")
        os.mkdir(half)
        big_model = os.path.join(half, "in.onnx")
        w = numpy_helper.from_array(np.arange(10000, dtype=np.float32), "W")
        save(simple_model(w, [10000]), big_model)
        for name, extra, side_limit in (("model file", [], False), ("external data", ["--external-threshold", "64"], True),
                                        ("model after external data", ["--external-threshold", "64"], False)):
            out = os.path.join(half, "out.onnx")
            if name == "model after external data":
                # the side file fits, the model does not: a model with big
                # string initializers, which always stay inside the model
                s = helper.make_tensor("S", TensorProto.STRING, [1], [b"x" * 60000])
                m = simple_model(w, [10000])
                m.graph.initializer.append(s)
                save(m, big_model)
                def limit2():  # noqa: E306
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                    resource.setrlimit(resource.RLIMIT_FSIZE, (45000, 45000))
                fn = limit2
            else:
                fn = limit
            r = subprocess.run([args.roundtrip, big_model, out] + extra, capture_output=True, text=True,
                               preexec_fn=fn)
            err = r.stderr.strip()
            t.ok(r.returncode > 0, f"save fails half way ({name}): exit status", f"{r.returncode} {err}")
            t.ok("write failed" in err.lower() or "too large" in err.lower(), f"save fails half way ({name}): message",
                 err)
            t.ok(sorted(os.listdir(half)) == ["in.onnx"], f"save fails half way ({name}): nothing left",
                 str(os.listdir(half)))

        # tensor files
        np.save(p("ok.npy"), np.arange(100, dtype=np.float32))
        blob = open(p("ok.npy"), "rb").read()
        tcases = [("npy truncated data", "cut.npy", blob[:-4], ["data bytes"]),
                  ("npy truncated header", "cuthead.npy", blob[:40], ["header"]),
                  ("npy bad magic", "magic.npy", b"NUMPY" + blob[5:], ["magic"]),
                  ("npy version 9", "v9.npy", blob[:6] + b"\x09" + blob[7:], ["version"]),
                  ("npy empty", "empty.npy", b"", ["magic"]),
                  ("npy huge shape", "huge.npy",
                   npy_with_header(blob, "(100,)", "(99999999999999999999999,)"), ["dimension"]),
                  ("npy overflow shape", "ovf.npy",
                   npy_with_header(blob, "(100,),", "(4294967296,4294967296,4),"), ["overflow"])]
        tp = numpy_helper.from_array(np.ones(100, np.float32), "T")
        tp.raw_data = tp.raw_data[:-4]
        tcases.append(("pb raw_data short", "short.pb", tp.SerializeToString(), ["raw_data", "396", "400"]))
        tcases.append(("pb random bytes", "rand.pb", bytes(range(7, 250, 3)), ["tensorproto"]))
        tcases.append(("pb external data", "ext.pb", ext_tensor("w.bin").SerializeToString(), ["external"]))
        for name, fname, data, words in tcases:
            with open(p(fname), "wb") as f:
                f.write(data)
            for out in ("out.npy", "out.pb"):
                r = subprocess.run([args.tensorconv, p(fname), p(out)], capture_output=True, text=True)
                err = r.stderr.strip()
                t.ok(r.returncode > 0, f"{name} -> {out}: exit status", str(r.returncode))
                t.ok(p(fname) in err and all(w in err.lower() for w in words), f"{name} -> {out}: message", err)
                t.ok(not R.leftovers(work), f"{name}: no output left")
        r = subprocess.run([args.tensorconv, p("ok.npy"), p("out.txt")], capture_output=True, text=True)
        t.ok(r.returncode > 0 and "out.txt" in r.stderr, "unknown tensor file type", r.stderr)
        r = subprocess.run([args.tensorconv, p("ok.npy"), p("afile/out.npy")], capture_output=True, text=True)
        t.ok(r.returncode > 0 and "afile/out.npy" in r.stderr, "npy into a non-folder", r.stderr)
    t.finish()


if __name__ == "__main__":
    main()
