"""The viewports of the reading session on screen, and the pixels of the stacks they show.

`ViewportGrid` lays out one image view per viewport of the session's layout and draws what the core
`ReadingSession` says each one shows: its stack, image, window, zoom, rotation and flip. Keys and the mouse
are intents sent to the session (scroll, Tab, a layout, P, S); the grid then draws the session again. Each
view's `ViewState` is its viewport's own object, so what the reader changes in a view (a window drag, a zoom)
is the session's state, never the widget's alone.

The active viewport has a bright frame and the object name `viewer` (SPEC section 7), the others `viewport`.
With more than one viewport each has a title bar over the image: the study date and series, and for a prior,
on amber, "PRIOR" with its date and how long before the current study it was taken. Beside a prior, each title
also says what the AI found in the image shown (its score, the ratio it measured), and the current one how the
ratio changed since the prior ("CTR 0.49 → 0.56").

Linked (S), the viewports scroll together and share the window; with zoom linked too (Shift+S), zooming or
panning the active viewport shows the same part of every other one (the same fraction of its image).

A viewport showing a reformatted plane (M: axial, coronal and sagittal) draws it with a `PlaneDisplay` over the
loaded stack array, redrawn as slices arrive; its crosshair shows the session's point, where the other two
planes cut it, each line in the colour of its plane (the colour also marks the plane's title bar). A click in a
plane moves the point there.

`StackLoads` reads the pixels of the stacks on screen in the background (one loader per stack, the image shown
first), keeps them while the case is open, and stops loading a stack no viewport shows any more.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QFrame, QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from medview.core.dicom.loader import stack_bytes
from medview.core.dicom.model import FileError, Stack
from medview.core.dicom.pixels import Window
from medview.core.dicom.readable import readable_date
from medview.core.memory import short_of_memory
from medview.core.reading import ReadingSession, Viewport
from medview.core.reading.priors import time_before
from medview.core.viewing.display import StackDisplay
from medview.core.viewing.findings_text import ai_brief_forms
from medview.core.viewing.measure import MeasurementStore
from medview.core.viewing.mpr import ReformatError
from medview.core.viewing.plane_display import PlaneDisplay, plane_normal, slab_text
from medview.qt.actions import is_text_entry
from medview.qt.viewer.image_view import ImageView
from medview.qt.workers.load import LoadWorker

FRAME = 2  # pixels of the frame round each viewport when there are several
ACTIVE_FRAME = "#4fc3f7"
IDLE_FRAME = "#242424"
TITLE_STYLE = "QLabel { background: #1e1e1e; color: #d8d8d8; padding: 2px 8px; font-size: 10pt; }"
PRIOR_TITLE_STYLE = ("QLabel { background: #ffb300; color: #000000; padding: 2px 8px; font-size: 10pt;"
                     " font-weight: bold; }")
# each reformatted plane's colour: its title bar's mark and its line in the other planes' crosshairs
PLANE_COLOURS = {"axial": "#ef5350", "coronal": "#66bb6a", "sagittal": "#ffca28"}
PLANE_TITLE_STYLE = ("QLabel {{ background: #1e1e1e; color: #d8d8d8; padding: 2px 8px 2px 6px; font-size: 10pt;"
                     " border-left: 4px solid {colour}; }}")
PLANE_REFRESH_MS = 150  # while slices arrive, reformatted planes are drawn again at most this often
SLOW_PLANE_S = 0.03  # a plane that took longer to reformat is drawn after the events waiting (see ViewportGrid)


class LoadedStack:
    """A stack with its pixels (filled in place while loading) and its display mapping."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.volume = None
        self.display: StackDisplay | None = None
        self.headers: dict[int, object] = {}
        self.done = False
        self.worker: LoadWorker | None = None

    @property
    def loaded(self) -> int:
        """Images decoded so far."""
        return int(np.count_nonzero(self.volume.loaded)) if self.volume is not None else 0


