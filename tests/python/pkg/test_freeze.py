"""Model.freeze and kiln.freeze against PyTorch, onnxruntime and the CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import kiln


def ort_run(model, feeds):
    src = model if isinstance(model, str) else model.to_bytes()
    s = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def test_freeze_bind_float_array_bool(models, rng):
    w1 = rng.standard_normal((4, 3)).astype(np.float32)
    m = kiln.load(models.configurable)
    rep = m.freeze(bind={"scale": 2.0, "w1": w1, "use_mult": True}, dims={"batch": 1})
    assert rep["nodes"]["If"] == {"before": 1, "after": 0}
    assert rep["dims_fixed"] == {"batch": 1}
    assert set(rep["inputs_removed"]) == {"scale", "w1", "use_mult"}
    assert rep["ifs_inlined"] == 1
    assert m.inputs == [kiln.ValueInfo("x", np.dtype(np.float32), [1, 4])]
    x = rng.standard_normal((1, 4)).astype(np.float32)
    with torch.no_grad():
        ref = models.configurable_torch(torch.from_numpy(x), torch.from_numpy(w1), torch.tensor(2.0), True).numpy()
    got = kiln.Session(m).run({"x": x})["y"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ort_run(m, {"x": x})["y"], ref, rtol=1e-5, atol=1e-6)
    onnx.checker.check_model(onnx.load_from_string(m.to_bytes()), full_check=True)
    # the other branch
    m2 = kiln.load(models.configurable)
    m2.freeze(bind={"scale": 0.25, "w1": w1, "use_mult": False})
    with torch.no_grad():
        ref2 = models.configurable_torch(torch.from_numpy(x), torch.from_numpy(w1), torch.tensor(0.25), False).numpy()
    np.testing.assert_allclose(kiln.Session(m2).run({"x": x})["y"], ref2, rtol=1e-5, atol=1e-6)
    assert m2.inputs[0].shape == ["batch", 4]  # the batch stays dynamic


def test_freeze_shapes_folds_batch(models, rng):
    m = kiln.load(models.net)
    rep = m.freeze(shapes={"x": [1, 3, 32, 32]})
    assert rep["dims_fixed"].get("batch") == 1 or m.inputs[0].shape == [1, 3, 32, 32]
    assert m.inputs[0].shape == [1, 3, 32, 32]
    assert m.outputs[0].shape == [1, 10]
    assert "Shape" not in rep["nodes"] or rep["nodes"]["Shape"]["after"] == 0
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = models.net_torch(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(kiln.Session(m).run({"x": x})["logits"], ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ort_run(m, {"x": x})["logits"], ref, rtol=1e-4, atol=1e-5)


def test_report_is_the_cli_report(models, tmp_path):
    args = {"scale": 2.0, "bias": 0.5, "use_mult": True}
    m = kiln.load(models.example)
    rep = m.freeze(bind=args, dims={"batch": 3})
    out, rpath = tmp_path / "f.onnx", tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "kiln", "freeze", models.example, "-o", str(out), "--bind", "scale=2.0",
                        "--bind", "bias=0.5", "--bind", "use_mult=true", "--dim", "batch=3", "--report", str(rpath),
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert rep == json.loads(rpath.read_text())
    assert kiln.load(str(out)).to_bytes() == m.to_bytes()


def test_unroll_limit(models):
    x = np.arange(4, dtype=np.float32)
    m = kiln.load(models.loop)
    rep = m.freeze(bind={"n": 5}, unroll_limit=8)
    assert rep["loops_unrolled"] == 1 and rep["nodes"]["Loop"]["after"] == 0
    np.testing.assert_allclose(kiln.Session(m).run({"x": x})["y"], x + 5)
    np.testing.assert_allclose(ort_run(m, {"x": x})["y"], x + 5)
    m = kiln.load(models.loop)
    rep = m.freeze(bind={"n": 5}, unroll_limit=4)  # beyond the limit: the Loop stays
    assert rep["loops_unrolled"] == 0 and rep["nodes"]["Loop"]["after"] == 1
    np.testing.assert_allclose(kiln.Session(m).run({"x": x})["y"], x + 5)
    m = kiln.load(models.loop)
    assert m.freeze(bind={"n": 5}, unroll_limit=0)["loops_unrolled"] == 0  # 0: never


def test_fold_limit_and_prune_dead_inputs(models):
    m = kiln.load(models.grow)
    rep = m.freeze(fold_limit=1024)
    assert rep["nodes"]["Expand"]["after"] == 1
    assert any(s["op"] == "Expand" for s in rep["folds_skipped"])
    assert [v.name for v in m.inputs] == ["x", "unused"]
    m = kiln.load(models.grow)
    rep = m.freeze(fold_limit=1 << 20, prune_dead_inputs=True)
    assert rep["nodes"]["Expand"]["after"] == 0
    assert rep["inputs_removed"] == ["unused"]
    assert [v.name for v in m.inputs] == ["x"]
    x = np.ones(1024, np.float32)
    ref = np.concatenate([x, np.full(1024, 3, np.float32)])
    np.testing.assert_allclose(kiln.Session(m).run({"x": x})["y"], ref)
    np.testing.assert_allclose(ort_run(m, {"x": x})["y"], ref)


def test_freeze_bad_arguments_leave_the_model(models):
    m = kiln.load(models.configurable)
    before = m.to_bytes()
    with pytest.raises(kiln.ArgumentError, match="'nope' is not an input"):
        m.freeze(bind={"scale": 2.0, "nope": 1.0})
    with pytest.raises(kiln.ArgumentError):
        m.freeze(bind={"w1": np.ones((4, 3), np.float64)})  # declared float32
    with pytest.raises(kiln.ArgumentError):
        m.freeze(bind={"w1": np.ones((3, 3), np.float32)})  # declared [4, 3]
    with pytest.raises(kiln.ArgumentError):
        m.freeze(bind={"use_mult": 1.5})
    with pytest.raises(kiln.ArgumentError):
        m.freeze(dims={"batch": -1})
    with pytest.raises(kiln.ArgumentError, match="no dimension is named 'height'"):
        m.freeze(dims={"height": 4})
    assert m.to_bytes() == before or kiln.load(m.to_bytes()).inputs == kiln.load(before).inputs
    with kiln.Session(m) as s:  # a session holds the model: no freezing under it
        with pytest.raises(kiln.ArgumentError, match="open sessions"):
            m.freeze(bind={"scale": 1.0})
        assert s is not None
    m.freeze(bind={"scale": 1.0})  # closed: fine again


def test_kiln_freeze_one_call(models, tmp_path):
    out, rpath, pic = tmp_path / "f.onnx", tmp_path / "r.json", tmp_path / "f.dot"
    args = {"scale": 2.0, "bias": 0.5, "use_mult": True}
    rep = kiln.freeze(models.example, str(out), bind=args, dims={"batch": 2}, verify=True, report=str(rpath),
                      picture=str(pic))
    assert rep == json.loads(rpath.read_text())
    assert "cluster_original" in pic.read_text()
    f = kiln.load(str(out))
    assert f.inputs[0].shape == [2, 4]
    res = kiln.check(models.example, str(out), bind=args)
    assert res.ok
    # the source model object is not changed by kiln.freeze
    src = kiln.load(models.example)
    kiln.freeze(src, str(tmp_path / "g.onnx"), bind=args)
    assert len(src.inputs) == 4


def test_kiln_freeze_verify_mismatch_writes_nothing(models, tmp_path, monkeypatch):
    real = kiln.check

    def wrong(a, b, bind=None, **kw):  # verify with other values than were frozen in
        return real(a, b, {"scale": 3.0, "bias": 0.5, "use_mult": True}, **kw)

    monkeypatch.setattr(kiln, "check", wrong)
    out = tmp_path / "f.onnx"
    with pytest.raises(kiln.MismatchError, match="nothing written"):
        kiln.freeze(models.example, str(out), bind={"scale": 2.0, "bias": 0.5, "use_mult": True}, verify=True)
    assert not out.exists()
