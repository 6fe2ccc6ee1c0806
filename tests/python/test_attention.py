"""Attention with a KV cache against ONNX's reference implementation.

Builds opset-23 (and 24/25) Attention models with onnx.helper: GQA/MQA,
causal masking, past_key/past_value inputs and present_key/present_value
outputs, 3-D and 4-D layouts, masks, softcap and qk_matmul_output, at sizes
that span several of kiln's query and key blocks; runs them with `kiln run`
and compares every output with onnx.reference.ReferenceEvaluator. A decode
loop then feeds each step's present_* back as the next step's past_* and
checks the steps against the reference run on the whole sequence.

usage: /opt/kiln-venv/bin/python tests/python/test_attention.py KILN_BINARY
Skips (exit 0) when numpy, onnx >= 1.18 or its reference Attention is missing.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.ops.op_attention import _compute_attention  # noqa: F401
except ImportError as e:  # pragma: no cover
    print(f"SKIP test_attention: {e}")
    sys.exit(0)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402

KILN = os.path.abspath(sys.argv[1])
T = Tally("attention")
NP2TP = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, np.float64: TensorProto.DOUBLE,
         np.bool_: TensorProto.BOOL, np.int64: TensorProto.INT64}


def kiln(*args):
    return subprocess.run([KILN, *map(str, args)], capture_output=True, text=True, timeout=600)


def make_model(path, opset, inputs, outputs, **attrs):
    """inputs: list of (name, array or None); outputs: names ('' = omitted)."""
    node = helper.make_node("Attention", [n if a is not None else "" for n, a in inputs], outputs, **attrs)
    vin = [helper.make_tensor_value_info(n, NP2TP[a.dtype.type], a.shape) for n, a in inputs if a is not None]
    vout = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs if o]
    g = helper.make_graph([node], "attention", vin, vout)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    onnx.save(m, path)
    return m


def run_kiln(tmp, path, feeds, extra=()):
    args = []
    for n, a in feeds.items():
        p = os.path.join(tmp, f"in_{n}.npy")
        np.save(p, np.ascontiguousarray(a))
        args += ["-i", f"{n}=@{p}"]
    out = os.path.join(tmp, "out")
    r = kiln("run", path, *args, "--out", out, *extra)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return out, ""


def tol(dt):
    return (2e-3, 2e-3) if dt == np.float16 else (1e-4, 1e-5) if dt == np.float32 else (1e-9, 1e-12)


def case(name, tmp, opset, Q, K, V, mask=None, past=None, nonpad=None, outputs=("Y",), threads=None, **attrs):
    pk, pv = past if past is not None else (None, None)
    inputs = [("Q", Q), ("K", K), ("V", V), ("attn_mask", mask), ("past_key", pk), ("past_value", pv)]
    if opset >= 24:
        inputs.append(("nonpad_kv_seqlen", nonpad))
    while inputs[-1][1] is None:
        inputs.pop()
    path = os.path.join(tmp, f"{name}.onnx")
    m = make_model(path, opset, inputs, list(outputs), **attrs)
    feeds = {n: a for n, a in inputs if a is not None}
    want = ReferenceEvaluator(m).run(None, feeds)
    extra = ("--threads", threads) if threads else ()
    out, err = run_kiln(tmp, path, feeds, extra)
    if not T.ok(out is not None, name, err):
        return
    rtol, atol = tol(Q.dtype.type)
    k = 0
    for o in outputs:
        if not o:
            continue
        w = want[k]
        k += 1
        g = np.load(os.path.join(out, f"{o}.npy"))
        if not T.ok(g.shape == w.shape and g.dtype == w.dtype, f"{name} {o}", f"got {g.dtype}{g.shape}, want "
                    f"{w.dtype}{w.shape}"):
            continue
        wf, gf = w.astype(np.float64), g.astype(np.float64)
        with np.errstate(invalid="ignore"):
            good = (wf == gf) | (np.abs(wf - gf) <= atol + rtol * np.abs(wf)) | (np.isnan(wf) & np.isnan(gf))
            diff = np.abs(np.where(good, 0, wf - gf))
        T.ok(good.all(), f"{name} {o}", f"{int((~good).sum())} of {w.size} differ, max abs diff {np.nanmax(diff):.3g}")


def rnd(rng, *shape, dt=np.float32):
    return rng.standard_normal(shape).astype(dt)


def kv_cache_cases(tmp, rng):
    """The brief's core: opset 23, GQA, causal, past/present, 4-D and 3-D."""
    for (B, Hq, Hkv, S, P, D, Dv) in [(2, 8, 2, 5, 37, 16, 16), (1, 4, 1, 1, 300, 32, 24),
                                      (2, 6, 3, 45, 140, 8, 8), (1, 2, 2, 70, 0, 64, 64)]:
        tag = f"B{B}_h{Hq}x{Hkv}_s{S}_p{P}_d{D}x{Dv}"
        Q, K, V = rnd(rng, B, Hq, S, D), rnd(rng, B, Hkv, S, D), rnd(rng, B, Hkv, S, Dv)
        past = (rnd(rng, B, Hkv, P, D), rnd(rng, B, Hkv, P, Dv))
        outs = ("Y", "present_key", "present_value")
        case(f"4d_gqa_causal_cache_{tag}", tmp, 23, Q, K, V, past=past, outputs=outs, is_causal=1)
        case(f"4d_gqa_cache_{tag}_1thread", tmp, 23, Q, K, V, past=past, outputs=outs, threads=1)
        # 3-D packed layout, same numbers
        Q3 = Q.transpose(0, 2, 1, 3).reshape(B, S, Hq * D)
        K3 = K.transpose(0, 2, 1, 3).reshape(B, S, Hkv * D)
        V3 = V.transpose(0, 2, 1, 3).reshape(B, S, Hkv * Dv)
        case(f"3d_gqa_causal_cache_{tag}", tmp, 23, Q3, K3, V3, past=past, outputs=outs, is_causal=1,
             q_num_heads=Hq, kv_num_heads=Hkv)
        # a float mask over (q, total) and a bool mask over (batch, 1, q, total), with causal
        Tt = P + S
        fm = rnd(rng, S, Tt)
        bm = rng.random((B, 1, S, Tt)) > 0.3
        case(f"4d_cache_floatmask_causal_{tag}", tmp, 23, Q, K, V, mask=fm, past=past, outputs=outs, is_causal=1)
        case(f"4d_cache_boolmask_{tag}", tmp, 23, Q, K, V, mask=bm, past=past, outputs=outs)
        # every qk_matmul_output mode, softcap and an explicit scale (mode 0
        # without softcap: the function body gives the product before softcap
        # there, while onnx's Python reference returns it after)
        for mode in range(4):
            cap = {"softcap": 2.5} if mode else {}
            case(f"4d_cache_qk_mode{mode}_{tag}", tmp, 23, Q, K, V, mask=fm, past=past,
                 outputs=("Y", "present_key", "present_value", "qk"), is_causal=1, scale=0.3,
                 qk_matmul_output_mode=mode, **cap)


