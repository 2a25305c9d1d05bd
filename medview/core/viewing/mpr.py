"""Multiplanar reformatting: axial, coronal and sagittal planes, and slabs, through a patient point.

The geometry is each slice's own Image Position (Patient) with the stack's Image Orientation (Patient) and
Pixel Spacing (PS3.3 C.7.6.2.1.1), so uneven spacing, gantry tilt and oblique acquisitions come out exact; an
enhanced multi-frame image gives them per frame in its functional groups (C.7.6.16), read the same way.
Every output pixel's patient position is mapped back into the stack: along the slice normal it lies between
the two slices whose planes bracket it (linear weight by distance along the normal), and within each of those
two slices it is read at its own in-plane position (bilinear). A tilted stack, whose slices are shifted
in-plane one against the next, is so read where the point really is. A spacing more than `GAP_FACTOR` times
the median (a missing slice) stays a gap: NaN, shown as background, never stretched.

The sampler reads the loaded stack array of stored values as it is (no second copy of the volume) and returns
modality values (each slice's Modality LUT applied); `display_plane` sends them through the one display
pipeline (`pixels.display_stored`). Output pixels are square, at the series' finest spacing.

Orientation of the planes, as radiologists read them: axial seen from the feet (patient's right on the image
left, anterior at the top), coronal seen from the front (right on the left, head at the top), sagittal seen
from the patient's left (anterior on the left, head at the top).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Sequence

import numpy as np

from medview.core.dicom import pixels
from medview.core.dicom.model import Stack
from medview.core.errors import MedviewError

PLANES = ("axial", "coronal", "sagittal")
SLAB_MODES = ("mip", "minip", "avg")

#: A spacing between neighbouring slices larger than this times the median spacing is a gap.
GAP_FACTOR = 1.5

# (row direction, column direction) of each plane in DICOM patient coordinates (LPS): a row runs to
# increasing column index, a column to increasing row index.
PLANE_AXES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}

_SAME_POSITION_MM = 1e-3


class ReformatError(MedviewError):
    """A stack that cannot be reformatted (no geometry, colour, one slice) or a point outside it."""


@dataclass(frozen=True, eq=False)
class VolumeGeometry:
    """Where each slice of a loaded stack lies in the patient: the inverse map of the reformatter.

    Slices are those of the stack array used (`frame_index`), ordered by `offsets`, their positions along
    `normal` (row cosines x column cosines), strictly increasing.
    """

    frame_index: np.ndarray  # (K,) index into the stack array of each slice used
    positions: np.ndarray  # (K, 3) Image Position (Patient): centre of the slice's top-left pixel
    row_cosines: np.ndarray  # (3,) along a row (increasing column)
    column_cosines: np.ndarray  # (3,) along a column (increasing row)
    normal: np.ndarray  # (3,)
    row_spacing: float  # between rows, mm
    column_spacing: float  # between columns, mm
    rows: int
    columns: int
    offsets: np.ndarray  # (K,) positions . normal, mm
    slice_spacing: float  # median spacing between neighbouring slices, mm

    @property
    def finest_spacing(self) -> float:
        return float(min(self.row_spacing, self.column_spacing, self.slice_spacing))

    def corners(self) -> np.ndarray:
        """(4K, 3) patient positions of the corner pixel centres of every slice."""
        dr = self.column_cosines * self.row_spacing * (self.rows - 1)
        dc = self.row_cosines * self.column_spacing * (self.columns - 1)
        p = self.positions
        return np.concatenate([p, p + dc, p + dr, p + dr + dc])

    def center(self) -> np.ndarray:
        """The patient point in the middle of the volume: where a reformatted view starts."""
        c = self.corners()
        return (c.min(axis=0) + c.max(axis=0)) / 2

    def nearest_frame(self, point: Sequence[float]) -> int:
        """The frame of the stack array whose slice lies nearest to `point` along the normal: the acquired image
        at a crosshair."""
        s = float(np.asarray(point, dtype=np.float64) @ self.normal)
        return int(self.frame_index[np.argmin(np.abs(self.offsets - s))])

    def frame_centre(self, frame: int) -> np.ndarray | None:
        """The patient point in the middle of acquired frame `frame` (None: not one of the slices used)."""
        found = np.flatnonzero(self.frame_index == frame)
        if not found.size:
            return None
        return (self.positions[found[0]] + self.column_cosines * self.row_spacing * (self.rows - 1) / 2
                + self.row_cosines * self.column_spacing * (self.columns - 1) / 2)

    def gap_at(self, point: Sequence[float]) -> tuple[float, float] | None:
        """(start, end) offsets along the normal (mm) of the gap between slices `point` lies in, beyond the
        half spacing each slice keeps on either side; None where it lies on or next to a slice."""
        s = float(np.asarray(point, dtype=np.float64) @ self.normal)
        k = int(np.searchsorted(self.offsets, s))
        if not 0 < k < len(self.offsets):
            return None
        lo, hi = float(self.offsets[k - 1]), float(self.offsets[k])
        half = self.slice_spacing / 2
        if hi - lo <= GAP_FACTOR * self.slice_spacing or s - lo <= half or hi - s <= half:
            return None
        return lo, hi

    def contains(self, point: Sequence[float]) -> bool:
        """True when `point` (mm) is inside the volume's extent (a gap between slices counts as inside)."""
        p = np.asarray(point, dtype=np.float64)
        s = float(p @ self.normal)
        half = self.slice_spacing / 2
        if not self.offsets[0] - half <= s <= self.offsets[-1] + half:
            return False
        k = int(np.argmin(np.abs(self.offsets - s)))  # the nearest slice's in-plane extent
        d = p - self.positions[k]
        col = d @ self.row_cosines / self.column_spacing
        row = d @ self.column_cosines / self.row_spacing
        return bool(-0.5 <= col <= self.columns - 0.5 and -0.5 <= row <= self.rows - 0.5)


