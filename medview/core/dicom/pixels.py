"""The display pipeline of SPEC section 3: ONE implementation, used by the viewer, `render` and the model.

Order (DICOM PS3.3 C.11, "Grayscale transformations"): stored values -> Modality LUT (C.11.1) -> VOI LUT
(C.11.2; LINEAR / LINEAR_EXACT / SIGMOID, C.11.2.1.2-3) -> Presentation LUT (C.11.6; INVERSE, MONOCHROME1).
Colour images (RGB, YBR_*, PALETTE COLOR; PS3.3 C.7.6.3.1.2) are shown as RGB and are not windowed.

Two ways through the same arithmetic:

- `display_frame(ds, frame)`: one frame of a dataset, exactly as the viewer shows it (`render` uses it);
- the fast path of a viewer holding a whole stack: `modality_transform` once per instance, then
  `display_stored(stored, transform, voi, invert)` per frame (vectorised float32, or a cached 8-bit lookup
  table indexed by the stored values, `display_lut`), or `stack_modality_values` once per series and
  `window_levels(window)` as pyqtgraph `ImageItem` levels.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from medview.core.dicom.model import frame_too_large
from medview.core.errors import DicomReadError

log = logging.getLogger(__name__)
_FLOAT32_MAX = float(np.finfo(np.float32).max)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units, and its VOI LUT Function (PS3.3 C.11.2.1.3)."""

    center: float
    width: float
    function: str = "LINEAR"  # LINEAR | LINEAR_EXACT | SIGMOID


# --------------------------------------------------------------------------------------------- reading


def _display_name(ref) -> str:
    return ref.display() if hasattr(ref, "display") else os.fspath(ref)


def _ensure_transfer_syntax(ds) -> None:
    """Give a dataset read without File Meta a Transfer Syntax UID from the encoding pydicom detected."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" in meta:
        return
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif little:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRBigEndian


def read_dataset(ref, *, stop_before_pixels: bool = False):
    """Read one DICOM file (PS3.10), also without the 128-byte preamble (old ACR-NEMA style files).

    Parameters
    ----------
    ref : SourceRef or str or os.PathLike
        The file, or a member of a zip archive (`medview.core.dicom.source.SourceRef`).
    stop_before_pixels : bool
        Read the header only.

    Returns
    -------
    pydicom.Dataset
        With ``file_meta.TransferSyntaxUID`` always set (taken from the detected encoding when absent).

    Raises
    ------
    DicomReadError
        "<file>: <reason>" for a missing, empty, non-DICOM or broken file.
    """
    from medview.core.dicom.header import header_dataset
    from medview.core.dicom.scan import looks_like_dicom
    from medview.core.dicom.source import RefusedSource, SourceRef

    name = _display_name(ref)
    if not isinstance(ref, SourceRef):
        ref = SourceRef(os.fspath(ref))
    try:
        fp = ref.open()
    except FileNotFoundError:
        raise DicomReadError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise DicomReadError(f"{name}: is a folder, not a file") from None
    except PermissionError:
        raise DicomReadError(f"{name}: permission denied") from None
    except KeyError:
        raise DicomReadError(f"{name}: no such member in the zip archive") from None
    except RefusedSource as exc:
        raise DicomReadError(f"{name}: {exc.strerror}") from None
    except OSError as exc:
        raise DicomReadError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    with fp:
        head = fp.read(132)
        if not head:
            raise DicomReadError(f"{name}: empty file")
        has_preamble = len(head) == 132 and head[128:132] == b"DICM"
        if not looks_like_dicom(head):
            raise DicomReadError(f"{name}: not a DICOM file")
        # a header alone: one lean walk, the elements left for pydicom to convert; else pydicom reads it
        ds = header_dataset(fp, fp.seek(0, os.SEEK_END)) if stop_before_pixels else None
        if ds is None:
            ds = _read_with_pydicom(ref, fp, name, has_preamble, stop_before_pixels)
    _ensure_transfer_syntax(ds)
    if not isinstance(getattr(ds, "filename", None), str):
        ds.filename = name  # zip members: error messages name "archive.zip!member"
    return ds


def _read_with_pydicom(ref, fp, name: str, has_preamble: bool, stop_before_pixels: bool):
    """pydicom's dcmread after the scan's header check, its failures as DicomReadError naming the file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    unusable = _scan_check(ref, fp, name)
    try:
        ds = pydicom.dcmread(fp, force=not has_preamble, stop_before_pixels=stop_before_pixels)
    except (EOFError, struct.error):
        raise DicomReadError(f"{name}: file is cut short (it ends inside the DICOM header)") from None
    except InvalidDicomError as exc:
        raise DicomReadError(f"{name}: not a DICOM file ({exc})") from None
    except MemoryError:
        raise DicomReadError(f"{name}: broken DICOM header (an element declares an absurd length)") from None
    except Exception as exc:  # pydicom raises many types on broken headers; the user needs one reason
        raise DicomReadError(f"{name}: broken DICOM header ({exc})") from None
    if unusable is not None and not stop_before_pixels and not any(k in ds for k in _PIXEL_KEYWORDS):
        # pydicom stops quietly where a file is cut short: the scan's reason says where
        raise DicomReadError(f"{name}: {unusable}")
    if len(ds) == 0:
        if has_preamble:
            raise DicomReadError(f"{name}: broken DICOM file (no data elements after the file meta; cut short?)")
        raise DicomReadError(f"{name}: not a DICOM file (no data elements could be read)")
    return ds


