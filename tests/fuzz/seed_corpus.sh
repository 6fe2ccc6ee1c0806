#!/bin/sh
# Seeds the fuzz corpora with a small sample of real inputs (never committed):
#   seed_corpus.sh OUT_DIR [ONNX_TESTDATA]
# OUT_DIR/<target>/ gets models and tensors from the ONNX backend test data,
# .npy files made with numpy (when available) and value literals.
set -eu
out=$1
data=${2:-/usr/share/libonnx-testdata/data}
mkdir -p "$out/model" "$out/run" "$out/freeze" "$out/pb" "$out/npy" "$out/value"
# The system Python has onnx and numpy (a python3 earlier on PATH may not).
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

# Models: operators kiln runs today and a few control-flow ones, plus every
# 25th node test for variety; small files only.
n=0
for d in "$data"/node/test_add "$data"/node/test_add_bcast "$data"/node/test_sub "$data"/node/test_mul \
          "$data"/node/test_div "$data"/node/test_if "$data"/node/test_loop11 "$data"/node/test_scan9_sum \
          "$data"/node/test_range_float_type_positive_delta_expanded "$data"/simple/* $(ls -d "$data"/node/* | awk 'NR % 25 == 0'); do
    [ -f "$d/model.onnx" ] || continue
    size=$(stat -c %s "$d/model.onnx")
    [ "$size" -le 65536 ] || continue
    name=$(basename "$d")
    cp "$d/model.onnx" "$out/model/$name.onnx"
    cp "$d/model.onnx" "$out/run/$name.onnx"
    cp "$d/model.onnx" "$out/freeze/$name.onnx"
    for pb in "$d"/test_data_set_0/*.pb; do
        [ -f "$pb" ] || continue
        [ "$(stat -c %s "$pb")" -le 65536 ] || continue
        cp "$pb" "$out/pb/$name-$(basename "$pb")"
    done
    n=$((n + 1))
done

if "$py" -c 'import numpy' 2>/dev/null; then
    "$py" - "$out/npy" <<'PY'
import sys, numpy as np
d = sys.argv[1]
arrs = {
    "f4": np.arange(12, dtype=np.float32).reshape(3, 4),
    "f8": np.linspace(0, 1, 5),
    "f2": np.ones((2, 2), np.float16),
    "i8": np.arange(6, dtype=np.int64),
    "u1": np.arange(7, dtype=np.uint8),
    "b1": np.array([True, False, True]),
    "scalar": np.float32(3.5),
    "empty": np.zeros((0, 3), np.int32),
    "c8": np.ones(3, np.complex64),
    "rank5": np.zeros((1, 2, 1, 2, 1), np.int16),
}
for k, a in arrs.items():
    np.save(f"{d}/{k}.npy", a)
PY
else
    printf '\223NUMPY\001\000v\000{'"'"'descr'"'"': '"'"'<f4'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (2,), }' > "$out/npy/f4.npy"
fi

# Models with external data naming w.bin, the 4096-byte file the fuzz
# targets put in their scratch folder.
if "$py" -c 'import onnx' 2>/dev/null; then
    "$py" - "$out" <<'PY'
import sys
from onnx import TensorProto, helper
out = sys.argv[1]
inits = []
for i, (off, n) in enumerate([(0, 4), (64, 16), (4000, 24)]):
    t = TensorProto(name="w%d" % i, data_type=TensorProto.FLOAT, dims=[n], data_location=TensorProto.EXTERNAL)
    for k, v in (("location", "w.bin"), ("offset", str(off)), ("length", str(4 * n))):
        e = t.external_data.add()
        e.key, e.value = k, v
    inits.append(t)
nodes = [helper.make_node("Add", ["w0", "w0"], ["z"])]
g = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])], initializer=inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
for d in ("model", "run", "freeze"):
    open("%s/%s/external_data.onnx" % (out, d), "wb").write(m.SerializeToString())
# freeze seeds: what it folds (shape arithmetic on symbolic dims, If on a
# constant, a Loop with a constant trip count)
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
shape = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["r"]),
         helper.make_node("Relu", ["r"], ["y"])]
m = helper.make_model(helper.make_graph(shape, "shapes", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
open("%s/freeze/shapes.onnx" % out, "wb").write(m.SerializeToString())
c = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.BOOL, [], [True]))
br = lambda op, o: helper.make_graph([helper.make_node(op, ["x"], [o])], op, [],
                                     [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 4])])
iff = helper.make_node("If", ["c"], ["y"], then_branch=br("Relu", "t"), else_branch=br("Neg", "e"))
m = helper.make_model(helper.make_graph([c, iff], "if", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
open("%s/freeze/if_const.onnx" % out, "wb").write(m.SerializeToString())
PY
fi

# Value literals: first byte picks the dtype (index into kiln_dtype mod 17).
printf '\001[[1.5,2],[3,4]]' > "$out/value/float_list"
printf '\007[1,2,3]' > "$out/value/int64_list"
printf '\000true' > "$out/value/bool"
printf '\000[[[1e10]]]' > "$out/value/nested"
printf '\012-0.5' > "$out/value/half"
printf '\003[[], []]' > "$out/value/empty"
echo "seeded $n models into $out"
