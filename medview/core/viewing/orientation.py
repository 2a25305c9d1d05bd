"""What the edges of a view point at in the patient, how long a scale bar is, and the patient's age and sex as
the corner text says them.

Orientation comes from Image Orientation (Patient) (row and column cosines in DICOM's LPS patient axes) or,
for projection radiographs, from Patient Orientation ("L", "F": the row runs to the patient's left, the column
to the feet). The view's rotation (quarter turns clockwise) and horizontal flip move the letters with the image,
as the image view applies them: the image is turned first, then mirrored.
"""

from __future__ import annotations

import math
from typing import Sequence

from medview.core.dicom.readable import parse_date

Vector = tuple[float, float, float]

# DICOM patient axes (LPS): +x to the patient's left, +y to posterior, +z to the head
_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))
_AXIS_OF = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "H": (2, 1.0), "F": (2, -1.0)}
OBLIQUE = 0.25  # a component at least this large (about 15°) adds its letter: "LA" for an oblique row
EDGES = ("left", "right", "top", "bottom")
SCALE_STEPS = (1.0, 2.0, 5.0)
SEXES = {"M": "Male", "F": "Female", "O": "Other sex"}
AGE_UNITS = {"Y": "y", "M": "mo", "W": "wk", "D": "d"}


def direction_letters(vector: Sequence[float]) -> str:
    """The patient direction of a vector as letters, the largest component first ("L", "LA", "FLP"); ""
    for a zero vector."""
    size = math.sqrt(sum(c * c for c in vector))
    if size == 0:
        return ""
    parts = sorted(((abs(c) / size, axis, c) for axis, c in enumerate(vector)), reverse=True)
    letters = [_LETTERS[axis][c > 0] for share, axis, c in parts if share >= OBLIQUE or share == parts[0][0]]
    return "".join(letters[:3])


def patient_orientation_vectors(values: Sequence[str]) -> tuple[Vector, Vector] | None:
    """Row and column directions from Patient Orientation (0020,0020), e.g. ["L", "F"] or ["A", "FR"]: each
    letter after the first weighs half the one before, so the order of the letters is kept. None when the value
    is missing or not two sets of patient letters."""
    if values is None or isinstance(values, str) or len(values) != 2:
        return None
    out = []
    for value in values:
        text = str(value).strip().upper()
        if not text or any(ch not in _AXIS_OF for ch in text):
            return None
        v = [0.0, 0.0, 0.0]
        for k, ch in enumerate(text):
            axis, sign = _AXIS_OF[ch]
            v[axis] += sign * 0.5 ** k
        out.append(tuple(v))
    return out[0], out[1]  # type: ignore[return-value]


def image_orientation_vectors(values: Sequence[float] | None) -> tuple[Vector, Vector] | None:
    """Row and column cosines from Image Orientation (Patient), or None when missing or degenerate."""
    if values is None or len(values) != 6:
        return None
    try:
        row, col = tuple(float(v) for v in values[:3]), tuple(float(v) for v in values[3:])
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in row + col) or not any(row) or not any(col):
        return None
    return row, col  # type: ignore[return-value]


def _screen_to_image(dx: float, dy: float, rotation: int, flip: bool) -> tuple[float, float]:
    """The image direction (along a row, along a column) that ends up pointing along screen direction (dx, dy)
    after turning by `rotation` quarter turns clockwise and then mirroring left-right when `flip`."""
    if flip:
        dx = -dx
    for _ in range(rotation % 4):  # undo one clockwise quarter turn (y points down): (x, y) -> (y, -x)
        dx, dy = dy, -dx
    return dx, dy


def edge_markers(row: Vector, col: Vector, rotation: int = 0, flip: bool = False) -> dict[str, str]:
    """The patient direction at each edge of the view ({"left", "right", "top", "bottom"} -> letters)."""
    out = {}
    for edge, (sx, sy) in {"right": (1, 0), "left": (-1, 0), "bottom": (0, 1), "top": (0, -1)}.items():
        u, v = _screen_to_image(sx, sy, rotation, flip)
        out[edge] = direction_letters(tuple(u * r + v * c for r, c in zip(row, col)))
    return out


def scale_bar(mm_per_pixel: float, max_pixels: float, min_pixels: float = 24.0) -> tuple[float, float] | None:
    """(length in mm, length in screen pixels) of the longest 1, 2 or 5 × 10ⁿ mm bar that fits `max_pixels`;
    None when the pixel size is unknown or no such bar is at least `min_pixels` long."""
    if not mm_per_pixel or not math.isfinite(mm_per_pixel) or mm_per_pixel <= 0 or max_pixels <= 0:
        return None
    room = max_pixels * mm_per_pixel
    exponent = math.floor(math.log10(room))
    best = max((step * 10.0 ** e for e in (exponent - 1, exponent) for step in SCALE_STEPS
                if step * 10.0 ** e <= room * (1 + 1e-9)), default=None)
    if best is None or best / mm_per_pixel < min_pixels:
        return None
    return best, best / mm_per_pixel


def length_text(mm: float) -> str:
    """A scale bar's length as a reader says it: "5 mm", "2 cm", "10 cm"."""
    if mm < 10:
        return f"{mm:g} mm"
    return f"{mm / 10:g} cm"


def age_text(age: str, birth_date: str = "", study_date: str = "") -> str:
    """Patient Age ("054Y", "006M") as "54 y", "6 mo"; without one, whole years from the birth date to the
    study date; "" when neither tells."""
    value = (age or "").strip().upper()
    if len(value) == 4 and value[:3].isdigit() and value[3] in AGE_UNITS:
        return f"{int(value[:3])} {AGE_UNITS[value[3]]}"
    born, seen = parse_date(birth_date), parse_date(study_date)
    if born is None or seen is None or seen < born:
        return ""
    years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    return f"{years} y"


def age_sex_text(age: str, sex: str, birth_date: str = "", study_date: str = "") -> str:
    """"Female, 54 y" for the corner text; either part alone where only one is known."""
    parts = [SEXES.get((sex or "").strip().upper(), ""), age_text(age, birth_date, study_date)]
    return ", ".join(p for p in parts if p)
