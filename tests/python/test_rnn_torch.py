#!/usr/bin/python3
"""Checks kiln's LSTM, GRU and RNN operators.

usage: test_rnn_torch.py KILN_BINARY [--filter SUBSTRING] [--keep]

Part 1 exports torch.nn.LSTM / GRU / RNN models with torch.onnx.export
(opset 14, dynamic sequence axis), runs them with `kiln run` at a sequence
length different from the exported one, and compares with PyTorch (1e-4).
For single-layer models it also checks the recurrent node alone (the graph
cut right after it), so the operator is tested even where the surrounding
ops (Constant, Squeeze, Slice, Concat, ...) are missing.

Part 2 builds single-node ONNX models covering what torch does not export
(reverse and bidirectional with sequence_lens, every activation with alpha
and beta, clip, input_forget, peepholes, layout 1, linear_before_reset,
float64, opset 7, optional outputs, threads) and compares them with an
independent numpy implementation of the ONNX equations. Invalid models must
be refused with a clear error.

Prints one line per check and closes with 'N passed, N failed'; exits
non-zero on any failure.
"""
import os
import subprocess
import sys
import tempfile
import warnings
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper

TOL = 1e-4


class Runner:
    def __init__(self, kiln, workdir):
        self.kiln = kiln
        self.dir = workdir
        self.count = 0
        self.passed = 0
        self.failed = 0

    def _path(self, name):
        self.count += 1
        return os.path.join(self.dir, "%03d_%s" % (self.count, name))

    def run(self, model, inputs, threads=None):
        """Runs `model` (ModelProto) on `inputs` (name -> array); returns
        (outputs dict, None) or (None, error text)."""
        base = self._path("case")
        os.makedirs(base, exist_ok=True)
        mpath = os.path.join(base, "model.onnx")
        onnx.save(model, mpath)
        os.makedirs(os.path.join(base, "out"), exist_ok=True)
        cmd = [self.kiln, "run", mpath, "--out", os.path.join(base, "out")]
        if threads:
            cmd += ["--threads", str(threads)]
        for k, (name, arr) in enumerate(inputs.items()):
            p = os.path.join(base, "in_%d.npy" % k)
            np.save(p, arr)
            cmd += ["-i", "%s=@%s" % (name, p)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            return None, (r.stderr.strip() or r.stdout.strip() or "exit %d" % r.returncode)
        outs = {}
        for o in model.graph.output:
            p = os.path.join(base, "out", o.name.replace("/", "_") + ".npy")
            if not os.path.exists(p):
                return None, "output %s was not written" % o.name
            outs[o.name] = np.load(p)
        return outs, None

    def report(self, name, ok, msg=""):
        if ok:
            self.passed += 1
            print("PASS %s" % name)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, msg))
        sys.stdout.flush()

    def compare(self, name, got, want, tol=TOL):
        """got, want: dicts of arrays (want keys are checked)."""
        for k, w in want.items():
            g = got.get(k)
            if g is None:
                return self.report(name, False, "missing output %s" % k)
            if g.shape != w.shape:
                return self.report(name, False, "%s shape %s, expected %s" % (k, g.shape, w.shape))
            if g.dtype != w.dtype:
                return self.report(name, False, "%s dtype %s, expected %s" % (k, g.dtype, w.dtype))
            d = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) if w.size else 0.0
            if not d <= tol:
                return self.report(name, False, "%s differs by %g" % (k, d))
        self.report(name, True)


# ---------------------------------------------------------------- part 1: torch

