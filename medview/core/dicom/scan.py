"""Scanning folders, files, zips and DICOMDIRs for DICOM instances, headers only, with an index cache.

Cost model: a cold scan reads each file's header once (the lean walker of `header.py`, pydicom for the odd
file it hands back), only the tags medview uses, stopping at the pixel data, and checks the pixel data is
all there by comparing the length the header declares with the bytes the file holds (for compressed data,
by walking the fragment headers); nothing is decoded and no pixel memory is allocated. A cached scan opens no file:
one stat per file and one bulk SQL query (`medview.core.dicom.cache`). pydicom is imported only when a
file actually has to be read, so a fully cached `medview index` starts fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat as stat_mod
import struct
import warnings
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Sequence

from medview.core.dicom.header import (
    LONG_VRS,
    PIXEL_TAGS,
    VRS,
    CutShort,
    Fallback,
    NotADataSet,
    media_storage_class,
    read_raw_header,
)
from medview.core.dicom.model import FileError, InstanceInfo, ScanResult, frame_too_large
from medview.core.dicom.source import RefusedSource, SourceRef, not_a_file

log = logging.getLogger(__name__)

# Suffixes that claim a file is DICOM: such a file that is not DICOM is an error, not silently skipped.
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
DEFLATED = "1.2.840.10008.1.2.1.99"
_ENCAPSULATED_FREE = {  # transfer syntaxes whose pixel data is native (not encapsulated)
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    DEFLATED,
}

# The header tags medview uses (see InstanceInfo); pydicom skips the values of all others.
HEADER_TAGS = [
    0x00080016, 0x00080018, 0x00080020, 0x00080030, 0x00080050, 0x00080060, 0x00081030, 0x0008103E,
    0x00100010, 0x00100020, 0x00180050, 0x00181164, 0x0020000D, 0x0020000E, 0x00200011, 0x00200013,
    0x00200032, 0x00200037, 0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280010, 0x00280011,
    0x00280030, 0x00280100, 0x00280101, 0x00280103,
]


class NotDicom(Exception):
    """The bytes are not DICOM at all (counted in skipped_non_dicom unless the file claims to be DICOM)."""


class Unusable(Exception):
    """A DICOM file that cannot be used; the message is the reason in words."""


# ---------------------------------------------------------------------------------------------- detection


def looks_like_dicom(head: bytes) -> bool:
    """Cheap test on the first 132 bytes: Part-10 preamble, or a plausible first element without one.

    Files without the preamble (ACR-NEMA style) start with a group 0x0002 or 0x0008 element in implicit or
    explicit VR, little or big endian.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group_le, elem_le = struct.unpack_from("<HH", head)
    group_be = struct.unpack_from(">H", head)[0]
    vr = head[4:6]
    if group_le in (0x0002, 0x0008):
        if vr in VRS:
            return True
        length = struct.unpack_from("<I", head, 4)[0]
        return length < 0x10000 or (elem_le == 0 and length == 4)  # implicit VR: a small first element
    if group_be == 0x0008:
        return vr in VRS
    return False


# ---------------------------------------------------------------------------------------------- header


def _str(ds, tag: int) -> str:
    elem = ds.get(tag)
    if elem is None:
        return ""
    try:
        value = elem.value
    except Exception:  # a value pydicom cannot convert: treat as absent rather than fail the file
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds, tag: int) -> int | None:
    elem = ds.get(tag)
    if elem is None:
        return None
    try:
        value = elem.value
        if type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)):
            value = value[0]
        if value is None or value == "":
            return None
        return int(float(value))
    except Exception:
        return None


def _floats(ds, tag: int, n: int) -> tuple[float, ...] | None:
    elem = ds.get(tag)
    if elem is None:
        return None
    try:
        value = elem.value
        values = list(value) if type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)) else [value]
        out = tuple(float(v) for v in values)
    except Exception:
        return None
    if len(out) != n or any(v != v for v in out):  # wrong count or NaN: unusable geometry
        return None
    return out


