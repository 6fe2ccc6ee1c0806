"""The planner's fusions give onnxruntime's results.

LayerNormalization spelled out as ReduceMean-Sub-Pow-ReduceMean-Add-Sqrt-Div
(with and without the Mul/Add affine tail, axes as attribute and as input,
one and two trailing axes, the square as Pow or Mul, parameters on either
side, float32 and float16), chains that must not be fused (an intermediate
is also a graph output; axes that are not trailing; a non-square Pow), GELU
spelled out with Erf in the TorchScript and the dynamo exporters' forms (and
near misses that must stay as they are), MatMul by a constant matrix plus
a constant bias row (and forms that must not fuse), and a torch TransformerEncoder
exported at opset 13 and frozen. Each model runs on
`kiln run` at 1 and 2 threads against onnxruntime (all optimisations off, so
it computes the graph as written).

usage: test_fusions.py KILN
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

KILN = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="kiln-fusions-")
RNG = np.random.default_rng(7)


def ort_run(path, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def kiln_run(path, feeds, threads):
    args = []
    for k, v in feeds.items():
        np.save(os.path.join(TMP, k + ".npy"), v)
        args += ["-i", "%s=@%s" % (k, os.path.join(TMP, k + ".npy"))]
    out = os.path.join(TMP, "out")
    r = subprocess.run([KILN, "run", path, *args, "--out", out, "--threads", str(threads)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise AssertionError(r.stderr)
    return {f[:-4]: np.load(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".npy")}


def check(name, path, feeds, rtol, atol):
    want = ort_run(path, feeds)
    bad = 0
    for threads in (1, 2):
        got = kiln_run(path, feeds, threads)
        for k, w in want.items():
            g = got[k]
            if g.shape != w.shape or not np.allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
                err = np.max(np.abs(g.astype(np.float64) - w.astype(np.float64))) if g.shape == w.shape else "shape"
                print("FAIL %s output %s at %d threads: max error %s" % (name, k, threads, err))
                bad += 1
    if not bad:
        print("ok   %s" % name)
    return bad


def layernorm_model(name, shape, axes, opset=13, affine=2, square="pow", gamma_first=False, dt=np.float32,
                    extra_output=None, pow_exp=2.0):
    tt = T.FLOAT if dt == np.float32 else T.FLOAT16
    norm = [shape[a] for a in sorted(axes)]
    inits = [nh.from_array(np.array(1e-5 if dt == np.float32 else 1e-3, dt), "eps"),
             nh.from_array(np.array(pow_exp, dt), "two")]
    nodes = []

    def mean(i, o):
        if opset >= 18:
            nodes.append(h.make_node("ReduceMean", [i, "axes"], [o]))
        else:
            nodes.append(h.make_node("ReduceMean", [i], [o], axes=list(axes)))
    if opset >= 18:
        inits.append(nh.from_array(np.array(axes, np.int64), "axes"))
    mean("x", "m")
    nodes.append(h.make_node("Sub", ["x", "m"], ["d"]))
    if square == "pow":
        nodes.append(h.make_node("Pow", ["d", "two"], ["p"]))
    else:
        nodes.append(h.make_node("Mul", ["d", "d"], ["p"]))
    mean("p", "v")
    nodes.append(h.make_node("Add", ["v", "eps"], ["a"]))
    nodes.append(h.make_node("Sqrt", ["a"], ["s"]))
    nodes.append(h.make_node("Div", ["d", "s"], ["n"]))
    y = "n"
    if affine >= 1:
        inits.append(nh.from_array((RNG.standard_normal(norm) * 0.5 + 1).astype(dt), "gamma"))
        nodes.append(h.make_node("Mul", ["gamma", "n"] if gamma_first else ["n", "gamma"], ["g"]))
        y = "g"
    if affine >= 2:
        inits.append(nh.from_array(RNG.standard_normal(norm).astype(dt), "beta"))
        nodes.append(h.make_node("Add", ["beta", "g"] if gamma_first else ["g", "beta"], ["y"]))
        y = "y"
    outs = [h.make_tensor_value_info(y, tt, shape)]
    if extra_output:
        outs.append(h.make_tensor_value_info(extra_output, tt, None))
    g = h.make_graph(nodes, name, [h.make_tensor_value_info("x", tt, shape)], outs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    path = os.path.join(TMP, name + ".onnx")
    onnx.save(m, path)
    x = (RNG.standard_normal(shape) * 3 + 1.5).astype(dt)
    return path, {"x": x}


def gelu_model(name, form="a", scale="div", one=1.0, half=0.5):
    shape = [2, 8, 48]
    inits = [nh.from_array(np.array(np.sqrt(2.0) if scale == "div" else np.sqrt(0.5), np.float32), "c"),
             nh.from_array(np.array(one, np.float32), "one"), nh.from_array(np.array(half, np.float32), "half"),
             nh.from_array(RNG.standard_normal([48, 48]).astype(np.float32) * 0.3, "w")]
    nodes = [h.make_node("MatMul", ["x", "w"], ["x1"]),
             h.make_node("Div" if scale == "div" else "Mul", ["x1", "c"], ["t"]),
             h.make_node("Erf", ["t"], ["e"]), h.make_node("Add", ["e", "one"], ["a"])]
    if form == "frozen":  # as kiln freeze folds it: x * (e * 0.5 + 0.5)
        nodes = nodes[:3] + [h.make_node("Mul", ["e", "half"], ["eh"]), h.make_node("Add", ["eh", "half"], ["a"]),
                             h.make_node("Mul", ["x1", "a"], ["y"])]
    elif form == "a":  # torch.onnx (TorchScript): (x * a) * 0.5
        nodes += [h.make_node("Mul", ["x1", "a"], ["m"]), h.make_node("Mul", ["m", "half"], ["y"])]
    else:  # dynamo: x * (0.5 * a)
        nodes += [h.make_node("Mul", ["half", "a"], ["m"]), h.make_node("Mul", ["x1", "m"], ["y"])]
    g = h.make_graph(nodes, name, [h.make_tensor_value_info("x", T.FLOAT, shape)],
                     [h.make_tensor_value_info("y", T.FLOAT, shape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    path = os.path.join(TMP, name + ".onnx")
    onnx.save(m, path)
    return path, {"x": (RNG.standard_normal(shape) * 2).astype(np.float32)}


def matmul_bias_model(name, a_shape, bias_shape, bias_first=False, w_input=False):
    k, n = a_shape[-1], bias_shape[-1]
    w = (RNG.standard_normal([k, n]) * 0.2).astype(np.float32)
    inits = [nh.from_array(RNG.standard_normal(bias_shape).astype(np.float32), "b")]
    inputs = [h.make_tensor_value_info("x", T.FLOAT, a_shape)]
    feeds = {"x": RNG.standard_normal(a_shape).astype(np.float32)}
    if w_input:
        inputs.append(h.make_tensor_value_info("w", T.FLOAT, [k, n]))
        feeds["w"] = w
    else:
        inits.append(nh.from_array(w, "w"))
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]),
             h.make_node("Add", ["b", "m"] if bias_first else ["m", "b"], ["y"])]
    g = h.make_graph(nodes, name, inputs, [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    path = os.path.join(TMP, name + ".onnx")
    onnx.save(m, path)
    return path, feeds


def transformer():
    import torch
    torch.manual_seed(0)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            layer = torch.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
            self.enc = torch.nn.TransformerEncoder(layer, 2)
            for n in self.enc.modules():
                if isinstance(n, torch.nn.LayerNorm):  # trained-looking affine parameters
                    torch.nn.init.normal_(n.weight, 1.0, 0.3)
                    torch.nn.init.normal_(n.bias, 0.0, 0.3)
            self.register_buffer("mask", torch.triu(torch.full((16, 16), float("-inf")), 1))

        def forward(self, x):
            return self.enc(x, mask=self.mask)
    path = os.path.join(TMP, "transformer.onnx")
    x = torch.randn(1, 16, 64)
    torch.onnx.export(M().eval(), (x,), path, opset_version=13, input_names=["x"], output_names=["y"])
    frozen = os.path.join(TMP, "transformer_frozen.onnx")
    r = subprocess.run([KILN, "freeze", path, "-o", frozen], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return frozen, {"x": x.numpy()}


def main():
    bad = 0
    cases = [
        ("ln_affine", dict(shape=[2, 16, 64], axes=[-1])),
        ("ln_plain", dict(shape=[2, 16, 64], axes=[-1], affine=0)),
        ("ln_scale_only", dict(shape=[3, 37], axes=[-1], affine=1)),
        ("ln_params_first", dict(shape=[2, 5, 33], axes=[-1], gamma_first=True)),
        ("ln_two_axes", dict(shape=[2, 6, 7, 9], axes=[-1, -2])),
        ("ln_opset18", dict(shape=[4, 100], axes=[-1], opset=18)),
        ("ln_mul_square", dict(shape=[1, 8, 768], axes=[-1], square="mul")),
        ("ln_float16", dict(shape=[2, 16, 64], axes=[-1], dt=np.float16)),
        ("ln_mean_is_output", dict(shape=[2, 16, 64], axes=[-1], extra_output="m")),
        ("ln_not_trailing", dict(shape=[2, 16, 64], axes=[-2], affine=0)),
        ("ln_cube", dict(shape=[2, 16, 64], axes=[-1], pow_exp=3.0)),
    ]
    for name, kw in cases:
        path, feeds = layernorm_model(name, **kw)
        f16 = kw.get("dt") == np.float16
        bad += check(name, path, feeds, 2e-2 if f16 else 1e-4, 2e-2 if f16 else 1e-4)
    for name, kw in [("gelu_torchscript", dict(form="a")), ("gelu_dynamo", dict(form="b")),
                     ("gelu_mul_scale", dict(form="b", scale="mul")), ("gelu_frozen", dict(form="frozen")),
                     ("gelu_frozen_not_half", dict(form="frozen", half=0.25)), ("gelu_not_one", dict(one=2.0)),
                     ("gelu_not_half", dict(form="b", half=0.25))]:
        path, feeds = gelu_model(name, **kw)
        bad += check(name, path, feeds, 1e-5, 1e-5)
    for name, kw in [("matmul_bias_2d", dict(a_shape=[5, 24], bias_shape=[40])),
                     ("matmul_bias_3d_left", dict(a_shape=[2, 7, 33], bias_shape=[50], bias_first=True)),
                     ("matmul_bias_row1", dict(a_shape=[1, 64], bias_shape=[96])),
                     ("matmul_bias_2d_bias", dict(a_shape=[3, 9, 16], bias_shape=[1, 20])),
                     ("matmul_bias_1d_a", dict(a_shape=[16], bias_shape=[8])),
                     ("matmul_bias_w_input", dict(a_shape=[4, 16], bias_shape=[12], w_input=True))]:
        path, feeds = matmul_bias_model(name, **kw)
        bad += check(name, path, feeds, 1e-5, 1e-5)
    path, feeds = transformer()
    bad += check("transformer_opset13_frozen", path, feeds, 1e-4, 1e-4)
    if bad:
        print("%d failures" % bad)
        sys.exit(1)


main()
