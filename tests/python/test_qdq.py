"""QDQ int8 models as onnxruntime's own quantizer writes them (the format NPU
and TensorRT toolchains take): a small CNN exported from PyTorch, quantized
with onnxruntime.quantization.quantize_static (per-tensor and per-channel,
QDQ format), run by kiln against onnxruntime, frozen with a fixed batch and
run again.

usage: test_qdq.py KILN   (venv python: onnxruntime, onnx, torch)
"""
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
KILN = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="kiln-qdq-")
try:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
except ImportError:
    ort = None


def kiln(*args):
    r = subprocess.run([KILN, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("kiln %s failed: %s" % (" ".join(map(str, args)), r.stderr))
    return r


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c3 = nn.Conv2d(8, 16, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x)) + x
        x = torch.relu(self.c3(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class Reader(CalibrationDataReader if ort else object):
    def __init__(self, xs):
        self.it = iter([{"x": x} for x in xs])

    def get_next(self):
        return next(self.it, None)


def run_kiln(path, x):
    d = tempfile.mkdtemp(dir=TMP)
    np.save(os.path.join(d, "x.npy"), x)
    kiln("run", path, "-i", "x=@%s" % os.path.join(d, "x.npy"), "--out", d)
    name = onnx.load(path).graph.output[0].name
    return np.load(os.path.join(d, name + ".npy"))


def main():
    if ort is None:
        print("onnxruntime not found: skipped")
        return 0
    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    src = os.path.join(TMP, "net.onnx")
    torch.onnx.export(Net().eval(), (torch.randn(1, 3, 16, 16),), src, input_names=["x"], output_names=["y"],
                      opset_version=13, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    calib = [rng.rand(1, 3, 16, 16).astype(np.float32) for _ in range(8)]
    failures = 0
    for per_channel in (False, True):
        label = "per-channel" if per_channel else "per-tensor"
        q = os.path.join(TMP, "net_q_%d.onnx" % per_channel)
        quantize_static(src, q, Reader(calib), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        ops = [n.op_type for n in onnx.load(q).graph.node]
        try:
            assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 3, ops
            x = rng.rand(2, 3, 16, 16).astype(np.float32)
            want = ort.InferenceSession(q, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            got = run_kiln(q, x)
            # quantized arithmetic: a rounding step of the last requantize may differ
            step = np.abs(want).max() / 127.0
            np.testing.assert_allclose(got, want, rtol=0, atol=1.01 * step, err_msg=label)
            frozen = os.path.join(TMP, "net_q_%d_frozen.onnx" % per_channel)
            kiln("freeze", q, "-o", frozen, "--quiet", "--dim", "batch=2", "--verify")
            onnx.checker.check_model(onnx.load(frozen), full_check=True)
            fops = [n.op_type for n in onnx.load(frozen).graph.node]
            # weights stay int8 behind their DequantizeLinear (QDQ kept)
            assert fops.count("DequantizeLinear") == ops.count("DequantizeLinear"), fops
            assert os.path.getsize(frozen) < 1.5 * os.path.getsize(q), (os.path.getsize(frozen), os.path.getsize(q))
            np.testing.assert_allclose(run_kiln(frozen, x), got, rtol=0, atol=1e-6, err_msg=label + " frozen")
            want_f = ort.InferenceSession(frozen, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            np.testing.assert_allclose(want_f, want, rtol=0, atol=1.01 * step, err_msg=label + " frozen, onnxruntime")
            print("ok   %s: %d nodes (%d QuantizeLinear, %d DequantizeLinear), frozen %d" % (
                label, len(ops), ops.count("QuantizeLinear"), ops.count("DequantizeLinear"),
                len(onnx.load(frozen).graph.node)))
        except Exception as e:  # noqa: BLE001
            failures += 1
            print("FAIL %s: %s" % (label, e))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