def _scan_check(ref, fp, name: str) -> Exception | None:
    """The scan's header check (`scan.read_header`, what `index` runs), before pydicom reads a file.

    Bytes that are no data set at all (gigabytes of zeros after a DICM marker) raise DicomReadError at once
    instead of being parsed for minutes. Returns the scan's reason why the file is unusable, or None, for
    the caller to use where pydicom gives none; leaves `fp` at the start.
    """
    from medview.core.dicom.scan import NotDicom, Unusable, read_header

    size = fp.seek(0, os.SEEK_END)
    fp.seek(0)
    try:
        read_header(ref, fp, size)
    except NotDicom as exc:
        raise DicomReadError(f"{name}: {exc}") from None
    except Unusable as exc:
        return exc
    except Exception:  # the scan's own failure: pydicom, reading next, says what is wrong if anything is
        log.debug("header check failed for %s", name, exc_info=True)
    finally:
        fp.seek(0)
    return None


# --------------------------------------------------------------------------------------------- stored values


def _ds_name(ds) -> str:
    name = getattr(ds, "filename", None)
    return name if isinstance(name, str) and name else "<dataset>"


def number_of_frames(ds) -> int:
    """(0028,0008) Number of Frames, 1 when absent or unreadable (PS3.3 C.7.6.6)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def is_colour(ds) -> bool:
    """True for images shown in colour: Samples per Pixel 3 or PALETTE COLOR (PS3.3 C.7.6.3.1.2)."""
    return int(ds.get("SamplesPerPixel", 1) or 1) > 1 or _photometric(ds) == "PALETTE COLOR"


def _photometric(ds) -> str:
    return str(ds.get("PhotometricInterpretation", "") or "").strip().upper()


def mask_stored_bits(arr: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Keep only the low (0028,0101) Bits Stored bits (PS3.5 8.1.1); in place, returns the values.

    The bits above Bits Stored may hold anything (overlays, junk, or a sign extension the writer did or did
    not do), so they are ignored: unsigned values are masked, and signed values are sign-extended from their
    own high bit (bit Bits Stored - 1), so 0x0FFB in 12 of 16 bits is -5 whatever the top four bits hold.
    Signed data handed over in an unsigned dtype comes back as a signed view of the same memory. Idempotent,
    so it is safe on data a decoder already masked. The one implementation for every read path.
    """
    if arr.dtype.kind not in "iu":
        return arr
    if signed and arr.dtype.kind == "u":
        arr = arr.view(arr.dtype.str.replace("u", "i"))  # same width and byte order, two's complement
    nbits = arr.dtype.itemsize * 8
    if not 0 < bits_stored < nbits:
        return arr
    if signed:
        shift = nbits - bits_stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)  # arithmetic shift on a signed dtype: the sign comes back
    else:
        np.bitwise_and(arr, (1 << bits_stored) - 1, out=arr)
    return arr


def _check_frame(ds, frame: int) -> int:
    n = number_of_frames(ds)
    if not 0 <= frame < n:
        raise DicomReadError(
            f"{_ds_name(ds)}: frame {frame} does not exist (the image has {n} frame{'s' if n != 1 else ''})"
        )
    return n


_IMAGE_TAGS = {"Rows": "(0028,0010) Rows", "Columns": "(0028,0011) Columns",
               "BitsAllocated": "(0028,0100) Bits Allocated"}


def _check_size(ds) -> None:
    """Refuse a missing or absurd image description before any pixel memory is allocated (PS3.3 C.7.6.3)."""
    values = {}
    for keyword, tag in _IMAGE_TAGS.items():
        try:
            values[keyword] = int(ds[keyword].value)
        except (KeyError, TypeError, ValueError):
            raise DicomReadError(f"{_ds_name(ds)}: incomplete image description ({tag} missing or invalid)") from None
    rows, cols, bits = values["Rows"], values["Columns"], values["BitsAllocated"]
    try:
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
    except (TypeError, ValueError):
        spp = 1
    if rows <= 0 or cols <= 0:
        raise DicomReadError(f"{_ds_name(ds)}: image has no rows or columns ({rows} x {cols})")
    too_large = frame_too_large(rows, cols, spp, bits)
    if too_large:
        raise DicomReadError(f"{_ds_name(ds)}: {too_large}")


def _check_codestream(ds, frame: int, frames: int) -> None:
    """Refuse a compressed frame whose codestream declares more pixels than the header's Rows x Columns
    before a decoder allocates and decodes them (a damaged or hostile SIZ or frame header). Where the frame
    cannot be found or its size not read, the decoder's own checks stand."""
    from pydicom.encaps import get_frame

    from medview.core.dicom.codestreams import declared_size

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if not getattr(syntax, "is_encapsulated", False) or "PixelData" not in ds:
        return
    try:
        data = get_frame(ds.PixelData, frame, number_of_frames=frames)
    except Exception:  # noqa: BLE001 - broken fragments: pydicom's decoding says so in its words
        return
    size = declared_size(data)
    rows, columns = int(ds.Rows), int(ds.Columns)
    if size is not None and size[0] * size[1] > rows * columns:
        raise DicomReadError(f"{_ds_name(ds)}: the compressed data is damaged or not what the header declares "
                             f"(a {size[1]} x {size[0]} image, the header {columns} x {rows})")


