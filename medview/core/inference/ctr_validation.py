"""Validation of the cardiothoracic-ratio model on files, the way `medview infer` sees them.

Each case is written as a Part-10 CR (MONOCHROME1) or DX (MONOCHROME2) file at its generator's full size, read
back and scored by the engine through the display pipeline; out-of-scope images are written with a silent
header (no body part, no view), so only their pixels can refuse them. Used by scripts/train_ctr_model.py
for the bundle's validation.json and by the tests on fresh seeds.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from medview.core.inference import metrics
from medview.core.inference.results import NotApplicable, Prediction

PATIENT = {"name": "PHANTOM^VALIDATION", "id": "PHANTOM", "birth_date": "19700101", "sex": "O", "age": "050Y",
           "kvp": 120, "exposure_ms": 10, "ma": 200}


@dataclass
class Case:
    dataset: pydicom.Dataset
    label: int          # 1: CTR at or above 0.5; -1: out of scope
    ctr: float          # true CTR (nan out of scope)
    kind: str           # family, or the out-of-scope kind


def _write(folder: Path, name: str, pixels: np.ndarray, spacing: float, modality: str, *, silent: bool,
           keep: bool = False) -> pydicom.Dataset:
    from medview.core.demo.writer import demo_uid, write_radiograph

    study = {"uid": demo_uid("val", name), "date": "20240101", "time": "120000", "id": "1", "accession": "V1",
             "description": "CHEST" if not silent else ""}
    path = write_radiograph(folder / f"{name}.dcm", pixels, modality=modality, pixel_spacing=spacing,
                            patient=PATIENT, study=study, series_uid=demo_uid("val", name, "series"),
                            sop_uid=demo_uid("val", name, "sop"))
    ds = pydicom.dcmread(path)
    if silent:
        for keyword in ("BodyPartExamined", "ViewPosition", "SeriesDescription", "StudyDescription",
                        "AnatomicRegionSequence", "PatientOrientation"):
            if keyword in ds:
                delattr(ds, keyword)
    if keep:
        ds.save_as(path)
    else:
        path.unlink()
    return ds


def _kept(folder: Path | None, name: str) -> tuple[pydicom.Dataset, dict] | None:
    """A case written earlier into `folder` with its truth beside it (the script re-validates on the same
    files without drawing them again)."""
    if folder is None or not (folder / f"{name}.dcm").exists():
        return None
    truth = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    return pydicom.dcmread(folder / f"{name}.dcm"), truth


def _keep_truth(folder: Path | None, name: str, truth: dict) -> None:
    if folder is not None:
        (folder / f"{name}.json").write_text(json.dumps(truth), encoding="utf-8")


ELLIPSES = "ellipses"  # a third family, for validation only: no model is ever trained on it


def ellipse_chest(rng: np.random.Generator, cols: int | None = None) -> tuple[np.ndarray, float, float]:
    """A textbook-simple frontal chest drawn unlike both training families: elliptic lungs and heart on a
    flat body, a spine band, smooth noise; (uint16 pixels in MONOCHROME2 sense, true CTR, pixel spacing).
    The lungs' ellipses share a centre row, so the thorax is widest there; the heart is whole above the
    lungs' lower edge."""
    from medview.core.viewing.heatmap import resize_bilinear

    cols = cols or int(rng.integers(300, 900))
    rows = int(cols * rng.uniform(1.0, 1.25))
    spacing = float(rng.uniform(340, 440) / cols)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32) * np.float32(spacing)
    cx, cy = cols * spacing / 2 + rng.uniform(-15, 15), rows * spacing * rng.uniform(0.42, 0.5)
    lung_a, lung_b = rng.uniform(50, 70), rng.uniform(95, 130)
    gap = rng.uniform(20, 45)  # half the mediastinum between the lungs' inner edges
    thorax = 2 * (gap + 2 * lung_a)
    ctr = float(rng.uniform(0.38, 0.65))
    heart_a = ctr * thorax / 2
    heart_b = heart_a * rng.uniform(0.6, 0.85)
    hcx = cx + rng.uniform(0.05, 0.2) * heart_a
    hcy = cy + lung_b - heart_b * rng.uniform(1.05, 1.3)
    inside = lambda ex, ey, a, b: ((x - ex) / a) ** 2 + ((y - ey) / b) ** 2 <= 1  # noqa: E731
    body = inside(cx, cy + 40, thorax / 2 + rng.uniform(25, 60), rows * spacing * 0.7)
    lungs = inside(cx - gap - lung_a, cy, lung_a, lung_b) | inside(cx + gap + lung_a, cy, lung_a, lung_b)
    heart = inside(hcx, hcy, heart_a, heart_b)
    spine = (np.abs(x - cx) < rng.uniform(12, 20)) & body
    img = 0.6 * body + 0.25 * spine - 0.45 * (lungs & ~heart) + 0.15 * heart
    smooth = resize_bilinear(rng.standard_normal((rows // 16 + 2, cols // 16 + 2)).astype(np.float32), (rows, cols))
    img = img + 0.03 * smooth + rng.uniform(0.005, 0.02) * rng.standard_normal(img.shape)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 3800 + 100).astype(np.uint16), ctr, round(spacing, 5)


def chest_cases(family: str, seed: int, n: int, *, cols: int | None = None, keep_in: Path | None = None
                ) -> list[Case]:
    """n frontal chests of a family (fresh for any seed training did not use), as read-back files; with
    `keep_in` the files and their truth stay in that folder and are read from it next time."""
    from medview.core.inference.ctr_training import phantom

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            name = f"{family}_{seed}_{i}_{cols or 0}"
            kept = _kept(keep_in, name)
            if kept is not None:
                cases.append(Case(kept[0], int(kept[1]["label"]), float(kept[1]["ctr"]), family))
                continue
            rng = np.random.default_rng([seed, i, 9])
            if family == ELLIPSES:
                pixels, ctr, spacing = ellipse_chest(np.random.default_rng([seed, i, 11]), cols)
            else:
                pixels, _masks, ctr, spacing = phantom(family, seed, i, cols=cols)
            modality = "CR" if rng.random() < 0.5 else "DX"
            ds = _write(keep_in or Path(tmp), name, pixels, spacing, modality, silent=False, keep=keep_in is not None)
            _keep_truth(keep_in, name, {"label": int(ctr >= 0.5), "ctr": float(ctr)})
            cases.append(Case(ds, int(ctr >= 0.5), float(ctr), family))
    return cases


def out_of_scope_cases(seed: int, per_kind: int, *, cols: int | None = None, keep_in: Path | None = None
                       ) -> list[Case]:
    """Images of every out-of-scope kind with a silent header (DX, no body part or view)."""
    from medview.core.demo.outline_phantoms import OUT_OF_SCOPE_KINDS, out_of_scope

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in OUT_OF_SCOPE_KINDS:
            for i in range(per_kind):
                name = f"{kind}_{seed}_{i}_{cols or 0}"
                kept = _kept(keep_in, name)
                if kept is not None:
                    cases.append(Case(kept[0], -1, float("nan"), kind))
                    continue
                rng = np.random.default_rng([seed, i, OUT_OF_SCOPE_KINDS.index(kind), 10])
                pixels = out_of_scope(rng, kind, cols=cols or int(rng.integers(256, 900)))
                spacing = float(rng.uniform(0.15, 0.5))
                ds = _write(keep_in or Path(tmp), name, pixels, spacing, "DX", silent=True, keep=keep_in is not None)
                _keep_truth(keep_in, name, {"kind": kind})
                cases.append(Case(ds, -1, float("nan"), kind))
    return cases


def run(engine, cases: list[Case]) -> list[Prediction | NotApplicable | str]:
    return engine.predict_datasets([(c.dataset, 0) for c in cases])


def chest_figures(cases: list[Case], outcomes: list, threshold: float, finding: str = "cardiomegaly") -> dict:
    """AUC, sensitivity/specificity at the threshold, ECE, CTR mean absolute error, and how many frontal
    chests were refused (each refused chest counts as a score of 0 for the AUC, so a refusal is never free)."""
    labels = np.array([c.label for c in cases])
    truth = np.array([c.ctr for c in cases])
    scores = np.zeros(len(cases))
    measured = np.full(len(cases), np.nan)
    refused = []
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, Prediction):
            scores[i] = outcome.scores[finding]
            measured[i] = outcome.measurements["cardiothoracic_ratio"]["value"]
        else:
            refused.append(outcome.reason if isinstance(outcome, NotApplicable) else str(outcome))
    figures = metrics.summary(scores, labels, threshold)
    ok = ~np.isnan(measured)
    figures["ctr_mae"] = float(np.mean(np.abs(measured[ok] - truth[ok]))) if ok.any() else float("nan")
    figures["ctr_bias"] = float(np.mean(measured[ok] - truth[ok])) if ok.any() else float("nan")
    figures["refused"] = len(refused)
    figures["refusal_reasons"] = sorted(set(refused))
    figures["cases"] = {"labels": labels.tolist(), "ctr": [round(float(v), 5) for v in truth],
                        "measured": [None if np.isnan(v) else round(float(v), 5) for v in measured],
                        "scores": [round(float(s), 6) for s in scores]}
    return figures


def refusal_figures(cases: list[Case], outcomes: list) -> dict:
    """Per out-of-scope kind: how many were answered (should be none)."""
    by_kind: dict[str, dict] = {}
    for case, outcome in zip(cases, outcomes):
        entry = by_kind.setdefault(case.kind, {"n": 0, "answered": 0})
        entry["n"] += 1
        entry["answered"] += int(isinstance(outcome, Prediction))
    return {"n": len(cases), "answered": sum(e["answered"] for e in by_kind.values()), "by_kind": by_kind}
