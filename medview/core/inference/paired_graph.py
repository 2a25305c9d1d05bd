"""Two images through one pass of a narrow ONNX network, exactly as two passes would answer.

Why: ONNX Runtime runs convolutions on the CPU in channel blocks of the vector width (16 floats with AVX-512,
8 with AVX2) and pads a layer with fewer channels up to a whole block. The bundled U-Net's full-resolution
layers have 8 channels, so on AVX-512 half of their work, the costliest of the network, is on zeros, and a
measuring model runs every image twice (the image and its mirror image). Packing the two images' channels
into one tensor, with block-diagonal weights (each output channel reads only its own image's channels), fills
that padding with the second image: the same products and sums, half the padded work. A layer of block width
or more gains nothing from packing, so it runs once per image on that image's own channels.

`pair_images` rewrites a graph of the operators below into one taking the two images' channels side by side
([N, 2C, H, W]) and answering each output with the two images' channels side by side ([N, 2K, ...]). Anything
outside them (or sizes it cannot work out) gives None and the engine runs the plain graph, as it does where the
paired one answers differently at warm-up. The graph is read and written through `onnx_proto`, without the onnx
package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: operators applied to each channel on its own (attributes unchanged)
_CHANNELWISE = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "Elu", "HardSigmoid", "Identity",
                "MaxPool", "AveragePool"}


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""


@dataclass
class Graph:
    """The parts of an ONNX model the rewrite reads and writes (`onnx_proto` reads and writes them)."""
    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    inputs: list[tuple[str, list]]  # (name, dims: int or str per axis)
    outputs: list[tuple[str, list]]
    opset: int
    ir_version: int = 0


@dataclass
class _Piece:
    """A tensor of the paired graph and, per channel, which image (0 or 1) and which original channel."""
    name: str
    channels: list[tuple[int, int]]


class _Unsupported(ValueError):
    """The graph holds something the rewrite cannot pack exactly (the message says what)."""


def channel_block() -> int:
    """Floats per channel block of ONNX Runtime's CPU convolutions on this machine (its vector width)."""
    import torch

    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