def _decode_error(ds, exc: Exception) -> DicomReadError:
    """A decoder's exception as a reason a user can act on."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    name = _ds_name(ds)
    if "less than expected" in first or "shorter than" in first:
        return DicomReadError(f"{name}: pixel data is shorter than the image size declares (file cut short?)")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and getattr(ts, "is_compressed", False):
        detail = first
        if first.startswith("Unable to decode"):  # pydicom: every installed decoder refused it, one line each
            detail = lines[1] if len(lines) == 2 else ("the compressed data is damaged or not what the header "
                                                       "declares (no installed decoder could read it)")
        return DicomReadError(
            f"{name}: cannot decode the compressed pixel data ({getattr(ts, 'name', ts)}): {detail[:200]}"
        )
    return DicomReadError(f"{name}: cannot decode the pixel data ({first[:200]})")


def _palette_to_rgb(arr: np.ndarray, ds) -> np.ndarray:
    """PALETTE COLOR to 8-bit RGB with the palette colour lookup tables (PS3.3 C.7.6.3.1.5-6)."""
    from pydicom.pixels import apply_color_lut

    rgb = apply_color_lut(arr, _palette_in_native_order(ds))
    if rgb.dtype != np.uint8:
        try:
            depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        except (AttributeError, IndexError, TypeError, ValueError):
            depth = 16
        rgb = colour_to_uint8(rgb, depth)
    return rgb


def supplemental_palette(ds) -> tuple[int, np.ndarray] | None:
    """A monochrome image's Supplemental Palette Color LUT (PS3.3 C.7.6.3.1.5, e.g. enhanced CT/MR with Pixel
    Presentation COLOR or MIXED): (first mapped stored value, uint8 RGB [n, 3]), or None. Stored values in the
    palette's range are shown in its colours, the others in grey through the usual pipeline."""
    if not _photometric(ds).startswith("MONOCHROME") or "RedPaletteColorLookupTableData" not in ds:
        return None
    if str(ds.get("PixelPresentation", "") or "").upper() not in ("COLOR", "MIXED"):
        return None
    try:
        entries, first = int(ds.RedPaletteColorLookupTableDescriptor[0]) or 65536, \
            int(ds.RedPaletteColorLookupTableDescriptor[1])
        from pydicom.dataset import Dataset

        native = _palette_in_native_order(ds)
        probe = Dataset()
        for elem in native:
            if "PaletteColorLookupTable" in elem.keyword:
                probe.add(elem)
        probe.PhotometricInterpretation, probe.BitsStored = "PALETTE COLOR", 16
        rgb = _palette_to_rgb(np.arange(first, first + entries, dtype=np.int64).clip(0, 65535).astype(np.uint16),
                              probe)
    except Exception:  # noqa: BLE001 - a malformed palette leaves the image in grey, as without one
        return None
    return first, np.ascontiguousarray(rgb.reshape(-1, 3).astype(np.uint8))


def with_supplemental(grey: np.ndarray, stored: np.ndarray, palette: tuple[int, np.ndarray]) -> np.ndarray:
    """Grey levels (H, W) to RGB (H, W, 3), stored values in the palette's range in its colours."""
    first, rgb = palette
    out = np.repeat(grey[..., None], 3, axis=-1)
    index = stored.astype(np.int64) - first
    mapped = (index >= 0) & (index < len(rgb))
    out[mapped] = rgb[index[mapped]]
    return out


def supplemental_lut(grey_lut: np.ndarray, dtype, palette: tuple[int, np.ndarray]) -> np.ndarray:
    """An RGB lookup table [2**bits, 3] from a grey one indexed by the stored value viewed as unsigned, with
    the palette's stored values in colour (the viewer's fast path for such images)."""
    first, rgb = palette
    dtype = np.dtype(dtype)
    lut = np.repeat(grey_lut[:, None], 3, axis=1)
    values = np.arange(first, first + len(rgb), dtype=np.int64)
    info = np.iinfo(dtype)
    inside = (values >= info.min) & (values <= info.max)
    index = values[inside].astype(dtype).view(f"u{dtype.itemsize}")
    lut[index] = rgb[inside]
    return lut


_PALETTE_DATA = ("RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
                 "BluePaletteColorLookupTableData", "AlphaPaletteColorLookupTableData")


def _palette_in_native_order(ds):
    """`ds`, or a copy of its palette whose 16-bit entries are in this machine's byte order.

    pydicom reads (non-segmented) palette data in the machine's order whatever the file's transfer syntax,
    so the palette of an explicit big endian file comes out byte-swapped (an image almost black).
    """
    import sys

    from pydicom.dataset import Dataset

    little = getattr(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None), "is_little_endian", True)
    if little == (sys.byteorder == "little") or "RedPaletteColorLookupTableData" not in ds:
        return ds
    copy = Dataset()
    for elem in ds:
        if elem.keyword.endswith("PaletteColorLookupTableDescriptor") or elem.keyword == "PixelPresentation":
            copy.add(elem)
    for keyword in _PALETTE_DATA:
        data = ds.get(keyword)
        if data is not None:
            entries = int(ds.RedPaletteColorLookupTableDescriptor[0]) or 65536
            swap = len(data) >= 2 * entries  # 16-bit entries; 8-bit ones have no byte order
            in_file_order = np.frombuffer(data, "<u2" if little else ">u2") if swap else None
            setattr(copy, keyword, data if in_file_order is None else in_file_order.astype(np.uint16).tobytes())
    return copy