class StackLoads(QObject):
    """The stacks of the open case (and its prior) with their pixels, loaded in the background."""

    ready = Signal(object)  # LoadedStack: its first image is there; draw it wherever it is shown
    frame_loaded = Signal(object, int)  # LoadedStack, image index
    finished = Signal(object)  # LoadedStack: its loader stopped (all read, or cancelled)
    progress = Signal(int, int)  # images read, images to read, over the loads running
    stopped = Signal()  # a loader's thread ended
    errors = Signal(list)  # FileError, for the failed-files panel
    note = Signal(str)  # for the status bar

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._entries: dict[int, LoadedStack] = {}
        self._retired: list[LoadWorker] = []

    def entry(self, stack: Stack) -> LoadedStack:
        found = self._entries.get(id(stack))
        if found is None or found.stack is not stack:
            found = self._entries[id(stack)] = LoadedStack(stack)
        return found

    def loading(self, ls: LoadedStack) -> bool:
        return ls.worker is not None and ls.worker.isRunning()

    def busy(self) -> bool:
        return any(self.loading(ls) for ls in self._entries.values())

    def start(self, ls: LoadedStack, first: int = 0, shown: Sequence[Stack] = ()) -> None:
        """Load (or, after a cancel, load again) a stack, beginning with image `first`. Where the memory free
        is short for it, the pixels of the stacks not in `shown` are let go first: shown again, they load again."""
        self._retire(ls.worker)
        ls.display = ls.volume = None
        ls.done = False
        if short_of_memory(stack_bytes(ls.stack, first)):
            kept = {id(s) for s in shown} | {id(ls.stack)}
            for other in self._entries.values():
                if id(other.stack) not in kept:
                    self._let_go(other)
        worker = LoadWorker(ls.stack, first=first, parent=self)
        ls.worker = worker  # signals of an earlier, cancelled load of this stack are ignored
        worker.volume_ready.connect(lambda vol, ls=ls, w=worker: w is ls.worker and self._set_volume(ls, vol))
        worker.header_read.connect(lambda i, ds, ls=ls: self._header_read(ls, i, ds))
        worker.frame_loaded.connect(lambda i, ls=ls, w=worker: w is ls.worker and self.frame_loaded.emit(ls, i))
        worker.progress.connect(lambda *_: self._report())
        worker.done.connect(lambda vol, ls=ls, w=worker: self._done(ls, w, vol))
        worker.failed.connect(lambda reason, ls=ls: self._failed(ls, reason))
        worker.finished.connect(self.stopped)
        worker.start()
        self._report()

    def focus(self, stack: Stack, index: int) -> None:
        """A viewport shows image `index` of `stack`: while it loads, the images still to decode go outward from
        there."""
        ls = self._entries.get(id(stack))
        if ls is not None and ls.stack is stack and self.loading(ls):
            ls.worker.focus(index)

    def keep_only(self, stacks: list[Stack]) -> None:
        """Stop loading the stacks not in `stacks` (no viewport shows them): shown again, they load again."""
        shown = {id(s) for s in stacks}
        for ls in self._entries.values():
            if id(ls.stack) not in shown and self.loading(ls):
                self._let_go(ls)

    def _let_go(self, ls: LoadedStack) -> None:
        """A stack's load stops and its pixels go (its headers stay): shown again, it loads again."""
        self._retire(ls.worker)
        ls.worker, ls.display, ls.volume, ls.done = None, None, None, False

    def cancel(self) -> None:
        """The progress bar's Cancel: every load stops; what is read stays usable."""
        for ls in self._entries.values():
            if self.loading(ls):
                ls.worker.cancel()

    def clear(self) -> None:
        """Another case: every load stops and the pixels of the old one go."""
        for ls in self._entries.values():
            self._retire(ls.worker)
        self._entries = {}

    def shutdown(self) -> None:
        """Stop every loader and wait for it: no thread outlives the window."""
        self.clear()
        for worker in list(self._retired):
            worker.wait(5000)

    def _retire(self, worker: LoadWorker | None) -> None:
        if worker is not None and worker.isRunning():
            worker.cancel()
            self._retired.append(worker)
            worker.finished.connect(lambda w=worker: w in self._retired and self._retired.remove(w))

    def _set_volume(self, ls: LoadedStack, volume) -> None:
        """Give the stack its pixels and display mapping (with the headers read so far)."""
        ls.volume = volume
        headers = [ls.headers.get(i) for i in range(len(ls.stack.instances))]
        ls.display = StackDisplay(volume.array, volume.frames, headers)
        self.ready.emit(ls)

    def _header_read(self, ls: LoadedStack, index: int, ds) -> None:
        ls.headers[index] = ds
        if ls.display is not None:
            ls.display.set_header(index, ds)

    def _done(self, ls: LoadedStack, worker: LoadWorker, volume) -> None:
        self.errors.emit(list(volume.errors))
        if worker is not ls.worker:
            return
        ls.done = not volume.cancelled
        if ls.volume is None:  # nothing was read, or the loader gave the volume only at the end
            self._set_volume(ls, volume)
        if volume.cancelled:
            self.note.emit(f"Loading cancelled: {int(np.count_nonzero(volume.loaded))} of {len(volume.loaded)} "
                           "images read")
        self.finished.emit(ls)
        self._report()

    def _failed(self, ls: LoadedStack, reason: str) -> None:
        self.errors.emit([FileError(ls.stack.instances[0].ref.display() if ls.stack.instances else "?", reason)])

    def _report(self) -> None:
        running = [ls for ls in self._entries.values() if self.loading(ls)]
        if running:
            self.progress.emit(sum(ls.loaded for ls in running), sum(ls.stack.frame_count for ls in running))


