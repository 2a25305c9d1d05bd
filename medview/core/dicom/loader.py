"""Loading a stack into memory: stored dtype kept, first image first, uncompressed fast path, cancel.

Uncompressed pixel data (the bulk of CT/MR archives) is read straight from the file into its slot of one
preallocated array (`readinto` at the offset the scan recorded): no pydicom parsing, no temporary copy, so
peak memory is the stack's stored bytes. Compressed data is decoded frame by frame in the decoder pool's
worker processes (`decoder_pool`), straight into the stack's array in shared memory: in parallel, the shown
frame first and then outward from it (`FrameFocus` follows the reader), and a decoder that crashes on a file
costs that file only. Values are the stored values (rescale is applied at display): BitsStored below
BitsAllocated is masked, and sign-extended for signed data, exactly as pydicom's `pixel_array` does, so every
path gives the same numbers.
"""

from __future__ import annotations

import functools
import logging
import threading
import zipfile
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import numpy as np

from medview.core.dicom import decoded
from medview.core.dicom.model import FileError, InstanceInfo, Stack
from medview.core.dicom.pixels import mask_stored_bits
from medview.core.errors import MedviewError
from medview.core.memory import memory_refusal

log = logging.getLogger(__name__)

_BIG_ENDIAN = "1.2.840.10008.1.2.2"
# photometric interpretations whose stored samples are what the viewer shows (others are converted to RGB)
_FAST_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", ""}


@dataclass
class StackVolume:
    """Stored pixels of a stack: array (N, H, W) or (N, H, W, 3); frames[i] = (instance index, frame index)."""

    stack: Stack
    array: np.ndarray
    frames: list[tuple[int, int]]
    loaded: np.ndarray  # bool per frame
    errors: list[FileError] = field(default_factory=list)
    cancelled: bool = False


class FrameFocus:
    """The frame the reader is looking at while a stack loads: compressed frames are decoded outward from it.

    Thread-safe: the viewer sets it (`set`) from its thread while the load runs in another.
    """

    def __init__(self, frame: int = 0) -> None:
        self._lock = threading.Lock()
        self._frame = frame
        self._batch = None

    @property
    def frame(self) -> int:
        return self._frame

    def set(self, frame: int) -> None:
        with self._lock:
            self._frame = int(frame)
            batch = self._batch
        if batch is not None:
            batch.focus(int(frame))

    def _attach(self, batch) -> None:
        with self._lock:
            self._batch = batch
            frame = self._frame
        if batch is not None:
            batch.focus(frame)


class _FrameError(Exception):
    """A frame (and so its file) that cannot be read; the message is the reason in words."""


def stored_dtype(inst: InstanceInfo) -> np.dtype | None:
    """The numpy dtype of the stored values the header declares, or None when not plain integers."""
    if inst.bits_allocated not in (8, 16, 32):
        return None
    kind = "i" if inst.pixel_representation == 1 else "u"
    return np.dtype(f"{kind}{inst.bits_allocated // 8}")


def fast_path(inst: InstanceInfo) -> bool:
    """True when the frame bytes can be read straight from the file (native, integer, no colour conversion)."""
    return (
        inst.pixel_offset is not None
        and not inst.encapsulated
        and stored_dtype(inst) is not None
        and inst.samples_per_pixel in (1, 3)
        and (inst.samples_per_pixel == 1 or inst.photometric == "RGB")
        and inst.photometric in _FAST_PHOTOMETRIC
    )


def frame_shape(inst: InstanceInfo) -> tuple[int, ...]:
    return (inst.rows, inst.columns) if inst.samples_per_pixel == 1 else (inst.rows, inst.columns, 3)


def read_native_frame(ref, frame: int, info: InstanceInfo | None = None) -> np.ndarray | None:
    """One monochrome uncompressed frame read at its offset, without the rest of the pixel data: frame N of a
    multi-frame file of gigabytes costs the memory of one frame. `info`: the file's header facts where a scan
    has them (else the header is walked here). None where that path does not apply (a zip member, compressed
    or colour data, a frame out of range, a file the header walk refuses): the caller then reads the file the
    usual way, which also says what is wrong with it."""
    import os

    from medview.core.dicom import scan

    if ref.member is not None:
        return None
    try:
        with ref.open() as fp:
            if info is None:
                info = scan.read_header(ref, fp, os.fstat(fp.fileno()).st_size)
            if info is None or not fast_path(info) or info.samples_per_pixel != 1 or not 0 <= frame < info.frames:
                return None
            out = np.empty(frame_shape(info), stored_dtype(info))
            _read_fast(info, frame, fp, out)
            return out
    except (OSError, MedviewError, _FrameError, scan.NotDicom, scan.Unusable, ValueError):
        return None