def _declared(info: InstanceInfo) -> tuple[int, str]:
    """Bytes the header declares for all frames, and the arithmetic in words for the error message."""
    spp = max(1, info.samples_per_pixel)
    if spp == 3 and info.photometric in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        # native 4:2:2 stores two luminance samples per chrominance pair: 2 samples per pixel (PS3.3 C.7.6.3.1.2)
        total = (info.rows * info.columns * max(1, info.frames) * 2 * info.bits_allocated + 7) // 8
        return total, f"{info.rows}×{info.columns}×{max(1, info.frames)}×2 (4:2:2)×{info.bits_allocated} bits"
    total = (info.rows * info.columns * max(1, info.frames) * spp * info.bits_allocated + 7) // 8
    words = f"{info.rows}×{info.columns}×{max(1, info.frames)}"
    if spp != 1:
        words += f"×{spp}"
    return total, f"{words}×{info.bits_allocated} bits"


def _check_fragments(fp: BinaryIO, offset: int, size: int, little: bool) -> int:
    """Walk the items of encapsulated pixel data by their headers only; the number of fragments.

    Raises Unusable when an item runs past the end of the file or the sequence delimiter is missing.
    """
    fmt = "<HHI" if little else ">HHI"
    pos = offset
    items = 0
    while True:
        if pos + 8 > size:
            raise Unusable("compressed pixel data is cut short (file ends inside the image fragments)")
        fp.seek(pos)
        group, elem, length = struct.unpack(fmt, fp.read(8))
        if (group, elem) == (0xFFFE, 0xE0DD):
            return max(0, items - 1)  # the first item is the Basic Offset Table
        if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            raise Unusable("compressed pixel data is broken (unexpected data between image fragments)")
        pos += 8 + length
        items += 1
        if pos > size:
            raise Unusable("compressed pixel data is cut short (file ends inside an image fragment)")


def read_header(ref: SourceRef, fp: BinaryIO, size: int) -> InstanceInfo | None:
    """The header facts of one file, with the pixel data located and checked against the declared size.

    Returns None for a DICOMDIR (a directory, not an instance). Raises NotDicom for bytes that are not DICOM,
    Unusable (reason in words) for a DICOM file that cannot be used. The lean walker of `header.py` does
    the work; files it does not handle are read with pydicom, with the same checks.
    """
    head = fp.read(132)
    if not head:
        raise NotDicom("the file is empty")
    if not looks_like_dicom(head):
        raise NotDicom("not a DICOM file")
    try:
        raw = read_raw_header(fp, size, _WANTED)
    except CutShort as exc:
        raise Unusable(f"file is cut short ({exc}; {size} bytes)") from None
    except NotADataSet as exc:
        raise NotDicom(f"not a DICOM file ({exc})") from None
    except (Fallback, struct.error, UnicodeError):
        with quiet_pydicom():
            return read_header_pydicom(ref, fp, size)
    try:
        info = _info_from_raw(ref, raw)
    except (Fallback, struct.error, ValueError, LookupError):
        with quiet_pydicom():
            return read_header_pydicom(ref, fp, size)
    if info is None:
        return None
    if raw.pixel_tag is None:
        _no_pixels(info, size)
    else:
        _check_pixels(info, fp, size, raw.pixel_tag, raw.pixel_vr, raw.pixel_length, raw.pixel_offset,
                      little=raw.little, implicit=raw.implicit)
    return info


_WANTED = frozenset(HEADER_TAGS) | {0x00080005}
_DEFAULT_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6", "ISO 2022 IR 100"}


