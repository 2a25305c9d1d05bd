"""Measurement items drawn over the image: a distance line and an ellipse ROI, editable and deletable.

Geometry and statistics come from `medview.core.viewing.measure`; these classes only draw the shapes (children
of the image's transform group, so they follow zoom, pan, rotation and flip) and their labels.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF

from medview.core.viewing.measure import Measurement

PEN = pg.mkPen("#ffd54f", width=1.5)
SELECTED_PEN = pg.mkPen("#4fc3f7", width=2)
HOVER_PEN = pg.mkPen("#ffe082", width=2)
LABEL_COLOUR = "#ffe082"


class _Ellipse(pg.EllipseROI):
    """An axis-aligned ellipse: scale handles on the box, no rotation (statistics assume no rotation)."""

    def _addHandles(self):  # noqa: N802 - pyqtgraph API
        self.addScaleHandle([1, 1], [0, 0])
        self.addScaleHandle([0, 0], [1, 1])
        self.addScaleHandle([1, 0.5], [0, 0.5])
        self.addScaleHandle([0.5, 1], [0.5, 0])


class MeasureItem:
    """One measurement on screen: its ROI, its label, and the store entry it edits."""

    def __init__(self, measurement: Measurement, parent, scale: tuple[float, float]):
        self.measurement = measurement
        self.scale = scale  # view units per pixel (col, row)
        sx, sy = scale
        pts = measurement.points
        if measurement.kind == "distance":
            self.roi = pg.LineSegmentROI(
                [(pts[0] * sx, pts[1] * sy), (pts[2] * sx, pts[3] * sy)], pen=PEN, hoverPen=HOVER_PEN
            )
        else:
            x, y, w, h = pts
            self.roi = _Ellipse((x * sx, y * sy), (max(w, 0.01) * sx, max(h, 0.01) * sy), pen=PEN,
                                hoverPen=HOVER_PEN, removable=False)
        self.roi.setParentItem(parent)
        self.roi.setZValue(10)
        # a dark backing keeps the label readable over bone and contrast
        self.label = pg.TextItem("", color=LABEL_COLOUR, anchor=(-0.05, 1.1), fill=pg.mkBrush(0, 0, 0, 160))
        self.label.setParentItem(parent)
        self.label.setZValue(11)

    def points(self) -> tuple[float, ...]:
        """The shape in image pixel coordinates (x = column, y = row)."""
        sx, sy = self.scale
        if self.measurement.kind == "distance":
            a, b = (self.roi.mapToParent(h.pos()) for h in self.roi.getHandles()[:2])
            return (a.x() / sx, a.y() / sy, b.x() / sx, b.y() / sy)
        pos, size = self.roi.pos(), self.roi.size()
        x, y, w, h = pos.x(), pos.y(), size.x(), size.y()
        if w < 0:
            x, w = x + w, -w
        if h < 0:
            y, h = y + h, -h
        return (x / sx, y / sy, w / sx, h / sy)

    def set_end(self, x: float, y: float) -> None:
        """While drawing: move the second point (distance) or the opposite corner (ellipse), in pixels."""
        sx, sy = self.scale
        if self.measurement.kind == "distance":
            handle = self.roi.getHandles()[1]
            self.roi.movePoint(handle, QPointF(x * sx, y * sy), finish=False, coords="parent")
        else:
            x0, y0 = self.measurement.points[:2]
            self.roi.setPos((min(x0, x) * sx, min(y0, y) * sy), update=False, finish=False)
            self.roi.setSize((max(abs(x - x0), 0.01) * sx, max(abs(y - y0), 0.01) * sy), finish=False)

    def set_label(self, text: str) -> None:
        sx, sy = self.scale
        pts = self.points()
        if self.measurement.kind == "distance":
            x, y = max((pts[0], pts[1]), (pts[2], pts[3]))
        else:
            x, y = pts[0] + pts[2], pts[1]
        self.label.setText(text)
        self.label.setPos(x * sx, y * sy)

    def set_selected(self, selected: bool) -> None:
        self.roi.setPen(SELECTED_PEN if selected else PEN)

    def remove(self) -> None:
        for item in (self.roi, self.label):
            scene = item.scene()
            item.setParentItem(None)
            if scene is not None:
                scene.removeItem(item)
