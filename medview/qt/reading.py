"""The reader's intents on the reading session: scrolling, layouts, the prior, links, the planes, slabs, tools.

`ReadingController` binds the window's keys (SPEC section 6) to `ReadingSession`'s intents, draws the session
after each and says in the status bar what changed or why nothing did. `create_app` builds it first and hands
it to the case and PACS controllers, which draw through it after opening a case or a stack. The window only
lays out what it draws (viewports, series strip, worklist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from medview.core.dicom.readable import readable_date
from medview.core.reading import NO_SLAB_HERE, WorklistRoom
from medview.core.viewing.plane_display import slab_text
from medview.core.viewing.state import TOOLS

if TYPE_CHECKING:
    from medview.qt.main_window import MainWindow
    from medview.qt.viewer.image_view import ImageView


class ReadingController(QObject):
    """Sends the reader's keys to the window's reading session and draws what they changed."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.session = window.reading
        self.room = WorklistRoom()
        window.worklist_chosen.connect(self.room.reader_chose)
        window.viewports.active_changed.connect(self._active_changed)
        session, r = self.session, window.registry
        for action_id, intent in (("image.next", lambda: session.scroll(1)), ("image.prev", lambda: session.scroll(-1)),
                                  ("image.next10", lambda: session.scroll(10)),
                                  ("image.prev10", lambda: session.scroll(-10)),
                                  ("image.first", session.first_image), ("image.last", session.last_image),
                                  ("viewport.next", lambda: session.step_viewport(1)),
                                  ("viewport.prev", lambda: session.step_viewport(-1))):
            r.connect(action_id, lambda intent=intent: intent() and self.draw_session())
        for n in range(1, 5):
            r.connect(f"layout.{n}", lambda n=n: self.choose_layout(n))
        r.connect("reading.prior", self.compare_with_prior)
        r.connect("reading.link", self.toggle_link)
        r.connect("reading.link_zoom", self.toggle_zoom_link)
        r.connect("reading.mpr", self.toggle_mpr)
        r.connect("reading.slab_mode", self.cycle_slab)
        r.connect("reading.slab_thinner", lambda: self.step_slab(-1))
        r.connect("reading.slab_thicker", lambda: self.step_slab(1))
        r.connect("view.reset", self.reset_view)
        for t in TOOLS:
            r.connect(f"tool.{t}", lambda _checked=False, t=t: self.set_tool(t))

    def _message(self, text: str, ms: int) -> None:
        self.window.statusBar().showMessage(text, ms)

    # --- drawing ----------------------------------------------------------------------------------------------
    def draw_session(self) -> str:
        """Draw the reading session after an intent changed it; returns what the reader should be told about the
        room made for it ("" for nothing)."""
        window = self.window
        window.viewports.sync()
        window.strip.mark(window.stack_index)
        note = self._make_room_for_viewports()
        if note:
            self._message(note, 5000)
        return note

    def _make_room_for_viewports(self) -> str:
        """The worklist folds away for viewports side by side, or comes back, as `WorklistRoom` says."""
        window = self.window
        fold = self.room.layout_drawn(self.session.layout[1], window.worklist_shown(), window.viewports.width())
        if fold is None:
            return ""
        window.place_worklist(not fold)
        return "Worklist folded for room (Ctrl+L brings it back)" if fold else ""

    def _active_changed(self, view: ImageView) -> None:
        """Keys go to the viewport made active; the series strip marks the stack it shows."""
        self.window.setFocusProxy(view)
        self.window.strip.mark(self.window.stack_index)

    # --- layouts, the prior, links ----------------------------------------------------------------------------
    def choose_layout(self, number: int) -> None:
        """Ctrl+1..Ctrl+4: 1×1, 1×2, 2×1, 2×2."""
        if self.session.choose_layout(number):
            self.draw_session()

    def compare_with_prior(self) -> None:
        """P: the case beside the patient's previous study; again: back."""
        comparing = self.session.comparing
        reason = self.session.compare_with_prior()
        if reason is not None:
            self._message(reason, 4000)
            return
        note = self.draw_session()
        prior = self.session.shown_prior
        if comparing:
            self._message("Back from the comparison", 3000)
        elif prior is not None:
            self._message(f"Prior of {readable_date(prior.study_date)} beside the current study"
                          + (f". {note}" if note else ""), 5000)

    def toggle_link(self) -> None:
        """S: link / unlink scrolling and window of the viewports."""
        linked = self.session.toggle_link()
        self.draw_session()
        self._message("Viewports linked: scrolling and window follow the active one" if linked
                      else "Viewports unlinked", 3000)

    def toggle_zoom_link(self) -> None:
        """Shift+S: zoom and pan of the viewports linked too (scrolling and window with them); again: free."""
        linked = self.session.toggle_zoom_link()
        self.draw_session()
        if linked:
            self.window.viewports.follow_active_range()
        self._message("Zoom and pan linked: every viewport shows the same part of its image" if linked
                      else "Zoom and pan free again; scrolling and window still linked", 3000)

    # --- reformatted planes and slabs -------------------------------------------------------------------------
    def toggle_mpr(self) -> None:
        """M: axial, coronal and sagittal planes of the active series with their crosshair; again (or Esc): back."""
        leaving = self.session.in_mpr
        reason = self.session.mpr()
        if reason is not None:
            self._message(reason, 5000)
            return
        note = self.draw_session()
        self._message("Back from the planes" if leaving else
                      "Axial, coronal and sagittal: a click moves the crosshair, Shift+M a slab, "
                      "M or Esc back" + (f". {note}" if note else ""), 5000)

    def cycle_slab(self) -> None:
        """Shift+M: the plane's slab mode (off, MIP, MinIP, average)."""
        if not self.session.cycle_slab():
            self._message(NO_SLAB_HERE, 4000)
            return
        self.draw_session()
        viewport = self.session.viewport
        self._message(f"Slab: {slab_text(viewport.slab, viewport.slab_mm) or 'off'}", 3000)

    def step_slab(self, delta: int) -> None:
        """] / [: a thicker / thinner slab."""
        viewport = self.session.viewport
        if self.session.step_slab(delta):
            self.draw_session()
            self._message(f"Slab: {slab_text(viewport.slab, viewport.slab_mm)}", 3000)
            return
        refusal = self.session.slab_refusal(delta)
        self._message(refusal, 4000 if refusal == NO_SLAB_HERE else 3000)

    # --- the active view --------------------------------------------------------------------------------------
    def reset_view(self) -> None:
        """Esc: the filter field gives the keys back to the image; the planes are left (after a measurement
        being drawn is cancelled); else the active view is reset."""
        window = self.window
        if window.worklist.filter.hasFocus():
            window.viewer.setFocus()
            return
        if self.session.in_mpr and not window.viewer.drawing:
            self.toggle_mpr()
            return
        window.viewer.reset()

    def set_tool(self, tool: str) -> None:
        """W, T, Z, D, E: the left mouse button's tool in every viewport, checked in the toolbar."""
        self.window.viewports.set_tool(tool)
        self.window.registry.action(f"tool.{tool}").setChecked(True)
        self._message(f"Left mouse button: {tool}", 2000)
