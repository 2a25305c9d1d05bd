"""Benchmark data under `.bench/`, generated once and reused.

The CT series come from `medview.core.demo.write_ct_series` when it is there; otherwise from the minimal
Part-10 CT writer below, so the benchmarks do not wait for the demo work. The 300- and 1000-slice series
are hard links to the first slices of the 2000-slice one (same bytes, no extra disk); each folder holds
one series, so `scan` of a folder sees exactly that many slices.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from benchmarks._common import BENCH_DIR, log

FULL = {"big": 2000, "medium": 300, "viewer": 1000, "rows": 512, "radiographs": 200}
QUICK = {"big": 200, "medium": 60, "viewer": 100, "rows": 512, "radiographs": 12}


def sizes(quick: bool) -> dict[str, int]:
    return QUICK if quick else FULL


def _root(quick: bool) -> Path:
    return BENCH_DIR / ("quick" if quick else "full")


def ct_series(kind: str, quick: bool) -> Path:
    """Folder holding only the `kind` series ("big", "medium", "viewer"), generated on first use."""
    s = sizes(quick)
    root = _root(quick)
    big = root / f"ct{s['big']}"
    _ensure_big(big, s["big"], s["rows"])
    if kind == "big":
        return big
    n = s[kind]
    sub = root / f"ct{n}"
    marker = _marker(sub)
    if marker.exists():
        return sub
    if sub.exists():
        shutil.rmtree(sub)
    sub.mkdir(parents=True)
    files = sorted_slices(big)[:n]
    for f in files:
        try:
            os.link(f, sub / f.name)
        except OSError:
            shutil.copy2(f, sub / f.name)
    marker.write_text(json.dumps({"order": [f.name for f in files]}))
    return sub


def _marker(folder: Path) -> Path:
    """Completion marker beside (not inside) a data folder, so scans see only DICOM files."""
    return folder.parent / f"{folder.name}.complete"


def sorted_slices(folder: Path) -> list[Path]:
    """Slices of a generated series in position order (written with increasing InstanceNumber)."""
    meta = _marker(folder)
    order = json.loads(meta.read_text()).get("order") if meta.exists() else None
    if order:
        return [folder / name for name in order]
    import pydicom

    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    keyed = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["InstanceNumber"])
        keyed.append((int(ds.get("InstanceNumber", 0) or 0), f))
    return [f for _, f in sorted(keyed)]


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _ensure_big(folder: Path, slices: int, rows: int) -> None:
    marker = _marker(folder)
    if marker.exists():
        return
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    writer = "medview.core.demo.write_ct_series"
    log(f"[bench] writing a {slices}-slice {rows}x{rows} CT series to {folder} (once)")
    try:
        from medview.core.demo import write_ct_series

        write_ct_series(folder, slices, rows=rows, cols=rows, seed=0)
        if len(all_files(folder)) < slices:
            raise RuntimeError("write_ct_series wrote fewer files than asked")
    except Exception as exc:  # noqa: BLE001 - the demo work may not have landed yet
        log(f"[bench] medview.core.demo.write_ct_series unavailable ({type(exc).__name__}: {exc}); "
            "using the benchmarks' own writer")
        shutil.rmtree(folder)
        folder.mkdir(parents=True)
        write_minimal_ct(folder, slices, rows=rows, cols=rows)
        writer = "benchmarks.data.write_minimal_ct"
    order = [f.relative_to(folder).as_posix() for f in sorted_slices(folder)]
    marker.write_text(json.dumps({"writer": writer, "slices": slices, "rows": rows, "order": order}))


def writer_used(quick: bool) -> str | None:
    s = sizes(quick)
    marker = _marker(_root(quick) / f"ct{s['big']}")
    try:
        return json.loads(marker.read_text())["writer"]
    except (OSError, ValueError, KeyError):
        return None


def write_minimal_ct(out_dir: Path, slices: int, rows: int = 512, cols: int = 512, seed: int = 0) -> None:
    """Uncompressed CT Image Storage, int16 stored values with Rescale Intercept -1024, 1 mm apart."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
    from pydicom import Dataset

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rows / 2, cols / 2
    body = ((yy - cy) / (rows * 0.42)) ** 2 + ((xx - cx) / (cols * 0.46)) ** 2 <= 1
    lungs = (((yy - cy) / (rows * 0.25)) ** 2 + ((xx - cx * 0.6) / (cols * 0.15)) ** 2 <= 1) | (
        ((yy - cy) / (rows * 0.25)) ** 2 + ((xx - cx * 1.4) / (cols * 0.15)) ** 2 <= 1
    )
    base = np.where(body, 1024 + 40, 1024 - 1000).astype(np.int16)
    base[lungs] = 1024 - 850
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for i in range(slices):
        spine = ((yy - rows * 0.7) ** 2 + (xx - cx) ** 2) <= (rows * (0.04 + 0.01 * np.sin(i / 9))) ** 2
        img = base.copy()
        img[spine] = 1024 + 700
        img += rng.integers(-12, 13, size=img.shape, dtype=np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.Modality = "CT"
        ds.PatientName = "Bench^CT"
        ds.PatientID = "BENCH-CT"
        ds.StudyDate = "20260101"
        ds.StudyDescription = "Benchmark CT"
        ds.SeriesDescription = f"Benchmark {slices} slices"
        ds.SeriesNumber = 1
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-(cols / 2) * 0.7, -(rows / 2) * 0.7, -float(i)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 1.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = img.tobytes()
        ds.save_as(out_dir / f"CT{i + 1:05d}.dcm", enforce_file_format=True)


def radiographs(quick: bool) -> Path:
    """A folder of synthetic chest radiographs from `medview demo-data` (for the AI figures)."""
    n = sizes(quick)["radiographs"]
    folder = _root(quick) / f"cxr{n}"
    marker = _marker(folder)
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    from medview.core import demo  # noqa: F401 - raises ImportError when the demo work is missing

    import subprocess
    import sys

    log(f"[bench] writing {n} demo radiographs to {folder} (once)")
    proc = subprocess.run(
        [sys.executable, "-m", "medview", "demo-data", str(folder), "--cases", str(n), "--seed", "7",
         "--ct-slices", "0"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"medview demo-data failed: {(proc.stderr or '').strip()[-200:]}")
    marker.write_text("ok")
    return folder