def more_cases(tmp, rng):
    B, Hq, Hkv, S, L, D = 2, 4, 2, 9, 200, 16
    Q, K, V = rnd(rng, B, Hq, S, D), rnd(rng, B, Hkv, L, D), rnd(rng, B, Hkv, L, D)
    # opset 24: external cache with nonpad_kv_seqlen (and a short attn_mask)
    nonpad = np.array([150, 12], dtype=np.int64)
    case("24_nonpad_causal", tmp, 24, Q, K, V, nonpad=nonpad, is_causal=1)
    case("24_nonpad_shortmask", tmp, 24, Q, K, V, mask=rng.random((S, 160)) > 0.2, nonpad=nonpad)
    # opset 25: sliding window, with and without causal
    case("25_window_causal", tmp, 25, Q, K, V, is_causal=1, left_window_size=40, right_window_size=0)
    case("25_window_bidir", tmp, 25, Q, K, V, left_window_size=3, right_window_size=70)
    # a fully masked row gives zeros
    m = np.ones((S, L), dtype=bool)
    m[2] = False
    case("23_fully_masked_row", tmp, 23, Q, K, V, mask=m, outputs=("Y", "", "", "qk"), qk_matmul_output_mode=3)
    # float16 and double
    case("23_fp16_causal", tmp, 23, Q.astype(np.float16), K.astype(np.float16), V.astype(np.float16), is_causal=1)
    case("23_f64_softcap", tmp, 23, Q.astype(np.float64), K.astype(np.float64), V.astype(np.float64), softcap=3.0)
    case("23_f16_softmax_f32", tmp, 23, Q.astype(np.float16), K.astype(np.float16), V.astype(np.float16),
         softmax_precision=int(TensorProto.FLOAT))