class _Files:
    """Open files of the current instance, and zip archives kept open for the whole load."""

    def __init__(self) -> None:
        self.archives: dict[str, zipfile.ZipFile] = {}
        self.current: tuple[int, BinaryIO] | None = None
        self.datasets: dict[int, object] = {}

    def file(self, index: int, inst: InstanceInfo) -> BinaryIO:
        if self.current is not None and self.current[0] == index:
            return self.current[1]
        self.release()
        archive = None
        if inst.ref.member is not None:
            archive = self.archives.get(inst.ref.path)
            if archive is None:
                archive = self.archives[inst.ref.path] = zipfile.ZipFile(inst.ref.path)
        fp = inst.ref.open(archive)
        self.current = (index, fp)
        return fp

    def release(self) -> None:
        if self.current is not None:
            self.current[1].close()
            self.current = None

    def close(self) -> None:
        self.release()
        for archive in self.archives.values():
            archive.close()
        self.datasets.clear()


def _read_fast(inst: InstanceInfo, frame: int, fp: BinaryIO, out: np.ndarray) -> None:
    """Read one native frame at its offset into `out` (its slot of the stack array)."""
    dtype = stored_dtype(inst)
    assert dtype is not None and inst.pixel_offset is not None
    nbytes = inst.frame_bytes
    fp.seek(inst.pixel_offset + frame * nbytes)
    big = inst.transfer_syntax == _BIG_ENDIAN
    planar = inst.samples_per_pixel == 3 and inst.planar_configuration == 1
    direct = dtype == out.dtype and not planar and out.flags.c_contiguous
    target = out if direct else np.empty(nbytes // dtype.itemsize, dtype)
    got = fp.readinto(memoryview(target).cast("B"))
    if got != nbytes:
        raise _FrameError(f"pixel data is cut short (frame {frame + 1}: {got} of {nbytes} bytes)")
    if big and dtype.itemsize > 1:
        target.byteswap(inplace=True)  # stored big endian, now native order in the same memory
    mask_stored_bits(target, inst.bits_stored, inst.pixel_representation == 1)
    if direct:
        return
    if planar:
        out[...] = target.reshape(3, inst.rows, inst.columns).transpose(1, 2, 0)
    else:
        out[...] = target.reshape(out.shape)


def _decode(inst: InstanceInfo, frame: int, index: int, files: _Files) -> np.ndarray:
    """One frame through the display pipeline's reader (pydicom and its plugins): stored values, RGB colour."""
    from medview.core.dicom import pixels

    ds = files.datasets.get(index)
    if ds is None:
        try:
            ds = pixels.read_dataset(inst.ref)
        except NotImplementedError:
            ds = _pydicom_dataset(inst, files.file(index, inst))
        files.datasets.clear()  # one dataset at a time: multi-frame files are read frame by frame
        files.datasets[index] = ds
    try:
        return np.asarray(pixels.stored_frame(ds, frame))
    except NotImplementedError:
        return _pydicom_frame(ds, frame)


def _pydicom_dataset(inst: InstanceInfo, fp: BinaryIO):
    """Fallback while pixels.read_dataset is not there: pydicom, with the transfer syntax the scan found."""
    import pydicom
    from pydicom.dataset import FileMetaDataset

    fp.seek(0)
    ds = pydicom.dcmread(fp, force=True)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = inst.transfer_syntax
    return ds


def _pydicom_frame(ds, frame: int) -> np.ndarray:
    """Fallback while pixels.stored_frame is not there: pydicom's decoders, palette colour to RGB."""
    from pydicom.pixels import apply_color_lut

    arr = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        arr = arr[frame]
    if str(getattr(ds, "PhotometricInterpretation", "")) == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    return arr


class _GrowingArray:
    """The stack array of an in-process load, allocated at the first frame read: its layout is the stack's."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.array: np.ndarray | None = None

    def read(self, k: int, inst: InstanceInfo, frame: int, index: int, files: _Files) -> None:
        if self.array is None and fast_path(inst):
            self.array = np.zeros((self.frames,) + frame_shape(inst), dtype=stored_dtype(inst))
        if self.array is not None:
            _read_into(self.array, k, inst, frame, index, files)
            return
        values = _decode(inst, frame, index, files)
        self.array = np.zeros((self.frames,) + values.shape, dtype=values.dtype)
        self.array[k] = values


def stack_bytes(stack: Stack, first: int = 0) -> int:
    """The memory `load_stack` takes for a stack's pixels: every image at the layout of image `first` as
    decoded (colour as RGB, at least a byte a sample), which `InstanceInfo.frame_bytes`, the stored bytes,
    is not."""
    frames = stack.frames
    if not frames:
        return 0
    inst = stack.instances[frames[min(max(0, first), len(frames) - 1)][0]]
    samples = 3 if inst.samples_per_pixel > 1 else 1
    return len(frames) * max(1, inst.rows) * max(1, inst.columns) * samples * max(1, -(-inst.bits_allocated // 8))


def _read_in_process(stack: Stack, order: list[int], read: Callable, frame_read: Callable[[int], None],
                     cancel: threading.Event | None, errors: list[FileError], failed: set[int]) -> bool:
    """Frames `order` of `stack` read in this process, `read(k, inst, frame, index, files)` each, then
    `frame_read(k)`; a file that fails is reported once and its other frames are skipped. True when `cancel`
    stopped it between two frames."""
    files = _Files()
    try:
        for k in order:
            if cancel is not None and cancel.is_set():
                return True
            index, frame = stack.frames[k]
            if index in failed:
                continue
            inst = stack.instances[index]
            try:
                read(k, inst, frame, index, files)
            except Exception as exc:  # this file is unusable, the others go on
                _fail(errors, failed, index, inst, _reason(exc, inst))
                continue
            frame_read(k)
    finally:
        files.close()
    return False


def load_stack(
    stack: Stack,
    *,
    on_frame: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    first: int = 0,
    on_volume: Callable[[StackVolume], None] | None = None,
    focus: FrameFocus | None = None,
    pool=None,
) -> StackVolume:
    """Read every frame of `stack`; `first` is read before the others and `on_frame(i)` is called per frame.

    `on_volume(volume)` is called once, right after the first frame is read, with the volume whose `array`
    and `loaded` the load goes on filling in place: the viewer shows the first image before the rest is read.
    Compressed frames are decoded in `pool` (default: the process's `decoder_pool()`), outward from `first`,
    or from `focus.frame` as the reader moves.

    Raises nothing for a bad file: its frames stay unloaded (zeros) and the reason is in `errors`. A stack
    the memory free cannot hold is not allocated: no frame is read and the reason is in `errors`. When
    `cancel` is set the load stops between two frames and returns what it has (`cancelled` set).
    """
    frames = stack.frames
    n = len(frames)
    loaded = np.zeros(n, dtype=bool)
    errors: list[FileError] = []
    if n == 0:
        return StackVolume(stack, np.zeros((0, 0, 0), np.uint16), frames, loaded, errors)
    first = min(max(0, first), n - 1)
    refusal = memory_refusal(stack_bytes(stack, first), f"this series of {n} images")
    if refusal is not None:  # refused before a byte is allocated: the system would end the app, not raise
        errors.append(FileError(stack.instances[frames[first][0]].ref.display(), refusal))
        return StackVolume(stack, np.zeros((n, 0, 0), np.uint16), frames, loaded, errors)
    layout = _pool_layout(stack, frames[first][0])
    if layout is not None:
        return _load_with_pool(stack, layout, first, on_frame, cancel, on_volume, focus, pool)
    order = [first] + [k for k in range(n) if k != first]
    failed: set[int] = set()
    target = _GrowingArray(n)
    volume: StackVolume | None = None  # one object: what on_volume got is what is returned

    def frame_read(k: int) -> None:
        nonlocal volume
        loaded[k] = True
        if volume is None:
            volume = StackVolume(stack, target.array, frames, loaded, errors)
            decoded.publish(volume)
            if on_volume is not None:
                on_volume(volume)
        if on_frame is not None:
            on_frame(k)

    try:
        cancelled = _read_in_process(stack, order, target.read, frame_read, cancel, errors, failed)
    finally:
        if volume is not None:
            decoded.finished(volume)
    array = target.array
    if volume is None:  # nothing could be read: an empty image of the declared size, so views still work
        if array is None:
            inst = stack.instances[0]
            shape = frame_shape(inst) if n * inst.rows * inst.columns <= 1 << 28 else (0, 0)
            array = np.zeros((n,) + shape, dtype=stored_dtype(inst) or np.uint16)
        volume = StackVolume(stack, array, frames, loaded, errors)
    volume.cancelled = cancelled
    return volume


def _reason(exc: Exception, inst: InstanceInfo) -> str:
    """Why a frame of `inst` could not be read, in words (without the file name, which FileError gives)."""
    if isinstance(exc, _FrameError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory to load the image"
    if isinstance(exc, OSError):
        return f"cannot be read ({exc.strerror or exc})"
    if isinstance(exc, MedviewError):  # the display pipeline's words
        reason = str(exc)
        prefix = inst.ref.display() + ": "
        return reason[len(prefix):] if reason.startswith(prefix) else reason
    log.debug("decoding failed for %s", inst.ref.display(), exc_info=True)  # a decoder's failure
    return f"image cannot be decoded ({type(exc).__name__}: {exc})"


def _fail(errors: list[FileError], failed: set[int], index: int, inst: InstanceInfo, reason: str) -> None:
    failed.add(index)
    errors.append(FileError(inst.ref.display(), reason))


# --------------------------------------------------------------------------------------------- compressed stacks


def _pool_layout(stack: Stack, first_index: int) -> tuple[tuple[int, ...], np.dtype] | None:
    """The stack array's frame layout when compressed frames are in it, None when there are none.

    The layout the shown instance decodes to (or another compressed one's); where no header tells, a
    placeholder the workers answer with the reason: compressed data is never decoded in this process.
    """
    from medview.core.dicom.decoder_pool import info_layout

    if not any(inst.encapsulated for inst in stack.instances):
        return None
    shown = stack.instances[first_index]
    for inst in [shown] + [i for i in stack.instances if i.encapsulated]:
        layout = info_layout(inst)
        if layout is not None:
            return layout
    return (max(1, shown.rows), max(1, shown.columns)), np.dtype(np.uint16)


def _read_into(array: np.ndarray, k: int, inst: InstanceInfo, frame: int, index: int, files: _Files) -> None:
    """One uncompressed frame, read in this process, into `array[k]` (a stack that also holds compressed ones)."""
    if fast_path(inst):
        if array.shape[1:] != frame_shape(inst):
            raise _FrameError(f"image size {frame_shape(inst)} differs from the stack's {array.shape[1:]}")
        _read_fast(inst, frame, files.file(index, inst), array[k])
        return
    values = _decode(inst, frame, index, files)
    if values.shape != array.shape[1:]:
        raise _FrameError(f"image size {values.shape} differs from the stack's {array.shape[1:]}")
    array[k] = values


def _load_with_pool(stack: Stack, layout, first: int, on_frame, cancel, on_volume, focus: FrameFocus | None,
                    pool) -> StackVolume:
    """`load_stack` of a stack with compressed frames: they are decoded in the decoder pool straight into
    the stack's shared array, outward from `first` (or `focus`); uncompressed ones are read here meanwhile."""
    from medview.core.dicom.decoder_pool import INTERACTIVE, SharedFrames, decoder_pool, info_layout

    frames = stack.frames
    n = len(frames)
    loaded = np.zeros(n, dtype=bool)
    errors: list[FileError] = []
    failed: set[int] = set()
    shape, dtype = layout
    try:
        shared = SharedFrames((n,) + tuple(shape), dtype)
    except (MemoryError, OSError, ValueError):
        for index, inst in enumerate(stack.instances):
            _fail(errors, failed, index, inst, "not enough memory to load the image")
        return StackVolume(stack, np.zeros((n, 0, 0), dtype), frames, loaded, errors)
    volume = StackVolume(stack, shared.array, frames, loaded, errors)
    array = volume.array

    jobs, local = [], []
    keys_of: dict[int, list[int]] = {}
    for k in [first] + [k for k in range(n) if k != first]:
        index, frame = frames[k]
        inst = stack.instances[index]
        if not inst.encapsulated:
            local.append(k)
            continue
        own = info_layout(inst)
        if own is not None and own[0] != tuple(shape):
            if index not in failed:
                _fail(errors, failed, index, inst, f"image size {own[0]} differs from the stack's {tuple(shape)}")
            continue
        jobs.append((k, inst.ref, frame, shared, k, inst.transfer_syntax, k))
        keys_of.setdefault(index, []).append(k)

    pool = pool or decoder_pool()
    batch = pool.batch(priority=INTERACTIVE, centre=first if focus is None else focus.frame)
    if focus is not None:
        focus._attach(batch)
    batch.submit_many(jobs)
    state = {"outstanding": len(jobs), "announced": False}

    def loaded_now(k: int) -> None:
        loaded[k] = True
        if not state["announced"]:
            state["announced"] = True
            if on_volume is not None:
                on_volume(volume)
        if on_frame is not None:
            on_frame(k)

    def collect(timeout: float | None) -> None:
        result = batch.next_result(timeout)
        while result is not None:
            state["outstanding"] -= 1
            index = frames[result.key][0]
            if result.error is None:
                loaded_now(result.key)
            elif index not in failed:  # the file's other frames are not decoded
                _fail(errors, failed, index, stack.instances[index], result.error)
                state["outstanding"] -= len(batch.cancel(keys_of.get(index, ())))
            result = batch.next_result(0)

    def frame_read(k: int) -> None:
        loaded_now(k)
        collect(0)

    decoded.publish(volume)  # the AI worker takes the frames decoded here instead of decoding them again
    try:
        read_here = functools.partial(_read_into, array)
        cancelled = _read_in_process(stack, local, read_here, frame_read, cancel, errors, failed)
        while state["outstanding"] > 0 and not cancelled and not pool.closed:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            collect(0.05)
    finally:
        decoded.finished(volume)
        if focus is not None:
            focus._attach(None)
        batch.close()
        shared.unlink()  # the workers are done with it; the memory stays while the volume is used
    volume.cancelled = cancelled
    return volume