def frame_geometry(stack: Stack) -> list[tuple[tuple | None, tuple | None, tuple | None]]:
    """(Image Position, Image Orientation, Pixel Spacing) of each frame of `stack`, in `stack.frames` order.

    A single-frame image has them at its top level (what the scan read). An enhanced multi-frame image (enhanced
    CT and MR, PS3.3 C.7.6.16) has them per frame in its functional groups: Plane Position (Patient) per frame,
    Plane Orientation (Patient) and Pixel Measures per frame or shared (else at the top level); its header is
    read for them here.
    Raises ReformatError when such a header cannot be read."""
    out = []
    for inst in stack.instances:
        top = (inst.image_position, inst.image_orientation, inst.pixel_spacing)
        if inst.frames <= 1:
            out.append(top)
            continue
        try:
            ds = pixels.read_dataset(inst.ref, stop_before_pixels=True)
        except MedviewError as exc:
            raise ReformatError(str(exc)) from None
        for frame in range(inst.frames):
            found = []
            # the top level's position, if any, is not a frame's: only orientation and spacing may stand for all
            for group, keyword, count, default in (("PlanePositionSequence", "ImagePositionPatient", 3, None),
                                                   ("PlaneOrientationSequence", "ImageOrientationPatient", 6, top[1]),
                                                   ("PixelMeasuresSequence", "PixelSpacing", 2, top[2])):
                item = pixels.functional_group_item(ds, frame, group)
                found.append(_numbers(item.get(keyword) if item is not None else None, count) or default)
            out.append(tuple(found))
    return out


def _numbers(value, count: int) -> tuple[float, ...] | None:
    """A multi-valued decimal element as `count` finite floats, or None."""
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count and all(np.isfinite(numbers)) else None


def volume_geometry(stack: Stack, loaded: np.ndarray | None = None) -> VolumeGeometry:
    """The geometry of `stack` from its headers (each frame's own for enhanced multi-frame images: see
    `frame_geometry`); frames not `loaded` (still loading, or unreadable) are left out and so are gaps. Raises
    ReformatError when the stack has no usable geometry."""
    frames = stack.frames
    if not frames:
        raise ReformatError("the series has no images")
    first = stack.instances[0]
    if any(inst.samples_per_pixel != 1 for inst in stack.instances):
        raise ReformatError("colour images cannot be reformatted")
    per_frame = frame_geometry(stack)
    missing = [k for k, geometry in enumerate(per_frame) if None in geometry]
    if missing:
        inst = stack.instances[frames[missing[0]][0]]
        where = f"{inst.ref.display()}" + (f", frame {frames[missing[0]][1] + 1}" if inst.frames > 1 else "")
        raise ReformatError(f"{where}: no patient geometry (Image Position (Patient), "
                            "Image Orientation (Patient) or Pixel Spacing missing)")
    orientations = np.array([orientation for _, orientation, _ in per_frame], dtype=np.float64)
    if np.abs(orientations - orientations[0]).max() > 1e-4:
        raise ReformatError("the images do not all have the same orientation (Image Orientation (Patient))")
    orient = orientations[0]
    row, col = orient[:3], orient[3:]
    if not (np.linalg.norm(row) > 0.5 and np.linalg.norm(col) > 0.5):
        raise ReformatError("Image Orientation (Patient) is not a pair of direction cosines")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(row @ col) > 1e-3:
        raise ReformatError("Image Orientation (Patient): row and column directions are not perpendicular")
    col = col - (row @ col) * row
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    spacing = per_frame[0][2]
    row_spacing, column_spacing = (float(v) for v in spacing)
    if not (row_spacing > 0 and column_spacing > 0):
        raise ReformatError(f"Pixel Spacing must be greater than 0, not {list(spacing)}")
    if any(tuple(s) != tuple(spacing) for _, _, s in per_frame):
        raise ReformatError("Pixel Spacing differs between the slices")

    used = [k for k in range(len(frames)) if loaded is None or bool(loaded[k])]
    positions = np.array([per_frame[k][0] for k in used], dtype=np.float64).reshape(-1, 3)
    offsets = positions @ normal
    order = np.argsort(offsets, kind="stable")
    keep = order[np.concatenate([[True], np.diff(offsets[order]) > _SAME_POSITION_MM])] if len(order) else order
    frame_index = np.asarray(used, dtype=np.intp)[keep]
    positions, offsets = positions[keep], offsets[keep]
    if len(frame_index) < 2:
        raise ReformatError("a volume needs at least two slices at different positions")
    if first.rows < 2 or first.columns < 2:
        raise ReformatError("images of one row or column cannot be reformatted")
    return VolumeGeometry(frame_index, positions, row, col, normal, row_spacing, column_spacing,
                          int(first.rows), int(first.columns), offsets, float(np.median(np.diff(offsets))))


