"""An enhanced CT (one file, its geometry per frame in functional groups) in the app: M shows the three planes as for
the same volume in single-frame files, the sphere where the plane's geometry puts it, and `reading_state()` names the
frame at the crosshair."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.viewing import mpr
from tests.core.test_mpr import SPHERE_HU, write_enhanced_volume
from tests.qt.helpers import open_window
from tests.qt.test_mpr_in_app import PLANES, grey_at, on_screen, planes_drawn, press, view_of

SPACING, SLICES, SIZE = 0.8, 40, 65
ORIGIN = (-25.6, -25.6)
SPHERE = (8.0, 0.0, 30.0)  # on frame 15's plane (z = 2 mm per frame)


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory):
    path = tmp_path_factory.mktemp("enhanced") / "ct" / "EN.dcm"
    # frames stored from the head down: the file's order is not the slices' order along the normal
    positions = [(*ORIGIN, k * 2.0) for k in range(SLICES)]
    write_enhanced_volume(path, positions, spacing=(SPACING, SPACING), rows=SIZE, cols=SIZE,
                          spheres=[(*SPHERE, 5.0, SPHERE_HU)], order=range(SLICES - 1, -1, -1))
    return path.parent


def test_m_reformats_an_enhanced_ct(qtbot, enhanced):
    w = open_window(qtbot, enhanced, size=(1500, 900))
    try:
        state = w.reading_state()
        assert state["viewports"][0]["frames"] == SLICES
        press(qtbot, w, Qt.Key.Key_M)
        qtbot.waitUntil(lambda: planes_drawn(w), timeout=10000)
        state = w.reading_state()
        assert [v["plane"] for v in state["viewports"]] == PLANES, w.statusBar().currentMessage()
        [study] = build_studies(scan([str(enhanced)], use_cache=False).instances)
        geometry = mpr.volume_geometry(study.series[0].stacks[0])
        coronal = view_of(w, "coronal")
        grid = mpr.plane_through(geometry, "coronal", SPHERE)
        assert grey_at(coronal, grid.pixel_of(SPHERE)) == 255
        # a click on the sphere: every plane goes through it, the axial one shows the frame there (frame 15 at
        # z = 30 mm, stored 25th: frames run from the head down)
        QTest.mouseClick(coronal.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         on_screen(coronal, grid.pixel_of(SPHERE)))
        QApplication.processEvents()
        state = w.reading_state()
        for viewport in state["viewports"]:
            assert viewport["position"] == pytest.approx(SPHERE, abs=SPACING / 2)
            assert viewport["frame"] == SLICES - 1 - 15
        axial = view_of(w, "axial")
        assert grey_at(axial, mpr.plane_through(geometry, "axial", SPHERE).pixel_of(SPHERE)) == 255
    finally:
        w.close()