def stored_frame(ds, frame: int = 0) -> np.ndarray:
    """Stored values of one frame, stored dtype kept: (rows, cols) or (rows, cols, 3) RGB for colour.

    Decodes only that frame (pydicom's ``pixel_array(ds, index=frame)``) with the decoder plugins of every
    transfer syntax pydicom supports. Monochrome values are masked to Bits Stored and sign-extended
    (PS3.5 8.1.1); colour comes back as RGB: YBR_* converted (PS3.3 C.7.6.3.1.2), planar configuration 1
    interleaved (C.7.6.3.1.3), PALETTE COLOR through its lookup tables (C.7.6.3.1.5) as uint8.

    Raises
    ------
    DicomReadError
        No pixel data, frame out of range, absurd dimensions, short pixel data, or no decoder.
    """
    from pydicom.pixels import pixel_array

    if not any(k in ds for k in _PIXEL_KEYWORDS):
        from medview.core.dicom.scan import sop_class_name

        what = sop_class_name(str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "")))
        raise DicomReadError(f"{_ds_name(ds)}: " + (f"no image: a {what} object" if what
                                                     else "no image in this file (no Pixel Data)"))
    n = _check_frame(ds, frame)
    _check_size(ds)
    _check_codestream(ds, frame, n)
    try:
        arr = pixel_array(ds, index=frame if n > 1 else None)
    except DicomReadError:
        raise
    except Exception as exc:  # decoders raise RuntimeError, ValueError, AttributeError, NotImplementedError...
        raise _decode_error(ds, exc) from None
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if _photometric(ds) == "PALETTE COLOR" and arr.ndim == 2:
        return _palette_to_rgb(arr, ds)
    if arr.ndim == 2:
        if not arr.flags.writeable:
            arr = arr.copy()
        bits_stored = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or arr.dtype.itemsize * 8)
        arr = mask_stored_bits(arr, bits_stored, int(ds.get("PixelRepresentation", 0) or 0) == 1)
    elif arr.ndim != 3 or arr.shape[-1] != 3:
        raise DicomReadError(
            f"{_ds_name(ds)}: unsupported image layout {arr.shape} "
            f"({_photometric(ds) or 'no Photometric Interpretation'})"
        )
    return arr


def colour_to_uint8(arr: np.ndarray, bits: int = 8) -> np.ndarray:
    """Colour samples of `bits` bits to uint8 0..255 (RGB of more than 8 bits, 16-bit palettes)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "f":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return np.clip((arr - lo) * scale + 0.5, 0, 255).astype(np.uint8)
    top = float((1 << max(1, min(int(bits), 32))) - 1)
    out = np.multiply(np.clip(arr, 0, top), 255.0 / top, dtype=np.float32)
    out += 0.5
    return out.astype(np.uint8)


# --------------------------------------------------------------------------------------------- modality LUT


def _first_item(seq):
    try:
        return seq[0] if seq else None
    except (IndexError, TypeError):
        return None


def functional_group_item(ds, frame: int, group: str):
    """The first item of functional group `group` for `frame`: per-frame first, then shared (PS3.3 C.7.6.16)."""
    for seq_name, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(seq_name)
        if not seq or index >= len(seq):
            continue
        item = _first_item(seq[index].get(group))
        if item is not None:
            return item
    return None


def _lut_data(item, ds) -> tuple[np.ndarray, int, int]:
    """(entries, first stored value mapped, bits per entry) of a LUT item (PS3.3 C.11.1.1.1, C.11.2.1.1)."""
    desc = [int(v) for v in item.LUTDescriptor]
    n = desc[0] or 65536
    first, bits = desc[1], desc[2]
    if first >= 32768 and int(ds.get("PixelRepresentation", 0) or 0) == 1:
        first -= 65536  # the first mapped value is SS for signed data, often written as US
    elem = item["LUTData"]
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        little = True
        meta = getattr(ds, "file_meta", None)
        ts = getattr(meta, "TransferSyntaxUID", None)
        if ts is not None and getattr(ts, "is_little_endian", True) is False:
            little = False
        if len(value) >= 2 * n:
            data = np.frombuffer(value, dtype="<u2" if little else ">u2", count=n)
        else:  # 8-bit entries packed in OW
            data = np.frombuffer(value, dtype=np.uint8, count=min(n, len(value)))
    else:
        data = np.asarray(value if isinstance(value, (list, tuple)) or hasattr(value, "__len__") else [value])
    data = np.asarray(data, dtype=np.float32)
    if data.size == 0:
        raise ValueError("empty LUT Data")
    return data, first, bits


@dataclass(frozen=True, eq=False)
class ModalityTransform:
    """Stored values to modality values (PS3.3 C.11.1): ``value * slope + intercept``, or the Modality LUT.

    Build it with `modality_transform(ds, frame)`; `apply` works on a frame or a whole (N, H, W) stack.
    """

    slope: float = 1.0
    intercept: float = 0.0
    lut: np.ndarray | None = None  # Modality LUT Sequence entries (float32), C.11.1.1
    first_mapped: int = 0
    key: tuple = field(default=(), compare=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.lut.tobytes()).hexdigest() if self.lut is not None else None
        object.__setattr__(self, "key", (float(self.slope), float(self.intercept), self.first_mapped, digest))

    @property
    def is_identity(self) -> bool:
        return self.lut is None and self.slope == 1.0 and self.intercept == 0.0

    def apply(self, arr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Modality values as float32 (a new array unless `out`, float32 of the same shape, is given)."""
        if self.lut is not None:
            idx = np.asarray(arr)
            if idx.dtype.kind == "f":
                idx = np.rint(idx)
            idx = np.clip(idx.astype(np.int64, copy=False) - self.first_mapped, 0, self.lut.size - 1)
            return lookup(self.lut, idx, out)
        if out is None:
            out = np.array(arr, dtype=np.float32)
        else:
            out[...] = arr
        # values beyond float32 (a huge slope on a damaged header) become infinities, which the window clips;
        # numpy's warning about them would name no file
        with np.errstate(over="ignore", invalid="ignore"):
            if self.slope != 1.0:
                np.multiply(out, np.float32(self.slope), out=out)
            if self.intercept != 0.0:
                np.add(out, np.float32(self.intercept), out=out)
        return out