@dataclass(frozen=True, eq=False)
class PlaneGeometry:
    """One output plane: pixel (row, col) lies at origin + row * spacing * column_direction
    + col * spacing * row_direction (mm, patient coordinates)."""

    plane: str
    origin: np.ndarray  # centre of the top-left pixel
    row_direction: np.ndarray  # along a row: increasing column index
    column_direction: np.ndarray  # along a column: increasing row index
    spacing: float  # square pixels, mm
    shape: tuple[int, int]  # rows, columns

    @cached_property
    def normal(self) -> np.ndarray:  # cached: asked for several times per plane drawn
        return np.cross(self.row_direction, self.column_direction)

    def patient_position(self, row: float, col: float) -> np.ndarray:
        """The patient point (mm) of a (fractional) pixel position: a click in the view."""
        return self.origin + (row * self.column_direction + col * self.row_direction) * self.spacing

    def pixel_of(self, point: Sequence[float]) -> tuple[float, float]:
        """(row, col) of a patient point projected onto the plane: where a crosshair is drawn."""
        d = np.asarray(point, dtype=np.float64) - self.origin
        return float(d @ self.column_direction / self.spacing), float(d @ self.row_direction / self.spacing)

    def to_json(self) -> dict:
        """The geometry part of `render --plane`'s JSON line (SPEC section 1)."""
        def vec(v: np.ndarray) -> list[float]:
            return [round(float(x), 6) + 0.0 for x in v]  # + 0.0: no -0.0 in the JSON

        return {"plane": self.plane, "origin": vec(self.origin), "row_direction": vec(self.row_direction),
                "column_direction": vec(self.column_direction), "spacing": [self.spacing, self.spacing]}


def plane_through(geometry: VolumeGeometry, plane: str, point: Sequence[float],
                  spacing: float | None = None) -> PlaneGeometry:
    """The `plane` ("axial", "coronal", "sagittal") through `point`, covering the whole volume, at the
    series' finest spacing (or `spacing`). Its pixel grid starts at the volume's first pixel centres, so an
    axial plane of an axial stack falls on the acquired pixels."""
    if plane not in PLANE_AXES:
        raise ValueError(f"unknown plane {plane!r} (known: {', '.join(PLANES)})")
    row_dir, col_dir = (np.array(v, dtype=np.float64) for v in PLANE_AXES[plane])
    sp = float(spacing or geometry.finest_spacing)
    p = np.asarray(point, dtype=np.float64)
    corners = geometry.corners()
    along_row, along_col = corners @ row_dir, corners @ col_dir
    origin = p + (along_row.min() - p @ row_dir) * row_dir + (along_col.min() - p @ col_dir) * col_dir
    cols = int(np.floor((along_row.max() - along_row.min()) / sp + 1e-6)) + 1
    rows = int(np.floor((along_col.max() - along_col.min()) / sp + 1e-6)) + 1
    return PlaneGeometry(plane, origin, row_dir, col_dir, sp, (rows, cols))