def viewport_titles(viewport: Viewport, comparing: bool, current_date: str, linked: bool,
                    ai: Sequence[str] = (), zoom_linked: bool = False) -> list[str]:
    """The title bar of a viewport, longest first, each shorter one leaving out what matters least: "PRIOR
    2023-01-10 · AI cardiomegaly 0.12, CTR 0.49 · 1 year 4 months before · Se 1 CHEST PA · linked" ... "PRIOR
    2023-01-10". The window shows the longest that fits: a prior's date is never cut off. `ai`: what the AI
    found in the image shown, longest first (`findings_text.ai_brief_forms`): where the whole title does not
    fit, the series and the time before go first, then the AI's words get shorter."""
    if viewport.stack is None or viewport.study is None:
        return ["Empty: click here, then a series in the strip", "Empty"]
    series = " ".join(x for x in (f"Se {viewport.stack.number}" if viewport.stack.number is not None else "",
                                  viewport.stack.description) if x)
    date = readable_date(viewport.study.study_date) or "no date"
    if viewport.prior:
        before = time_before(viewport.study.study_date, current_date)
        parts = [f"PRIOR  {date}", ai[0] if ai else "", f"{before} before" if before else "", series]
    else:
        parts = [f"CURRENT  {date}" if comparing else date, ai[0] if ai else "", series]
    if viewport.reformatted:  # what a plane is matters most: it comes first
        parts.insert(0, " ".join(x for x in (viewport.plane.capitalize(),
                                             slab_text(viewport.slab, viewport.slab_mm)) if x))
        linked = False  # the planes are always linked, by their crosshair
    parts = [p for p in parts + [("linked, zoom too" if zoom_linked else "linked") if linked else ""] if p]
    titles = ["  ·  ".join(parts[:n]) for n in range(len(parts), 0, -1)]
    if ai:
        k = parts.index(ai[0])  # the title that ends with the AI's words, then the same with fewer words
        at = len(parts) - (k + 1)
        titles[at + 1:at + 1] = ["  ·  ".join(parts[:k] + [form]) for form in ai[1:]]
    return titles


def crosshair_colours(plane: PlaneDisplay) -> tuple[str, str]:
    """The colours of a plane's horizontal and vertical crosshair lines: those of the planes that cut it there."""
    row_direction, column_direction = (np.asarray(v) for v in plane.directions)

    def cutting(direction: np.ndarray) -> str:
        others = [p for p in PLANE_COLOURS if p != plane.plane]
        return PLANE_COLOURS[max(others, key=lambda p: abs(float(plane_normal(p) @ direction)))]

    return cutting(column_direction), cutting(row_direction)


