"""The decoder pool's worker process (`decoder_pool`): one compressed frame per job, into shared memory.

Imported by the forkserver before it forks workers, so the decoders (pydicom's plugins, gdcm, OpenJPEG,
CharLS, RLE) are loaded once and each worker starts in milliseconds. The parent never imports this module.
A job names the file, the frame and the slot of a shared array (the frame is decoded from its fragments
by `fragments` where it can, else through pydicom); the reply is a few bytes: ("ok", id),
("error", id, reason) or ("layout", id, reason, shape, dtype). Whatever a decoder raises, `PanicException`
(a BaseException) included, is a reply; what it does not raise (an abort, a segfault) ends this process,
which the pool reports and replaces.
"""

from __future__ import annotations

import importlib
import os
import signal
import struct
import sys
from collections import OrderedDict
from multiprocessing import shared_memory

import numpy as np

from medview.core.dicom import fragments, pixels
from medview.core.dicom.decoder_pool import DecodeTask, codec_name
from medview.core.dicom.scan import quiet_pydicom
from medview.core.dicom.source import SourceRef
from medview.core.errors import DicomReadError, without_file


def _preload_decoders() -> None:
    """Import the decoder plugins now (in the forkserver), not on each worker's first frame."""
    import pydicom.pixels.decoders  # noqa: F401

    for name in ("gdcm", "openjpeg", "rle", "jpeg_ls", "pylibjpeg"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing plugin is pydicom's to report on decode
            pass


_preload_decoders()


class DecodeFailure(Exception):
    """A frame that cannot be decoded; the message is the reason in words (without the file name)."""


class LayoutMismatch(DecodeFailure):
    """The decoded frame does not fit its slot; `shape` and `dtype` are what was decoded."""

    def __init__(self, reason: str, shape: tuple[int, ...], dtype: str) -> None:
        super().__init__(reason)
        self.shape = shape
        self.dtype = dtype


# --------------------------------------------------------------------------------------------- the loop


def main(conn, decode: str) -> None:
    """Serve jobs from `conn` until it closes or sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    _silence_native_output()
    decode_fn = _resolve(decode)
    segments = _Segments()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] == "release":
            segments.close(tuple(message[1]))
            _DATASETS.clear()
            continue
        conn.send(_run(message[1], decode_fn, segments))


def _run(task: DecodeTask, decode_fn, segments: "_Segments") -> tuple:
    try:
        out = segments.slot(task)
    except FileNotFoundError:
        return ("error", task.job_id, "the load was cancelled before this frame was decoded")
    except (OSError, ValueError) as exc:
        return ("error", task.job_id, f"the frame's memory cannot be opened ({exc})")
    try:
        decode_fn(task, out)
        return ("ok", task.job_id)
    except LayoutMismatch as exc:
        return ("layout", task.job_id, str(exc), exc.shape, exc.dtype)
    except DecodeFailure as exc:
        return ("error", task.job_id, str(exc))
    except MemoryError:
        return ("error", task.job_id, "not enough memory to decode the image")
    except BaseException as exc:  # noqa: BLE001 - PanicException and the like: this file, not the worker
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        return ("error", task.job_id, f"the {codec_name(task.transfer_syntax)} decoder failed on this file "
                                      f"({detail})")
    finally:
        del out


def _silence_native_output() -> None:
    """Decoders print warnings and C++ 'terminate called...' lines to the process's stdout/stderr; the pool
    reports each failure in one line of its own, so a worker's native output goes nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass


def _resolve(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _attach_untracked(name: str) -> shared_memory.SharedMemory:
    """A segment attached without registering its name with the resource tracker, as Python 3.13's
    `track=False` does. The parent created (and registered) it and unlinks it; a worker's registration that
    reached the tracker after that unlink outlived the segment, and the tracker reported it as leaked at exit
    (lines on stderr naming no file)."""
    from multiprocessing import resource_tracker

    register = resource_tracker.register
    resource_tracker.register = lambda name, rtype: None  # this process attaches from one thread only
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


class _Segments:
    """Shared arrays attached by name, the last few kept (a stack's jobs all write into one)."""

    KEEP = 4

    def __init__(self) -> None:
        self._open: OrderedDict[tuple[str, str], tuple[object, np.ndarray]] = OrderedDict()

    def slot(self, task: DecodeTask) -> np.ndarray:
        segment = tuple(task.segment)
        held = self._open.get(segment)
        if held is None:
            held = self._attach(segment, task)
            self._open[segment] = held
            while len(self._open) > self.KEEP:
                self.close(next(iter(self._open)))
        self._open.move_to_end(segment)
        return held[1][task.slot]

    @staticmethod
    def _attach(segment: tuple[str, str], task: DecodeTask) -> tuple[object, np.ndarray]:
        kind, name = segment
        dtype = np.dtype(task.dtype)
        if kind == "file":
            mapped = np.memmap(name, dtype=dtype, mode="r+", shape=task.shape)
            return mapped, mapped
        if sys.version_info >= (3, 13):
            shm = shared_memory.SharedMemory(name=name, track=False)
        else:
            shm = _attach_untracked(name)
        return shm, np.ndarray(task.shape, dtype, buffer=shm.buf)

    def close(self, segment: tuple[str, str]) -> None:
        held = self._open.pop(segment, None)
        if held is None:
            return
        handle, array = held
        del array, held
        if isinstance(handle, shared_memory.SharedMemory):
            try:
                handle.close()
            except BufferError:
                pass  # a view is still alive somewhere: unmapped when it goes


# --------------------------------------------------------------------------------------------- decoding

# the last file read: a multi-frame file's frames come one job after another
_DATASETS: OrderedDict[tuple, object] = OrderedDict()


def _file_key(ref: SourceRef) -> tuple:
    try:
        st = os.stat(ref.path)
        return (ref.path, ref.member, st.st_size, st.st_mtime_ns)
    except OSError:
        return (ref.path, ref.member, None, None)


def _dataset(ref: SourceRef):
    key = _file_key(ref)
    ds = _DATASETS.get(key)
    if ds is None:
        _DATASETS.clear()
        try:
            with quiet_pydicom():
                ds = pixels.read_dataset(ref)
        except DicomReadError as exc:
            raise DecodeFailure(without_file(str(exc), ref.display(), ref.path)) from None
        _DATASETS[key] = ds
    return ds


def decode_frame(task: DecodeTask, out: np.ndarray) -> None:
    """The pool's decode function: frame `task.frame` of the file, straight from its fragments where
    `fragments` can (the common monochrome JPEG 2000, HTJ2K and JPEG-LS), else through `pixels.stored_frame`
    (stored values, RGB for colour); written into `out`."""
    if task.member is None:
        try:
            values = fragments.stored_frame(task.path, task.frame, task.transfer_syntax)
        except (OSError, ValueError, struct.error):
            values = None  # pydicom's route below says what is wrong with the file
        if values is not None:
            put(values, out)
            return
    ref = SourceRef(task.path, task.member)
    ds = _dataset(ref)
    try:
        with quiet_pydicom():
            values = pixels.stored_frame(ds, task.frame)
    except DicomReadError as exc:
        raise DecodeFailure(without_file(str(exc), ref.display(), ref.path)) from None
    put(values, out)


def put(values: np.ndarray, out: np.ndarray) -> None:
    """Write a decoded frame into its slot: same shape; another integer type only where every value fits."""
    values = np.asarray(values)
    if values.shape != out.shape:
        raise LayoutMismatch(f"the decoded image is {_shape_words(values.shape)}, not the "
                             f"{_shape_words(out.shape)} its header declares", values.shape, values.dtype.str)
    if values.dtype != out.dtype and not _fits(values, out.dtype):
        raise LayoutMismatch(f"the decoded values ({values.dtype}) do not fit the header's {out.dtype}",
                             values.shape, values.dtype.str)
    out[...] = values


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    if np.can_cast(values.dtype, dtype, "safe"):
        return True
    if values.dtype.kind not in "iub" or dtype.kind not in "iu" or values.size == 0:
        return False
    info = np.iinfo(dtype)
    return info.min <= int(values.min()) and int(values.max()) <= info.max


def _shape_words(shape: tuple[int, ...]) -> str:
    words = f"{shape[1]} x {shape[0]}" if len(shape) >= 2 else str(shape)
    return words + (" RGB" if len(shape) == 3 else "")