def _info_from_raw(ref: SourceRef, raw) -> InstanceInfo | None:
    """InstanceInfo from the walker's raw values (text decoded with the Specific Character Set)."""
    values = raw.values
    charset = values.get(0x00080005, b"").decode("ascii", "replace").strip(" \x00")
    if charset in _DEFAULT_CHARSETS:
        encoding = "latin-1"
    elif charset == "ISO_IR 192":
        encoding = "utf-8"
    else:
        encoding = None  # ISO 2022 escapes and the rest: pydicom's charset module decodes those

    def text(tag: int, source: dict = values) -> str:
        value = source.get(tag)
        if not value:
            return ""
        if encoding is None:
            from pydicom.charset import convert_encodings, decode_bytes

            decoded = decode_bytes(value, convert_encodings(charset.split("\\")), {0x5E, 0x3D})
        else:
            decoded = value.decode(encoding, "replace")
        return decoded.strip(" \x00")

    def ascii_(tag: int, source: dict = values) -> str:
        value = source.get(tag)
        return value.decode("ascii", "replace").strip(" \x00") if value else ""

    def us(tag: int) -> int | None:
        value = values.get(tag)
        if not value:
            return None
        if len(value) < 2:
            raise Fallback("odd US value")
        return struct.unpack_from("<H" if raw.little else ">H", value)[0]

    def number(tag: int) -> int | None:
        s = ascii_(tag).split("\\")[0].strip()
        if not s:
            return None
        try:
            return int(float(s))
        except ValueError:
            return None

    def floats(tag: int, n: int):
        s = ascii_(tag)
        if not s:
            return None
        try:
            out = tuple(float(v) for v in s.split("\\"))
        except ValueError:
            return None
        if len(out) != n or any(v != v for v in out):
            return None
        return out

    sop_class = ascii_(0x00080016) or ascii_(0x00020002, raw.meta)
    if sop_class == DICOMDIR_SOP_CLASS:
        return None
    sop_uid = ascii_(0x00080018) or ascii_(0x00020003, raw.meta)
    return _make_info(ref, sop_class, sop_uid, raw.transfer_syntax, text, ascii_, us, number, floats,
                      data_set_read=raw.elements > 0, has_meta=bool(raw.meta))


def _make_info(ref: SourceRef, sop_class: str, sop_uid: str, tsyntax: str, text, ascii_, us, number,
               floats, *, data_set_read: bool, has_meta: bool) -> InstanceInfo:
    """InstanceInfo from per-tag getters: one mapping of tags to fields for both header readers.

    `data_set_read`: whether any element medview reads was found in the data set. Raises Unusable for a
    header that cannot place an image: a data set that yielded nothing (garbage after the file meta that
    pydicom parsed to the end of the file, a file that ends after its meta), or one that identifies nothing.
    """
    if not data_set_read:
        where = " after the file meta" if has_meta else ""
        raise Unusable(f"broken DICOM file (no data elements{where}; cut short?)")  # as `render` says it
    info = InstanceInfo(
        ref=ref,
        sop_instance_uid=sop_uid,
        sop_class_uid=sop_class,
        study_uid=ascii_(0x0020000D),
        series_uid=ascii_(0x0020000E),
        modality=text(0x00080060),
        patient_id=text(0x00100020),
        patient_name=text(0x00100010),
        study_date=ascii_(0x00080020),
        study_time=ascii_(0x00080030),
        study_description=text(0x00081030),
        accession_number=text(0x00080050),
        series_description=text(0x0008103E),
        series_number=number(0x00200011),
        instance_number=number(0x00200013),
        rows=us(0x00280010) or 0,
        columns=us(0x00280011) or 0,
        frames=max(1, number(0x00280008) or 1),
        samples_per_pixel=us(0x00280002) or 1,
        bits_allocated=us(0x00280100) or 0,
        bits_stored=us(0x00280101) or 0,
        pixel_representation=us(0x00280103) or 0,
        planar_configuration=us(0x00280006) or 0,
        photometric=ascii_(0x00280004).upper(),
        transfer_syntax=tsyntax,
        image_position=floats(0x00200032, 3),
        image_orientation=floats(0x00200037, 6),
        pixel_spacing=floats(0x00280030, 2),
        imager_pixel_spacing=floats(0x00181164, 2),
        slice_thickness=(floats(0x00180050, 1) or (None,))[0],
    )
    if not (info.sop_class_uid or info.sop_instance_uid or info.has_pixels):
        raise Unusable("broken DICOM header (no SOP Class UID, no SOP Instance UID, no image)")
    return info


