"""Reading in context in the app (pytest-qt, offscreen): layouts, the active viewport, the prior beside the
current study, linked scrolling and window, orientation markers, scale bar and age/sex. Keys are pressed with
the focus moved around first; what is on screen is read from `window.reading_state()` and object names."""

from __future__ import annotations

import functools
import json
import shutil

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QTransform, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medview.core.demo import generate_demo
from medview.core.dicom.readable import readable_date
from medview.core.reading.priors import time_before
from medview.qt.ai import ai_controller
from medview.qt.viewer.image_view import ImageView
from tests.factories import write_series
from tests.qt.helpers import IdleWorker, open_window, press, settled

THIN, THICK = 24, 12  # slices 2 mm and 4 mm apart, one frame of reference
VIEWPORT_KEYS = {"study_uid", "series_uid", "sop_instance_uid", "frame", "frames", "loaded", "plane", "position",
                 "window", "invert", "zoom", "rotation", "flip", "prior"}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Demo radiographs (PAT0001 and PAT0004 with a prior), a CT of two axial series in one frame of reference
    (LINK), and pydicom's CT_small."""
    root = tmp_path_factory.mktemp("reading")
    generate_demo(root / "demo", cases=4, seed=0, ct_slices=0, priors=True)
    study, frame = generate_uid(), generate_uid()
    common = dict(study_uid=study, modality="CT", rows=32, cols=32, signed=True, rescale=(1.0, -1024.0),
                  window=(40, 400), pixel_spacing=(0.7, 0.7), patient_id="LINK", patient_name="Link^Case",
                  extra={"FrameOfReferenceUID": frame})
    write_series(root / "link" / "thin", THIN, spacing=2.0, series_number=2, series_description="Thin", **common)
    write_series(root / "link" / "thick", THICK, spacing=4.0, series_number=3, series_description="Thick",
                 **common)
    (root / "pydicom").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "pydicom" / "CT_small.dcm")
    return root


@pytest.fixture
def window(qtbot, studies, monkeypatch):
    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=IdleWorker))
    w = open_window(qtbot, studies, size=(1400, 900))
    yield w
    w.close()


def open_patient(qtbot, w, patient_id: str) -> None:
    """The patient's latest study, settled."""
    w.cases.open_case(max((s for s in w.cases.studies if s.patient_id == patient_id), key=lambda s: s.study_date))
    qtbot.waitUntil(lambda: settled(w), timeout=20000)


def viewers(w) -> list:
    return w.findChildren(ImageView, "viewer")


