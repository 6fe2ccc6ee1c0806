#!/usr/bin/env python3
"""Writes ONNX's current node tests (from the installed onnx wheel's test-case
generators) as backend-test folders: OUT/node/<test>/model.onnx and
test_data_set_N/{input,output}_K.pb, the layout of libonnx-testdata.

Usage: gen_node_tests.py OUT   (run with the venv's python, onnx >= 1.23)
"""
import os
import shutil
import sys

import onnx
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases


def write_value(path, value, vtype, name):
    if vtype.HasField("sequence_type"):
        proto = numpy_helper.from_list(value, name)
    elif vtype.HasField("optional_type"):
        proto = numpy_helper.from_optional(value, name)
    elif vtype.HasField("map_type"):
        proto = numpy_helper.from_dict(value, name)
    elif isinstance(value, onnx.TensorProto):
        proto = value
    else:
        proto = numpy_helper.from_array(value, name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = os.path.join(sys.argv[1], "node")
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cases = collect_testcases()
    for case in cases:
        d = os.path.join(out, case.name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        g = case.model.graph
        for i, (inputs, outputs) in enumerate(case.data_sets):
            ds = os.path.join(d, f"test_data_set_{i}")
            os.makedirs(ds, exist_ok=True)
            for j, v in enumerate(inputs):
                write_value(os.path.join(ds, f"input_{j}.pb"), v, g.input[j].type, g.input[j].name)
            for j, v in enumerate(outputs):
                write_value(os.path.join(ds, f"output_{j}.pb"), v, g.output[j].type, g.output[j].name)
    print(f"{len(cases)} node tests written to {out} (onnx {onnx.__version__})")


if __name__ == "__main__":
    main()
