#!/usr/bin/python3
"""End-to-end tests of `kiln freeze`: PyTorch modules exported with every
forward argument as a graph input, frozen with kiln, compared with PyTorch's
functools.partial(module.forward, **frozen)(**free).

usage: test_freeze_torch.py KILN_BINARY [--ort PYTHON] [--filter SUBSTRING]

The frozen model is run by kiln (when kiln has all its operators) and by
onnxruntime (from the venv PYTHON, default /opt/kiln-venv/bin/python, when
present); it must pass onnx.checker.check_model(full_check=True).
"""
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore")
torch.manual_seed(0)

KILN = sys.argv[1] if len(sys.argv) > 1 else "build/kiln"
ORT_PY = "/opt/kiln-venv/bin/python"
FILTER = ""
for i, a in enumerate(sys.argv):
    if a == "--ort" and i + 1 < len(sys.argv):
        ORT_PY = sys.argv[i + 1]
    if a == "--filter" and i + 1 < len(sys.argv):
        FILTER = sys.argv[i + 1]
HAVE_ORT = os.path.exists(ORT_PY) and subprocess.run(
    [ORT_PY, "-c", "import onnxruntime"], capture_output=True).returncode == 0
TOL = 1e-5
TMP = tempfile.mkdtemp(prefix="kiln-freeze-")
failures = []
stats = {"kiln_runs": 0, "ort_runs": 0}


