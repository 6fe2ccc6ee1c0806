"""Random operators and MaxRoiPool.

Random outputs cannot be compared with fixed data, so the checks are on what
the spec does fix: shapes, types, ranges, the same seed giving the same
values, and the distribution's moments within many standard errors.
MaxRoiPool is compared with a direct numpy transcription of its definition
(Fast R-CNN's RoI max pooling).

usage: test_random.py KILN
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

KILN = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="kiln-random-")


def run(node, inputs, out_type, inits=(), opset=22):
    g = h.make_graph([node], "g", [h.make_tensor_value_info(k, T.FLOAT, list(v.shape)) for k, v in inputs.items()],
                     [h.make_tensor_value_info("y", out_type, None)], list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    p = os.path.join(TMP, "m.onnx")
    onnx.save(m, p)
    args = []
    for k, v in inputs.items():
        np.save(os.path.join(TMP, k + ".npy"), v)
        args += ["-i", "%s=@%s" % (k, os.path.join(TMP, k + ".npy"))]
    r = subprocess.run([KILN, "run", p, *args, "--out", TMP], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return np.load(os.path.join(TMP, "y.npy"))


def main():
    n = 200000
    se = 6.0 / np.sqrt(n)  # six standard errors of a unit-variance mean
    y = run(h.make_node("RandomNormal", [], ["y"], shape=[n], mean=2.0, scale=3.0, seed=5.0), {}, T.FLOAT)
    assert y.shape == (n,) and y.dtype == np.float32
    assert abs(y.mean() - 2.0) < 3.0 * se and abs(y.std() - 3.0) < 3.0 * 6.0 / np.sqrt(2 * n), (y.mean(), y.std())
    y2 = run(h.make_node("RandomNormal", [], ["y"], shape=[n], mean=2.0, scale=3.0, seed=5.0), {}, T.FLOAT)
    assert np.array_equal(y, y2), "the same seed must give the same values"
    y3 = run(h.make_node("RandomNormal", [], ["y"], shape=[n], mean=2.0, scale=3.0, seed=6.0), {}, T.FLOAT)
    assert not np.array_equal(y, y3)
    u = run(h.make_node("RandomUniform", [], ["y"], shape=[4, n // 4], low=-1.0, high=3.0, dtype=T.DOUBLE), {},
            T.DOUBLE)
    assert u.shape == (4, n // 4) and u.dtype == np.float64 and u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1.0) < 4.0 / np.sqrt(12) * se
    x = np.zeros((3, 5), np.float32)
    ul = run(h.make_node("RandomUniformLike", ["x"], ["y"], seed=1.0), {"x": x}, T.FLOAT)
    assert ul.shape == (3, 5) and ul.min() >= 0 and ul.max() < 1
    nl = run(h.make_node("RandomNormalLike", ["x"], ["y"], dtype=T.DOUBLE), {"x": x}, T.DOUBLE)
    assert nl.shape == (3, 5) and nl.dtype == np.float64
    p = np.linspace(0, 1, 11, dtype=np.float32).repeat(20000)
    b = run(h.make_node("Bernoulli", ["p"], ["y"], seed=3.0), {"p": p}, T.FLOAT)
    assert set(np.unique(b)) <= {0.0, 1.0} and b[:20000].sum() == 0 and b[-20000:].sum() == 20000
    for k in range(11):
        assert abs(b[k * 20000:(k + 1) * 20000].mean() - k / 10) < 6 * 0.5 / np.sqrt(20000)
    logits = np.log(np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0 + 1e-30]], np.float32))
    mn = run(h.make_node("Multinomial", ["x"], ["y"], sample_size=30000, seed=2.0), {"x": logits}, T.INT32, opset=7)
    assert mn.shape == (2, 30000) and mn.dtype == np.int32
    freq = np.stack([(mn[0] == k).mean() for k in range(3)])
    assert np.all(np.abs(freq - [0.1, 0.2, 0.7]) < 6 * 0.5 / np.sqrt(30000)), freq
    assert (mn[1] == 2).sum() == 0
    print("ok   random operators")

    # MaxRoiPool against the definition
    rng = np.random.RandomState(0)
    X = rng.randn(2, 3, 10, 12).astype(np.float32)
    rois = np.array([[0, 1, 1, 6, 5], [1, 0, 0, 11, 9], [1, 3.2, 2.4, 3.4, 2.6], [0, 8, 7, 20, 20]], np.float32)
    scale, (PH, PW) = 0.5, (3, 2)
    want = np.zeros((4, 3, PH, PW), np.float32)
    for n_, r in enumerate(rois):
        bi = int(r[0])
        x1, y1, x2, y2 = [int(np.floor(v * scale + 0.5)) for v in r[1:]]  # C round(): half away from 0
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        for ph in range(PH):
            for pw in range(PW):
                hs = min(max(int(np.floor(ph * rh / PH)) + y1, 0), 10)
                he = min(max(int(np.ceil((ph + 1) * rh / PH)) + y1, 0), 10)
                ws = min(max(int(np.floor(pw * rw / PW)) + x1, 0), 12)
                we = min(max(int(np.ceil((pw + 1) * rw / PW)) + x1, 0), 12)
                if he > hs and we > ws:
                    want[n_, :, ph, pw] = X[bi, :, hs:he, ws:we].max(axis=(1, 2))
    got = run(h.make_node("MaxRoiPool", ["X", "rois"], ["y"], pooled_shape=[PH, PW], spatial_scale=scale),
              {"X": X, "rois": rois}, T.FLOAT)
    np.testing.assert_array_equal(got, want)
    try:  # and onnxruntime, when this python has it
        import onnxruntime as ort
        g = h.make_graph([h.make_node("MaxRoiPool", ["X", "rois"], ["y"], pooled_shape=[PH, PW], spatial_scale=scale)],
                         "g", [h.make_tensor_value_info("X", T.FLOAT, None), h.make_tensor_value_info("rois", T.FLOAT, None)],
                         [h.make_tensor_value_info("y", T.FLOAT, None)])
        m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
        m.ir_version = 7
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_array_equal(s.run(None, {"X": X, "rois": rois})[0], want)
        print("ok   MaxRoiPool (numpy and onnxruntime)")
    except ImportError:
        print("ok   MaxRoiPool (numpy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
