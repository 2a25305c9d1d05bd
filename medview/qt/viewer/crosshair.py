"""The crosshair of a reformatted plane: where the two other planes cut it, a thin line of each plane's colour
across the image, left open round the point itself so that what the reader points at stays visible.

A child of the image item (its coordinates are image pixels, the pixel centre at +0.5), so it follows zoom, pan,
rotation and flip; the lines are one screen pixel wide and the opening a fixed number of screen pixels, whatever
the zoom.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QLineF, QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsItem

OPENING = 14  # screen pixels of line left out on each side of the point
ALPHA = 190  # of 255: visible on bone and on air, yet not a bar across the anatomy
DEFAULT_COLOURS = ("#4fc3f7", "#4fc3f7")


class Crosshair(QGraphicsItem):
    """Two lines through (row, column) of the image, with an opening round the point; hidden without one."""

    def __init__(self, parent: QGraphicsItem):
        super().__init__(parent)
        self.setZValue(20)  # over the image and its overlays, under the measurements' handles
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)  # clicks go through to the view
        self._at: tuple[float, float] | None = None
        self._size = (1, 1)
        self._colours = DEFAULT_COLOURS
        self.hide()

    def set_point(self, at: tuple[float, float] | None, size: tuple[int, int],
                  colours: tuple[str, str] | None = None) -> None:
        """The point as (row, column) of the image's pixels (None hides the crosshair); `size` the image's (rows,
        columns); `colours` of the horizontal and the vertical line."""
        colours = tuple(colours) if colours else self._colours
        if (at, tuple(size), colours) == (self._at, self._size, self._colours):
            return
        if (tuple(size), colours) == (self._size, self._colours) and at is not None and self._at is not None:
            # only the point moved: what its lines covered and will cover is drawn again, not the whole image
            # under them (a plane scrolled in one view moves the crosshair of the two others at every step)
            before, self._at = self._at, at
            for row, col in (before, at):
                for band in self._bands(row, col):
                    self.update(band)
            return
        self.prepareGeometryChange()
        self._at, self._size, self._colours = at, tuple(size), colours
        self.setVisible(at is not None)
        self.update()

    def _bands(self, row: float, col: float) -> tuple[QRectF, QRectF]:
        """The strips of the image the two lines through (row, col) are drawn in, a little wider than a line
        at any zoom (a line is one screen pixel: within a pixel of the image when zoomed out)."""
        rows, cols = self._size
        margin = 1.5
        views = self.scene().views() if self.scene() is not None else []
        if views:  # two screen pixels in image pixels, when a screen pixel covers more than one image pixel
            t = self.deviceTransform(views[0].viewportTransform())
            margin = max(margin, 2.0 / max(min(math.hypot(t.m11(), t.m12()), math.hypot(t.m21(), t.m22())), 1e-9))
        return (QRectF(0, row + 0.5 - margin, cols, 2 * margin), QRectF(col + 0.5 - margin, 0, 2 * margin, rows))

    def point(self) -> tuple[float, float] | None:
        """(row, column) drawn, or None."""
        return self._at

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        rows, cols = self._size
        return QRectF(0, 0, cols, rows)

    def paint(self, painter, _option, _widget=None) -> None:
        if self._at is None:
            return
        row, col = self._at
        x, y = col + 0.5, row + 0.5
        rows, cols = self._size
        t = painter.transform()
        # image pixels per screen pixel along each image axis (zoom, rotation and flip alike)
        per_x = 1.0 / max(math.hypot(t.m11(), t.m12()), 1e-9)
        per_y = 1.0 / max(math.hypot(t.m21(), t.m22()), 1e-9)
        gap_x, gap_y = OPENING * per_x, OPENING * per_y
        horizontal, vertical = (QColor(c) for c in self._colours)
        for colour, segments in (
            (horizontal, (QLineF(0, y, x - gap_x, y), QLineF(x + gap_x, y, cols, y))),
            (vertical, (QLineF(x, 0, x, y - gap_y), QLineF(x, y + gap_y, x, rows))),
        ):
            colour.setAlpha(ALPHA)
            pen = QPen(colour)
            pen.setCosmetic(True)
            pen.setWidthF(1.0)
            painter.setPen(pen)
            for line in segments:
                if line.x2() > line.x1() or line.y2() > line.y1():  # what is left of it beside the opening
                    painter.drawLine(line)