def kiln(*args, check=True):
    r = subprocess.run([KILN, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("kiln %s failed (%d): %s" % (" ".join(map(str, args)), r.returncode, r.stderr))
    return r


def export(module, args, names, path, opset, dynamic=None, script=False):
    m = torch.jit.script(module) if script else module
    torch.onnx.export(m, args, path, input_names=names, output_names=["y"], opset_version=opset,
                      dynamic_axes=dynamic or {})
    return path


def np_of(v):
    return v.detach().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def run_ort(model, feeds):
    d = tempfile.mkdtemp(dir=TMP)
    for k, v in feeds.items():
        np.save(os.path.join(d, k + ".npy"), v)
    code = ("import sys,os,numpy as np,onnxruntime as ort\n"
            "d=sys.argv[2];s=ort.InferenceSession(sys.argv[1],providers=['CPUExecutionProvider'])\n"
            "f={i.name:np.load(os.path.join(d,i.name+'.npy')) for i in s.get_inputs()}\n"
            "np.save(os.path.join(d,'out_y.npy'),s.run(['y'],f)[0])\n")
    r = subprocess.run([ORT_PY, "-c", code, model, d], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("onnxruntime failed on %s: %s" % (model, r.stderr[-2000:]))
    return np.load(os.path.join(d, "out_y.npy"))


def run_kiln(model, feeds):
    """Output y from kiln, or None when kiln lacks an operator."""
    d = tempfile.mkdtemp(dir=TMP)
    args = []
    for k, v in feeds.items():
        p = os.path.join(d, k + ".npy")
        np.save(p, v)
        args += ["-i", "%s=@%s" % (k, p)]
    r = kiln("run", model, *args, "--out", d, check=False)
    if r.returncode != 0:
        if "not supported" in r.stderr:
            return None
        raise AssertionError("kiln run failed on %s: %s" % (model, r.stderr))
    return np.load(os.path.join(d, "y.npy"))


def ops_of(path):
    m = onnx.load(path)
    ops = []

    def walk(g):
        for n in g.node:
            ops.append(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
    walk(m.graph)
    return ops


def freeze_and_compare(name, module, args, names, frozen, opset, dynamic=None, script=False, dims=(),
                       bind_files=False, free_runs=None, extra_check=None):
    """frozen: {name: value}; free inputs are the others. free_runs: list of
    dicts of alternative free inputs (e.g. other batch sizes)."""
    src = export(module, args, names, os.path.join(TMP, "%s_%d.onnx" % (name, opset)), opset, dynamic, script)
    out = os.path.join(TMP, "%s_%d_frozen.onnx" % (name, opset))
    rep = out + ".json"
    binds = []
    for k, v in frozen.items():
        a = np_of(v)
        if bind_files:
            p = os.path.join(TMP, "%s_%d_%s.npy" % (name, opset, k))
            np.save(p, a)
            binds += ["--bind", "%s=@%s" % (k, p)]
        elif a.dtype == np.bool_:
            binds += ["--bind", "%s=%s" % (k, "true" if a.item() else "false")]
        else:
            binds += ["--bind", "%s=%s" % (k, json.dumps(a.tolist()))]
    for d in dims:
        binds += ["--dim", d]
    kiln("freeze", src, "-o", out, "--quiet", "--report", rep, *binds)
    m = onnx.load(out)
    onnx.checker.check_model(m, full_check=True)
    orig = onnx.load(src)
    assert [o.name for o in m.graph.output] == [o.name for o in orig.graph.output], "outputs renamed"
    assert [x.opset_import for x in [m]] == [orig.opset_import] or list(m.opset_import) == list(orig.opset_import)
    want_inputs = [i.name for i in orig.graph.input if i.name not in frozen]
    got_inputs = [i.name for i in m.graph.input]
    assert got_inputs == want_inputs, "inputs %s, expected %s" % (got_inputs, want_inputs)
    fn = functools.partial(module.forward, **frozen)
    free_names = [n for n in names if n not in frozen]
    runs = [{n: a for n, a in zip(names, args) if n not in frozen}] + list(free_runs or [])
    for feeds in runs:
        ref = np_of(fn(**feeds))
        np_feeds = {k: np_of(v) for k, v in feeds.items() if k in free_names}
        got_any = False
        if HAVE_ORT:
            y = run_ort(out, np_feeds)
            assert y.shape == ref.shape, "onnxruntime shape %s, torch %s" % (y.shape, ref.shape)
            np.testing.assert_allclose(y, ref, rtol=TOL, atol=TOL, err_msg="onnxruntime vs torch")
            stats["ort_runs"] += 1
            got_any = True
        y = run_kiln(out, np_feeds)
        if y is not None:
            assert y.shape == ref.shape, "kiln shape %s, torch %s" % (y.shape, ref.shape)
            np.testing.assert_allclose(y, ref, rtol=TOL, atol=TOL, err_msg="kiln vs torch")
            stats["kiln_runs"] += 1
            got_any = True
        assert got_any, "neither kiln nor onnxruntime could run the frozen model"
    if extra_check:
        extra_check(ops_of(out), m, json.load(open(rep)))
    return out


# ---- modules ----

class ScaleBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, scale_factor, bias):
        return self.lin(x) * scale_factor + bias


class MultOrAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.m = nn.Parameter(torch.randn(4))
        self.a = nn.Parameter(torch.randn(4))

    def forward(self, x, use_mult: bool):
        if use_mult:
            return x * self.m
        else:
            return x + self.a


class WhereMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1 = nn.Linear(4, 4)
        self.lin2 = nn.Linear(4, 4)

    def forward(self, x, t, sel):
        c = (x.mean() > t) & sel
        return torch.where(c, self.lin1(x), self.lin2(x))


class TwoLinear(nn.Module):
    def forward(self, x, w1, b1, w2):
        return F.linear(F.linear(x, w1, b1).relu(), w2)


class RepeatLoop(nn.Module):
    def forward(self, x, n: int):
        for i in range(n):
            x = x * 0.5 + i
        return x


class ViewLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 5)

    def forward(self, x):
        return self.lin(x.view(x.size(0), -1))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0)
        self.enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def forward(self, src, mask):
        return self.enc(src, mask=mask)


class ExpandAdd(nn.Module):
    def forward(self, x, m):
        return x + m.expand(x.size(0), x.size(1), 4)


def no_op(*names):
    def chk(ops, m, rep):
        left = [o for o in ops if o in names]
        assert not left, "%s remain in %s" % (left, ops)
    return chk


def case_scale_bias(opset):
    x = torch.randn(2, 4)
    def chk(ops, m, rep):
        d = m.graph.input[0].type.tensor_type.shape.dim[0]
        assert d.dim_param == "batch", "dynamic batch lost: %s" % d
        assert set(rep["inputs_removed"]) == {"scale_factor", "bias"}
    freeze_and_compare("scale_bias", ScaleBias().eval(), (x, torch.tensor(2.0), torch.tensor(0.5)),
                       ["x", "scale_factor", "bias"], {"scale_factor": torch.tensor(2.0), "bias": torch.tensor(0.5)},
                       opset, dynamic={"x": {0: "batch"}, "y": {0: "batch"}},
                       free_runs=[{"x": torch.randn(7, 4)}], extra_check=chk)


def case_if(opset):
    mod = MultOrAdd().eval()
    x = torch.randn(3, 4)
    for flag in (True, False):
        freeze_and_compare("if_%s" % flag, mod, (x, torch.tensor(flag)), ["x", "use_mult"],
                           {"use_mult": torch.tensor(flag)}, opset, dynamic={"x": {0: "batch"}}, script=True,
                           free_runs=[{"x": torch.randn(5, 4)}], extra_check=no_op("If"))


def case_where(opset):
    mod = WhereMean().eval()
    x = torch.randn(3, 4)
    # threshold frozen: the condition still depends on x
    def keeps_where(ops, m, rep):
        assert "Where" in ops, ops
    freeze_and_compare("where_t", mod, (x, torch.tensor(0.0), torch.tensor(True)), ["x", "t", "sel"],
                       {"t": torch.tensor(0.1)}, opset,
                       free_runs=[{"x": torch.randn(3, 4) + 1, "sel": torch.tensor(True)},
                                  {"x": torch.randn(3, 4) - 1, "sel": torch.tensor(False)}],
                       extra_check=keeps_where)
    # selector frozen false: lin1 and the Where disappear
    def one_branch(ops, m, rep):
        assert "Where" not in ops and ops.count("Gemm") + ops.count("MatMul") == 1, ops
    freeze_and_compare("where_sel", mod, (x, torch.tensor(0.0), torch.tensor(False)), ["x", "t", "sel"],
                       {"sel": torch.tensor(False)}, opset,
                       free_runs=[{"x": torch.randn(3, 4), "t": torch.tensor(5.0)}], extra_check=one_branch)


def case_linear_files(opset):
    x = torch.randn(2, 4)
    w1, b1, w2 = torch.randn(6, 4), torch.randn(6), torch.randn(3, 6)
    def chk(ops, m, rep):
        assert len(m.graph.input) == 1
    freeze_and_compare("linear_npy", TwoLinear(), (x, w1, b1, w2), ["x", "w1", "b1", "w2"],
                       {"w1": w1, "b1": b1, "w2": w2}, opset, dynamic={"x": {0: "batch"}}, bind_files=True,
                       free_runs=[{"x": torch.randn(5, 4)}], extra_check=chk)


def case_loop(opset):
    x = torch.randn(2, 4)
    for n in (3, 0):
        freeze_and_compare("loop_%d" % n, RepeatLoop(), (x, 2), ["x", "n"], {"n": n}, opset, script=True,
                           extra_check=no_op("Loop"))


def case_view(opset):
    x = torch.randn(1, 3, 4)
    freeze_and_compare("view_b1", ViewLinear().eval(), (x,), ["x"], {}, opset, dynamic={"x": {0: "batch"}},
                       dims=["batch=1"], extra_check=no_op("Shape", "Gather", "Concat", "Unsqueeze"))
    def shrunk(ops, m, rep):
        assert ops.count("Shape") + ops.count("Gather") + ops.count("Concat") + ops.count("Unsqueeze") == 0, ops
        assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    freeze_and_compare("view_dyn", ViewLinear().eval(), (torch.randn(2, 3, 4),), ["x"], {}, opset,
                       dynamic={"x": {0: "batch"}}, free_runs=[{"x": torch.randn(6, 3, 4)}], extra_check=shrunk)


def case_transformer(opset):
    torch.manual_seed(1)
    mod = Encoder().eval()
    src = torch.randn(5, 2, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    def chk(ops, m, rep):
        assert "mask" in rep["inputs_removed"]
    freeze_and_compare("encoder", mod, (src, mask), ["src", "mask"], {"mask": mask}, opset, extra_check=chk)


def case_loop_scan(opset):
    """A Loop built with onnx.helper: carried value, scan output, and an If on
    the iteration number inside the body (exported models rarely have scan
    outputs). Checked by onnxruntime against numpy and by kiln check."""
    from onnx import helper as h, TensorProto as T
    then_g = h.make_graph([h.make_node("Add", ["acc_new", "hundred"], ["t_out"])], "then", [],
                          [h.make_tensor_value_info("t_out", T.FLOAT, [2])],
                          [h.make_tensor("hundred", T.FLOAT, [], [100.0])])
    else_g = h.make_graph([h.make_node("Identity", ["acc_new"], ["e_out"])], "else", [],
                          [h.make_tensor_value_info("e_out", T.FLOAT, [2])])
    body = h.make_graph([
        h.make_node("Cast", ["i"], ["fi"], to=T.FLOAT),
        h.make_node("Mul", ["x", "fi"], ["xi"]),
        h.make_node("Add", ["acc", "xi"], ["acc_new"]),
        h.make_node("Equal", ["i", "zero_c"], ["is0"]),
        h.make_node("If", ["is0"], ["scan_v"], then_branch=then_g, else_branch=else_g),
        h.make_node("Identity", ["cond"], ["cond_out"]),
    ], "body", [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond", T.BOOL, []),
                h.make_tensor_value_info("acc", T.FLOAT, [2])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []), h.make_tensor_value_info("acc_new", T.FLOAT, [2]),
         h.make_tensor_value_info("scan_v", T.FLOAT, [2])], [h.make_tensor("zero_c", T.INT64, [], [0])])
    g = h.make_graph([h.make_node("Loop", ["n", "c", "a0"], ["acc_f", "scans"], body=body),
                      h.make_node("Add", ["acc_f", "x"], ["y"])], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [2]), h.make_tensor_value_info("n", T.INT64, []),
                      h.make_tensor_value_info("c", T.BOOL, []), h.make_tensor_value_info("a0", T.FLOAT, [2])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2]), h.make_tensor_value_info("scans", T.FLOAT, ["s", 2])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 7
    src = os.path.join(TMP, "loop_scan_%d.onnx" % opset)
    onnx.save(m, src)
    x, a0 = np.array([1.0, 2.0], np.float32), np.array([0.5, -1.0], np.float32)
    for n in (4, 1, 0):
        out = os.path.join(TMP, "loop_scan_%d_%d.onnx" % (opset, n))
        kiln("freeze", src, "-o", out, "--quiet", "--bind", "n=%d" % n, "--bind", "c=true")
        onnx.checker.check_model(onnx.load(out), full_check=True)
        ops = ops_of(out)
        assert "Loop" not in ops and "If" not in ops, ops
        kiln("check", src, out, "--bind", "n=%d" % n, "--bind", "c=true")
        acc, scans = a0.copy(), []
        for i in range(n):
            acc = acc + x * i
            scans.append(acc + 100 if i == 0 else acc)
        if HAVE_ORT:
            d = tempfile.mkdtemp(dir=TMP)
            np.save(os.path.join(d, "x.npy"), x)
            np.save(os.path.join(d, "a0.npy"), a0)
            code = ("import sys,os,numpy as np,onnxruntime as ort\n"
                    "d=sys.argv[2];s=ort.InferenceSession(sys.argv[1],providers=['CPUExecutionProvider'])\n"
                    "r=s.run(None,{'x':np.load(d+'/x.npy'),'a0':np.load(d+'/a0.npy')})\n"
                    "np.save(d+'/y.npy',r[0]);np.save(d+'/s.npy',r[1])\n")
            r = subprocess.run([ORT_PY, "-c", code, out, d], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            np.testing.assert_allclose(np.load(d + "/y.npy"), acc + x, rtol=TOL, atol=TOL)
            s_ = np.load(d + "/s.npy")
            np.testing.assert_allclose(s_, np.array(scans, np.float32).reshape(n, 2), rtol=TOL, atol=TOL)
            stats["ort_runs"] += 1


def case_expand(opset):
    """Expand to a shape taken from x, with x's dims dynamic: the shape chain
    (Shape, Gather, Concat, Equal, Where) goes, and so does the Expand since
    the Add broadcasts the same way."""
    m = torch.randn(1, 1, 4)
    def chk(ops, model, rep):
        assert ops == ["Add"], ops
    freeze_and_compare("expand", ExpandAdd(), (torch.randn(2, 3, 4), m), ["x", "m"], {"m": m}, opset,
                       dynamic={"x": {0: "b", 1: "s"}}, free_runs=[{"x": torch.randn(5, 1, 4)}], extra_check=chk)


CASES = [case_scale_bias, case_if, case_where, case_linear_files, case_loop, case_view, case_transformer, case_loop_scan, case_expand]


# ---- bad inputs ----

def bad_cases():
    src = export(ScaleBias().eval(), (torch.randn(2, 4), torch.tensor(2.0), torch.tensor(0.5)),
                 ["x", "scale_factor", "bias"], os.path.join(TMP, "bad.onnx"), 13, {"x": {0: "batch"}})
    out = os.path.join(TMP, "bad_out.onnx")
    bad_npy = os.path.join(TMP, "bad.npy")
    np.save(bad_npy, np.zeros((2, 2), np.float32))
    junk = os.path.join(TMP, "junk.onnx")
    open(junk, "wb").write(b"\x08\x07\x12\xff\xff not a model")
    cases = [
        (["--bind", "nope=1"], "is not an input"),
        (["--bind", "bias=1", "--bind", "bias=2"], "bound twice"),
        (["--bind", "bias=[1,2]"], "bias"),
        (["--bind", "bias=@" + bad_npy], "bias"),
        (["--bind", "bias=@/nonexistent/v.npy"], "bias"),
        (["--bind", "x=@" + bad_npy], "float32[batch,4]"),
        (["--dim", "nosuch=3"], "nosuch"),
    ]
    for args, needle in cases:
        if os.path.exists(out):
            os.remove(out)
        r = kiln("freeze", src, "-o", out, *args, check=False)
        assert r.returncode != 0, "kiln freeze %s succeeded" % args
        assert needle in r.stderr, "message for %s lacks %r: %s" % (args, needle, r.stderr)
        assert not os.path.exists(out), "output written despite error for %s" % args
    # missing output folders are created; a file in the way is an error naming it
    nested = os.path.join(TMP, "made", "by", "freeze")
    shutil.rmtree(os.path.join(TMP, "made"), ignore_errors=True)
    kiln("freeze", src, "-o", os.path.join(nested, "out.onnx"), "--quiet", "--bind", "bias=1",
         "--report", os.path.join(nested, "rep", "r.json"))
    assert os.path.isfile(os.path.join(nested, "out.onnx")) and os.path.isfile(os.path.join(nested, "rep", "r.json"))
    r = kiln("freeze", src, "-o", os.path.join(junk, "out.onnx"), "--bind", "bias=1", check=False)
    assert r.returncode != 0 and "is not a folder" in r.stderr and junk in r.stderr, r.stderr
    r = kiln("freeze", junk, "-o", out, check=False)
    assert r.returncode != 0 and not os.path.exists(out), r.stderr
    for cmd in ("freeze", "check"):
        r = kiln(cmd, "--help", check=False)
        assert r.returncode == 0 and "usage" in r.stdout
    # kiln check catches a wrong freeze: bound with 2.0, checked against 3.0
    frozen = os.path.join(TMP, "bad_frozen.onnx")
    kiln("freeze", src, "-o", frozen, "--quiet", "--bind", "scale_factor=2.0", "--bind", "bias=0.5")
    r = kiln("check", src, frozen, "--bind", "scale_factor=2.0", "--bind", "bias=0.5", check=False)
    if "not supported" not in r.stderr:
        assert r.returncode == 0, r.stdout + r.stderr
        r = kiln("check", src, frozen, "--bind", "scale_factor=3.0", "--bind", "bias=0.5", check=False)
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)


