#!/opt/kiln-venv/bin/python
"""Models from today's PyTorch exporter (torch.onnx.export(..., dynamo=True)),
committed under tests/models/<name>/ by tests/models/make_dynamo_models.py:
a decoder block with a KV cache (an Attention node at opset 23, its
decomposition at 18), a Conv1d + GroupNorm + GELU audio front end (21), a
BERT-style encoder (18), torch.cond branches (18), an LSTM with state (18)
and a small CNN (18).

For each model:
  - `kiln run` matches torch's reference outputs and onnxruntime's;
  - `kiln freeze --verify` binding the configuration inputs of meta.json and
    fixing every symbolic dim to the example's value writes a model that passes
    onnx.checker.check_model(full_check=True), runs in kiln and in
    onnxruntime, and matches the reference; so does a freeze that binds the
    configuration alone (dims left symbolic), run at the example's shapes and
    at other ones (compared with onnxruntime on the original);
  - `kiln check` passes on the original and each frozen model;
  - a model with recurrent state (the KV cache, the LSTM's h and c) streamed
    by `kiln run --state ... --chunks 3` equals the one call on the whole;
    so does the decoder frozen to one token per call (the cache's length
    left symbolic) streamed a token at a time;
  - the node counts of the original and the frozen models are printed.

usage: test_dynamo_models.py KILN [MODELS_DIR]   (run with the venv python: onnxruntime)
Tolerances: rtol 1e-4, atol 1e-5 everywhere (float32 throughout).
"""
import fnmatch
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402

try:
    import onnxruntime as ort
except ImportError:  # pragma: no cover
    ort = None

KILN = sys.argv[1]
MODELS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "models")
TMP = tempfile.mkdtemp(prefix="kiln-dynamo-")
RTOL, ATOL = 1e-4, 1e-5
t = Tally("dynamo_models")


def kiln(*a, timeout=300):
    return subprocess.run([KILN, *map(str, a)], capture_output=True, text=True, timeout=timeout)


def run_kiln(path, feeds, tag):
    d = tempfile.mkdtemp(dir=TMP, prefix=tag + "-")
    args = []
    for k, v in feeds.items():
        p = os.path.join(d, "in_" + k + ".npy")
        np.save(p, v)
        args += ["-i", "%s=@%s" % (k, p)]
    r = kiln("run", path, *args, "--out", d)
    if r.returncode != 0:
        raise RuntimeError("kiln run exit %d: %s" % (r.returncode, r.stderr.strip()[-2000:]))
    return {o.name: np.load(os.path.join(d, o.name + ".npy")) for o in onnx.load(path).graph.output}


def run_ort(path, feeds):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def close(what, got, want, rtol=RTOL, atol=ATOL):
    """One check per output: same set of outputs, shapes, dtypes and values."""
    if not t.ok(set(got) == set(want), what + " outputs", "%s vs %s" % (sorted(got), sorted(want))):
        return
    for k, w in want.items():
        g = np.asarray(got[k])
        w = np.asarray(w)
        if g.shape != w.shape or g.dtype != w.dtype:
            t.fail("%s %s" % (what, k), "shape/dtype %s %s vs %s %s" % (g.shape, g.dtype, w.shape, w.dtype))
            continue
        ok = np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        detail = ""
        if not ok:
            err = np.abs(g.astype(np.float64) - w.astype(np.float64))
            detail = "max abs err %.3g (at %s), max |want| %.3g" % (
                err.max(), np.unravel_index(err.argmax(), err.shape), np.abs(w).max())
        t.ok(ok, "%s %s" % (what, k), detail)


def attempt(what, fn, *a):
    """fn(*a), counting a pass, or a failure (with its message) when it raises."""
    try:
        r = fn(*a)
    except Exception as e:  # noqa: BLE001 -- every failure is a finding to report
        t.fail(what, "%s: %s" % (type(e).__name__, str(e).strip()[-1500:]))
        return None
    t.ok(True, what)
    return r


