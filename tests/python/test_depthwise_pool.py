"""Depthwise Conv and global pooling against onnxruntime (and numpy in
float64 for the pooled means).

Depthwise: group == C (channel multiplier 1 or 2), 1-D and 2-D, kernels
1..7 square and 1x5 / 5x1, strides 1..3 (per axis), dilations 1..2, pads
zero / symmetric / asymmetric / auto_pad SAME_UPPER, SAME_LOWER, VALID,
widths 1, 7, 13, 31, 112, with and without bias, alone or followed by a
Relu or Clip (which kiln fuses into the Conv). Every (kernel, stride) pair
gets several random draws of the rest; all cases are branches of a few
models, run once by `kiln run` and once by onnxruntime.

Global pooling: GlobalAveragePool, GlobalMaxPool, ReduceMean / ReduceMax over
the trailing axes (attribute axes at opset 13, input axes at opset 18,
keepdims 0 and 1) on shapes from 1x1 to 112x112, plus reductions that are
not over trailing axes (another code path) for contrast.

Tolerance: |kiln - ort| <= 1e-5 * (|ort| + max |ort| of that output): a sum
of 49 products can be near zero, where only the output's scale is a
meaningful reference.

usage: test_depthwise_pool.py KILN [--threads N]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402

KILN = sys.argv[1]
THREADS = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "2"
TMP = tempfile.mkdtemp(prefix="kiln-dwpool-")
tally = Tally("depthwise_pool")

KERNELS = [(k, k) for k in range(1, 8)] + [(1, 5), (5, 1)]
SIZES = [1, 7, 13, 31, 112]
PADS = ["zero", "sym", "asym", "SAME_UPPER", "SAME_LOWER", "VALID"]
ACTS = [None, "relu", "clip", "clip_max"]


def out_len(n, k, s, d, pb, pe):
    ek = (k - 1) * d + 1
    return (n + pb + pe - ek) // s + 1 if n + pb + pe >= ek else 0


def conv_case(rng, kh, kw, s, one_d):
    """One random depthwise case with kernel (kh, kw) and stride s, or None."""
    nsp = 1 if one_d else 2
    ks = [kw] if one_d else [kh, kw]
    strides = [s] * nsp
    if nsp == 2 and rng.random() < 0.25:
        strides[0] = int(rng.integers(1, 4))
    dil = [int(rng.integers(1, 3)) for _ in range(nsp)]
    W = int(rng.choice(SIZES))
    H = int(rng.choice([1, 7, 13, 31])) if rng.random() < 0.8 else 112
    sp = [W] if one_d else [H, W]
    C = int(rng.choice([1, 3, 8]))
    mult = 2 if rng.random() < 0.25 else 1
    N = 2 if rng.random() < 0.3 else 1
    if max(sp) == 112:
        C = min(C, 3)
    pad = str(rng.choice(PADS))
    attrs = dict(group=C, kernel_shape=ks, strides=strides, dilations=dil)
    eks = [(k - 1) * d + 1 for k, d in zip(ks, dil)]
    if pad in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        attrs["auto_pad"] = pad
        if pad == "VALID" and any(n < e for n, e in zip(sp, eks)):
            return None
    else:
        if pad == "zero":
            pb = pe = [0] * nsp
        elif pad == "sym":
            pb = pe = [e // 2 for e in eks]
        else:
            pb = [int(rng.integers(0, e)) for e in eks]
            pe = [int(rng.integers(0, e)) for e in eks]
        if any(out_len(n, k, st, d, b, e) < 1 for n, k, st, d, b, e in zip(sp, ks, strides, dil, pb, pe)):
            return None
        attrs["pads"] = list(pb) + list(pe)
    return dict(x_shape=[N, C] + sp, w_shape=[C * mult, 1] + ks, attrs=attrs, bias=rng.random() < 0.5,
                act=ACTS[int(rng.integers(0, len(ACTS)))], desc="k%s s%s d%s %s x%s mult%d" % (
                    ks, strides, dil, pad, [N, C] + sp, mult))


def build_conv_model(cases, rng):
    nodes, inputs, outputs, inits, feeds = [], [], [], [], {}
    inits.append(nh.from_array(np.array(-0.5, np.float32), "clip_lo"))
    inits.append(nh.from_array(np.array(0.7, np.float32), "clip_hi"))
    for i, c in enumerate(cases):
        x = "x%d" % i
        feeds[x] = rng.uniform(-1, 1, c["x_shape"]).astype(np.float32)
        inputs.append(h.make_tensor_value_info(x, T.FLOAT, c["x_shape"]))
        inits.append(nh.from_array(rng.uniform(-1, 1, c["w_shape"]).astype(np.float32), "w%d" % i))
        ins = [x, "w%d" % i]
        if c["bias"]:
            inits.append(nh.from_array(rng.uniform(-1, 1, [c["w_shape"][0]]).astype(np.float32), "b%d" % i))
            ins.append("b%d" % i)
        y = "y%d" % i
        conv_out = y if c["act"] is None else "c%d" % i
        nodes.append(h.make_node("Conv", ins, [conv_out], **c["attrs"]))
        if c["act"] == "relu":
            nodes.append(h.make_node("Relu", [conv_out], [y]))
        elif c["act"] == "clip":
            nodes.append(h.make_node("Clip", [conv_out, "clip_lo", "clip_hi"], [y]))
        elif c["act"] == "clip_max":
            nodes.append(h.make_node("Clip", [conv_out, "", "clip_hi"], [y]))
        outputs.append(h.make_tensor_value_info(y, T.FLOAT, None))
    g = h.make_graph(nodes, "dw", inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m, feeds


def same_pads_for_ort(m):
    """onnxruntime refuses auto_pad SAME_* with dilations > 1: its copy of
    the model gets the pads the ONNX spec gives those (the extra one at the
    end for SAME_UPPER, at the beginning for SAME_LOWER)."""
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m2.graph.input}
    for n in m2.graph.node:
        at = {a.name: h.get_attribute_value(a) for a in n.attribute}
        ap = at.get("auto_pad", b"NOTSET")
        if n.op_type != "Conv" or ap not in (b"SAME_UPPER", b"SAME_LOWER") or max(at["dilations"]) == 1:
            continue
        sp = shapes[n.input[0]][2:]
        pb, pe = [], []
        for d, (size, k, s, dil) in enumerate(zip(sp, at["kernel_shape"], at["strides"], at["dilations"])):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * dil + 1 - size)
            small, big = total // 2, total - total // 2
            pb.append(small if ap == b"SAME_UPPER" else big)
            pe.append(total - pb[-1])
        keep = [a for a in n.attribute if a.name != "auto_pad"]
        del n.attribute[:]
        n.attribute.extend(keep)
        n.attribute.append(h.make_attribute("pads", pb + pe))
    return m2


def run_both(m, feeds, name):
    path = os.path.join(TMP, name + ".onnx")
    onnx.save(m, path)
    ort_path = os.path.join(TMP, name + "_ort.onnx")
    onnx.save(same_pads_for_ort(m), ort_path)
    args = []
    for k, v in feeds.items():
        p = os.path.join(TMP, "%s_%s.npy" % (name, k))
        np.save(p, v)
        args += ["-i", "%s=@%s" % (k, p)]
    out = os.path.join(TMP, name + "_out")
    os.makedirs(out, exist_ok=True)
    r = subprocess.run([KILN, "run", path, *args, "--out", out, "--threads", THREADS], capture_output=True,
                       text=True)
    if not tally.ok(r.returncode == 0, name + ": kiln run", r.stderr[-2000:]):
        return None, None
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(ort_path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in m.graph.output]
    ref = dict(zip(names, sess.run(names, feeds)))
    got = {n: np.load(os.path.join(out, n + ".npy")) for n in names}
    return got, ref


def close(what, got, ref, rtol=1e-5):
    if not tally.ok(got.shape == ref.shape, what, "shape %s, expected %s" % (got.shape, ref.shape)):
        return
    if ref.size == 0:
        tally.ok(True, what)
        return
    scale = float(np.max(np.abs(ref)))
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bad = err > rtol * (np.abs(ref) + scale)
    tally.ok(not bad.any(), what, "max error %.3g at %s (got %r, expected %r), scale %.3g" % (
        err.max(), np.unravel_index(int(err.argmax()), err.shape), got.flat[int(err.argmax())],
        ref.flat[int(err.argmax())], scale))


def test_depthwise():
    rng = np.random.default_rng(2024)
    cases = []
    for kh, kw in KERNELS:
        for s in (1, 2, 3):
            n = 0
            while n < 7:
                c = conv_case(rng, kh, kw, s, one_d=False)
                if c:
                    cases.append(c)
                    n += 1
            if kh == kw or kh == 1:  # 1-D: the width's kernel
                n = 0
                while n < 2:
                    c = conv_case(rng, kh, kw, s, one_d=True)
                    if c:
                        cases.append(c)
                        n += 1
    # the mobilenet shapes, exactly
    for ks, s, hw, ch in (([5, 5], 1, 14, 40), ([5, 5], 2, 28, 16), ([3, 3], 2, 112, 16), ([5, 5], 1, 7, 24),
                          ([5, 5], 2, 14, 12), ([3, 3], 1, 56, 8)):
        cases.append(dict(x_shape=[1, ch, hw, hw], w_shape=[ch, 1] + ks, bias=True, act="relu",
                          attrs=dict(group=ch, kernel_shape=ks, strides=[s, s], pads=[ks[0] // 2] * 4),
                          desc="mobilenet k%s s%d %d" % (ks, s, hw)))
    for start in range(0, len(cases), 80):
        chunk = cases[start:start + 80]
        m, feeds = build_conv_model(chunk, rng)
        got, ref = run_both(m, feeds, "dw%d" % start)
        if got is None:
            continue
        for i, c in enumerate(chunk):
            close("depthwise %s bias=%s act=%s" % (c["desc"], c["bias"], c["act"]), got["y%d" % i],
                  ref["y%d" % i])
    print("%d depthwise cases" % len(cases), flush=True)


POOL_SHAPES = [[1, 1, 1, 1], [2, 3, 1, 1], [1, 8, 7, 7], [2, 16, 112, 112], [1, 5, 13, 31], [1, 4, 1, 112],
               [3, 2, 57], [1, 2, 3, 4, 5], [1, 1, 1000, 33]]


def pool_model(opset):
    rng = np.random.default_rng(7 + opset)
    nodes, inputs, outputs, inits, feeds, means = [], [], [], [], {}, {}
    for i, shp in enumerate(POOL_SHAPES):
        x = "x%d" % i
        # positive with an offset: a mean's relative error is meaningful
        feeds[x] = (rng.uniform(0, 1, shp) + (0.5 if i % 2 else -0.25)).astype(np.float32)
        inputs.append(h.make_tensor_value_info(x, T.FLOAT, shp))
        r = len(shp)
        trail = list(range(2, r))
        ops = [("GlobalAveragePool", {}, None, "mean"), ("GlobalMaxPool", {}, None, "max")]
        for kd in (0, 1):
            ops.append(("ReduceMean", {"keepdims": kd}, trail, "mean"))
            ops.append(("ReduceMax", {"keepdims": kd}, trail, "max"))
        ops.append(("ReduceMean", {"keepdims": 1}, [r - 1], "mean"))
        ops.append(("ReduceMean", {"keepdims": 0}, [-2, -1] if r > 3 else [-1], "mean"))
        ops.append(("ReduceMax", {"keepdims": 1}, list(range(1, r)), "max"))
        ops.append(("ReduceMean", {"keepdims": 1}, [1], "mean"))  # not trailing
        ops.append(("ReduceMax", {"keepdims": 0}, [0, r - 1], "max"))  # not one trailing run
        for j, (op, at, axes, kind) in enumerate(ops):
            y = "y%d_%d" % (i, j)
            ins = [x]
            at = dict(at)
            if axes is not None:
                if opset >= 18:
                    name = "axes%d_%d" % (i, j)
                    inits.append(nh.from_array(np.array(axes, np.int64), name))
                    ins.append(name)
                else:
                    at["axes"] = axes
            nodes.append(h.make_node(op, ins, [y], **at))
            outputs.append(h.make_tensor_value_info(y, T.FLOAT, None))
            ax = tuple(trail) if axes is None else tuple(a % r for a in axes)
            keep = True if axes is None else bool(at.get("keepdims", 1))
            xd = feeds[x].astype(np.float64)
            means[y] = (xd.mean(axis=ax, keepdims=keep) if kind == "mean" else xd.max(axis=ax, keepdims=keep),
                        "%s %s axes=%s keepdims=%d (opset %d)" % (op, shp, axes, keep, opset))
    g = h.make_graph(nodes, "pool", inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    return m, feeds, means


def test_pool():
    for opset in (13, 18):
        m, feeds, ref64 = pool_model(opset)
        got, ref = run_both(m, feeds, "pool%d" % opset)
        if got is None:
            continue
        for y, (r64, what) in ref64.items():
            close(what + " vs onnxruntime", got[y], ref[y])
            # float32 sums over 112x112 stay within ~1e-6 of the exact mean
            close(what + " vs float64", got[y], r64.astype(np.float32), rtol=2e-6)


def main():
    test_depthwise()
    test_pool()
    tally.finish()


if __name__ == "__main__":
    main()
