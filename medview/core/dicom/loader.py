"""Loading a stack into memory: stored dtype kept, first image first, uncompressed fast path, cancel.

Uncompressed pixel data (the bulk of CT/MR archives) is read straight from the file into its slot of one
preallocated array (`readinto` at the offset the scan recorded): no pydicom parsing, no temporary copy, so
peak memory is the stack's stored bytes. Compressed data goes through the display pipeline's
`pixels.stored_frame` (pydicom and its decoder plugins), frame by frame. Values are the stored values
(rescale is applied at display): BitsStored below BitsAllocated is masked, and sign-extended for signed data,
exactly as pydicom's `pixel_array` does, so both paths give the same numbers.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import numpy as np

from medview.core.dicom.model import FileError, InstanceInfo, Stack
from medview.core.errors import MedviewError

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


def mask_bits_stored(arr: np.ndarray, bits_stored: int, signed: bool) -> None:
    """Keep only the low `bits_stored` bits, sign-extending signed data (PS3.5 8.1.1); in place."""
    bits_allocated = arr.dtype.itemsize * 8
    if not bits_stored or bits_stored >= bits_allocated or arr.dtype.kind not in "iu":
        return
    if signed:
        shift = bits_allocated - bits_stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)  # arithmetic shift on a signed dtype: the sign comes back
    else:
        np.bitwise_and(arr, (1 << bits_stored) - 1, out=arr)


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
    mask_bits_stored(target, inst.bits_stored, inst.pixel_representation == 1)
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


def load_stack(
    stack: Stack,
    *,
    on_frame: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
    first: int = 0,
    on_volume: Callable[[StackVolume], None] | None = None,
) -> StackVolume:
    """Read every frame of `stack`; `first` is read before the others and `on_frame(i)` is called per frame.

    `on_volume(volume)` is called once, right after the first frame is read, with the volume whose `array`
    and `loaded` the load goes on filling in place: the viewer shows the first image before the rest is read.

    Raises nothing for a bad file: its frames stay unloaded (zeros) and the reason is in `errors`. When
    `cancel` is set the load stops between two frames and returns what it has (`cancelled` set).
    """
    frames = stack.frames
    n = len(frames)
    loaded = np.zeros(n, dtype=bool)
    errors: list[FileError] = []
    if n == 0:
        return StackVolume(stack, np.zeros((0, 0, 0), np.uint16), frames, loaded, errors)
    first = min(max(0, first), n - 1)
    order = [first] + [k for k in range(n) if k != first]
    failed: set[int] = set()
    files = _Files()
    array: np.ndarray | None = None
    volume: StackVolume | None = None  # one object: what on_volume got is what is returned
    cancelled = False
    try:
        for k in order:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            index, frame = frames[k]
            if index in failed:
                continue
            inst = stack.instances[index]
            try:
                if array is None and fast_path(inst):
                    array = np.zeros((n,) + frame_shape(inst), dtype=stored_dtype(inst))
                if array is not None and fast_path(inst):
                    if array.shape[1:] != frame_shape(inst):
                        raise _FrameError(f"image size {frame_shape(inst)} differs from the stack's "
                                          f"{array.shape[1:]}")
                    _read_fast(inst, frame, files.file(index, inst), array[k])
                else:
                    values = _decode(inst, frame, index, files)
                    if array is None:
                        array = np.zeros((n,) + values.shape, dtype=values.dtype)
                    if values.shape != array.shape[1:]:
                        raise _FrameError(f"image size {values.shape} differs from the stack's {array.shape[1:]}")
                    array[k] = values
            except _FrameError as exc:
                _fail(errors, failed, index, inst, str(exc))
                continue
            except MemoryError:
                _fail(errors, failed, index, inst, "not enough memory to load the image")
                continue
            except OSError as exc:
                _fail(errors, failed, index, inst, f"cannot be read ({exc.strerror or exc})")
                continue
            except MedviewError as exc:  # the display pipeline's words; the file is named in FileError already
                reason = str(exc)
                prefix = inst.ref.display() + ": "
                _fail(errors, failed, index, inst, reason[len(prefix):] if reason.startswith(prefix) else reason)
                continue
            except Exception as exc:  # a decoder's failure: this file is unusable, the others go on
                log.debug("decoding failed for %s", inst.ref.display(), exc_info=True)
                _fail(errors, failed, index, inst, f"image cannot be decoded ({type(exc).__name__}: {exc})")
                continue
            loaded[k] = True
            if volume is None:
                volume = StackVolume(stack, array, frames, loaded, errors)
                if on_volume is not None:
                    on_volume(volume)
            if on_frame is not None:
                on_frame(k)
    finally:
        files.close()
    if volume is None:  # nothing could be read: an empty image of the declared size, so views still work
        if array is None:
            inst = stack.instances[0]
            shape = frame_shape(inst) if n * inst.rows * inst.columns <= 1 << 28 else (0, 0)
            array = np.zeros((n,) + shape, dtype=stored_dtype(inst) or np.uint16)
        volume = StackVolume(stack, array, frames, loaded, errors)
    volume.cancelled = cancelled
    return volume


def _fail(errors: list[FileError], failed: set[int], index: int, inst: InstanceInfo, reason: str) -> None:
    failed.add(index)
    errors.append(FileError(inst.ref.display(), reason))
