"""Corner annotations over the image: four labels in the corners, three states (full, minimal, off); the
orientation markers at the edges and the scale bar.

Labels are children of the view, transparent to the mouse, and capped at a fraction of its width and height,
so they never cover the centre of the image where the reading happens. Their text is light with a dark outline
and has no box behind it: it reads on black, on a bright zoomed image and on anything between, and hides no
pixels beyond its letters.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QWidget

from medview.core.viewing.orientation import length_text, scale_bar

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
MARGIN = 8
MAX_FRACTION = 0.42  # of the view's width; height is limited to a few lines


# (opacity, radius in pixels): a soft dark halo, then a crisp outline, each made of the dark letters drawn at
# eight offsets round them (stroking glyph outlines with a wide pen cost 7 ms for a two-line label, this 0.2 ms)
OUTLINES = ((0.45, 2.4), (0.92, 1.3))
_AROUND = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (0.7, 0.7), (-0.7, 0.7), (0.7, -0.7), (-0.7, -0.7))


def paint_cached(widget: QWidget, key: tuple, draw) -> None:
    """Paint `widget` from a pixmap that `draw(painter)` filled the last time `key` (and the widget's size) was the
    same: the labels over an image are painted again with every image drawn beneath them."""
    ratio = widget.devicePixelRatioF()
    key = (key, widget.size(), ratio)
    if getattr(widget, "_painted_key", None) != key:
        pixmap = QPixmap(widget.size() * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        draw(painter)
        painter.end()
        widget._painted, widget._painted_key = pixmap, key
    painter = QPainter(widget)
    painter.drawPixmap(0, 0, widget._painted)
    painter.end()


def draw_outlined(painter: QPainter, widget: QWidget, texts: list[tuple[QPointF, str]], colour: QColor) -> None:
    """Light text with a dark outline and halo: the letters in black on a transparent layer, that layer drawn at
    offsets round each letter, then the letters in `colour` on top."""
    ratio = widget.devicePixelRatioF()
    layer = QPixmap(widget.size() * ratio)
    layer.setDevicePixelRatio(ratio)
    layer.fill(Qt.GlobalColor.transparent)
    dark = QPainter(layer)
    dark.setFont(widget.font())
    dark.setPen(QColor(0, 0, 0))
    for at, text in texts:
        dark.drawText(at, text)
    dark.end()
    for opacity, radius in OUTLINES:
        painter.setOpacity(opacity)
        for dx, dy in _AROUND:
            painter.drawPixmap(QPointF(dx * radius, dy * radius), layer)
    painter.setOpacity(1.0)
    painter.setFont(widget.font())
    painter.setPen(colour)
    for at, text in texts:
        painter.drawText(at, text)


class OutlinedLabel(QLabel):
    """A plain-text label painted as outlined glyphs (the text colour from the style, a dark outline round it)."""

    @classmethod
    def annotation(cls, parent: QWidget, name: str) -> "OutlinedLabel":
        """A label drawn over the image: plain text, styled as an annotation, clicks pass through to the image."""
        label = cls(parent)
        label.setObjectName(name)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setProperty("annotation", True)
        return label

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt API
        if not self.text():
            return
        colour = self.palette().color(self.foregroundRole())
        key = (self.text(), int(self.alignment().value), self.font().toString(), colour.rgba(), self.contentsRect())
        paint_cached(self, key, self._draw)

    def _draw(self, painter: QPainter) -> None:
        lines = self.text().split("\n")
        metrics, rect, align = self.fontMetrics(), self.contentsRect(), self.alignment()
        height = metrics.lineSpacing() * (len(lines) - 1) + metrics.height()
        top = rect.bottom() - height if align & Qt.AlignmentFlag.AlignBottom else rect.top()
        texts = []
        for n, line in enumerate(lines):
            width = metrics.horizontalAdvance(line)
            x = rect.right() - width if align & Qt.AlignmentFlag.AlignRight else rect.left()
            texts.append((QPointF(x, top + metrics.ascent() + n * metrics.lineSpacing()), line))
        draw_outlined(painter, self, texts, self.palette().color(self.foregroundRole()))


class CornerText:
    """The four corner labels of one view; `set_text` takes {corner: [lines]} for full and minimal modes."""

    def __init__(self, parent: QWidget):
        self.parent = parent
        self.labels: dict[str, QLabel] = {}
        self.mode = "full"
        self._full: dict[str, list[str]] = {}
        self._minimal: dict[str, list[str]] = {}
        self._lines: dict[str, list[str]] = {c: [] for c in CORNERS}
        self._placed: dict[str, tuple] = {}  # per corner, what it was last placed for (see `place`)
        for corner in CORNERS:
            label = OutlinedLabel.annotation(parent, f"corner_{corner}")
            align = Qt.AlignmentFlag.AlignTop if corner.startswith("top") else Qt.AlignmentFlag.AlignBottom
            align |= Qt.AlignmentFlag.AlignLeft if corner.endswith("left") else Qt.AlignmentFlag.AlignRight
            label.setAlignment(align)
            self.labels[corner] = label

    def set_text(self, full: dict[str, list[str]], minimal: dict[str, list[str]]) -> None:
        self._full, self._minimal = full, minimal
        self._apply()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self._apply()

    def text(self, corner: str) -> str:
        return self.labels[corner].text() if self.labels[corner].isVisible() else ""

    def _apply(self) -> None:
        source = {"full": self._full, "minimal": self._minimal}.get(self.mode, {})
        for corner, label in self.labels.items():
            lines = source.get(corner, [])
            self._lines[corner] = lines
            visible = self.mode != "off" and bool(lines)
            if visible != label.isVisibleTo(self.parent):
                label.setVisible(visible)
        self.place()

    def _fit(self, corner: str, max_w: int) -> str:
        """The corner's lines, each elided to the width it may take (long descriptions end in "…")."""
        label = self.labels[corner]
        metrics = label.fontMetrics()
        room = max(20, max_w - 10)  # the style's padding
        return "\n".join(metrics.elidedText(line, Qt.TextElideMode.ElideRight, room) for line in self._lines[corner])

    def place(self) -> None:
        """Keep each label in its corner, within MAX_FRACTION of the width and a third of the height. A corner
        whose lines, font and room are as the last time is left as it is: a window drag changes one line of
        one corner per move, and eliding and laying out all four cost about a millisecond an update."""
        w, h = self.parent.width(), self.parent.height()
        max_w, max_h = int(w * MAX_FRACTION), max(1, h // 3)
        for corner, label in self.labels.items():
            visible = label.isVisibleTo(self.parent)
            key = (tuple(self._lines[corner]), w, h, visible, label.font().key())
            if self._placed.get(corner) == key:
                continue
            self._placed[corner] = key
            text = self._fit(corner, max_w)
            if text != label.text():  # only a label whose text changed repaints
                label.setText(text)
            if not visible:
                continue
            hint = label.sizeHint()
            size = QSize(min(hint.width(), max_w), min(hint.height(), max_h))
            x = MARGIN if corner.endswith("left") else w - size.width() - MARGIN
            y = MARGIN if corner.startswith("top") else h - size.height() - MARGIN
            label.setGeometry(x, y, size.width(), size.height())
            label.raise_()


EDGES = ("left", "right", "top", "bottom")
MARKER_STYLE = "background: transparent; padding: 0px 2px; font-size: 13pt; font-weight: bold; color: #f4f4f4;"
SCALE_GAP = 12  # pixels kept free between the scale bar and the corner text beside it
SCALE_SHARE = 0.3  # of the view's width: the longest scale bar


class EdgeMarkers:
    """The patient directions at the middle of each edge ("R" left, "L" right...) and a scale bar at the bottom,
    over one view: shown in the full and minimal corner-text modes (the bar in full only), never in the corners
    where the corner text is.
    """

    def __init__(self, parent: QWidget, corners: CornerText):
        self.parent = parent
        self.corners = corners
        self.labels: dict[str, QLabel] = {}
        for edge in EDGES:
            label = OutlinedLabel.annotation(parent, f"marker_{edge}")
            label.setStyleSheet(MARKER_STYLE)
            label.hide()
            self.labels[edge] = label
        self.bar = ScaleBar(parent)
        self._markers: dict[str, str] = {}
        self._mm_per_pixel: float | None = None

    def set_markers(self, markers: dict[str, str] | None) -> None:
        if dict(markers or {}) == self._markers:
            return
        self._markers = dict(markers or {})
        for edge, label in self.labels.items():
            label.setText(self._markers.get(edge, ""))
        self.place()

    def set_scale(self, mm_per_pixel: float | None) -> None:
        """Millimetres per screen pixel (None: not calibrated, no bar)."""
        if mm_per_pixel == self._mm_per_pixel:
            return
        self._mm_per_pixel = mm_per_pixel
        self.place()

    def text(self, edge: str) -> str:
        label = self.labels[edge]
        return label.text() if label.isVisible() else ""

    def place(self) -> None:
        w, h = self.parent.width(), self.parent.height()
        mode = self.corners.mode
        for edge, label in self.labels.items():
            shown = mode != "off" and bool(label.text())
            label.setVisible(shown)
            if not shown:
                continue
            size = label.sizeHint()
            x = {"left": MARGIN, "right": w - size.width() - MARGIN}.get(edge, (w - size.width()) // 2)
            y = {"top": MARGIN, "bottom": h - size.height() - MARGIN}.get(edge, (h - size.height()) // 2)
            label.setGeometry(x, y, size.width(), size.height())
            label.raise_()
        left, right = self._free_bottom_band(w)
        bottom_marker = self.labels["bottom"].sizeHint().height() if self.labels["bottom"].isVisible() else 0
        found = scale_bar(self._mm_per_pixel or 0.0, min(w * SCALE_SHARE, right - left - 2 * ScaleBar.PAD))
        if mode != "full" or found is None:
            self.bar.hide()
            return
        mm, pixels = found
        self.bar.set_bar(pixels, length_text(mm))
        size = self.bar.sizeHint()
        x = min(max(left, (w - size.width()) // 2), right - size.width())
        self.bar.setGeometry(x, h - MARGIN - bottom_marker - size.height(), size.width(), size.height())
        self.bar.show()
        self.bar.raise_()

    def _free_bottom_band(self, w: int) -> tuple[int, int]:
        """The x range between the bottom corner texts, where the bar cannot cover them."""
        left, right = MARGIN, w - MARGIN
        bottom_left, bottom_right = self.corners.labels["bottom_left"], self.corners.labels["bottom_right"]
        if bottom_left.isVisible():
            left = bottom_left.geometry().right() + SCALE_GAP
        if bottom_right.isVisible():
            right = bottom_right.geometry().left() - SCALE_GAP
        return left, right


class ScaleBar(QWidget):
    """A horizontal bar with end ticks and its length above it ("5 cm"), outlined like the corner text."""

    PAD = 6
    TICK = 6

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("scale_bar")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()
        self._pixels = 0.0
        self._text = ""

    def set_bar(self, pixels: float, text: str) -> None:
        if (pixels, text) != (self._pixels, self._text):
            self._pixels, self._text = pixels, text
            self.updateGeometry()
            self.update()

    def text(self) -> str:
        return self._text if self.isVisible() else ""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        metrics = self.fontMetrics()
        width = max(round(self._pixels), metrics.horizontalAdvance(self._text)) + 2 * self.PAD
        return QSize(width, metrics.height() + self.TICK + 2 * self.PAD)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt API
        paint_cached(self, (self._pixels, self._text, self.font().toString()), self._draw)

    def _draw(self, painter: QPainter) -> None:
        metrics = self.fontMetrics()
        x0 = (self.width() - self._pixels) / 2
        x1 = x0 + self._pixels
        y = self.height() - self.PAD - 1
        path = QPainterPath()
        path.moveTo(x0, y - self.TICK)
        path.lineTo(x0, y)
        path.lineTo(x1, y)
        path.lineTo(x1, y - self.TICK)
        for colour, width in ((QColor(0, 0, 0, 110), 5.5), (QColor(0, 0, 0, 235), 3.6)):
            painter.strokePath(path, QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                                          Qt.PenJoinStyle.RoundJoin))
        painter.strokePath(path, QPen(QColor("#f0f0f0"), 1.6))
        at = QPointF((self.width() - metrics.horizontalAdvance(self._text)) / 2, y - self.TICK - 2 - metrics.descent())
        draw_outlined(painter, self, [(at, self._text)], QColor("#f0f0f0"))
