"""Running a model bundle: device choice, pre-processing through the display pipeline, batching, scores, CAMs.

Threads: `torch.set_num_threads` and `torch.inference_mode()` apply to the thread that calls them
(inference_mode is thread-local; the intra-op pool size is taken by the thread's first parallel region).
So whoever runs the engine in a thread calls `Engine.configure_thread()` and enters `inference_mode`
*inside that thread*: the Qt worker does both at the top of its `run()`, and every network call enters
`inference_mode` again in the thread that makes it. `warm_up()` runs once, in the thread that will infer.
On the CPU the network runs as frozen, oneDNN-fused TorchScript (with the exact rewrites of `optimise.py`), called
on as many images at once as the calling thread has intra-op threads, so oneDNN gives each thread whole
images: measured faster than one image per call on a pool of single-threaded Python threads (about 10 %), than
whole batches of 8 (cache), and about 2x `optimize_for_inference`.

Backends (`backend="auto"` chooses, see `choose_backend`): ONNX Runtime runs `models/model.onnx` and is the
default on the CPU; TorchScript (`models/model.ts`, frozen and oneDNN-fused on the CPU) and torch.export programs
(`models/model.pt2`) run through torch, which also runs them on CUDA; ONNX Runtime's CUDA provider is used where
it is installed. Every backend must give the same scores (tested). On the CPU ONNX Runtime, like the fused
TorchScript, gives each thread whole images: a batch (with a measuring model's mirror images) is split over
single-threaded calls run at once, one per intra-op thread of the thread that built the engine
(`parallel_calls`); `FrameScorer`, with many images, instead runs that many shares of a batch at once, each
windowed, shrunk, measured and run through the network (`one_call`) in a lane of its own. A measuring model runs
each image with its mirror image; where the CPU's vector block is wider than the network's narrow layers, ONNX
Runtime runs the two as one packed pass (`paired_graph`), checked at warm-up against two plain passes.
torch is imported here at module level: this module is only imported by `infer`, `gui`/`demo` and tests.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medview.core.dicom import pixels
from medview.core.errors import ModelError, UsageError
from medview.core.inference.bundle import (
    NETWORK_FILES, ModelBundle, load_export, load_torchscript, verified_network_bytes, verified_onnx_bytes,
)
from medview.core.inference.optimise import split_column_phases
from medview.core.inference.paired_graph import channel_block, pair_images
from medview.core.inference import ctr
from medview.core.inference.results import NotApplicable, Prediction, short_reason

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "torchscript", "export")
#: which network file each backend runs
_BACKEND_FORMAT = {"onnxruntime": "onnx", "torchscript": "torchscript", "export": "export"}
WARM_UP_PASSES = 3
# glibc malloc: allocations above MMAP_THRESHOLD get their own mapping; free memory above TRIM_THRESHOLD at the
# top of the heap goes back to the OS (see keep_freed_memory_for_reuse)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 16 << 20
TRIM_THRESHOLD = 32 << 20
_malloc_tuned: bool | None = None


class NetOutput(NamedTuple):
    """A batch's checked network output: a classifier's scores [N, K] (probabilities) and heatmaps
    [N, K, h, w] or None, or a measuring model's probability masks [N, M, H, W] (scores and heatmap None)."""

    scores: np.ndarray | None
    heatmap: np.ndarray | None
    masks: np.ndarray | None = None


def cuda_available() -> bool:
    return torch.cuda.is_available()


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(requested: str | None = "auto") -> str:
    """"auto" picks CUDA, then Apple MPS, then CPU; a named device that is absent is a usage error."""
    requested = (requested or "auto").lower()
    if requested == "auto":
        if cuda_available():
            return "cuda"
        if mps_available():
            return "mps"
        return "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        if not cuda_available():
            raise UsageError("device cuda was asked for, but no CUDA GPU is available (use --device auto or cpu)")
        return "cuda"
    if requested == "mps":
        if not mps_available():
            raise UsageError("device mps was asked for, but Apple MPS is not available (use --device auto or cpu)")
        return "mps"
    raise UsageError(f"unknown device {requested!r}: use auto, cpu, cuda or mps")


