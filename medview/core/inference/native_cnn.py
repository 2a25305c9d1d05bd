"""The engine's own CPU kernels for plain conv-ReLU-pool CNNs ending in a class activation map (the bundled
CamNet's shape): 3x3 convolutions as Winograd F(2x2, 3x3), fused with bias, ReLU and 2x2 max pooling.

Why: on the CPU both torch (oneDNN) and ONNX Runtime (MLAS) already run direct 3x3 convolutions at the
core's multiply-add peak, so matching the same work costs torch its per-call overhead and leaves it at
0.85-0.95x of ONNX Runtime. Winograd F(2x2, 3x3) needs 16 products per 2x2 output tile and channel pair
instead of 36; its tiles are the pooling windows. The kernels are in `_native_cnn.cpp` (AVX2 + FMA, built
at install time; absent or on another CPU the engine simply keeps TorchScript).

Nothing here decides what the network is: the layers are read from the frozen TorchScript graph, which
stays the reference. A graph of any other shape is not taken (`from_frozen` returns None with the reason),
and the engine compares this path with the plain module before using it.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Winograd F(2x2, 3x3) weight transform (Lavin & Gray 2016): U = G g G^T
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


class _Layer(ctypes.Structure):
    _fields_ = [("cin", ctypes.c_int), ("cout", ctypes.c_int), ("k", ctypes.c_int), ("stride", ctypes.c_int),
                ("pad", ctypes.c_int), ("pool", ctypes.c_int), ("weights", ctypes.c_void_p),
                ("bias", ctypes.c_void_p)]


_library: ctypes.CDLL | None = None
_library_reason: str | None = None


NOT_INSTALLED = "the compiled kernels are not installed"  # how library()'s reason starts when they were not built


def library() -> tuple[ctypes.CDLL | None, str | None]:
    """The compiled kernels (or None) and, where None, why not; loaded once."""
    global _library, _library_reason
    if _library is None and _library_reason is None:
        try:
            from medview.core.inference import _native_cnn  # built from _native_cnn.cpp at install time
        except ImportError as exc:
            _library_reason = f"{NOT_INSTALLED} ({exc})"
            return None, _library_reason
        try:
            lib = ctypes.CDLL(_native_cnn.__file__)
            _declare(lib)
        except (OSError, AttributeError) as exc:  # not loadable, or built without the C functions exported
            _library_reason = f"the compiled kernels cannot be used ({exc})"
            return None, _library_reason
        if not lib.mv_native_supported():
            _library_reason = "this CPU lacks AVX2 and FMA"
        else:
            _library = lib
    return _library, _library_reason


def _declare(lib: ctypes.CDLL) -> None:
    """The C signatures: without them ctypes would pass pointers and return values as 32-bit ints."""
    lib.mv_native_supported.restype = ctypes.c_int
    lib.mv_new.restype = ctypes.c_void_p
    lib.mv_new.argtypes = [ctypes.POINTER(_Layer), ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                           ctypes.c_int]
    lib.mv_cam_size.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    lib.mv_run.restype = ctypes.c_int
    lib.mv_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_int]
    lib.mv_free.argtypes = [ctypes.c_void_p]


def cout_innermost(weight: np.ndarray) -> np.ndarray:
    """Kernels [cout, cin, k, k] as the stem and the head read them: [cin * k * k, cout]."""
    return np.ascontiguousarray(weight.reshape(weight.shape[0], -1).T, np.float32)


def winograd_weights(weight: np.ndarray) -> np.ndarray:
    """3x3 kernels [cout, cin, 3, 3] -> F(2x2, 3x3) transformed [16, cin, cout] (computed in float64)."""
    u = np.einsum("ik,ockl,jl->ijco", _G, weight.astype(np.float64), _G)  # [4, 4, cin, cout]
    return np.ascontiguousarray(u.reshape(16, weight.shape[1], weight.shape[0]), np.float32)


class NativeCnn:
    """The network of a frozen TorchScript graph run by the compiled kernels; `(x, threads)` -> [scores, cam]."""

    def __init__(self, layers: list[dict[str, Any]], input_shape: tuple[int, int, int], sigmoid: bool,
                 max_threads: int) -> None:
        lib, reason = library()
        if lib is None:
            raise RuntimeError(reason)
        self._lib = lib
        self.input_shape = input_shape
        self.sigmoid = sigmoid
        keep = []  # the arrays must live until mv_new has copied them
        table = (_Layer * len(layers))()
        for slot, layer in zip(table, layers):
            weights = np.ascontiguousarray(layer["weights"], np.float32)
            bias = np.ascontiguousarray(layer["bias"], np.float32)
            keep += [weights, bias]
            slot.cin, slot.cout, slot.k = layer["cin"], layer["cout"], layer["k"]
            slot.stride, slot.pad, slot.pool = layer["stride"], layer["pad"], int(layer["pool"])
            slot.weights, slot.bias = weights.ctypes.data, bias.ctypes.data
        c, h, w = input_shape
        self._handle = lib.mv_new(table, len(layers), c, h, w, max(1, int(max_threads)))
        if not self._handle:
            raise RuntimeError("the compiled kernels do not run these layer shapes")
        size = (ctypes.c_int * 2)()
        lib.mv_cam_size(self._handle, size)
        self.labels = layers[-1]["cout"]
        self.cam_size = (size[0], size[1])
        self._lock = threading.Lock()

    @classmethod
    def from_frozen(cls, module, input_shape: tuple[int, int, int], max_threads: int) -> tuple[NativeCnn | None, str]:
        """This path for a frozen TorchScript module, or (None, why not)."""
        lib, reason = library()
        if lib is None:
            return None, reason or ""
        try:
            layers, sigmoid = _read_graph(module.graph)
        except _NotThisShape as exc:
            return None, f"the network is not a plain conv-ReLU-pool CNN with a CAM head ({exc})"
        except Exception as exc:  # noqa: BLE001 - a graph this reader did not foresee: TorchScript runs it
            return None, f"its graph could not be read ({type(exc).__name__}: {exc})"
        try:
            return cls(layers, input_shape, sigmoid, max_threads), ""
        except RuntimeError as exc:
            return None, str(exc)

    def __call__(self, x: np.ndarray, threads: int = 1) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"input of shape {list(x.shape)}, expected [N, {', '.join(map(str, self.input_shape))}]")
        n = x.shape[0]
        logits = np.empty((n, self.labels), np.float32)
        cam = np.empty((n, self.labels, *self.cam_size), np.float32)
        with self._lock:
            if self._lib.mv_run(self._handle, x.ctypes.data, n, logits.ctypes.data, cam.ctypes.data, int(threads)):
                raise RuntimeError("the compiled kernels failed")
        scores = 1.0 / (1.0 + np.exp(-logits)) if self.sigmoid else logits
        return [scores.astype(np.float32, copy=False), cam]

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._lib.mv_free(handle)


class _NotThisShape(Exception):
    pass


def _constant(value, what: str):
    node = value.node()
    if node.kind() != "prim::Constant":
        raise _NotThisShape(f"{what} is not a constant")
    return value.toIValue()


def _only_use(value, kinds: tuple[str, ...]):
    uses = value.uses()
    if len(uses) != 1 or uses[0].user.kind() not in kinds:
        return None
    return uses[0].user


def _read_graph(graph) -> tuple[list[dict[str, Any]], bool]:
    """The layers of `image -> (conv -> ReLU [-> 2x2 max pool])+ -> 1x1 conv = cam -> mean [-> sigmoid]`,
    returning (scores, cam); raises _NotThisShape naming the first thing that differs."""
    inputs = list(graph.inputs())
    if len(inputs) != 2:
        raise _NotThisShape("not one image input")
    value, layers = inputs[1], []
    while True:
        conv = _only_use(value, ("aten::conv2d",))
        if conv is None or conv.inputsAt(0) is not value:
            raise _NotThisShape("expected a convolution")
        weight = _constant(conv.inputsAt(1), "a weight")
        bias = _constant(conv.inputsAt(2), "a bias")
        stride, padding, dilation, groups = (_constant(conv.inputsAt(i), "a parameter") for i in range(3, 7))
        if (not hasattr(weight, "dim") or weight.dim() != 4 or isinstance(padding, str) or groups != 1
                or len(stride) != 2 or len(padding) != 2 or list(dilation) != [1, 1] or stride[0] != stride[1] or padding[0] != padding[1]
                or weight.shape[2] != weight.shape[3]):
            raise _NotThisShape("a convolution that is not square, or grouped or dilated")
        w = weight.detach().float().numpy()
        b = np.zeros(w.shape[0], np.float32) if bias is None else bias.detach().float().numpy()
        layer = {"cin": w.shape[1], "cout": w.shape[0], "k": w.shape[2], "stride": stride[0], "pad": padding[0],
                 "pool": False, "weights": w, "bias": b}
        relu = _only_use(conv.output(), ("aten::relu", "aten::relu_"))
        if relu is None:  # the head
            if layer["k"] != 1 or layer["stride"] != 1 or layer["pad"] != 0 or not layers:
                raise _NotThisShape("the last convolution is not 1x1")
            layer["weights"] = cout_innermost(w)
            layers.append(layer)
            return layers, _read_tail(conv.output())
        value = relu.output()
        pool = _only_use(value, ("aten::max_pool2d",))
        if pool is not None:
            kernel, pstride, ppad, pdil, ceil = (_constant(pool.inputsAt(i), "a pooling parameter")
                                                 for i in range(1, 6))
            if list(kernel) != [2, 2] or list(pstride) != [2, 2] or list(ppad) != [0, 0] or list(pdil) != [1, 1] or ceil:
                raise _NotThisShape("a pooling that is not 2x2 with stride 2")
            layer["pool"] = True
            value = pool.output()
        if layers:  # after the stem: 3x3, stride 1, padding 1, as Winograd
            if (layer["k"], layer["stride"], layer["pad"]) != (3, 1, 1):
                raise _NotThisShape("a convolution after the first that is not 3x3 / 1 / 1")
            layer["weights"] = winograd_weights(w)
        elif layer["pool"]:
            raise _NotThisShape("pooling right after the first convolution")
        else:
            layer["weights"] = cout_innermost(w)
        layers.append(layer)


def _read_tail(cam) -> bool:
    """`cam -> mean over (2, 3) [-> sigmoid]`, returned as (scores, cam): True where the sigmoid is there."""
    uses = cam.uses()
    users = {use.user.kind(): use.user for use in uses}
    if len(uses) != 2 or set(users) != {"aten::mean", "prim::TupleConstruct"}:
        raise _NotThisShape("the map is not returned beside its mean")
    mean = users["aten::mean"]
    dims = _constant(mean.inputsAt(1), "the mean's dims")
    if (not isinstance(dims, list) or list(dims) != [2, 3] or _constant(mean.inputsAt(2), "keepdim")
            or _constant(mean.inputsAt(3), "the mean's dtype") is not None):
        raise _NotThisShape("the scores are not the map's spatial mean")
    scores, sigmoid = mean.output(), False
    follow = _only_use(scores, ("aten::sigmoid", "prim::TupleConstruct"))
    if follow is not None and follow.kind() == "aten::sigmoid":
        scores, sigmoid = follow.output(), True
    tuple_node = users["prim::TupleConstruct"]
    if list(tuple_node.inputs()) != [scores, cam] or _only_use(tuple_node.output(), ("prim::Return",)) is None:
        raise _NotThisShape("the outputs are not (scores, map)")
    return sigmoid
