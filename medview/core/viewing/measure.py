"""Measurement geometry in image pixel coordinates (x = column, y = row), calibrated honestly.

Pixel Spacing gives mm in the patient. Projection radiographs often carry only Imager Pixel Spacing: that is
mm at the detector, larger than the patient by the geometric magnification, so the result says so. With no
spacing at all the result stays in pixels. Measurements are kept per image while a case is open.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

# Points are given as pixel indices (0 the centre of the first pixel); DICOM image coordinates (PS3.3
# C.18.6.1.2) and the viewer's image item both put a pixel's centre at index + 0.5.
PIXEL_CENTRE = 0.5
PROJECTION_MODALITIES = {"CR", "DX", "MG", "RF", "XA", "IO", "PX", "RG", "DF"}


@dataclass(frozen=True)
class Calibration:
    """(row, column) spacing in mm, or None; `note` says where it came from when it needs saying."""

    spacing: tuple[float, float] | None
    note: str = ""

    @property
    def unit(self) -> str:
        return "mm" if self.spacing else "px"


def calibration_for(
    modality: str,
    pixel_spacing: tuple[float, float] | None,
    imager_pixel_spacing: tuple[float, float] | None,
) -> Calibration:
    """Pixel Spacing first; Imager Pixel Spacing for projection images (at the detector); else pixels."""
    if pixel_spacing and all(s > 0 for s in pixel_spacing):
        return Calibration(tuple(float(s) for s in pixel_spacing))
    if imager_pixel_spacing and all(s > 0 for s in imager_pixel_spacing):
        if (modality or "").upper() in PROJECTION_MODALITIES:
            return Calibration(
                tuple(float(s) for s in imager_pixel_spacing),
                "at detector (Imager Pixel Spacing), magnification not corrected",
            )
    return Calibration(None, "no pixel spacing: calibrated?")


def distance(p0: tuple[float, float], p1: tuple[float, float], cal: Calibration) -> float:
    """Length between two points (x, y) in pixels, in mm where calibrated, else in pixels."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    if cal.spacing:
        row, col = cal.spacing
        return math.hypot(dx * col, dy * row)
    return math.hypot(dx, dy)


def format_distance(value: float, cal: Calibration) -> str:
    text = f"{value:.1f} {cal.unit}"
    if cal.spacing is None:
        return f"{value:.1f} px (calibrated?)"
    if cal.note:
        return f"{text} (detector)"
    return text


def ellipse_mask(shape: tuple[int, int], x: float, y: float, w: float, h: float) -> np.ndarray:
    """Pixels whose centres lie inside the ellipse in the box (x, y, w, h) (pixel units, x = column)."""
    rows, cols = shape
    if w <= 0 or h <= 0:
        return np.zeros(shape, dtype=bool)
    cx, cy, rx, ry = x + w / 2.0, y + h / 2.0, w / 2.0, h / 2.0
    yy = (np.arange(rows, dtype=np.float64) + 0.5 - cy) / ry
    xx = (np.arange(cols, dtype=np.float64) + 0.5 - cx) / rx
    return (yy[:, None] ** 2 + xx[None, :] ** 2) <= 1.0


@dataclass(frozen=True)
class RoiStats:
    mean: float
    sd: float
    min: float
    max: float
    pixels: int
    area: float  # mm² when calibrated, else px²
    area_unit: str


def ellipse_stats(values: np.ndarray, box: tuple[float, float, float, float], cal: Calibration) -> RoiStats | None:
    """Mean, SD, min, max (modality units) and area of the ellipse in `box`; None when it holds no pixel."""
    mask = ellipse_mask(values.shape[:2], *box)
    inside = values[mask]
    if inside.dtype.kind == "f":  # a reformatted plane has no value in a gap or outside the volume
        inside = inside[np.isfinite(inside)]
    if inside.size == 0:
        return None
    inside = inside.astype(np.float64)
    x, y, w, h = box
    if cal.spacing:
        area, unit = math.pi * (w * cal.spacing[1] / 2) * (h * cal.spacing[0] / 2), "mm²"
    else:
        area, unit = math.pi * (w / 2) * (h / 2), "px²"
    return RoiStats(
        float(inside.mean()), float(inside.std()), float(inside.min()), float(inside.max()), int(inside.size), area, unit
    )


def format_stats(stats: RoiStats | None, units: str) -> str:
    if stats is None:
        return "empty ROI"
    u = f" {units}" if units else ""
    return (
        f"mean {stats.mean:.1f}{u}  SD {stats.sd:.1f}\n"
        f"min {stats.min:.0f}  max {stats.max:.0f}  area {stats.area:.1f} {stats.area_unit}"
    )


_ids = itertools.count(1)


@dataclass
class Measurement:
    """A distance (two points) or an ellipse ROI (box x, y, w, h) in image pixel coordinates."""

    kind: str  # "distance" | "ellipse"
    points: tuple[float, ...]
    id: int = field(default_factory=lambda: next(_ids))


class MeasurementStore:
    """Measurements per image (stack key, frame) while a case is open; cleared when another case opens."""

    def __init__(self) -> None:
        self._items: dict[tuple, list[Measurement]] = {}

    def on(self, image_key: tuple) -> list[Measurement]:
        return list(self._items.get(image_key, []))

    def add(self, image_key: tuple, m: Measurement) -> Measurement:
        self._items.setdefault(image_key, []).append(m)
        return m

    def update(self, image_key: tuple, m_id: int, points: tuple[float, ...]) -> None:
        for m in self._items.get(image_key, []):
            if m.id == m_id:
                m.points = tuple(points)

    def remove(self, image_key: tuple, m_id: int) -> bool:
        items = self._items.get(image_key, [])
        kept = [m for m in items if m.id != m_id]
        self._items[image_key] = kept
        return len(kept) != len(items)

    def clear(self) -> None:
        self._items.clear()

    def count(self) -> int:
        return sum(len(v) for v in self._items.values())
