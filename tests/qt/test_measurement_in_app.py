"""The AI's measured cardiothoracic ratio in the app: its lines and label on the image, the reader's correction by
dragging a line end (stored with the review, undone by Ctrl+Z), the findings panel's sentence, images outside the
model's use named with their reason, the heatmap switch on a CT, and the Invert button kept in step with the view.

The worker is scripted: it answers each image with a result built here (no torch), through the AI controller's
own `worker_factory`, so everything after the worker is the app's real code.
"""

from __future__ import annotations

import functools

import pydicom
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from medview.core.demo import generate_demo
from medview.core.inference.bundle import load_bundle
from medview.core.inference.results import NOT_APPLICABLE, OK, InferenceResult, Prediction
from medview.core.review.measurements import CTR
from medview.qt.ai import ai_controller
from medview.qt.worklist.worklist_model import COL_AI, COL_ID
from medview.resources import bundled_model_path
from tests.qt.helpers import IdleWorker, wait_ready

FLAGGED_PID, NORMAL_PID, LATERAL_PID, CT_PID = "PAT0001", "PAT0002", "PAT0003", "PAT0004"


def ratio_lines(rows: int, cols: int, heart_fraction: float) -> dict:
    """A CTR measurement whose thorax spans half the image width and whose heart spans `heart_fraction` of it."""
    thorax_w = 0.5 * cols
    heart_w = heart_fraction * thorax_w
    heart = [[0.5 * cols - 0.45 * heart_w, 0.55 * rows], [0.5 * cols + 0.55 * heart_w, 0.55 * rows]]
    thorax = [[0.25 * cols, 0.7 * rows], [0.75 * cols, 0.7 * rows]]
    return {"value": heart_fraction, "unit": "1", "threshold": 0.5, "heart": heart, "thorax": thorax}


def scripted_result(job, pid: str, rows: int, cols: int) -> InferenceResult:
    """Flagged with CTR 0.56 (score 0.996), not flagged with CTR 0.46 (score 0.12), a lateral view."""
    if pid == LATERAL_PID:
        return InferenceResult(job, NOT_APPLICABLE, error="lateral view")
    score, fraction = (0.996, 0.56) if pid == FLAGGED_PID else (0.12, 0.46)
    prediction = Prediction({"cardiomegaly": score}, ["cardiomegaly"] if score >= 0.5 else [], None,
                            "medview-cardiomegaly-phantom@1.0.0",
                            measurements={CTR: ratio_lines(rows, cols, fraction)})
    return InferenceResult(job, OK, prediction)