def keep_freed_memory_for_reuse() -> bool:
    """Fixed glibc malloc thresholds, so a network call's freed activations are reused by the next call
    instead of being handed back to the OS and faulted in again; True where they were set (glibc only).

    Why: torch allocates every activation of a CPU call with malloc (ONNX Runtime keeps an arena). glibc's
    default thresholds follow the largest block freed so far, here an activation of about 1 MB, so the 2-4 MB
    left free at the top of the heap after a call often went back to the OS, and the next call page-faulted
    it in again: up to 115 minor faults per 256x256 image on one thread (the app's worker on two cores),
    about 100-250 us of its 1.5 ms. Fixed at 16 MB / 32 MB: 0-4 faults; a block over 16 MB (a large decoded
    image) still gets its own mapping and is returned when freed, and at most 32 MB of free heap is kept.
    Process-wide, set once.
    """
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                mallopt = getattr(libc, "mallopt", None)
                if mallopt is not None and getattr(libc, "gnu_get_libc_version", None) is not None:
                    _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            except OSError:
                pass
    return _malloc_tuned


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnxruntime_cuda_available() -> bool:
    if not onnxruntime_available():
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def choose_backend(bundle: ModelBundle, device: str) -> str:
    """What runs the network when nobody asked: on the CPU, ONNX Runtime where the bundle has model.onnx (one
    small runtime, no compiler warm-up); on a GPU, ONNX Runtime where its CUDA provider is installed, else
    torch, which runs TorchScript and torch.export programs on every device; ONNX Runtime on the CPU is the
    last resort of a bundle that has nothing else."""
    formats = bundle.networks
    if "onnx" in formats and onnxruntime_available():
        if device == "cpu" or (device == "cuda" and onnxruntime_cuda_available()):
            return "onnxruntime"
    for backend in ("torchscript", "export"):
        if _BACKEND_FORMAT[backend] in formats:
            return backend
    if "onnx" in formats:
        if not onnxruntime_available():
            raise ModelError(f"model {bundle.source}: its only network is models/model.onnx, and ONNX Runtime "
                             "(the onnxruntime package) is not installed")
        return "onnxruntime"
    raise ModelError(f"model {bundle.source}: has no network file")  # pragma: no cover - load_bundle checks


def frame_for_model(window, ds, frame: int = 0, stored: np.ndarray | None = None) -> np.ndarray:
    """One frame as a model with this `window` setting sees it before resizing: uint8 from the shared
    display pipeline (SPEC 3), never a second implementation.

    "dicom": exactly the viewer's default rendering (the file's window, MONOCHROME1 inverted), so CR and DX
    look alike; (center, width): that window; "minmax": a window spanning the image's modality values.
    `stored`: the frame's stored values when already decoded (the decoder pool's, for compressed data).
    """
    if stored is None:
        stored = pixels.stored_frame(ds, frame)
    if window == "dicom":
        return pixels.display_frame(ds, frame, stored=stored)
    if window == "minmax":
        values = pixels.modality_lut(stored, ds, frame)
        lo, hi = float(np.min(values)), float(np.max(values))
        # LINEAR (PS3.3 C.11.2.1.2.1) maps c - 0.5 -/+ (w - 1)/2 to black/white: lo and hi exactly
        return pixels.display_frame(ds, frame, window=pixels.Window((lo + hi) / 2 + 0.5, hi - lo + 1.0),
                                    stored=stored)
    center, width = window
    return pixels.display_frame(ds, frame, window=pixels.Window(center, width), stored=stored)