class ViewportCell(QFrame):
    """One viewport on screen: a title bar (shown with more than one viewport) over its image view, in a frame
    that is bright while it is the active one."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("viewport_cell")
        self.title = QLabel(self)
        self.title.setObjectName("viewport_title")
        self.title.setStyleSheet(TITLE_STYLE)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        # a long title never widens its column: the layout's columns stay equal, the text is cut at the end
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.title.hide()
        self.view = ImageView(self)
        self.view.setMinimumSize(120, 120)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
        self._look: tuple = ()
        self._titles: list[str] = []

    def set_look(self, active: bool, several: bool, titles: list[str], prior: bool, plane: str = "acquired") -> None:
        """Frame and title: only where there are several viewports (one needs neither)."""
        look = (active, several, titles, prior, plane)
        if look == self._look:
            return
        self._look, self._titles = look, titles
        margin = FRAME if several else 0
        self.layout().setContentsMargins(margin, margin, margin, margin)
        frame = ACTIVE_FRAME if active and several else IDLE_FRAME
        self.setStyleSheet(f"QFrame#viewport_cell {{ background: {frame}; }}")
        if plane in PLANE_COLOURS:
            self.title.setStyleSheet(PLANE_TITLE_STYLE.format(colour=PLANE_COLOURS[plane]))
        else:
            self.title.setStyleSheet(PRIOR_TITLE_STYLE if prior else TITLE_STYLE)
        self.title.setVisible(several)
        self._fit_title()

    def _fit_title(self) -> None:
        """The longest title that fits the bar (the shortest, cut, where none does)."""
        if not self._titles:
            return
        self.title.ensurePolished()  # the style's font (bold for a prior) is the one measured
        room = self.title.width() - 18  # the style's padding, and a pixel to spare
        metrics = self.title.fontMetrics()
        text = next((t for t in self._titles if metrics.horizontalAdvance(t) <= room), self._titles[-1])
        if text != self.title.text():
            self.title.setText(text)

    def resizeEvent(self, event):  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._fit_title()


class ViewportGrid(QWidget):
    """The session's layout of viewports, drawn; the active view is `active_view` (object name `viewer`)."""

    index_changed = Signal(int, int)  # the active view's image (index, count)
    active_changed = Signal(object)  # the ImageView that became active
    cursor_text = Signal(str)
    message = Signal(str)
    cine_changed = Signal(bool)  # of the active view
    invert_changed = Signal(bool)  # of the active view

    def __init__(self, session: ReadingSession, loads: StackLoads, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("viewports")
        self.session = session
        self.loads = loads
        self.measurements = MeasurementStore()  # one store: a measurement stays with its image in any viewport
        self.tool = "window"
        self.cells: list[ViewportCell] = []
        self._bound: list[tuple | None] = []  # per cell: (stack, view state, plane) it draws, None when empty
        self._planes: list[PlaneDisplay | None] = []  # per cell: the reformatted plane it draws
        self._plane_refresh = QTimer(self)
        self._plane_refresh.setSingleShot(True)
        self._plane_refresh.setInterval(PLANE_REFRESH_MS)
        self._plane_refresh.timeout.connect(self._refresh_planes)
        # a plane slow to reformat (a thick slab) is drawn once the events waiting then are handled: a key held
        # down skips planes instead of queueing them; a fast one is drawn at once, every step
        self._moved_planes: set[int] = set()
        self._plane_draw = QTimer(self)
        self._plane_draw.setSingleShot(True)
        self._plane_draw.setInterval(0)
        self._plane_draw.timeout.connect(self._draw_moved_planes)
        self._placed: tuple = ()
        self._syncing = False
        # (study UID, (SOP Instance UID, frame) | None) -> AiBrief | None: what the AI found, for the titles
        self._ai_briefs = None
        self._ai_texts: list[list[str]] = []
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._add_cell()
        self.active_view: ImageView = self.cells[0].view
        self._place()
        loads.ready.connect(self._stack_ready)
        loads.frame_loaded.connect(self._frame_loaded)
        loads.finished.connect(self._load_finished)

    @property
    def views(self) -> list[ImageView]:
        """The views of the layout on screen, viewport by viewport."""
        return [cell.view for cell in self.cells[:len(self.session.viewports)]]

    # --- drawing the session ----------------------------------------------------------------------------------
    def sync(self) -> None:
        """Draw the session as it is now (after any intent): layout, what each viewport shows, the active one."""
        self._syncing = True
        try:
            viewports = self.session.viewports
            self._ai_texts = self._ai_title_texts()
            while len(self.cells) < len(viewports):
                self._add_cell()
            if self._placed != (self.session.layout, len(viewports)):
                self._place()
            for k, viewport in enumerate(viewports):
                self._draw(k, viewport)
                if viewport.stack is not None:
                    self.loads.focus(viewport.stack, viewport.acquired_index())
            for k in range(len(viewports), len(self.cells)):
                self._unbind(k)
            self.loads.keep_only([v.stack for v in viewports if v.stack is not None])
            self._mark_active()
        finally:
            self._syncing = False

    def _add_cell(self) -> None:
        cell = ViewportCell(self)
        view = cell.view
        view.measurements = self.measurements
        view.tool = self.tool
        view.navigate = lambda index, view=view: self._navigate(view, index)
        view.clicked.connect(lambda view=view: self._clicked(view))
        view.point_clicked.connect(lambda row, col, view=view: self._point_clicked(view, row, col))
        view.window_changed.connect(lambda view=view: self._window_changed(view))
        view.range_moved.connect(lambda view=view: self._range_moved(view))
        view.index_changed.connect(lambda i, n, view=view: view is self.active_view and self.index_changed.emit(i, n))
        view.cine_changed.connect(lambda on, view=view: view is self.active_view and self.cine_changed.emit(on))
        view.invert_changed.connect(lambda on, view=view: view is self.active_view and self.invert_changed.emit(on))
        view.cursor_text.connect(self.cursor_text)
        view.message.connect(self.message)
        self.cells.append(cell)
        self._bound.append(None)
        self._planes.append(None)
        cell.hide()

    def _place(self) -> None:
        """Cells into the grid, row by row; those beyond the layout hidden."""
        rows, columns = self.session.layout
        n = len(self.session.viewports)
        for cell in self.cells:
            self._grid.removeWidget(cell)
        for k, cell in enumerate(self.cells):
            if k < n:
                self._grid.addWidget(cell, k // columns, k % columns)
            cell.setVisible(k < n)
        for r in range(4):
            self._grid.setRowStretch(r, 1 if r < rows else 0)
        for c in range(4):
            self._grid.setColumnStretch(c, 1 if c < columns else 0)
        self._placed = (self.session.layout, n)

    def _set_look(self, k: int, viewport: Viewport) -> None:
        session = self.session
        current_date = session.case.study_date if session.case is not None else ""
        ai = self._ai_texts[k] if k < len(self._ai_texts) else []
        titles = viewport_titles(viewport, session.comparing, current_date, session.linked, ai, session.link_zoom)
        self.cells[k].set_look(k == session.active, len(session.viewports) > 1, titles, viewport.prior,
                               viewport.plane if viewport.reformatted else "acquired")

    def _ai_title_texts(self) -> list[list[str]]:
        """Per viewport, what the AI found in the image it shows, while a prior is beside the current study; the
        current study's with the change since the prior."""
        viewports = self.session.viewports
        if self._ai_briefs is None or not self.session.comparing:
            return [[] for _ in viewports]
        briefs = [self._ai_briefs(v.study.study_uid, v.shown_image()) if v.study is not None else None
                  for v in viewports]
        prior = next((b for v, b in zip(viewports, briefs) if v.prior and b is not None), None)
        return [ai_brief_forms(b, None if v.prior else prior) for v, b in zip(viewports, briefs)]

    def set_ai_briefs(self, source) -> None:
        """Where the titles read what the AI found: `source(study_uid, (sop_instance_uid, frame) | None)` gives
        an `AiBrief` or None."""
        self._ai_briefs = source
        self.refresh_titles()

    def refresh_titles(self) -> None:
        """Titles drawn again (results arrived, the thresholds changed)."""
        self._ai_texts = self._ai_title_texts()
        for k, viewport in enumerate(self.session.viewports[:len(self.cells)]):
            self._set_look(k, viewport)

    def _draw(self, k: int, viewport: Viewport) -> None:
        self._set_look(k, viewport)
        cell = self.cells[k]
        view = cell.view
        if viewport.stack is None:
            self._unbind(k)
            return
        binding = self._bound[k]
        if (binding is not None and binding[0] is viewport.stack and binding[1] is viewport.view
                and binding[2] == viewport.plane):
            plane = self._planes[k]
            if viewport.reformatted and plane is not None and plane.cost_s > SLOW_PLANE_S:
                self._moved_planes.add(k)
                self._plane_draw.start()
                return
            if viewport.reformatted:
                self._follow_plane(k, viewport)
            view.follow_state()
            return
        self._bound[k] = (viewport.stack, viewport.view, viewport.plane)
        self._planes[k] = None
        view.stop_cine()
        ls = self.loads.entry(viewport.stack)
        to_load = not ls.done and not self.loads.loading(ls)  # a load (re)starting begins without pixels
        if ls.display is not None and not to_load:
            self._show_loaded(k, ls)
            return
        view.clear()  # before a load starts: the stack shown before is let go, so a load short of memory can free it
        if to_load:
            self.loads.start(ls, first=viewport.view.index,
                             shown=[v.stack for v in self.session.viewports if v.stack is not None])

    def _unbind(self, k: int) -> None:
        view = self.cells[k].view
        if self._bound[k] is not None or view.stack is not None:
            view.stop_cine()
            view.clear()
        self._bound[k] = None
        self._planes[k] = None

    def _show_loaded(self, k: int, ls: LoadedStack) -> None:
        viewport, view = self.session.viewports[k], self.cells[k].view
        study = viewport.study
        info = {"patient_name": study.patient_name, "patient_id": study.patient_id} if study is not None else {}
        if viewport.reformatted:
            plane = self._plane_display(k, ls, viewport)
            if plane is None:
                view.clear()
                return
            view.set_stack(ls.stack, plane, np.ones(len(plane.frames), bool), info, state=viewport.view)
            self._follow_plane(k, viewport)
        else:
            view.set_stack(ls.stack, ls.display, ls.volume.loaded, info, state=viewport.view)
        if ls.done:
            view.loading_finished(view.display)
        if view is self.active_view and not is_text_entry(QApplication.focusWidget()):
            view.setFocus(Qt.FocusReason.OtherFocusReason)

    def _mark_active(self) -> None:
        active = self.cells[self.session.active].view
        for cell in self.cells:
            cell.view.setObjectName("viewer" if cell.view is active else "viewport")
        if active is self.active_view:
            return
        before, self.active_view = self.active_view, active
        focus = QApplication.focusWidget()
        if focus is None or focus is before or self.isAncestorOf(focus):
            active.setFocus(Qt.FocusReason.OtherFocusReason)
        self.active_changed.emit(active)
        self.invert_changed.emit(active.state.invert)
        self.cine_changed.emit(active.cine_timer.isActive())
        self.index_changed.emit(active.state.index, active.state.count)

    # --- reformatted planes ---------------------------------------------------------------------------------------
    def _plane_display(self, k: int, ls: LoadedStack, viewport: Viewport) -> PlaneDisplay | None:
        """The plane a cell draws, over the stack's loaded array (made once per binding)."""
        plane = self._planes[k]
        if plane is None or plane.source is not ls.display:
            try:
                geometry = self.session.volume_geometry(ls.stack)
            except ReformatError as exc:
                self.message.emit(f"This series cannot be reformatted: {exc}")
                return None
            plane = self._planes[k] = PlaneDisplay(ls.display, ls.volume.loaded, geometry, viewport.plane)
        return plane

    def _follow_plane(self, k: int, viewport: Viewport) -> None:
        """A plane's slab and crosshair as the session has them now."""
        plane, view = self._planes[k], self.cells[k].view
        if plane is None or view.display is not plane:
            return
        if plane.set_slab(viewport.slab, viewport.slab_mm):
            view.refresh()
        if viewport.point is None:
            view.set_crosshair(None)
        else:
            row, col = plane.grid.pixel_of(viewport.point)
            view.set_crosshair(row, col, crosshair_colours(plane))

    def _draw_moved_planes(self) -> None:
        moved, self._moved_planes = self._moved_planes, set()
        for k in sorted(moved):
            if k < len(self.session.viewports) and self.session.viewports[k].reformatted:
                self._follow_plane(k, self.session.viewports[k])
                self.cells[k].view.follow_state()

    def _refresh_planes(self) -> None:
        """Draw the reformatted planes again with the slices decoded since."""
        for k, plane in enumerate(self._planes):
            if plane is not None and self.cells[k].view.display is plane:
                self.cells[k].view.refresh()

    def _point_clicked(self, view: ImageView, row: float, col: float) -> None:
        """A click in a reformatted plane: the crosshair goes there, the other planes through it."""
        k = self._index(view)
        plane = self._planes[k] if k is not None else None
        if plane is None or view.display is not plane:
            return
        self.session.activate(k)
        self.session.set_crosshair(plane.plane_at(view.state.index).patient_position(row, col))
        self.sync()
        self.index_changed.emit(view.state.index, view.state.count)  # the acquired image at the point changed

    # --- what the loaders report --------------------------------------------------------------------------------
    def _showing(self, ls: LoadedStack) -> list[int]:
        return [k for k, binding in enumerate(self._bound) if binding is not None and binding[0] is ls.stack]

    def _stack_ready(self, ls: LoadedStack) -> None:
        for k in self._showing(ls):
            self._show_loaded(k, ls)

    def _frame_loaded(self, ls: LoadedStack, i: int) -> None:
        for k in self._showing(ls):
            view = self.cells[k].view
            if view.display is ls.display:
                view.frame_loaded(i)
            elif self._planes[k] is not None and not self._plane_refresh.isActive():
                self._plane_refresh.start()  # the planes fill in as slices arrive, a few times a second

    def _load_finished(self, ls: LoadedStack) -> None:
        for k in self._showing(ls):
            view = self.cells[k].view
            if self._planes[k] is not None and view.display is self._planes[k]:
                view.refresh()
                view.loading_finished(view.display)
            else:
                view.loading_finished(ls.display)

    # --- intents from the views ---------------------------------------------------------------------------------
    def _index(self, view: ImageView) -> int | None:
        k = next((k for k, cell in enumerate(self.cells) if cell.view is view), None)
        return k if k is not None and k < len(self.session.viewports) else None

    def _navigate(self, view: ImageView, index: int) -> None:
        """A view asks for image `index` (the wheel, a finding): through the session, so linked ones follow."""
        k = self._index(view)
        if k is None:
            return
        self.session.activate(k)
        self.session.go_to(index)
        self.sync()

    def _clicked(self, view: ImageView) -> None:
        k = self._index(view)
        if k is not None and not self._syncing and self.session.activate(k):
            self.sync()

    def _window_changed(self, view: ImageView) -> None:
        """The reader set a window in the active view: while linked, the session gives it to the others."""
        window = view.state.window
        if self._syncing or view is not self.active_view or not self.session.linked or not isinstance(window, Window):
            return
        self.session.set_window(window.center, window.width)
        self.sync()

    def _range_moved(self, view: ImageView) -> None:
        """The reader zoomed or panned the active view: with zoom linked, every other view shows the same part of
        its image."""
        session = self.session
        if self._syncing or view is not self.active_view or not (session.linked and session.link_zoom):
            return
        part = view.part_in_view()
        if part is None or not session.set_zoom_pan(view.state.zoom, part[:2]):
            return
        for k, viewport in enumerate(session.viewports):
            other = self.cells[k].view
            if other is not view and not viewport.empty:
                other.show_part(part, view.state.zoom, view.fitted)

    def follow_active_range(self) -> None:
        """Zoom just linked: the others take the active view's zoom and pan at once."""
        self._range_moved(self.active_view)

    # --- for the window's actions -------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        """The left mouse button's tool, in every viewport."""
        self.tool = tool
        for cell in self.cells:
            cell.view._cancel_drawing()
            cell.view.tool = tool

    def set_cine_fps(self, fps: int) -> None:
        for cell in self.cells:
            cell.view.set_cine_fps(fps)

    def cycle_annotations(self) -> str:
        """Space: corner text, markers and scale bar full, minimal or off, in every viewport alike."""
        mode = self.active_view.cycle_annotations()
        for cell in self.cells:
            if cell.view is not self.active_view:
                cell.view.set_annotation_mode(mode)
        return mode

    def clear(self) -> None:
        """No case: every view empty, the measurements of the case gone."""
        self.measurements.clear()
        for k in range(len(self.cells)):
            self._unbind(k)
        self.sync()

    def stop(self) -> None:
        for cell in self.cells:
            cell.view.stop_cine()
