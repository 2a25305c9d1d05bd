"""Corner text reads on any background: light letters outlined in dark, no box hiding the image around them."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QWidget

from medview.qt.style import STYLE_FILE, style_sheet
from medview.qt.viewer.annotations import CornerText
from medview.resources import resource_path


def _grey(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_Grayscale8)
    return np.array(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())[:, :image.width()]


@pytest.mark.parametrize("background", ["#ffffff", "#000000", "#808080"])
def test_corner_text_is_outlined_on_any_background_without_a_box(qtbot, background):
    parent = QWidget()  # stands in for the image: one flat colour, as a bright zoomed radiograph is under the text
    qtbot.addWidget(parent)
    parent.setObjectName("image")
    parent.setStyleSheet(style_sheet(resource_path(STYLE_FILE)) + f"\nQWidget#image {{ background: {background}; }}")
    parent.resize(400, 300)
    corners = CornerText(parent)
    corners.set_text({"bottom_left": ["Im 12/30", "W 400  L 40"], "top_right": ["CR Se 1"]}, {})
    parent.show()
    qtbot.waitExposed(parent)
    shot = _grey(parent.grab().toImage())
    level = QColor(background).lightness()
    for label in corners.labels.values():
        if not label.isVisible():
            continue
        g = label.geometry()
        area = shot[g.top():g.bottom() + 1, g.left():g.right() + 1]
        assert area[0, 0] == level and area[-1, -1] == level  # the background shows between the letters: no box
        assert area.min() < 40 and area.max() > 215  # dark outline and light letters, whatever lies beneath


def test_corner_text_follows_its_lines_the_view_size_and_the_font(qtbot):
    """A corner whose line grows (a window drag: "W 80" to "W 1500") stays in its corner at the margin; the
    others keep their place; a new view size or font places them again."""
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.resize(400, 300)
    corners = CornerText(parent)
    full = {"bottom_right": ["W 80  L 40"], "top_left": ["Patient"], "bottom_left": ["Im 1/3"]}
    corners.set_text(full, {})
    parent.show()
    qtbot.waitExposed(parent)
    labels = corners.labels
    top_left, short = labels["top_left"].geometry(), labels["bottom_right"].geometry()
    corners.set_text({**full, "bottom_right": ["W 1500  L -600", "Zoom 100%"]}, {})
    wide = labels["bottom_right"].geometry()
    assert labels["bottom_right"].text() == "W 1500  L -600\nZoom 100%"
    assert wide.width() > short.width() and wide.height() > short.height()
    assert wide.right() == short.right() and wide.bottom() == short.bottom()  # still at the corner's margin
    assert labels["top_left"].geometry() == top_left
    parent.resize(600, 400)  # the owner places them again on a resize, as the image view does
    corners.place()
    assert labels["bottom_right"].geometry().right() == short.right() + 200
    font = labels["bottom_left"].font()
    before = labels["bottom_left"].geometry()
    font.setPointSize(font.pointSize() * 2)
    labels["bottom_left"].setFont(font)
    corners.place()
    assert labels["bottom_left"].geometry().height() > before.height()
