"""The AI's cardiothoracic ratio on the image: the heart and thorax lines, whose ends the reader may drag, and
the ratio's label.

The ratio comes from `medview.core.review.measurements`; these classes only draw the lines (children of the
image item, so they follow zoom, pan, rotation and flip) and their labels.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph import Point
from PySide6.QtCore import Qt
from PySide6.QtGui import QPainterPath, QPolygonF

from medview.core.errors import MedviewError
from medview.core.review.measurements import cardiothoracic_ratio
from medview.core.viewing.findings_text import ratio_label
from medview.core.viewing.measure import PIXEL_CENTRE

HEART_PEN = pg.mkPen("#ffab40", width=2)
THORAX_PEN = pg.mkPen("#40c4ff", width=2)
RATIO_HOVER_PEN = pg.mkPen("#ffffff", width=2.5)
TICK_PX = 9  # half the length of an end tick, in screen pixels whatever the zoom
ENLARGED_COLOUR, NORMAL_COLOUR = "#ffab40", "#e8e8e8"
BACKDROP = pg.mkBrush(0, 0, 0, 190)  # the label stays legible over lung, bone and the black border alike


class _HorizontalLine(pg.LineSegmentROI):
    """A measuring line kept horizontal in image rows, with a tick across each end.

    Dragging an end moves its column, and both ends to the row it is dragged to: the line stays a width.
    """

    def __init__(self, line, pen):
        (c0, r0), (c1, _r1) = (np.asarray(line, dtype=float) + PIXEL_CENTRE).tolist()
        super().__init__([(c0, r0), (c1, r0)], pen=pen, hoverPen=RATIO_HOVER_PEN, movable=False)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)

    def movePoint(self, handle, pos, modifiers=None, finish=True, coords="parent"):  # noqa: N802 - pyqtgraph API
        p = Point(pos) if coords == "parent" else self.mapSceneToParent(Point(pos))
        other = self.handles[1 - self.indexOfHandle(handle)]["item"]
        super().movePoint(other, Point(self.mapToParent(other.pos()).x(), p.y()), finish=False)
        super().movePoint(handle, p, modifiers, finish=finish)

    def line(self) -> list[list[float]]:
        """[[c0, r], [c1, r]] in pixel indices, left end first."""
        ends = sorted((self.mapToParent(h.pos()) for h in self.getHandles()), key=lambda q: q.x())
        return [[float(q.x()) - PIXEL_CENTRE, float(q.y()) - PIXEL_CENTRE] for q in ends]

    def _tick(self) -> Point | None:
        a, b = (h.pos() for h in self.endpoints)
        if (b - a).manhattanLength() == 0:
            return None
        across = self.pixelVectors(b - a)[1]
        return None if across is None else across * TICK_PX

    def paint(self, p, *args):
        super().paint(p, *args)
        tick = self._tick()
        if tick is not None:
            for end in self.endpoints:
                p.drawLine(end.pos() + tick, end.pos() - tick)

    def shape(self):
        path = QPainterPath()
        tick = self._tick()
        if tick is None:
            return path
        a, b = (h.pos() for h in self.endpoints)
        path.addPolygon(QPolygonF([a + tick, b + tick, b - tick, a - tick, a + tick]))
        return path


class RatioLines:
    """A cardiothoracic ratio on the image: the heart and thorax lines, each end draggable, and the label
    "CTR 0.56 ≥ 0.50". Children of the viewer's image item, so in image pixels under every view transform.

    `on_release(heart, thorax)` is called when the reader lets go of a dragged end; while dragging the label
    shows the ratio of the lines as they are.
    """

    def __init__(self, parent, on_release=None):
        self.parent = parent
        self.on_release = on_release
        self.lines: dict[str, _HorizontalLine] = {}
        self.tags: list[pg.TextItem] = []
        self.label = pg.TextItem("", anchor=(0.5, -0.25), fill=BACKDROP, border=pg.mkPen("#000000"))
        self.label.setObjectName("ratio_label")
        self.label.setZValue(13)
        self.label.setParentItem(parent)
        self.label.setVisible(False)
        self.threshold = 0.5
        self.model_value: float | None = None
        self.corrected = False
        self.value = 0.0
        self._text = ""
        self._key = None

    def attach(self, parent) -> None:
        """Draw from now on over another image item (the active viewport's)."""
        if parent is self.parent:
            return
        self.clear()
        self.parent = parent
        scene = self.label.scene()
        if scene is not None:
            self.label.setParentItem(None)
            scene.removeItem(self.label)
        self.label.setParentItem(parent)

    def show(self, key, value: float, heart, thorax, threshold: float, model_value: float,
             corrected: bool) -> None:
        """Draw a ratio (`key` names what is drawn: the same key again changes nothing, even mid-drag)."""
        if key == self._key and self.lines:
            return
        self.clear()
        self._key = key
        self.value, self.threshold, self.model_value, self.corrected = value, threshold, model_value, corrected
        for name, line, pen in (("heart", heart, HEART_PEN), ("thorax", thorax, THORAX_PEN)):
            roi = _HorizontalLine(line, pen)
            roi.setParentItem(self.parent)
            roi.setZValue(12)
            roi.sigRegionChanged.connect(lambda *_: self._dragging())
            roi.sigRegionChangeFinished.connect(lambda *_: self._released())
            self.lines[name] = roi
            # above the line's start, over the image: left of it the name would leave a wide chest's image
            tag = pg.TextItem(name, color=pen.color(), anchor=(0.0, 1.15), fill=BACKDROP)
            tag.setParentItem(self.parent)
            tag.setZValue(13)
            self.tags.append(tag)
        self._relabel(value, corrected)
        self.label.setVisible(True)

    def heart(self) -> list[list[float]]:
        return self.lines["heart"].line()

    def thorax(self) -> list[list[float]]:
        return self.lines["thorax"].line()

    def text(self) -> str:
        """The label as one line ("" where none is shown)."""
        return self._text if self.label.isVisible() else ""

    def is_shown(self) -> bool:
        return bool(self.lines)

    def _relabel(self, value: float | None, corrected: bool) -> None:
        enlarged = value is not None and value >= self.threshold
        self._text = "CTR —" if value is None else ratio_label(value, self.threshold,
                                                               self.model_value if corrected else None)
        # the correction note on a line of its own: the label stays narrow enough to stay on screen
        self.label.setText(self._text.replace(" (", "\n("), color=ENLARGED_COLOUR if enlarged else NORMAL_COLOUR)
        font = self.label.textItem.font()
        font.setBold(enlarged)
        self.label.setFont(font)
        thorax, heart = self.lines["thorax"].line(), self.lines["heart"].line()
        # centred under the lower of the two lines: over the diaphragm, off the borders the reader is judging
        self.label.setPos((thorax[0][0] + thorax[1][0]) / 2, max(thorax[0][1], heart[0][1]))
        for tag, line in zip(self.tags, (heart, thorax)):
            tag.setPos(line[0][0], line[0][1])

    def _dragging(self) -> None:
        try:
            value = cardiothoracic_ratio(self.heart(), self.thorax())
        except MedviewError:  # the thorax line dragged to no width: no ratio while it has none
            value = None
        self._relabel(value, True)

    def _released(self) -> None:
        if self.on_release is not None:
            self.on_release(self.heart(), self.thorax())

    def clear(self) -> None:
        for item in [*self.lines.values(), *self.tags]:
            scene = item.scene()
            item.setParentItem(None)
            if scene is not None:
                scene.removeItem(item)
        self.lines, self.tags = {}, []
        self.label.setVisible(False)
        self._key = None