def read_header_pydicom(ref: SourceRef, fp: BinaryIO, size: int) -> InstanceInfo | None:
    """`read_header` through pydicom (only the tags medview uses, stopping before the pixel data)."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    fp.seek(0)
    try:
        ds = dcmread(fp, stop_before_pixels=True, specific_tags=HEADER_TAGS, force=True)
    except InvalidDicomError as exc:
        raise NotDicom(f"not a DICOM file ({exc})") from None
    except (EOFError, struct.error):
        raise Unusable("file is cut short inside the header") from None
    except Exception as exc:  # pydicom raises many kinds for broken headers; all mean the same to a user
        raise Unusable(f"broken header ({type(exc).__name__}: {exc})") from None
    end = fp.tell()

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = {}
    tsyntax = _str(meta, 0x00020010)
    sop_class = _str(ds, 0x00080016) or _str(meta, 0x00020002)
    if sop_class == DICOMDIR_SOP_CLASS:
        return None
    implicit, little = ds.original_encoding[0], ds.original_encoding[1]
    if not tsyntax:
        tsyntax = "1.2.840.10008.1.2" if implicit else ("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")

    # every value medview read must be complete: a value running past the end of the file means cut short
    for elem in ds._dict.values():
        tell = getattr(elem, "value_tell", None)
        length = getattr(elem, "length", 0)
        if tell is not None and length != 0xFFFFFFFF and tell + length > size and tsyntax != DEFLATED:
            raise Unusable(f"file is cut short inside the header ({size} bytes)")

    def text(tag: int) -> str:
        return _str(ds, tag)

    def integer(tag: int) -> int | None:
        return _int(ds, tag)

    def floats(tag: int, n: int):
        return _floats(ds, tag, n)

    sop_uid = _str(ds, 0x00080018) or _str(meta, 0x00020003)
    info = _make_info(ref, sop_class, sop_uid, tsyntax, text, text, integer, integer, floats,
                      data_set_read=len(ds._dict) > 0, has_meta=len(meta) > 0)
    if tsyntax == DEFLATED:
        # the data set is one deflate stream: positions are in the inflated bytes, so there is no fast path;
        # pydicom has inflated it completely, which already proves it is not cut short
        return info
    fp.seek(end)
    raw = fp.read(12)
    tag = None
    if len(raw) >= 8:
        group, elem = struct.unpack_from("<HH" if little else ">HH", raw)
        tag = group << 16 | elem
    if tag not in PIXEL_TAGS:
        _no_pixels(info, size)
        return info
    endian = "<" if little else ">"
    vr = b"" if implicit else raw[4:6]
    if implicit:
        length, offset = struct.unpack_from(endian + "I", raw, 4)[0], end + 8
    elif vr in LONG_VRS:
        if len(raw) < 12:
            raise Unusable("file is cut short at the start of the pixel data")
        length, offset = struct.unpack_from(endian + "I", raw, 8)[0], end + 12
    else:
        length, offset = struct.unpack_from(endian + "H", raw, 6)[0], end + 8
    _check_pixels(info, fp, size, tag, vr, length, offset, little=little, implicit=implicit)
    return info


def _no_pixels(info: InstanceInfo, size: int) -> None:
    """A file without pixel data is fine (reports, presentation states) unless it says it is an image."""
    if info.has_pixels:
        raise Unusable(f"has no pixel data although it declares a {info.rows}×{info.columns} image "
                       f"(file cut short at {size} bytes?)")
    if is_image_sop_class(info.sop_class_uid):
        raise Unusable(f"an image without pixel data ({size} bytes: file cut short?)")


def sop_class_name(uid: str) -> str:
    """The SOP class in words ("Presentation LUT", "RT Plan"), or "" when unknown."""
    from pydicom._uid_dict import UID_dictionary

    entry = UID_dictionary.get(uid)
    if entry is None or entry[1] != "SOP Class":
        return ""
    return entry[0].removesuffix(" SOP Class").removesuffix(" Storage")


def is_image_sop_class(uid: str) -> bool:
    """An image storage SOP class (CT, MR, CR, DX, secondary capture...): such a file must carry pixels."""
    if not uid.startswith("1.2.840.10008.5.1.4.1.1."):
        return False
    from pydicom._uid_dict import UID_dictionary

    entry = UID_dictionary.get(uid)
    return entry is not None and "Image Storage" in entry[0]


def _check_pixels(info: InstanceInfo, fp: BinaryIO, size: int, tag: int, vr: bytes, length: int, offset: int,
                  *, little: bool, implicit: bool) -> None:
    """Compare the pixel data present with what the header declares; record offset/length for the fast path."""
    if not info.has_pixels or info.bits_allocated <= 0:
        raise Unusable("broken header: pixel data without Rows, Columns or Bits Allocated")
    too_large = frame_too_large(info.rows, info.columns, info.samples_per_pixel, info.bits_allocated)
    if too_large:  # nothing is allocated for it, in the viewer, render or the AI
        raise Unusable(too_large)
    declared, words = _declared(info)
    if length == 0xFFFFFFFF:
        info.encapsulated = True
        fragments = _check_fragments(fp, offset, size, little)
        if fragments == 0:
            raise Unusable("compressed pixel data holds no image fragments")
        if info.frames > fragments:  # every frame has a fragment of its own (PS3.5 A.4)
            raise Unusable(f"declares {info.frames} frames, but its compressed pixel data holds only "
                           f"{fragments} fragment{'s' if fragments != 1 else ''}")
        return
    present = min(length, max(0, size - offset))
    if info.transfer_syntax not in _ENCAPSULATED_FREE:
        # a compressed syntax with a defined-length value (seen in the field, e.g. pydicom's SC_rgb_jpeg.dcm
        # with a bogus length): pydicom still decodes the stream, so it is left to the decoder
        return
    if present < declared:
        raise Unusable(f"pixel data is {present} bytes, {declared} declared ({words})")
    if tag != 0x7FE00010 or (not little and info.bits_allocated == 8 and not implicit and vr == b"OW"):
        # float pixel data, or 8-bit samples in big-endian OW words (byte-swapped in pairs, PS3.5 A.3):
        # left to the decoder, no fast path
        return
    info.pixel_offset = offset
    info.pixel_length = present


# ---------------------------------------------------------------------------------------------- walking


@dataclass
class _Entry:
    """One file to look at: where it is, its cache key facts, and whether the user named it (or a .dcm)."""

    ref: SourceRef
    size: int
    mtime_ns: int
    claims_dicom: bool


def _claims(name: str) -> bool:
    return name.lower().endswith(DICOM_SUFFIXES)


def _inside(path: str, root: str) -> bool:
    """Whether `path` (resolved: links followed, no "..") lies in the folder `root` (resolved too)."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # another drive
        return False