class ScriptedWorker(IdleWorker):
    """The InferenceWorker's signals and calls; each queued image is answered at once by `scripted_result`."""

    patients: dict[str, tuple[str, int, int]] = {}  # SOP Instance UID -> (patient ID, rows, columns)

    def __init__(self, model, device="auto", parent=None):
        super().__init__(model, device, parent)
        self.model = model

    def start(self) -> None:
        self.model_ready.emit(load_bundle(self.model))

    def enqueue(self, jobs) -> int:
        jobs = list(jobs)
        for job in jobs:
            pid, rows, cols = self.patients[job.sop_instance_uid]
            self.result_ready.emit(scripted_result(job, pid, rows, cols))
        self.idle.emit()
        return len(jobs)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Three radiographs (PAT0001-3) and a CT (PAT0004)."""
    out = tmp_path_factory.mktemp("ctr_demo")
    generate_demo(out, cases=3, seed=3, ct_slices=3)
    headers = (pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(out.rglob("*.dcm")))
    ScriptedWorker.patients = {ds.SOPInstanceUID: (ds.PatientID, int(ds.Rows), int(ds.Columns)) for ds in headers}
    return out


@pytest.fixture
def window(qtbot, demo, monkeypatch):
    from medview.app import create_app

    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=ScriptedWorker))
    _app, w = create_app(["medview", str(demo), "--model", str(bundled_model_path())])
    qtbot.addWidget(w)
    w.showNormal()
    w.resize(1400, 900)
    qtbot.waitExposed(w)
    wait_ready(qtbot, w, 20000)
    qtbot.waitUntil(lambda: all(text and not text.startswith(("queued", "running")) for _, text in ai_cells(w)),
                    timeout=10000)
    yield w
    w.close()


def ai_cells(w) -> list[tuple[str, str]]:
    proxy = w.worklist.proxy
    return [(proxy.index(r, COL_ID).data(), proxy.index(r, COL_AI).data() or "") for r in range(proxy.rowCount())]


def open_patient(qtbot, w, pid: str) -> None:
    w.cases.open_case(next(s for s in w.cases.studies if s.patient_id == pid))
    qtbot.waitUntil(lambda: w.viewer.shown_pixels() is not None, timeout=20000)
    assert w.reading_state()["case"]["patient_id"] == pid


def the_image(w) -> tuple[str, str, int]:
    viewport = w.reading_state()["viewports"][0]
    return viewport["study_uid"], viewport["sop_instance_uid"], viewport["frame"]


def flat(line) -> list[float]:
    return [v for point in line for v in point]


def drag(view, start: QPointF, end: QPointF, steps: int = 8) -> None:
    """A left-button drag on the view's viewport, as a mouse makes it (press, moves with the button held, release)."""
    target = view.viewport()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    no_mods = Qt.KeyboardModifier.NoModifier

    def send(kind, pos, button, buttons):
        event = QMouseEvent(kind, pos, view.viewport().mapToGlobal(pos), button, buttons, no_mods)
        QApplication.sendEvent(target, event)
        QApplication.processEvents()

    send(QEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        send(QEvent.Type.MouseMove, start + (end - start) * (i / steps), none, left)
    send(QEvent.Type.MouseButtonRelease, end, left, none)


def handle_on_screen(w, line: str, end: int) -> QPointF:
    roi = w.ai.ratio_lines.lines[line]
    handle = sorted(roi.getHandles(), key=lambda h: h.scenePos().x())[end]
    return QPointF(w.viewer.graphics.mapFromScene(handle.scenePos()))


def test_flagged_image_shows_its_lines_label_and_sentence(qtbot, window):
    w = window
    cells = dict(ai_cells(w))
    assert cells[FLAGGED_PID] == "flagged > 0.99" and cells[NORMAL_PID] == "not flagged 0.12"
    open_patient(qtbot, w, FLAGGED_PID)
    lines = w.ai.ratio_lines
    assert lines.is_shown() and lines.label.isVisible()
    inst = w.viewer.stack.instances[0]
    expected = ratio_lines(inst.rows, inst.columns, 0.56)
    for name in ("heart", "thorax"):
        drawn = getattr(lines, name)()
        assert flat(drawn) == pytest.approx(flat(expected[name])) and drawn[0][1] == drawn[1][1]  # horizontal
    assert w.ai.shown_ratio_text() == "CTR 0.56 ≥ 0.50"
    assert w.findings.status_label.text() == ("Cardiothoracic ratio 0.56 measured, at or above the 0.50 threshold "
                                              "(score > 0.99): enlarged cardiac silhouette.")

    open_patient(qtbot, w, NORMAL_PID)
    assert w.ai.shown_ratio_text() == "CTR 0.46 < 0.50"
    assert w.findings.status_label.text() == ("Cardiothoracic ratio 0.46 measured, below the 0.50 threshold "
                                              "(score 0.12).")
    # the lines follow the image: the CT has none
    open_patient(qtbot, w, CT_PID)
    assert not w.ai.ratio_lines.is_shown() and w.ai.shown_ratio_text() == ""


def test_dragging_a_line_end_stores_the_corrected_ratio_and_undo_restores_the_model(qtbot, window):
    w = window
    open_patient(qtbot, w, FLAGGED_PID)
    study_uid, sop, frame = the_image(w)
    view = w.viewer.graphics
    start = handle_on_screen(w, "heart", 1)
    drag(view, start, start + QPointF(-25, 12))  # the heart's right end, inwards (and a little down)

    session = w.review.session
    stored = session.corrected_measurement(study_uid, sop, frame, CTR)
    assert stored is not None and stored["value"] < 0.56
    heart = w.ai.ratio_lines.heart()
    assert flat(heart) == pytest.approx(flat(stored["heart"])) and heart[0][1] == heart[1][1]  # still horizontal
    assert heart[0][1] > ratio_lines(w.viewer.stack.instances[0].rows, 1, 0.56)["heart"][0][1]  # moved down
    value = stored["value"]
    assert w.ai.shown_ratio_text() == f"CTR {value:.2f} {'≥' if value >= 0.5 else '<'} 0.50 (corrected; model 0.56)"
    assert f"Cardiothoracic ratio {value:.2f} as corrected by the reader (model 0.56)" in w.findings.status_label.text()
    # what is drawn comes from the store: another case and back shows the correction again
    open_patient(qtbot, w, NORMAL_PID)
    open_patient(qtbot, w, FLAGGED_PID)
    assert flat(w.ai.ratio_lines.heart()) == pytest.approx(flat(stored["heart"]))

    w.registry.action("review.undo").trigger()  # Ctrl+Z
    assert session.corrected_measurement(study_uid, sop, frame, CTR) is None
    assert w.ai.shown_ratio_text() == "CTR 0.56 ≥ 0.50"
    inst = w.viewer.stack.instances[0]
    assert flat(w.ai.ratio_lines.heart()) == pytest.approx(flat(ratio_lines(inst.rows, inst.columns, 0.56)["heart"]))


def test_image_outside_the_model_use_says_why_in_panel_and_worklist(qtbot, window):
    w = window
    cells = ai_cells(w)
    assert dict(cells)[LATERAL_PID] == "not applicable: lateral view"
    # sorted with the not-applicable cases, after every scored one
    order = [pid for pid, _ in cells]
    assert order.index(LATERAL_PID) > max(order.index(FLAGGED_PID), order.index(NORMAL_PID))
    assert {order[-1], order[-2]} == {LATERAL_PID, CT_PID}
    open_patient(qtbot, w, LATERAL_PID)
    assert w.findings.status_label.text() == "Not applicable: lateral view"
    assert "flagged" not in w.findings.status_label.text().lower()
    assert not w.ai.ratio_lines.is_shown()


def test_heatmap_switch_is_disabled_where_the_model_does_not_apply(qtbot, window):
    w = window
    heatmap = w.registry.action("ai.heatmap")
    open_patient(qtbot, w, FLAGGED_PID)
    assert heatmap.isEnabled() and w.findings.heatmap_box.isEnabled()
    open_patient(qtbot, w, CT_PID)
    assert not heatmap.isEnabled() and not w.findings.heatmap_box.isEnabled()
    open_patient(qtbot, w, LATERAL_PID)
    assert not heatmap.isEnabled()
    open_patient(qtbot, w, NORMAL_PID)
    assert heatmap.isEnabled() and w.findings.heatmap_box.isEnabled()


def test_invert_button_follows_the_view(qtbot, window):
    w = window
    invert = w.registry.action("view.invert")

    def inverted() -> bool:
        shown = w.reading_state()["viewports"][0]["invert"]
        assert invert.isChecked() == shown
        return shown

    open_patient(qtbot, w, FLAGGED_PID)
    invert.trigger()  # I
    assert inverted()
    w.registry.action("view.reset").trigger()  # Esc
    assert not inverted()
    invert.trigger()
    assert inverted()
    open_patient(qtbot, w, NORMAL_PID)  # another case
    assert not inverted()
    open_patient(qtbot, w, CT_PID)
    assert len(w.cases.stacks) > 1
    invert.trigger()
    assert inverted()
    w.cases.step_stack(1 if w.stack_index == 0 else -1)  # another series
    assert w.reading_state()["viewports"][0]["series_uid"] != w.cases.stacks[1 - w.stack_index].stack.series_uid
    qtbot.waitUntil(lambda: w.viewer.shown_pixels() is not None, timeout=20000)
    assert not inverted()