def to_batch(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    *,
    channels: int = 1,
    value_range: tuple[float, float] = (0.0, 1.0),
    device: str = "cpu",
) -> torch.Tensor:
    """uint8 images (H, W) or (H, W, 3) of any sizes -> float32 [N, C, *size] scaled to `value_range`.

    An image many times the network's size is first shrunk by a whole factor (the mean of k x k blocks:
    `block_mean` for a grey uint8 image on the CPU, else torch's `avg_pool2d`, the same numbers), leaving
    at least twice the size for the antialiased bilinear resize that follows: the same picture to within a
    grey level or two, at a fifth of the cost for a radiograph (a 2500x2048 image: 14 ms to
    128x128 directly, 3 ms in two steps, one thread). Images of one size are then resized in one call.
    The training script uses this same function, so the network sees exactly what it was trained on.
    """
    if not images:
        raise ValueError("no images")
    height, width = size
    lo, hi = value_range
    out = torch.empty((len(images), channels, height, width), dtype=torch.float32, device=device)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(img.shape, []).append(i)
    weights = torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)
    for shape, indices in groups.items():
        step = max(1, min(shape[0] // height, shape[1] // width) // 2)
        parts = []
        for i in indices:  # one image at a time through the whole-step shrink: no batch of full-size floats
            if step > 1 and device == "cpu" and images[i].ndim == 2 and images[i].dtype == np.uint8:
                parts.append(torch.from_numpy(block_mean(images[i], step))[None, None])
                continue
            x = torch.from_numpy(np.ascontiguousarray(images[i])).to(device).to(torch.float32)
            x = x.permute(2, 0, 1).unsqueeze(0) if x.ndim == 3 else x.view(1, 1, *x.shape)
            if x.shape[1] == 3 and channels == 1:
                x = (x * weights).sum(1, keepdim=True)
            if step > 1:
                x = F.avg_pool2d(x, step, ceil_mode=True)  # a partial last block is the mean of what it holds
            parts.append(x)
        x = torch.cat(parts)
        if channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (height, width):
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        out[indices] = x
    return out.mul_((hi - lo) / 255.0).add_(lo).clamp_(min(lo, hi), max(lo, hi))


def block_mean(image: np.ndarray, step: int) -> np.ndarray:
    """A uint8 (H, W) image shrunk by the mean of its `step` x `step` blocks, float32; a partial last row or
    column of blocks is the mean of what it holds. Exactly torch's `avg_pool2d(x, step, ceil_mode=True)` on
    the image as float32 (the block sums are integers, exact in either; one division each), at a quarter of
    its cost on the CPU: the rows of each block are summed first, reading each byte once along its row,
    then the columns of that `step` times smaller array; never a full-size float or padded copy."""
    h, w = image.shape
    whole_rows, whole_cols = h // step, w // step
    rows, cols = -(-h // step), -(-w // step)
    wide = np.uint16 if step * step * 255 <= np.iinfo(np.uint16).max else np.uint32
    down = np.empty((rows, w), wide)  # each block row's `step` image rows summed
    _add_every(image[:whole_rows * step], step, 0, down[:whole_rows])
    if rows > whole_rows:
        down[-1] = image[whole_rows * step:].sum(axis=0, dtype=wide)
    sums = np.empty((rows, cols), wide)
    _add_every(down[:, :whole_cols * step], step, 1, sums[:, :whole_cols])
    if cols > whole_cols:
        sums[:, -1] = down[:, whole_cols * step:].sum(axis=1, dtype=wide)
    row_count = np.full(rows, step, np.float32)
    row_count[-1] = h - (rows - 1) * step
    col_count = np.full(cols, step, np.float32)
    col_count[-1] = w - (cols - 1) * step
    return sums.astype(np.float32) / (row_count[:, None] * col_count[None, :])


def _add_every(values: np.ndarray, step: int, axis: int, out: np.ndarray) -> None:
    """`out` = the sum of each `step` consecutive rows (axis 0) or columns (axis 1) of `values`, in `out`'s
    type: the first two added in one pass, the rest onto them."""
    def part(k: int) -> np.ndarray:
        return values[k::step] if axis == 0 else values[:, k::step]

    if step == 1:
        out[...] = values
        return
    np.add(part(0), part(1), out=out, dtype=out.dtype)
    for k in range(2, step):
        out += part(k)


class Engine:
    """One loaded network, kept for the life of the app (never reloaded per request)."""

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        device: str | None = "auto",
        backend: str = "auto",
        batch_size: int = 8,
        optimize: bool = True,
    ) -> None:
        """`optimize=False` runs the TorchScript module as loaded."""
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
        self.bundle = bundle
        self.device = select_device(device)
        # every network file the bundle carries must match its checksum, the ones not run here included: a
        # bundle with a changed file is damaged or tampered with, whichever engine would have run it
        for kind in bundle.networks:
            verified_network_bytes(bundle, kind)
        if backend == "auto":
            backend = choose_backend(bundle, self.device)
        elif _BACKEND_FORMAT[backend] not in bundle.networks:
            raise ModelError(f"model {bundle.source}: has no {NETWORK_FILES[_BACKEND_FORMAT[backend]]} for the {backend} backend")
        self.backend = backend
        self.batch_size = max(1, int(batch_size))
        self._warm = False
        self._module = None
        self._session = None
        self._paired = None  # ONNX Runtime on an image and its mirror image packed into one pass (see _load_onnx)
        # ONNX Runtime on the CPU: single-threaded calls, a batch split over this many at once (see _onnx_run)
        self._onnx_calls = 1
        self._onnx_helpers: ThreadPoolExecutor | None = None
        # oneDNN Graph fusion, and with it one network call per intra-op thread's worth of images (see _chunk)
        self._fused = False
        self._reference = None  # the unoptimised module, until warm_up() has compared the two
        if self.device == "cpu":
            # torch's activations, and with any backend the full-size float images of the windowing and
            # the shrink before the network (5-6 MB each for a radiograph)
            keep_freed_memory_for_reuse()
        if backend == "onnxruntime":
            self._session = self._load_onnx()
        else:
            self._module = (self._load_torchscript(optimize) if backend == "torchscript"
                            else load_export(bundle, self.device))

    # -- loading -------------------------------------------------------------------------------------------
    def _load_torchscript(self, optimize: bool):
        module = load_torchscript(self.bundle, self.device)
        if not optimize:
            return module
        try:
            frozen = torch.jit.freeze(module)  # folds batch-norm into the convolutions, inlines the weights
        except Exception as exc:  # an exotic graph: run it unoptimised rather than refuse it
            log.info("model %s: TorchScript freezing skipped (%s)", self.bundle.ident, exc)
            return module
        if self.device == "cpu":
            # oneDNN Graph fusion (conv + ReLU in one kernel, blocked layouts): measured 1.7-2x faster than
            # optimize_for_inference on the bundled CNN. It compiles per input shape, so calls always take
            # the same number of images (the thread's intra-op threads; a short last chunk compiles once
            # more), and oneDNN then gives each thread whole images whose activations stay in its cache.
            # The fuser is a process-wide switch, so it is turned on only around this module's calls, and
            # warm_up() checks the optimised graph against the plain one before trusting it.
            self._fused = True
            if split_column_phases(frozen, self.bundle.resize):
                log.info("model %s: first convolution reads the image as two column phases", self.bundle.ident)
        self._reference = module
        return frozen

    def _load_onnx(self):
        if not onnxruntime_available():
            raise ModelError("the onnxruntime backend needs ONNX Runtime (the onnxruntime package)")
        data = verified_onnx_bytes(self.bundle)
        import onnxruntime as ort

        options = ort.SessionOptions()
        on_cpu = self.device == "cpu"
        # on the CPU each call is single-threaded and a batch is split over concurrent calls, one per thread
        # (of the thread building the engine): each thread runs whole images, no thread waits for another
        # within a layer, which a core shared with the reading of the next batch or another process stalls
        options.intra_op_num_threads = 1 if on_cpu else torch.get_num_threads()
        options.inter_op_num_threads = 1
        if on_cpu and torch.get_num_threads() > 1:
            self._onnx_calls = torch.get_num_threads()
            self._onnx_helpers = ThreadPoolExecutor(self._onnx_calls - 1, thread_name_prefix="medview-onnx")
        # no busy-waiting between calls: the worker shares the cores with the GUI thread and the decoders
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if self.device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ort.InferenceSession(data, options, providers=providers)
        except Exception as exc:
            raise ModelError(f"model {self.bundle.source}: models/model.onnx could not be loaded ({exc})") from None
        spec = self.bundle.measurement
        if on_cpu and spec is not None and spec.mirror_average:
            self._paired = self._load_paired(data, options)
        return session

    def _load_paired(self, data: bytes, options):
        """The network rewritten to run an image and its mirror image as one packed pass, where that saves
        padded work on this CPU; None where it does not or the graph is not one the rewrite reads."""
        from medview.core.inference.onnx_proto import read_graph, write_graph
        import onnxruntime as ort

        try:
            paired = pair_images(read_graph(data), channel_block())
            if paired is None:
                return None
            session = ort.InferenceSession(write_graph(paired), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a graph the rewrite cannot read runs as it is
            log.info("model %s: no packed pass for the mirror images (%s)", self.bundle.ident, short_reason(exc))
            return None
        log.info("model %s: an image and its mirror image run as one packed pass", self.bundle.ident)
        return session

    @property
    def runs_on(self) -> str:
        """What runs the network, in words (after warm-up: what the checks kept)."""
        if self._session is not None:
            providers = self._session.get_providers()
            if providers and providers[0] == "CUDAExecutionProvider":
                return "ONNX Runtime (CUDA)"
            return "ONNX Runtime (image and mirror image packed)" if self._paired is not None else "ONNX Runtime"
        if self.backend == "export":
            return f"torch.export program ({self.device})"
        return "TorchScript (oneDNN fused)" if self._fused else "TorchScript"

    @staticmethod
    def configure_thread(num_threads: int | None = None) -> int:
        """Set the intra-op thread count for the calling thread (default: torch's, the physical cores)."""
        if num_threads:
            torch.set_num_threads(int(num_threads))
        return torch.get_num_threads()

    # -- running -------------------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """A blank image through the network: checks the output shapes and values, and pays one-off costs
        (TorchScript profiles its first pass and compiles the optimised graph on the second). The plain
        module is checked first, so a failure is the network's, then the optimised graph against it."""
        if self._warm:
            return
        h, w = self.bundle.resize
        x = torch.zeros((self._chunk() or 1, self.bundle.num_channels, h, w), dtype=torch.float32,
                        device=self.device)
        x += self.bundle.value_range[0]
        try:
            reference = self._reference
            if reference is not None:
                self._check_outputs(_run(reference, x[:1], fused=False), 1)
            self._check_optimised(x)
            # passes the module now in use has had on this shape: the optimised one WARM_UP_PASSES in
            # _check_optimised; the plain one it fell back to, one (its reference answer); else none
            done = 0 if reference is None else 1 if self._module is reference else WARM_UP_PASSES
            blank = self._raw_forward(x)  # the blank image, for the checks below
            for _ in range(WARM_UP_PASSES - 1 - done):  # the profiling executor compiles on the second pass
                self._raw_forward(x)
            self._check_paired()
        except ModelError:
            raise  # wrong shapes: already named
        except Exception as exc:
            raise ModelError(f"model {self.bundle.source}: the network fails on a {list(x.shape)} input "
                             f"({short_reason(exc)})") from None
        if blank.masks is not None:
            if not np.all(np.isfinite(blank.masks)) or blank.masks.min() < 0 or blank.masks.max() > 1:
                raise ModelError(f"model {self.bundle.source}: the network's masks are not probabilities (0..1)")
            self._warm = True
            return
        scores = blank.scores
        if not np.all(np.isfinite(scores)):
            raise ModelError(f"model {self.bundle.source}: the network returns NaN or infinite scores")
        if self.bundle.scores == "probabilities" and (scores.min() < 0 or scores.max() > 1):
            raise ModelError(f"model {self.bundle.source}: scores outside 0..1 although medview.outputs.scores "
                             "is \"probabilities\" (declare \"sigmoid\" or \"softmax\" for logits)")
        self._warm = True

    def _chunk(self) -> int | None:
        """Images per network call: with fusion (the CPU) one per intra-op thread of the calling thread, so the
        fused graph always sees the same shape; else all."""
        return max(1, torch.get_num_threads()) if self._fused else None

    def _check_optimised(self, like: torch.Tensor) -> None:
        """Optimisation must not change the answer: the frozen (fused, rewritten) graph is compared with the
        plain module on a fixed random batch, and dropped for it where it differs or fails."""
        reference, self._reference = self._reference, None
        if reference is None:
            return
        lo, hi = self.bundle.value_range
        gen = torch.Generator().manual_seed(0)
        x = (torch.rand(like.shape, generator=gen) * (hi - lo) + lo).to(self.device)
        expected = _run(reference, x, fused=False)

        def optimised() -> list:
            for _ in range(WARM_UP_PASSES):
                actual = _run(self._module, x, fused=self._fused, chunk=self._chunk())
            return actual

        problem = _disagreement(optimised, expected)
        if problem:
            # a graph the optimiser cannot run is routine (the plain module is as right); one that answers
            # differently is worth a warning
            level = logging.INFO if problem.startswith("it fails") else logging.WARNING
            log.log(level, "model %s: the optimised graph is not used (%s); running it unoptimised",
                    self.bundle.ident, problem)
            self._module, self._fused = reference, False

    def _check_paired(self) -> None:
        """The packed pass must answer as the plain network does on the image and its mirror image: compared
        on a fixed noise image and a smooth one, each value to 1e-4 of itself (masks far from an outline are
        probabilities near 0 or 1, where an absolute tolerance would see no difference), and dropped where
        it differs or fails."""
        if self._paired is None:
            return
        lo, hi = self.bundle.value_range
        h, w = self.bundle.resize
        rows, cols = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)
        smooth = 0.5 + 0.5 * np.sin(5 * rows + 3 * cols ** 2) * np.cos(4 * cols - rows)
        noise = np.random.default_rng(0).random((h, w))
        x = np.stack([noise, smooth])[:, None].repeat(self.bundle.num_channels, axis=1)
        x = (x * (hi - lo) + lo).astype(np.float32)
        mirrored = np.ascontiguousarray(x[..., ::-1])
        try:
            expected = self._session.run(None, {self._session.get_inputs()[0].name: np.concatenate([x, mirrored])})[0]
            actual = self._paired_masks(x, mirrored)
            problem = None if np.allclose(actual, expected, rtol=1e-4, atol=1e-6) else \
                f"its masks differ from the plain network's by up to {float(np.abs(actual - expected).max()):.3g}"
        except Exception as exc:  # noqa: BLE001 - the plain network is as right
            problem = f"it fails: {short_reason(exc)}"
        if problem:
            log.warning("model %s: the packed pass is not used (%s)", self.bundle.ident, problem)
            self._paired = None

    def _paired_masks(self, images: np.ndarray, mirrored: np.ndarray, one_call: bool = True) -> np.ndarray:
        """The packed pass on images and their mirror images ([N, C, H, W] each): the images' masks, then the
        mirror images'."""
        out = self._onnx_run(np.concatenate([images, mirrored], axis=1), one_call, self._paired)[0]
        k = out.shape[1] // 2
        return np.concatenate([out[:, :k], out[:, k:]])

    @property
    def parallel_calls(self) -> int:
        """How many network calls at once fill the cores this engine was built for: its ONNX Runtime calls on
        the CPU are single-threaded, so a caller with many images runs this many batches at once (each with
        `one_call`); 1 where one call uses them all (torch's intra-op threads, a GPU)."""
        return self._onnx_calls

    def _raw_forward(self, x: torch.Tensor, one_call: bool = False) -> NetOutput:
        """The network on a prepared batch: its checked output as float32."""
        if self._session is not None:
            outputs = self._onnx_run(x.cpu().numpy(), one_call)
        else:
            outputs = _run(self._module, x, fused=self._fused, chunk=self._chunk())
        return self._check_outputs(outputs, x.shape[0])

    def _onnx_run(self, batch: np.ndarray, one_call: bool = False, session=None) -> list:
        """ONNX Runtime (`session`, else the network's) on a batch: split into `_onnx_calls` parts run at once
        (the calls release the GIL), the first in this thread, unless `one_call`; each image's answer is the
        same whichever part it is in."""
        session = session or self._session
        name = session.get_inputs()[0].name
        parts = 1 if one_call else min(self._onnx_calls, len(batch))
        if parts < 2:
            return session.run(None, {name: batch})
        bounds = [len(batch) * i // parts for i in range(parts + 1)]
        rest = [self._onnx_helpers.submit(session.run, None, {name: batch[a:b]})
                for a, b in zip(bounds[1:-1], bounds[2:])]
        first = session.run(None, {name: batch[:bounds[1]]})
        answers = [first] + [future.result() for future in rest]
        return [np.concatenate([answer[k] for answer in answers]) for k in range(len(first))]

    def _check_outputs(self, outputs: list, n: int) -> NetOutput:
        k = len(self.bundle.labels)
        where = f"model {self.bundle.source}"
        spec = self.bundle.measurement
        if spec is not None:
            masks = np.asarray(outputs[0], dtype=np.float32) if outputs else None
            h, w = self.bundle.resize
            if masks is None or masks.shape != (n, len(spec.masks), h, w):
                raise ModelError(f"{where}: masks have shape {None if masks is None else list(masks.shape)}, "
                                 f"expected [{n}, {len(spec.masks)}, {h}, {w}] ({', '.join(spec.masks)})")
            return NetOutput(None, None, masks)
        if not outputs or not isinstance(outputs[0], np.ndarray):
            raise ModelError(f"{where}: the network returns no score tensor")
        scores = np.asarray(outputs[0], dtype=np.float32)
        if scores.shape != (n, k):
            raise ModelError(f"{where}: scores have shape {list(scores.shape)}, expected [{n}, {k}] "
                             f"(one per finding of channel_def)")
        if self.bundle.scores == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
        elif self.bundle.scores == "softmax":
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = e / e.sum(axis=1, keepdims=True)
        heatmap = None
        if len(outputs) > 1 and outputs[1] is not None:
            heatmap = np.asarray(outputs[1], dtype=np.float32)
            if heatmap.ndim != 4 or heatmap.shape[0] != n or heatmap.shape[1] not in (1, k):
                raise ModelError(f"{where}: heatmap has shape {list(heatmap.shape)}, expected [{n}, {k} or 1, h, w]")
            if heatmap.shape[1] != k:
                heatmap = np.repeat(heatmap, k, axis=1)
        elif self.bundle.heatmap:
            raise ModelError(f"{where}: medview.outputs.heatmap is true but the network returns no heatmap")
        return NetOutput(scores, heatmap)

    def prepare(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 display images -> the network's input batch on this engine's device."""
        b = self.bundle
        # resized on a CUDA GPU when there is one; otherwise on the CPU, the path the model was trained on
        where = "cuda" if self.device == "cuda" else "cpu"
        x = to_batch(images, b.resize, channels=b.num_channels, value_range=b.value_range, device=where)
        return x.to(self.device)

    def forward(self, x: torch.Tensor, one_call: bool = False) -> NetOutput:
        """Scores (post-processed to probabilities) and raw heatmaps, or masks, of one prepared batch; warms up
        first. `one_call`: in one network call on this thread (see `parallel_calls`)."""
        self.warm_up()
        return self._raw_forward(x.to(self.device), one_call)

    def mirrored_masks(self, x: torch.Tensor, one_call: bool = False) -> np.ndarray:
        """A measuring model's masks of a prepared batch and of its mirror images, in that order and as the
        network draws them (the mirror images' masks mirrored): one packed pass where there is one."""
        mirrored = torch.flip(x, dims=[3])
        self.warm_up()
        if self._paired is None:
            return self.forward(torch.cat([x, mirrored]), one_call).masks
        masks = self._paired_masks(x.cpu().numpy(), mirrored.cpu().numpy(), one_call)
        return self._check_outputs([masks], 2 * len(x)).masks

    def predict_images(self, images: Sequence[np.ndarray], *, one_call: bool = False
                       ) -> list[Prediction | NotApplicable | str]:
        """Predictions for uint8 display images, in batches; an image whose scores are not finite gets a
        reason (str) instead of a Prediction, so one bad image never spoils the others; an image a measuring
        model finds no frontal chest in is NotApplicable, with the reason. `one_call`: each batch in one
        network call on this thread, for a caller running `parallel_calls` batches at once."""
        results: list[Prediction | NotApplicable | str] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            x = self.prepare(chunk)
            spec = self.bundle.measurement
            if spec is not None and spec.mirror_average:
                # the images and their mirror images in one network run: one call's overhead, full batches
                both = self.mirrored_masks(x, one_call)
                out = NetOutput(None, None, (both[:len(chunk)] + both[len(chunk):, ..., ::-1]) / 2)
            else:
                out = self.forward(x, one_call)
            for i, image in enumerate(chunk):
                if out.masks is not None:
                    results.append(self._measured(out.masks[i], image.shape[:2]))
                else:
                    results.append(self._prediction(out.scores[i], None if out.heatmap is None else out.heatmap[i]))
        return results

    def predict_datasets(self, items: Iterable[tuple[object, int]]) -> list[Prediction | NotApplicable | str]:
        """Predictions for (dataset, frame) pairs, each frame through `frame_for_model`; a dataset whose
        Modality is not one the model applies to is refused (ModelError), one without Modality is scored;
        one whose header is outside the model's intended use is NotApplicable without running the network."""
        items = list(items)
        for ds, _ in items:
            modality = str(getattr(ds, "Modality", "") or "")
            if modality and not self.bundle.applies_to(modality):
                raise ModelError(f"model {self.bundle.ident} applies to {', '.join(self.bundle.modalities)} "
                                 f"images, not {modality}")
        refusals = [self.bundle.out_of_scope(ds) for ds, _ in items]
        todo = [(ds, frame) for (ds, frame), why in zip(items, refusals) if why is None]
        scored = iter(self.predict_images([frame_for_model(self.bundle.window, ds, f) for ds, f in todo])
                      if todo else [])
        return [NotApplicable(why) if why is not None else next(scored) for why in refusals]

    def _measured(self, masks: np.ndarray, image_shape: tuple[int, int]) -> Prediction | NotApplicable | str:
        """A measuring model's answer for one image: the measurement and the score that follows from it, or
        why the image is not one it reads. The heatmap is the first mask (the heart: where it measured)."""
        spec = self.bundle.measurement
        if not np.all(np.isfinite(masks)):
            return "the model returned no valid masks for this image (NaN)"
        found = ctr.measure(masks, image_shape)
        if isinstance(found, str):
            return NotApplicable(found)
        score = ctr.score(found.value, found.unsure, spec.threshold, spec.score_scale, spec.unsure_gain)
        scores = {label: (score if label == spec.finding else 0.0) for label in self.bundle.labels}
        return Prediction(
            scores=scores,
            flagged=self.bundle.flagged(scores),
            heatmap=np.repeat(masks[:1], len(self.bundle.labels), axis=0).astype(np.float32),
            model=self.bundle.ident,
            measurements={spec.name: found.as_json(spec.threshold)},
            masks=(masks >= 0.5).astype(np.uint8),
            mask_labels=spec.masks,
        )

    def _prediction(self, scores: np.ndarray, heatmap: np.ndarray | None) -> Prediction | str:
        if not np.all(np.isfinite(scores)):
            return "the model returned no valid score for this image (NaN)"
        by_label = {label: float(scores[j]) for j, label in enumerate(self.bundle.labels)}
        return Prediction(
            scores=by_label,
            flagged=self.bundle.flagged(by_label),
            heatmap=None if heatmap is None else normalise_heatmap(heatmap),
            model=self.bundle.ident,
        )


def normalise_heatmap(heatmap: np.ndarray) -> np.ndarray:
    """Each finding's map scaled to 0..1 (min to max) for display; a flat map becomes zeros."""
    h = np.nan_to_num(heatmap.astype(np.float32, copy=True), nan=0.0)
    lo = h.min(axis=(1, 2), keepdims=True)
    span = h.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (h - lo) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)


@contextmanager
def _onednn_fusion(enabled: bool):
    """torch's oneDNN Graph fuser switched on or off (it is process-wide) for the calls inside."""
    before = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(enabled)
    try:
        yield
    finally:
        torch.jit.enable_onednn_fusion(before)


def _disagreement(outputs, expected: list) -> str | None:
    """None where `outputs()` agrees with `expected` (float32 rounding: 1e-5 of the largest value, at least
    1e-5); else how it differs or fails."""
    try:
        actual = outputs()
        pairs = [(a, e) for a, e in zip(actual, expected) if a is not None and e is not None]
        diff = max(float(np.abs(a - e).max()) for a, e in pairs)
        scale = max(1.0, max(float(np.abs(e).max()) for _, e in pairs))  # heatmaps are logits, tens
    except Exception as exc:  # noqa: BLE001 - an optimiser's limit, not the network's
        return f"it fails: {short_reason(exc)}"
    return None if diff <= 1e-5 * scale else f"its output differs from the plain module's by {diff:.3g}"


def _run(module, x: torch.Tensor, *, fused: bool, chunk: int | None = None) -> list:
    """A TorchScript module on `x`, `chunk` images per call (None: all): its outputs as float32 numpy
    (or None)."""
    step = chunk or x.shape[0]
    parts = []
    with _onednn_fusion(fused), torch.inference_mode():  # inference_mode is thread-local: entered here
        for start in range(0, x.shape[0], step):
            result = module(x[start:start + step])
            parts.append(list(result) if isinstance(result, (tuple, list)) else [result])
    return [_join([part[i] for part in parts]) for i in range(len(parts[0]))]


def _join(values: list) -> np.ndarray | None:
    """One network output gathered over chunks, as float32 numpy (None stays None)."""
    if values[0] is None:
        return None
    arrays = [v.float().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in values]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