def _affine(plane: PlaneGeometry, origin: np.ndarray, vec: np.ndarray):
    """origin . vec + row * step_r + col * step_c over the plane's pixels, kept 1-D (broadcastable) where one
    of the steps is zero: an axial stack's coronal plane has one slice position per row, not per pixel."""
    rows, cols = plane.shape
    value = float(origin @ vec)
    step_r = float(plane.column_direction @ vec) * plane.spacing
    step_c = float(plane.row_direction @ vec) * plane.spacing
    result = np.full((1, 1), value)
    if abs(step_r) > 1e-12:
        result = result + np.arange(rows, dtype=np.float64)[:, None] * step_r
    if abs(step_c) > 1e-12:
        result = result + np.arange(cols, dtype=np.float64)[None, :] * step_c
    return result


_ON_SLICE = 1e-9  # a weight this close to 0 or 1 is rounding: the position is on the slice


def _slice_pairs(geometry: VolumeGeometry, s: np.ndarray):
    """For positions `s` along the normal: the lower slice k of the bracketing pair and the weight f of
    slice k + 1 (NaN where outside the volume or inside a gap)."""
    off = geometry.offsets
    half = geometry.slice_spacing / 2
    k = np.clip(np.searchsorted(off, s, side="right") - 1, 0, len(off) - 2)
    lo, hi = off[k], off[k + 1]
    with np.errstate(invalid="ignore"):
        f = (s - lo) / (hi - lo)
        gap = (hi - lo) > GAP_FACTOR * geometry.slice_spacing
        if gap.any():  # each slice keeps half a spacing on either side; the rest of the gap is missing
            f = np.where(gap, np.where(s - lo <= half, 0.0, np.where(hi - s <= half, 1.0, np.nan)), f)
        f = np.clip(f, 0.0, 1.0)
        # on a slice but for rounding: exactly on it (one slice read instead of two blended)
        f[f < _ON_SLICE] = 0.0
        f[f > 1.0 - _ON_SLICE] = 1.0
        f[(s < off[0] - half) | (s > off[-1] + half)] = np.nan
    return k, f


