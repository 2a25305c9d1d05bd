"""Synthetic demo studies (SPEC section 5): PA chest radiographs with and without an enlarged heart, and a
contrast chest CT with its topogram, as valid Part-10 DICOM.

Public API:

- ``generate_demo(out, cases=20, seed=0, ct_slices=200, priors=False) -> DemoSummary``: the whole demo folder
  (``OUT/PATnnnn/STnn/SEnn/IMnnnn.dcm``, ``ground_truth.csv``, ``phantom_params.csv``); with ``priors``, every
  third patient also has an earlier radiograph (``ST02``) with its own truth, for comparison with priors.
- ``case_spec(seed, index) -> CaseSpec`` and ``radiograph_for_case(seed, index)``: one case without any I/O
  (pixels depend only on seed and index), for training on arrays directly.
- ``make_chest_radiograph(rng, ctr, ...)``: the phantom itself; ``write_ct_series(out_dir, slices, ...)``:
  a CT series for benchmarks.

The label (cardiothoracic ratio > 0.5) lives only in the pixels and in the two CSV files: every tag, name and
description is drawn independently of it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medview.core.demo.phantoms import (
    CTR_THRESHOLD,
    MAX_STORED,
    ChestCTPhantom,
    CTGeometry,
    make_chest_radiograph,
)
from medview.core.demo.writer import demo_uid, write_ct_localizer, write_ct_slices, write_radiograph
from medview.core.errors import UsageError
from medview.core.output_folder import make_output_folder

__all__ = [
    "CTR_THRESHOLD",
    "CaseSpec",
    "DemoSummary",
    "FINDING",
    "MARKER",
    "PriorSpec",
    "case_spec",
    "generate_demo",
    "make_chest_radiograph",
    "prepare_output",
    "prior_spec",
    "radiograph_for_case",
    "radiograph_for_prior",
    "write_ct_series",
    "write_demo_data",
]

FINDING = "cardiomegaly"
MARKER = "medview-demo.json"  # written last: its presence means OUT holds a complete demo output
_PARTIAL = "medview-demo.partial.json"  # written first: lets a run cut short be replaced next time
_BORDERLINE = 0.3  # share of cases drawn within 0.03 of the threshold (the model README quotes it)
_GAP = 0.003  # no case closer than this to the threshold: the label is unambiguous at pixel resolution
_PRIOR_EVERY = 3  # cases 0, 3, 6... have a prior radiograph when priors are asked for

_GIVEN_F = ["Anna", "Maria", "Sofia", "Lena", "Emma", "Clara", "Ines", "Julia", "Nora", "Eva", "Ida", "Mila"]
_GIVEN_M = ["Paul", "Jonas", "Lukas", "Felix", "Noah", "Elias", "Karl", "Max", "Leon", "Tom", "Ben", "Emil"]
_FAMILY = ["Phantom", "Demo", "Synth", "Testcase", "Sample", "Model", "Mock", "Dummy"]


@dataclass(frozen=True)
class CaseSpec:
    """Everything about radiograph case `index` of `seed` that is decided before pixels are made."""

    seed: int
    index: int
    label: int
    target_ctr: float
    modality: str  # CR (stored MONOCHROME1) or DX (MONOCHROME2)
    female: bool
    age: int
    study_date: _dt.date
    study_time: str

    @property
    def patient_id(self) -> str:
        return f"PAT{self.index + 1:04d}"


@dataclass
class DemoSummary:
    """What `generate_demo` wrote, and how long it took."""

    out: Path
    radiographs: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    ct_files: list[Path] = field(default_factory=list)
    localizer: Path | None = None
    priors: list[Path] = field(default_factory=list)  # earlier radiographs of some patients (not in `labels`)
    prior_labels: list[int] = field(default_factory=list)
    ground_truth: Path | None = None
    phantom_params: Path | None = None
    seconds: float = 0.0

    @property
    def positives(self) -> int:
        return int(sum(self.labels))


def case_spec(seed: int, index: int) -> CaseSpec:
    """The label, target CTR and demographics of a case; labels are balanced within each pair of cases."""
    pair = np.random.default_rng([seed, index // 2, 3])
    first_positive = bool(pair.random() < 0.5)
    label = int(first_positive if index % 2 == 0 else not first_positive)
    rng = np.random.default_rng([seed, index, 1])
    if rng.random() < _BORDERLINE:
        ctr = rng.uniform(0.5 + _GAP, 0.53) if label else rng.uniform(0.47, 0.5 - _GAP)
    else:
        ctr = rng.uniform(0.505, 0.66) if label else rng.uniform(0.38, 0.47)
    modality = "CR" if rng.random() < 0.5 else "DX"
    female = bool(rng.random() < 0.5)
    age = int(rng.integers(22, 90))
    date = _dt.date(2024, 1, 2) + _dt.timedelta(days=int(rng.integers(0, 700)))
    secs = int(rng.integers(7 * 3600, 19 * 3600))
    return CaseSpec(seed, index, label, float(ctr), modality, female, age, date,
                    f"{secs // 3600:02d}{secs // 60 % 60:02d}{secs % 60:02d}")


def radiograph_for_case(seed: int, index: int) -> tuple[np.ndarray, dict]:
    """Pixels (uint16, MONOCHROME2 sense) and phantom parameters of case `index`: a function of (seed, index)."""
    spec = case_spec(seed, index)
    return make_chest_radiograph(np.random.default_rng([seed, index, 2]), spec.target_ctr, female=spec.female)


@dataclass(frozen=True)
class PriorSpec:
    """The earlier radiograph of case `index`: a smaller heart, months to years before the current study."""

    index: int
    target_ctr: float
    study_date: _dt.date
    study_time: str


def prior_spec(seed: int, index: int) -> PriorSpec | None:
    """The prior of case `index`, or None: every third case has one. Its own random stream, so the current
    case's label, CTR and pixels are the same with and without priors."""
    if index % _PRIOR_EVERY:
        return None
    spec = case_spec(seed, index)
    rng = np.random.default_rng([seed, index, 6])
    ctr = spec.target_ctr - rng.uniform(0.01, 0.04)
    if abs(ctr - CTR_THRESHOLD) < _GAP:
        ctr = CTR_THRESHOLD - _GAP  # keep the prior's label as unambiguous as the current one's
    date = spec.study_date - _dt.timedelta(days=int(rng.integers(180, 900)))
    secs = int(rng.integers(7 * 3600, 19 * 3600))
    return PriorSpec(index, float(ctr), date, f"{secs // 3600:02d}{secs // 60 % 60:02d}{secs % 60:02d}")


