"""kiln.Session: outputs against PyTorch and onnxruntime, bad arguments,
zero-copy semantics, dtypes, threads, state carried across calls."""
import gc
import threading

import numpy as np
import onnxruntime as ort
import pytest
import torch

import kiln


def ort_session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def test_run_against_torch_and_ort(models, rng):
    s = kiln.Session(models.net, threads=2)
    o = ort_session(models.net)
    for batch in (1, 3):
        x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        out = s.run({"x": x})
        assert list(out) == ["logits"]
        with torch.no_grad():
            ref = models.net_torch(torch.from_numpy(x)).numpy()
        assert out["logits"].dtype == np.float32 and out["logits"].shape == (batch, 10)
        np.testing.assert_allclose(out["logits"], ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["logits"], o.run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_run_configurable_all_inputs(models, rng):
    s = kiln.Session(kiln.load(models.configurable))
    x = rng.standard_normal((5, 4)).astype(np.float32)
    w1 = rng.standard_normal((4, 3)).astype(np.float32)
    for use_mult in (True, False):
        got = s.run({"x": x, "w1": w1, "scale": 1.5, "use_mult": use_mult})["y"]
        with torch.no_grad():
            ref = models.configurable_torch(torch.from_numpy(x), torch.from_numpy(w1), torch.tensor(1.5),
                                            use_mult).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
        feeds = {"x": x, "w1": w1, "scale": np.array(1.5, np.float32), "use_mult": np.array(use_mult)}
        np.testing.assert_allclose(got, ort_session(models.configurable).run(None, feeds)[0], rtol=1e-5, atol=1e-6)


def test_outputs_subset_and_order(models, rng):
    s = kiln.Session(models.lstm)
    x = rng.standard_normal((4, 2, 5)).astype(np.float32)
    h = np.zeros((1, 2, 7), np.float32)
    full = s.run({"x": x, "h0": h, "c0": h})
    assert list(full) == ["y", "hn", "cn"]
    part = s.run({"x": x, "h0": h, "c0": h}, outputs=["cn", "y"])
    assert list(part) == ["cn", "y"]
    np.testing.assert_array_equal(part["cn"], full["cn"])
    with pytest.raises(kiln.ArgumentError, match="'zz' is not an output"):
        s.run({"x": x, "h0": h, "c0": h}, outputs=["zz"])


def test_bad_arguments(models):
    s = kiln.Session(models.net)
    x = np.zeros((1, 3, 32, 32), np.float32)
    with pytest.raises(kiln.ArgumentError, match="'nope' is not an input of the model; its inputs are 'x'"):
        s.run({"x": x, "nope": x})
    with pytest.raises(kiln.ArgumentError, match="expected float32, got float64"):
        s.run({"x": x.astype(np.float64)})
    with pytest.raises(kiln.ArgumentError, match="expected rank 4"):
        s.run({"x": x[0]})
    with pytest.raises(kiln.ArgumentError, match="dimension 1 must be 3"):
        s.run({"x": np.zeros((1, 4, 32, 32), np.float32)})
    with pytest.raises(kiln.ArgumentError, match="'x' is required"):
        s.run({})
    with pytest.raises(kiln.ArgumentError):
        s.run([x])
    with pytest.raises(kiln.ArgumentError):
        s.run({1: x})
    with pytest.raises(kiln.ArgumentError):
        s.run({"x": "text"})
    with pytest.raises(kiln.ArgumentError):
        s.run({"x": np.zeros((1, 3, 32, 32), dtype="datetime64[s]")})
    with pytest.raises(kiln.ArgumentError):
        kiln.Session(models.net, threads=-1)
    with pytest.raises(kiln.ArgumentError):
        kiln.Session(models.lstm, state={"x": "nope"})
    with pytest.raises(kiln.Error):
        kiln.Session(models.lstm, state=42)
    s.close()
    assert s.closed
    with pytest.raises(kiln.ArgumentError, match="closed"):
        s.run({"x": x})
    with pytest.raises(kiln.Error, match="closed"):
        s.reset_state()
    s.close()  # twice is fine


def test_zero_copy_and_ownership(models):
    s = kiln.Session(models.relu)
    x = np.arange(-8, 8, dtype=np.float32).reshape(2, 8)
    y = s.run({"x": x})["y"]
    # a view of kiln's tensor (through a memoryview), not a copy
    assert isinstance(getattr(y.base, "obj", y.base), kiln._kiln.Tensor)
    assert y.flags.writeable and y.flags.c_contiguous
    assert not np.shares_memory(x, y)
    y[:] = 7  # the output is the caller's: writing it changes nothing in kiln
    np.testing.assert_array_equal(s.run({"x": x})["y"], np.maximum(x, 0))
    # inputs kiln reads in place or copies: read-only, strided, not contiguous
    ro = x.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(s.run({"x": ro})["y"], np.maximum(x, 0))
    wide = np.arange(-16, 16, dtype=np.float32).reshape(2, 16)
    np.testing.assert_array_equal(s.run({"x": wide[:, ::2]})["y"], np.maximum(wide[:, ::2], 0))
    np.testing.assert_array_equal(s.run({"x": np.asfortranarray(x)})["y"], np.maximum(x, 0))
    np.testing.assert_array_equal(s.run({"x": x.tolist()})["y"], np.maximum(x, 0))
    big = np.ones((2, 8), dtype=">f4")  # big-endian: converted
    np.testing.assert_array_equal(s.run({"x": big})["y"], np.ones((2, 8), np.float32))
    # outputs outlive the session
    out = s.run({"x": x})["y"]
    s.close()
    del s
    gc.collect()
    np.testing.assert_array_equal(out, np.maximum(x, 0))


def test_identity_output_does_not_alias_input(models, rng):
    s = kiln.Session(models.dtypes)
    feeds = {f"in_{k}": np.zeros((2, 3), np.float32 if k != "int8" else np.int8) for k in ("float32",)}
    x = rng.standard_normal((2, 3)).astype(np.float32)
    out = s.run(_all_dtype_feeds(models, x_float=x), outputs=["out_float32"])["out_float32"]
    assert not np.shares_memory(out, x)
    out[0, 0] = 99.0
    assert x[0, 0] != 99.0
    assert feeds


def _all_dtype_feeds(models, x_float=None):
    rng = np.random.default_rng(1)
    feeds = {}
    for k in models.dtype_kinds:
        name = f"in_{k}"
        if k == "string":
            feeds[name] = np.array([["a", "bc", ""], ["déjà", "x" * 40, "z"]], dtype=object)
        elif k == "bool":
            feeds[name] = rng.random((2, 3)) < 0.5
        elif k in ("bfloat16", "float8e4m3fn"):
            ml = pytest.importorskip("ml_dtypes")
            t = ml.bfloat16 if k == "bfloat16" else ml.float8_e4m3fn
            feeds[name] = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]], dtype=t)
        elif k.startswith("float"):
            feeds[name] = rng.standard_normal((2, 3)).astype(k)
        else:
            info = np.iinfo(k)
            feeds[name] = rng.integers(max(info.min, -100), min(info.max, 100), (2, 3)).astype(k)
    if x_float is not None:
        feeds["in_float32"] = x_float
    return feeds