def _walk_folder(folder: str, entries: list[_Entry], errors: list[FileError]) -> None:
    """Every file below `folder`, depth first, sorted by name so results are reproducible.

    Symbolic links are followed while they stay in `folder`; one leading out of it (`up -> ..`) is an
    error, not a walk through the rest of the disk. A link back up the tree (seen on mounted media) is no loop.
    """
    root = os.path.realpath(folder)
    stack = [folder]
    visited: set[tuple[int, int]] = set()
    while stack:
        current = stack.pop()
        try:
            st_dir = os.stat(current)
            if (st_dir.st_dev, st_dir.st_ino) in visited:
                continue
            visited.add((st_dir.st_dev, st_dir.st_ino))
            with os.scandir(current) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            errors.append(FileError(current, f"folder cannot be read ({exc.strerror or exc})"))
            continue
        subdirs = []
        for item in items:
            try:
                if item.is_symlink() and not _inside(os.path.realpath(item.path), root):
                    errors.append(FileError(item.path, f"a link leading out of {folder}; not followed"))
                    continue
                if item.is_dir(follow_symlinks=True):
                    subdirs.append(item.path)
                    continue
                st = item.stat()
            except OSError as exc:
                errors.append(FileError(item.path, f"cannot be read ({exc.strerror or exc})"))
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                if _claims(item.name):  # a pipe named x.dcm is never opened (it would block), but is said
                    errors.append(FileError(item.path, not_a_file(st.st_mode) or "not a file"))
                continue
            if item.name.lower().endswith(".zip") and zipfile.is_zipfile(item.path):
                _zip_entries(item.path, st, entries, errors)  # an archive inside the export: read in place
                continue
            entries.append(_Entry(SourceRef(item.path), st.st_size, st.st_mtime_ns, _claims(item.name)))
        stack.extend(reversed(subdirs))


