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


POLYGONS = "polygons"  # a fourth family, for validation only: straight-edged drawing no model is trained on


def _inside_polygon(x: np.ndarray, y: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd test of the pixel centres (x [1, W], y [H, 1]) against a closed polygon."""
    inside = np.zeros(np.broadcast_shapes(x.shape, y.shape), bool)
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        if y0 == y1:
            continue
        crosses = (y0 > y) != (y1 > y)
        at = (x1 - x0) * (y - y0) / (y1 - y0) + x0
        inside ^= crosses & (x < at)
    return inside


def polygon_chest(rng: np.random.Generator, cols: int | None = None) -> tuple[np.ndarray, float, float]:
    """A frontal chest drawn with straight edges, unlike every training family: lungs as jittered pentagons
    (apex, shoulder, costophrenic angle, inner base, hilum), the heart as a jittered polygon painted half
    transparently over them, a flat body, quantised grey values and salt noise; (uint16 pixels in
    MONOCHROME2 sense, true CTR, pixel spacing). Truth on the drawing at four times the resolution across."""
    from medview.core.demo.shape_phantoms import horizontal_extent, widest_row

    cols = cols or int(rng.integers(280, 860))
    rows = int(cols * rng.uniform(1.0, 1.3))
    spacing = float(rng.uniform(330, 450) / cols)
    over = 4
    xs = (np.arange(cols * over, dtype=np.float32) + 0.5)[None, :] * np.float32(spacing / over)
    ys = (np.arange(rows, dtype=np.float32) + 0.5)[:, None] * np.float32(spacing)
    width, height = cols * spacing, rows * spacing
    cx = width * rng.uniform(0.45, 0.55)
    half = width * rng.uniform(0.28, 0.42)         # the thorax's outer half-width
    top, base = height * rng.uniform(0.1, 0.22), height * rng.uniform(0.6, 0.78)
    lungs = np.zeros((rows, cols * over), bool)
    for side in (-1, 1):
        j = lambda s: rng.uniform(-s, s)  # noqa: E731
        inner = rng.uniform(0.08, 0.2) * half
        pts = [(cx + side * (inner + j(5)), top + j(8)),                      # apex
               (cx + side * (half * rng.uniform(0.75, 0.9)), top + rng.uniform(15, 40)),   # shoulder
               (cx + side * half, base - rng.uniform(0, 30)),                   # lateral, widest
               (cx + side * (half * rng.uniform(0.7, 0.95)), base + rng.uniform(0, 25)),   # costophrenic angle
               (cx + side * (inner + j(6)), base - rng.uniform(0, 40))]          # inner base
        lungs |= _inside_polygon(xs, ys, pts)
    thorax = widest_row(lungs)
    ctr = float(rng.uniform(0.36, 0.66))
    n = int(rng.integers(7, 13))
    step = 2 * np.pi / n  # vertices spread all round, so the heart is a blob, not a sliver
    angles = np.arange(n) * step + rng.uniform(-0.35, 0.35, n) * step
    radii = rng.uniform(0.8, 1.15, n)
    hx, hy = cx + rng.uniform(0.02, 0.12) * half, base - rng.uniform(0.12, 0.25) * (base - top)
    shape = [(float(np.cos(a) * r), float(np.sin(a) * r * rng.uniform(0.6, 0.85))) for a, r in zip(angles, radii)]
    span = max(p[0] for p in shape) - min(p[0] for p in shape)
    scale = ctr * thorax * spacing / over / span
    heart = _inside_polygon(xs, ys, [(hx + px * scale, hy + py * scale) for px, py in shape])
    lungs &= ~heart
    true = horizontal_extent(heart) / widest_row(lungs)

    def down(mask):
        return mask.reshape(rows, cols, over).mean(axis=2, dtype=np.float32)

    xg, yg = (np.arange(cols, dtype=np.float32)[None, :] + 0.5) * np.float32(spacing), ys
    body = ((np.abs(xg - np.float32(cx)) < np.float32(half + rng.uniform(10, 60))) & (yg > np.float32(top - 30))
            ).astype(np.float32)
    lung_level, heart_level = rng.uniform(0.1, 0.35), rng.uniform(0.55, 0.9)
    img = np.float32(rng.uniform(0.0, 0.1)) + body * np.float32(rng.uniform(0.55, 0.8))
    lf, hf = down(lungs), down(heart)
    img = img * (1 - lf) + lf * np.float32(lung_level)
    alpha = np.float32(rng.uniform(0.5, 0.9))
    img = img * (1 - hf * alpha) + hf * alpha * np.float32(heart_level)
    levels = int(rng.integers(24, 200))
    img = np.round(img * levels) / levels   # coarse grey levels
    salt = rng.random(img.shape) < rng.uniform(0.0, 0.01)
    img = np.where(salt, rng.random(img.shape), img) + rng.uniform(0.0, 0.03) * rng.standard_normal(img.shape)
    img = np.clip(img, 0, 1.2) / 1.2
    return (img * rng.uniform(1000, 4000) + rng.uniform(0, 200)).astype(np.uint16), true, round(spacing, 5)


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
            elif family == POLYGONS:
                pixels, ctr, spacing = polygon_chest(np.random.default_rng([seed, i, 12]), cols)
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
                        "scores": [float(s) for s in scores]}  # unrounded: rounding would tie steep scores
    return figures


def refusal_figures(cases: list[Case], outcomes: list) -> dict:
    """Per out-of-scope kind: how many were answered (should be none)."""
    by_kind: dict[str, dict] = {}
    for case, outcome in zip(cases, outcomes):
        entry = by_kind.setdefault(case.kind, {"n": 0, "answered": 0})
        entry["n"] += 1
        entry["answered"] += int(isinstance(outcome, Prediction))
    return {"n": len(cases), "answered": sum(e["answered"] for e in by_kind.values()), "by_kind": by_kind}
