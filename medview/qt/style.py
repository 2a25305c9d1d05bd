"""The dark reading-room theme: Fusion style, a dark palette (dialogs and native parts too), the QSS file; the
AI heatmap's colours, the same in the viewer's overlay and in the PDF report."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from medview.resources import resource_path

log = logging.getLogger(__name__)
STYLE_FILE = "style/dark.qss"
HEATMAP_OPACITY = 0.55  # the heatmap overlay's default opacity (the findings panel's slider changes it)


def dark_palette() -> QPalette:
    p = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#141414",
        QPalette.ColorRole.WindowText: "#c8c8c8",
        QPalette.ColorRole.Base: "#101010",
        QPalette.ColorRole.AlternateBase: "#161616",
        QPalette.ColorRole.ToolTipBase: "#202020",
        QPalette.ColorRole.ToolTipText: "#d0d0d0",
        QPalette.ColorRole.Text: "#c8c8c8",
        QPalette.ColorRole.Button: "#202020",
        QPalette.ColorRole.ButtonText: "#c8c8c8",
        QPalette.ColorRole.BrightText: "#ff8a80",
        QPalette.ColorRole.Highlight: "#2b4252",
        QPalette.ColorRole.HighlightedText: "#ececec",
        QPalette.ColorRole.Link: "#4fc3f7",
        QPalette.ColorRole.PlaceholderText: "#6a6a6a",
    }
    for role, colour in colours.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#555555"))
    return p


def style_sheet(path: Path) -> str:
    """The QSS file's text with its relative `url(name)`s made absolute: Qt resolves a relative url against the
    working directory, not the style sheet's folder (the check box's tick lies beside the QSS file)."""
    folder = path.parent.as_posix()
    return re.sub(r"url\((?![a-zA-Z]+:|/)([^)\"']+)\)", lambda m: f'url("{folder}/{m.group(1).strip()}")',
                  path.read_text(encoding="utf-8"))


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    path = resource_path(STYLE_FILE)
    try:
        app.setStyleSheet(style_sheet(path))
    except OSError:
        log.warning("style sheet %s not found; using the palette only", path)


def heatmap_lut(name: str = "inferno") -> np.ndarray:
    """A 256-entry RGBA lookup table whose alpha rises with the value, so cold areas do not tint the image."""
    rgba = pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=True)
    rgba = np.asarray(rgba, dtype=np.ubyte).copy()
    # transparent below 0.3 of the map's range, opaque from 0.8 up: the low, diffuse part of a class activation
    # map would otherwise tint the whole field (seen on the demo radiographs) and hide where the model looked
    rgba[:, 3] = (np.clip((np.linspace(0.0, 1.0, 256) - 0.3) / 0.5, 0.0, 1.0) * 255).astype(np.ubyte)
    return rgba