def _cell(x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For fractional indices `x` along an axis of `size` samples: the lower neighbour, the weight of the
    upper one, and where `x` is more than half a pixel outside (within that the edge sample extends, as
    ITK's linear interpolator does)."""
    with np.errstate(invalid="ignore"):
        outside = (x < -0.5) | (x > size - 0.5)
    x = np.clip(x, 0, size - 1)
    x0 = np.minimum(x.astype(np.intp), size - 2)
    return x0, (x - x0).astype(np.float32), outside


def _bilinear(array: np.ndarray, frames: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Stored values at fractional (row, col) of each pixel's frame, float32; NaN outside the image."""
    _, rows, cols = array.shape
    r0, fr, outside_rows = _cell(row, rows)
    c0, fc, outside_cols = _cell(col, cols)
    outside = outside_rows | outside_cols
    if array.flags.c_contiguous:
        flat = array.reshape(-1)
        base = (frames * rows + r0) * cols + c0

        def at(dr: int, dc: int) -> np.ndarray:
            return np.take(flat, base + (dr * cols + dc))
    else:
        def at(dr: int, dc: int) -> np.ndarray:
            return array[frames, r0 + dr, c0 + dc]

    top = at(0, 0).astype(np.float32)
    top += fc * (at(0, 1) - top)
    bottom = at(1, 0).astype(np.float32)
    bottom += fc * (at(1, 1) - bottom)
    top += fr * (bottom - top)
    top[outside] = np.nan
    return top


def _common_linear(transforms) -> pixels.ModalityTransform | None:
    """The one linear transform of every frame, if so: then slices are blended as stored values and rescaled
    once (the same numbers: a linear map commutes with interpolation)."""
    if transforms is None:
        return pixels.ModalityTransform()
    if isinstance(transforms, pixels.ModalityTransform):
        return transforms if transforms.lut is None else None
    first = transforms[0] if len(transforms) else pixels.ModalityTransform()
    if first.lut is None and all(t.key == first.key for t in transforms):
        return first
    return None


def _rescaled(blended: np.ndarray, common: pixels.ModalityTransform | None) -> np.ndarray:
    if common is None or common.is_identity:
        return blended
    return common.apply(blended, out=blended)


def _modality(values: np.ndarray, frames: np.ndarray, transforms) -> np.ndarray:
    """Stored to modality values with each pixel's frame's transform (one transform, or one per frame);
    NaN (no value) stays NaN, also through a Modality LUT."""
    if transforms is None:
        return values
    if isinstance(transforms, pixels.ModalityTransform):
        transforms = [transforms]
    groups: dict[tuple, int] = {}
    group_of_frame = np.array([groups.setdefault(t.key, len(groups)) for t in transforms])
    if len(groups) == 1:
        if transforms[0].is_identity:
            return values
        out = transforms[0].apply(values)
    else:
        group = group_of_frame[frames]
        out = np.empty(values.shape, np.float32)
        for g in np.unique(group):
            mask = group == g
            out[mask] = transforms[int(frames[mask].flat[0])].apply(values[mask])
    if any(t.lut is not None for t in transforms):  # a table lookup turns NaN into a value
        out[np.isnan(values)] = np.nan
    return out


def sample_plane(array: np.ndarray, geometry: VolumeGeometry, plane: PlaneGeometry, transforms=None,
                 offset_mm: float = 0.0) -> np.ndarray:
    """Modality values of `plane` (float32, its shape; NaN outside the volume and in gaps), moved `offset_mm`
    along its normal. `array` is the loaded stack (N, H, W) of stored values; `transforms` one
    `pixels.ModalityTransform` for all frames, one per frame of `array`, or None (values as stored)."""
    if array.ndim != 3:
        raise ReformatError("colour images cannot be reformatted")
    origin = plane.origin + offset_mm * plane.normal
    by_lines = _sample_by_lines(array, geometry, plane, origin, transforms)
    if by_lines is not None:
        return by_lines
    s = _affine(plane, origin, geometry.normal)
    k, f = _slice_pairs(geometry, s)
    along_row = _affine(plane, origin, geometry.row_cosines)
    along_col = _affine(plane, origin, geometry.column_cosines)
    pos_row = geometry.positions @ geometry.row_cosines
    pos_col = geometry.positions @ geometry.column_cosines
    shape = plane.shape
    common = _common_linear(transforms)
    sides = []
    for side in (k, k + 1):
        frames = np.broadcast_to(geometry.frame_index[side], shape)
        col = np.broadcast_to((along_row - pos_row[side]) / geometry.column_spacing, shape)
        row = np.broadcast_to((along_col - pos_col[side]) / geometry.row_spacing, shape)
        values = _bilinear(array, frames, row, col)
        sides.append(values if common is not None else _modality(values, frames, transforms))
    return _rescaled(_blend(sides[0], sides[1], np.broadcast_to(f, shape)), common)


def _blend(lower: np.ndarray, upper: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Linear between the two bracketing slices; NaN where the weight is (outside, in a gap)."""
    weight = f.astype(np.float32)
    result = lower + weight * (upper - lower)
    # a weight of 0 or 1 (next to a gap, at the ends): the other slice's NaN must not leak in
    return np.where(weight == 0, lower, np.where(weight == 1, upper, result))


_ALIGNED = 1e-9


def _sample_by_lines(array: np.ndarray, geometry: VolumeGeometry, plane: PlaneGeometry, origin: np.ndarray,
                     transforms) -> np.ndarray | None:
    """The plane when each of its rows runs along the image rows or columns of one slice pair (coronal and
    sagittal of an axial stack, tilted or not; any plane parallel to the slices): whole image lines are
    blended first and then interpolated along, instead of four gathers per pixel. None when not so."""
    rows, cols = plane.shape
    along = plane.row_direction
    if abs(along @ geometry.normal) > _ALIGNED:
        return None
    if abs(along @ geometry.column_cosines) <= _ALIGNED:  # a plane row runs along image rows
        view, varying, fixed = array, geometry.row_cosines, geometry.column_cosines
        varying_spacing, fixed_spacing = geometry.column_spacing, geometry.row_spacing
    elif abs(along @ geometry.row_cosines) <= _ALIGNED:  # along image columns: the same on a transposed view
        view, varying, fixed = array.transpose(0, 2, 1), geometry.column_cosines, geometry.row_cosines
        varying_spacing, fixed_spacing = geometry.row_spacing, geometry.column_spacing
    else:
        return None
    down = np.arange(rows, dtype=np.float64) * plane.spacing
    s = origin @ geometry.normal + down * (plane.column_direction @ geometry.normal)
    k, f = _slice_pairs(geometry, s)
    length = view.shape[2]
    step = plane.spacing * (along @ varying) / varying_spacing
    common = _common_linear(transforms)
    # rows exactly on slices (planes stepped slice by slice, or at the slice spacing) read one slice each
    on_slice = (f == 0) | (f == 1) | np.isnan(f)
    sides = []
    for side in ((k + (f == 1),) if on_slice.all() else (k, k + 1)):
        frames = geometry.frame_index[side]
        shift = geometry.positions[side]
        start = ((origin - shift) @ varying + down * (plane.column_direction @ varying)) / varying_spacing
        line_at = ((origin - shift) @ fixed + down * (plane.column_direction @ fixed)) / fixed_spacing
        l0, fl, outside_line = _cell(line_at, view.shape[1])
        lines = view[frames, l0].astype(np.float32)
        if np.any(fl > _ON_SLICE):  # between image lines (off the rows or columns of the images)
            lines += fl[:, None] * (view[frames, l0 + 1] - lines)
        lines[outside_line] = np.nan
        sides.append((frames, start, lines))
    if common is not None and all(np.array_equal(start, sides[0][1]) for _, start, _ in sides):
        # the same positions along the lines in both slices: blended first, interpolated along once
        if len(sides) == 2:
            lines = _blend(sides[0][2], sides[1][2], f[:, None])
        else:
            lines = sides[0][2]
            lines[np.isnan(f)] = np.nan  # outside the volume or inside a gap
        return _rescaled(_along_lines(lines, sides[0][1], cols, step), common)
    values = []
    for frames, start, lines in sides:
        along_lines = _along_lines(lines, start, cols, step)
        values.append(along_lines if common is not None else
                      _modality(along_lines, np.broadcast_to(frames[:, None], along_lines.shape), transforms))
    if len(values) == 1:
        values.append(values[0])
    return _rescaled(_blend(values[0], values[1], f[:, None]), common)


def _along_lines(lines: np.ndarray, start: np.ndarray, cols: int, step: float) -> np.ndarray:
    """`cols` values along each line from its fractional index `start`, `step` apart (linear between samples);
    NaN more than half a sample outside."""
    length = lines.shape[1]
    first = int(round(start[0]))
    if np.ptp(start) <= _ALIGNED:  # the same positions along every line: one index for all rows
        if step == 1.0 and abs(start[0] - first) < 1e-6 and 0 <= first and first + cols <= length:
            return lines[:, first:first + cols].copy()  # on the image's own pixel grid: nothing to interpolate
        x0, fx, outside = _cell(start[0] + np.arange(cols) * step, length)
        values = np.take(lines, x0, axis=1)  # np.take: many times faster than lines[:, x0] on a wide plane
        upper = np.take(lines, x0 + 1, axis=1)
        upper -= values
        upper *= fx
        values += upper
    else:
        x0, fx, outside = _cell(start[:, None] + np.arange(cols) * step, length)
        values = np.take_along_axis(lines, x0, axis=1)
        values += fx * (np.take_along_axis(lines, x0 + 1, axis=1) - values)
    values[np.broadcast_to(outside, values.shape)] = np.nan
    return values


def reformat(array: np.ndarray, geometry: VolumeGeometry, plane: PlaneGeometry, transforms=None,
             slab_mm: float = 0.0, mode: str = "mip") -> np.ndarray:
    """The plane's modality values, or a slab of `slab_mm` millimetres across it: the maximum ("mip"),
    minimum ("minip") or mean ("avg") over the slab. A slab along a volume axis is reduced over the volume's
    samples inside it and resampled once (`_slab_on_grid`); any other is made of parallel planes one
    `plane.spacing` apart. NaN where nothing of the slab has a value."""
    if mode not in SLAB_MODES:
        raise ValueError(f"unknown slab mode {mode!r} (known: {', '.join(SLAB_MODES)})")
    if not slab_mm or slab_mm <= plane.spacing:
        return sample_plane(array, geometry, plane, transforms)
    on_grid = _slab_on_grid(array, geometry, plane, transforms, slab_mm, mode)
    if on_grid is not None:
        return on_grid
    count = int(np.floor(slab_mm / plane.spacing + 1e-6)) + 1
    offsets = (np.arange(count) - (count - 1) / 2) * plane.spacing
    result = total = seen = None
    for offset in offsets:
        values = sample_plane(array, geometry, plane, transforms, float(offset))
        if mode == "avg":
            finite = ~np.isnan(values)
            total = np.where(finite, values, 0) if total is None else total + np.where(finite, values, 0)
            seen = finite.astype(np.int32) if seen is None else seen + finite
        elif result is None:
            result = values
        else:  # fmax/fmin pass over NaN: a plane outside the volume does not blank the slab
            result = (np.fmax if mode == "mip" else np.fmin)(result, values)
    if mode == "avg":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(seen > 0, total / np.maximum(seen, 1), np.nan).astype(np.float32)
    return result


# ------------------------------------------------------------------------------------------ slabs on the grid
#
# A slab whose normal runs along an axis of the stored volume (coronal or sagittal of an axial stack: along the
# image columns or rows; any plane parallel to the slices: across them) is reduced over the volume's own samples
# inside it, a contiguous range of image lines in each slice (or of slices), and the thin volume so reduced is
# resampled once, exactly as a plane: a few reads of the slab's voxels instead of one full reformat per
# `plane.spacing` of thickness. The samples reduced are those whose centres lie within half the thickness of the
# plane; interpolation between slices and along the plane's rows comes after the reduction (for the mean the
# same numbers; for the maximum and minimum the grid's own extremes, not lowered by interpolation first).

_REDUCE_CHUNK = 8  # slices reduced at a time: temporaries stay in the processor's cache whatever the volume


def _reduction(mode: str, transforms, frames: np.ndarray) -> str | None:
    """The reduction of stored values that gives `mode` of modality values: None when the frames' transforms
    do not allow it (a Modality LUT, or slopes of both signs: then the slab is reformatted plane by plane)."""
    if mode == "avg" or transforms is None:
        return mode
    used = [transforms] if isinstance(transforms, pixels.ModalityTransform) else [transforms[int(f)] for f in
                                                                                   np.unique(frames)]
    if any(t.lut is not None for t in used):
        return None
    if all(t.slope >= 0 for t in used):
        return mode
    if all(t.slope < 0 for t in used):  # a falling map: the largest stored value is the smallest modality value
        return "minip" if mode == "mip" else "mip"
    return None


def _as_slice(frames: np.ndarray) -> slice | np.ndarray:
    """Consecutive frame indices as a slice (a view of the stack, no copy), others as they are."""
    step = int(frames[1]) - int(frames[0]) if len(frames) > 1 else 0
    if abs(step) == 1 and np.all(np.diff(frames) == step):
        stop = int(frames[-1]) + step
        return slice(int(frames[0]), stop if stop >= 0 else None, step)
    return frames


_REDUCERS = {"mip": np.maximum, "minip": np.minimum, "avg": np.add}


def _reduce(block: np.ndarray, axis: int, reduction: str) -> np.ndarray:
    if reduction == "avg":
        return block.sum(axis=axis, dtype=np.float64 if block.dtype.kind == "f" else np.int64)
    return _REDUCERS[reduction].reduce(block, axis=axis)


def _reduce_lines(array: np.ndarray, frames: np.ndarray, lo: int, hi: int, axis: int, reduction: str) -> np.ndarray:
    """Image lines lo..hi (rows: axis 1, columns: axis 2) of each frame reduced to one line, float32 (sums for
    the mean). Columns are short runs along memory: a chunk of slices is copied together and reduced run by run
    (`ufunc.reduceat`), twice as fast as numpy's reduction along a short last axis or a transposed copy."""
    length = array.shape[3 - axis]
    out = np.empty((len(frames), length), np.float32)
    width = hi - lo + 1
    runs = np.arange(_REDUCE_CHUNK * length) * width
    ufunc = _REDUCERS[reduction]
    sum_type = {"dtype": np.float64 if array.dtype.kind == "f" else np.int64} if reduction == "avg" else {}
    for start in range(0, len(frames), _REDUCE_CHUNK):
        index = _as_slice(frames[start:start + _REDUCE_CHUNK])
        if axis == 1:
            out[start:start + _REDUCE_CHUNK] = _reduce(array[index, lo:hi + 1, :], 1, reduction)
            continue
        block = np.ascontiguousarray(array[index, :, lo:hi + 1]).reshape(-1)
        count = len(block) // width
        out[start:start + _REDUCE_CHUNK] = ufunc.reduceat(block, runs[:count], **sum_type).reshape(-1, length)
    return out


def _slab_on_grid(array: np.ndarray, geometry: VolumeGeometry, plane: PlaneGeometry, transforms, slab_mm: float,
                  mode: str) -> np.ndarray | None:
    """The slab reduced over the volume's samples and resampled once (see above); None when its normal does not
    run along an axis of the volume or its transforms do not allow it."""
    if array.ndim != 3:
        return None
    normal = plane.normal
    half = slab_mm / 2
    if abs(normal @ geometry.normal) >= 1 - _ALIGNED:
        return _slab_across_slices(array, geometry, plane, transforms, half, mode)
    if abs(normal @ geometry.column_cosines) >= 1 - _ALIGNED:  # across image rows: coronal of an axial stack
        axis, fixed, spacing = 1, geometry.column_cosines, geometry.row_spacing
    elif abs(normal @ geometry.row_cosines) >= 1 - _ALIGNED:  # across image columns: sagittal
        axis, fixed, spacing = 2, geometry.row_cosines, geometry.column_spacing
    else:
        return None
    if half < spacing / 2:  # thinner than a line: some positions would have no sample
        return None
    reduction = _reduction(mode, transforms, geometry.frame_index)
    if reduction is None:
        return None
    size = array.shape[axis]
    # each slice's line index at the plane (slices shifted along the axis have their own) and the slab's lines
    centre = ((plane.origin - geometry.positions) @ fixed) / spacing
    reach = half / spacing + 1e-6
    first = np.clip(np.ceil(centre - reach), 0, size - 1).astype(np.intp)
    last = np.clip(np.floor(centre + reach), 0, size - 1).astype(np.intp)
    empty = (centre + reach < 0) | (centre - reach > size - 1)
    table = np.full((len(centre), array.shape[3 - axis]), np.nan, np.float32)
    for lo, hi in set(zip(first[~empty].tolist(), last[~empty].tolist())):
        slices = np.flatnonzero((first == lo) & (last == hi) & ~empty)
        table[slices] = _reduce_lines(array, geometry.frame_index[slices], lo, hi, axis, reduction)
        if mode == "avg":
            table[slices] /= hi - lo + 1
    # the thin volume: each slice's reduced line twice (a view, no copy), one `spacing` apart, the plane on the
    # first of them
    shape = (len(table), 2, table.shape[1]) if axis == 1 else (len(table), table.shape[1], 2)
    thin = np.broadcast_to(table[:, None, :] if axis == 1 else table[:, :, None], shape)
    positions = geometry.positions + ((plane.origin - geometry.positions) @ fixed)[:, None] * fixed
    thin_geometry = replace(geometry, frame_index=np.arange(len(table)), positions=positions,
                            rows=thin.shape[1], columns=thin.shape[2])
    return sample_plane(thin, thin_geometry, plane, _transforms_of(transforms, geometry.frame_index))


def _slab_across_slices(array: np.ndarray, geometry: VolumeGeometry, plane: PlaneGeometry, transforms,
                        half: float, mode: str) -> np.ndarray | None:
    """A slab parallel to the slices: the slices inside it reduced to one image, resampled as the plane. None
    when they are shifted in-plane against each other or their transforms differ (no one image stands for
    them), or when no slice lies inside."""
    s = float(plane.origin @ geometry.normal)
    inside = np.flatnonzero(np.abs(geometry.offsets - s) <= half + 1e-6)
    if len(inside) == 0:
        return None
    in_plane = geometry.positions[inside] - geometry.offsets[inside, None] * geometry.normal
    if np.ptp(in_plane, axis=0).max() > _SAME_POSITION_MM:
        return None
    frames = geometry.frame_index[inside]
    common = _common_linear(_transforms_of(transforms, frames))
    reduction = _reduction(mode, common, frames)
    if common is None or reduction is None:
        return None
    image = np.empty((1, geometry.rows, geometry.columns), np.float32)
    for row in range(0, geometry.rows, 64):  # a band of rows at a time: no temporary the size of the slab
        band = array[_as_slice(frames), row:row + 64]
        image[0, row:row + 64] = _reduce(band, 0, reduction)
    if mode == "avg":
        image /= len(inside)
    thin = np.broadcast_to(image, (2, *image.shape[1:]))
    # the image twice (a view, no copy), one spacing apart along the normal, the plane on the first
    positions = in_plane[:1] + (s + np.array([0.0, 1.0])[:, None] * geometry.slice_spacing) * geometry.normal
    thin_geometry = replace(geometry, frame_index=np.arange(2), positions=positions,
                            offsets=positions @ geometry.normal)
    return sample_plane(thin, thin_geometry, plane, common)


def _transforms_of(transforms, frames: np.ndarray):
    """The transforms of `frames` (one per frame, in their order), or the one for all / None as given."""
    if transforms is None or isinstance(transforms, pixels.ModalityTransform):
        return transforms
    return [transforms[int(f)] for f in frames]


def display_plane(values: np.ndarray, voi: pixels.Window | pixels.VoiLut, invert: bool = False) -> np.ndarray:
    """Modality values of a plane to the uint8 grey levels shown, through the display pipeline (VOI, then
    inversion); pixels without a value (outside the volume, gaps) are black background."""
    missing = np.isnan(values)
    image = pixels.display_stored(np.where(missing, np.float32(0), values), pixels.ModalityTransform(), voi,
                                  invert)
    image[missing] = 0
    return image


def stack_transforms(headers: Sequence, frames: Sequence[tuple[int, int]] | None = None) -> list[
        pixels.ModalityTransform]:
    """One modality transform per frame of a stack, from its header datasets, one per instance (None: identity);
    `frames` is the stack's (instance, frame) walk (`Stack.frames`), needed where an instance has several."""
    walk = frames if frames is not None else [(i, 0) for i in range(len(headers))]
    return [pixels.modality_transform(headers[i], f) if headers[i] is not None else pixels.ModalityTransform()
            for i, f in walk]
