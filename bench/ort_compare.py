"""kiln vs onnxruntime, measured back to back in one run.

usage: /opt/kiln-venv/bin/python bench/ort_compare.py [--kiln build/kiln] [--runs 20] [--rounds 3]
                                                     [--threads 1,2] [--only NAME,...] [--json]
                                                     [MODEL.onnx ...]
Without models it times the default set, prepared on first use in
bench/models/<name>/ (not committed): torchvision resnet18, mobilenet_v2 and
mobilenet_v3_small (torch 1.13 export, opset 13, batch 1, weights=None,
eval), a 2-layer nn.TransformerEncoder with a causal mask (d_model 64, 4
heads, seq 16, batch 1; the mask is an input of the export, bound by
`kiln freeze`), and the dynamo exports committed in tests/models:
bert_encoder, decoder_kv_opset23 (one decoding step: seq 1, past 5) and
lstm_state. Every input is a deterministic random array of the declared
shape, saved as .npy and fed to both engines.

kiln runs its own frozen model (`kiln freeze --shape` for every input, mask
bound), onnxruntime the original with all graph optimisations
(ORT_ENABLE_ALL), both with the same intra-op thread count. For each model
and thread count the two alternate for --rounds rounds of --runs timed runs
(onnxruntime in one worker process kept across rounds, `kiln bench` one
process per round, both after warm-up runs); a latency is the median of the
rounds' medians. Memory: kiln's arena peak (what `kiln bench` reports: the
run's tensors, not the weights) and the process's peak RSS; onnxruntime's
peak RSS growth of its worker from just before the InferenceSession is
created (/proc/self/clear_refs resets the high-water mark) to the end
(weights, arena, code pages touched). kiln/ort < 1: kiln is faster.

MODEL.onnx arguments: symbolic dims become 1, float inputs random, integer
inputs 0, bools false.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = os.path.join(HERE, "models")
TORCHVISION = ("resnet18", "mobilenet_v2", "mobilenet_v3_small")
DYNAMO = ("bert_encoder", "decoder_kv_opset23", "lstm_state")
DEFAULT_SET = TORCHVISION + ("transformer_encoder",) + DYNAMO
TORCH_PY = "/usr/bin/python3"  # torch 1.13 (the venv's onnxruntime is not needed to export)


# ---- preparing models: bench/models/<name>/{model.onnx, inputs/*.npy, bind/*.npy} ----

def _export_torch(name, d):
    """Runs the torch 1.13 export in /usr/bin/python3 (the venv has no torch
    of its own when made without system site packages)."""
    code = r'''
import sys, numpy as np, torch
name, d = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
if name == "transformer_encoder":
    layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=256, dropout=0.0)
    enc = torch.nn.TransformerEncoder(layer, num_layers=2).eval()
    seq = 16
    mask = torch.triu(torch.full((seq, seq), float("-inf")), diagonal=1)
    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = enc
        def forward(self, src, mask):
            return self.enc(src, mask=mask)
    src = torch.randn(seq, 1, 64)
    with torch.no_grad():
        torch.onnx.export(Enc().eval(), (src, mask), d + "/model.onnx", opset_version=14,
                          input_names=["src", "mask"], output_names=["out"])
    np.save(d + "/bind/mask.npy", mask.numpy())
else:
    import torchvision
    model = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():
        torch.onnx.export(model, torch.randn(1, 3, 224, 224), d + "/model.onnx", opset_version=13,
                          input_names=["input"], output_names=["output"])
'''
    r = subprocess.run([TORCH_PY, "-c", code, name, d], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"export of {name} failed: {r.stderr.strip()[-400:]}")


def _dynamo_inputs(name, rng):
    """The inputs of the committed exports (tests/models/make_dynamo_models.py)."""
    if name == "bert_encoder":
        b, s = 2, 7
        mask = np.ones((b, s), np.int64)
        mask[1, 5:] = 0
        return {"input_ids": rng.integers(0, 64, (b, s)).astype(np.int64),  # vocab 64
                "token_type_ids": (np.arange(s)[None, :] >= 4).repeat(b, 0).astype(np.int64),
                "attention_mask": mask}
    if name == "decoder_kv_opset23":  # one step: seq 1 after a past of 5
        b, p = 2, 5
        return {"x": rng.standard_normal((b, 1, 32)).astype(np.float32),
                "past_key": rng.standard_normal((b, 2, p, 8)).astype(np.float32),
                "past_value": rng.standard_normal((b, 2, p, 8)).astype(np.float32)}
    if name == "lstm_state":
        b, t = 2, 6
        return {"x": rng.standard_normal((b, t, 8)).astype(np.float32),
                "h0": (0.5 * rng.standard_normal((2, b, 16))).astype(np.float32),
                "c0": (0.5 * rng.standard_normal((2, b, 16))).astype(np.float32)}
    raise KeyError(name)


def _generic_inputs(path, rng):
    import onnx
    m = onnx.load(path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    feeds = {}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim]
        dt = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type) if hasattr(onnx.helper, "tensor_dtype_to_np_dtype") \
            else onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[tt.elem_type]
        if np.issubdtype(dt, np.floating):
            feeds[vi.name] = rng.uniform(-1, 1, shape).astype(dt)
        else:
            feeds[vi.name] = np.zeros(shape, dtype=dt)
    return feeds


def prepare(name, src=None):
    """bench/models/<name>/ with model.onnx, inputs/ and bind/ (inputs bound
    when freezing); returns the folder."""
    d = os.path.join(MODELS, name)
    os.makedirs(os.path.join(d, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(d, "bind"), exist_ok=True)
    model = os.path.join(d, "model.onnx")
    if src:  # a model file from the command line: linked afresh each time
        if os.path.lexists(model):
            os.remove(model)
        os.symlink(os.path.abspath(src), model)
    elif not os.path.exists(model):
        if name in DYNAMO:
            os.symlink(os.path.join(ROOT, "tests", "models", name, "model.onnx"), model)
        else:
            _export_torch(name, d)
    rng = np.random.default_rng(42)
    if name in DYNAMO:
        feeds = _dynamo_inputs(name, rng)
    elif name in TORCHVISION:
        feeds = {"input": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}
    elif name == "transformer_encoder":
        feeds = {"src": rng.standard_normal((16, 1, 64)).astype(np.float32)}
    else:
        feeds = _generic_inputs(model, rng)
    for f in _npys(os.path.join(d, "inputs")).values():
        os.remove(f)
    for k, v in feeds.items():
        np.save(os.path.join(d, "inputs", k + ".npy"), v)
    return d


def _npys(folder):
    return {f[:-4]: os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".npy")}


def freeze(kiln, d):
    """kiln's own model: every input's shape fixed, bind/ bound."""
    out = os.path.join(d, "frozen.onnx")
    cmd = [kiln, "freeze", os.path.join(d, "model.onnx"), "-o", out, "--quiet"]
    for k, p in _npys(os.path.join(d, "bind")).items():
        cmd += ["--bind", f"{k}=@{p}"]
    for k, p in _npys(os.path.join(d, "inputs")).items():
        cmd += ["--shape", f"{k}=" + ",".join(str(x) for x in np.load(p).shape)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"kiln freeze failed: {r.stderr.strip()[-400:]}")
    return out


# ---- onnxruntime worker: one process per model and thread count ----

def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def ort_worker(model, inputs_dir, bind_dir, threads, warmup):
    import onnxruntime as ort
    feeds = {k: np.load(p) for k, p in _npys(inputs_dir).items()}
    feeds.update({k: np.load(p) for k, p in _npys(bind_dir).items()})
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass
    base = _rss_kb("VmRSS")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    for _ in range(warmup):
        sess.run(None, feeds)
    print(json.dumps({"ready": True, "version": ort.__version__}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        times = []
        for _ in range(int(cmd[1])):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({"median_ms": statistics.median(times), "min_ms": min(times)}), flush=True)
    print(json.dumps({"peak_growth_mb": (_rss_kb("VmHWM") - base) / 1024}), flush=True)


class Ort:
    def __init__(self, model, d, threads, warmup):
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--ort-worker", model,
                                   os.path.join(d, "inputs"), os.path.join(d, "bind"), str(threads), str(warmup)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("onnxruntime worker exited")
        return json.loads(line)

    def run(self, n):
        self.p.stdin.write(f"run {n}\n")
        self.p.stdin.flush()
        return self._read()

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        r = self._read()
        self.p.wait()
        return r["peak_growth_mb"]


def kiln_round(kiln, frozen, d, threads, runs, warmup):
    """One `kiln bench` process; its peak RSS from wait4."""
    cmd = [kiln, "bench", frozen, "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup), "--json"]
    for k, p in _npys(os.path.join(d, "inputs")).items():
        cmd += ["-i", f"{k}=@{p}"]
    with tempfile.TemporaryFile(mode="w+") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        out = p.stdout.read()
        p.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(err.read().strip()[-400:] or f"kiln bench exited with {p.returncode}")
    r = json.loads(out)
    r["max_rss_mb"] = ru.ru_maxrss / 1024
    return r


def measure(kiln, name, d, frozen, threads, runs, rounds, warmup):
    ort = Ort(os.path.join(d, "model.onnx"), d, threads, warmup)
    k_med, o_med, k = [], [], None
    try:
        for _ in range(rounds):
            k = kiln_round(kiln, frozen, d, threads, runs, warmup)
            k_med.append(k["median_ms"])
            o_med.append(ort.run(runs)["median_ms"])
    finally:
        growth = ort.close()
    km, om = statistics.median(k_med), statistics.median(o_med)
    return {"model": name, "threads": threads, "kiln_ms": km, "ort_ms": om, "kiln_over_ort": km / om,
            "kiln_arena_peak_mb": k["peak_arena_bytes"] / 2**20, "kiln_max_rss_mb": k["max_rss_mb"],
            "ort_peak_growth_mb": growth, "kiln_round_ms": k_med, "ort_round_ms": o_med,
            "ort_version": ort.info.get("version")}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--ort-worker":
        m, inputs, bind, threads, warmup = sys.argv[2:7]
        ort_worker(m, inputs, bind, int(threads), int(warmup))
        return 0
    ap = argparse.ArgumentParser(description="kiln vs onnxruntime latency and memory, interleaved")
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    ap.add_argument("--runs", type=int, default=20, help="timed runs per round (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per engine (default 3)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--only", default="", help="comma-separated names from the default set")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("models", nargs="*", help="ONNX files instead of the default set")
    a = ap.parse_args()
    kiln = os.path.abspath(a.kiln)
    threads = [int(x) for x in a.threads.split(",")]
    if a.models:
        todo = [("file_" + os.path.splitext(os.path.basename(p))[0], p) for p in a.models]
    else:
        names = [n for n in a.only.split(",") if n] or list(DEFAULT_SET)
        bad = [n for n in names if n not in DEFAULT_SET]
        if bad:
            ap.error(f"unknown model(s) {', '.join(bad)}; the set is {', '.join(DEFAULT_SET)}")
        todo = [(n, None) for n in names]
    results, errors = [], []
    if not a.json:
        print(f"load average {os.getloadavg()[0]:.2f} at the start; {a.rounds} rounds x {a.runs} runs, medians")
        print(f"{'model':<22}{'thr':>4}{'kiln ms':>10}{'ort ms':>10}{'kiln/ort':>10}{'arena MB':>10}"
              f"{'kiln RSS':>10}{'ort MB':>9}", flush=True)
    for name, src in todo:
        try:
            d = prepare(name, src)
            frozen = freeze(kiln, d)
        except Exception as e:  # noqa: BLE001 - report and go on with the next model
            errors.append({"model": name, "error": str(e)})
            if not a.json:
                print(f"{name:<22}  error: {str(e)[:200]}", flush=True)
            continue
        for t in threads:
            try:
                r = measure(kiln, name, d, frozen, t, a.runs, a.rounds, a.warmup)
            except Exception as e:  # noqa: BLE001
                errors.append({"model": name, "threads": t, "error": str(e)})
                if not a.json:
                    print(f"{name:<22}{t:>4}  error: {str(e)[:200]}", flush=True)
                continue
            results.append(r)
            if not a.json:
                print(f"{name:<22}{t:>4}{r['kiln_ms']:>10.3f}{r['ort_ms']:>10.3f}{r['kiln_over_ort']:>10.2f}"
                      f"{r['kiln_arena_peak_mb']:>10.2f}{r['kiln_max_rss_mb']:>10.1f}{r['ort_peak_growth_mb']:>9.1f}",
                      flush=True)
    scaling = []
    for name, _ in todo:
        by_t = {r["threads"]: r for r in results if r["model"] == name}
        if 1 in by_t and 2 in by_t:
            k2, o2 = by_t[2]["kiln_ms"] / by_t[1]["kiln_ms"], by_t[2]["ort_ms"] / by_t[1]["ort_ms"]
            scaling.append({"model": name, "kiln_2_over_1": k2, "ort_2_over_1": o2,
                            "kiln_2_slower": k2 > 1.0, "ort_2_slower": o2 > 1.0})
    if a.json:
        print(json.dumps({"load_average": os.getloadavg()[0], "runs": a.runs, "rounds": a.rounds,
                          "results": results, "two_threads_vs_one": scaling, "errors": errors}, indent=1))
    else:
        if scaling:
            print("\n2 threads vs 1 (time at 2 / time at 1; within 3% counts as the same)")

            def word(x):
                return "slower" if x > 1.03 else "faster" if x < 0.97 else "same"
            for s in scaling:
                print(f"  {s['model']:<22} kiln {s['kiln_2_over_1']:.2f} {word(s['kiln_2_over_1']):<7}"
                      f"  ort {s['ort_2_over_1']:.2f} {word(s['ort_2_over_1'])}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
