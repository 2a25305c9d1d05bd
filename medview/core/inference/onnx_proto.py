"""Reading and writing the parts of an ONNX model a graph rewrite needs, without the onnx package.

Why: the onnx package (30 MB with its C++ extension) is a development tool, not in the packaged app, while
ONNX Runtime already needs protobuf. The messages below are the subset of onnx.proto (field numbers as
there) that `paired_graph` reads and writes; a model using anything else they cannot express (external
data, subgraph or string attributes of other kinds, non-tensor inputs) is refused with ValueError and run
as it is.
"""

from __future__ import annotations

import numpy as np

from medview.core.inference.paired_graph import Graph, Node

# onnx.proto TensorProto.DataType -> numpy
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
           9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}
_CODES = {np.dtype(t): code for code, t in _DTYPES.items()}
# AttributeProto.AttributeType
_FLOAT, _INT, _STRING, _TENSOR, _FLOATS, _INTS, _STRINGS = 1, 2, 3, 4, 6, 7, 8

_O, _R = 1, 3  # optional, repeated
_MESSAGES = {
    # message: [(number, name, type, label, message type)]; types: 1 double, 2 float, 3 int64, 5 int32,
    # 9 string, 11 message, 12 bytes (also a message of which only whether there is one is read)
    "OperatorSetIdProto": [(1, "domain", 9, _O, None), (2, "version", 3, _O, None)],
    "TensorProto": [(1, "dims", 3, _R, None), (2, "data_type", 5, _O, None), (4, "float_data", 2, _R, None),
                    (5, "int32_data", 5, _R, None), (7, "int64_data", 3, _R, None), (8, "name", 9, _O, None),
                    (9, "raw_data", 12, _O, None), (10, "double_data", 1, _R, None),
                    (13, "external_data", 11, _R, "StringStringEntryProto"),
                    (14, "data_location", 5, _O, None)],
    "StringStringEntryProto": [(1, "key", 9, _O, None), (2, "value", 9, _O, None)],
    "AttributeProto": [(1, "name", 9, _O, None), (2, "f", 2, _O, None), (3, "i", 3, _O, None),
                       (4, "s", 12, _O, None), (5, "t", 11, _O, "TensorProto"), (7, "floats", 2, _R, None),
                       (8, "ints", 3, _R, None), (9, "strings", 12, _R, None), (20, "type", 5, _O, None),
                       (21, "ref_attr_name", 9, _O, None)],
    "NodeProto": [(1, "input", 9, _R, None), (2, "output", 9, _R, None), (3, "name", 9, _O, None),
                  (4, "op_type", 9, _O, None), (5, "attribute", 11, _R, "AttributeProto"),
                  (7, "domain", 9, _O, None)],
    "Dimension": [(1, "dim_value", 3, _O, None), (2, "dim_param", 9, _O, None)],
    "TensorShapeProto": [(1, "dim", 11, _R, "Dimension")],
    "TensorTypeProto": [(1, "elem_type", 5, _O, None), (2, "shape", 11, _O, "TensorShapeProto")],
    "TypeProto": [(1, "tensor_type", 11, _O, "TensorTypeProto")],
    "ValueInfoProto": [(1, "name", 9, _O, None), (2, "type", 11, _O, "TypeProto")],
    "GraphProto": [(1, "node", 11, _R, "NodeProto"), (2, "name", 9, _O, None),
                   (5, "initializer", 11, _R, "TensorProto"), (11, "input", 11, _R, "ValueInfoProto"),
                   (12, "output", 11, _R, "ValueInfoProto"), (15, "sparse_initializer", 12, _R, None)],
    "ModelProto": [(1, "ir_version", 3, _O, None), (8, "opset_import", 11, _R, "OperatorSetIdProto"),
                   (2, "producer_name", 9, _O, None), (7, "graph", 11, _O, "GraphProto"),
                   (25, "functions", 12, _R, None)],
}
_classes: dict | None = None


def _message(name: str):
    """The protobuf message class `name` of the subset above (built once)."""
    global _classes
    if _classes is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        file = descriptor_pb2.FileDescriptorProto(name="medview_onnx_subset.proto", package="medview_onnx",
                                                  syntax="proto2")
        for message, fields in _MESSAGES.items():
            proto = file.message_type.add(name=message)
            for number, field_name, kind, label, type_name in fields:
                entry = proto.field.add(name=field_name, number=number, type=kind, label=label)
                if type_name:
                    entry.type_name = f".medview_onnx.{type_name}"
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        _classes = {m: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"medview_onnx.{m}"))
                    for m in _MESSAGES}
    return _classes[name]


