"""Comparison reading in the app (pytest-qt, offscreen): the AI's score and measured ratio beside the prior, the
current study's change since it; zoom and pan linked on request (Shift+S). The bundled model scores the demo
radiographs for real; what is on screen is read from `window.reading_state()`, the titles and the views."""

from __future__ import annotations

import csv
import functools

import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from medview.core.demo import generate_demo
from medview.core.dicom.readable import readable_date
from medview.core.viewing.findings_text import format_score
from medview.qt.ai import ai_controller
from medview.qt.ai.ai_controller import FLAGGED, NOT_APPLICABLE_TEXT, NOT_FLAGGED
from medview.qt.worklist.worklist_model import COL_AI
from tests.factories import write_series
from tests.qt.helpers import IdleWorker, open_window, press, settled

FINAL = (FLAGGED, NOT_FLAGGED, NOT_APPLICABLE_TEXT, "error")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Demo radiographs, PAT0001 and PAT0004 with a prior; the CTR the phantoms were drawn with, per image."""
    root = tmp_path_factory.mktemp("compare")
    generate_demo(root, cases=4, seed=0, ct_slices=0, priors=True)
    with (root / "ground_truth.csv").open(newline="") as f:
        truth = {row["sop_instance_uid"]: float(row["ctr"]) for row in csv.DictReader(f)}
    return root, truth


def scored(w) -> bool:
    proxy = w.worklist.proxy
    cells = [proxy.index(r, COL_AI).data() or "" for r in range(proxy.rowCount())]
    return bool(cells) and all(c.startswith(FINAL) for c in cells)


def test_p_shows_the_ai_score_and_ratio_beside_the_prior_and_the_change_on_the_current(qtbot, demo):
    root, truth = demo
    w = open_window(qtbot, root, size=(1800, 1000))
    qtbot.waitUntil(lambda: scored(w), timeout=120000)
    latest = max((s for s in w.cases.studies if s.patient_id == "PAT0001"), key=lambda s: s.study_date)
    w.cases.open_case(latest)
    qtbot.waitUntil(lambda: settled(w), timeout=20000)
    assert "AI" not in w.viewports.cells[0].title.text()  # one study on screen: no comparison in a title

    press(qtbot, w, Qt.Key.Key_P)
    state = w.reading_state()
    assert state["layout"] == [1, 2] and [v["prior"] for v in state["viewports"]] == [False, True]
    now, prior = state["viewports"]
    briefs = [w.ai.image_brief(v["study_uid"], (v["sop_instance_uid"], v["frame"])) for v in (now, prior)]
    assert all(b is not None and b.label == "cardiomegaly" for b in briefs)
    # the ratios are the model's measurements of these two images: near the phantoms' truth, and not the same
    for brief, viewport in zip(briefs, (now, prior)):
        assert brief.ctr == pytest.approx(truth[viewport["sop_instance_uid"]], abs=0.03)
    assert round(briefs[0].ctr, 2) != round(briefs[1].ctr, 2)
    score = {uid: r.prediction.scores["cardiomegaly"] for uid in (now["study_uid"], prior["study_uid"])
             for r in w.ai.results_for(uid)}
    assert [b.score for b in briefs] == [score[now["study_uid"]], score[prior["study_uid"]]]

    current_title, prior_title = (cell.title.text() for cell in w.viewports.cells[:2])
    studies = {s.study_uid: s for s in w.cases.studies}
    assert prior_title.startswith(f"PRIOR  {readable_date(studies[prior['study_uid']].study_date)}")
    assert (f"AI cardiomegaly {format_score(briefs[1].score)}, CTR {briefs[1].ctr:.2f}" in prior_title
            and "→" not in prior_title)
    assert current_title.startswith(f"CURRENT  {readable_date(latest.study_date)}")
    assert (f"AI cardiomegaly {format_score(briefs[0].score)}, CTR {briefs[1].ctr:.2f} → {briefs[0].ctr:.2f}"
            in current_title)

    w.resize(1300, 900)  # narrower: the series and the time go first, then the AI's words get shorter
    change = f"CTR {briefs[1].ctr:.2f} → {briefs[0].ctr:.2f}"
    qtbot.waitUntil(lambda: w.viewports.cells[0].title.text() != current_title, timeout=5000)
    assert change in w.viewports.cells[0].title.text()
    assert w.viewports.cells[1].title.text().startswith("PRIOR  ")

    press(qtbot, w, Qt.Key.Key_P, focus=w.viewer)  # back: one study, no comparison
    assert w.reading_state()["layout"] == [1, 1]
    w.close()


@pytest.fixture
def ct_window(qtbot, tmp_path, monkeypatch):
    """Two axial CT series of one frame of reference, side by side; the AI idle (reading, not scoring)."""
    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=IdleWorker))
    common = dict(study_uid="1.2.826.0.1.3680043.8.498.77", modality="CT", rows=48, cols=64, signed=True,
                  rescale=(1.0, -1024.0), window=(40, 400), pixel_spacing=(0.7, 0.7), patient_id="ZOOM",
                  extra={"FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.78"})
    write_series(tmp_path / "ct" / "a", 10, spacing=2.0, series_number=2, series_description="A", **common)
    write_series(tmp_path / "ct" / "b", 10, spacing=2.0, series_number=3, series_description="B", **common)
    w = open_window(qtbot, tmp_path / "ct", size=(1400, 900))
    w.cases.open_case(w.cases.studies[0])
    qtbot.waitUntil(lambda: settled(w), timeout=20000)
    press(qtbot, w, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    yield w
    w.close()


def drag(view, dx: int, dy: int) -> None:
    """A left-button drag across the view (the reader's mouse, with its buttons held while moving)."""
    target = view.graphics.viewport()
    start = QPointF(target.rect().center())
    steps = [QPointF(start.x() + dx * k / 5, start.y() + dy * k / 5) for k in range(1, 6)]
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    modifiers = Qt.KeyboardModifier.NoModifier
    QApplication.sendEvent(target, QMouseEvent(QEvent.Type.MouseButtonPress, start, start, left, left, modifiers))
    for at in steps:
        QApplication.sendEvent(target, QMouseEvent(QEvent.Type.MouseMove, at, at, none, left, modifiers))
    QApplication.sendEvent(target, QMouseEvent(QEvent.Type.MouseButtonRelease, steps[-1], steps[-1], left, none,
                                               modifiers))
    QApplication.processEvents()


def test_shift_s_links_zoom_and_pan_and_again_frees_them(ct_window, qtbot):
    w = ct_window
    first, second = w.viewports.views[:2]
    press(qtbot, w, Qt.Key.Key_Plus, focus=w.viewer)  # not linked: only the active viewport zooms
    assert [v["zoom"] for v in w.reading_state()["viewports"]] == [pytest.approx(1.25), 1.0]

    press(qtbot, w, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)  # zoom linked: the other takes it at once
    state = w.reading_state()
    assert state["linked"] and [v["zoom"] for v in state["viewports"]] == [pytest.approx(1.25)] * 2
    assert second.part_in_view() == pytest.approx(first.part_in_view(), abs=0.01)  # cells differ by a pixel
    assert "linked, zoom too" in w.viewports.cells[1].title.text()
    press(qtbot, w, Qt.Key.Key_Plus, focus=w.strip)
    assert [v["zoom"] for v in w.reading_state()["viewports"]] == [pytest.approx(1.5625)] * 2
    shown = [v["sop_instance_uid"] for v in w.reading_state()["viewports"]]
    press(qtbot, w, Qt.Key.Key_Down)  # scrolling is linked with it
    after = [v["sop_instance_uid"] for v in w.reading_state()["viewports"]]
    assert after[0] != shown[0] and after[1] != shown[1] and [first.state.index, second.state.index] == [1, 1]

    press(qtbot, w, Qt.Key.Key_T)  # the pan tool: a drag in the active viewport pans both
    before = first.part_in_view()
    drag(first, 120, 60)
    moved = first.part_in_view()
    assert moved[0] < before[0] - 0.05 and moved[1] < before[1] - 0.02  # the image follows the mouse
    assert second.part_in_view() == pytest.approx(moved, abs=0.01)

    press(qtbot, w, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)  # again: zoom and pan free, scrolling linked
    press(qtbot, w, Qt.Key.Key_Minus, focus=w.viewer)
    state = w.reading_state()
    assert state["linked"] and [v["zoom"] for v in state["viewports"]] == [pytest.approx(1.25),
                                                                          pytest.approx(1.5625)]
    assert "zoom too" not in w.viewports.cells[1].title.text()
    press(qtbot, w, Qt.Key.Key_S)  # S unlinks everything
    assert not w.reading_state()["linked"]
