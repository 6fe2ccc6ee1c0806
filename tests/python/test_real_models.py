"""Models shaped like the ones users ship, frozen with their input shapes fixed.

A YOLO-style detector (dynamic height/width; anchor grids built from the
feature maps' shapes: Shape -> Gather -> Range -> Expand/Reshape/Concat) and a
streaming voice-activity model (scripted: branches on the input's rank and on
the sample rate, an LSTM carrying state). Each is frozen by kiln with the
shapes fixed and compared with onnxruntime's basic optimizer on the same
fixed shapes (and onnxsim when installed): kiln must leave no more nodes,
no Shape, Size or If whose value the shapes decide, and the same outputs.

usage: test_real_models.py KILN   (run with the venv python: onnxruntime)
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
TMP = tempfile.mkdtemp(prefix="kiln-real-")
try:
    import onnxruntime as ort
except ImportError:  # pragma: no cover
    ort = None
try:
    import onnxsim
except ImportError:
    onnxsim = None


def kiln(*args):
    r = subprocess.run([KILN, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("kiln %s failed: %s" % (" ".join(map(str, args)), r.stderr))
    return r


def ops(path):
    return [n.op_type for n in onnx.load(path).graph.node]


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.conv(x))


class Detector(nn.Module):
    """Backbone with strides 8/16/32, an upsampling neck, and a YOLOv8-style
    head that builds its anchor points from the feature maps' sizes."""

    def __init__(self, nc=4):
        super().__init__()
        self.stem = nn.Sequential(ConvBlock(3, 8, 2), ConvBlock(8, 16, 2), ConvBlock(16, 16, 2))
        self.down1 = ConvBlock(16, 32, 2)
        self.down2 = ConvBlock(32, 32, 2)
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.fuse = ConvBlock(64, 32, 1)
        self.heads = nn.ModuleList([nn.Conv2d(c, 4 + nc, 1) for c in (16, 32, 32)])
        self.nc = nc

    def forward(self, x):
        p3 = self.stem(x)
        p4 = self.down1(p3)
        p5 = self.down2(p4)
        p4 = self.fuse(torch.cat([self.up(p5), p4], 1))
        feats = [h(f) for h, f in zip(self.heads, (p3, p4, p5))]
        b = feats[0].shape[0]
        out = torch.cat([f.view(b, 4 + self.nc, -1) for f in feats], 2)
        anchors, strides = [], []
        for f, s in zip(feats, (8.0, 16.0, 32.0)):
            h, w = f.shape[2], f.shape[3]
            sx = torch.arange(w, dtype=torch.float32) + 0.5
            sy = torch.arange(h, dtype=torch.float32) + 0.5
            gy, gx = torch.meshgrid(sy, sx, indexing="ij")
            anchors.append(torch.stack((gx, gy), -1).view(-1, 2))
            strides.append(torch.full((h * w, 1), s))
        a = torch.cat(anchors).transpose(0, 1).unsqueeze(0)
        st = torch.cat(strides).transpose(0, 1)
        box, cls = out.split((4, self.nc), 1)
        lt, rb = box.chunk(2, 1)
        xy = (a + (rb - lt) / 2) * st
        wh = (rb + lt) * st
        return torch.cat((xy, wh, cls.sigmoid()), 1)


class VAD(nn.Module):
    """Silero-style: accepts (samples,) or (batch, samples), resamples 8 kHz
    input, a conv front end, an LSTM with carried state, a sigmoid score."""

    def __init__(self):
        super().__init__()
        self.front = nn.Conv1d(1, 32, 64, stride=32)
        self.enc = nn.Conv1d(32, 32, 3, padding=1)
        self.lstm = nn.LSTM(32, 32, batch_first=True)
        self.dec = nn.Conv1d(32, 1, 1)

    def forward(self, x, h, c, sr):
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if bool(sr == 8000):
            x = torch.cat([x, x], 1)
        if x.shape[1] > 4096:
            x = x[:, :4096]
        y = torch.relu(self.front(x.unsqueeze(1)))
        y = torch.relu(self.enc(y))
        y, (h2, c2) = self.lstm(y.transpose(1, 2), (h, c))
        p = torch.sigmoid(self.dec(torch.relu(y).transpose(1, 2))).mean(2)
        return p, h2, c2


