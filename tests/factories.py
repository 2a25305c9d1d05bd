"""DICOM files built to order for tests: any matrix, geometry, bit depth, colour, transfer syntax and framing.

`write_image` writes one valid file (Part-10 by default) and returns its path; everything a test does not
say gets a plausible default, so each test names only what it is about. `write_series` writes a stack,
`write_junk` the broken files a real export contains. Used by every engineer's tests: keep it general.
"""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

SOP_CLASSES = {
    "CT": CTImageStorage,
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "OT": "1.2.840.10008.5.1.4.1.1.7",
}
NATIVE = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def default_pixels(rows: int, cols: int, frames: int, samples: int, bits: int, signed: bool,
                   seed: int = 0) -> np.ndarray:
    """A deterministic pattern that uses the value range, so byte order or sign mistakes show."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(f"{'i' if signed else 'u'}{max(1, bits // 8)}")
    info = np.iinfo(dtype)
    lo, hi = (max(info.min, -2000), min(info.max, 3000)) if bits > 8 else (info.min, info.max)
    shape = (frames, rows, cols) + ((samples,) if samples > 1 else ())
    return rng.integers(lo, hi, size=shape, endpoint=True, dtype=dtype)


def write_image(
    path: str | os.PathLike,
    *,
    rows: int = 16,
    cols: int = 16,
    modality: str = "CT",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_id: str = "PID001",
    patient_name: str = "Test^Patient",
    study_date: str = "20240101",
    study_time: str = "120000",
    study_description: str = "Test study",
    series_description: str = "Test series",
    series_number: int | None = 1,
    instance_number: int | None = 1,
    position: Sequence[float] | None = (0.0, 0.0, 0.0),
    orientation: Sequence[float] | None = AXIAL,
    pixel_spacing: Sequence[float] | None = (0.5, 0.5),
    slice_thickness: float | None = 1.0,
    pixels: np.ndarray | None = None,
    frames: int = 1,
    bits_allocated: int = 16,
    bits_stored: int | None = None,
    signed: bool = False,
    samples_per_pixel: int = 1,
    planar_configuration: int = 0,
    photometric: str | None = None,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    preamble: bool = True,
    extra: dict | None = None,
    seed: int = 0,
) -> Path:
    """Write one image and return its path.

    `pixels`: (rows, cols), (frames, rows, cols), or with a trailing 3 for colour (always sample-interleaved
    here; `planar_configuration=1` makes the file store the planes one after the other). Without `pixels`
    a seeded pattern is written. `preamble=False` writes an old ACR-NEMA style file: no preamble, no file
    meta information, implicit VR little endian unless `transfer_syntax` says big endian explicit.
    `extra`: keyword -> value for any further element (e.g. {"PhotometricInterpretation": ...}).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels is None:
        pixels = default_pixels(rows, cols, frames, samples_per_pixel, bits_allocated, signed, seed)
    pixels = np.asarray(pixels)
    colour = samples_per_pixel > 1
    if pixels.ndim == (3 if colour else 2):
        pixels = pixels[None]
    frames, rows, cols = pixels.shape[:3]
    bits_stored = bits_allocated if bits_stored is None else bits_stored

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SOP_CLASSES.get(modality, SOP_CLASSES["OT"])
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = "ACC1"
    ds.Modality = modality
    ds.StudyDescription = study_description
    ds.SeriesDescription = series_description
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if slice_thickness is not None:
        ds.SliceThickness = slice_thickness
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.StudyID = "1"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    if series_number is not None:
        ds.SeriesNumber = series_number
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    if position is not None:
        ds.ImagePositionPatient = [float(v) for v in position]
    if orientation is not None:
        ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.SamplesPerPixel = samples_per_pixel
    ds.PhotometricInterpretation = photometric or ("RGB" if colour else "MONOCHROME2")
    if colour:
        ds.PlanarConfiguration = planar_configuration
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows = rows
    ds.Columns = cols
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "HU" if modality == "CT" else "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)

    big = transfer_syntax == ExplicitVRBigEndian
    stored = pixels
    if colour and planar_configuration == 1:
        stored = np.ascontiguousarray(np.moveaxis(pixels, -1, 1))  # (frames, 3, rows, cols)
    dtype = stored.dtype.newbyteorder(">" if big else "<") if stored.dtype.itemsize > 1 else stored.dtype
    data = stored.astype(dtype, copy=False).tobytes()
    if len(data) % 2:
        data += b"\x00"
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if bits_allocated <= 8 else "OW"

    compressed = transfer_syntax not in NATIVE
    if compressed:
        if transfer_syntax == RLELossless:
            ds.compress(RLELossless, pixels if frames > 1 else pixels[0], encoding_plugin="pydicom")
        else:
            ds.compress(transfer_syntax, pixels if frames > 1 else pixels[0])

    if preamble:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = transfer_syntax
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
        ds.file_meta = meta
        ds.preamble = b"\x00" * 128
        ds.save_as(path, enforce_file_format=True)
    else:
        explicit_big = transfer_syntax == ExplicitVRBigEndian
        pydicom.dcmwrite(path, ds, implicit_vr=not explicit_big, little_endian=not explicit_big)
    return path