def _zip_entries(path: str, st: os.stat_result, entries: list[_Entry], errors: list[FileError]) -> None:
    """Members of a zip, read in place (never extracted); the archive's mtime dates every member."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        errors.append(FileError(path, f"zip archive cannot be read ({exc})"))
        return
    for info in sorted(infos, key=lambda i: i.filename):
        if info.is_dir():
            continue
        entries.append(_Entry(SourceRef(path, info.filename), info.file_size, st.st_mtime_ns,
                              _claims(info.filename)))


def _find_case_insensitive(base: str, parts: list[str]) -> str | None:
    """Referenced File IDs are upper case by rule; media written on other systems often are not."""
    current = base
    for part in parts:
        candidate = os.path.join(current, part)
        if os.path.exists(candidate):
            current = candidate
            continue
        try:
            names = {n.lower(): n for n in os.listdir(current)}
        except OSError:
            return None
        found = names.get(part.lower())
        if found is None:
            return None
        current = os.path.join(current, found)
    return current


def _dicomdir_entries(path: str, entries: list[_Entry], errors: list[FileError]) -> bool:
    """The files a DICOMDIR references; False when it cannot be read (the caller scans its folder)."""
    try:
        from pydicom import dcmread

        with quiet_pydicom():
            ds = dcmread(path, force=True)
        records = ds.DirectoryRecordSequence
    except Exception as exc:
        log.warning("DICOMDIR %s cannot be read (%s); scanning its folder instead", path, type(exc).__name__)
        return False
    base = os.path.dirname(path)
    real_base = os.path.realpath(base)
    seen: set[str] = set()
    for record in records:
        file_id = record.get(0x00041500)  # Referenced File ID: path components below the DICOMDIR's folder
        if file_id is None or not file_id.value:
            continue
        value = file_id.value
        parts = [str(p) for p in value] if isinstance(value, (list, tuple)) or file_id.VM > 1 else [str(value)]
        target = _find_case_insensitive(base, parts)
        shown = os.path.join(base, *parts)
        if target is None:
            errors.append(FileError(shown, "listed in the DICOMDIR but missing"))
            continue
        if not _inside(os.path.realpath(target), real_base):  # "../../etc/passwd": never read off the media
            errors.append(FileError(shown, "listed in the DICOMDIR but outside its folder; not read"))
            continue
        if target in seen:
            continue
        seen.add(target)
        try:
            st = os.stat(target)
        except OSError as exc:
            errors.append(FileError(target, f"cannot be read ({exc.strerror or exc})"))
            continue
        entries.append(_Entry(SourceRef(target), st.st_size, st.st_mtime_ns, True))
    return True


def is_dicomdir(path: str) -> bool:
    """A DICOMDIR file by its name, or by its meta information under another name (a CD's index copied as
    "INDEX.DCM"): a file named by the user is followed like one."""
    if not os.path.isfile(path):  # a folder, a pipe or a device is never opened here
        return False
    if os.path.basename(path).upper() == "DICOMDIR":
        return True
    try:
        with open(path, "rb") as fp:
            return media_storage_class(fp, os.fstat(fp.fileno()).st_size) == DICOMDIR_SOP_CLASS
    except OSError:
        return False  # read again as a file, which then says why it cannot be read


def collect(paths: Sequence[str]) -> tuple[list[_Entry], list[FileError], int]:
    """Expand the inputs to files. Returns (entries, errors, unusable inputs): missing paths are errors."""
    entries: list[_Entry] = []
    errors: list[FileError] = []
    bad_inputs = 0
    for given in paths:
        path = os.path.abspath(os.path.expanduser(str(given)))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            errors.append(FileError(path, "no such file or folder"))
            bad_inputs += 1
            continue
        except OSError as exc:
            errors.append(FileError(path, f"cannot be read ({exc.strerror or exc})"))
            bad_inputs += 1
            continue
        reason = not_a_file(st.st_mode)
        if reason is not None:
            errors.append(FileError(path, reason))
            bad_inputs += 1
        elif stat_mod.S_ISDIR(st.st_mode):
            if not os.access(path, os.R_OK | os.X_OK):
                errors.append(FileError(path, "folder cannot be read (permission denied)"))
                bad_inputs += 1
                continue
            _walk_folder(path, entries, errors)
        elif is_dicomdir(path):
            if not _dicomdir_entries(path, entries, errors):
                _walk_folder(os.path.dirname(path), entries, errors)
        elif path.lower().endswith(".zip") and zipfile.is_zipfile(path):
            _zip_entries(path, st, entries, errors)
        else:
            entries.append(_Entry(SourceRef(path), st.st_size, st.st_mtime_ns, True))
    # the same file reached twice (a DICOMDIR and its folder, overlapping inputs) is read once
    seen: set[SourceRef] = set()
    unique = []
    for entry in entries:
        if entry.ref not in seen:
            seen.add(entry.ref)
            unique.append(entry)
    return unique, errors, bad_inputs


# ---------------------------------------------------------------------------------------------- scanning


def _read_entry(entry: _Entry, archive: zipfile.ZipFile | None) -> tuple[str, object]:
    """("instance", InstanceInfo) | ("error", reason) | ("not dicom", reason) | ("dir", None) for one file.

    "not dicom" is what the bytes are, whoever asks: the index cache keeps it as such, and `_as_asked` makes
    it an error for a file named by the user (or a .dcm) and a skipped file for one met in a folder.
    """
    if entry.size == 0:
        return NOT_DICOM, "empty file"
    try:
        fp = entry.ref.open(archive)
    except RefusedSource as exc:
        return "error", exc.strerror
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        return "error", f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    try:
        with fp:
            info = read_header(entry.ref, fp, entry.size)
    except NotDicom as exc:
        return NOT_DICOM, str(exc)
    except Unusable as exc:
        return "error", str(exc)
    except OSError as exc:
        return "error", f"cannot be read ({exc.strerror or exc})"
    except Exception as exc:  # never let one odd file stop a scan of thousands
        log.debug("unexpected failure reading %s", entry.ref.display(), exc_info=True)
        return "error", f"broken header ({type(exc).__name__})"
    if info is None:
        return "dir", None
    return "instance", info


NOT_DICOM = "not dicom"


def _as_asked(entry: _Entry, kind: str, value: object) -> tuple[str, object]:
    """Bytes that are not DICOM are an error where the user named the file (or it is called .dcm), else
    skipped: the same file is one or the other depending on how it was reached, not on the cache."""
    if kind == NOT_DICOM:
        return ("error", value) if entry.claims_dicom else ("skip", value)
    return kind, value


def iter_read(entries: Sequence[_Entry]) -> Iterator[tuple[_Entry, str, object]]:
    """Read entries in order, keeping one zip archive open while its members are read."""
    archive: zipfile.ZipFile | None = None
    archive_path = None
    with quiet_pydicom():
        try:
            for entry in entries:
                if entry.ref.member is not None and entry.ref.path != archive_path:
                    if archive is not None:
                        archive.close()
                    archive_path = entry.ref.path
                    try:
                        archive = zipfile.ZipFile(entry.ref.path)
                    except (OSError, zipfile.BadZipFile):
                        archive = None  # each member then fails on its own with the reason
                kind, value = _read_entry(entry, archive if entry.ref.member is not None else None)
                yield entry, kind, value
        finally:
            if archive is not None:
                archive.close()


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """pydicom warns (and logs) about every odd value; medview reports per file in its own words instead.

    Not done with the logger's level: pydicom is imported lazily, often inside this block, and its import
    (pydicom.config) sets the "pydicom" logger back to WARNING. Records of "pydicom" and its child loggers
    instead end at a handler of its own here and do not propagate to medview's stderr handler.
    """
    logger = logging.getLogger("pydicom")
    propagate = logger.propagate
    sink = logging.NullHandler()  # a logger without handlers would fall back to logging.lastResort (stderr)
    logger.addHandler(sink)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.propagate = propagate
        logger.removeHandler(sink)


def scan(
    paths: Sequence[str],
    *,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ScanResult:
    """Every DICOM instance below `paths` (folders recursively, files, .zip, DICOMDIR); never raises per file.

    Missing inputs are listed in `errors` ("no such file or folder"). `progress(done, total)` is called as
    files are read; when `cancel()` turns true the scan stops and returns what it has (`cancelled` set).
    """
    abs_paths = [os.path.abspath(os.path.expanduser(str(p))) for p in paths]
    if len(abs_paths) == 1:
        root = abs_paths[0]
    elif abs_paths:
        try:
            root = os.path.commonpath(abs_paths)
        except ValueError:
            root = ""
    else:
        root = ""
    result = ScanResult(root=root)
    entries, errors, _ = collect(paths)
    result.errors.extend(errors)
    result.files = len(entries)

    cache = None
    cached: dict = {}
    if use_cache:
        from medview.core.dicom.cache import IndexCache

        cache = IndexCache.open_default()
        if cache is not None:
            cached = cache.lookup([(e.ref, e.size, e.mtime_ns) for e in entries])

    to_read: list[_Entry] = []
    done = 0
    total = len(entries)
    ordered: list[tuple[str, object] | None] = [None] * total
    index_of: dict[SourceRef, int] = {}
    for i, entry in enumerate(entries):
        hit = cached.get(entry.ref)
        if hit is not None:
            ordered[i] = hit
            done += 1
        else:
            index_of[entry.ref] = i
            to_read.append(entry)
    result.cached = done
    if progress is not None and total:
        progress(done, total)

    fresh: list[tuple[_Entry, str, object]] = []
    with contextlib.closing(iter_read(to_read)) as reading:
        for entry, kind, value in reading:
            ordered[index_of[entry.ref]] = (kind, value)
            fresh.append((entry, kind, value))
            done += 1
            if progress is not None and (done % 64 == 0 or done == total):
                progress(done, total)
            if cancel is not None and cancel():
                result.cancelled = done < total
                break

    if cache is not None:
        try:
            cache.store(fresh)
            if not result.cancelled:
                cache.prune([p for p in abs_paths if os.path.isdir(p)])
        finally:
            cache.close()

    for entry, item in zip(entries, ordered):
        if item is None:  # not reached before a cancel
            continue
        kind, value = _as_asked(entry, *item)
        if kind == "instance":
            result.instances.append(value)  # type: ignore[arg-type]
        elif kind == "error":
            result.errors.append(FileError(entry.ref.display(), str(value)))
        else:  # "skip", and a DICOMDIR met while walking a folder: not an image
            result.skipped_non_dicom += 1
    return result
