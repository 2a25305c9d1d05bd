"""What is drawn over reformatted planes stays right (pytest-qt, offscreen): a measurement made on a plane belongs to
that plane at that position (in the plane's millimetres, its ROI statistics from what the plane shows, a slab
included), and the crosshair and orientation markers of every plane stay where the geometry puts them when a slab
is made, thickened and scrolled. State is read through `reading_state()` and the views' own accessors."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel

from medview.core.viewing import mpr
from tests.qt.test_mpr_in_app import (  # noqa: F401 - fixtures used by name
    SMALL,
    SPACING,
    SPHERE,
    geometry,
    open_planes_on_the_sphere,
    press,
    title_of,
    view_of,
    volume,
    window,
)

EDGES = ("left", "right", "top", "bottom")


def markers(view) -> dict:
    return {edge: view.findChild(QLabel, f"marker_{edge}").text() for edge in EDGES}


def crosshair_where_the_geometry_puts_it(w, geometry) -> None:
    """Each plane's crosshair is the projection of the one patient point that reading_state() reports."""
    state = w.reading_state()
    point = state["viewports"][0]["position"]
    for viewport in state["viewports"]:
        assert viewport["position"] == pytest.approx(point, abs=1e-9)
        view = view_of(w, viewport["plane"])
        grid = mpr.plane_through(geometry, viewport["plane"], point)
        assert view.crosshair.isVisible()
        assert view.crosshair.point() == pytest.approx(grid.pixel_of(point), abs=1e-6), viewport["plane"]


def test_a_measurement_stays_on_its_plane_position_through_scrolling_and_slabs(qtbot, window, geometry):
    w = window
    coronal = open_planes_on_the_sphere(qtbot, w, geometry)
    grid = mpr.plane_through(geometry, "coronal", SPHERE)
    (row, col), (small_row, small_col) = grid.pixel_of(SPHERE), grid.pixel_of(SMALL)
    line = w.viewer.add_measurement("distance", (col, row - 20.0, col + 30.0, row + 20.0))  # 50 px long
    roi = w.viewer.add_measurement("ellipse", (small_col - 2.5, small_row - 2.5, 6.0, 6.0))  # round the small one
    assert w.viewer.measurement_text(line) == f"{50 * SPACING:.1f} mm"
    thin = w.viewer.measurement_text(roi)
    assert "max 0 " in thin  # the small sphere lies 4.8 mm behind this plane
    at = w.reading_state()["viewports"][1]["position"]

    coronal.step(3)  # 3 steps along the coronal normal (towards the patient's back)
    QApplication.processEvents()
    moved = w.reading_state()["viewports"][1]["position"]
    assert np.subtract(moved, at) == pytest.approx((0.0, 3 * SPACING, 0.0), abs=1e-6)
    assert coronal.current_measurements() == []  # another plane position: not drawn there
    coronal.step(-3)
    QApplication.processEvents()
    assert [m.id for m in coronal.current_measurements()] == [line.id, roi.id]

    press(qtbot, w, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    press(qtbot, w, Qt.Key.Key_BracketRight)
    assert title_of(w, coronal).startswith("Coronal MIP 15 mm")
    # the same plane position, its measurements with it: the distance in the plane's mm, the ROI over the slab
    assert w.reading_state()["viewports"][1]["position"] == pytest.approx(at, abs=1e-9)
    assert [m.id for m in coronal.current_measurements()] == [line.id, roi.id]
    assert w.viewer.measurement_text(line) == f"{50 * SPACING:.1f} mm"
    slab = w.viewer.measurement_text(roi)
    assert "max 1000 " in slab and "area" in slab and slab.split("area")[1] == thin.split("area")[1]


def test_crosshair_and_markers_stay_right_when_a_slab_is_made_thickened_and_scrolled(qtbot, window, geometry):
    w = window
    coronal = open_planes_on_the_sphere(qtbot, w, geometry)
    before = {plane: markers(view_of(w, plane)) for plane in ("axial", "coronal", "sagittal")}
    crosshair_where_the_geometry_puts_it(w, geometry)

    press(qtbot, w, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)  # MIP 10 mm
    crosshair_where_the_geometry_puts_it(w, geometry)
    for _ in range(3):  # 15, 20, 30 mm
        press(qtbot, w, Qt.Key.Key_BracketRight)
    assert title_of(w, coronal).startswith("Coronal MIP 30 mm")
    crosshair_where_the_geometry_puts_it(w, geometry)
    assert {plane: markers(view_of(w, plane)) for plane in before} == before

    # scrolling the slab moves its centre, the crosshair point, along the normal; the other planes follow
    at = w.reading_state()["viewports"][1]["position"]
    press(qtbot, w, Qt.Key.Key_Down)
    press(qtbot, w, Qt.Key.Key_Down)
    moved = w.reading_state()["viewports"][1]["position"]
    assert np.subtract(moved, at) == pytest.approx((0.0, 2 * SPACING, 0.0), abs=1e-6)
    crosshair_where_the_geometry_puts_it(w, geometry)
    axial = view_of(w, "axial")
    assert axial.crosshair.point()[0] == pytest.approx(
        mpr.plane_through(geometry, "axial", at).pixel_of(at)[0] + 2, abs=1e-6)  # axial rows run along y

    # the slab in the sagittal plane leaves the coronal slab and every crosshair as they are
    sagittal = view_of(w, "sagittal")
    sagittal.setFocus(Qt.FocusReason.MouseFocusReason)
    QApplication.processEvents()
    press(qtbot, w, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    state = w.reading_state()
    assert state["active"] == 2 and title_of(w, sagittal).startswith("Sagittal MIP 10 mm")
    assert title_of(w, coronal).startswith("Coronal MIP 30 mm")
    crosshair_where_the_geometry_puts_it(w, geometry)
    assert {plane: markers(view_of(w, plane)) for plane in before} == before
