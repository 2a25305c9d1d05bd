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
