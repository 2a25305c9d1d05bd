"""Where the keys go while reading (pytest-qt, offscreen): Ctrl+F then Enter gives them back to the image,
digits are window presets unless the reader is typing in the filter, a filter that hides every case says so,
and each series shows the image the reader left it at when they come back to it."""

from __future__ import annotations

import functools

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medview.core.demo import generate_demo
from medview.qt.ai import ai_controller
from tests.factories import write_series
from tests.qt.helpers import IdleWorker, open_window, settled

SLICES = 12


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """Demo radiographs and a CT of two axial series (PAT CT2); the AI idle (reading, not scoring)."""
    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=IdleWorker))
    generate_demo(tmp_path / "demo", cases=3, seed=0, ct_slices=0)
    common = dict(study_uid="1.2.826.0.1.3680043.8.498.91", modality="CT", rows=32, cols=32, signed=True,
                  rescale=(1.0, -1024.0), window=(40, 400), pixel_spacing=(0.7, 0.7), patient_id="CT2",
                  extra={"FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.92"})
    write_series(tmp_path / "ct" / "a", SLICES, spacing=2.0, series_number=2, series_description="A", **common)
    write_series(tmp_path / "ct" / "b", SLICES, spacing=2.0, series_number=3, series_description="B", **common)
    w = open_window(qtbot, tmp_path, size=(1400, 900))
    yield w
    w.close()


def key(qtbot, w, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """A key where the focus is now (as the reader's keyboard sends it)."""
    if not w.isActiveWindow():
        w.activateWindow()
        qtbot.waitUntil(w.isActiveWindow, timeout=2000)
    QTest.keyClick(QApplication.focusWidget(), key, modifier)
    qtbot.waitUntil(lambda: settled(w), timeout=20000)


def open_ct(qtbot, w):
    w.cases.open_case(next(s for s in w.cases.studies if s.patient_id == "CT2"))
    qtbot.waitUntil(lambda: settled(w), timeout=20000)


def test_ctrl_f_then_enter_gives_the_keys_back_to_the_image(window, qtbot):
    w = window
    open_ct(qtbot, w)
    key(qtbot, w, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is w.worklist.filter
    QTest.keyClicks(w.worklist.filter, "CT2")
    key(qtbot, w, Qt.Key.Key_Return)
    assert QApplication.focusWidget() is w.viewer and w.reading_state()["case"]["patient_id"] == "CT2"
    key(qtbot, w, Qt.Key.Key_2)  # a preset now, not a digit typed into the filter
    assert w.worklist.filter.text() == "CT2"
    assert w.reading_state()["viewports"][0]["window"] == [-600.0, 1500.0]  # CT 2: lung
    key(qtbot, w, Qt.Key.Key_Down)
    assert w.viewer.state.index == 1


def test_digits_reach_the_filter_only_while_the_reader_types_in_it(window, qtbot):
    w = window
    open_ct(qtbot, w)
    w.worklist.view.setFocus(Qt.FocusReason.OtherFocusReason)  # the table has the focus, nothing is being typed
    key(qtbot, w, Qt.Key.Key_3)
    assert w.worklist.filter.text() == "" and w.reading_state()["viewports"][0]["window"] == [400.0, 1800.0]
    rows = w.worklist.proxy.rowCount()
    key(qtbot, w, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, w, Qt.Key.Key_3)  # typing in the filter: a digit is text
    assert w.worklist.filter.text() == "3" and w.reading_state()["viewports"][0]["window"] == [400.0, 1800.0]
    assert w.worklist.proxy.rowCount() < rows


def test_a_filter_that_hides_every_case_says_so(window, qtbot):
    w = window
    total = w.worklist.proxy.rowCount()
    message = w.worklist.no_match
    assert total == 4 and not message.isVisible()
    key(qtbot, w, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(w.worklist.filter, "nobody here")
    assert w.worklist.proxy.rowCount() == 0 and message.isVisible()
    assert "nobody here" in message.text() and f"all {total} cases" in message.text()
    QTest.keyClick(w.worklist.filter, Qt.Key.Key_Return)  # nothing to open: the keys stay in the field
    assert QApplication.focusWidget() is w.worklist.filter
    w.worklist.filter.clear()
    assert w.worklist.proxy.rowCount() == total and not message.isVisible()


def test_each_series_shows_the_image_it_was_left_at(window, qtbot):
    w = window
    open_ct(qtbot, w)
    first = w.reading_state()["viewports"][0]["series_uid"]
    w.viewer.setFocus(Qt.FocusReason.OtherFocusReason)
    for _ in range(5):
        key(qtbot, w, Qt.Key.Key_Down)
    left = w.reading_state()["viewports"][0]
    assert w.viewer.state.index == 5
    key(qtbot, w, Qt.Key.Key_Right)  # the next series opens at its start
    state = w.reading_state()["viewports"][0]
    assert state["series_uid"] != first and w.viewer.state.index == 0
    key(qtbot, w, Qt.Key.Key_End)
    key(qtbot, w, Qt.Key.Key_Left)  # back: the image it was left at
    back = w.reading_state()["viewports"][0]
    assert back["series_uid"] == first and back["sop_instance_uid"] == left["sop_instance_uid"]
    assert w.viewer.state.index == 5
    w.strip.stack_chosen.emit(1)  # the second series picked in the strip: where it was left, its last image
    qtbot.waitUntil(lambda: settled(w), timeout=20000)
    assert w.reading_state()["viewports"][0]["series_uid"] == state["series_uid"]
    assert w.viewer.state.index == SLICES - 1
    # another case, and back: from the start
    w.cases.open_case(next(s for s in w.cases.studies if s.patient_id != "CT2"))
    qtbot.waitUntil(lambda: settled(w), timeout=20000)
    open_ct(qtbot, w)
    assert w.viewer.state.index == 0