def test_ctrl_keys_choose_the_layout_and_tab_moves_the_active_viewport(window, qtbot):
    w = window
    open_patient(qtbot, w, "LINK")
    state = w.reading_state()
    assert state["layout"] == [1, 1] and len(state["viewports"]) == 1
    press(qtbot, w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    state = w.reading_state()
    assert state["layout"] == [1, 2] and len(state["viewports"]) == 2 and state["active"] == 0
    thin, thick = (v["series_uid"] for v in state["viewports"])  # the second gets the series not shown yet
    assert thin != thick and state["viewports"][1]["frames"] == THICK
    assert viewers(w) == [w.viewer] and w.viewer is w.viewports.views[0]
    press(qtbot, w, Qt.Key.Key_Tab, focus=w.strip)
    assert w.reading_state()["active"] == 1
    assert viewers(w) == [w.viewports.views[1]] and w.viewports.views[0].objectName() == "viewport"
    press(qtbot, w, Qt.Key.Key_Down)  # every key goes to the active viewport
    after = w.reading_state()["viewports"]
    assert after[0]["sop_instance_uid"] == state["viewports"][0]["sop_instance_uid"]
    assert after[1]["sop_instance_uid"] != state["viewports"][1]["sop_instance_uid"] and w.viewer.state.index == 1
    press(qtbot, w, Qt.Key.Key_Tab)  # round the layout
    assert w.reading_state()["active"] == 0
    press(qtbot, w, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier, focus=w.viewer)
    assert w.reading_state()["active"] == 1
    press(qtbot, w, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    state = w.reading_state()
    assert state["layout"] == [2, 2] and len(state["viewports"]) == 4 and state["active"] == 1
    assert [v["series_uid"] for v in state["viewports"]] == [thin, thick, None, None]
    assert all(cell.title.isVisible() for cell in w.viewports.cells[:4])
    press(qtbot, w, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert w.reading_state()["layout"] == [2, 1]
    press(qtbot, w, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    state = w.reading_state()
    assert state["layout"] == [1, 1] and state["active"] == 0 and state["viewports"][0]["series_uid"] == thin
    assert not w.viewports.cells[0].title.isVisible()  # one viewport: no title bar, no frame


def test_tab_in_the_filter_field_moves_on_from_the_field_not_the_viewport(window, qtbot):
    w = window
    open_patient(qtbot, w, "LINK")
    press(qtbot, w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    w.worklist.filter.setFocus(Qt.FocusReason.OtherFocusReason)
    QApplication.processEvents()
    QTest.keyClick(w.worklist.filter, Qt.Key.Key_Tab)
    assert w.reading_state()["active"] == 0


def test_a_click_or_the_wheel_in_a_viewport_makes_it_the_active_one(window, qtbot):
    w = window
    open_patient(qtbot, w, "LINK")
    press(qtbot, w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    second = w.viewports.views[1]
    target = second.graphics.viewport()
    centre = QPointF(target.rect().center())
    wheel = QWheelEvent(centre, QPointF(target.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(target, wheel)
    qtbot.waitUntil(lambda: settled(w), timeout=5000)
    state = w.reading_state()
    assert state["active"] == 1 and w.viewer is second
    assert second.state.index == 1 and w.viewports.views[0].state.index == 0
    QTest.mouseClick(w.viewports.views[0].graphics.viewport(), Qt.MouseButton.LeftButton)
    assert w.reading_state()["active"] == 0


def test_p_shows_the_prior_beside_the_current_study_labelled_with_its_date_and_again_goes_back(window, qtbot):
    w = window
    open_patient(qtbot, w, "PAT0001")
    current = w.reading_state()
    assert current["layout"] == [1, 1] and not current["viewports"][0]["prior"]
    press(qtbot, w, Qt.Key.Key_P)
    state = w.reading_state()
    assert state["layout"] == [1, 2]
    (now, prior) = state["viewports"]
    assert (now["prior"], prior["prior"]) == (False, True)
    assert now["study_uid"] == current["viewports"][0]["study_uid"] == state["case"]["study_uid"]
    studies = {s.study_uid: s for s in w.cases.studies}
    then, today = studies[prior["study_uid"]], studies[now["study_uid"]]
    assert then.patient_id == "PAT0001" and then.study_date < today.study_date
    assert prior["window"] is not None and prior["loaded"] == prior["frames"] == 1
    title = w.viewports.cells[1].title
    assert title.isVisible() and title.text().startswith(f"PRIOR  {readable_date(then.study_date)}")
    assert f"{time_before(then.study_date, today.study_date)} before" in title.text()
    assert w.viewports.cells[0].title.text().startswith(f"CURRENT  {readable_date(today.study_date)}")
    # the prior's own corner text: its date, and the same patient's age and sex in words
    header = pydicom.dcmread(w.viewports.views[1].stack.instances[0].ref.path, stop_before_pixels=True)
    top_left = w.viewports.views[1].corners.text("top_left")
    assert readable_date(then.study_date) in top_left
    assert f"{'Female' if header.PatientSex == 'F' else 'Male'}, {int(header.PatientAge[:3])} y" in top_left
    press(qtbot, w, Qt.Key.Key_Tab)
    press(qtbot, w, Qt.Key.Key_I)  # a key in the prior: only the prior changes
    assert [v["invert"] for v in w.reading_state()["viewports"]] == [False, True]
    press(qtbot, w, Qt.Key.Key_K)  # key images belong to the case being read, not to its prior
    assert "another study (the prior)" in w.statusBar().currentMessage()
    press(qtbot, w, Qt.Key.Key_P, focus=w.viewer)
    state = w.reading_state()
    assert state["layout"] == [1, 1] and [v["prior"] for v in state["viewports"]] == [False]
    assert state["viewports"][0]["study_uid"] == now["study_uid"]


def test_p_without_a_prior_says_so_and_changes_nothing(window, qtbot):
    w = window
    open_patient(qtbot, w, "PAT0002")
    before = w.reading_state()
    press(qtbot, w, Qt.Key.Key_P)
    assert w.reading_state() == before
    assert "No earlier study" in w.statusBar().currentMessage()


def test_s_links_scrolling_by_patient_position_and_the_window(window, qtbot):
    w = window
    open_patient(qtbot, w, "LINK")
    press(qtbot, w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    press(qtbot, w, Qt.Key.Key_Down)  # unlinked: the other stays
    assert [v["frame"] for v in w.reading_state()["viewports"]] == [0, 0]
    assert [view.state.index for view in w.viewports.views] == [1, 0]
    press(qtbot, w, Qt.Key.Key_S)
    state = json.loads(json.dumps(w.reading_state()))  # plain data, exactly the contract's keys
    assert set(state) == {"case", "layout", "active", "linked", "viewports"}
    assert all(set(v) == VIEWPORT_KEYS for v in state["viewports"])
    assert [(v["plane"], v["zoom"], v["rotation"], v["flip"], v["invert"], v["prior"]) for v in state["viewports"]] == [
        ("acquired", 1.0, 0, False, False, False)] * 2
    assert [v["frames"] for v in state["viewports"]] == [THIN, THICK]
    assert state["linked"] and "linked" in w.viewports.cells[1].title.text()
    for key, modifier in ((Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier),
                          (Qt.Key.Key_Down, Qt.KeyboardModifier.NoModifier), (Qt.Key.Key_End, None)):
        press(qtbot, w, key, modifier or Qt.KeyboardModifier.NoModifier)
        thin, thick = w.reading_state()["viewports"]
        assert thick["position"][2] == pytest.approx(thin["position"][2], abs=2.0)  # nearest slice, 4 mm apart
    assert [view.state.index for view in w.viewports.views] == [THIN - 1, THICK - 1]
    press(qtbot, w, Qt.Key.Key_Home)
    assert [view.state.index for view in w.viewports.views] == [0, 0]
    press(qtbot, w, Qt.Key.Key_2)  # CT preset 2 (lung): the linked CT takes it too
    assert [v["window"] for v in w.reading_state()["viewports"]] == [[-600.0, 1500.0]] * 2
    press(qtbot, w, Qt.Key.Key_Tab)
    press(qtbot, w, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)  # scrolling the other one moves the first
    assert [view.state.index for view in w.viewports.views] == [20, 10]
    press(qtbot, w, Qt.Key.Key_S)
    press(qtbot, w, Qt.Key.Key_Up)
    state = w.reading_state()
    assert not state["linked"] and [view.state.index for view in w.viewports.views] == [20, 9]


def test_orientation_markers_of_an_axial_ct_follow_rotation_and_flip_and_a_scale_bar_is_shown(window, qtbot):
    w = window
    open_patient(qtbot, w, "1CT1")  # pydicom's CT_small
    v = w.viewer
    edges = ("left", "right", "top", "bottom")

    def markers():
        return tuple(v.markers.text(e) for e in edges)

    assert markers() == ("R", "L", "A", "P")
    assert v.markers.bar.text().endswith(("mm", "cm"))  # Pixel Spacing 0.66 mm
    assert "Other sex, 0 y" in v.corners.text("top_left")  # PatientSex O, PatientAge 000Y
    press(qtbot, w, Qt.Key.Key_R, Qt.KeyboardModifier.AltModifier)
    assert markers() == ("P", "A", "R", "L") and w.reading_state()["viewports"][0]["rotation"] == 90
    press(qtbot, w, Qt.Key.Key_F, Qt.KeyboardModifier.AltModifier)
    assert markers() == ("A", "P", "R", "L") and w.reading_state()["viewports"][0]["flip"]
    # the letters say where the image really went: the patient's left (+x, the image's row direction) is drawn
    # towards the marker "L"
    t: QTransform = v.image_group.transform()
    towards_left = t.map(QPointF(1, 0)) - t.map(QPointF(0, 0))
    edge = {(1, 0): "right", (-1, 0): "left", (0, 1): "bottom", (0, -1): "top"}[
        (round(towards_left.x()), round(towards_left.y()))]
    assert v.markers.text(edge) == "L"
    press(qtbot, w, Qt.Key.Key_Space)  # minimal: markers stay, the scale bar goes
    assert markers() == ("A", "P", "R", "L") and v.markers.bar.text() == ""
    press(qtbot, w, Qt.Key.Key_Space)  # off: nothing over the image
    assert markers() == ("", "", "", "") and v.corners.text("bottom_left") == ""
    press(qtbot, w, Qt.Key.Key_Space)
    press(qtbot, w, Qt.Key.Key_Escape)
    assert markers() == ("R", "L", "A", "P")


def test_a_chest_radiograph_is_oriented_from_patient_orientation(window, qtbot):
    w = window
    open_patient(qtbot, w, "PAT0002")
    assert tuple(w.viewer.markers.text(e) for e in ("left", "right", "top", "bottom")) == ("R", "L", "H", "F")
    bar, marker = w.viewer.markers.bar, w.viewer.markers.labels["bottom"]
    assert bar.text() and not bar.geometry().intersects(marker.geometry())
    for corner in ("bottom_left", "bottom_right"):
        label = w.viewer.corners.labels[corner]
        assert not bar.geometry().intersects(label.geometry()), corner


def test_side_by_side_on_a_narrow_window_folds_the_worklist_away_and_back(qtbot, studies, monkeypatch):
    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=IdleWorker))
    w = open_window(qtbot, studies, size=(1000, 700))
    try:
        open_patient(qtbot, w, "PAT0004")
        assert w.worklist_shown()
        press(qtbot, w, Qt.Key.Key_P)
        assert w.reading_state()["layout"] == [1, 2] and not w.worklist_shown()
        assert "Ctrl+L brings it back" in w.statusBar().currentMessage()
        prior_title = w.viewports.cells[1].title
        assert prior_title.text().startswith("PRIOR  ")  # the date stays whole, whatever else is left out
        press(qtbot, w, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier, focus=w.viewer)
        press(qtbot, w, Qt.Key.Key_Down, focus=w.viewer)
        assert w.worklist_shown()  # the reader brought it back: it stays
        press(qtbot, w, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier, focus=w.viewer)
        press(qtbot, w, Qt.Key.Key_P, focus=w.viewer)
        assert w.reading_state()["layout"] == [1, 1] and not w.worklist_shown()  # folded by the reader: kept
        press(qtbot, w, Qt.Key.Key_P, focus=w.viewer)
        assert not w.worklist_shown()
        w.show_worklist(True)
        press(qtbot, w, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier, focus=w.viewer)
        press(qtbot, w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier, focus=w.viewer)
        assert not w.worklist_shown()
        press(qtbot, w, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier, focus=w.viewer)
        assert w.worklist_shown()  # folded for the viewports: back with one column
    finally:
        w.close()


def test_a_hanging_protocol_file_that_cannot_be_used_is_named_and_the_defaults_hang(qtbot, studies, medview_home,
                                                                                    monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    (medview_home / "hanging_protocols.json").write_text('{"protocols": [{"name": "CT", "layout": [9, 1]}]}',
                                                         encoding="utf-8")
    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=IdleWorker))
    w = open_window(qtbot, studies, size=(1400, 900))
    try:
        qtbot.waitUntil(lambda: w.findChild(QMessageBox, "protocol_problem") is not None, timeout=5000)
        text = w.findChild(QMessageBox, "protocol_problem").text()
        assert "hanging_protocols.json" in text and "layout" in text and "using the default" in text
        open_patient(qtbot, w, "PAT0001")
        press(qtbot, w, Qt.Key.Key_P)
        assert [v["prior"] for v in w.reading_state()["viewports"]] == [False, True]  # the default protocol
    finally:
        w.close()