def radiograph_for_prior(seed: int, index: int) -> tuple[np.ndarray, dict]:
    """Pixels and phantom parameters of the prior of case `index` (which must have one)."""
    prior = prior_spec(seed, index)
    if prior is None:
        raise ValueError(f"case {index} has no prior")
    female = case_spec(seed, index).female
    return make_chest_radiograph(np.random.default_rng([seed, index, 7]), prior.target_ctr, female=female)


def _patient(seed: int, index: int, female: bool, age: int, date: _dt.date) -> dict:
    rng = np.random.default_rng([seed, index, 4])
    given = (_GIVEN_F if female else _GIVEN_M)[int(rng.integers(0, 12))]
    family = _FAMILY[int(rng.integers(0, len(_FAMILY)))]
    birth = date - _dt.timedelta(days=int(age * 365.25 + rng.integers(0, 360)))
    return {
        "name": f"{family}^{given}",
        "id": f"PAT{index + 1:04d}",
        "birth_date": birth.strftime("%Y%m%d"),
        "sex": "F" if female else "M",
        "age": f"{age:03d}Y",
        "kvp": round(float(rng.uniform(110, 125)), 1),
        "exposure_ms": int(rng.integers(4, 20)),
        "ma": int(rng.integers(200, 500)),
    }


def _study(seed: int, index: int, date: _dt.date, time_: str, description: str) -> dict:
    return {
        "uid": demo_uid("medview-demo", seed, index, "study"),
        "date": date.strftime("%Y%m%d"),
        "time": time_,
        "id": f"{index + 1}",
        "accession": f"A{seed % 10000:04d}{index + 1:05d}",
        "description": description,
    }


