"""kiln.load, metadata, save / to_bytes, dtypes, load errors."""
import pathlib

import numpy as np
import onnx
import pytest

import kiln


def test_version():
    assert kiln.version() == kiln.__version__
    assert kiln.version() == kiln._kiln.HEADER_VERSION
    major, minor, patch = map(int, kiln.version().split("."))
    assert kiln._kiln.version()[1] == (major, minor, patch)


def test_load_path_bytes_proto_pathlike(models):
    a = kiln.load(models.example)
    with open(models.example, "rb") as f:
        raw = f.read()
    b = kiln.load(raw)
    c = kiln.load(onnx.load(models.example))
    d = kiln.load(pathlib.Path(models.example))
    e = kiln.load(bytearray(raw))
    f_ = kiln.load(memoryview(raw))
    for m in (b, c, d, e, f_):
        assert m.inputs == a.inputs
        assert m.outputs == a.outputs
    assert a.path == models.example and b.path is None


def test_inputs_outputs_symbolic(models):
    m = kiln.load(models.example)
    assert m.inputs == [
        kiln.ValueInfo("x", np.dtype(np.float32), ["batch", 4]),
        kiln.ValueInfo("scale", np.dtype(np.float32), []),
        kiln.ValueInfo("bias", np.dtype(np.float32), []),
        kiln.ValueInfo("use_mult", np.dtype(np.bool_), []),
    ]
    assert m.outputs == [kiln.ValueInfo("y", np.dtype(np.float32), ["batch", 3])]
    v = m.inputs[0]
    assert v.name == "x" and v.dtype == np.float32 and v.shape == ["batch", 4]
    lstm = kiln.load(models.lstm)
    assert [(v.name, v.shape) for v in lstm.inputs] == [("x", ["seq", "batch", 5]), ("h0", [1, "batch", 7]),
                                                        ("c0", [1, "batch", 7])]
    assert [v.name for v in lstm.outputs] == ["y", "hn", "cn"]


def test_dtypes_map_to_numpy(models):
    m = kiln.load(models.dtypes)
    by = {v.name[3:]: v.dtype for v in m.inputs}
    for k in ("float32", "float64", "float16", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
              "uint64"):
        assert by[k] == np.dtype(k), k
    assert by["bool"] == np.dtype(np.bool_)
    assert by["string"] == np.dtype(object)
    ml = pytest.importorskip("ml_dtypes")
    assert by["bfloat16"] == np.dtype(ml.bfloat16)
    assert by["float8e4m3fn"] == np.dtype(ml.float8_e4m3fn)
    assert kiln.dtype_name(1) == "float32"


def test_save_and_to_bytes(models, tmp_path):
    m = kiln.load(models.net)
    out = tmp_path / "net_copy.onnx"
    m.save(out)
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    b = m.to_bytes()
    p = onnx.load_from_string(b)
    onnx.checker.check_model(p, full_check=True)
    assert [i.name for i in p.graph.input] == ["x"]
    assert kiln.load(b).inputs == m.inputs
    assert m.to_onnx().graph.node[0].op_type == onnx.load(models.net).graph.node[0].op_type
    # external data: the weights go beside the model
    ext = tmp_path / "net_ext.onnx"
    m.save(ext, external_threshold=256)
    # (the data file's name carries a hash of its content: net_ext.onnx.<hash>.data)
    assert len(list(tmp_path.glob("net_ext.onnx*.data"))) == 1
    assert kiln.load(ext).inputs == m.inputs
    with pytest.raises(kiln.ModelError):  # external data without a folder to look in
        kiln.load(ext.read_bytes())
    assert kiln.load(ext.read_bytes(), base_dir=str(tmp_path)).outputs == m.outputs


def test_info_and_describe(models):
    m = kiln.load(models.example)
    info = m.info()
    assert isinstance(info, dict) and "inputs" in info
    assert "use_mult" in m.describe()
    assert "kiln.Model" in repr(m) and "batch" in repr(m)


def test_load_errors(tmp_path):
    with pytest.raises(kiln.Error) as e:
        kiln.load(str(tmp_path / "missing.onnx"))
    assert "missing.onnx" in str(e.value) and e.value.status
    with pytest.raises(kiln.ModelError) as e:
        kiln.load(b"\xff\xff\xff not a model")
    assert "not a valid ONNX model" in str(e.value)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(kiln.ModelError):
        kiln.load(str(tmp_path / "empty.onnx"))
    with pytest.raises(kiln.ArgumentError):
        kiln.load(12345)
    assert issubclass(kiln.ArgumentError, kiln.Error) and issubclass(kiln.ArgumentError, ValueError)
    assert issubclass(kiln.ModelError, kiln.Error) and issubclass(kiln.MismatchError, kiln.Error)


def test_type_stubs_ship_and_cover_the_api():
    import ast
    import os

    pkg = os.path.dirname(kiln.__file__)
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    for stub, mod in (("__init__.pyi", kiln), ("_kiln.pyi", kiln._kiln)):
        with open(os.path.join(pkg, stub)) as f:
            tree = ast.parse(f.read())
        names = set()
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.ImportFrom):
                names.update(a.asname or a.name for a in node.names)
        public = set(kiln.__all__) if mod is kiln else {n for n in dir(mod) if not n.startswith("__")}
        assert public <= names, (stub, public - names)


def test_scalar_outputs(tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0)], "sum",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("s", TensorProto.FLOAT, [])])
    m = kiln.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    s = kiln.Session(m).run({"x": np.array([1, 2, 3], np.float32)})["s"]
    assert s.shape == () and s.dtype == np.float32 and float(s) == 6.0
    assert m.outputs == [kiln.ValueInfo("s", np.dtype(np.float32), [])]