def test_every_dtype_round_trips(models):
    s = kiln.Session(models.dtypes)
    feeds = _all_dtype_feeds(models)
    out = s.run(feeds)
    for k in models.dtype_kinds:
        got, want = out[f"out_{k}"], feeds[f"in_{k}"]
        assert got.dtype == want.dtype, k
        assert got.shape == (2, 3), k
        if k == "string":
            assert got.tolist() == want.tolist()
        else:
            np.testing.assert_array_equal(got.view(np.uint8), np.ascontiguousarray(want).view(np.uint8), err_msg=k)
    # Python values take the declared type
    more = dict(feeds, in_int64=[[1, 2, 3], [4, 5, 6]], in_string=[["a", "b", "c"], ["d", "e", b"f"]])
    out = s.run(more)
    assert out["out_int64"].dtype == np.int64
    assert out["out_string"].tolist() == [["a", "b", "c"], ["d", "e", "f"]]
    with pytest.raises(kiln.ArgumentError):
        s.run(dict(feeds, in_int64=[[1.5, 2, 3], [4, 5, 6]]))


def test_threads_option_and_python_threads(models, rng):
    xs = [rng.standard_normal((2, 3, 32, 32)).astype(np.float32) for _ in range(6)]
    with torch.no_grad():
        refs = [models.net_torch(torch.from_numpy(x)).numpy() for x in xs]
    one = kiln.Session(models.net, threads=1)
    two = kiln.Session(models.net, threads=2)
    for x, r in zip(xs, refs):
        a, b = one.run({"x": x})["logits"], two.run({"x": x})["logits"]
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # one session shared by Python threads (calls take turns), and one per thread
    shared = kiln.Session(models.net, threads=1)
    errors = []

    def work(sess, k):
        try:
            for i in range(12):
                j = (k + i) % len(xs)
                got = sess.run({"x": xs[j]})["logits"]
                np.testing.assert_allclose(got, refs[j], rtol=1e-4, atol=1e-5)
                del got  # dropped while other threads run the session
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(shared, k)) for k in range(4)]
    ts += [threading.Thread(target=work, args=(kiln.Session(models.net, threads=1), k)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


def test_run_releases_the_gil(models):
    """A thread spinning in Python makes progress while kiln runs."""
    s = kiln.Session(models.net, threads=1)
    x = np.ones((16, 3, 32, 32), np.float32)
    s.run({"x": x})
    ticks, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    for _ in range(5):
        s.run({"x": x})
    stop.set()
    t.join()
    assert ticks[0] > 1000


def _lstm_ref(models, x):
    with torch.no_grad():
        y, (h, c) = models.lstm_torch(torch.from_numpy(x))
    return y.numpy(), h.numpy(), c.numpy()


@pytest.mark.parametrize("state", [{"h0": "hn", "c0": "cn"}, "auto"])
def test_state_carried_across_calls(models, rng, state):
    x = rng.standard_normal((12, 2, 5)).astype(np.float32)
    ref_y, ref_h, ref_c = _lstm_ref(models, x)
    s = kiln.Session(models.lstm, threads=2, state=state)
    assert sorted(s.state_pairs()) == [("c0", "cn"), ("h0", "hn")]
    assert s.state == {"h0": None, "c0": None}  # zeros until the first run
    ys = [s.run({"x": x[i:i + 3]})["y"] for i in range(0, 12, 3)]
    np.testing.assert_allclose(np.concatenate(ys), ref_y, rtol=1e-4, atol=1e-5)
    st = s.state
    np.testing.assert_allclose(st["h0"], ref_h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(st["c0"], ref_c, rtol=1e-4, atol=1e-5)
    # back to zeros: the first chunk again gives the first chunk's output
    s.reset_state()
    assert s.state == {"h0": None, "c0": None}
    np.testing.assert_allclose(s.run({"x": x[:3]})["y"], ys[0], rtol=1e-6, atol=1e-7)
    # a state set by hand is where the next call starts
    s.reset_state()
    s.run({"x": x[:6]})
    h6, c6 = s.state["h0"], s.state["c0"]
    s.reset_state()
    s.set_state("h0", h6)
    s.set_state("c0", c6)
    np.testing.assert_allclose(s.run({"x": x[6:]})["y"], ref_y[6:], rtol=1e-4, atol=1e-5)
    # an output that is also carried state is the caller's copy
    out = s.run({"x": x[:1]})
    out["hn"][:] = 0
    assert np.abs(s.state["h0"]).max() > 0


def test_state_save_load(models, rng, tmp_path):
    x = rng.standard_normal((8, 1, 5)).astype(np.float32)
    a = kiln.Session(models.lstm, state="auto")
    a.run({"x": x[:4]})
    a.save_state(str(tmp_path))
    b = kiln.Session(models.lstm, state="auto")
    b.load_state(str(tmp_path))
    np.testing.assert_allclose(b.run({"x": x[4:]})["y"], a.run({"x": x[4:]})["y"], rtol=1e-6)


def test_session_keeps_model_and_context_manager(models):
    with kiln.Session(kiln.load(models.relu)) as s:
        gc.collect()  # the Model object is gone from here; the session keeps it
        assert s.run({"x": np.ones((1, 8), np.float32)})["y"].sum() == 8
        assert s.inputs[0].name == "x" and s.outputs[0].name == "y"
        assert s.peak_bytes >= 0
    assert s.closed
