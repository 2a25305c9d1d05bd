"""A reformatted plane as the image view shows a stack: image i is the plane at the i-th position along its
normal, read from the loaded stack array (no copy of the volume) with what is decoded so far.

`PlaneSteps` says where a plane can be along its normal: a plane parallel to the acquired slices steps from
slice to slice (their own, possibly uneven, positions); any other plane steps by the volume's sampling along
its normal (the pixel spacing for a coronal plane of an axial stack). The reading session moves the crosshair
point with these steps; the window draws with `PlaneDisplay`.

`PlaneDisplay` has the interface of `StackDisplay` that the image view uses (`frames`, `header`,
`item_image`, `modality_values`, `value_at`, `initial_voi` ...). Its pixel grid is fixed by the series'
headers (every slice, loaded or not), so the picture keeps its size while slices arrive: slices not decoded
yet are gaps (background), filled in as the loader reaches them. Slabs (MIP, MinIP, average over a thickness
in mm) come from `mpr.reformat`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from medview.core.dicom import pixels
from medview.core.dicom.pixels import VoiLut, Window
from medview.core.viewing import mpr
from medview.core.viewing.display import ItemImage, StackDisplay

SLAB_MODES = ("off", "mip", "minip", "avg")
SLAB_NAMES = {"off": "", "mip": "MIP", "minip": "MinIP", "avg": "Average"}
SLAB_STEPS_MM = (2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0)
DEFAULT_SLAB_MM = 10.0
AXES = {"axial": "z", "coronal": "y", "sagittal": "x"}
_PARALLEL = 1 - 1e-6
_CACHED = 4  # planes kept: the one shown and the ones just before (a measurement's label, the cursor value)


@functools.cache
def _plane_normal(plane: str) -> tuple[float, float, float]:
    row, col = (np.array(v, dtype=np.float64) for v in mpr.PLANE_AXES[plane])
    return tuple(float(v) for v in np.cross(row, col))


def plane_normal(plane: str) -> np.ndarray:
    return np.array(_plane_normal(plane))


@dataclass(frozen=True, eq=False)
class PlaneSteps:
    """The positions (mm along `normal`, ascending) a plane is shown at: image i of a reformatted viewport."""

    plane: str
    normal: np.ndarray
    offsets: np.ndarray

    @property
    def count(self) -> int:
        return len(self.offsets)

    def index_of(self, point: Sequence[float]) -> int:
        """The step nearest to `point`."""
        s = float(np.asarray(point, dtype=np.float64) @ self.normal)
        return int(np.argmin(np.abs(self.offsets - s)))

    def moved(self, point: Sequence[float], index: int) -> np.ndarray:
        """`point` moved along the normal onto step `index` (its position in the plane stays)."""
        p = np.asarray(point, dtype=np.float64)
        return p + (self.offsets[index] - p @ self.normal) * self.normal


def plane_steps(geometry: mpr.VolumeGeometry, plane: str) -> PlaneSteps:
    """Where `plane` can be in the volume (see the module docstring)."""
    normal = plane_normal(plane)
    along = float(normal @ geometry.normal)
    if abs(along) >= _PARALLEL:
        return PlaneSteps(plane, normal, np.sort(geometry.offsets * np.sign(along)))
    # the volume's sampling along the normal: each axis's share of the normal over its spacing
    per_mm = np.array([normal @ geometry.row_cosines / geometry.column_spacing,
                       normal @ geometry.column_cosines / geometry.row_spacing,
                       along / geometry.slice_spacing])
    step = 1.0 / float(np.sqrt((per_mm ** 2).sum()))
    s = geometry.corners() @ normal
    count = int(np.floor((s.max() - s.min()) / step + 1e-6)) + 1
    return PlaneSteps(plane, normal, s.min() + np.arange(count) * step)


def loaded_part(geometry: mpr.VolumeGeometry, loaded: np.ndarray | None) -> mpr.VolumeGeometry | None:
    """The slices of `geometry` decoded so far, with the whole series' slice spacing: a run of slices not
    decoded is a gap, shown as background. None while fewer than two are there."""
    if loaded is None:
        return geometry
    keep = np.asarray(loaded, dtype=bool)[geometry.frame_index]
    if keep.all():
        return geometry
    if np.count_nonzero(keep) < 2:
        return None
    return replace(geometry, frame_index=geometry.frame_index[keep], positions=geometry.positions[keep],
                   offsets=geometry.offsets[keep])


def slab_text(mode: str, slab_mm: float) -> str:
    """"MIP 10 mm" for a viewport's title and corner text; "" without a slab."""
    if mode == "off" or not slab_mm:
        return ""
    return f"{SLAB_NAMES[mode]} {slab_mm:g} mm"


