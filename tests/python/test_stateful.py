"""Stateful streaming: recurrent state carried between calls equals one call
on the whole sequence, and equals PyTorch.

usage: /usr/bin/python3 tests/python/test_stateful.py KILN_BINARY
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

KILN = os.path.abspath(sys.argv[1])
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def kiln(*args):
    return subprocess.run([KILN, *map(str, args)], capture_output=True, text=True, timeout=300)


def save(path, a):
    np.save(path, np.ascontiguousarray(a))


def export_rnn(kind, tmp, layers=1, bidirectional=False, hidden=8, inp=5):
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    rnn = cls(inp, hidden, num_layers=layers, bidirectional=bidirectional).eval()
    d = 2 if bidirectional else 1
    x = torch.randn(6, 3, inp)
    h0 = torch.zeros(layers * d, 3, hidden)
    path = os.path.join(tmp, f"{kind}_{layers}_{int(bidirectional)}.onnx")
    if kind == "lstm":
        args, names, outs = (x, (h0, h0.clone())), ["x", "h0", "c0"], ["y", "hn", "cn"]
    else:
        args, names, outs = (x, h0), ["x", "h0"], ["y", "hn"]
    dyn = {"x": {0: "seq", 1: "batch"}, "y": {0: "seq", 1: "batch"}}
    for n in names[1:] + outs[1:]:
        dyn[n] = {1: "batch"}
    torch.onnx.export(rnn, args, path, opset_version=14, input_names=names, output_names=outs, dynamic_axes=dyn)
    return rnn, path, names, outs


def stream_case(kind, layers, bidirectional, tmp):
    rnn, path, names, outs = export_rnn(kind, tmp, layers, bidirectional)
    d = 2 if bidirectional else 1
    torch.manual_seed(1)
    batch = 2  # differs from the export's batch of 3
    x = torch.randn(40, batch, 5)
    with torch.no_grad():
        ref = rnn(x)
    ref_y = ref[0].numpy()
    ref_h = (ref[1][0] if kind == "lstm" else ref[1]).numpy()
    xp = os.path.join(tmp, "x.npy")
    save(xp, x.numpy())
    states = [a for n, o in zip(names[1:], outs[1:]) for a in ("--state", f"{n}={o}")]
    label = f"{kind} layers={layers} bidirectional={bidirectional}"
    whole_dir = tempfile.mkdtemp(dir=tmp)
    r = kiln("run", path, "-i", f"x=@{xp}", *states, "--out", whole_dir)
    if r.returncode != 0:
        check(f"{label}: one call", False, r.stderr.strip()[-300:])
        return
    whole = np.load(os.path.join(whole_dir, "y.npy"))
    check(f"{label}: one call equals PyTorch", np.allclose(whole, ref_y, atol=1e-5),
          f"max err {np.abs(whole - ref_y).max()}")
    for chunk in (1, 7, 13):
        out = tempfile.mkdtemp(dir=tmp)
        r = kiln("run", path, "-i", f"x=@{xp}", *states, "--chunk-size", chunk, "--out", out)
        if r.returncode != 0:
            check(f"{label}: chunks of {chunk}", False, r.stderr.strip()[-300:])
            continue
        y = np.load(os.path.join(out, "y.npy"))
        hn = np.load(os.path.join(out, "hn.npy"))
        # Bidirectional streaming is not a single call: the reverse direction
        # restarts per chunk, so only forward models must match exactly.
        if bidirectional:
            check(f"{label}: chunks of {chunk} run, shapes right", y.shape == ref_y.shape and hn.shape == ref_h.shape)
        else:
            check(f"{label}: chunks of {chunk} equal one call and PyTorch",
                  np.allclose(y, whole, atol=1e-5) and np.allclose(y, ref_y, atol=1e-5)
                  and np.allclose(hn, ref_h, atol=1e-5),
                  f"max err y {np.abs(y - ref_y).max()} hn {np.abs(hn - ref_h).max()}")


class RunningAverage(torch.nn.Module):
    """The stateful module as people write it: a buffer updated in forward."""

    def __init__(self, n):
        super().__init__()
        self.register_buffer("avg", torch.zeros(n))
        self.register_buffer("count", torch.zeros(1))

    def forward(self, x):
        self.count += 1
        self.avg += (x - self.avg) / self.count
        return x - self.avg


class RunningAverageExplicit(torch.nn.Module):
    """The same with its state explicit, so that export keeps the update."""

    def forward(self, x, avg, count):
        new_count = count + 1
        new_avg = avg + (x - avg) / new_count
        return x - new_avg, new_avg, new_count


def running_average(tmp):
    path = os.path.join(tmp, "runavg.onnx")
    n = 4
    torch.onnx.export(RunningAverageExplicit(), (torch.zeros(n), torch.zeros(n), torch.zeros(1)), path,
                      opset_version=13, input_names=["x", "avg", "count"],
                      output_names=["y", "new_avg", "new_count"])
    torch.manual_seed(3)
    xs = torch.randn(10, n)
    stateful = RunningAverage(n)
    with torch.no_grad():
        ref = torch.stack([stateful(xs[i]) for i in range(10)]).numpy()
    xp = os.path.join(tmp, "xs.npy")
    save(xp, xs.numpy().reshape(10 * n))
    out = tempfile.mkdtemp(dir=tmp)
    r = kiln("run", path, "-i", f"x=@{xp}", "--state", "avg=new_avg", "--state", "count=new_count",
             "--chunk-size", n, "--out", out)
    if r.returncode != 0:
        check("running average streamed over 10 calls", False, r.stderr.strip())
        return path
    y = np.load(os.path.join(out, "y.npy")).reshape(10, n)
    check("running average streamed over 10 calls equals the stateful PyTorch module",
          np.allclose(y, ref, atol=1e-6), f"max err {np.abs(y - ref).max()}")
    avg = np.load(os.path.join(out, "new_avg.npy"))
    check("final state equals the module's buffer", np.allclose(avg, stateful.avg.numpy(), atol=1e-6))
    # Save after 3 chunks, restore, continue.
    st = tempfile.mkdtemp(dir=tmp)
    first = tempfile.mkdtemp(dir=tmp)
    save(os.path.join(tmp, "x3.npy"), xs.numpy()[:3].reshape(-1))
    save(os.path.join(tmp, "x7.npy"), xs.numpy()[3:].reshape(-1))
    r1 = kiln("run", path, "-i", f"x=@{tmp}/x3.npy", "--state", "avg=new_avg", "--state", "count=new_count",
              "--chunk-size", n, "--state-out", st, "--out", first)
    second = tempfile.mkdtemp(dir=tmp)
    r2 = kiln("run", path, "-i", f"x=@{tmp}/x7.npy", "--state", "avg=new_avg", "--state", "count=new_count",
              "--chunk-size", n, "--state-in", st, "--out", second)
    ok = r1.returncode == 0 and r2.returncode == 0
    if ok:
        y2 = np.concatenate([np.load(os.path.join(first, "y.npy")), np.load(os.path.join(second, "y.npy"))])
        ok = np.allclose(y2.reshape(10, n), y, atol=1e-7)
    check("state saved after 3 chunks and restored equals the uninterrupted stream", ok,
          (r1.stderr + r2.stderr).strip())
    return path


def errors(tmp, runavg):
    # A pair whose declared shapes disagree.
    x = helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])
    c = helper.make_node("Constant", [], ["t"], value=helper.make_tensor("v", TensorProto.FLOAT, [3], [1, 2, 3]))
    g = helper.make_graph([c], "g", [x], [y])
    p = os.path.join(tmp, "bad_pair.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), p)
    r = kiln("run", p, "-i", "s=[1,2]", "--state", "s=t")
    check("state pair with different shapes is an error naming both", r.returncode != 0 and "'s'" in r.stderr
          and "'t'" in r.stderr, r.stderr.strip())
    r = kiln("run", runavg, "-i", "x=[1,2,3,4]", "--state", "nope=new_avg")
    check("state input that is not an input", r.returncode != 0 and "nope" in r.stderr, r.stderr.strip())
    r = kiln("run", runavg, "-i", "x=[1,2,3,4]", "--state", "avg=nope")
    check("state output that is not an output", r.returncode != 0 and "nope" in r.stderr, r.stderr.strip())
    r = kiln("run", runavg, "-i", "x=[1,2,3,4]", "--state", "avg=new_avg", "--chunks", "2", "--chunk-axis", "3")
    check("chunk axis out of range", r.returncode != 0 and "axis" in r.stderr, r.stderr.strip())


def first_chunk_model(tmp):
    """Binding the initial state gives a first-chunk model: its output on
    the first chunk equals PyTorch's with zero state, and it no longer takes
    h0/c0."""
    rnn, path, names, outs = export_rnn("lstm", tmp, layers=2)
    zeros = os.path.join(tmp, "zeros.npy")
    save(zeros, np.zeros((2, 1, 8), dtype=np.float32))
    frozen = os.path.join(tmp, "lstm_first.onnx")
    r = kiln("freeze", path, "-o", frozen, "--bind", f"h0=@{zeros}", "--bind", f"c0=@{zeros}", "--dim", "batch=1",
             "--quiet")
    if r.returncode != 0:
        check("frozen initial state gives a first-chunk model", False, r.stderr.strip()[-300:])
        return
    m = onnx.load(frozen)
    onnx.checker.check_model(m, full_check=True)
    torch.manual_seed(5)
    x = torch.randn(7, 1, 5)
    with torch.no_grad():
        ref = rnn(x)[0].numpy()
    xp = os.path.join(tmp, "x_first.npy")
    save(xp, x.numpy())
    out = tempfile.mkdtemp(dir=tmp)
    r = kiln("run", frozen, "-i", f"x=@{xp}", "--out", out)
    ok = r.returncode == 0 and [i.name for i in m.graph.input] == ["x"]
    if ok:
        y = np.load(os.path.join(out, "y.npy"))
        ok = np.allclose(y, ref, atol=1e-5)
    check("frozen initial state gives a first-chunk model equal to PyTorch", ok, r.stderr.strip()[-300:])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        runavg = running_average(tmp)
        errors(tmp, runavg)
        stream_case("lstm", 1, False, tmp)
        stream_case("lstm", 2, False, tmp)
        stream_case("lstm", 1, True, tmp)
        stream_case("gru", 1, False, tmp)
        stream_case("gru", 2, False, tmp)
        first_chunk_model(tmp)
        # --state auto on a single-layer export finds the LSTM's state pairs.
        _, path, _, _ = export_rnn("lstm", tmp)
        r = kiln("info", path)
        check("kiln info lists the LSTM's state pairs", "h0 <- hn" in r.stdout and "c0 <- cn" in r.stdout,
              r.stdout[-400:])
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