def read_graph(data: bytes) -> Graph:
    """The graph of a serialized ModelProto; ValueError where it uses what the subset cannot express."""
    model = _message("ModelProto")()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError
        raise ValueError(f"not an ONNX model ({exc})") from None
    if model.functions or model.graph.sparse_initializer:
        raise ValueError("model functions or sparse initializers")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    g = model.graph
    initializers = {t.name: _array(t) for t in g.initializer}
    nodes = [Node(n.op_type, list(n.input), list(n.output), {a.name: _attribute(a) for a in n.attribute},
                  n.name, n.domain) for n in g.node]
    inputs = [(v.name, _dims(v)) for v in g.input if v.name not in initializers]
    return Graph(nodes, initializers, inputs, [(v.name, _dims(v)) for v in g.output], opset,
                 ir_version=model.ir_version)


def write_graph(graph: Graph) -> bytes:
    """A serialized ModelProto of `graph` (float32 inputs and outputs)."""
    model = _message("ModelProto")(ir_version=graph.ir_version or 8, producer_name="medview")
    model.opset_import.add(domain="", version=graph.opset)
    g = model.graph
    g.name = "medview"
    for node in graph.nodes:
        proto = g.node.add(op_type=node.op, name=node.name, domain=node.domain)
        proto.input.extend(node.inputs)
        proto.output.extend(node.outputs)
        for key, value in node.attrs.items():
            _set_attribute(proto.attribute.add(name=key), value)
    for name, value in graph.initializers.items():
        _set_tensor(g.initializer.add(), value, name)
    for target, values in ((g.input, graph.inputs), (g.output, graph.outputs)):
        for name, dims in values:
            info = target.add(name=name)
            info.type.tensor_type.elem_type = 1
            shape = info.type.tensor_type.shape
            for d in dims:
                if isinstance(d, int):
                    shape.dim.add(dim_value=d)
                else:
                    shape.dim.add(dim_param=str(d))
    return model.SerializeToString()


def _dims(value) -> list:
    if not value.type.HasField("tensor_type"):
        raise ValueError(f"{value.name} is not a tensor")
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


def _array(t) -> np.ndarray:
    dtype = _DTYPES.get(t.data_type)
    if dtype is None or t.external_data or t.data_location:
        raise ValueError(f"tensor {t.name}: data type {t.data_type} or external data")
    shape = tuple(t.dims)
    if t.raw_data:
        return np.frombuffer(t.raw_data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    for field, kinds in (("float_data", (1,)), ("int64_data", (7,)), ("double_data", (11,)),
                         ("int32_data", (2, 3, 4, 5, 6, 9))):
        if t.data_type in kinds:
            return np.array(getattr(t, field), dtype=dtype).reshape(shape)
    raise ValueError(f"tensor {t.name}: data type {t.data_type} stored in a form not read here")


def _attribute(a):
    kinds = {_FLOAT: lambda: float(a.f), _INT: lambda: int(a.i), _STRING: lambda: bytes(a.s),
             _TENSOR: lambda: _array(a.t), _FLOATS: lambda: [float(v) for v in a.floats],
             _INTS: lambda: [int(v) for v in a.ints], _STRINGS: lambda: [bytes(v) for v in a.strings]}
    if a.ref_attr_name or a.type not in kinds:
        raise ValueError(f"attribute {a.name} of type {a.type}")
    return kinds[a.type]()


def _set_attribute(proto, value) -> None:
    if isinstance(value, np.ndarray):
        proto.type = _TENSOR
        _set_tensor(proto.t, value, "")
    elif isinstance(value, (bool, int, np.integer)):
        proto.type, proto.i = _INT, int(value)
    elif isinstance(value, (float, np.floating)):
        proto.type, proto.f = _FLOAT, float(value)
    elif isinstance(value, (bytes, str)):
        proto.type, proto.s = _STRING, value.encode() if isinstance(value, str) else value
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (bytes, str)) for v in value) and value:
        proto.type = _STRINGS
        proto.strings.extend(v.encode() if isinstance(v, str) else v for v in value)
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, np.integer)) for v in value):
        proto.type = _INTS
        proto.ints.extend(int(v) for v in value)
    elif isinstance(value, (list, tuple)):
        proto.type = _FLOATS
        proto.floats.extend(float(v) for v in value)
    else:
        raise ValueError(f"attribute {proto.name}: {type(value).__name__}")


def _set_tensor(proto, value: np.ndarray, name: str) -> None:
    value = np.asarray(value, order="C")  # (ascontiguousarray would make a scalar 1-d)
    code = _CODES.get(value.dtype)
    if code is None:
        raise ValueError(f"tensor {name}: numpy type {value.dtype}")
    proto.name = name
    proto.data_type = code
    proto.dims.extend(int(d) for d in value.shape)
    proto.raw_data = value.astype(value.dtype.newbyteorder("<")).tobytes()