def decode_loop(tmp, rng):
    """Prefill + decode steps with present_* fed back as past_* by kiln run
    --state; the last step equals the reference on the whole sequence."""
    B, Hq, Hkv, D, P0, steps = 1, 4, 2, 16, 6, 5
    path = os.path.join(tmp, "decode.onnx")
    pk, pv = rnd(rng, B, Hkv, P0, D), rnd(rng, B, Hkv, P0, D)
    node = helper.make_node("Attention", ["Q", "K", "V", "", "past_key", "past_value"],
                            ["Y", "present_key", "present_value"], is_causal=1)
    f = TensorProto.FLOAT
    vin = [helper.make_tensor_value_info("Q", f, [B, Hq, "s", D]), helper.make_tensor_value_info("K", f, [B, Hkv, "s", D]),
           helper.make_tensor_value_info("V", f, [B, Hkv, "s", D]),
           helper.make_tensor_value_info("past_key", f, [B, Hkv, "p", D]),
           helper.make_tensor_value_info("past_value", f, [B, Hkv, "p", D])]
    vout = [helper.make_tensor_value_info(n, f, None) for n in ("Y", "present_key", "present_value")]
    m = helper.make_model(helper.make_graph([node], "decode", vin, vout),
                          opset_imports=[helper.make_opsetid("", 23)])
    m.ir_version = 10
    onnx.save(m, path)
    Qs, Ks, Vs = rnd(rng, B, Hq, steps, D), rnd(rng, B, Hkv, steps, D), rnd(rng, B, Hkv, steps, D)
    want = ReferenceEvaluator(m).run(None, {"Q": Qs, "K": Ks, "V": Vs, "past_key": pk, "past_value": pv})
    # kiln: one call per token, each step's present_* the next one's past_*
    # (the cache grows, so the steps are separate runs)
    ys = []
    for t in range(steps):
        feeds = {"Q": Qs[:, :, t:t + 1], "K": Ks[:, :, t:t + 1], "V": Vs[:, :, t:t + 1], "past_key": pk,
                 "past_value": pv}
        out, err = run_kiln(tmp, path, feeds)
        if not T.ok(out is not None, f"decode step {t}", err):
            return
        ys.append(np.load(os.path.join(out, "Y.npy")))
        pk = np.load(os.path.join(out, "present_key.npy"))
        pv = np.load(os.path.join(out, "present_value.npy"))
    for n, g, w in (("Y", np.concatenate(ys, axis=2), want[0]), ("present_key", pk, want[1]),
                    ("present_value", pv, want[2])):
        T.ok(g.shape == w.shape and np.allclose(g, w, rtol=1e-4, atol=1e-5), f"decode loop {n}",
             f"shape {g.shape} vs {w.shape}")


def main():
    if not hasattr(onnx.reference.ops.op_attention, "Attention"):
        print("SKIP test_attention: onnx has no reference Attention")
        sys.exit(0)
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        kv_cache_cases(tmp, rng)
        more_cases(tmp, rng)
        decode_loop(tmp, rng)
    T.finish()


main()