def write_series(
    folder: str | os.PathLike,
    count: int,
    *,
    spacing: float = 2.5,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = AXIAL,
    names: Iterable[str] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    first_number: int = 1,
    **kwargs,
) -> list[Path]:
    """`count` slices along the normal of `orientation`, `spacing` mm apart; files named `names` or IM0001...

    Returns the paths in slice order (position increasing along the normal).
    """
    from medview.core.dicom.series import slice_normal

    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    normal = np.array(slice_normal(orientation))
    name_list = list(names) if names is not None else [f"IM{i + 1:04d}.dcm" for i in range(count)]
    paths = []
    for i in range(count):
        pos = np.asarray(origin, float) + normal * spacing * i
        paths.append(write_image(Path(folder) / name_list[i], study_uid=study_uid, series_uid=series_uid,
                                 position=tuple(pos), orientation=orientation, instance_number=first_number + i,
                                 seed=i, **kwargs))
    return paths


def truncate(path: str | os.PathLike, keep: int) -> Path:
    """Cut a file to its first `keep` bytes (negative: drop that many from the end), like a broken copy."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    return path


def write_junk(folder: str | os.PathLike, *, seed: int = 0) -> dict[str, Path]:
    """Files that are not DICOM at all: random bytes, an empty file, text, and a PNG-looking header."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    files = {
        "random": folder / "random.bin",
        "empty": folder / "empty",
        "text": folder / "README.txt",
        "png": folder / "thumb.png",
    }
    files["random"].write_bytes(bytes(rnd.getrandbits(8) for _ in range(4096)))
    files["empty"].write_bytes(b"")
    files["text"].write_text("exported by a PACS\n")
    files["png"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    return files


def make_zip(zip_path: str | os.PathLike, files: Iterable[str | os.PathLike], base: str | os.PathLike) -> Path:
    """A zip holding `files` under their paths relative to `base` (deflate-compressed, as exports are)."""
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for f in files:
            archive.write(f, arcname=os.path.relpath(f, base))
    return zip_path


def write_dicomdir(out_folder: str | os.PathLike, files: Iterable[str | os.PathLike]) -> Path:
    """A DICOM File-set (PS3.10) at `out_folder`: the files copied under pydicom's naming, plus its DICOMDIR.

    Returns the DICOMDIR path. The referenced files are named like media (PT000000/ST000000/...), without
    suffix, as CDs burnt by a PACS are.
    """
    from pydicom.fileset import FileSet

    fs = FileSet()
    for f in files:
        fs.add(pydicom.dcmread(f))
    fs.write(out_folder)
    return Path(out_folder) / "DICOMDIR"


# ------------------------------------------------------------------------------ real files of pydicom's test data


def copy_testdata(name: str, dest: str | os.PathLike, **tags) -> Path:
    """A copy of one of pydicom's (or pydicom-data's) real test files at `dest`, with `tags` changed in its
    header (e.g. StudyInstanceUID to put an RT Plan into another study); the pixel data stays as it is."""
    from pydicom.data import get_testdata_file

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not tags:  # the file byte for byte (some, like rtstruct.dcm, have no Part-10 preamble)
        dest.write_bytes(Path(get_testdata_file(name)).read_bytes())
        return dest
    ds = pydicom.dcmread(get_testdata_file(name))
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(dest)
    return dest


def undecodable_copy(name: str, dest: str | os.PathLike, **tags) -> Path:
    """A copy of a real compressed test file whose fragments keep their lengths but hold only zeros: every scan
    check passes (the fragment walk, the sizes) and no decoder can make an image of it, like a corrupt export."""
    from pydicom.encaps import encapsulate, generate_frames

    path = copy_testdata(name, dest, **tags)
    ds = pydicom.dcmread(path)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
    ds.PixelData = encapsulate([bytes(len(f)) for f in frames])
    ds.save_as(path)
    return path


def mixed_objects_folder(folder: str | os.PathLike) -> dict[str, Path]:
    """pydicom's CT_small.dcm with its RT Plan (rtplan.dcm moved into the CT's study: images plus an object
    without pixels), and rtstruct.dcm in a study of its own (objects only, nothing to show as an image)."""
    folder = Path(folder)
    ct = copy_testdata("CT_small.dcm", folder / "ct.dcm")
    head = pydicom.dcmread(ct, stop_before_pixels=True)
    same_study = {k: head.get(k) for k in ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate")}
    return {
        "ct": ct,
        "plan": copy_testdata("rtplan.dcm", folder / "plan.dcm", **same_study),
        "struct": copy_testdata("rtstruct.dcm", folder / "struct.dcm"),
    }