def prepare_output(out: Path) -> None:
    """Make OUT usable: new, empty, or a previous demo output (whose entries are removed).

    Anything else is refused with UsageError: demo-data never overwrites a folder it did not write.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    if not out.exists():
        make_output_folder(out, f"{out}: folder")
        return
    try:
        entries = list(out.iterdir())
    except OSError as exc:
        raise UsageError(f"{out}: folder cannot be read ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"{out}: folder is not writable")
    if not entries:
        return
    markers = [out / name for name in (MARKER, _PARTIAL) if (out / name).is_file()]
    if not markers:
        raise UsageError(f"{out}: folder is not empty and holds no earlier demo data; choose a new or empty folder")
    owned: set[str] = set()
    for marker in markers:
        try:
            owned.update(str(e) for e in json.loads(marker.read_text(encoding="utf-8"))["entries"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(
                f"{out}: the demo marker {marker.name} is unreadable; choose a new or empty folder") from None
    for name in sorted(owned):
        p = out / Path(name).name  # only direct children, whatever the marker says
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    for marker in markers:
        marker.unlink(missing_ok=True)


def _write_marker(path: Path, seed: int, cases: int, ct_slices: int, entries: list[str]) -> None:
    path.write_text(json.dumps({"generator": "medview demo-data", "seed": seed, "cases": cases,
                                "ct_slices": ct_slices, "entries": entries}, indent=1), encoding="utf-8")


def generate_demo(out, cases: int = 20, seed: int = 0, ct_slices: int = 200, priors: bool = False) -> DemoSummary:
    """Write the demo studies under `out` (see module docstring); raises UsageError for an unusable OUT.

    `priors`: also an earlier radiograph for every third patient (what `demo-data` and `demo` write).
    """
    if cases < 0:
        raise UsageError("--cases must be 0 or more")
    if ct_slices < 0:
        raise UsageError("--ct-slices must be 0 or more")
    t0 = time.perf_counter()
    out = Path(out)
    prepare_output(out)
    planned = [f"PAT{i + 1:04d}" for i in range(cases + (1 if ct_slices else 0))]
    _write_marker(out / _PARTIAL, seed, cases, ct_slices, planned + ["ground_truth.csv", "phantom_params.csv"])
    summary = DemoSummary(out=out)
    entries: list[str] = []
    gt_rows, param_rows = [], []
    for i in range(cases):
        spec = case_spec(seed, i)
        pixels, params = radiograph_for_case(seed, i)
        patient = _patient(seed, i, spec.female, spec.age, spec.study_date)
        study = _study(seed, i, spec.study_date, spec.study_time, "XR CHEST PA")
        sop = demo_uid("medview-demo", seed, i, "image")
        rel = Path(patient["id"], "ST01", "SE01", "IM0001.dcm")
        path = write_radiograph(
            out / rel, pixels, modality=spec.modality, pixel_spacing=params["pixel_spacing"], patient=patient,
            study=study, series_uid=demo_uid("medview-demo", seed, i, "series"), sop_uid=sop,
        )
        entries.append(patient["id"])
        summary.radiographs.append(path)
        summary.labels.append(params["label"])
        gt_rows.append([study["uid"], sop, FINDING, params["label"], params["ctr"]])
        param_rows.append(_param_row(patient["id"], rel, sop, spec.modality, params))
        prior = prior_spec(seed, i) if priors else None
        if prior is not None:
            path, row, truth = _write_prior(out, seed, prior, spec, patient)
            summary.priors.append(path)
            summary.prior_labels.append(row[5])
            gt_rows.append(truth)
            param_rows.append(row)
    if ct_slices:
        pid = f"PAT{cases + 1:04d}"
        entries.append(pid)
        summary.ct_files, summary.localizer = _write_ct_study(out / pid / "ST01", ct_slices, seed, cases, pid)
    summary.ground_truth = out / "ground_truth.csv"
    with summary.ground_truth.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["study_uid", "sop_instance_uid", "finding", "label", "ctr"])
        w.writerows(gt_rows)
    summary.phantom_params = out / "phantom_params.csv"
    with summary.phantom_params.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["patient_id", "file", "sop_instance_uid", "modality", "ctr", "label", "heart_width_mm",
                    "thoracic_width_mm", "rows", "cols", "pixel_spacing", "female", "rotation_deg"])
        w.writerows(param_rows)
    entries += ["ground_truth.csv", "phantom_params.csv"]
    _write_marker(out / MARKER, seed, cases, ct_slices, entries)
    (out / _PARTIAL).unlink()
    summary.seconds = time.perf_counter() - t0
    return summary


write_demo_data = generate_demo  # the name `medview self-test` calls it by


def _param_row(patient_id: str, rel: Path, sop: str, modality: str, params: dict) -> list:
    """One line of phantom_params.csv."""
    return [patient_id, rel.as_posix(), sop, modality, params["ctr"], params["label"], params["heart_width_mm"],
            params["thoracic_width_mm"], params["rows"], params["cols"], params["pixel_spacing"],
            int(params["female"]), params["rotation_deg"]]


def _write_prior(out: Path, seed: int, prior: PriorSpec, spec: CaseSpec, patient: dict) -> tuple[Path, list, list]:
    """The prior radiograph of one patient as ST02 (same patient, same modality, earlier date); returns its
    path, its phantom_params row and its ground_truth row."""
    i = prior.index
    pixels, params = radiograph_for_prior(seed, i)
    years = (spec.study_date - prior.study_date).days // 365
    patient = dict(patient, age=f"{max(spec.age - years, 0):03d}Y")
    study = _study(seed, i, prior.study_date, prior.study_time, "XR CHEST PA")
    study.update(uid=demo_uid("medview-demo", seed, i, "prior", "study"), id=f"{i + 1}P",
                 accession=f"A{seed % 10000:04d}{i + 1:05d}P")
    sop = demo_uid("medview-demo", seed, i, "prior", "image")
    rel = Path(patient["id"], "ST02", "SE01", "IM0001.dcm")
    path = write_radiograph(
        out / rel, pixels, modality=spec.modality, pixel_spacing=params["pixel_spacing"], patient=patient,
        study=study, series_uid=demo_uid("medview-demo", seed, i, "prior", "series"), sop_uid=sop,
    )
    truth = [study["uid"], sop, FINDING, params["label"], params["ctr"]]
    return path, _param_row(patient["id"], rel, sop, spec.modality, params), truth


def _ct_geometry(slices: int, rows: int = 512, cols: int = 512) -> CTGeometry:
    """About 300 mm of chest whatever the count (0.5 mm at least, 5 mm at most between slices)."""
    return CTGeometry(slices=slices, rows=rows, cols=cols,
                      slice_spacing=round(min(max(300.0 / max(slices, 1), 0.5), 5.0), 4))


def _write_ct_study(study_dir: Path, n: int, seed: int, index: int, pid: str,
                    rows: int = 512, cols: int = 512, localizer: bool = True):
    """Axial series (SE02) and, optionally, its topogram (SE01) of one contrast chest CT study."""
    rng = np.random.default_rng([seed, index, 5])
    female = bool(rng.random() < 0.5)
    age = int(rng.integers(35, 85))
    date = _dt.date(2024, 1, 2) + _dt.timedelta(days=int(rng.integers(0, 700)))
    patient = _patient(seed, index, female, age, date)
    patient["id"] = pid
    study = _study(seed, index, date, "101500", "CT CHEST WITH CONTRAST")
    geo = _ct_geometry(n, rows, cols)
    phantom = ChestCTPhantom(geo, seed)
    root = ("medview-demo", seed, index)
    frame_uid = demo_uid(*root, "frame")
    projection = np.zeros((n, cols), np.float32)

    def slices():
        for i in range(n):
            hu = phantom.slice_hu(i)
            if localizer:
                projection[i] = np.clip(hu + 1000, 0, None).sum(axis=0) * geo.pixel_spacing
            yield i, hu

    ct = write_ct_slices(study_dir / "SE02", slices(), n_slices=n, pixel_spacing=geo.pixel_spacing,
                         slice_spacing=geo.slice_spacing, patient=patient, study=study,
                         series_uid=demo_uid(*root, "series", 2), uid_root=root, frame_uid=frame_uid)
    loc = None
    if localizer:
        # square pixels: resample the z axis (slice spacing) to the in-plane spacing
        out_rows = max(int(round(n * geo.slice_spacing / geo.pixel_spacing)), 1)
        zi = np.clip((np.arange(out_rows) + 0.5) * geo.pixel_spacing / geo.slice_spacing - 0.5, 0, n - 1)
        z0 = np.floor(zi).astype(int)
        z1 = np.minimum(z0 + 1, n - 1)
        w = (zi - z0)[:, None].astype(np.float32)
        img = projection[z0] * (1 - w) + projection[z1] * w
        img = img / 1000.0  # mm of water equivalent
        img = np.clip(img / max(float(img.max()), 1.0), 0, 1) ** 0.8 * (MAX_STORED - 200) + 100
        loc = write_ct_localizer(
            study_dir / "SE01" / "IM0001.dcm", img, pixel_spacing=geo.pixel_spacing, top_z=0.0,
            left_x=-(cols - 1) / 2 * geo.pixel_spacing, patient=patient, study=study,
            series_uid=demo_uid(*root, "series", 1), sop_uid=demo_uid(*root, "localizer"), frame_uid=frame_uid,
        )
    return ct, loc


def write_ct_series(out_dir, slices: int, *, rows: int = 512, cols: int = 512, seed: int = 0) -> list[Path]:
    """One axial chest CT series of `slices` images straight into `out_dir` (IM0001.dcm ...), for benchmarks.

    Same phantom as the demo CT; positions step by the slice spacing along -z, so loaders can check order.
    """
    if slices < 1:
        raise ValueError("slices must be at least 1")
    out_dir = Path(out_dir)
    rng_index = 100000 + slices
    n = slices
    geo = _ct_geometry(n, rows, cols)
    phantom = ChestCTPhantom(geo, seed)
    patient = _patient(seed, rng_index, False, 60, _dt.date(2025, 1, 2))
    patient["id"] = f"BENCH{slices}"
    study = _study(seed, rng_index, _dt.date(2025, 1, 2), "120000", "CT CHEST BENCHMARK")
    root = ("medview-bench", seed, slices, rows, cols)
    return write_ct_slices(out_dir, ((i, phantom.slice_hu(i)) for i in range(n)), n_slices=n,
                           pixel_spacing=geo.pixel_spacing, slice_spacing=geo.slice_spacing, patient=patient,
                           study=study, series_uid=demo_uid(*root, "series"), uid_root=root, series_number=1)
