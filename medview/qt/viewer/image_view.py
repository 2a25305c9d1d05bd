"""The image view (`viewer`): pyqtgraph ViewBox + ImageItem, stack navigation, window, tools, measurements.

One `StackDisplay` per stack turns stored frames into what the ImageItem shows (uint16 + a lookup table from
the shared display pipeline); a window change swaps only the table. The image and everything attached to it
(measurements, the AI heatmap overlay) are children of `image_group`, whose transform does rotation and flip,
so overlays stay aligned whatever the zoom, pan, rotation or flip. View units are mm (pixel spacing) so the
aspect ratio is right for non-square pixels; y points down.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QTransform
from PySide6.QtWidgets import QVBoxLayout, QWidget

from medview.core.dicom.model import Stack
from medview.core.dicom.pixels import MODALITY_UNITS, VoiLut, Window
from medview.core.dicom.readable import readable_date, readable_name
from medview.core.settings import Settings
from medview.core.viewing.display import StackDisplay
from medview.core.viewing.measure import (
    PIXEL_CENTRE,
    Calibration,
    Measurement,
    MeasurementStore,
    calibration_for,
    distance,
    ellipse_stats,
    format_distance,
    format_stats,
)
from medview.core.viewing.orientation import (
    age_sex_text,
    edge_markers,
    image_orientation_vectors,
    patient_orientation_vectors,
)
from medview.core.viewing.plane_display import PlaneDisplay, slab_text
from medview.core.viewing.state import ANNOTATION_MODES, ZOOM_STEP, ViewState, drag_window, preset_window
from medview.qt.settings_store import app_settings
from medview.qt.viewer.annotations import CornerText, EdgeMarkers
from medview.qt.viewer.crosshair import Crosshair
from medview.qt.viewer.measurements import MeasureItem

log = logging.getLogger(__name__)


def _text(header, keyword: str) -> str:
    """A header attribute as text ("" where the header or the attribute is missing)."""
    value = header.get(keyword, "") if header is not None else ""
    return str(value or "").strip()


class _ViewBox(pg.ViewBox):
    """Left drag goes to the active tool, the wheel scrolls the stack (Ctrl+wheel zooms)."""

    def __init__(self, view: "ImageView"):
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self._view = view
        self._wheel_rest = 0

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - pyqtgraph API
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._view.zoom_by(ZOOM_STEP if ev.delta() > 0 else 1 / ZOOM_STEP)
        else:
            self._wheel_rest += ev.delta()
            steps = int(self._wheel_rest / 120)
            if steps:
                self._wheel_rest -= steps * 120
                self._view.step(-steps)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - pyqtgraph API
        if ev.button() == Qt.MouseButton.LeftButton and self._view.tool != "pan":
            self._view._left_drag(ev)
            return
        if ev.button() == Qt.MouseButton.LeftButton or ev.button() == Qt.MouseButton.MiddleButton:
            ev.accept()
            delta = self.mapToView(ev.lastPos()) - self.mapToView(ev.pos())
            self.translateBy(delta.x(), delta.y())
            self._view._left_fit()
            return
        super().mouseDragEvent(ev, axis)  # right button: pyqtgraph's zoom drag

    def mouseClickEvent(self, ev):  # noqa: N802 - pyqtgraph API
        if ev.button() == Qt.MouseButton.LeftButton:
            self._view.select(None)
            self._view._plane_clicked(ev.scenePos())
            ev.accept()
            return
        super().mouseClickEvent(ev)


class ImageView(QWidget):
    """Shows one stack at a time; its state is a `ViewState`, its pixels a `StackDisplay`."""

    index_changed = Signal(int, int)  # index, count
    cursor_text = Signal(str)  # pixel value under the cursor, in modality units
    message = Signal(str)  # short notes for the status bar
    tool_changed = Signal(str)
    cine_changed = Signal(bool)
    resized = Signal()  # for what the window lays over the view (an event filter would call Python per event)
    invert_changed = Signal(bool)  # the view's invert, after every change (I, Esc, a new stack): the button follows
    window_changed = Signal()  # the reader changed the window (preset, 0, drag, Esc): linked views follow
    clicked = Signal()  # the reader clicked or scrolled in this view (it becomes the active viewport)
    point_clicked = Signal(float, float)  # a left click in a reformatted plane: (row, column), pixel centres at 0
    range_moved = Signal()  # the part of the image in view changed (zoom, pan, fit), not by `show_part`

    def __init__(self, parent: QWidget | None = None, settings: Settings | None = None):
        super().__init__(parent)
        self.settings = settings or app_settings()
        # pyqtgraph drops mouse moves closer than 10 ms apart: a W/L drag would then miss the position the
        # mouse stopped at. Qt already compresses moves when the loop is busy, so no limit is needed.
        pg.setConfigOptions(mouseRateLimit=0)
        self.setObjectName("viewer")
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setAcceptDrops(False)  # drops go to the main window
        self.graphics = pg.GraphicsView(self, background="#000000")
        self.graphics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.vb = _ViewBox(self)
        self.vb.setAspectLocked(True, 1.0)
        self.graphics.setCentralItem(self.vb)
        self.image_group = pg.ItemGroup()
        self.vb.addItem(self.image_group, ignoreBounds=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setParentItem(self.image_group)
        self.crosshair = Crosshair(self.image)  # a reformatted plane's: where the other planes cut it
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self.corners = CornerText(self.graphics)
        self.markers = EdgeMarkers(self.graphics, self.corners)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.vb.sigRangeChanged.connect(lambda *_: self._range_changed())
        self._showing_part = False  # `show_part` is moving the view: not the reader
        self.vb.sigResized.connect(self._resized)
        self.vb.sigRangeChangedManually.connect(self._left_fit)
        self._fitted = True  # the view follows "fit" until the user zooms or pans

        self.state = ViewState()
        self.stack: Stack | None = None
        self.display: StackDisplay | None = None
        self.loaded: np.ndarray | None = None
        self.case_info: dict = {}
        self.calibration = Calibration(None)
        self.scale = (1.0, 1.0)
        self.tool = "window"
        self.measurements = MeasurementStore()
        self._items: list[MeasureItem] = []
        self._selected: MeasureItem | None = None
        self._drawing: MeasureItem | None = None
        self._drag_window: Window | None = None
        self._span = 1.0
        self._shown: int | None = None
        self._stack_key: tuple = ()
        self._load_finished = False
        self._size = (1, 1)
        self._grey: np.ndarray | None = None  # grey levels shown, reused frame after frame
        self._drawn: tuple = ()  # (index, window, invert) last drawn: what `follow_state` compares with
        self._turned: tuple = ()  # (rotation, flip) the image group is turned by
        self._facts_key: tuple = ()  # the header and instance `_facts` were read from
        self._facts: tuple = ("", None)
        # where image changes go instead of this view alone (the reading session: linked viewports follow);
        # called with the image index asked for, it ends by calling `follow_state`
        self.navigate = None
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(self._cine_tick)
        self.cine_fps = max(1, min(120, self.settings.get("cine_fps")))
        self._blank()

    # --- opening --------------------------------------------------------------------------------------------
    def set_stack(self, stack: Stack, display: StackDisplay, loaded: np.ndarray, case_info: dict | None = None,
                  index: int = 0, state: ViewState | None = None) -> None:
        """Show `stack`; frames appear as `loaded` fills (call `frame_loaded` when one arrives).

        `state`: the view state to draw and change (a viewport's, kept by the reading session), at its own image,
        window, zoom, rotation and flip; without one, a fresh state at image `index`.
        """
        self.stop_cine()
        self._clear_items()
        self.stack, self.display, self.loaded = stack, display, loaded
        self.case_info = case_info or {}
        plane = self.plane
        # measurements belong to an image: a reformatted plane's are its own, apart from the acquired images'
        self._stack_key = (stack.series_uid, id(stack)) + ((plane.plane,) if plane is not None else ())
        self._load_finished = False
        first = stack.instances[0] if stack.instances else None
        if plane is not None:  # resampled to square pixels at the plane's spacing
            self.calibration = Calibration((plane.spacing, plane.spacing))
        else:
            self.calibration = calibration_for(
                stack.modality, first.pixel_spacing if first else None, first.imager_pixel_spacing if first else None
            )
        self.crosshair.set_point(None, display.frame_shape)
        row, col = self.calibration.spacing or (1.0, 1.0)
        self.scale = (col, row)
        zoom = 1.0
        if state is None:
            state = ViewState(count=len(display.frames))
            state.go(index)
        else:
            state.count = len(display.frames)
            state.go(state.index)
            zoom = state.zoom
        state.annotations = self.state.annotations
        self.state = state
        self.invert_changed.emit(self.state.invert)
        # image pixels -> mm (independent of the data, unlike ImageItem.setRect)
        self.image.setTransform(QTransform.fromScale(col, row))
        self._size = tuple(display.frame_shape)
        self._apply_transform()
        self._shown = None
        self._show()
        self.fit()
        if zoom != 1.0:
            self.zoom_by(zoom)

    def frame_loaded(self, i: int) -> None:
        """A frame arrived from the loader: draw it if it is the one wanted."""
        if i == self.state.index and self._shown != i:
            self._show()
        elif i % 16 == 0:
            self._update_annotations()

    def loading_finished(self, display: StackDisplay | None) -> None:
        """The loader is done with `display` (finished or cancelled): unloaded frames are now "not loaded"."""
        if display is not None and display is self.display:
            self._load_finished = True
            self._update_annotations()

    def refresh(self) -> None:
        """Draw the image again: what it shows changed under the same index (a slab, slices that arrived)."""
        if self.display is not None:
            self._show()

    @property
    def plane(self) -> PlaneDisplay | None:
        """The reformatted plane shown, or None for the acquired images."""
        return self.display if isinstance(self.display, PlaneDisplay) else None

    @property
    def drawing(self) -> bool:
        """A measurement is being drawn (Esc cancels it before anything else)."""
        return self._drawing is not None

    def set_crosshair(self, row: float | None, col: float = 0.0, colours: tuple[str, str] | None = None) -> None:
        """The crosshair of a reformatted plane at (row, column) of its pixels (None: none); `colours` those of
        its horizontal and vertical line."""
        if self.display is None:
            return
        self.crosshair.set_point(None if row is None else (row, col), self.display.frame_shape, colours)

    def _plane_clicked(self, scene_pos) -> None:
        if self.plane is None:
            return
        x, y = self._to_pixels(scene_pos)
        self.point_clicked.emit(y - PIXEL_CENTRE, x - PIXEL_CENTRE)

    def clear(self) -> None:
        self.stop_cine()
        self._clear_items()
        self.crosshair.set_point(None, (1, 1))
        self.stack = self.display = self.loaded = None
        self.state = ViewState(annotations=self.state.annotations)
        self.invert_changed.emit(self.state.invert)
        self._blank()

    def _blank(self) -> None:
        self.image.clear()
        self._shown = None
        self._drawn = ()
        self.corners.set_text({}, {})
        self.markers.set_markers(None)
        self.markers.set_scale(None)

    @property
    def modality(self) -> str:
        return self.stack.modality.upper() if self.stack else ""

    def image_key(self, index: int | None = None) -> tuple:
        return (*self._stack_key, self.state.index if index is None else index)

    def shown_frame(self) -> tuple[int, int] | None:
        """(instance index, frame index) of the image on screen, or None: the loaded display's mapping, or
        before it is there the stack's own order (the same pairs), walked only then."""
        if self.stack is None or isinstance(self.display, PlaneDisplay):  # a reformatted plane is no acquired image
            return None
        i = self.state.index
        frames = self.display.frames if self.display is not None and 0 <= i < len(self.display.frames) else None
        if frames is None:
            frames = self.stack.frames
        return frames[i] if 0 <= i < len(frames) else None

    def is_loaded(self, i: int) -> bool:
        return self.loaded is not None and 0 <= i < len(self.loaded) and bool(self.loaded[i])

    # --- drawing --------------------------------------------------------------------------------------------
    def _show(self) -> None:
        """Draw the current frame (uint16 + lookup table); an unloaded frame leaves the view blank."""
        i = self.state.index
        if self.display is None:
            return
        if not self.is_loaded(i):
            self.image.clear()
            self._shown = None
        else:
            if self.state.window is None and not self.display.colour:
                voi = self.display.initial_voi(i)
                self.state.window = self.state.initial_window = voi
                self._span = self.display.value_span(i)
            self._draw(self.display.item_image(i, self.state.window, self._inverted(i)))
            self._shown = i
        self._drawn = (i, self.state.window, self.state.invert)
        self._show_measurements()
        self._update_annotations()
        self.index_changed.emit(i, self.state.count)

    def _inverted(self, i: int) -> bool:
        return self.display.file_inverted(i) != self.state.invert

    def _apply_window(self) -> None:
        """Window or invert changed: a new (cached) lookup table, one gather; no float pass over the pixels."""
        i = self.state.index
        if self.display is None or not self.is_loaded(i) or self.display.colour:
            self._update_annotations()
            return
        self._draw(self.display.item_image(i, self.state.window, self._inverted(i)))
        self._shown = i
        self._drawn = (i, self.state.window, self.state.invert)
        self._update_annotations()

    def _draw(self, item) -> None:
        """Hand a frame to the ImageItem. With a lookup table, one gather (stored value -> grey level) into a
        reused uint8 buffer, which pyqtgraph shows as Grayscale8 without another pass: measured 0.2 ms for
        512x512, against 0.56 ms when pyqtgraph folds a 65536-entry table into its levels itself."""
        if item.lut is None:
            self.image.setImage(item.data, autoLevels=False, levels=item.levels, lut=None)
            return
        shape = item.data.shape + item.lut.shape[1:]  # (H, W, 3) where a supplemental palette colours it
        buf = self._grey
        if buf is None or buf.shape != shape:
            buf = self._grey = np.empty(shape, np.uint8)
        # one gather, not `pixels.lookup`'s pieces: each piece lets a busy worker thread take the GIL, which
        # this thread then waits up to a switch interval to get back
        np.take(item.lut, item.data, axis=0, out=buf)
        self.image.setImage(buf, autoLevels=False, levels=None, lut=None)

    def shown_pixels(self) -> np.ndarray | None:
        """The grey levels the ImageItem renders now (uint8 (H, W)), read back from its QImage."""
        if self._shown is None:
            return None
        self.image.render()
        qimg = self.image.qimage
        if qimg is None:
            return None
        from pyqtgraph.functions import ndarray_from_qimage  # noqa: PLC0415 - used by tests only

        arr = ndarray_from_qimage(qimg)
        if arr.ndim == 3:  # ARGB32 / RGB: grey has equal channels
            arr = arr[..., :3].mean(axis=-1).astype(np.uint8) if not self.display.colour else arr
        if qimg.format() == qimg.Format.Format_Indexed8:
            table = np.array([c & 0xFF for c in qimg.colorTable()], dtype=np.uint8)
            arr = table[arr]
        return arr

    # --- navigation -----------------------------------------------------------------------------------------
    def step(self, delta: int) -> None:
        self.go(self.state.index + delta)

    def go(self, index: int) -> None:
        if self.navigate is not None:
            self.navigate(index)
        elif self.state.go(index):
            self._cancel_drawing()
            self._show()

    def follow_state(self) -> None:
        """Draw what the state says after someone else changed it (the reading session moved this viewport with
        a linked one, or shared a window): the image, the window, rotation and flip."""
        if self.display is None:
            return
        if (self.state.rotation, self.state.flip_h) != self._turned:
            self._apply_transform()
            self.fit()
        if self._drawn[:1] != (self.state.index,):
            self._cancel_drawing()
            self._show()
        elif self._drawn != (self.state.index, self.state.window, self.state.invert):
            self._apply_window()

    def first(self) -> None:
        self.go(0)

    def last(self) -> None:
        self.go(self.state.count - 1)

    # --- window ---------------------------------------------------------------------------------------------
    def set_window(self, window: Window | VoiLut | None) -> None:
        if self.display is None or self.display.colour:
            return
        self.state.window = window if window is not None else self.state.initial_window
        self._apply_window()
        self.window_changed.emit()

    def window_from_file(self) -> None:
        """Key 0: the file's window (or the one the pipeline chose from the values)."""
        if self.display is None or self.display.colour:
            return
        self.state.window = self.state.initial_window = self.display.initial_voi(self.state.index)
        self._apply_window()
        self.window_changed.emit()
        self.message.emit("Window from the file")

    def preset(self, number: int) -> None:
        """Keys 1-9: the modality's presets (SPEC section 6); says so when there is none."""
        found = preset_window(self.modality, number)
        if found is None:
            self.message.emit(f"No window preset {number} for {self.modality or 'this image'}")
            return
        name, window = found
        self.set_window(window)
        self.message.emit(f"Window: {name} (W {window.width:g} L {window.center:g})")

    def toggle_invert(self) -> None:
        self.state.invert = not self.state.invert
        self.invert_changed.emit(self.state.invert)
        self._apply_window()

    # --- geometry -------------------------------------------------------------------------------------------
    def _local_rect(self) -> QRectF:
        """The image in the group's (mm) coordinates, whether or not a frame is drawn yet."""
        h, w = self._size
        return QRectF(0, 0, w * self.scale[0], h * self.scale[1])

    def _image_rect(self) -> QRectF:
        return self.image_group.mapRectToParent(self._local_rect())

    def _range_changed(self) -> None:
        self._update_annotations()
        if not self._showing_part:
            self.range_moved.emit()

    @property
    def fitted(self) -> bool:
        """The view follows "fit" (nothing zoomed or panned since)."""
        return self._fitted

    def part_in_view(self) -> tuple[float, float, float, float] | None:
        """The part of the image in view: its centre's offset from the image's centre and its size, in widths and
        heights of the image (0, 0, 1.04, 1.04 when fitted); None without an image."""
        if self.display is None:
            return None
        rect = self._image_rect()
        if rect.width() <= 0 or rect.height() <= 0:
            return None
        (x0, x1), (y0, y1) = self.vb.viewRange()
        centre = rect.center()
        return (((x0 + x1) / 2 - centre.x()) / rect.width(), ((y0 + y1) / 2 - centre.y()) / rect.height(),
                (x1 - x0) / rect.width(), (y1 - y0) / rect.height())

    def show_part(self, part: tuple[float, float, float, float], zoom: float, fitted: bool = False) -> None:
        """Show the same part of this image as another view shows of its own (`part_in_view`): linked zoom."""
        if self.display is None:
            return
        self._showing_part = True
        try:
            if fitted:
                self.fit()
                return
            rect, (dx, dy, width, height) = self._image_rect(), part
            x, y = rect.center().x() + dx * rect.width(), rect.center().y() + dy * rect.height()
            w, h = width * rect.width(), height * rect.height()
            self._fitted = False
            self.state.zoom = zoom
            self.vb.setRange(xRange=(x - w / 2, x + w / 2), yRange=(y - h / 2, y + h / 2), padding=0)
        finally:
            self._showing_part = False

    def fit(self) -> None:
        if self.display is None:
            return
        self.state.zoom = 1.0
        self._fitted = True
        self.vb.setRange(rect=self._image_rect(), padding=0.02)
        self._update_annotations()

    def _resized(self, *_):
        if self._fitted and self.display is not None:
            self.fit()
        else:
            self._update_annotations()

    def _left_fit(self, *_):
        self._fitted = False

    def zoom_by(self, factor: float) -> None:
        if self.display is None:
            return
        self._fitted = False
        self.state.zoom_by(factor)
        self.vb.scaleBy((1 / factor, 1 / factor))
        self._update_annotations()

    def zoom_in(self) -> None:
        self.zoom_by(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(1 / ZOOM_STEP)

    def rotate(self) -> None:
        self.state.rotate_cw()
        self._apply_transform()
        self.fit()

    def flip(self) -> None:
        self.state.flip_horizontal()
        self._apply_transform()
        self.fit()

    def _apply_transform(self) -> None:
        """Rotation and flip of the image group about the image centre (overlays follow)."""
        c = self._local_rect().center()
        t = QTransform()
        t.translate(c.x(), c.y())
        if self.state.flip_h:
            t.scale(-1, 1)
        t.rotate(90 * self.state.rotation)
        t.translate(-c.x(), -c.y())
        self.image_group.setTransform(t)
        self._turned = (self.state.rotation, self.state.flip_h)

    def reset(self) -> None:
        """Esc: cancel a measurement being drawn; otherwise zoom, pan, window, rotation, flip, invert."""
        if self._drawing is not None:
            self._cancel_drawing()
            return
        self.stop_cine()
        self.state.reset()
        self.invert_changed.emit(self.state.invert)
        self._apply_transform()
        self._apply_window()
        self.fit()
        self.window_changed.emit()

    def zoom_percent(self) -> float:
        px = self.vb.viewPixelSize()[0]
        return 100.0 * self.scale[0] / px if px > 0 else 100.0

    # --- annotations ----------------------------------------------------------------------------------------
    def cycle_annotations(self) -> str:
        mode = self.state.cycle_annotations()
        self.set_annotation_mode(mode)
        self.message.emit(f"Corner text: {mode}")
        return mode

    def set_annotation_mode(self, mode: str) -> None:
        """Corner text, markers and scale bar: full, minimal or off (every viewport shows the same)."""
        self.state.annotations = ANNOTATION_MODES.index(mode)
        self.corners.set_mode(mode)
        self.markers.place()

    def _update_annotations(self) -> None:
        if self.stack is None or self.display is None:
            self.corners.set_text({}, {})
            self.markers.set_markers(None)
            return
        i, n = self.state.index, self.state.count
        plane = self.plane
        frames = self.display.frames
        inst_index = frames[i][0] if plane is not None and 0 <= i < len(frames) else (self.shown_frame() or (0, 0))[0]
        inst = self.stack.instances[min(inst_index, len(self.stack.instances) - 1)]
        header = self.display.header(i) if 0 <= i < len(self.display.frames) else None
        info = self.case_info
        image_line = f"{plane.plane.capitalize()} {i + 1}/{n}" if plane is not None else f"Im {i + 1}/{n}"
        loading = [] if self.is_loaded(i) else ["not loaded" if self._load_finished else "loading…"]
        if plane is not None and not plane.loaded.all():  # the slices not decoded yet are gaps in the plane
            loading = ["some slices not loaded" if self._load_finished else "slices loading…"]
        pos_line, slab = [], ""
        if plane is not None:
            pos_line.append(plane.position_text(i))
            slab = slab_text(plane.slab_mode, plane.slab_mm)
        elif self.stack.positions and inst_index < len(self.stack.positions):
            pos = self.stack.positions[inst_index]
            if pos is not None:
                pos_line.append(f"Pos {pos:.1f} mm")
        if inst.slice_thickness and plane is None:
            pos_line.append(f"Thk {inst.slice_thickness:g} mm")
        win = self.state.window
        if isinstance(win, Window):
            win_line = f"W {win.width:.0f}  L {win.center:.0f}"
        else:
            win_line = "VOI LUT" if win is not None else ("colour" if self.display.colour else "")
        extras = [x for x, on in (("Inverted", self.state.invert), ("Flipped", self.state.flip_h)) if on]
        if self.state.rotation:
            extras.append(f"Rotated {90 * self.state.rotation}°")
        cal = self.calibration
        spacing_line = (
            "" if cal.spacing and not cal.note else
            ("Spacing: detector" if cal.spacing else "No pixel spacing (px)")
        )
        full = {
            "top_left": [x for x in (
                readable_name(inst.patient_name or info.get("patient_name", "")),
                f"ID {inst.patient_id}" if inst.patient_id else "",
                self._patient_facts(header, inst)[0],
                " ".join(x for x in (readable_date(inst.study_date), inst.study_description) if x),
            ) if x],
            "top_right": [x for x in (
                " ".join(x for x in (
                    self.stack.modality,
                    f"Se {self.stack.number}" if self.stack.number is not None else "",
                ) if x),
                self.stack.description,
                f"{inst.columns}×{inst.rows}" if plane is None else
                f"MPR {self._size[1]}×{self._size[0]}, {plane.spacing:.2f} mm",
                spacing_line,
            ) if x],
            "bottom_left": [image_line, *loading, *([" ".join(pos_line)] if pos_line else []),
                            *([slab] if slab else [])],
            # no zoom (nor scale bar) to speak of where the stack has no pixels (a load refused before allocating)
            "bottom_right": [win_line, *([f"Zoom {self.zoom_percent():.0f}%"] if min(self._size) > 0 else []),
                             *extras],
        }
        minimal = {"bottom_left": [image_line, *loading, *([slab] if slab else [])],
                   "bottom_right": [win_line, *extras]}
        self.corners.set_text(full, minimal)
        vectors = plane.directions if plane is not None else self._patient_facts(header, inst)[1]
        self.markers.set_markers(edge_markers(*vectors, rotation=self.state.rotation, flip=self.state.flip_h)
                                 if vectors is not None else None)
        self.markers.set_scale(self.vb.viewPixelSize()[0] if cal.spacing and min(self._size) > 0 else None)

    def _patient_facts(self, header, inst) -> tuple:
        """(age and sex in words, row and column directions in the patient) of an image, read once per header:
        the corner text is redrawn with every image of a scroll."""
        key = (id(header), id(inst))
        if self._facts_key != key:
            vectors = image_orientation_vectors(inst.image_orientation)
            if vectors is None and header is not None:  # projection radiographs: Patient Orientation
                vectors = patient_orientation_vectors(header.get("PatientOrientation"))
            age_sex = age_sex_text(_text(header, "PatientAge"), _text(header, "PatientSex"),
                                   _text(header, "PatientBirthDate"), inst.study_date)
            self._facts_key, self._facts = key, (age_sex, vectors)
        return self._facts

    def resizeEvent(self, event):  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self.corners.place()
        self.markers.place()
        self.resized.emit()

    def focusInEvent(self, event):  # noqa: N802 - Qt API
        super().focusInEvent(event)
        if event.reason() == Qt.FocusReason.MouseFocusReason:
            self.clicked.emit()

    # --- cine -----------------------------------------------------------------------------------------------
    def toggle_cine(self) -> bool:
        if self.cine_timer.isActive():
            self.stop_cine()
        elif self.display is not None and self.state.count > 1:
            self.cine_timer.start(max(1, round(1000 / max(1, self.cine_fps))))
            self.cine_changed.emit(True)
            self.message.emit(f"Cine {self.cine_fps} frames/s")
        return self.cine_timer.isActive()

    def stop_cine(self) -> None:
        if self.cine_timer.isActive():
            self.cine_timer.stop()
            self.cine_changed.emit(False)

    def set_cine_fps(self, fps: int) -> None:
        self.cine_fps = max(1, min(120, int(fps)))
        self.settings.update(cine_fps=self.cine_fps)
        if self.cine_timer.isActive():
            self.cine_timer.setInterval(max(1, round(1000 / self.cine_fps)))

    def _cine_tick(self) -> None:
        self.state.cine_next()
        self._show()

    # --- pixel value under the cursor -----------------------------------------------------------------------
    def _mouse_moved(self, scene_pos) -> None:
        if self.display is None or self._shown is None:
            return
        p = self.image.mapFromScene(scene_pos)
        # the ImageItem's own coordinates are pixels (its rect scales them to mm)
        col, row = int(math.floor(p.x())), int(math.floor(p.y()))
        value = self.display.value_at(self.state.index, row, col)
        if value is None:
            self.cursor_text.emit("")
            return
        if isinstance(value, tuple):
            text = "RGB " + " ".join(str(v) for v in value)
        else:
            unit = MODALITY_UNITS.get(self.modality, "")
            number = f"{value:.0f}" if float(value).is_integer() or unit else f"{value:.4g}"
            text = f"{number} {unit}" if unit else f"value {number}"
        self.cursor_text.emit(f"x {col}  y {row}   {text}")

    # --- tools and measurements -----------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        self._cancel_drawing()
        self.tool = tool
        self.tool_changed.emit(tool)

    def _to_pixels(self, scene_pos) -> tuple[float, float]:
        p = self.image.mapFromScene(scene_pos)
        return p.x(), p.y()

    def _left_drag(self, ev) -> None:
        ev.accept()
        if self.display is None:
            return
        if self.tool == "window":
            if self.display.colour or self.state.window is None:
                return
            if ev.isStart():
                self._drag_window = self.display.window_for_drag(self.state.window, self.state.index)
            if self._drag_window is None:
                return
            d = ev.scenePos() - ev.buttonDownScenePos()
            self.state.window = drag_window(self._drag_window, d.x(), d.y(), self._span)
            self._apply_window()
            self.window_changed.emit()
            if ev.isFinish():
                self._drag_window = None
        elif self.tool == "zoom":
            dy = ev.scenePos().y() - ev.lastScenePos().y()
            factor = 1.01 ** (-dy)
            self.state.zoom_by(factor)
            self._fitted = False
            self.vb.scaleBy((1 / factor, 1 / factor), center=self.vb.mapToView(ev.buttonDownPos()))
            self._update_annotations()
        elif self.tool in ("distance", "ellipse"):
            x, y = self._to_pixels(ev.scenePos())
            if ev.isStart():
                x0, y0 = self._to_pixels(ev.buttonDownScenePos())
                points = (x0, y0, x, y) if self.tool == "distance" else (x0, y0, 0.0, 0.0)
                self._drawing = self._make_item(Measurement(self.tool, points))
            if self._drawing is None:
                return
            self._drawing.set_end(x, y)
            self._label(self._drawing)
            if ev.isFinish():
                self._commit_drawing()

    def add_measurement(self, kind: str, points: tuple[float, ...]) -> Measurement:
        """Add a distance (x0, y0, x1, y1) or an ellipse (x, y, w, h) in pixels to the current image."""
        item = self._make_item(Measurement(kind, tuple(points)))
        self._drawing = item
        self._commit_drawing()
        return item.measurement

    def _make_item(self, m: Measurement) -> MeasureItem:
        item = MeasureItem(m, self.image_group, self.scale)
        item.roi.sigRegionChangeFinished.connect(lambda *_: self._edited(item))
        item.roi.sigRegionChanged.connect(lambda *_: self._label(item))
        item.roi.sigClicked.connect(lambda *_: self.select(item))
        item.roi.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        return item

    def _commit_drawing(self) -> None:
        item, self._drawing = self._drawing, None
        if item is None:
            return
        item.measurement.points = item.points()
        self.measurements.add(self.image_key(), item.measurement)
        self._items.append(item)
        self._label(item)
        self.select(item)

    def _cancel_drawing(self) -> None:
        if self._drawing is not None:
            self._drawing.remove()
            self._drawing = None

    def _edited(self, item: MeasureItem) -> None:
        if item is self._drawing:
            return
        self.measurements.update(self.image_key(), item.measurement.id, item.points())
        item.measurement.points = item.points()
        self._label(item)
        self.select(item)

    def measurement_text(self, m: Measurement) -> str:
        """The label of a measurement: mm (or px, or at the detector) for a line; ROI statistics."""
        if m.kind == "distance":
            x0, y0, x1, y1 = m.points
            return format_distance(distance((x0, y0), (x1, y1), self.calibration), self.calibration)
        if self.display is None or not self.is_loaded(self.state.index):
            return ""
        values = self.display.modality_values(self.state.index)
        stats = ellipse_stats(values, m.points, self.calibration)
        return format_stats(stats, MODALITY_UNITS.get(self.modality, ""))

    def _label(self, item: MeasureItem) -> None:
        m = Measurement(item.measurement.kind, item.points(), id=item.measurement.id)
        item.set_label(self.measurement_text(m))

    def select(self, item: MeasureItem | None) -> None:
        for it in self._items:
            it.set_selected(it is item)
        self._selected = item

    def delete_selected(self) -> bool:
        """Delete: remove the selected measurement of this image."""
        item = self._selected
        if item is None:
            self.message.emit("No measurement selected")
            return False
        self.measurements.remove(self.image_key(), item.measurement.id)
        item.remove()
        self._items.remove(item)
        self._selected = None
        return True

    def _clear_items(self) -> None:
        self._cancel_drawing()
        for item in self._items:
            item.remove()
        self._items = []
        self._selected = None

    def _show_measurements(self) -> None:
        """Draw the measurements kept for the current image (they stay per image while the case is open)."""
        self._clear_items()
        for m in self.measurements.on(self.image_key()):
            item = self._make_item(m)
            self._items.append(item)
            self._label(item)

    def current_measurements(self) -> list[Measurement]:
        return self.measurements.on(self.image_key())