def literal(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


def check_frozen(name, tag, src, frozen, feeds, want, other_feeds=()):
    """The frozen model passes the full checker, runs in kiln and onnxruntime
    and matches `want`; at `other_feeds` it matches onnxruntime on `src`."""
    m = onnx.load(frozen)
    attempt("%s %s check_model(full_check)" % (name, tag), onnx.checker.check_model, m, True)
    got = attempt("%s %s kiln run" % (name, tag), run_kiln, frozen, feeds, name + "-" + tag)
    if got is not None:
        close("%s %s kiln vs torch" % (name, tag), got, want)
    if ort is not None:
        o = attempt("%s %s onnxruntime" % (name, tag), run_ort, frozen, feeds)
        if o is not None:
            close("%s %s onnxruntime vs torch" % (name, tag), o, want)
    for i, (full, part) in enumerate(other_feeds):
        got = attempt("%s %s kiln run #%d" % (name, tag, i), run_kiln, frozen, part, name + "-" + tag)
        if got is not None and ort is not None:
            o = attempt("%s original onnxruntime #%d" % (name, i), run_ort, src, full)
            if o is not None:
                close("%s %s kiln vs onnxruntime #%d" % (name, tag, i), got, o)
    return len(m.graph.node)


def other_shapes(meta, feeds):
    """The example's inputs at other values of the symbolic dims (each dim
    one larger, or 8 larger for the 8*k ones), for the symbolic freeze."""
    rng = np.random.default_rng(7)
    new = {}
    for sym in meta["dims"]:
        step = int(sym.split("*")[0]) if "*" in sym else 1
        new[sym] = meta["dims"][sym] + step
    out = {}
    for k, v in feeds.items():
        shape = list(v.shape)
        for sym, where in meta["dim_inputs"].items():
            for inp, ax in where:
                if inp == k:
                    shape[ax] = new[sym]
        if list(v.shape) == shape:
            out[k] = v
        elif v.dtype == np.int64:  # ids, token types, masks: in the range of the example's values
            out[k] = rng.integers(v.min(), v.max() + 1, size=shape).astype(np.int64)
        else:
            out[k] = (rng.standard_normal(shape) * (v.std() or 1.0)).astype(v.dtype)
    return out


def dim_args(meta):
    """--dim for every symbolic dim at the example's value; torch.export's
    derived dims ("8*h8") are fixed through their symbol (--dim h8=4), as
    the user who wrote 8 * Dim("h8") would."""
    out = []
    for sym, v in meta["dims"].items():
        k, _, base = sym.partition("*")
        if base and k.isdigit() and base.isidentifier() and v % int(k) == 0:
            out += ["--dim", "%s=%d" % (base, v // int(k))]
        else:
            out += ["--dim", "%s=%d" % (sym, v)]
    return out


def check_cli(name, tag, src, frozen, binds, part):
    """`kiln check ORIGINAL FROZEN --bind ... --inputs DIR` on the example."""
    d = tempfile.mkdtemp(dir=TMP, prefix=name + "-check-")
    for k, v in part.items():
        np.save(os.path.join(d, k + ".npy"), v)
    r = kiln("check", src, frozen, *binds, "--inputs", d)
    t.ok(r.returncode == 0, "%s %s kiln check" % (name, tag), (r.stdout + r.stderr).strip()[-1500:])


def check_random(name, tag, src, frozen, binds):
    """`kiln check` on its own seeded inputs: the sizes it picks for a
    derived dim ("8*h8") are the expression's value on its symbol's size."""
    r = kiln("check", src, frozen, *binds)
    t.ok(r.returncode == 0, "%s %s kiln check (random inputs)" % (name, tag), (r.stdout + r.stderr).strip()[-1500:])


def stream(name, meta, src, feeds, want, counts):
    """`kiln run --state PAIR... --chunks 3` along meta's axis, the initial
    state from the example (--state-in), equals the one call on the whole
    input: the reference outputs, the state outputs holding the final state
    (a KV cache grows chunk by chunk). With "auto", `kiln info` lists the
    pairs and `--state auto` streams the same."""
    st = meta["stream"]
    stream_with(name, st, src, feeds, want, [a for p in st["state"] for a in ("--state", p)], "")
    if st.get("auto"):
        r = kiln("info", src)
        for p in st["state"]:
            i, _, o = p.partition("=")
            t.ok(r.returncode == 0 and ("%s <- %s" % (i, o)) in r.stdout, name + " kiln info lists " + p,
                 (r.stdout + r.stderr)[-1500:])
        stream_with(name, st, src, feeds, want, ["--state", "auto"], " (--state auto)")
    if st.get("step"):
        # a one-step model (dims fixed, one token per call) streamed a token at a time
        step = os.path.join(TMP, name + "_step.onnx")
        dims = [a for k, v in st["step"].items() for a in ("--dim", "%s=%d" % (k, v))]
        r = kiln("freeze", src, "-o", step, "--quiet", *dims)
        if t.ok(r.returncode == 0, name + " freeze (one step)", r.stderr.strip()[-1500:]):
            attempt(name + " step check_model(full_check)", onnx.checker.check_model, onnx.load(step), True)
            counts.append("one-step %d" % len(onnx.load(step).graph.node))
            stream_with(name, st, step, feeds, want, [a for p in st["state"] for a in ("--state", p)],
                        " (one-step model, chunks of 1)", ["--chunk-size", 1])


def stream_with(name, st, src, feeds, want, args, tag, chunking=("--chunks", 3)):
    d = tempfile.mkdtemp(dir=TMP, prefix=name + "-stream-")
    state_in = os.path.join(d, "state_in")
    os.makedirs(state_in)
    chunked = []
    for k, v in feeds.items():
        if any(fnmatch.fnmatchcase(k, p.partition("=")[0]) for p in st["state"]):
            np.save(os.path.join(state_in, k + ".npy"), v)
        else:
            np.save(os.path.join(d, "in_" + k + ".npy"), v)
            chunked += ["-i", "%s=@%s" % (k, os.path.join(d, "in_" + k + ".npy"))]
    out = os.path.join(d, "out")
    r = kiln("run", src, *chunked, *args, "--state-in", state_in, *chunking,
             "--chunk-axis", st["axis"], "--out", out)
    how = " ".join(map(str, chunking)) + tag
    if not t.ok(r.returncode == 0, name + " kiln run --state " + how, r.stderr.strip()[-1500:]):
        return
    got = {k: np.load(os.path.join(out, k + ".npy")) for k in want}
    close("%s streamed (%s) vs torch" % (name, how), got, want)


def one(name):
    d = os.path.join(MODELS, name)
    meta = json.load(open(os.path.join(d, "meta.json")))
    src = os.path.join(d, "model.onnx")
    feeds = {k: np.load(os.path.join(d, "input_%s.npy" % k)) for k in meta["inputs"]}
    want = {k: np.load(os.path.join(d, "output_%s.npy" % k)) for k in meta["outputs"]}
    config = meta.get("config", {})
    n_orig = len(onnx.load(src).graph.node)

    # the original, in kiln and in onnxruntime
    got = attempt(name + " kiln run", run_kiln, src, feeds, name)
    if got is not None:
        close(name + " kiln vs torch", got, want)
    if ort is not None:
        o = attempt(name + " onnxruntime", run_ort, src, feeds)
        if o is not None:
            close(name + " onnxruntime vs torch", o, want)
            if got is not None:
                close(name + " kiln vs onnxruntime", got, o)

    binds = []
    for k, v in config.items():
        binds += ["--bind", "%s=%s" % (k, literal(v))]
    part = {k: v for k, v in feeds.items() if k not in config}
    counts = ["original %d" % n_orig]

    # configuration bound, every dim fixed
    fixed = os.path.join(TMP, name + "_fixed.onnx")
    r = kiln("freeze", src, "-o", fixed, "--quiet", "--verify", *binds, *dim_args(meta))
    if t.ok(r.returncode == 0, name + " freeze --verify (config + dims)", r.stderr.strip()[-1500:]):
        n = check_frozen(name, "fixed", src, fixed, part, want)
        check_cli(name, "fixed", src, fixed, binds, part)
        counts.append("config+dims %d" % n)
        m = onnx.load(fixed)
        left = [i.name for i in m.graph.input
                if any(dd.dim_param or not dd.HasField("dim_value") for dd in i.type.tensor_type.shape.dim)]
        t.ok(not left, name + " fixed: no symbolic input dims", str(left))

    # configuration bound, dims symbolic: the same and other shapes
    if config or meta["dims"]:
        sym_path = os.path.join(TMP, name + "_sym.onnx")
        r = kiln("freeze", src, "-o", sym_path, "--quiet", *binds)
        if t.ok(r.returncode == 0, name + " freeze (config)", r.stderr.strip()[-1500:]):
            others = []
            if meta["dims"]:
                full = other_shapes(meta, feeds)
                others.append((full, {k: v for k, v in full.items() if k not in config}))
            n = check_frozen(name, "sym", src, sym_path, part, want, others)
            check_cli(name, "sym", src, sym_path, binds, part)
            if any("*" in d for d in meta["dims"]):
                check_random(name, "sym", src, sym_path, binds)
            counts.append("config only %d" % n)
    if meta.get("stream"):
        stream(name, meta, src, feeds, want, counts)
    print("%-20s nodes: %s" % (name, ", ".join(counts)), flush=True)


def main():
    names = sorted(n for n in os.listdir(MODELS) if os.path.isfile(os.path.join(MODELS, n, "meta.json")))
    t.ok(len(names) >= 7, "models found in " + MODELS, str(names))
    if ort is None:
        print("onnxruntime not installed: its comparisons are skipped")
    for n in names:
        one(n)
    t.finish()


if __name__ == "__main__":
    main()