def misc_cases():
    """Fold limit, --shape, an input that had an initializer default, --prune-dead-inputs."""
    from onnx import helper as h, TensorProto as T, numpy_helper as nh
    g = h.make_graph([h.make_node("ConstantOfShape", ["shp"], ["big"], value=h.make_tensor("v", T.FLOAT, [1], [1.0])),
                      h.make_node("Add", ["x", "big"], ["y0"]), h.make_node("Mul", ["y0", "d"], ["y"])], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, ["b", 1024]), h.make_tensor_value_info("d", T.FLOAT, [1]),
                      h.make_tensor_value_info("unused", T.FLOAT, [3])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["b", 1024])],
                     [nh.from_array(np.array([1024, 1024], np.int64), "shp"),
                      nh.from_array(np.array([3.0], np.float32), "d")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 7
    src = os.path.join(TMP, "big.onnx")
    onnx.save(m, src)
    out, rep = os.path.join(TMP, "big_f.onnx"), os.path.join(TMP, "big_f.json")
    kiln("freeze", src, "-o", out, "--quiet", "--report", rep, "--bind", "d=[2.0]", "--shape", "x=1024,1024",
         "--prune-dead-inputs")
    r = json.load(open(rep))
    assert r["folds_skipped"] and "fold limit" in r["folds_skipped"][0]["reason"], r
    assert r["dims_fixed"] == {"b": 1024}, r
    assert set(r["inputs_removed"]) == {"d", "unused"}, r
    fm = onnx.load(out)
    onnx.checker.check_model(fm, full_check=True)
    assert [i.name for i in fm.graph.input] == ["x"]
    assert [d.dim_value for d in fm.graph.input[0].type.tensor_type.shape.dim] == [1024, 1024]
    assert [d.dim_value for d in fm.graph.output[0].type.tensor_type.shape.dim] == [1024, 1024]
    assert "ConstantOfShape" in ops_of(out)
    kiln("check", src, out, "--bind", "d=[2.0]", "--runs", "1")
    kiln("freeze", src, "-o", out, "--quiet", "--fold-limit", "100000000", "--shape", "x=1,1024", "--verify")
    assert "ConstantOfShape" not in ops_of(out)
    # shape errors the rules can tell are reported when the model is planned,
    # naming the node or value
    g = h.make_graph([h.make_node("Reshape", ["x", "s"], ["y"], name="two_minus_ones")], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [2, 6])], [h.make_tensor_value_info("y", T.FLOAT, None)],
                     [nh.from_array(np.array([-1, -1], np.int64), "s")])
    bad = os.path.join(TMP, "bad_reshape.onnx")
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), bad)
    r = kiln("run", bad, "-i", "x=[[1,2,3,4,5,6],[1,2,3,4,5,6]]", check=False)
    assert r.returncode != 0 and "two_minus_ones" in r.stderr and "-1" in r.stderr, r.stderr
    g = h.make_graph([h.make_node("Add", ["x", "x"], ["y"], name="adder")], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [2, 6])], [h.make_tensor_value_info("y", T.FLOAT, [2, 5])])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), bad)
    r = kiln("run", bad, "-i", "x=[[1,2,3,4,5,6],[1,2,3,4,5,6]]", check=False)
    assert r.returncode != 0 and "'y'" in r.stderr and "dim 1 = 5" in r.stderr, r.stderr
    # output dims declared as expressions over the input's symbols (as
    # dynamo exports write them) become numbers once the symbols are fixed:
    # Conv k3 s2 p1 gives floor((h - 1) / 2) + 1
    w = np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32)
    g = h.make_graph([h.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                      h.make_node("Shape", ["y"], ["s"])], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [1, 3, "height", "width"])],
                     [h.make_tensor_value_info("y", T.FLOAT, [1, 4, "floor(height/2 - 1/2) + 1", "floor(width/2 - 1/2) + 1"]),
                      h.make_tensor_value_info("s", T.INT64, [4])],
                     [nh.from_array(w, "w")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 7
    src = os.path.join(TMP, "expr.onnx")
    onnx.save(m, src)
    kiln("freeze", src, "-o", out, "--quiet", "--dim", "height=64", "--dim", "width=31")
    fm = onnx.load(out)
    dims = [(d.dim_value, d.dim_param) for d in fm.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [(1, ""), (4, ""), (32, ""), (16, "")], dims
    assert "Shape" not in ops_of(out), ops_of(out)
    x = np.random.RandomState(1).randn(1, 3, 64, 31).astype(np.float32)
    got = run_kiln(out, {"x": x})
    assert got is None or got.shape == (1, 4, 32, 16), got.shape


def main():
    ran = 0
    for case in CASES:
        for opset in (11, 13, 17):
            label = "%s@%d" % (case.__name__, opset)
            if FILTER and FILTER not in label:
                continue
            try:
                case(opset)
                print("ok   %s" % label)
            except Exception as e:  # noqa: BLE001 - report every case
                failures.append(label)
                print("FAIL %s: %s" % (label, str(e)[:3000]))
            ran += 1
    if not FILTER or FILTER in "bad_inputs":
        try:
            bad_cases()
            print("ok   bad_inputs")
        except Exception as e:  # noqa: BLE001
            failures.append("bad_inputs")
            print("FAIL bad_inputs: %s" % e)
    if not FILTER or FILTER in "misc":
        try:
            misc_cases()
            print("ok   misc")
        except Exception as e:  # noqa: BLE001
            failures.append("misc")
            print("FAIL misc: %s" % e)
    print("%d failures; kiln ran %d frozen models, onnxruntime %d%s" % (
        len(failures), stats["kiln_runs"], stats["ort_runs"], "" if HAVE_ORT else " (onnxruntime not found)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
