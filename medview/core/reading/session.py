"""The state of a reading session without Qt: the studies opened, the open case, the layout of viewports and
what each shows, and the intents (keys of SPEC section 6) that change it.

The window draws this state and the reading controller (medview.qt.reading) sends intents; every rule (what a
layout keeps, what P and M show and restore, how linked viewports and the reformatted planes' crosshair follow)
lives here and is tested without a display.
`reading_state()` is the plain data of SPEC section 7.

M shows the axial, coronal and sagittal planes of a stack (`plane_display.PlaneSteps` says where each can be):
one crosshair point is where the three meet, so scrolling a plane moves the point along its normal and a click
puts it anywhere; each plane has its own slab (Shift+M, [ ]).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from medview.core.dicom.model import Stack, Study
from medview.core.dicom.pixels import Window
from medview.core.dicom.series import slice_normal
from medview.core.reading.facts import FactsCache, FactsReader, read_series_facts
from medview.core.reading.linking import has_slice_positions, image_centre, linked_index, nearest_slice
from medview.core.reading.priors import StudyKey, find_prior, same_patient_studies, study_key
from medview.core.reading.protocols import ProtocolSet, hang, load_protocols
from medview.core.viewing import mpr
from medview.core.viewing.plane_display import (
    DEFAULT_SLAB_MM,
    SLAB_MODES,
    PlaneSteps,
    next_slab_mm,
    plane_steps,
)
from medview.core.viewing.state import ViewState

PLANES = ("acquired", "axial", "coronal", "sagittal")
PAGE = 10  # Shift+Down / Shift+Up
LAYOUT_KEYS = {1: (1, 1), 2: (1, 2), 3: (2, 1), 4: (2, 2)}  # Ctrl+1..4
NO_PRIOR = "No earlier study of this patient with the same modality and body part"
NO_SLAB_HERE = "Slabs are made of reformatted planes: M shows them"
MPR_LAYOUT = (1, 3)  # M: axial, coronal and sagittal side by side


@dataclass
class Viewport:
    """One cell of the layout: the stack it shows (or none), and how (the view state, plane, pan)."""

    study: Study | None = None
    stack: Stack | None = None
    view: ViewState = field(default_factory=ViewState)
    plane: str = "acquired"
    pan: tuple[float, float] = (0.0, 0.0)  # the centre moved by, in widths and heights of the image
    prior: bool = False
    loaded: int = 0  # images decoded so far: the window sets it as the loader reports
    point: tuple[float, float, float] | None = None  # a reformatted plane's crosshair (mm, patient coordinates)
    slab: str = "off"  # a reformatted plane's slab mode (SLAB_MODES), over `slab_mm` millimetres
    slab_mm: float = 0.0
    geometry: mpr.VolumeGeometry | None = field(default=None, repr=False)  # a reformatted plane's volume
    _frames: list[tuple[int, int]] | None = field(default=None, repr=False)

    def show(self, study: Study | None, stack: Stack | None, prior: bool = False, index: int = 0) -> None:
        """Put a stack here, opening at `index` with the view of a freshly opened image."""
        self.study, self.stack, self.prior = study, stack, prior
        self.view = ViewState(count=stack.frame_count if stack is not None else 0)
        self.view.go(index)
        self.plane, self.pan, self.loaded, self._frames = "acquired", (0.0, 0.0), 0, None
        self.point, self.slab, self.slab_mm, self.geometry = None, "off", 0.0, None

    @property
    def empty(self) -> bool:
        return self.stack is None

    @property
    def frames(self) -> list[tuple[int, int]]:
        """(instance, frame) per image of the stack, walked once."""
        if self._frames is None:
            self._frames = self.stack.frames if self.stack is not None else []
        return self._frames

    def reset(self) -> None:
        """Esc: the view as the image opened (the index stays)."""
        self.view.reset()
        self.pan = (0.0, 0.0)

    @property
    def reformatted(self) -> bool:
        """Shows a plane reformatted from its stack (MPR), not the acquired images."""
        return self.plane != "acquired" and self.stack is not None

    def acquired_index(self) -> int:
        """The acquired image shown, or for a reformatted plane the one nearest to its crosshair."""
        if not self.reformatted:
            return self.view.index
        if self.point is not None and self.geometry is not None:  # each frame's own position (also multi-frame)
            return self.geometry.nearest_frame(self.point)
        if self.point is None or not has_slice_positions(self.stack):
            return 0
        normal = slice_normal(self.stack.instances[0].image_orientation)
        return nearest_slice(self.stack.positions, float(np.dot(self.point, normal)))  # type: ignore[arg-type]

    def _shown(self):
        """(instance, frame) of the acquired image shown, or (None, None)."""
        frames = self.frames
        index = self.acquired_index()
        shown = frames[index] if 0 <= index < len(frames) else None
        inst = self.stack.instances[shown[0]] if self.stack is not None and shown is not None else None
        return inst, (shown[1] if shown is not None else None)

    def shown_image(self) -> tuple[str, int] | None:
        """(SOP Instance UID, frame) of the acquired image shown (nearest the crosshair for a plane)."""
        inst, frame = self._shown()
        return (inst.sop_instance_uid, frame) if inst is not None else None

    def state(self) -> dict:
        """This viewport as plain data, one entry of `reading_state()["viewports"]` (SPEC section 7). A
        reformatted plane reports the acquired image nearest to its crosshair, and the crosshair as position."""
        inst, frame = self._shown()
        window = self.view.window
        if self.reformatted:
            centre = self.point
        else:
            centre = image_centre(inst) if inst is not None else None
        return {
            "study_uid": self.study.study_uid if self.study is not None else None,
            "series_uid": self.stack.series_uid if self.stack is not None else None,
            "sop_instance_uid": inst.sop_instance_uid if inst is not None else None,
            "frame": frame if frame is not None else 0,
            "frames": self.stack.frame_count if self.reformatted else self.view.count,
            "loaded": self.loaded,
            "plane": self.plane,
            "position": [float(v) for v in centre] if centre is not None else None,
            "window": [float(window.center), float(window.width)] if isinstance(window, Window) else None,
            "invert": bool(self.view.invert),
            "zoom": float(self.view.zoom),
            "rotation": 90 * self.view.rotation,
            "flip": bool(self.view.flip_h),
            "prior": self.prior,
        }


@dataclass
class _Saved:
    """The layout P replaced, restored by P again (the same viewports, scrolled where they were)."""

    layout: tuple[int, int]
    viewports: list[Viewport]
    active: int
    linked: bool


class ReadingSession:
    """The studies opened (from any number of scans), the open case and its viewports.

    Intent methods return True when something changed (False: nothing to do, the window may say so), except
    `compare_with_prior`, which returns a message when there is no prior.
    """

    def __init__(self, studies: Iterable[Study] = (), *, protocols: ProtocolSet | None = None,
                 read_facts: FactsReader = read_series_facts):
        self.studies: dict[str, Study] = {}
        self.order: list[str] = []  # the reading order (worklist order) of study UIDs
        self.protocols = protocols if protocols is not None else load_protocols()
        self.facts = FactsCache(read_facts)
        self._keys: dict[str, StudyKey] = {}
        self.case: Study | None = None
        self.layout: tuple[int, int] = (1, 1)
        self.viewports: list[Viewport] = [Viewport()]
        self.active = 0
        self.linked = False
        self.link_window = True   # while linked: a window set in one viewport goes to those of the same modality
        self.link_zoom = False    # while linked: zoom and pan follow too (Shift+S)
        self._saved: _Saved | None = None
        self._mpr_saved: _Saved | None = None  # the layout M replaced, restored by M (or Esc) again
        self._geometries: dict[int, tuple[Stack, mpr.VolumeGeometry]] = {}
        self._steps: dict[str, PlaneSteps] = {}  # of the stack the planes show
        self.crosshair: tuple[float, float, float] | None = None
        # the image each series of the open case was left at: going back to a series shows it again
        self._left_at: dict[int, tuple[Stack, int]] = {}
        self.add_studies(studies)

    # --- studies, priors and the reading order -----------------------------------------------------------
    def add_studies(self, studies: Iterable[Study]) -> None:
        """Studies of another scan join the session; a study scanned again replaces the one here (its files as
        they are now: the window opens the objects of its latest scan)."""
        for study in studies:
            if study.study_uid not in self.studies:
                self.order.append(study.study_uid)
            self.studies[study.study_uid] = study
            self._keys.pop(study.study_uid, None)

    def set_order(self, study_uids: Sequence[str]) -> None:
        """The worklist's order (sorting, filtering): Page Down / Page Up follow it."""
        self.order = [uid for uid in study_uids if uid in self.studies]

    def key(self, study: Study) -> StudyKey:
        if study.study_uid not in self._keys:
            self._keys[study.study_uid] = study_key(study, self.facts)
        return self._keys[study.study_uid]

    def prior_of(self, study: Study) -> Study | None:
        """The most recent earlier study of the same patient, modality and body part among all opened."""
        found = find_prior(self.key(study), self._same_id_keys(study))
        return self.studies[found.study_uid] if found is not None else None

    def patient_studies(self, study: Study) -> list[Study]:
        """The patient's other studies among all opened, most recent first (patients told apart as priors are)."""
        keys = same_patient_studies(self.key(study), self._same_id_keys(study))
        return [self.studies[k.study_uid] for k in keys]

    def _same_id_keys(self, study: Study) -> list[StudyKey]:
        """Keys of the studies with the same Patient ID: only their headers are read for birth dates."""
        wanted = study.patient_id.strip()
        return [self.key(s) for s in self.studies.values() if wanted and s.patient_id.strip() == wanted]

    # --- cases ---------------------------------------------------------------------------------------------
    def open_case(self, study_uid: str) -> bool:
        """Open a study in the layout its hanging protocol gives (not compared; linked as the protocol says)."""
        study = self.studies.get(study_uid)
        if study is None:
            return False
        self.case = study
        self._saved = self._mpr_saved = None
        self._geometries = {}
        self._left_at = {}
        protocol = self._protocol(study)
        self._hang(protocol.hanging, study, None)
        return True

    def close_case(self) -> None:
        """No case open (an empty worklist): one empty viewport, nothing compared or linked."""
        self.case = None
        self._saved = self._mpr_saved = None
        self._geometries = {}
        self._left_at = {}
        self.layout, self.viewports, self.active, self.linked = (1, 1), [Viewport()], 0, False

    def step_case(self, delta: int) -> bool:
        """Page Down / Page Up: the next / previous case in the reading order."""
        if not self.order:
            return False
        if self.case is None or self.case.study_uid not in self.order:
            k = 0 if delta > 0 else len(self.order) - 1
        else:
            k = self.order.index(self.case.study_uid) + delta
        if not 0 <= k < len(self.order):
            return False
        return self.open_case(self.order[k])

    def _protocol(self, study: Study):
        modalities = {stack.modality for stack in study.stacks}
        return self.protocols.choose(modalities, self.key(study).body_part)

    def _hang(self, hanging, study: Study, prior: Study | None, focus: Stack | None = None) -> None:
        cells = hang(hanging, study, prior, focus)
        self.layout = hanging.layout
        self.viewports = []
        for cell in cells:
            viewport = Viewport()
            if cell is not None:
                viewport.show(*cell)
            self.viewports.append(viewport)
        self.active = 0
        self.linked = hanging.linked
        if self.linked:
            self._follow(self.viewports[0])

    # --- the active viewport -------------------------------------------------------------------------------
    @property
    def viewport(self) -> Viewport:
        return self.viewports[self.active]

    def step_viewport(self, delta: int) -> bool:
        """Tab / Shift+Tab: the next / previous viewport becomes active (round the layout)."""
        if len(self.viewports) < 2:
            return False
        self.active = (self.active + delta) % len(self.viewports)
        return True

    def activate(self, index: int) -> bool:
        """A click in a viewport makes it the active one."""
        if not 0 <= index < len(self.viewports) or index == self.active:
            return False
        self.active = index
        return True

    # --- images and series ---------------------------------------------------------------------------------
    def go_to(self, index: int) -> bool:
        """Show image `index` of the active viewport (clamped); linked viewports follow."""
        viewport = self.viewport
        if viewport.empty or not viewport.view.go(index):
            return False
        if viewport.reformatted:  # the plane moves along its normal, and the crosshair with it
            steps = self._steps.get(viewport.plane)
            if steps is not None and self.crosshair is not None:
                self._place_crosshair(steps.moved(self.crosshair, viewport.view.index))
            return True
        if self.linked:
            self._follow(viewport)
        return True

    def scroll(self, delta: int) -> bool:
        """↓ / ↑ (1), Shift+↓ / Shift+↑ (PAGE), the mouse wheel."""
        return self.go_to(self.viewport.view.index + delta)

    def next_image(self) -> bool:
        return self.scroll(1)

    def previous_image(self) -> bool:
        return self.scroll(-1)

    def first_image(self) -> bool:
        return self.go_to(0)

    def last_image(self) -> bool:
        return self.go_to(self.viewport.view.count - 1)

    def step_series(self, delta: int) -> bool:
        """→ / ←: the next / previous stack of the active viewport's study (no wrapping)."""
        viewport = self.viewport
        if viewport.study is None or viewport.stack is None:
            return False
        stacks = viewport.study.stacks
        k = next(i for i, s in enumerate(stacks) if s is viewport.stack) + delta
        if viewport.reformatted:  # the planes of the next series that can be reformatted
            while 0 <= k < len(stacks):
                if self._reformat_problem(stacks[k]) is None:
                    self._hang_mpr(viewport.study, stacks[k], viewport.prior)
                    return True
                k += delta
            return False
        if not 0 <= k < len(stacks):
            return False
        self._leave(viewport)
        viewport.show(viewport.study, stacks[k], viewport.prior, self.left_at(stacks[k]))
        if self.linked:
            self._follow(viewport)
        return True

    def show_stack(self, stack: Stack, index: int | None = None) -> bool:
        """The reader picks a series of the case (the series strip, a finding, a key image): the active viewport
        shows it from image `index`, or where the reader left it (None); linked viewports follow. False when the
        stack is not the case's, or is shown already and no image is asked for."""
        if self.case is None or not any(s is stack for s in self.case.stacks):
            return False
        viewport = self.viewport
        if viewport.stack is stack and viewport.study is self.case and not viewport.reformatted:
            return index is not None and self.go_to(index)
        if viewport.reformatted and self._reformat_problem(stack) is None:
            self._hang_mpr(self.case, stack, False, index or 0)
            return True
        self._leave(viewport)
        viewport.show(self.case, stack, index=self.left_at(stack) if index is None else index)
        if self.linked:
            self._follow(viewport)
        return True

    def left_at(self, stack: Stack) -> int:
        """The image the reader left `stack` at in this case (0 where they have not shown it yet)."""
        found = self._left_at.get(id(stack))
        return found[1] if found is not None and found[0] is stack else 0

    def _leave(self, viewport: Viewport) -> None:
        """The viewport is about to show another stack: remember where its stack was left."""
        if viewport.stack is not None and not viewport.reformatted:
            self._left_at[id(viewport.stack)] = (viewport.stack, viewport.view.index)

    def next_series(self) -> bool:
        return self.step_series(1)

    def previous_series(self) -> bool:
        return self.step_series(-1)

    def set_plane(self, plane: str) -> bool:
        """The plane the active viewport shows (MPR: axial, coronal, sagittal of its stack)."""
        if plane not in PLANES:
            raise ValueError(f"plane must be one of {', '.join(PLANES)}, not {plane!r}")
        changed = plane != self.viewport.plane
        self.viewport.plane = plane
        return changed

    # --- window and zoom -----------------------------------------------------------------------------------
    def set_window(self, center: float, width: float) -> bool:
        """The active viewport's window; while linked (and `link_window`), also that of every viewport of the
        same modality."""
        viewport = self.viewport
        if viewport.empty:
            return False
        viewport.view.window = Window(float(center), max(1.0, float(width)))
        self._share_window(viewport)
        return True

    def _share_window(self, source: Viewport) -> None:
        if self.linked and self.link_window and isinstance(source.view.window, Window):
            for other in self._others(source):
                if other.stack.modality == source.stack.modality:
                    other.view.window = source.view.window

    def zoom_by(self, factor: float) -> bool:
        self.viewport.view.zoom_by(factor)
        self._share_zoom()
        return True

    def pan_by(self, dx: float, dy: float) -> bool:
        """Move the active viewport's centre by `dx` widths and `dy` heights of its image."""
        viewport = self.viewport
        viewport.pan = (viewport.pan[0] + dx, viewport.pan[1] + dy)
        self._share_zoom()
        return True

    def set_zoom_pan(self, zoom: float, pan: tuple[float, float]) -> bool:
        """The active viewport's zoom (relative to fit) and pan as the reader left them with the mouse or keys;
        while zoom is linked, the others take them. True when others follow (the window draws them)."""
        viewport = self.viewport
        if viewport.empty:
            return False
        viewport.view.zoom, viewport.pan = float(zoom), (float(pan[0]), float(pan[1]))
        self._share_zoom()
        return self.linked and self.link_zoom and bool(self._others(viewport))

    def reset_view(self) -> bool:
        """Esc on the active viewport (and, while zoom is linked, on the others' zoom and pan too)."""
        self.viewport.reset()
        self._share_zoom()
        return True

    def _share_zoom(self) -> None:
        if self.linked and self.link_zoom:
            for other in self._others(self.viewport):
                other.view.zoom, other.pan = self.viewport.view.zoom, self.viewport.pan

    # --- layout, comparison, links -------------------------------------------------------------------------
    def set_layout(self, rows: int, columns: int) -> bool:
        """A layout of rows × columns: the viewports kept in order, new ones filled with the case's stacks not
        shown yet (series order), the rest empty."""
        if not (1 <= rows <= 4 and 1 <= columns <= 4):
            raise ValueError(f"layout must be 1 to 4 rows and columns, not {rows}×{columns}")
        if (rows, columns) == self.layout:
            return False
        n = rows * columns
        kept = self.viewports[:n]
        shown = {id(v.stack) for v in kept if v.stack is not None}
        spare = [s for s in (self.case.stacks if self.case is not None else []) if id(s) not in shown]
        while len(kept) < n:
            viewport = Viewport()
            if spare:
                stack = spare.pop(0)
                viewport.show(self.case, stack, index=self.left_at(stack))
            kept.append(viewport)
        self.layout, self.viewports = (rows, columns), kept
        self.active = min(self.active, n - 1)
        return True

    def choose_layout(self, number: int) -> bool:
        """Ctrl+1..Ctrl+4: 1×1, 1×2, 2×1, 2×2."""
        return self.set_layout(*LAYOUT_KEYS[number])

    @property
    def comparing(self) -> bool:
        return self._saved is not None

    @property
    def shown_prior(self) -> Study | None:
        """The prior study a viewport shows beside the case (None: not comparing, or no prior shown)."""
        return next((v.study for v in self.viewports if v.prior and v.study is not None), None)

    def compare_with_prior(self) -> str | None:
        """P: the case beside its prior as its hanging protocol says (the series being read beside the prior's
        matching one); again: back to what was shown before.

        Returns None when done, or the reason nothing changed (no open case, no prior).
        """
        if self._mpr_saved is not None:  # P compares (or stops comparing) what the planes replaced
            if self._saved is None and (self.case is None or self.prior_of(self.case) is None):
                return "No case is open" if self.case is None else NO_PRIOR
            self.mpr()
        if self._saved is not None:
            saved, self._saved = self._saved, None
            self.layout, self.viewports, self.active, self.linked = (saved.layout, saved.viewports, saved.active,
                                                                     saved.linked)
            return None
        if self.case is None:
            return "No case is open"
        prior = self.prior_of(self.case)
        if prior is None:
            return NO_PRIOR
        saved = _Saved(self.layout, self.viewports, self.active, self.linked)
        current = self.viewport
        focus = current.stack if current.study is self.case else None
        self._hang(self._protocol(self.case).compare, self.case, prior, focus)
        self._saved = saved
        for i, viewport in enumerate(self.viewports):  # the stack being read stays as the reader had it
            if not viewport.prior and viewport.stack is current.stack and current.stack is not None:
                viewport.view, viewport.pan = replace(current.view), current.pan
                self.active = i
                if self.linked:
                    self._follow(viewport)
                    self._share_window(viewport)
                break
        return None

    # --- reformatted planes (MPR) ---------------------------------------------------------------------------
    @property
    def in_mpr(self) -> bool:
        return self._mpr_saved is not None

    def volume_geometry(self, stack: Stack) -> mpr.VolumeGeometry:
        """The geometry of a stack's volume from its headers (every slice, loaded or not), read once.
        Raises mpr.ReformatError for a stack that cannot be reformatted."""
        found = self._geometries.get(id(stack))
        if found is None or found[0] is not stack:
            found = self._geometries[id(stack)] = (stack, mpr.volume_geometry(stack))
        return found[1]

    def _reformat_problem(self, stack: Stack) -> str | None:
        try:
            self.volume_geometry(stack)
        except mpr.ReformatError as exc:
            return str(exc)
        return None

    def mpr(self) -> str | None:
        """M: axial, coronal and sagittal planes of the active viewport's stack side by side, their crosshair at
        the centre of the image being read; again: back to the layout as it was.

        Returns None when done, or the reason nothing changed (no stack, one that cannot be reformatted).
        """
        if self._mpr_saved is not None:
            saved, self._mpr_saved = self._mpr_saved, None
            self.layout, self.viewports, self.active, self.linked = (saved.layout, saved.viewports, saved.active,
                                                                     saved.linked)
            self._steps, self.crosshair = {}, None
            return None
        current = self.viewport
        if current.empty:
            return "No series in this viewport to reformat"
        problem = self._reformat_problem(current.stack)
        if problem is not None:
            return f"This series cannot be reformatted: {problem}"
        saved = _Saved(self.layout, self.viewports, self.active, self.linked)
        self._hang_mpr(current.study, current.stack, current.prior, current.view.index, current.view)
        self._mpr_saved = saved
        return None

    def _hang_mpr(self, study: Study, stack: Stack, prior: bool, index: int = 0,
                  view: ViewState | None = None) -> None:
        """The three planes of `stack`, crosshair at the centre of its image `index`, window as `view` had it;
        the plane parallel to the slices is the active one (the keys go on scrolling as they did)."""
        geometry = self.volume_geometry(stack)
        self._steps = {plane: plane_steps(geometry, plane) for plane in mpr.PLANES}
        centre = geometry.frame_centre(min(max(index, 0), stack.frame_count - 1))
        point = np.asarray(centre if centre is not None else geometry.center(), dtype=np.float64)
        self.layout, self.viewports = MPR_LAYOUT, []
        for plane in mpr.PLANES:
            viewport = Viewport()
            viewport.show(study, stack, prior)
            viewport.plane, viewport.geometry = plane, geometry
            viewport.view.count = self._steps[plane].count
            if view is not None:
                viewport.view.window, viewport.view.initial_window = view.window, view.initial_window
                viewport.view.invert = view.invert
            self.viewports.append(viewport)
        self.active = max(range(len(mpr.PLANES)),
                          key=lambda k: abs(float(self._steps[mpr.PLANES[k]].normal @ geometry.normal)))
        self.linked = True  # a window set in one plane is the window of all three
        self._place_crosshair(point)

    def plane_steps(self, plane: str) -> PlaneSteps | None:
        """Where the reformatted `plane` of the planes shown can be (None: no planes shown)."""
        return self._steps.get(plane)

    def set_crosshair(self, point) -> bool:
        """A click in a reformatted plane: the crosshair goes to that patient point (mm), every plane through it."""
        if not self._steps:
            return False
        self._place_crosshair(np.asarray(point, dtype=np.float64))
        return True

    def _place_crosshair(self, point: np.ndarray) -> None:
        """The crosshair at the step of each plane nearest to `point`: where the three planes shown meet."""
        for steps in self._steps.values():
            point = steps.moved(point, steps.index_of(point))
        self.crosshair = tuple(float(v) + 0.0 for v in point)  # type: ignore[assignment]
        for viewport in self.viewports:
            steps = self._steps.get(viewport.plane) if viewport.reformatted else None
            if steps is not None:
                viewport.point = self.crosshair
                viewport.view.go(steps.index_of(point))

    def cycle_slab(self) -> bool:
        """Shift+M: the active plane's slab mode, off -> MIP -> MinIP -> average -> off; a first slab is
        DEFAULT_SLAB_MM thick. False where the viewport shows no reformatted plane."""
        viewport = self.viewport
        if not viewport.reformatted:
            return False
        viewport.slab = SLAB_MODES[(SLAB_MODES.index(viewport.slab) + 1) % len(SLAB_MODES)]
        if viewport.slab != "off" and not viewport.slab_mm:
            viewport.slab_mm = DEFAULT_SLAB_MM
        return True

    def step_slab(self, delta: int) -> bool:
        """] / [: the active plane's slab thicker / thinner (] on a plane without a slab makes it a MIP). False
        where there is no reformatted plane or the slab is as thick or thin as it goes."""
        viewport = self.viewport
        if not viewport.reformatted or (viewport.slab == "off" and delta < 0):
            return False
        if viewport.slab == "off":
            viewport.slab = "mip"
            viewport.slab_mm = viewport.slab_mm or DEFAULT_SLAB_MM
            return True
        thickness = next_slab_mm(viewport.slab_mm, delta)
        if thickness == viewport.slab_mm:
            return False
        viewport.slab_mm = thickness
        return True

    def slab_refusal(self, delta: int) -> str:
        """Why ] (`delta` > 0) or [ changed nothing on the active viewport, in the reader's words."""
        viewport = self.viewport
        if not viewport.reformatted:
            return NO_SLAB_HERE
        if viewport.slab == "off":
            return "No slab: ] makes one"
        return f"The slab is as {'thick' if delta > 0 else 'thin'} as it goes"

    def toggle_link(self) -> bool:
        """S: link / unlink scrolling (and window, zoom as set) of the viewports; linking aligns them at once,
        unlinking unlinks zoom and pan too."""
        self.linked = not self.linked
        if self.linked:
            self._follow(self.viewport)
        else:
            self.link_zoom = False
        return self.linked

    def toggle_zoom_link(self) -> bool:
        """Shift+S: zoom and pan linked as well (scrolling and window too, where they were not), the others
        taking the active viewport's at once; again: zoom and pan free, scrolling still linked."""
        if self.linked and self.link_zoom:
            self.link_zoom = False
            return False
        if not self.linked:
            self.linked = True
            self._follow(self.viewport)
        self.link_zoom = True
        self._share_zoom()
        return True

    def _others(self, viewport: Viewport) -> list[Viewport]:
        return [v for v in self.viewports if v is not viewport and not v.empty]

    def _follow(self, source: Viewport) -> None:
        """The other viewports show the image that goes with the source's (see `linking`)."""
        if source.empty or source.reformatted:
            return
        frame = self.facts.of_stack(source.stack).frame_of_reference_uid
        for other in self._others(source):
            if other.reformatted:
                continue
            same_frame = bool(frame) and self.facts.of_stack(other.stack).frame_of_reference_uid == frame
            other.view.go(linked_index(source.stack, source.view.index, other.stack, same_frame))

    # --- for the window, tests and scripts -----------------------------------------------------------------
    def reading_state(self) -> dict:
        """What the reader has on screen as plain JSON-able data (SPEC section 7)."""
        case = ({"study_uid": self.case.study_uid, "patient_id": self.case.patient_id}
                if self.case is not None else None)
        return {"case": case, "layout": list(self.layout), "active": self.active, "linked": self.linked,
                "viewports": [v.state() for v in self.viewports]}
