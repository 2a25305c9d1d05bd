"""An image and its mirror image packed into one pass of a network's narrow layers answer as two plain passes.

The graphs are real: the bundled network, small U-Nets exported by torch's two ONNX exporters with fresh
weights, and hand-built graphs with what the rewrite must leave alone.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from medview.core.inference.network import CtrSegNet
from medview.core.inference.onnx_proto import read_graph, write_graph
from medview.core.inference.paired_graph import pair_images
from medview.resources import bundled_model_path

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

BUNDLED = bundled_model_path() / "models" / "model.onnx"


def _session(data: bytes):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _run(session, x: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _images(n: int, channels: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, channels, size, size), dtype=np.float32)


def _assert_packed_answers_as_plain(data: bytes, block: int, size: int, channels: int = 1) -> None:
    plain = _session(data)
    paired_graph = pair_images(read_graph(data), block)
    assert paired_graph is not None
    paired = _session(write_graph(paired_graph))
    x = _images(3, channels, size)
    mirrored = np.ascontiguousarray(x[..., ::-1])
    other = _images(3, channels, size, seed=1)  # any two images pack, not only mirrors
    for first, second in ((x, mirrored), (x, other)):
        expected = _run(plain, np.concatenate([first, second]))
        out = _run(paired, np.concatenate([first, second], axis=1))
        k = out.shape[1] // 2
        assert out.shape == (3, 2 * expected.shape[1], *expected.shape[2:])
        assert np.abs(out[:, :k] - expected[:3]).max() <= 1e-5
        assert np.abs(out[:, k:] - expected[3:]).max() <= 1e-5


def _exported(tmp_path, width: int, size: int, dynamo: bool) -> bytes:
    """CtrSegNet with fresh weights, exported by the TorchScript exporter (as `export_onnx`) or by dynamo."""
    torch.manual_seed(width)
    net = CtrSegNet(width=width).eval()
    path = tmp_path / f"unet{width}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(net, (torch.zeros(2, 1, size, size),), str(path), dynamo=True, external_data=False,
                              input_names=["image"], output_names=["masks"],
                              dynamic_shapes=({0: torch.export.Dim("n", min=1, max=64)},))
        else:
            torch.onnx.export(net, (torch.zeros(1, 1, size, size),), str(path), dynamo=False, opset_version=17,
                              input_names=["image"], output_names=["masks"],
                              dynamic_axes={"image": {0: "n"}, "masks": {0: "n"}})
    return path.read_bytes()


def test_reading_and_writing_the_bundled_network_changes_nothing():
    data = BUNDLED.read_bytes()
    graph = read_graph(data)
    assert graph.inputs == [("image", ["n", 1, 128, 128])] and graph.outputs == [("masks", ["n", 2, 128, 128])]
    x = _images(2, 1, 128)
    assert np.array_equal(_run(_session(write_graph(graph)), x), _run(_session(data), x))


def test_the_bundled_network_packed_answers_as_two_plain_passes():
    """With AVX-512's 16-float blocks its 8-channel full-resolution layers pack; the wider ones run per image."""
    data = BUNDLED.read_bytes()
    _assert_packed_answers_as_plain(data, block=16, size=128)
    plain_convs = sum(n.op == "Conv" for n in read_graph(data).nodes)
    packed_convs = sum(n.op == "Conv" for n in pair_images(read_graph(data), 16).nodes)
    assert plain_convs < packed_convs < 2 * plain_convs  # some layers packed, some per image


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("width,block", [(4, 16), (4, 32), (8, 16)])
def test_freshly_exported_unets_packed_answer_as_two_plain_passes(tmp_path, width, block, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    _assert_packed_answers_as_plain(_exported(tmp_path, width, 64, dynamo), block=block, size=64)


def test_where_packing_saves_nothing_the_graph_is_left_alone():
    """AVX2's 8-float blocks: the bundled network's 8-channel layers already fill them."""
    assert pair_images(read_graph(BUNDLED.read_bytes()), 8) is None


def _graph(*nodes, initializers=(), channels_out=4, size=16) -> bytes:
    graph = helper.make_graph(
        list(nodes), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", channels_out, size, size])],
        [numpy_helper.from_array(v, k) for k, v in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_graphs_the_rewrite_cannot_pack_exactly_are_refused_with_the_reason():
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    w4 = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    packable = _graph(helper.make_node("Conv", ["x", "w1"], ["a"], **conv), helper.make_node("Relu", ["a"], ["y"]),
                      initializers=[("w1", w1)])
    assert pair_images(read_graph(packable), 16) is not None  # the control: the same graph without the odd part
    residual = _graph(helper.make_node("Conv", ["x", "w1"], ["a"], **conv), helper.make_node("Relu", ["a"], ["b"]),
                      helper.make_node("Add", ["a", "b"], ["y"]), initializers=[("w1", w1)])
    grouped = _graph(helper.make_node("Conv", ["x", "w1"], ["a"], **conv),
                     helper.make_node("Conv", ["a", "w4"], ["y"], group=2, **conv),
                     initializers=[("w1", w1), ("w4", w4)])
    same_padding = _graph(helper.make_node("Conv", ["x", "w1"], ["y"], kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
                          initializers=[("w1", w1)])
    for data, why in ((residual, "operator Add"), (grouped, "a grouped convolution"),
                      (same_padding, "automatic padding")):
        with pytest.raises(ValueError, match=why):
            pair_images(read_graph(data), 16)
    with pytest.raises(ValueError, match="not an ONNX model"):
        read_graph(b"\xff\xff\xff not protobuf")


def test_the_message_subset_is_onnx_proto_s():
    """Every field the reader and writer declare has onnx.proto's number, name, type and repetition."""
    from medview.core.inference.onnx_proto import _MESSAGES

    reference = {"TensorShapeProto": onnx.TensorShapeProto, "Dimension": onnx.TensorShapeProto.Dimension,
                 "TensorTypeProto": onnx.TypeProto.Tensor}
    for message, fields in _MESSAGES.items():
        descriptor = reference.get(message, getattr(onnx, message, None)).DESCRIPTOR
        for number, name, kind, label, type_name in fields:
            field = descriptor.fields_by_number[number]
            enum_as_int32 = field.type == field.TYPE_ENUM and kind == field.TYPE_INT32
            message_as_bytes = field.type == field.TYPE_MESSAGE and kind == field.TYPE_BYTES  # only counted
            assert (field.name, field.is_repeated) == (name, label == 3), (message, number)
            assert field.type == kind or enum_as_int32 or message_as_bytes, (message, name)
            if type_name:
                assert field.message_type.name == type_name.replace("TensorTypeProto", "Tensor"), (message, name)
