#!/usr/bin/python3
"""Checks kiln's LSTM and GRU at the sizes streaming models use, against PyTorch.

usage: test_rnn_sizes.py KILN_BINARY [--filter SUBSTRING]

torch.nn.LSTM and torch.nn.GRU (hidden 64 and 256, one and two directions)
are exported with torch.onnx.export (opset 14, dynamic sequence and batch
axes) and run by `kiln run` at sequence lengths 1 and 37 and batch 1 and 3,
from random initial states; outputs must match PyTorch within 1e-4 relative
(1e-6 absolute near zero). Some runs use two threads (directions on their
own threads), one model is hidden 512 (a step split across threads), and one
model per operator takes its weights as graph inputs instead of initializers
(so nothing is laid out ahead of the run).

Prints one line per check and closes with 'N passed, N failed'; exits
non-zero on any failure.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx
from onnx import helper, numpy_helper

RTOL, ATOL = 1e-4, 1e-6


class Runner:
    def __init__(self, kiln, workdir):
        self.kiln, self.dir = kiln, workdir
        self.count = self.passed = self.failed = 0

    def run(self, model_path, feeds, threads):
        self.count += 1
        base = os.path.join(self.dir, "run%03d" % self.count)
        os.makedirs(os.path.join(base, "out"))
        cmd = [self.kiln, "run", model_path, "--out", os.path.join(base, "out"), "--threads", str(threads)]
        for k, (name, arr) in enumerate(feeds.items()):
            p = os.path.join(base, "in%d.npy" % k)
            np.save(p, arr)
            cmd += ["-i", "%s=@%s" % (name, p)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            return None, (r.stderr.strip() or r.stdout.strip() or "exit %d" % r.returncode)
        outs = {}
        for f in os.listdir(os.path.join(base, "out")):
            outs[f[:-4]] = np.load(os.path.join(base, "out", f))
        return outs, None

    def report(self, name, ok, msg=""):
        if ok:
            self.passed += 1
            print("PASS %s" % name)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, msg))
        sys.stdout.flush()

    def compare(self, name, got, want):
        for k, w in want.items():
            g = got.get(k)
            if g is None:
                return self.report(name, False, "missing output %s" % k)
            if g.shape != w.shape:
                return self.report(name, False, "%s shape %s, expected %s" % (k, g.shape, w.shape))
            err = np.abs(g.astype(np.float64) - w.astype(np.float64))
            bound = RTOL * np.abs(w.astype(np.float64)) + ATOL
            if not np.all(err <= bound):
                i = np.unravel_index(np.argmax(err - bound), err.shape)
                return self.report(name, False, "%s%s = %.8g, expected %.8g" % (k, list(i), g[i], w[i]))
        self.report(name, True)


def weights_as_inputs(path, out_path):
    """The model with every initializer of a recurrent node turned into a
    graph input; returns the arrays to feed."""
    m = onnx.load(path)
    rec = [n for n in m.graph.node if n.op_type in ("LSTM", "GRU")]
    names = {i for n in rec for i in n.input}
    feeds = {}
    keep = []
    for t in m.graph.initializer:
        if t.name in names:
            feeds[t.name] = numpy_helper.to_array(t)
            m.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            keep.append(t)
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    onnx.save(m, out_path)
    return feeds


def main():
    import torch

    kiln = sys.argv[1]
    filt = sys.argv[sys.argv.index("--filter") + 1] if "--filter" in sys.argv else None
    r = Runner(kiln, tempfile.mkdtemp(prefix="kiln_rnn_sizes_"))
    torch.manual_seed(0)

    class Wrap(torch.nn.Module):
        def __init__(self, m, lstm):
            super().__init__()
            self.m, self.lstm = m, lstm

        def forward(self, x, h0, c0=None):
            if self.lstm:
                y, (hn, cn) = self.m(x, (h0, c0))
                return y, hn, cn
            y, hn = self.m(x, h0)
            return y, hn

    configs = []
    for cls in (torch.nn.LSTM, torch.nn.GRU):
        for hidden, inp in ((64, 40), (256, 257)):
            for bidir in (False, True):
                configs.append((cls, hidden, inp, bidir, [(s, b) for s in (1, 37) for b in (1, 3)]))
    configs.append((torch.nn.LSTM, 512, 96, False, [(1, 1), (9, 1), (5, 3)]))

    for cls, hidden, inp, bidir, shapes in configs:
        lstm = cls is torch.nn.LSTM
        tag = "%s_h%d_i%d%s" % ("lstm" if lstm else "gru", hidden, inp, "_bidir" if bidir else "")
        if filt and filt not in tag:
            continue
        m = Wrap(cls(input_size=inp, hidden_size=hidden, bidirectional=bidir), lstm).eval()
        nd = 2 if bidir else 1
        in_names = ["x", "h0"] + (["c0"] if lstm else [])
        out_names = ["y", "hn"] + (["cn"] if lstm else [])

        def make(seq, batch):
            st = [torch.randn(nd, batch, hidden) * 0.5 for _ in range(2 if lstm else 1)]
            return (torch.randn(seq, batch, inp), *st)

        path = os.path.join(r.dir, tag + ".onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, make(4, 2), path, opset_version=14, input_names=in_names, output_names=out_names,
                              dynamic_axes={"x": {0: "seq", 1: "batch"}, "h0": {1: "batch"}, "c0": {1: "batch"},
                                            "y": {0: "seq", 2: "batch"}, "hn": {1: "batch"}, "cn": {1: "batch"}})
        dyn_path = os.path.join(r.dir, tag + "_weights_in.onnx")
        dyn_feeds = weights_as_inputs(path, dyn_path)
        for k, (seq, batch) in enumerate(shapes):
            args = make(seq, batch)
            with torch.no_grad():
                want = dict(zip(out_names, [t.numpy() for t in m(*args)]))
            feeds = {n: a.numpy() for n, a in zip(in_names, args)}
            threads = 2 if (k % 2 == 1 or hidden >= 512) else 1
            name = "%s seq %d batch %d threads %d" % (tag, seq, batch, threads)
            outs, err = r.run(path, feeds, threads)
            if err:
                r.report(name, False, err.splitlines()[-1])
            else:
                r.compare(name, outs, want)
            if hidden == 64 and not bidir and seq == 37:
                name = "%s seq %d batch %d, weights as inputs" % (tag, seq, batch)
                outs, err = r.run(dyn_path, dict(feeds, **dyn_feeds), 1)
                if err:
                    r.report(name, False, err.splitlines()[-1])
                else:
                    r.compare(name, outs, want)

    print("%d passed, %d failed" % (r.passed, r.failed))
    if r.failed:
        print("models and inputs kept in %s" % r.dir)
    else:
        shutil.rmtree(r.dir, ignore_errors=True)
    sys.exit(1 if r.failed else 0)


if __name__ == "__main__":
    main()