def padded(channels: int, block: int) -> int:
    return -(-channels // block) * block


def pair_images(graph: Graph, block: int) -> Graph | None:
    """The paired graph (see the module's docstring) for channel blocks of `block` floats, or None where it
    would not save padded work; ValueError (saying why) where it cannot be built exactly."""
    try:
        return _Pairing(graph, block).build()
    except _Unsupported:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # a graph malformed in a way not foreseen
        raise _Unsupported(f"the graph could not be followed ({type(exc).__name__}: {exc})") from None


class _Pairing:
    def __init__(self, graph: Graph, block: int) -> None:
        self.graph, self.block = graph, block
        self.nodes: list[Node] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.values: dict[str, list[_Piece]] = {}  # original tensor -> its pieces in the paired graph
        self.spatial: dict[str, tuple[int, ...]] = {}  # original tensor -> its spatial size
        self.consts: dict[str, np.ndarray] = dict(graph.initializers)
        self.saved = 0  # padded channel products saved against two plain passes
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"paired/{hint}/{self.count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers[name] = value
        return name

    def emit(self, op: str, inputs: list[str], attrs: dict | None = None, hint: str = "") -> str:
        out = self.fresh(hint or op)
        self.nodes.append(Node(op, inputs, [out], dict(attrs or {}), name=out))
        return out

    # -- the walk ------------------------------------------------------------------------------------------
    def build(self) -> Graph | None:
        g = self.graph
        if len(g.inputs) != 1:
            raise _Unsupported(f"{len(g.inputs)} inputs, not one image")
        name, dims = g.inputs[0]
        if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise _Unsupported(f"input {name} of shape {dims}, not [N, C, H, W] of a fixed size")
        channels, h, w = dims[1:]
        paired_input = "paired_images"
        self.values[name] = [_Piece(paired_input, [(0, c) for c in range(channels)] +
                                    [(1, c) for c in range(channels)])]
        self.spatial[name] = (h, w)
        needed = self._needed()
        for node in g.nodes:
            if not any(out in needed for out in node.outputs):
                continue
            if node.domain not in ("", "ai.onnx"):
                raise _Unsupported(f"operator {node.domain}.{node.op}")
            handler = getattr(self, f"_op_{node.op}", None)
            if not any(i in self.values for i in node.inputs if i):  # arithmetic on constants (shapes, weights)
                self.consts[node.outputs[0]] = self._evaluate(node)
            elif node.op in _CHANNELWISE:
                self._channelwise(node)
            elif handler is not None:
                handler(node)
            else:
                raise _Unsupported(f"operator {node.op}")
        if self.saved <= 0:
            return None
        outputs = []
        for out_name, out_dims in g.outputs:
            if out_name not in self.values or len(out_dims) != 4:
                raise _Unsupported(f"output {out_name} is not an image-shaped tensor")
            k = self._channels(out_name)
            order = [(0, c) for c in range(k)] + [(1, c) for c in range(k)]
            outputs.append((self._gathered(self.values[out_name], order, f"{out_name}/pairs"),
                            [out_dims[0], 2 * k, *out_dims[2:]]))
        return Graph(self.nodes, self.initializers, [(paired_input, [dims[0], 2 * channels, h, w])],
                     outputs, g.opset, g.ir_version)

    def _needed(self) -> set[str]:
        """Tensors the outputs depend on (dead nodes are skipped, not rewritten)."""
        needed = {name for name, _ in self.graph.outputs}
        for node in reversed(self.graph.nodes):
            if any(out in needed for out in node.outputs):
                needed.update(i for i in node.inputs if i)
        return needed

    def _channels(self, name: str) -> int:
        """Channels of the original tensor `name` (each image's share of its pieces)."""
        return sum(1 for p in self.values[name] for image, _ in p.channels if image == 0)

    def _gathered(self, pieces: list[_Piece], order: list[tuple[int, int]], hint: str) -> str:
        """One tensor holding `order`'s channels in that order, from `pieces`."""
        wanted = set(order)
        joined = self._merged([p for p in pieces if wanted.intersection(p.channels)], hint)
        if joined.channels == order:
            return joined.name
        where = {c: i for i, c in enumerate(joined.channels)}
        index = self.const(f"{hint}/index", np.array([where[c] for c in order], dtype=np.int64))
        return self.emit("Gather", [joined.name, index], {"axis": 1}, hint)

    def _merged(self, pieces: list[_Piece], hint: str) -> _Piece:
        """Both images in one tensor (a Concat of the pieces where there are several)."""
        if len(pieces) == 1:
            return pieces[0]
        return _Piece(self.emit("Concat", [p.name for p in pieces], {"axis": 1}, hint),
                      [c for p in pieces for c in p.channels])

    def _own(self, pieces: list[_Piece], image: int, hint: str) -> _Piece:
        """A tensor holding `image`'s channels: its own piece; a packed tensor as it is where the other
        image's channels cost no extra block (their weights are zero), else gathered out of it."""
        mine = [p for p in pieces if all(i == image for i, _ in p.channels)]
        if len(mine) == 1 and len(pieces) == 2:
            return mine[0]
        piece = self._merged(pieces, hint)
        own = [c for c in piece.channels if c[0] == image]
        if padded(len(piece.channels), self.block) == padded(len(own), self.block):
            return piece
        return _Piece(self._gathered([piece], own, hint), own)

    # -- operators -----------------------------------------------------------------------------------------
    def _channelwise(self, node: Node) -> None:
        source, *rest = node.inputs
        if len(node.outputs) != 1 or any(i and (i not in self.consts or self.consts[i].size != 1) for i in rest):
            raise _Unsupported(f"{node.op} with more than one output or other than scalar parameters")
        extra = [self.const("parameter", self.consts[i]) if i else "" for i in rest]
        self.values[node.outputs[0]] = [_Piece(self.emit(node.op, [p.name, *extra], node.attrs, node.op), p.channels)
                                        for p in self.values[source]]
        if node.op in ("MaxPool", "AveragePool"):
            self.spatial[node.outputs[0]] = _window_output(self.spatial[source], node.attrs)
        else:
            self.spatial[node.outputs[0]] = self.spatial[source]

    def _op_Conv(self, node: Node) -> None:
        x, weight_name = node.inputs[0], node.inputs[1]
        bias_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
        if int(node.attrs.get("group", 1)) != 1:
            raise _Unsupported("a grouped convolution")
        if weight_name not in self.consts or (bias_name is not None and bias_name not in self.consts):
            raise _Unsupported("a convolution whose weights are computed")
        weight = self.consts[weight_name]
        bias = None if bias_name is None else self.consts[bias_name]
        if weight.ndim != 4 or len(node.outputs) != 1:
            raise _Unsupported(f"a convolution with {weight.ndim - 2} spatial axes")
        cout, cin = weight.shape[:2]
        if self._channels(x) != cin:
            raise _Unsupported("a convolution's weights do not match its input")
        b = self.block
        separate_cost = 2 * padded(cin, b) * padded(cout, b)
        if 2 * cout <= b:  # both images' outputs fit in the block one image's would take: one packed layer
            source = self._merged(self.values[x], f"{node.name or 'conv'}/in")
            out_channels = [(0, c) for c in range(cout)] + [(1, c) for c in range(cout)]
            pieces = [self._conv(node, source, out_channels, weight, bias)]
            self.saved += separate_cost - padded(len(source.channels), b) * padded(2 * cout, b)
        else:
            pieces = []
            for image in (0, 1):
                source = self._own(self.values[x], image, f"{node.name or 'conv'}/in{image}")
                pieces.append(self._conv(node, source, [(image, c) for c in range(cout)], weight, bias))
                self.saved += padded(cin, b) * padded(cout, b) - padded(len(source.channels), b) * padded(cout, b)
        self.values[node.outputs[0]] = pieces
        self.spatial[node.outputs[0]] = _window_output(self.spatial[x], node.attrs, weight.shape[2:])

    def _conv(self, node: Node, source: _Piece, out_channels: list[tuple[int, int]], weight: np.ndarray,
              bias: np.ndarray | None) -> _Piece:
        """A convolution of `source` giving `out_channels`: each output reads its own image's channels only."""
        w = np.zeros((len(out_channels), len(source.channels), *weight.shape[2:]), dtype=weight.dtype)
        for o, (image, c) in enumerate(out_channels):
            for i, (src_image, s) in enumerate(source.channels):
                if src_image == image:
                    w[o, i] = weight[c, s]
        inputs = [source.name, self.const("weight", w)]
        if bias is not None:
            inputs.append(self.const("bias", np.array([bias[c] for _, c in out_channels], dtype=bias.dtype)))
        return _Piece(self.emit("Conv", inputs, node.attrs, "Conv"), out_channels)

    def _op_Concat(self, node: Node) -> None:
        if int(node.attrs.get("axis", 0)) not in (1, -3) or not all(i in self.values for i in node.inputs):
            raise _Unsupported("a concatenation other than of images' channels")
        pieces, offset = [], 0  # the inputs' channels numbered as the concatenation's
        for name in node.inputs:
            pieces += [_Piece(p.name, [(image, offset + c) for image, c in p.channels]) for p in self.values[name]]
            offset += self._channels(name)
        hint = node.name or "concat"
        if all(len(self.values[name]) == 1 for name in node.inputs) or 2 * offset <= self.block:
            self.values[node.outputs[0]] = [self._merged(pieces, hint)]
        else:
            order = [[(image, c) for c in range(offset)] for image in (0, 1)]
            self.values[node.outputs[0]] = [_Piece(self._gathered(pieces, order[i], f"{hint}/{i}"), order[i])
                                            for i in (0, 1)]
        self.spatial[node.outputs[0]] = self.spatial[node.inputs[0]]

    def _op_Resize(self, node: Node) -> None:
        self._resize(node, roi=node.inputs[1] if len(node.inputs) > 1 else "",
                     scales=node.inputs[2] if len(node.inputs) > 2 else "",
                     sizes=node.inputs[3] if len(node.inputs) > 3 else "")

    def _op_Upsample(self, node: Node) -> None:
        self._resize(node, roi="", scales=node.inputs[1], sizes="")

    def _resize(self, node: Node, roi: str, scales: str, sizes: str) -> None:
        x = node.inputs[0]
        h, w = self.spatial[x]
        if "axes" in node.attrs or node.attrs.get("keep_aspect_ratio_policy", b"stretch") != b"stretch":
            raise _Unsupported("a Resize of chosen axes or keeping the aspect ratio")
        if sizes:
            if sizes not in self.consts:
                raise _Unsupported("a Resize to sizes that depend on the pixels")
            wanted = np.asarray(self.consts[sizes]).reshape(-1)
            if len(wanted) != 4:
                raise _Unsupported("a Resize of other than four axes")
            size = [int(v) for v in wanted[2:]]
            # ONNX Runtime takes the scale of a size as output / input too: the same coordinates
            factors = np.array([1, 1, size[0] / h, size[1] / w], dtype=np.float32)
            if any(int(np.floor(f * n)) != s for f, n, s in zip(factors[2:], (h, w), size)):
                raise _Unsupported("a Resize to a size its scales cannot give")
        elif scales in self.consts:
            factors = np.asarray(self.consts[scales], dtype=np.float32).reshape(-1)
            if len(factors) != 4:
                raise _Unsupported("a Resize of other than four axes")
            size = [int(np.floor(f * n)) for f, n in zip(factors[2:], (h, w))]
        else:
            raise _Unsupported("a Resize whose scales depend on the pixels")
        if factors[0] != 1 or factors[1] != 1:
            raise _Unsupported("a Resize across images or channels")
        scale_name = self.const("scales", factors)
        if node.op == "Upsample":
            op_inputs = [scale_name]
        else:
            op_inputs = [self.const("roi", self.consts[roi]) if roi else "", scale_name]
        self.values[node.outputs[0]] = [_Piece(self.emit(node.op, [p.name, *op_inputs], node.attrs, node.op),
                                               p.channels) for p in self.values[x]]
        self.spatial[node.outputs[0]] = tuple(size)

    def _op_Shape(self, node: Node) -> None:
        """A shape, for the arithmetic that works out a Resize's size: the batch is not known and is never a
        Resize's to change, so it is a placeholder of 1."""
        source = node.inputs[0]
        shape = np.array([1, self._channels(source), *self.spatial[source]], dtype=np.int64)
        start, end = int(node.attrs.get("start", 0)), node.attrs.get("end")
        self.consts[node.outputs[0]] = shape[start:None if end is None else int(end)]

    def _evaluate(self, node: Node) -> np.ndarray:
        """A node on constants only (shape arithmetic, weights passed on), in numpy: the forms exporters use."""
        if not all(i in self.consts for i in node.inputs if i) or len(node.outputs) != 1:
            raise _Unsupported(f"{node.op} on tensors not known")
        args = [self.consts[i] if i else None for i in node.inputs]
        a = node.attrs
        if node.op == "Constant":
            for key in ("value", "value_int", "value_ints", "value_float", "value_floats"):
                if key in a:
                    return np.asarray(a[key], dtype=np.float32 if "float" in key else None)
        elif node.op == "Identity":
            return args[0]
        elif node.op == "Gather":
            return np.take(args[0], args[1], axis=int(a.get("axis", 0)))
        elif node.op in ("Unsqueeze", "Squeeze"):
            axes = args[1] if len(args) > 1 else a.get("axes")
            axes = tuple(int(v) for v in np.asarray(axes).reshape(-1))
            return np.expand_dims(args[0], axes) if node.op == "Unsqueeze" else np.squeeze(args[0], axes)
        elif node.op == "Concat":
            return np.concatenate([np.atleast_1d(v) for v in args], axis=int(a.get("axis", 0)))
        elif node.op == "Cast" and int(a.get("to", 0)) in _CASTS:
            return args[0].astype(_CASTS[int(a["to"])])
        elif node.op == "Slice":
            starts, ends = args[1].reshape(-1), args[2].reshape(-1)
            axes = args[3].reshape(-1) if len(args) > 3 and args[3] is not None else range(len(starts))
            steps = args[4].reshape(-1) if len(args) > 4 and args[4] is not None else [1] * len(starts)
            index = [slice(None)] * args[0].ndim
            for start, end, axis, step in zip(starts, ends, axes, steps):
                index[int(axis)] = slice(int(start), int(min(end, 1 << 62)), int(step))
            return args[0][tuple(index)]
        raise _Unsupported(f"{node.op} on constants")


_CASTS = {1: np.float32, 6: np.int32, 7: np.int64, 11: np.float64}


def _window_output(size: tuple[int, ...], attrs: dict, kernel: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Spatial output size of a convolution or pooling window (explicit pads; no auto_pad but NOTSET)."""
    kernel = tuple(attrs.get("kernel_shape", kernel or ()))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or int(attrs.get("ceil_mode", 0)):
        raise _Unsupported("a window with automatic padding or rounding up")
    if len(kernel) != len(size):
        raise _Unsupported(f"a {len(kernel)}-D window on a {len(size)}-D image")
    n = len(size)
    pads = list(attrs.get("pads", [0] * 2 * n))
    strides = list(attrs.get("strides", [1] * n))
    dilations = list(attrs.get("dilations", [1] * n))
    return tuple((size[i] + pads[i] + pads[i + n] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1
                 for i in range(n))