def _float(value, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def modality_transform(ds, frame: int = 0) -> ModalityTransform:
    """The Modality LUT of `ds` for `frame` (PS3.3 C.11.1): Modality LUT Sequence, else Rescale Slope /
    Intercept from the top level or the Pixel Value Transformation functional group (C.7.6.16.2.9).

    Colour images have none (identity).
    """
    if is_colour(ds):
        return ModalityTransform()
    item = _first_item(ds.get("ModalityLUTSequence"))
    if item is not None and "LUTDescriptor" in item and "LUTData" in item:
        try:
            data, first, _bits = _lut_data(item, ds)
            return ModalityTransform(lut=data, first_mapped=first)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            log.warning("%s: Modality LUT Sequence ignored (%s)", _ds_name(ds), exc)
    source = ds if "RescaleSlope" in ds or "RescaleIntercept" in ds else None
    if source is None:
        source = functional_group_item(ds, frame, "PixelValueTransformationSequence")
    if source is None:
        return ModalityTransform()
    slope = _float(source.get("RescaleSlope", 1.0), 1.0) or 1.0
    intercept = _float(source.get("RescaleIntercept", 0.0), 0.0)
    if max(abs(slope), abs(intercept)) > _FLOAT32_MAX:  # no modality value could be held: the stored ones shown
        log.info("%s: Rescale Slope %g / Intercept %g out of range, ignored", _ds_name(ds), slope, intercept)
        return ModalityTransform()
    return ModalityTransform(slope=slope, intercept=intercept)


def modality_lut(arr: np.ndarray, ds, frame: int = 0) -> np.ndarray:
    """Rescale Slope/Intercept or the Modality LUT Sequence (PS3.3 C.11.1): float32 modality values."""
    return modality_transform(ds, frame).apply(arr)


def stack_modality_values(
    stored: np.ndarray,
    transforms: ModalityTransform | Sequence[ModalityTransform],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """A whole stack of stored values (N, H, W) to float32 modality values at once (PS3.3 C.11.1).

    `transforms` is one transform for the stack or one per frame (PET, for instance, rescales each slice).
    The result is C-contiguous float32: what pyqtgraph's ImageItem windows fastest with `levels=`.
    """
    if out is None:
        out = np.empty(stored.shape, dtype=np.float32)
    if isinstance(transforms, ModalityTransform):
        return transforms.apply(stored, out=out)
    if len(transforms) != len(stored):
        raise ValueError(f"{len(transforms)} transforms for {len(stored)} frames")
    first = transforms[0] if transforms else ModalityTransform()
    if all(t.key == first.key for t in transforms):
        return first.apply(stored, out=out)
    for i, t in enumerate(transforms):
        t.apply(stored[i], out=out[i])
    return out


# --------------------------------------------------------------------------------------------- VOI


@dataclass(frozen=True, eq=False)
class VoiLut:
    """One item of the VOI LUT Sequence (PS3.3 C.11.2.1.1): modality values to `bits`-bit display values."""

    data: np.ndarray  # float32 entries
    first_mapped: int
    bits: int
    explanation: str = ""
    key: tuple = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", ("VOILUT", self.first_mapped, self.bits, hashlib.sha1(
            self.data.tobytes()).hexdigest()))


def voi_lut(ds, index: int = 0) -> VoiLut | None:
    """Item `index` of the (0028,3010) VOI LUT Sequence, or None when absent or unusable (PS3.3 C.11.2.1.1)."""
    seq = ds.get("VOILUTSequence")
    if not seq or index >= len(seq):
        return None
    item = seq[index]
    if "LUTDescriptor" not in item or "LUTData" not in item:
        return None
    try:
        data, first, bits = _lut_data(item, ds)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        log.warning("%s: VOI LUT Sequence ignored (%s)", _ds_name(ds), exc)
        return None
    return VoiLut(data=data, first_mapped=first, bits=bits, explanation=str(item.get("LUTExplanation", "")))


def apply_voi_lut(values: np.ndarray, lut: VoiLut, out: np.ndarray | None = None) -> np.ndarray:
    """Apply a VOI LUT Sequence item to modality values, to uint8 0..255 (PS3.3 C.11.2.1.1).

    Values below the first mapped value take the first entry, above the last the last entry. The output
    range is 0 .. 2**bits - 1 where `bits` is the number of bits the entries really use (at most the
    descriptor's third value: files declaring 16 bits with 12-bit entries are common).
    """
    v = np.asarray(values)
    if v.dtype.kind == "f":
        v = np.rint(v)
    idx = np.clip(v.astype(np.int64, copy=False) - lut.first_mapped, 0, lut.data.size - 1)
    used_bits = max(1, min(int(lut.bits) or 16, int(max(float(lut.data.max()), 1.0)).bit_length()))
    top = float((1 << used_bits) - 1)
    y = lookup(lut.data, idx)
    np.multiply(y, np.float32(255.0 / top), out=y)
    np.add(y, np.float32(0.5), out=y)
    np.clip(y, 0, 255, out=y)
    if out is None:
        return y.astype(np.uint8)
    out[...] = y
    return out


def _first_value(value):
    from pydicom.multival import MultiValue

    return value[0] if isinstance(value, (list, tuple, MultiValue)) else value


