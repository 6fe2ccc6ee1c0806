"""End to end: models exported from PyTorch run in kiln with outputs equal to
PyTorch's within 1e-4 (absolute, relative to the output's scale).

usage: /usr/bin/python3 tests/python/test_engine_torch.py KILN_BINARY
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

KILN = os.path.abspath(sys.argv[1])
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name} {detail}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def run_case(name, model, args, input_names, tmp, opset=13, dynamic_axes=None, tol=1e-4):
    model = model.eval()
    path = os.path.join(tmp, name + ".onnx")
    with torch.no_grad():
        ref = model(*args)
    refs = ref if isinstance(ref, (tuple, list)) else (ref,)
    refs = [r for r in refs if isinstance(r, torch.Tensor)]
    out_names = [f"out{i}" for i in range(len(refs))]
    torch.onnx.export(model, args, path, opset_version=opset, input_names=input_names, output_names=out_names,
                      dynamic_axes=dynamic_axes)
    cmd = [KILN, "run", path, "--out", tmp]
    for n, a in zip(input_names, args):
        p = os.path.join(tmp, f"{name}_{n}.npy")
        np.save(p, a.numpy())
        cmd += ["-i", f"{n}=@{p}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        check(name, False, r.stderr.strip()[-400:])
        return
    worst = 0.0
    for on, rt in zip(out_names, refs):
        got = np.load(os.path.join(tmp, on + ".npy"))
        want = rt.numpy()
        if got.shape != want.shape:
            check(name, False, f"{on}: shape {got.shape}, expected {want.shape}")
            return
        scale = max(1.0, float(np.abs(want).max()))
        worst = max(worst, float(np.abs(got.astype(np.float64) - want).max()) / scale)
    check(name, worst <= tol, f"(max scaled error {worst:.2e})")


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        run_case("resnet18", torchvision.models.resnet18(weights=None), (torch.randn(1, 3, 224, 224),), ["input"],
                 tmp)
        run_case("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), (torch.randn(1, 3, 224, 224),),
                 ["input"], tmp)
        layer = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.0)
        enc = torch.nn.TransformerEncoder(layer, num_layers=2)
        seq = 10
        mask = torch.triu(torch.full((seq, seq), float("-inf")), diagonal=1)

        class Enc(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.enc = enc

            def forward(self, x, mask):
                return self.enc(x, mask=mask)

        run_case("transformer_encoder", Enc(), (torch.randn(seq, 2, 32), mask), ["x", "mask"], tmp, opset=14)
        lstm = torch.nn.LSTM(16, 24, num_layers=2)
        run_case("lstm", lstm, (torch.randn(12, 3, 16),), ["x"], tmp, opset=14)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
