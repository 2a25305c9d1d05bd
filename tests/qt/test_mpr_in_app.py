"""Reformatted planes in the app (pytest-qt, offscreen): M shows axial, coronal and sagittal of the series with a
linked crosshair, a click or a scroll moves it, Shift+M and [ ] make a slab, M and Esc go back. A CT volume is
written as real DICOM files with spheres at known patient positions; what is on screen is read from
`window.reading_state()`, object names and the pixels the views show."""

from __future__ import annotations

import threading

import pydicom
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel

from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.viewing import mpr
from medview.qt.viewer import viewports
from tests.core.test_mpr import SPHERE_HU, write_volume
from tests.qt.helpers import open_window

SPACING = 0.8  # mm, in-plane; slices 2 mm apart
SLICES, SIZE = 40, 65
ORIGIN = (-25.6, -25.6)  # the images' centre pixel is x = y = 0
SPHERE = (8.0, 0.0, 30.0)  # on slice 15 and pixel centres, in the coronal plane through the images' centre
SMALL = (-9.6, 4.8, 50.0)  # 4.8 mm behind that coronal plane: only a slab reaches it
PLANES = ["axial", "coronal", "sagittal"]


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mpr") / "ct"
    write_volume(folder, [(*ORIGIN, k * 2.0) for k in range(SLICES)], spacing=(SPACING, SPACING), rows=SIZE,
                 cols=SIZE, spheres=((*SPHERE, 5.0, SPHERE_HU), (*SMALL, 1.5, SPHERE_HU)))
    return folder


@pytest.fixture
def window(qtbot, volume):
    w = open_window(qtbot, volume, size=(1500, 900))
    yield w
    w.close()


@pytest.fixture(scope="module")
def geometry(volume):
    """The volume's geometry as the core reads it from the files: where the planes' pixels lie."""
    [study] = build_studies(scan([str(volume)], use_cache=False).instances)
    return mpr.volume_geometry(study.series[0].stacks[0])


def press(qtbot, w, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A key as the reader presses it, with the focus on the worklist (the app's keys work from any panel)."""
    if not w.isActiveWindow():
        w.activateWindow()
        qtbot.waitUntil(w.isActiveWindow, timeout=2000)
    w.worklist.view.setFocus(Qt.FocusReason.OtherFocusReason)
    QApplication.processEvents()
    QTest.keyClick(w.worklist.view, key, modifier)
    QApplication.processEvents()


def planes_drawn(w) -> bool:
    return all(view.shown_pixels() is not None for view in w.viewports.views)


def view_of(w, plane: str):
    k = [v["plane"] for v in w.reading_state()["viewports"]].index(plane)
    return w.viewports.views[k]


def on_screen(view, plane_pixel: tuple[float, float]) -> QPoint:
    """Where a plane pixel (row, column; centres at whole numbers) is on the view's screen."""
    row, col = plane_pixel
    scene = view.image.mapToScene(QPointF(col + 0.5, row + 0.5))
    return view.graphics.mapFromScene(scene)


def grey_at(view, plane_pixel: tuple[float, float]) -> int:
    row, col = (int(round(v)) for v in plane_pixel)
    return int(view.shown_pixels()[row, col])


def title_of(w, view) -> str:
    return view.parentWidget().findChild(QLabel, "viewport_title").text()


def test_m_shows_three_planes_with_a_crosshair_and_goes_back(qtbot, window):
    w = window
    press(qtbot, w, Qt.Key.Key_Down)
    press(qtbot, w, Qt.Key.Key_Down)
    before = w.reading_state()
    assert before["layout"] == [1, 1] and before["viewports"][0]["plane"] == "acquired"

    press(qtbot, w, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: planes_drawn(w), timeout=10000)
    state = w.reading_state()
    assert state["layout"] == [1, 3] and [v["plane"] for v in state["viewports"]] == PLANES
    assert state["active"] == 0  # the plane of the acquired slices: the keys go on as they did
    # the crosshair starts at the centre of the image being read, on every plane
    image_centre = [0.0, 0.0, 4.0]
    for viewport in state["viewports"]:
        assert viewport["position"] == pytest.approx(image_centre, abs=1e-9)
        assert viewport["sop_instance_uid"] == before["viewports"][0]["sop_instance_uid"]
        assert viewport["frames"] == viewport["loaded"] == SLICES
    # each plane carries its orientation markers and its crosshair
    expected = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "H", "F"), "sagittal": ("A", "P", "H", "F")}
    for plane, (left, right, top, bottom) in expected.items():
        view = view_of(w, plane)
        markers = {edge: view.findChild(QLabel, f"marker_{edge}").text() for edge in ("left", "right", "top", "bottom")}
        assert markers == {"left": left, "right": right, "top": top, "bottom": bottom}, plane
        assert view.crosshair.isVisible()
        assert title_of(w, view).startswith(plane.capitalize())

    press(qtbot, w, Qt.Key.Key_M)
    after = w.reading_state()
    assert after["layout"] == [1, 1] and after["viewports"] == before["viewports"]

    press(qtbot, w, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: planes_drawn(w), timeout=10000)
    press(qtbot, w, Qt.Key.Key_Escape)
    assert w.reading_state()["viewports"] == before["viewports"]


