"""`kiln bench --profile`: the per-operator table lists exactly the model's
operators with their node counts (a Conv fused with its Relu as one
"Conv+Relu" entry), node times fit inside the measured runs, every top-level
node ran once per timed run (the warm-up is not counted), output shapes are
the ones ONNX shape inference gives, and nodes inside If/Loop bodies are
listed as ENCLOSING/NODE with one call per iteration. Also the committed
small_cnn model, the text report, --top and its errors."""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_testlib import Tally  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LOOP_TRIPS = 3


def make_model(path):
    """x[1,3,8,8] -> Conv -> Relu -> Conv -> Add -> Flatten -> MatMul = y;
    an If on sum(|x|) > 0 (always true for the random input) whose then
    branch is Mul -> Sigmoid (the Sigmoid unnamed); a Loop of LOOP_TRIPS
    iterations whose body is Add -> Tanh."""
    rng = np.random.default_rng(0)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    inits = [
        numpy_helper.from_array(f32(rng.standard_normal((4, 3, 3, 3))), "w1"),
        numpy_helper.from_array(f32(rng.standard_normal((4, 4, 3, 3))), "w2"),
        numpy_helper.from_array(f32(rng.standard_normal((1, 4, 1, 1))), "b2"),
        numpy_helper.from_array(f32(rng.standard_normal((256, 5))), "wm"),
        numpy_helper.from_array(np.array(LOOP_TRIPS, dtype=np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "keep_going"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
        numpy_helper.from_array(np.ones((1, 5), dtype=np.float32), "one"),
    ]
    then_g = helper.make_graph(
        [helper.make_node("Mul", ["y", "two"], ["t0"], name="mul"), helper.make_node("Sigmoid", ["t0"], ["t1"])],
        "then", [], [helper.make_tensor_value_info("t1", TensorProto.FLOAT, [1, 5])])
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["y"], ["e0"], name="neg")],
        "else", [], [helper.make_tensor_value_info("e0", TensorProto.FLOAT, [1, 5])])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="carry_cond"),
         helper.make_node("Add", ["v_in", "one"], ["v_mid"], name="step_add"),
         helper.make_node("Tanh", ["v_mid"], ["v_out"], name="step_tanh")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 5])])
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "b2"], ["a2"], name="add_bias"),
        helper.make_node("Flatten", ["a2"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "wm"], ["y"], name="head"),
        helper.make_node("Abs", ["x"], ["ax"], name="abs"),
        helper.make_node("ReduceSum", ["ax"], ["sx"], name="sum", keepdims=0),
        helper.make_node("Greater", ["sx", "zero"], ["cond"], name="positive"),
        helper.make_node("If", ["cond"], ["z"], name="branch", then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trips", "keep_going", "y"], ["w"], name="repeat", body=body),
    ]
    g = helper.make_graph(
        nodes, "profiled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5]) for n in ("y", "z", "w")], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return m


def bench(kiln, path, *extra):
    return subprocess.run([kiln, "bench", path, "--threads", "1", "--runs", "5", "--warmup", "2", *extra],
                          capture_output=True, text=True, timeout=300)


def expanded_counts(ops):
    """{op: nodes} from the report's op rows, "Conv+Relu" counting once for each."""
    c = collections.Counter()
    for row in ops:
        for part in row["op"].split("+"):
            c[part] += row["nodes"]
    return c


def check_common(t, what, r, runs):
    p = r["profile"]
    for key in ("model", "threads", "runs", "median_ms", "min_ms", "peak_arena_bytes"):
        t.ok(key in r, f"{what}: bench JSON keeps '{key}'")
    t.ok(p["runs"] == runs, f"{what}: profile runs", str(p["runs"]))
    top_share = sum(o["share"] for o in p["ops"])
    top_ms = sum(o["ms"] for o in p["ops"])
    # node times are measured inside the runs' times: they cannot exceed them,
    # and on these models the nodes are most of a run
    t.ok(p["nodes_ms"] <= p["run_ms"] * 1.0001, f"{what}: node time within the run", f"{p['nodes_ms']} {p['run_ms']}")
    t.ok(abs(top_ms - p["nodes_ms"]) <= 1e-5 * len(p["ops"]) + 1e-9, f"{what}: op rows add up to nodes_ms")
    t.ok(50.0 < top_share <= 100.01, f"{what}: top-level shares sum to most of the run", f"{top_share:.2f}%")
    t.ok(abs(top_share + p["other_share"] - 100.0) < 0.01, f"{what}: shares with 'other' make 100%",
         f"{top_share + p['other_share']:.3f}")
    t.ok(all(o["share"] >= 0 and o["ms"] >= 0 for o in p["ops"]), f"{what}: no negative times")
    ms = [n["ms"] for n in p["top"]]
    t.ok(ms == sorted(ms, reverse=True), f"{what}: slowest first")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--models", default=os.path.join(HERE, "..", "models"))
    a = ap.parse_args()
    t = Tally("bench_profile")
    with tempfile.TemporaryDirectory(prefix="kiln-prof-") as tmp:
        path = os.path.join(tmp, "m.onnx")
        m = make_model(path)
        out = bench(a.kiln, path, "--profile", "--json", "--top", "0")
        if not t.ok(out.returncode == 0, "bench --profile --json runs", out.stderr):
            t.finish()
        r = json.loads(out.stdout)
        p = r["profile"]
        check_common(t, "built model", r, 5)

        want = collections.Counter(n.op_type for n in m.graph.node)
        t.ok(expanded_counts(p["ops"]) == want, "op types and counts are the model's",
             f"{dict(expanded_counts(p['ops']))} vs {dict(want)}")
        keys = {o["op"] for o in p["ops"]}
        t.ok("Conv+Relu" in keys and "Conv" in keys, "conv1 reported fused with relu1, conv2 alone", str(keys))

        by_name = {n["name"]: n for n in p["top"]}
        top_names = {n.name for n in m.graph.node if n.op_type != "Relu"}  # relu1 runs inside conv1
        t.ok({n for n, e in by_name.items() if e["depth"] == 0} == top_names, "top-level records are the nodes",
             str(sorted(by_name)))
        t.ok(by_name.get("conv1", {}).get("fused") == "Relu", "conv1's record names the fused Relu")
        t.ok(all(e["calls_per_run"] == 1 for e in by_name.values() if e["depth"] == 0),
             "each top-level node once per timed run (warm-up not counted)")

        # output 0 shapes against ONNX shape inference
        inferred = onnx.shape_inference.infer_shapes(m)
        shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
                  for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
        shapes["r1"] = shapes["c1"]
        for n in m.graph.node:
            if n.op_type == "Relu" or n.output[0] not in shapes:
                continue
            want_shape = "[" + ",".join(str(d) for d in shapes[n.output[0]]) + "]"
            got = by_name.get(n.name, {}).get("shape")
            # the fused conv1 writes relu1's output r1
            if n.name == "conv1":
                want_shape = "[" + ",".join(str(d) for d in shapes["r1"]) + "]"
            t.ok(got == want_shape, f"output shape of {n.name}", f"{got} vs {want_shape}")

        # subgraphs: the taken If branch and the Loop body, once per iteration
        nested = {n: e for n, e in by_name.items() if e["depth"] > 0}
        t.ok(set(n for n in nested if n.startswith("branch/")) >= {"branch/mul"}, "If branch nodes named branch/...",
             str(sorted(nested)))
        t.ok(any(re.fullmatch(r"branch/Sigmoid#\d+", n) for n in nested), "unnamed node named Op#index",
             str(sorted(nested)))
        t.ok(not any(n.startswith("branch/neg") for n in nested), "the branch not taken has no records")
        for n in ("repeat/step_add", "repeat/step_tanh", "repeat/carry_cond"):
            e = nested.get(n)
            t.ok(e is not None and e["calls_per_run"] == LOOP_TRIPS, f"{n} once per iteration",
                 str(e and e["calls_per_run"]))
        t.ok(nested.get("repeat/step_tanh", {}).get("shape") == "[1,5]", "loop body output shape")
        t.ok(expanded_counts(p["subgraph_ops"]) == collections.Counter({"Mul": 1, "Sigmoid": 1, "Identity": 1,
                                                                         "Add": 1, "Tanh": 1}),
             "subgraph ops table", str(p["subgraph_ops"]))
        for encl in ("branch", "repeat"):
            inner = sum(e["ms"] for n, e in nested.items() if n.startswith(encl + "/"))
            t.ok(by_name[encl]["ms"] >= inner, f"{encl}'s time holds its body's", f"{by_name[encl]['ms']} {inner}")

        # --top N, the text report, errors, no profile without --profile
        out = bench(a.kiln, path, "--profile", "--json", "--top", "2")
        t.ok(out.returncode == 0 and len(json.loads(out.stdout)["profile"]["top"]) == 2, "--top 2 lists two nodes")
        out = bench(a.kiln, path, "--json")
        t.ok(out.returncode == 0 and "profile" not in json.loads(out.stdout), "no profile without --profile")
        out = bench(a.kiln, path, "--profile")
        t.ok(out.returncode == 0, "text report runs", out.stderr)
        txt = out.stdout
        t.ok("time per operator type" in txt and "Conv+Relu" in txt and "(outside nodes)" in txt, "text: op table")
        t.ok("slowest 15 of" in txt and "repeat/step_tanh" in txt, "text: slowest nodes with nested names")
        t.ok("overlaps" in txt or "overlap" in txt, "text: says nested records overlap")
        for bad in ("-1", "x", ""):
            out = bench(a.kiln, path, "--profile", "--top", bad)
            t.ok(out.returncode == 2 and "--top" in out.stderr, f"--top '{bad}' refused", out.stderr)

    # a committed exporter model (torch.onnx.export(dynamo=True))
    cnn = os.path.join(a.models, "small_cnn", "model.onnx")
    meta = json.load(open(os.path.join(a.models, "small_cnn", "meta.json")))
    dims = []
    for sym, val in meta["dims"].items():
        dims += ["--dim", f"{sym}={val}"]
    g = onnx.load(cnn).graph
    out = bench(a.kiln, cnn, "--profile", "--json", *dims)
    if t.ok(out.returncode == 0, "small_cnn bench --profile", out.stderr):
        r = json.loads(out.stdout)
        check_common(t, "small_cnn", r, 5)
        want = collections.Counter(n.op_type for n in g.node)
        t.ok(expanded_counts(r["profile"]["ops"]) == want, "small_cnn: op types and counts are the model's",
             f"{dict(expanded_counts(r['profile']['ops']))} vs {dict(want)}")
    t.finish()


if __name__ == "__main__":
    main()
