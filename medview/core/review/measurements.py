"""Measurements a model makes on an image and the reader's corrections of them, as plain values.

The cardiothoracic ratio (CTR) is the heart's widest horizontal extent over the thorax's inner width on a
frontal chest radiograph. The model (and a reader who drags the line ends) gives each extent as a line of two
points [column, row] in the source image's pixels; only the horizontal extents count, so a line drawn a
little askew measures what the reader meant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medview.core.errors import ReviewStoreError

CTR = "cardiothoracic_ratio"
LINES = ("heart", "thorax")  # the two lines of a CTR, in the order exports write them
MEASURED_FINDING = {CTR: "cardiomegaly"}  # the AI finding a measurement quantifies


def check_line(points, what: str) -> list[list[float]]:
    """Two finite [column, row] points as floats; anything else is refused in words."""
    try:
        line = [[float(c), float(r)] for c, r in points]
    except (TypeError, ValueError):
        line = []
    if len(line) != 2 or not all(math.isfinite(v) for p in line for v in p):
        raise ReviewStoreError(f"the {what} line needs two points [column, row] in image pixels")
    return line


def cardiothoracic_ratio(heart, thorax) -> float:
    """|heart dx| / |thorax dx|: the ratio of the two lines' horizontal extents."""
    heart, thorax = check_line(heart, "heart"), check_line(thorax, "thorax")
    width = abs(thorax[1][0] - thorax[0][0])
    if width == 0:
        raise ReviewStoreError("the thorax line has no horizontal extent: the ratio is undefined")
    return abs(heart[1][0] - heart[0][0]) / width


@dataclass(frozen=True)
class ImageMeasurement:
    """One named measurement on one image: the model's (as it sent it) and the reader's correction, if any."""

    sop_instance_uid: str
    frame: int
    name: str
    model: dict | None = None
    corrected: dict | None = None

    @property
    def value(self) -> float | None:
        """What the review stands by: the corrected value where the reader corrected it."""
        chosen = self.corrected or self.model or {}
        return None if chosen.get("value") is None else float(chosen["value"])

    @property
    def finding(self) -> str | None:
        return MEASURED_FINDING.get(self.name)


def image_measurements(predictions: dict, corrections) -> list[ImageMeasurement]:
    """The model's measurements per image ({(sop, frame): prediction with `measurements`}) joined with the
    reader's corrections (objects with sop_instance_uid, frame, name and `as_dict()`), one entry per
    (image, name), in image then name order."""
    found: dict[tuple[str, int, str], dict] = {}
    for (sop, frame), prediction in predictions.items():
        for name, measured in (getattr(prediction, "measurements", None) or {}).items():
            if isinstance(measured, dict):
                found.setdefault((sop, int(frame), name), {})["model"] = measured
    for c in corrections:
        found.setdefault((c.sop_instance_uid, int(c.frame), c.name), {})["corrected"] = c.as_dict()
    return [ImageMeasurement(sop, frame, name, **parts) for (sop, frame, name), parts in sorted(found.items())]