def next_slab_mm(current: float, delta: int) -> float:
    """] / [: the next thicker / thinner of SLAB_STEPS_MM (within them)."""
    if delta > 0:
        return next((s for s in SLAB_STEPS_MM if s > current + 1e-9), SLAB_STEPS_MM[-1])
    return next((s for s in reversed(SLAB_STEPS_MM) if s < current - 1e-9), SLAB_STEPS_MM[0])


class PlaneDisplay:
    """One plane (axial, coronal, sagittal) of a loaded stack, scrolled along its normal (see the module
    docstring). `source` is the stack's display (array, headers), `loaded` its mask of decoded images, filled
    in place by the loader; `geometry` the series' geometry from its headers."""

    colour = False
    lut_path = False

    def __init__(self, source: StackDisplay, loaded: np.ndarray, geometry: mpr.VolumeGeometry, plane: str):
        self.source, self.loaded, self.geometry, self.plane = source, loaded, geometry, plane
        self.steps = plane_steps(geometry, plane)
        self.grid = mpr.plane_through(geometry, plane, geometry.center())
        self.spacing = self.grid.spacing
        self.frame_shape = self.grid.shape
        self.directions = tuple(tuple(float(v) for v in direction)  # along a row, along a column
                                for direction in (self.grid.row_direction, self.grid.column_direction))
        self.slab_mode, self.slab_mm = "off", 0.0
        # per step, the acquired image nearest to the plane's centre: its header names the patient and window
        rows, cols = self.grid.shape
        centre = self.grid.patient_position((rows - 1) / 2, (cols - 1) / 2)
        s = (centre @ geometry.normal) + (self.steps.offsets - centre @ self.steps.normal) * (
            self.steps.normal @ geometry.normal)
        nearest = np.clip(np.searchsorted(geometry.offsets, s), 0, len(geometry.offsets) - 1)
        lower = np.clip(nearest - 1, 0, len(geometry.offsets) - 1)
        closer = np.abs(geometry.offsets[lower] - s) < np.abs(geometry.offsets[nearest] - s)
        self._nearest = geometry.frame_index[np.where(closer, lower, nearest)]
        self.frames = [source.frames[k] for k in self._nearest]
        self._part: tuple[int, mpr.VolumeGeometry | None] | None = None
        self._transforms: tuple[int, list] | None = None
        self._values: dict[tuple, np.ndarray] = {}
        self.cost_s = 0.0  # how long the last image took to reformat: the window draws slow ones lazily

    # --- where ------------------------------------------------------------------------------------------------
    def plane_at(self, i: int) -> mpr.PlaneGeometry:
        """The plane shown as image i (its pixel grid in the patient)."""
        origin = self.grid.origin + (self.steps.offsets[i] - self.grid.origin @ self.steps.normal) * self.steps.normal
        return replace(self.grid, origin=origin)

    def position_text(self, i: int) -> str:
        """Where image i lies, as the patient coordinate its normal runs along: "z -120.0 mm"."""
        axis = AXES[self.plane]
        value = float(self.plane_at(i).origin["xyz".index(axis)])
        return f"{axis} {value:.1f} mm"

    def set_slab(self, mode: str, slab_mm: float) -> bool:
        """Show a slab (mode of SLAB_MODES, thickness in mm); True when the picture changes."""
        if mode not in SLAB_MODES:
            raise ValueError(f"slab mode must be one of {', '.join(SLAB_MODES)}, not {mode!r}")
        if (mode, float(slab_mm)) == (self.slab_mode, self.slab_mm):
            return False
        self.slab_mode, self.slab_mm = mode, float(slab_mm)
        return True

    # --- values -----------------------------------------------------------------------------------------------
    def _loaded_geometry(self) -> mpr.VolumeGeometry | None:
        count = int(np.count_nonzero(self.loaded))
        if self._part is None or self._part[0] != count:
            self._part = (count, loaded_part(self.geometry, self.loaded))
        return self._part[1]

    def _frame_transforms(self) -> list:
        """Each image's modality transform from its header (the first header read stands in until its own is),
        parsed once per header."""
        headers = self.source.headers
        if self._transforms is not None and self._transforms[0] == len(headers):
            return self._transforms[1]  # every header read: nothing more to come
        known = sum(h is not None for h in headers)
        if self._transforms is None or self._transforms[0] != known:
            parsed: dict[tuple, pixels.ModalityTransform] = {}
            transforms = []
            for k, (_, frame) in enumerate(self.source.frames):
                ds = self.source.header(k)
                key = (id(ds), frame)
                if key not in parsed:
                    parsed[key] = self.source.transform(k)
                transforms.append(parsed[key])
            self._transforms = (known, transforms)
        return self._transforms[1]

    def modality_values(self, i: int) -> np.ndarray:
        """Image i in modality units (float32, NaN where nothing is: outside the volume, gaps, not yet loaded)."""
        part = self._loaded_geometry()
        transforms = self._frame_transforms()
        key = (i, self.slab_mode, self.slab_mm, self._part[0], self._transforms[0])
        found = self._values.get(key)
        if found is not None:
            return found
        start = time.perf_counter()
        if part is None:
            values = np.full(self.frame_shape, np.nan, np.float32)
        elif self.slab_mode != "off" and self.slab_mm > self.spacing:
            values = mpr.reformat(self.source.array, part, self.plane_at(i), transforms, self.slab_mm,
                                  self.slab_mode)
        else:
            values = mpr.sample_plane(self.source.array, part, self.plane_at(i), transforms)
        self.cost_s = time.perf_counter() - start
        if len(self._values) >= _CACHED:
            self._values.pop(next(iter(self._values)))
        self._values[key] = values
        return values

    def value_at(self, i: int, row: int, col: int) -> float | None:
        rows, cols = self.frame_shape
        if not (0 <= row < rows and 0 <= col < cols):
            return None
        value = float(self.modality_values(i)[row, col])
        return value if np.isfinite(value) else None

    def value_span(self, i: int = 0) -> float:
        values = self.modality_values(i)
        finite = values[np.isfinite(values)]
        return float(finite.max() - finite.min()) if finite.size else 1.0

    # --- what the acquired images say -------------------------------------------------------------------------
    def _acquired(self, i: int) -> int:
        """The acquired image that stands for image i: the nearest one decoded (its window, its header)."""
        k = int(self._nearest[min(max(i, 0), len(self._nearest) - 1)])
        if not self.loaded[k]:
            done = np.flatnonzero(self.loaded)
            if done.size:
                k = int(done[np.argmin(np.abs(done - k))])
        return k

    def header(self, i: int):
        return self.source.header(self._acquired(i))

    def transform(self, i: int) -> pixels.ModalityTransform:
        return pixels.ModalityTransform()  # the values are modality values already

    def palette(self, i: int) -> None:
        return None

    def file_inverted(self, i: int) -> bool:
        return self.source.file_inverted(self._acquired(i))

    def initial_voi(self, i: int = 0) -> Window | VoiLut | None:
        """The series' window from its file (the acquired image's), else one from the plane's values."""
        ds = self.header(i)
        if ds is None:
            return None
        window = pixels.file_window(ds)
        if window is not None:
            return window
        lut = pixels.voi_lut(ds)
        return lut if lut is not None else pixels.default_window(self.modality_values(i))

    def window_for_drag(self, voi: Window | VoiLut | None, i: int = 0) -> Window:
        return voi if isinstance(voi, Window) else pixels.default_window(self.modality_values(i))

    # --- what the ImageItem gets ------------------------------------------------------------------------------
    def item_image(self, i: int, voi: Window | VoiLut | None, invert: bool) -> ItemImage:
        if voi is None:
            voi = self.initial_voi(i) or Window(0.5, 1.0)
        return ItemImage(mpr.display_plane(self.modality_values(i), voi, invert), None, (0, 255))

    def display_values(self, i: int, voi: Window | VoiLut | None, invert: bool) -> np.ndarray:
        return self.item_image(i, voi, invert).data