def test_click_in_the_coronal_plane_moves_the_crosshair_and_the_axial_plane_follows(qtbot, window, geometry, volume,
                                                                                    monkeypatch):
    # every plane drawn as a slow one is (a thick slab of a big volume): after the events waiting
    monkeypatch.setattr(viewports, "SLOW_PLANE_S", -1.0)
    w = window
    press(qtbot, w, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: planes_drawn(w), timeout=10000)
    coronal = view_of(w, "coronal")
    grid = mpr.plane_through(geometry, "coronal", SPHERE)
    sphere_pixel = grid.pixel_of(SPHERE)
    assert grey_at(coronal, sphere_pixel) == 255  # the coronal plane through the images' centre cuts the sphere

    QTest.mouseClick(coronal.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     on_screen(coronal, sphere_pixel))
    QApplication.processEvents()  # the planes are drawn once the events waiting are handled
    state = w.reading_state()
    assert state["active"] == 1
    for viewport in state["viewports"]:
        assert viewport["position"] == pytest.approx(SPHERE, abs=SPACING / 2)
    # the axial plane is the acquired slice through the sphere, drawn with it in the middle of its crosshair
    axial = view_of(w, "axial")
    slice_15 = pydicom.dcmread(volume / "IM0015.dcm").SOPInstanceUID
    assert state["viewports"][0]["sop_instance_uid"] == slice_15
    assert w.review.current_image()[0] == slice_15  # K would mark the acquired image at the crosshair
    axial_grid = mpr.plane_through(geometry, "axial", SPHERE)
    assert grey_at(axial, axial_grid.pixel_of(SPHERE)) == 255
    assert axial.crosshair.point() == pytest.approx(axial_grid.pixel_of(SPHERE), abs=0.5)
    assert axial.corners.text("bottom_left").splitlines()[:2] == ["Axial 16/40", "z 30.0 mm"]

    # scrolling the sagittal plane moves the point along its normal (to the patient's right); the others follow
    sagittal = view_of(w, "sagittal")
    sagittal.setFocus(Qt.FocusReason.MouseFocusReason)
    QApplication.processEvents()
    sagittal.step(5)
    QApplication.processEvents()
    moved = w.reading_state()
    assert moved["active"] == 2
    for viewport in moved["viewports"]:
        assert viewport["position"] == pytest.approx((SPHERE[0] - 5 * SPACING, *SPHERE[1:]), abs=SPACING / 2)
    assert coronal.crosshair.point()[1] == pytest.approx(grid.pixel_of(SPHERE)[1] - 5, abs=0.5)


def open_planes_on_the_sphere(qtbot, w, geometry):
    """M, then a click on the sphere in the coronal plane: the coronal plane is active, through the sphere."""
    press(qtbot, w, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: planes_drawn(w), timeout=10000)
    coronal = view_of(w, "coronal")
    QTest.mouseClick(coronal.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     on_screen(coronal, mpr.plane_through(geometry, "coronal", SPHERE).pixel_of(SPHERE)))
    QApplication.processEvents()
    assert w.reading_state()["active"] == 1 and w.viewer is coronal
    return coronal