def torch_cases():
    import torch
    # name, class, kwargs
    return [
        ("lstm_1layer", torch.nn.LSTM, dict(input_size=5, hidden_size=7, num_layers=1)),
        ("lstm_1layer_bidir", torch.nn.LSTM, dict(input_size=5, hidden_size=7, num_layers=1, bidirectional=True)),
        ("lstm_1layer_batch_first", torch.nn.LSTM, dict(input_size=5, hidden_size=6, batch_first=True)),
        ("lstm_1layer_nobias", torch.nn.LSTM, dict(input_size=4, hidden_size=6, bias=False)),
        ("lstm_2layer", torch.nn.LSTM, dict(input_size=5, hidden_size=7, num_layers=2)),
        ("lstm_2layer_bidir", torch.nn.LSTM, dict(input_size=5, hidden_size=7, num_layers=2, bidirectional=True)),
        ("gru_1layer", torch.nn.GRU, dict(input_size=5, hidden_size=7)),
        ("gru_1layer_bidir", torch.nn.GRU, dict(input_size=5, hidden_size=7, bidirectional=True)),
        ("gru_2layer", torch.nn.GRU, dict(input_size=5, hidden_size=6, num_layers=2)),
        ("rnn_tanh_1layer", torch.nn.RNN, dict(input_size=5, hidden_size=7)),
        ("rnn_relu_1layer", torch.nn.RNN, dict(input_size=5, hidden_size=7, nonlinearity="relu")),
        ("rnn_tanh_1layer_bidir", torch.nn.RNN, dict(input_size=5, hidden_size=7, bidirectional=True)),
        ("rnn_2layer", torch.nn.RNN, dict(input_size=5, hidden_size=6, num_layers=2)),
    ]


def run_torch(r, filt):
    import torch

    class Wrap(torch.nn.Module):
        def __init__(self, m, lstm):
            super().__init__()
            self.m = m
            self.lstm = lstm

        def forward(self, x, h0, c0=None):
            if self.lstm:
                y, (hn, cn) = self.m(x, (h0, c0))
                return y, hn, cn
            y, hn = self.m(x, h0)
            return y, hn

    torch.manual_seed(0)
    for name, cls, kw in torch_cases():
        name = "torch/" + name
        if filt and filt not in name:
            continue
        lstm = cls is torch.nn.LSTM
        m = Wrap(cls(**kw), lstm).eval()
        bf = kw.get("batch_first", False)
        nd = 2 if kw.get("bidirectional") else 1
        layers = kw.get("num_layers", 1)
        H, I, batch = kw["hidden_size"], kw["input_size"], 3

        def make(seq):
            x = torch.randn(batch, seq, I) if bf else torch.randn(seq, batch, I)
            st = [torch.randn(layers * nd, batch, H)]
            if lstm:
                st.append(torch.randn(layers * nd, batch, H))
            return (x, *st)

        in_names = ["x", "h0"] + (["c0"] if lstm else [])
        out_names = ["y", "hn"] + (["cn"] if lstm else [])
        seq_axis = 1 if bf else 0
        path = os.path.join(r.dir, name.replace("/", "_") + ".onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, make(4), path, opset_version=14, input_names=in_names, output_names=out_names,
                              dynamic_axes={"x": {seq_axis: "seq"}, "y": {seq_axis: "seq"}})
        model = onnx.load(path)
        args = make(6)  # another length than the exported one: the axis is dynamic
        with torch.no_grad():
            want = [t.numpy() for t in m(*args)]
        feeds = {n: a.numpy() for n, a in zip(in_names, args)}

        outs, err = r.run(model, feeds)
        if err:
            r.report(name + " (full model)", False, err.splitlines()[-1])
        else:
            r.compare(name + " (full model)", outs, dict(zip(out_names, want)))

        # The recurrent node alone: cut the graph after it.
        if layers == 1:
            rnn_nodes = [n for n in model.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
            if len(rnn_nodes) != 1:
                r.report(name + " (node)", False, "expected one recurrent node in the export")
                continue
            node = rnn_nodes[0]
            node_outs = ["node_" + o for o in ("Y", "Y_h", "Y_c")[:len(node.output)]]
            cut = onnx.ModelProto()
            cut.CopyFrom(model)
            g = cut.graph
            del g.node[:]
            n2 = g.node.add()
            n2.CopyFrom(node)
            del n2.output[:]
            n2.output.extend(node_outs)
            del g.output[:]
            elem = TensorProto.FLOAT
            g.output.extend([helper.make_tensor_value_info(o, elem, None) for o in node_outs])
            used = set(node.input)
            keep_init = [t for t in g.initializer if t.name in used]
            del g.initializer[:]
            g.initializer.extend(keep_init)
            keep_in = [v for v in g.input if v.name in used]
            del g.input[:]
            g.input.extend(keep_in)
            node_feeds = {k: v for k, v in feeds.items() if k in used}
            # Torch's outputs in the node's layout: Y [seq, nd, batch, H]
            # (batch_first exports still use layout 0 around a Transpose).
            y = want[0]
            if bf:
                y = y.transpose(1, 0, 2)
            seq = y.shape[0]
            y = y.reshape(seq, batch, nd, H).transpose(0, 2, 1, 3)
            wnode = {"node_Y": np.ascontiguousarray(y), "node_Y_h": want[1]}
            if lstm:
                wnode["node_Y_c"] = want[2]
            if node.input[0] != "x":
                # batch_first: X reaches the node through a Transpose; feed
                # the node's X directly, sequence-major.
                xt = np.ascontiguousarray(feeds["x"].transpose(1, 0, 2))
                node_feeds[node.input[0]] = xt
                g.input.extend([helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, xt.shape)])
            init_names = {t.name for t in g.initializer}
            missing = [i for i in node.input if i and i not in node_feeds and i not in init_names]
            if missing:
                r.report(name + " (node)", False, "node inputs computed by other ops: %s" % missing)
                continue
            outs, err = r.run(cut, node_feeds)
            if err:
                r.report(name + " (node)", False, err.splitlines()[-1])
            else:
                r.compare(name + " (node)", outs, {k: v for k, v in wnode.items() if k in node_outs})


