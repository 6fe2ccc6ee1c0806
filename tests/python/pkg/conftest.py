"""Models for the Python package's tests, made once per session: PyTorch
exports (references come from running the PyTorch modules) and small graphs
built with onnx.helper."""
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXAMPLE = os.path.join(ROOT, "examples", "configurable.onnx")


class Configurable(torch.nn.Module):
    """forward(x, w1, scale, use_mult): every argument a graph input."""

    def forward(self, x, w1, scale, use_mult: bool):
        y = torch.matmul(x, w1)
        if use_mult:
            y = y * scale
        else:
            y = y + scale
        return torch.relu(y)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        y = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(y.reshape(y.shape[0], -1))


class Models:
    """Paths of the test models and the PyTorch modules behind them."""


def _export_configurable(path):
    m = torch.jit.script(Configurable().eval())
    args = (torch.randn(2, 4), torch.randn(4, 3), torch.tensor(2.0), torch.tensor(True))
    torch.onnx.export(m, args, path, opset_version=13, input_names=["x", "w1", "scale", "use_mult"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return Configurable().eval()


def _export_net(path):
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # non-trivial batch norm statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), path, opset_version=13, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return net


def _export_lstm(path):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7).eval()
    x, h0 = torch.randn(6, 3, 5), torch.zeros(1, 3, 7)
    dyn = {"x": {0: "seq", 1: "batch"}, "y": {0: "seq", 1: "batch"}}
    for n in ("h0", "c0", "hn", "cn"):
        dyn[n] = {1: "batch"}
    torch.onnx.export(lstm, (x, (h0, h0.clone())), path, opset_version=14, input_names=["x", "h0", "c0"],
                      output_names=["y", "hn", "cn"], dynamic_axes=dyn)
    return lstm


def _one_node(path, op="Relu", dtype=TensorProto.FLOAT, shape=("n", 8)):
    x = helper.make_tensor_value_info("x", dtype, list(shape))
    y = helper.make_tensor_value_info("y", dtype, list(shape))
    g = helper.make_graph([helper.make_node(op, ["x"], ["y"], name=f"{op.lower()}0")], op.lower(), [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def _loop(path):
    """y = x + 1, n times, in a Loop whose trip count n is an input."""
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "one"], ["acc_out"], name="body_add"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [4])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    g = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["y"], name="loop", body=body)],
        "loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
         helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def _grow(path):
    """y = Concat(x, Expand(c, [1024])): folding the Expand makes a 4 KiB
    constant; `unused` is an input nothing reads."""
    g = helper.make_graph(
        [helper.make_node("Expand", ["c", "shape"], ["big"], name="expand"),
         helper.make_node("Concat", ["x", "big"], ["y"], name="concat", axis=0)],
        "grow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024]),
         helper.make_tensor_value_info("unused", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2048])],
        [helper.make_tensor("c", TensorProto.FLOAT, [1], [3.0]),
         helper.make_tensor("shape", TensorProto.INT64, [1], [1024])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def _dtypes(path):
    """One Identity per element type: in_<t> -> out_<t>."""
    kinds = {
        "float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "float16": TensorProto.FLOAT16,
        "int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int16": TensorProto.INT16,
        "uint16": TensorProto.UINT16, "int32": TensorProto.INT32, "uint32": TensorProto.UINT32,
        "int64": TensorProto.INT64, "uint64": TensorProto.UINT64, "bool": TensorProto.BOOL,
        "string": TensorProto.STRING, "bfloat16": TensorProto.BFLOAT16,
        "float8e4m3fn": TensorProto.FLOAT8E4M3FN,
    }
    nodes, ins, outs = [], [], []
    for k, t in kinds.items():
        nodes.append(helper.make_node("Identity", [f"in_{k}"], [f"out_{k}"], name=f"id_{k}"))
        ins.append(helper.make_tensor_value_info(f"in_{k}", t, [2, 3]))
        outs.append(helper.make_tensor_value_info(f"out_{k}", t, [2, 3]))
    g = helper.make_graph(nodes, "dtypes", ins, outs)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), path)
    return kinds


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    m = Models()
    m.dir = str(d)
    m.example = EXAMPLE
    m.configurable = str(d / "configurable.onnx")
    m.configurable_torch = _export_configurable(m.configurable)
    m.net = str(d / "net.onnx")
    m.net_torch = _export_net(m.net)
    m.lstm = str(d / "lstm.onnx")
    m.lstm_torch = _export_lstm(m.lstm)
    m.relu = str(d / "relu.onnx")
    _one_node(m.relu)
    m.loop = str(d / "loop.onnx")
    _loop(m.loop)
    m.grow = str(d / "grow.onnx")
    _grow(m.grow)
    m.dtypes = str(d / "dtypes.onnx")
    m.dtype_kinds = _dtypes(m.dtypes)
    return m


@pytest.fixture
def rng():
    return np.random.default_rng(0)
