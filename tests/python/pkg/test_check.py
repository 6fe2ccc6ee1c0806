"""kiln.check: per-output errors, ok, against the CLI."""
import subprocess
import sys

import numpy as np
import pytest

import kiln

ARGS = {"scale": 2.0, "bias": 0.5, "use_mult": True}


@pytest.fixture
def frozen(models, tmp_path):
    out = str(tmp_path / "frozen.onnx")
    kiln.freeze(models.example, out, bind=ARGS)
    return out


def test_check_ok(models, frozen):
    res = kiln.check(models.example, frozen, bind=ARGS, runs=3)
    assert res.ok and bool(res)
    assert set(res.outputs) == {"y"}
    y = res.outputs["y"]
    assert y.ok and y.max_abs <= 1e-5 and y.max_rel <= 1e-4
    assert [(r[0], r[1]) for r in res.runs] == [(0, "y"), (1, "y"), (2, "y")]
    assert res.text.count("ok") == 3
    # the same models given as objects and bytes
    with open(frozen, "rb") as f:
        assert kiln.check(kiln.load(models.example), f.read(), bind=ARGS, runs=1).ok


def test_check_mismatch_is_not_an_exception(models, frozen):
    res = kiln.check(models.example, frozen, bind=dict(ARGS, scale=3.0), runs=4, seed=7)
    assert not res.ok
    assert not res.outputs["y"].ok
    assert res.outputs["y"].max_abs > 0.01
    assert len(res.runs) == 4 and "MISMATCH" in res.text
    assert res.outputs["y"].max_abs == max(r[2] for r in res.runs)
    # the CLI agrees (exit code 3 on mismatch)
    r = subprocess.run([sys.executable, "-m", "kiln", "check", models.example, frozen, "--bind", "scale=3.0",
                        "--bind", "bias=0.5", "--bind", "use_mult=true", "--runs", "4", "--seed", "7"],
                       capture_output=True, text=True)
    assert r.returncode == 3
    assert r.stdout == res.text


def test_check_tolerances_and_inputs_folder(models, frozen, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    res = kiln.check(models.example, frozen, bind=ARGS, runs=2, inputs=str(tmp_path), rtol=0, atol=0)
    assert res.ok and "[2,3]" in res.text


def test_check_errors(models, frozen):
    with pytest.raises(kiln.ArgumentError):
        kiln.check(models.example, frozen, bind=ARGS, runs=0)
    with pytest.raises(kiln.Error):
        kiln.check(models.example, models.net, bind=ARGS)  # not the same outputs