# ------------------------------------------------------- part 2: numpy reference

def act_fn(name, alpha, beta):
    n = name.lower()
    if n == "relu":
        return lambda x: np.maximum(x, 0)
    if n == "tanh":
        return np.tanh
    if n == "sigmoid":
        return lambda x: 1 / (1 + np.exp(-x))
    if n == "affine":
        return lambda x: alpha * x + beta
    if n == "leakyrelu":
        return lambda x: np.where(x >= 0, x, alpha * x)
    if n == "thresholdedrelu":
        return lambda x: np.where(x >= alpha, x, 0)
    if n == "scaledtanh":
        return lambda x: alpha * np.tanh(beta * x)
    if n == "hardsigmoid":
        return lambda x: np.clip(alpha * x + beta, 0, 1)
    if n == "elu":
        return lambda x: np.where(x >= 0, x, alpha * (np.exp(x) - 1))
    if n == "softsign":
        return lambda x: x / (1 + np.abs(x))
    if n == "softplus":
        return lambda x: np.log(1 + np.exp(x))
    raise ValueError(name)


DEFAULT_AB = {"affine": (1.0, 0.0), "leakyrelu": (0.01, 0), "thresholdedrelu": (1.0, 0), "scaledtanh": (1.0, 1.0),
              "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0)}
N_AB = {"affine": 2, "leakyrelu": 1, "thresholdedrelu": 1, "scaledtanh": 2, "hardsigmoid": 2, "elu": 1}


def reference(kind, X, W, R, B=None, seq_lens=None, h0=None, c0=None, P=None, direction="forward",
              activations=None, alphas=None, betas=None, clip=None, input_forget=0, lbr=0, layout=0):
    """The ONNX equations, step by step in float64."""
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
    NA = {"RNN": 1, "GRU": 2, "LSTM": 3}[kind]
    nd = 2 if direction == "bidirectional" else 1
    X = X.astype(np.float64)
    if layout:
        X = X.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    seq, batch, _ = X.shape
    H = R.shape[-1]
    if activations is None:
        activations = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}[kind] * nd
    if len(activations) == NA and nd == 2:
        activations = list(activations) * 2  # one set given for both directions
    alphas = list(alphas or [])
    betas = list(betas or [])
    fns = []
    for a in activations[:NA * nd]:
        lo = a.lower()
        al, be = DEFAULT_AB.get(lo, (0, 0))
        if N_AB.get(lo, 0) >= 1 and alphas:
            al = alphas.pop(0)
        if N_AB.get(lo, 0) >= 2 and betas:
            be = betas.pop(0)
        fns.append(act_fn(a, np.float64(al), np.float64(be)))
    lens = np.full(batch, seq) if seq_lens is None else seq_lens
    cl = (lambda v: np.clip(v, -clip, clip)) if clip else (lambda v: v)
    Y = np.zeros((seq, nd, batch, H))
    Yh = np.zeros((nd, batch, H))
    Yc = np.zeros((nd, batch, H))
    for d in range(nd):
        f = fns[d * NA:(d + 1) * NA]
        w, rr = W[d].astype(np.float64), R[d].astype(np.float64)
        b = np.zeros(2 * G * H) if B is None else B[d].astype(np.float64)
        wb, rb = b[:G * H], b[G * H:]
        p = np.zeros(3 * H) if P is None else P[d].astype(np.float64)
        rev = d == 1 or direction == "reverse"
        for bi in range(batch):
            h = np.zeros(H) if h0 is None else h0[d, bi].astype(np.float64)
            c = np.zeros(H) if c0 is None else c0[d, bi].astype(np.float64)
            L = int(lens[bi])
            order = range(L - 1, -1, -1) if rev else range(L)
            for t in order:
                x = X[t, bi]
                if kind == "RNN":
                    h = f[0](cl(w @ x + rr @ h + wb + rb))
                elif kind == "GRU":
                    xz, xr, xh = np.split(w @ x + wb, 3)
                    hz, hr, hh = np.split(rr @ h, 3)
                    rbz, rbr, rbh = np.split(rb, 3)
                    z = f[0](cl(xz + hz + rbz))
                    r_ = f[0](cl(xr + hr + rbr))
                    if lbr:
                        hc = f[1](cl(xh + r_ * (hh + rbh)))
                    else:
                        hc = f[1](cl(xh + rr[2 * H:] @ (r_ * h) + rbh))
                    h = (1 - z) * hc + z * h
                else:
                    gi, go, gf, gc = np.split(w @ x + rr @ h + wb + rb, 4)
                    pi, po, pf = np.split(p, 3)
                    i = f[0](cl(gi + pi * c))
                    fg = 1 - i if input_forget else f[0](cl(gf + pf * c))
                    cc = f[1](cl(gc))
                    c = fg * c + i * cc
                    o = f[0](cl(go + po * c))
                    h = o * f[2](c)
                Y[t, d, bi] = h
            Yh[d, bi] = h
            Yc[d, bi] = c
    if layout:
        Y = Y.transpose(2, 0, 1, 3)
        Yh = Yh.transpose(1, 0, 2)
        Yc = Yc.transpose(1, 0, 2)
    return Y, Yh, Yc