def test_shift_m_and_brackets_make_a_mip_slab(qtbot, window, geometry):
    w = window
    coronal = open_planes_on_the_sphere(qtbot, w, geometry)
    small = mpr.plane_through(geometry, "coronal", SPHERE).pixel_of(SMALL)
    background = grey_at(coronal, small)
    assert background < 160  # the small sphere lies behind the plane

    press(qtbot, w, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    press(qtbot, w, Qt.Key.Key_BracketRight)
    assert title_of(w, coronal).startswith("Coronal MIP 15 mm")
    assert coronal.corners.text("bottom_left").splitlines()[-1] == "MIP 15 mm"
    assert grey_at(coronal, small) == 255  # the slab reaches it
    assert w.reading_state()["viewports"][1]["plane"] == "coronal"

    press(qtbot, w, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)  # MinIP: the background, not the sphere
    assert title_of(w, coronal).startswith("Coronal MinIP 15 mm") and grey_at(coronal, small) == background
    for _ in range(2):  # average, then off
        press(qtbot, w, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    assert title_of(w, coronal).startswith("Coronal  ·") and grey_at(coronal, small) == background

    press(qtbot, w, Qt.Key.Key_M)
    state = w.reading_state()
    assert state["layout"] == [1, 1] and state["viewports"][0]["plane"] == "acquired"


def test_a_distance_on_a_plane_is_in_millimetres_of_the_plane(qtbot, window):
    w = window
    press(qtbot, w, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: planes_drawn(w), timeout=10000)
    sagittal = view_of(w, "sagittal")
    sagittal.setFocus(Qt.FocusReason.MouseFocusReason)
    QApplication.processEvents()
    assert w.viewer is sagittal
    m = w.viewer.add_measurement("distance", (10.0, 10.0, 10.0, 60.0))  # 50 pixels down the sagittal plane
    assert w.viewer.measurement_text(m) == f"{50 * SPACING:.1f} mm"
    roi = w.viewer.add_measurement("ellipse", (20.0, 20.0, 20.0, 20.0))
    assert "mean 0.0 HU" in w.viewer.measurement_text(roi)


def test_planes_fill_in_while_the_series_loads(qtbot, volume, monkeypatch):
    """M before the series has loaded: the planes show the slices decoded so far, the rest as background, and
    fill in as the loader goes on."""
    from medview.app import create_app
    from medview.qt.workers.load import LoadWorker

    gate = threading.Event()
    decode = LoadWorker._on_frame

    def held_after_ten(worker, k):
        decode(worker, k)
        if worker._count == 10:
            gate.wait(30)

    monkeypatch.setattr(LoadWorker, "_on_frame", held_after_ten)
    _app, w = create_app(["medview", str(volume)])
    qtbot.addWidget(w)
    w.showNormal()
    w.resize(1500, 900)
    qtbot.waitExposed(w)
    w.activateWindow()
    try:
        qtbot.waitUntil(lambda: w.viewer.shown_pixels() is not None and w.reading_state()["viewports"][0]["loaded"]
                        == 10, timeout=15000)
        press(qtbot, w, Qt.Key.Key_M)
        qtbot.waitUntil(lambda: planes_drawn(w), timeout=10000)
        coronal = view_of(w, "coronal")
        assert all(v["loaded"] == 10 and v["frames"] == SLICES for v in w.reading_state()["viewports"])
        assert "slices loading…" in coronal.corners.text("bottom_left")
        # slices 0 to 9 (z 0 to 18 mm, the coronal plane's lowest rows) are there, the rest is background
        far, near = int((78 - 60) / SPACING), int((78 - 8) / SPACING)
        assert coronal.shown_pixels()[far].max() == 0 and coronal.shown_pixels()[near].min() > 0
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not w.cases.busy() and coronal.shown_pixels()[far].min() > 0, timeout=15000)
    assert "loading" not in coronal.corners.text("bottom_left")
    w.close()
