#!/usr/bin/python3
"""Writes the tiny ONNX fixtures of tests/data used by the core unit tests.

Run with Debian's python3-onnx: /usr/bin/python3 tools/make_test_fixtures.py
The outputs are committed, so tests need no Python."""
import os
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
os.makedirs(out, exist_ok=True)


def save(model, name):
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, name))


def shape_chain(batch):
    """PyTorch-style flatten: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, 3, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [batch, 12])
    nodes = [
        helper.make_node("Shape", ["X"], ["s"], name="shape"),
        helper.make_node("Constant", [], ["zero"], name="const_zero",
                         value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "zero"], ["b"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"], name="unsqueeze"),
        helper.make_node("Concat", ["b1", "rest"], ["newshape"], name="concat", axis=0),
        helper.make_node("Reshape", ["X", "newshape"], ["r"], name="reshape"),
        helper.make_node("Relu", ["r"], ["Y"], name="relu"),
    ]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([12], np.int64), "rest")]
    g = helper.make_graph(nodes, "shape_chain", [x], [y], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="quantkit-tests")
    m.ir_version = 8
    return m


save(shape_chain("batch"), "shape_chain_dynamic.onnx")
save(shape_chain(2), "shape_chain_fixed.onnx")

# A model with an op quantkit does not have.
x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])
g = helper.make_graph([helper.make_node("Relu", ["X"], ["t"], name="ok"),
                       helper.make_node("FancyNewOp", ["t"], ["Y"], name="mystery_node", domain="com.example")],
                      "unsupported", [x], [y])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
m.ir_version = 8
onnx.save(m, os.path.join(out, "unsupported_op.onnx"))

# Fields quantkit never reads must survive a round trip: metadata, doc
# strings, value_info, a training-info-free model with several opsets.
rng = np.random.default_rng(0)
w = rng.standard_normal((4, 3)).astype(np.float32)
x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", 3])
y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n", 4])
g = helper.make_graph([helper.make_node("Gemm", ["X", "W", "B"], ["h"], name="fc", transB=1, doc_string="the fc"),
                       helper.make_node("Relu", ["h"], ["Y"], name="act")],
                      "fields", [x], [y],
                      [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.arange(4, dtype=np.float32), "B")],
                      doc_string="graph doc",
                      value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, ["n", 4])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="quantkit-tests",
                      producer_version="1.2.3", doc_string="model doc", domain="org.quantkit.tests", model_version=7)
helper.set_model_props(m, {"author": "quantkit", "license": "MIT"})
m.ir_version = 8
save(m, "fields.onnx")

# External data beside the model, and one whose location escapes its folder.
ext = os.path.join(out, "external")
os.makedirs(ext, exist_ok=True)
m2 = onnx.load(os.path.join(out, "fields.onnx"))
onnx.save_model(m2, os.path.join(ext, "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                location="weights.bin", size_threshold=0)
m3 = onnx.load(os.path.join(ext, "model.onnx"), load_external_data=False)
for t in m3.graph.initializer:
    for kv in t.external_data:
        if kv.key == "location":
            kv.value = "../fields.onnx"
onnx.save(m3, os.path.join(ext, "escape.onnx"))
np.save(os.path.join(out, "fields_x.npy"), rng.standard_normal((5, 3)).astype(np.float32))
print("fixtures written to", out)
