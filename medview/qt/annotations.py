"""Corner annotations over the image: four labels in the corners, three states (full, minimal, off).

Labels are children of the view, transparent to the mouse, and capped at a fraction of its width and height,
so they never cover the centre of the image where the reading happens. Their text is light with a dark outline
and has no box behind it: it reads on black, on a bright zoomed image and on anything between, and hides no
pixels beyond its letters.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QLabel, QWidget

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
MARGIN = 8
MAX_FRACTION = 0.42  # of the view's width; height is limited to a few lines


# (colour, pen width): a soft dark halo, then a crisp outline; the pen is centred on the glyph edge, so each
# letter gets half its width of dark around it
OUTLINES = ((QColor(0, 0, 0, 110), 5.0), (QColor(0, 0, 0, 235), 2.6))


class OutlinedLabel(QLabel):
    """A plain-text label painted as outlined glyphs (the text colour from the style, a dark outline round it)."""

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt API
        lines = self.text().split("\n") if self.text() else []
        if not lines:
            return
        metrics, rect, align = self.fontMetrics(), self.contentsRect(), self.alignment()
        height = metrics.lineSpacing() * (len(lines) - 1) + metrics.height()
        top = rect.bottom() - height if align & Qt.AlignmentFlag.AlignBottom else rect.top()
        path = QPainterPath()
        for n, line in enumerate(lines):
            width = metrics.horizontalAdvance(line)
            x = rect.right() - width if align & Qt.AlignmentFlag.AlignRight else rect.left()
            path.addText(QPointF(x, top + metrics.ascent() + n * metrics.lineSpacing()), self.font(), line)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for colour, width in OUTLINES:
            painter.strokePath(path, QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                                          Qt.PenJoinStyle.RoundJoin))
        painter.fillPath(path, self.palette().color(self.foregroundRole()))
        painter.end()


class CornerText:
    """The four corner labels of one view; `set_text` takes {corner: [lines]} for full and minimal modes."""

    def __init__(self, parent: QWidget):
        self.parent = parent
        self.labels: dict[str, QLabel] = {}
        self.mode = "full"
        self._full: dict[str, list[str]] = {}
        self._minimal: dict[str, list[str]] = {}
        self._lines: dict[str, list[str]] = {c: [] for c in CORNERS}
        for corner in CORNERS:
            label = OutlinedLabel(parent)
            label.setObjectName(f"corner_{corner}")
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setProperty("annotation", True)
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
        """Keep each label in its corner, within MAX_FRACTION of the width and a third of the height."""
        w, h = self.parent.width(), self.parent.height()
        max_w, max_h = int(w * MAX_FRACTION), max(1, h // 3)
        for corner, label in self.labels.items():
            text = self._fit(corner, max_w)
            if text != label.text():  # a W/L drag changes one line: only that label repaints
                label.setText(text)
            if not label.isVisibleTo(self.parent):
                continue
            hint = label.sizeHint()
            size = QSize(min(hint.width(), max_w), min(hint.height(), max_h))
            x = MARGIN if corner.endswith("left") else w - size.width() - MARGIN
            y = MARGIN if corner.startswith("top") else h - size.height() - MARGIN
            label.setGeometry(x, y, size.width(), size.height())
            label.raise_()