def ort_basic(src, out, dims, shapes):
    """onnxruntime's basic level with the same fixed dims, saved."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = out
    for k, v in dims.items():
        so.add_free_dimension_override_by_name(k, v)
    m = onnx.load(src)
    if shapes:  # bind shapes by rewriting the inputs, as --shape does
        for i in m.graph.input:
            if i.name in shapes:
                for d, v in zip(i.type.tensor_type.shape.dim, shapes[i.name]):
                    d.Clear()
                    d.dim_value = v
        src = src.replace(".onnx", ".shaped.onnx")
        onnx.save(m, src)
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return out


def run_ort(path, feeds):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, feeds)))


def run_kiln(path, feeds):
    d = tempfile.mkdtemp(dir=TMP)
    args = []
    for k, v in feeds.items():
        p = os.path.join(d, k + ".npy")
        np.save(p, v)
        args += ["-i", "%s=@%s" % (k, p)]
    kiln("run", path, *args, "--out", d)
    return {n: np.load(os.path.join(d, n + ".npy")) for n in [o.name for o in onnx.load(path).graph.output]}


def compare(name, src, frozen, feeds, frozen_feeds, freeze_args, sim_shapes):
    ort_out = ort_basic(src, os.path.join(TMP, name + "_ort.onnx"), {}, sim_shapes)
    n_kiln, n_ort = len(ops(frozen)), len(ops(ort_out))
    line = "%-10s nodes: original %d, kiln %d, onnxruntime basic %d" % (name, len(ops(src)), n_kiln, n_ort)
    n_sim = None
    if onnxsim is not None:
        sm, ok = onnxsim.simplify(onnx.load(src), overwrite_input_shapes=sim_shapes)
        if ok:
            n_sim = len(sm.graph.node)
            line += ", onnxsim %d" % n_sim
    print(line)
    left = [o for o in ops(frozen) if o in ("Shape", "Size", "If")]
    assert not left, "%s: %s left after freezing %s" % (name, left, freeze_args)
    assert n_kiln <= n_ort, "%s: kiln leaves %d nodes, onnxruntime basic %d" % (name, n_kiln, n_ort)
    if n_sim is not None:
        assert n_kiln <= n_sim, "%s: kiln leaves %d nodes, onnxsim %d" % (name, n_kiln, n_sim)
    want = run_ort(src, feeds)
    got = run_kiln(frozen, frozen_feeds)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg="%s output %s" % (name, k))


def detector():
    torch.manual_seed(0)
    m = Detector().eval()
    src = os.path.join(TMP, "det.onnx")
    x = torch.randn(1, 3, 64, 96)
    torch.onnx.export(m, (x,), src, input_names=["images"], output_names=["out"], opset_version=13,
                      dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "out": {0: "batch", 2: "anchors"}})
    frozen = os.path.join(TMP, "det_frozen.onnx")
    kiln("freeze", src, "-o", frozen, "--quiet", "--dim", "batch=1", "--dim", "height=64", "--dim", "width=96")
    outs = onnx.load(frozen).graph.output
    dims = [d.dim_value for d in outs[0].type.tensor_type.shape.dim]
    assert dims == [1, 8, 8 * 12 + 4 * 6 + 2 * 3], dims
    feeds = {"images": x.numpy()}
    compare("detector", src, frozen, feeds, feeds, "--dim", {"images": [1, 3, 64, 96]})
    # the symbolic shapes without fixing: the frozen model still runs at other sizes
    sym = os.path.join(TMP, "det_sym.onnx")
    kiln("freeze", src, "-o", sym, "--quiet")
    x2 = torch.randn(2, 3, 32, 64).numpy()
    np.testing.assert_allclose(run_kiln(sym, {"images": x2})["out"], run_ort(src, {"images": x2})["out"],
                               rtol=1e-4, atol=1e-5)


def vad():
    torch.manual_seed(0)
    m = torch.jit.script(VAD().eval())
    src = os.path.join(TMP, "vad.onnx")
    x, h, c = torch.randn(1, 512), torch.zeros(1, 1, 32), torch.zeros(1, 1, 32)
    sr = torch.tensor(16000)
    torch.onnx.export(m, (x, h, c, sr), src, input_names=["x", "h", "c", "sr"], output_names=["p", "hn", "cn"],
                      opset_version=13, dynamic_axes={"x": {0: "batch", 1: "samples"}, "h": {1: "batch"},
                                                      "c": {1: "batch"}})
    n_if = ops(src).count("If")
    assert n_if >= 2, "the export should branch (%d If)" % n_if
    frozen = os.path.join(TMP, "vad_frozen.onnx")
    kiln("freeze", src, "-o", frozen, "--quiet", "--bind", "sr=16000", "--shape", "x=1,512", "--shape", "h=1,1,32",
         "--shape", "c=1,1,32")
    feeds = {"x": x.numpy(), "h": h.numpy(), "c": c.numpy(), "sr": sr.numpy()}
    frozen_feeds = {k: v for k, v in feeds.items() if k != "sr"}
    compare("vad", src, frozen, feeds, frozen_feeds, "--bind sr --shape", {"x": [1, 512], "h": [1, 1, 32], "c": [1, 1, 32]})


def main():
    if ort is None:
        print("onnxruntime not found: skipped")
        return 0
    failures = 0
    for case in (detector, vad):
        try:
            case()
            print("ok   %s" % case.__name__)
        except Exception as e:  # noqa: BLE001
            failures += 1
            print("FAIL %s: %s" % (case.__name__, e))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