def _window_from(source, name: str) -> Window | None:
    wc, ww = source.get("WindowCenter"), source.get("WindowWidth")
    if wc is None or ww is None or wc == "" or ww == "":
        return None
    try:
        c, w = float(_first_value(wc)), float(_first_value(ww))
    except (TypeError, ValueError, IndexError):
        log.warning("%s: unreadable Window Center/Width ignored", name)
        return None
    func = str(source.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if func not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        log.warning("%s: unknown VOI LUT Function %r, LINEAR used", name, func)
        func = "LINEAR"
    if not (math.isfinite(c) and math.isfinite(w)) or w <= 0 or (func == "LINEAR" and w < 1):
        log.warning("%s: (0028,1051) Window Width %r cannot be used for %s, ignored", name, w, func)
        return None
    return Window(c, w, func)


def file_window(ds, modality_values: np.ndarray | None = None, frame: int = 0) -> Window | None:
    """The first window in the file for `frame`, or None (PS3.3 C.11.2.1.2, C.8.11.3.1.5).

    (0028,1050) Window Center / (0028,1051) Window Width with (0028,1056) VOI LUT Function, first value when
    multi-valued; for enhanced multi-frame images from the Frame VOI LUT functional group (C.7.6.16.2.10).
    A window the standard does not allow (width < 1 for LINEAR, <= 0 otherwise) is ignored.

    `modality_values` is accepted for callers that have them and deliberately not used: a valid window is
    applied as written even when it misses the frame's values entirely, because per frame that is normal
    (an all-air CT slice under a brain window must stay black, not be stretched to full contrast).
    """
    if is_colour(ds):
        return None
    name = _ds_name(ds)
    window = _window_from(ds, name)
    if window is None:
        item = functional_group_item(ds, frame, "FrameVOILUTSequence")
        if item is not None:
            window = _window_from(item, name)
            if window is not None and "VOILUTFunction" not in item and "VOILUTFunction" in ds:
                window = _window_from(_Merged(item, ds), name)
    return window


class _Merged:
    """Look an attribute up in a functional-group item first, then in the dataset."""

    def __init__(self, *sources):
        self.sources = sources

    def get(self, key, default=None):
        for s in self.sources:
            if key in s:
                return s.get(key)
        return default


def default_window(modality_values: np.ndarray) -> Window:
    """A LINEAR window from the image's values when the file has none: the 0.5 and 99.5 percentiles
    (min and max when those coincide) mapped to black and white (PS3.3 C.11.2.1.2.1).

    Percentiles of at most about 250 000 samples, so a large radiograph costs a few milliseconds.
    """
    v = np.asarray(modality_values).ravel()
    if v.size == 0:
        return Window(0.5, 1.0)
    step = max(1, v.size // 250_000)
    sample = v[::step]
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return Window(0.5, 1.0)
    lo, hi = (float(x) for x in np.percentile(sample, (0.5, 99.5)))
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
    if not hi > lo:
        return Window(lo + 0.5, 1.0)
    # LINEAR maps c - 0.5 - (w-1)/2 to black and c - 0.5 + (w-1)/2 to white: solve for lo and hi
    return Window((lo + hi) / 2 + 0.5, hi - lo + 1.0)


def window_levels(window: Window) -> tuple[float, float]:
    """The (lower, upper) modality values that `apply_window` maps to 0 and 255, for pyqtgraph's `levels=`.

    LINEAR (PS3.3 C.11.2.1.2.1): c - 0.5 -/+ (w - 1) / 2; LINEAR_EXACT (C.11.2.1.3.2): c -/+ w / 2.
    SIGMOID (C.11.2.1.3.1) has no linear equivalent: c -/+ w / 2 is the linear ramp with the sigmoid's slope
    at the centre (use `apply_window` or `display_stored` where exactness matters). Always upper > lower.
    """
    c, w = float(window.center), float(window.width)
    if window.function == "LINEAR":
        w = max(w, 1.0)
        lo, hi = c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0
    else:
        lo, hi = c - w / 2.0, c + w / 2.0
    if not hi > lo:
        hi = float(np.nextafter(lo, np.inf))
    return lo, hi


def apply_window(values: np.ndarray, window: Window, out: np.ndarray | None = None) -> np.ndarray:
    """VOI windowing (PS3.3 C.11.2.1.2) to uint8 0..255; vectorised, works on (H, W) or (N, H, W).

    LINEAR (C.11.2.1.2.1): x <= c - 0.5 - (w-1)/2 -> 0; x > c - 0.5 + (w-1)/2 -> 255; else
    ((x - (c - 0.5)) / (w - 1) + 0.5) * 255. LINEAR_EXACT (C.11.2.1.3.2): the same without the 0.5 and 1
    offsets. SIGMOID (C.11.2.1.3.1): 255 / (1 + exp(-4 (x - c) / w)). Rounded to the nearest grey level.
    Float input keeps its precision (float32 stays float32); other input is converted to float32.
    """
    v = np.asarray(values)
    if v.dtype.kind != "f":
        v = v.astype(np.float32)
    if out is None:
        out = np.empty(v.shape, dtype=np.uint8)
    func = window.function
    with np.errstate(invalid="ignore", over="ignore"):
        if func == "SIGMOID":
            if window.width <= 0:
                raise ValueError(f"SIGMOID window width must be > 0, not {window.width}")
            t = (v.astype(np.float64) - float(window.center)) * (-4.0 / float(window.width))
            np.clip(t, -700.0, 700.0, out=t)
            np.exp(t, out=t)
            t += 1.0
            np.divide(255.0, t, out=t)
            t += 0.5
        else:
            if func not in ("LINEAR", "LINEAR_EXACT"):
                raise ValueError(f"unknown VOI LUT Function {func!r}")
            lo, hi = window_levels(window)
            if v.dtype != np.float64 and hi - lo < 1e-4 * max(abs(lo), abs(hi)):
                v = v.astype(np.float64)  # a window narrower than float32 resolution at its level
            t = np.subtract(v, v.dtype.type(lo))
            if func == "LINEAR" and window.width <= 1.0:  # a threshold: x <= lo black, above white
                np.greater(t, 0, out=out)
                np.multiply(out, 255, out=out)
                return out
            np.multiply(t, v.dtype.type(255.0 / (hi - lo)), out=t)
            np.add(t, v.dtype.type(0.5), out=t)
        np.clip(t, 0, 255, out=t)
        out[...] = t  # truncation of the non-negative value + 0.5: round half up
    return out


# --------------------------------------------------------------------------------------------- presentation


def is_inverted(ds) -> bool:
    """MONOCHROME1 (PS3.3 C.7.6.3.1.2) or (2050,0020) Presentation LUT Shape INVERSE (C.11.6.1): the displayed
    grey scale is inverted. Both say the same thing (DX requires INVERSE with MONOCHROME1), so it is one
    inversion, not two."""
    if _photometric(ds) == "MONOCHROME1":
        return True
    return str(ds.get("PresentationLUTShape", "") or "").strip().upper() == "INVERSE"


def display_voi(ds, frame: int = 0, stored: np.ndarray | None = None) -> Window | VoiLut:
    """The VOI `display_frame` applies when no window is asked for (SPEC section 3, PS3.3 C.11.2):
    the file's first window, else its VOI LUT Sequence, else `default_window` of the frame's modality values.

    `stored` (the frame's stored values) is decoded only when needed and not given.
    """
    window = file_window(ds, frame=frame)
    if window is not None:
        return window
    lut = voi_lut(ds)
    if lut is not None:
        return lut
    if stored is None:
        stored = stored_frame(ds, frame)
    return default_window(modality_transform(ds, frame).apply(stored))


_LUT_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_LUT_CACHE_SIZE = 32
_LUT_PAYS = 8  # a LINEAR window goes through a table for frames this many times its entries; below, float passes
_LUT_LOCK = threading.Lock()
_LOOKUP_PIECE = 1 << 17  # indices per np.take in `lookup`: their intp copy (1 MB) stays in the cache


def _voi_key(voi: Window | VoiLut) -> tuple:
    if isinstance(voi, VoiLut):
        return voi.key
    return (float(voi.center), float(voi.width), voi.function)


def _to_uint8(values: np.ndarray, voi: Window | VoiLut, invert: bool, out: np.ndarray | None) -> np.ndarray:
    out = apply_voi_lut(values, voi, out) if isinstance(voi, VoiLut) else apply_window(values, voi, out)
    if invert:
        np.subtract(np.uint8(255), out, out=out)
    return out


def lookup(table: np.ndarray, index: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """`table[index]` along the table's first axis (indices outside it clipped to its ends), into `out` when
    given. `np.take` converts the whole index array to intp first, 8 bytes a pixel: for a radiograph that
    copy leaves the cache. Taken in pieces of 128 k indices it stays there: 1.4-2.4 ms against 3.0-4.1 ms
    for a 1280x1150 uint16 frame through a 65536-entry table, one thread. Not smaller pieces: each piece
    takes the GIL again, which costs more than it saves where other threads (the AI's lanes) want it; and
    not in the GUI thread, which would wait for the GIL after each piece while a worker holds it."""
    index = np.asarray(index)
    if out is None:
        out = np.empty(index.shape + table.shape[1:], table.dtype)
    if index.size <= _LOOKUP_PIECE or not (index.flags.c_contiguous and out.flags.c_contiguous):
        return np.take(table, index, axis=0, out=out, mode="clip")
    flat, dest = index.reshape(-1), out.reshape((-1,) + table.shape[1:])
    for start in range(0, flat.size, _LOOKUP_PIECE):
        stop = start + _LOOKUP_PIECE
        np.take(table, flat[start:stop], axis=0, out=dest[start:stop], mode="clip")
    return out


def display_lut(dtype, transform: ModalityTransform, voi: Window | VoiLut, invert: bool) -> np.ndarray:
    """The uint8 lookup table combining modality LUT, VOI and inversion for every value of an integer
    `dtype` of at most 16 bits, indexed by the stored value viewed as unsigned. Cached (32 tables)."""
    dtype = np.dtype(dtype)
    key = (dtype.str, transform.key, _voi_key(voi), bool(invert))
    with _LUT_LOCK:
        lut = _LUT_CACHE.get(key)
        if lut is not None:
            _LUT_CACHE.move_to_end(key)
            return lut
    unsigned = np.dtype(f"u{dtype.itemsize}")
    domain = np.arange(1 << (8 * dtype.itemsize), dtype=unsigned).view(dtype)
    lut = _to_uint8(transform.apply(domain), voi, invert, None)
    lut.flags.writeable = False
    with _LUT_LOCK:
        _LUT_CACHE[key] = lut
        while len(_LUT_CACHE) > _LUT_CACHE_SIZE:
            _LUT_CACHE.popitem(last=False)
    return lut


def display_stored(
    stored: np.ndarray,
    transform: ModalityTransform,
    voi: Window | VoiLut,
    invert: bool = False,
    out: np.ndarray | None = None,
    *,
    use_lut: bool | None = None,
) -> np.ndarray:
    """Monochrome stored values (one frame or a stack) to the 8-bit grey levels shown (PS3.3 C.11.1 -> C.11.2
    -> C.11.6): the per-frame fast path of the viewer.

    A LINEAR / LINEAR_EXACT window after a rescale is a few vectorised float32 passes (about 0.2 ms for
    512 x 512 int16, faster than a table gather); a Modality LUT, VOI LUT or SIGMOID on integer data of at
    most 16 bits, and any integer frame many times the size of its table (a radiograph: 1.5 M pixels in
    a third of the float passes' time, which no longer fit in the cache), goes through the cached
    `display_lut` (one gather per pixel: `lookup`). Both paths give identical results; `use_lut` forces
    one (tests, benchmarks).
    """
    stored = np.asarray(stored)
    lut_ok = stored.dtype.kind in "iu" and stored.dtype.itemsize <= 2
    if use_lut is None:
        use_lut = (transform.lut is not None or isinstance(voi, VoiLut) or voi.function == "SIGMOID"
                   or (lut_ok and stored.size >= _LUT_PAYS * (1 << 8 * stored.dtype.itemsize)))
    if use_lut and lut_ok:
        lut = display_lut(stored.dtype, transform, voi, invert)
        index = stored.view(f"u{stored.dtype.itemsize}") if stored.dtype.kind == "i" else stored
        return lookup(lut, index, out)
    return _to_uint8(transform.apply(stored), voi, invert, out)


def display_frame(
    ds, frame: int = 0, window: Window | VoiLut | None = None, invert: bool | None = None,
    *, stored: np.ndarray | None = None,
) -> np.ndarray:
    """A frame exactly as the viewer shows it: uint8 (H, W) for monochrome, uint8 (H, W, 3) for colour.

    window None: the file's window (or VOI LUT Sequence), else default_window. invert None: is_inverted(ds).
    Colour images are not windowed (`window` is ignored); `invert` True inverts them. `stored`: the frame's
    stored values (`stored_frame`) when already decoded, e.g. by the decoder pool; `ds` then needs no pixels.
    """
    return display_frame_voi(ds, frame, window, invert, stored=stored)[0]


def display_frame_voi(
    ds, frame: int = 0, window: Window | VoiLut | None = None, invert: bool | None = None,
    *, stored: np.ndarray | None = None,
) -> tuple[np.ndarray, Window | VoiLut | None]:
    """`display_frame` and the VOI it applied (None for colour), e.g. for `render` to report the window."""
    arr = stored_frame(ds, frame) if stored is None else stored
    if arr.ndim == 3:
        rgb = colour_to_uint8(arr, int(ds.get("BitsStored", 8) or 8))
        if invert:
            rgb = np.subtract(np.uint8(255), rgb)
        return np.ascontiguousarray(rgb), None
    transform = modality_transform(ds, frame)
    if window is None:
        window = display_voi(ds, frame, arr)
    if invert is None:
        invert = is_inverted(ds)
    grey = display_stored(arr, transform, window, invert)
    palette = supplemental_palette(ds)
    return (grey if palette is None else with_supplemental(grey, arr, palette)), window


# --------------------------------------------------------------------------------------------- presets


PRESETS: dict[str, list[tuple[str, Window]]] = {
    # SPEC section 6: keys 1-5 for CT (Hounsfield units)
    "CT": [
        ("soft tissue", Window(40, 400)),
        ("lung", Window(-600, 1500)),
        ("bone", Window(400, 1800)),
        ("brain", Window(40, 80)),
        ("mediastinum", Window(50, 350)),
    ],
}

MODALITY_UNITS = {"CT": "HU"}  # the unit of a modality's rescaled values, where it has one: presets, readouts

_PRESET_ALIASES = {"soft": "soft tissue", "softtissue": "soft tissue", "abdomen": "soft tissue",
                   "mediastinal": "mediastinum", "head": "brain"}


def _norm_preset(name: str) -> str:
    return " ".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def preset_names(modality: str | None = None) -> list[str]:
    """Preset names for a modality, or of every modality when None."""
    groups = [PRESETS.get(modality.upper(), [])] if modality else list(PRESETS.values())
    return [name for group in groups for name, _ in group]


def preset_window(name: str, modality: str | None = None, *, only_modality: bool = False) -> Window:
    """The preset window called `name` ("lung", "soft-tissue", "Soft tissue"...), in `modality`'s presets
    first (SPEC section 6). Raises KeyError naming the known presets.

    `only_modality`: in `modality`'s presets only, as `render` needs: a lung window on an MR would be a
    guess in units the preset was not made for (SPEC section 1); the KeyError then names the modality's.
    """
    wanted = _norm_preset(name)
    wanted = _PRESET_ALIASES.get(wanted.replace(" ", ""), _PRESET_ALIASES.get(wanted, wanted))
    own = [modality.upper()] if modality and modality.upper() in PRESETS else []
    order = own if only_modality else own + list(PRESETS)
    for mod in order:
        for preset, window in PRESETS[mod]:
            if _norm_preset(preset) == wanted:
                return window
    if only_modality:
        known = preset_names(modality) if own else []
        raise KeyError(f"no window preset {name!r} for {modality or 'an image without a modality'} "
                       + (f"(its presets: {', '.join(known)})" if known else "(it has no presets)"))
    raise KeyError(f"unknown window preset {name!r} (known: {', '.join(preset_names())})")