def make_node_model(kind, inputs, outputs, attrs, opset, dtype):
    """inputs: list of (name, array or None); outputs: list of names ('' = omitted)."""
    names = [n if a is not None else "" for n, a in inputs]
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(kind, names, outputs, **attrs)
    vi = []
    for n, a in inputs:
        if a is not None:
            et = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
                  np.dtype(np.float16): TensorProto.FLOAT16,
                  np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int64): TensorProto.INT64}[a.dtype]
            vi.append(helper.make_tensor_value_info(n, et, a.shape))
    et = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE, np.float16: TensorProto.FLOAT16}[dtype]
    outs = [helper.make_tensor_value_info(o, et, None) for o in outputs if o]
    g = helper.make_graph([node], "rnn_case", vi, outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def spec_case(r, name, kind, seq=5, batch=3, I=4, H=5, direction="forward", bias=True, lens=None, h0=True, c0=True,
              peep=False, layout=0, dtype=np.float32, opset=14, outputs=("Y", "Y_h", "Y_c"), threads=None,
              rng=None, **attrs):
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
    nd = 2 if direction == "bidirectional" else 1
    rng = rng or np.random.default_rng(zlib.crc32(name.encode()))
    X = rng.standard_normal((batch, seq, I) if layout else (seq, batch, I)).astype(dtype)
    W = (rng.standard_normal((nd, G * H, I)) * 0.5).astype(dtype)
    R = (rng.standard_normal((nd, G * H, H)) * 0.5).astype(dtype)
    B = (rng.standard_normal((nd, 2 * G * H)) * 0.5).astype(dtype) if bias else None
    SL = np.array(lens, dtype=np.int32) if lens is not None else None
    sshape = (batch, nd, H) if layout else (nd, batch, H)
    H0 = rng.standard_normal(sshape).astype(dtype) if h0 else None
    C0 = rng.standard_normal(sshape).astype(dtype) if (c0 and kind == "LSTM") else None
    P = (rng.standard_normal((nd, 3 * H)) * 0.5).astype(dtype) if (peep and kind == "LSTM") else None
    ins = [("X", X), ("W", W), ("R", R), ("B", B), ("sequence_lens", SL), ("initial_h", H0)]
    if kind == "LSTM":
        ins += [("initial_c", C0), ("P", P)]
    a = dict(hidden_size=H, **attrs)
    if direction != "forward":
        a["direction"] = direction
    if layout:
        a["layout"] = layout
    outs = [o if o else "" for o in outputs]
    if kind != "LSTM":
        outs = outs[:2]
    while outs and outs[-1] == "":
        outs.pop()
    model = make_node_model(kind, ins, outs, a, opset, dtype)
    Y, Yh, Yc = reference(kind, X, W, R, B, SL, H0, C0, P, direction, attrs.get("activations"),
                          attrs.get("activation_alpha"), attrs.get("activation_beta"), attrs.get("clip"),
                          attrs.get("input_forget", 0), attrs.get("linear_before_reset", 0), layout)
    want = {k: v.astype(dtype) for k, v in zip(("Y", "Y_h", "Y_c"), (Y, Yh, Yc)) if k in outs}
    feeds = {n: v for n, v in ins if v is not None}
    got, err = r.run(model, feeds, threads)
    if err:
        return r.report(name, False, err.splitlines()[-1])
    r.compare(name, got, want, 2e-3 if dtype == np.float16 else TOL)


def error_case(r, name, kind, feeds_fn, attrs, expect):
    """A model kiln must refuse with an error mentioning `expect`."""
    ins = feeds_fn()
    model = make_node_model(kind, ins, ["Y", "Y_h"], attrs, 14, np.float32)
    got, err = r.run(model, {n: v for n, v in ins if v is not None})
    if err is None:
        return r.report(name, False, "kiln accepted an invalid model")
    if expect.lower() not in err.lower():
        return r.report(name, False, "error does not mention '%s': %s" % (expect, err.splitlines()[-1]))
    r.report(name, True)


def run_spec(r, filt):
    cases = []

    def case(name, kind, **kw):
        cases.append(("spec/" + name, lambda: spec_case(r, "spec/" + name, kind, **kw)))

    for kind in ("RNN", "GRU", "LSTM"):
        k = kind.lower()
        case(k + "_forward", kind)
        case(k + "_reverse", kind, direction="reverse")
        case(k + "_bidir", kind, direction="bidirectional")
        case(k + "_no_bias_no_state", kind, bias=False, h0=False, c0=False)
        case(k + "_seq_lens", kind, lens=[5, 2, 0, 3], batch=4)
        case(k + "_seq_lens_bidir", kind, direction="bidirectional", lens=[1, 5, 0, 4], batch=4)
        case(k + "_seq_lens_reverse_layout1", kind, direction="reverse", lens=[3, 5, 1], layout=1)
        case(k + "_layout1_bidir", kind, direction="bidirectional", layout=1)
        case(k + "_clip", kind, clip=0.7)
        case(k + "_opset7", kind, opset=7, direction="bidirectional")
        case(k + "_float16", kind, dtype=np.float16, direction="bidirectional", lens=[4, 5, 2])
        case(k + "_float64", kind, dtype=np.float64, direction="bidirectional", lens=[4, 5, 2])
        case(k + "_only_Y_h", kind, outputs=("", "Y_h", ""))
        case(k + "_only_Y", kind, outputs=("Y",), direction="bidirectional")
        case(k + "_seq1_batch1", kind, seq=1, batch=1)
        case(k + "_input1_hidden1", kind, I=1, H=1)
        # empty tensors: no steps (final states are the initial ones), no batch, no input, no hidden units
        case(k + "_seq0", kind, seq=0)
        case(k + "_seq0_bidir_lens", kind, seq=0, lens=[0, 0, 0], direction="bidirectional")
        case(k + "_batch0", kind, batch=0)
        case(k + "_input0", kind, I=0)
        case(k + "_hidden0", kind, H=0, direction="bidirectional")
        # bigger: the per-step work is split across threads / directions in parallel
        case(k + "_big_threads2", kind, seq=7, batch=5, I=33, H=150, threads=2, lens=[7, 3, 0, 7, 6])
        case(k + "_big_bidir_threads2", kind, seq=6, batch=3, I=20, H=130, threads=2, direction="bidirectional")
        case(k + "_big_threads1", kind, seq=6, batch=2, I=20, H=130, threads=1, direction="bidirectional")
    case("gru_linear_before_reset", "GRU", linear_before_reset=1)
    case("gru_opset3_linear_before_reset", "GRU", linear_before_reset=1, opset=3)
    case("lstm_opset1", "LSTM", opset=1, peep=True, lens=[5, 1, 3])
    case("rnn_opset6", "RNN", opset=6, direction="bidirectional")
    case("gru_linear_before_reset_bidir_lens", "GRU", linear_before_reset=1, direction="bidirectional",
         lens=[2, 5, 3], layout=1)
    case("gru_linear_before_reset_no_bias", "GRU", linear_before_reset=1, bias=False)
    case("gru_linear_before_reset_big", "GRU", linear_before_reset=1, seq=5, batch=4, I=16, H=160, threads=2)
    case("lstm_peepholes", "LSTM", peep=True)
    case("lstm_peepholes_bidir_lens", "LSTM", peep=True, direction="bidirectional", lens=[5, 0, 3])
    case("lstm_input_forget", "LSTM", input_forget=1)
    case("lstm_input_forget_peep_clip", "LSTM", input_forget=1, peep=True, clip=0.5, direction="reverse")
    case("lstm_only_Y_c", "LSTM", outputs=("", "", "Y_c"))
    # every activation, with and without explicit alpha/beta
    case("lstm_acts_params", "LSTM", direction="bidirectional",
         activations=["HardSigmoid", "ScaledTanh", "Softsign", "Sigmoid", "Elu", "LeakyRelu"],
         activation_alpha=[0.3, 0.9, 0.7, 0.05], activation_beta=[0.4, 1.3])
    case("lstm_acts_defaults", "LSTM", direction="bidirectional",
         activations=["HardSigmoid", "Affine", "ScaledTanh", "Sigmoid", "ThresholdedRelu", "Softplus"])
    case("gru_acts", "GRU", direction="bidirectional",
         activations=["Sigmoid", "Affine", "HardSigmoid", "Relu"], activation_alpha=[0.5, 0.25],
         activation_beta=[0.1, 0.45])
    case("gru_acts_thresholded", "GRU", activations=["Softsign", "ThresholdedRelu"], activation_alpha=[0.2])
    case("rnn_relu", "RNN", activations=["Relu"])
    case("rnn_acts_bidir", "RNN", direction="bidirectional", activations=["LeakyRelu", "Elu"],
         activation_alpha=[0.2, 0.6])
    case("rnn_softplus", "RNN", activations=["Softplus"])
    case("rnn_one_act_for_bidir", "RNN", direction="bidirectional", activations=["Sigmoid"])
    case("lstm_case_insensitive_acts", "LSTM", activations=["sigmoid", "TANH", "tanh"])

    f32 = np.float32

    def base(kind, G, H=3, I=2, seq=2, batch=2, nd=1, lens=None, b_shape=None, w_shape=None):
        def fn():
            return [("X", np.zeros((seq, batch, I), f32)),
                    ("W", np.zeros(w_shape or (nd, G * H, I), f32)),
                    ("R", np.zeros((nd, G * H, H), f32)),
                    ("B", np.zeros(b_shape, f32) if b_shape else None),
                    ("sequence_lens", np.array(lens, np.int32) if lens is not None else None)]
        return fn

    errors = [
        ("err_seq_lens_too_big", "LSTM", base("LSTM", 4, lens=[1, 3]), dict(hidden_size=3), "sequence_lens"),
        ("err_seq_lens_negative", "GRU", base("GRU", 3, lens=[-1, 1]), dict(hidden_size=3), "sequence_lens"),
        ("err_seq_lens_shape", "RNN", base("RNN", 1, lens=[1, 1, 1]), dict(hidden_size=3), "sequence_lens"),
        ("err_hidden_size_mismatch", "LSTM", base("LSTM", 4), dict(hidden_size=4), "W"),
        ("err_w_input_size", "GRU", base("GRU", 3, w_shape=(1, 9, 5)), dict(hidden_size=3), "W"),
        ("err_direction_count", "RNN", base("RNN", 1), dict(hidden_size=3, direction="bidirectional"), "W"),
        ("err_bad_direction", "RNN", base("RNN", 1), dict(hidden_size=3, direction="sideways"), "direction"),
        ("err_b_shape", "LSTM", base("LSTM", 4, b_shape=(1, 12)), dict(hidden_size=3), "B"),
        ("err_activation", "RNN", base("RNN", 1), dict(hidden_size=3, activations=["Gelu"]), "Gelu"),
        ("err_activation_count", "LSTM", base("LSTM", 4), dict(hidden_size=3, activations=["Tanh"]), "activations"),
        ("err_clip", "GRU", base("GRU", 3), dict(hidden_size=3, clip=-1.0), "clip"),
        ("err_layout", "GRU", base("GRU", 3), dict(hidden_size=3, layout=2), "layout"),
    ]
    for n, kind, fn, attrs, expect in errors:
        cases.append(("spec/" + n, (lambda n=n, kind=kind, fn=fn, attrs=attrs, expect=expect:
                                    error_case(r, "spec/" + n, kind, fn, attrs, expect))))
    for name, fn in cases:
        if filt and filt not in name:
            continue
        fn()


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    kiln = os.path.abspath(sys.argv[1])
    filt = None
    keep = "--keep" in sys.argv
    if "--filter" in sys.argv:
        filt = sys.argv[sys.argv.index("--filter") + 1]
    work = tempfile.mkdtemp(prefix="kiln_rnn_")
    r = Runner(kiln, work)
    try:
        run_torch(r, filt)
        run_spec(r, filt)
    finally:
        if not keep:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("files kept in", work)
    print("%d passed, %d failed" % (r.passed, r.failed))
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
