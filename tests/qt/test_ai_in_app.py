"""The AI in the app, end to end on real demo studies and the bundled model: the worker scores the folder,
flagged cases lead the worklist, the findings panel and H show the open image's result, the preferences
re-evaluate without rerunning, the results cache makes a reopened folder free, a broken model is survivable."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import threading

import pydicom
import pytest
from PySide6.QtCore import QSettings, Qt

from medview.core.demo import generate_demo
from medview.core.inference.engine import Engine
from medview.core.viewing.findings_text import format_score
from medview.qt.ai.ai_controller import FLAGGED, NOT_APPLICABLE_TEXT, NOT_FLAGGED
from medview.qt.ai.findings_panel import COL_FLAGGED, COL_LABEL, COL_SCORE, COL_THRESHOLD
from medview.qt.worklist.worklist_model import COL_AI, COL_ID
from medview.resources import bundled_model_path

FINAL = (FLAGGED, NOT_FLAGGED, NOT_APPLICABLE_TEXT, "error")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Six radiographs (three with an enlarged heart) and a CT of five slices with its topogram."""
    out = tmp_path_factory.mktemp("demo")
    generate_demo(out, cases=6, seed=11, ct_slices=5)  # positives at CTR 0.54-0.61: the app, not the model, is tested
    with (out / "ground_truth.csv").open(newline="") as f:
        truth = {row["study_uid"]: int(row["label"]) for row in csv.DictReader(f)}
    return out, truth


@pytest.fixture()
def model_runs(monkeypatch):
    """How many images the engine ran the network on (the worker's thread calls Engine.predict_images)."""
    count = {"images": 0}
    lock = threading.Lock()
    original = Engine.predict_images

    def counted(self, images, **kw):
        with lock:
            count["images"] += len(images)
        return original(self, images, **kw)

    monkeypatch.setattr(Engine, "predict_images", counted)
    return count


@pytest.fixture()
def open_app(qtbot):
    windows = []

    def start(folder, **kwargs):
        from medview.app import create_app

        app, window = create_app(["medview", str(folder)], **kwargs)
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield start
    for window in windows:
        window.close()
        worker = window.ai.worker
        assert worker is None or not worker.isRunning()


def ai_column(window) -> list[tuple[str, str]]:
    """(patient ID, AI cell) per worklist row, in the order shown."""
    proxy = window.worklist.proxy
    return [(proxy.index(r, COL_ID).data(), proxy.index(r, COL_AI).data() or "") for r in range(proxy.rowCount())]


def wait_scored(qtbot, window, timeout=90000):
    def done():
        rows = ai_column(window)
        assert rows and all(text.startswith(FINAL) for _, text in rows), rows

    qtbot.waitUntil(done, timeout=timeout)


def open_row(qtbot, window, row):
    study = window.worklist.proxy.study_at(row)
    window.cases.open_case(study)
    qtbot.waitUntil(lambda: window.viewer.shown_pixels() is not None, timeout=20000)
    return study


def test_folder_scored_flagged_first_and_findings_shown(qtbot, demo, open_app, model_runs):
    folder, truth = demo
    window = open_app(folder)
    wait_scored(qtbot, window)
    ai = window.ai
    assert ai.bundle is not None and ai.bundle.name == "medview-cardiomegaly-phantom"
    assert model_runs["images"] == 6  # every radiograph once; not the CT
    rows = ai_column(window)
    states = [text for _, text in rows]
    assert sum(s.startswith("flagged ") for s in states) == 3 and states[-1] == "not applicable"
    proxy = window.worklist.proxy
    uids = [proxy.study_at(r).study_uid for r in range(proxy.rowCount())]
    # the ground truth's positive cases lead the worklist; the CT is last, not sent to the model
    assert [truth.get(uid) for uid in uids] == [1, 1, 1, 0, 0, 0, None]
    flagged_scores = [float(s.split()[-1]) for s in states[:3]]
    assert flagged_scores == sorted(flagged_scores, reverse=True)
    threshold = ai.thresholds()["cardiomegaly"]
    assert threshold == ai.bundle.thresholds["cardiomegaly"] == 0.5
    for uid, text in zip(uids[:6], states[:6]):
        (result,) = ai.results_for(uid)
        score = result.prediction.scores["cardiomegaly"]
        assert text == f"{'flagged' if score >= threshold else 'not flagged'} {format_score(score)}"
    ct = proxy.study_at(6)
    assert ct.modalities[0] == "CT" and all(r.status == "not_applicable" for r in ai.results_for(ct.study_uid))
    assert not window.progress.isVisible()  # AI progress gone once the queue is empty

    # the open case's finding in the panel: label, score, threshold, flagged; model; research use only
    panel = window.findings
    assert panel.objectName() == "findings" and window.findChild(type(panel), "findings") is panel
    study = open_row(qtbot, window, 0)
    (result,) = ai.results_for(study.study_uid)
    score = result.prediction.scores["cardiomegaly"]
    cells = [panel.table.item(0, c).text() for c in (COL_LABEL, COL_SCORE, COL_THRESHOLD, COL_FLAGGED)]
    assert cells == ["cardiomegaly", format_score(score, 3), "0.50", "yes"]
    assert panel.model_label.text() == "Model: medview-cardiomegaly-phantom 2.1.0"
    assert panel.disclaimer.isVisible() and "Research use only" in panel.disclaimer.text()
    measured = result.prediction.measurements["cardiothoracic_ratio"]["value"]
    assert (f"Cardiothoracic ratio {measured:.2f} measured, at or above the 0.50 threshold"
            in panel.status_label.text())
    # a not flagged case, then the CT: the panel follows the case on screen
    open_row(qtbot, window, 4)
    assert panel.table.item(0, COL_FLAGGED).text() == "no" and "below the 0.50 threshold" in panel.status_label.text()
    open_row(qtbot, window, 6)
    assert panel.table.item(0, COL_SCORE).text() == "—" and "Not applicable" in panel.status_label.text()


def test_user_sort_is_kept(qtbot, demo, open_app):
    folder, _ = demo
    window = open_app(folder)
    header = window.worklist.view.horizontalHeader()
    qtbot.waitUntil(lambda: window.worklist.proxy.rowCount() == 7, timeout=20000)
    wait_scored(qtbot, window)
    assert [pid for pid, _ in ai_column(window)][:3] != ["PAT0001", "PAT0002", "PAT0003"]  # flagged first
    header.sectionClicked.emit(COL_ID)  # what a click on the header does after sorting by it
    window.worklist.view.sortByColumn(COL_ID, Qt.SortOrder.AscendingOrder)
    by_id = [f"PAT{i:04d}" for i in range(1, 8)]
    assert [pid for pid, _ in ai_column(window)] == by_id
    loads = []
    window.cases.studies_loaded.connect(loads.append)
    window.cases.open_paths([str(folder)])  # the same folder again: the reader's order stays
    qtbot.waitUntil(lambda: len(loads) == 1, timeout=20000)
    wait_scored(qtbot, window)
    assert [pid for pid, _ in ai_column(window)] == by_id


def test_heatmap_toggles_and_stays_aligned(qtbot, demo, open_app):
    folder, _ = demo
    window = open_app(folder)
    wait_scored(qtbot, window)
    open_row(qtbot, window, 0)  # the most suspicious case
    ai, viewer = window.ai, window.viewer
    item = ai.overlay.item
    assert not item.isVisible()
    qtbot.keyClick(viewer, Qt.Key.Key_H)  # H
    assert item.isVisible() and window.findings.heatmap_box.isChecked()
    assert item.image is not None and float(item.image.max()) > 0.5

    def same_rect():
        image = viewer.image.mapRectToScene(viewer.image.boundingRect())
        overlay = item.mapRectToScene(item.boundingRect())
        return [round(v, 3) for v in (overlay.x(), overlay.y(), overlay.width(), overlay.height())] == \
            [round(v, 3) for v in (image.x(), image.y(), image.width(), image.height())]

    assert same_rect()
    viewer.rotate()
    viewer.flip()
    viewer.zoom_in()
    assert viewer.state.rotation and viewer.state.flip_h and same_rect()
    # the hot spot stays on the same image pixel: map the overlay's hottest pixel through both items
    data = item.image
    r, c = divmod(int(data.argmax()), data.shape[1])
    rows, cols = viewer.display.array.shape[1:3]
    hot = item.mapToScene(c + 0.5, r + 0.5)
    pixel = viewer.image.mapFromScene(hot)
    assert abs(pixel.x() - (c + 0.5) * cols / data.shape[1]) < 1 and abs(pixel.y() - (r + 0.5) * rows / data.shape[0]) < 1

    window.findings.opacity_slider.setValue(80)
    assert item.opacity() == pytest.approx(0.8)
    window.registry.action("ai.heatmap").trigger()  # H again: off
    assert not item.isVisible() and not window.findings.heatmap_box.isChecked()
    window.findings.heatmap_box.setChecked(True)  # the panel's box is the same switch
    assert item.isVisible() and window.registry.action("ai.heatmap").isChecked()

    # the CT has no heatmap: nothing of the radiograph's map is left over it; back on a radiograph it returns
    open_row(qtbot, window, 6)
    assert not item.isVisible() and item.image is None
    study = window.worklist.proxy.study_at(1)
    (result,) = ai.results_for(study.study_uid)
    ai.show_heatmap_for(result.job.sop_instance_uid, 0, "cardiomegaly")  # the review session's F
    window.cases.show_instance(study.study_uid, result.job.sop_instance_uid, 0)
    qtbot.waitUntil(lambda: item.isVisible() and viewer.shown_pixels() is not None, timeout=20000)
    assert window.findings.selected_finding() == "cardiomegaly" and same_rect()


def test_worker_stops_when_the_window_closes(qtbot, demo, open_app):
    folder, _ = demo
    window = open_app(folder)
    qtbot.waitUntil(lambda: window.ai.worker is not None and window.ai.worker.isRunning(), timeout=10000)
    worker = window.ai.worker
    window.close()
    assert not worker.isRunning() and worker.isFinished()


def test_threshold_in_preferences_reevaluates_without_running_the_model(qtbot, demo, open_app, model_runs,
                                                                       monkeypatch):
    from medview.qt.preferences_dialog import PreferencesDialog

    folder, truth = demo
    window = open_app(folder)
    wait_scored(qtbot, window)
    ai = window.ai
    runs = model_runs["images"]
    scores = sorted((r.prediction.scores["cardiomegaly"], uid) for uid in truth for r in ai.results_for(uid))
    # a threshold between the two lowest flagged scores: the lowest case is no longer flagged
    lowest_flagged, next_flagged = sorted(s for s, _ in scores if s >= 0.5)[:2]
    threshold = round((lowest_flagged + next_flagged) / 2, 3)
    assert lowest_flagged < threshold <= next_flagged
    changed = []
    ai.study_results_changed.connect(changed.append)
    dialog = PreferencesDialog(ai, window)
    qtbot.addWidget(dialog)
    spin = dialog.spins["cardiomegaly"]
    assert spin.value() == 0.5
    spin.setValue(threshold)
    dialog.apply()
    assert ai.thresholds()["cardiomegaly"] == pytest.approx(threshold)
    assert ai.threshold_overrides() == ai._read_threshold_overrides()  # held as stored
    states = [text for _, text in ai_column(window)]
    assert sum(s.startswith("flagged ") for s in states) == 2
    assert ai.worker.pending() == 0 and model_runs["images"] == runs  # nothing ran again
    assert set(changed) >= set(truth)  # the review session hears of it for every case
    stored = QSettings()
    assert stored.fileName().startswith(os.environ["MEDVIEW_HOME"])
    assert float(stored.value("ai/thresholds/medview-cardiomegaly-phantom/cardiomegaly")) == spin.value()
    assert window.findings.table.item(0, COL_THRESHOLD).text() == f"{spin.value():.2f}"

    dialog.reset_thresholds()  # reset to the bundle's
    assert spin.value() == 0.5
    dialog.apply()
    assert sum(t.startswith("flagged ") for _, t in ai_column(window)) == 3
    assert stored.value("ai/thresholds/medview-cardiomegaly-phantom/cardiomegaly") is None
    assert model_runs["images"] == runs and ai.worker.isRunning()
    assert ai.threshold_overrides() == ai._read_threshold_overrides() == {}

    # flagged and the verdict run per result and per image shown: they use the thresholds held, not the settings
    def no_settings(*_args):
        raise AssertionError("settings read on a hot path")

    monkeypatch.setattr(ai.settings.store, "value", no_settings)
    for uid in truth:
        for result in ai.results_for(uid):
            assert ai.flagged(result.prediction) == (["cardiomegaly"] if result.prediction.scores["cardiomegaly"]
                                                     >= 0.5 else [])
            ai.verdict(result.prediction)
    open_row(qtbot, window, 1)
    assert window.findings.table.item(0, COL_THRESHOLD).text() == "0.50"


def test_reopening_a_scored_folder_runs_nothing(qtbot, demo, open_app, model_runs):
    folder, _ = demo
    first = open_app(folder)
    wait_scored(qtbot, first)
    assert model_runs["images"] == 6
    before = ai_column(first)
    first.close()
    second = open_app(folder)  # a new session, same MEDVIEW_HOME: the results cache
    wait_scored(qtbot, second)
    assert model_runs["images"] == 6
    assert ai_column(second) == before
    results = [r for uid in second.ai._studies for r in second.ai.results_for(uid) if r.status == "ok"]
    assert len(results) == 6 and all(r.cached for r in results)


@pytest.mark.parametrize("broken", ["missing", "checksum"])
def test_broken_model_is_explained_and_the_viewer_works(qtbot, demo, open_app, tmp_path, broken):
    folder, _ = demo
    model = tmp_path / "model"
    if broken == "checksum":
        shutil.copytree(bundled_model_path(), model)
        weights = model / "models" / "model.ts"
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    window = open_app(folder, model=str(model))
    panel = window.findings
    qtbot.waitUntil(lambda: "could not be loaded" in panel.status_label.text(), timeout=30000)
    text = panel.status_label.text()
    assert ("not found" in text) if broken == "missing" else ("checksum" in text.lower() or "sha" in text.lower())
    assert "Traceback" not in text and panel.model_label.text().startswith("No AI findings")
    assert panel.disclaimer.isVisible()
    qtbot.waitUntil(lambda: len(ai_column(window)) == 7 and all(t == "error" for _, t in ai_column(window)),
                    timeout=20000)
    open_row(qtbot, window, 0)  # the viewer still shows images
    assert window.viewer.shown_pixels().std() > 5
    assert window.ai.bundle is None and window.ai.results_for(window.cases.case.study_uid) == []
    window.registry.action("ai.heatmap").trigger()
    assert not window.ai.heatmap_visible()


def test_create_app_takes_model_and_device_from_argv_as_medview_gui_does(qtbot, demo, tmp_path):
    """SPEC section 7: create_app(argv) builds the app as `medview gui` would, --model and --device included."""
    from medview.app import create_app

    folder, _ = demo
    model = tmp_path / "copy"
    shutil.copytree(bundled_model_path(), model)
    _app, window = create_app(["medview", "gui", str(folder), "--model", str(model), "--device", "cpu"])
    qtbot.addWidget(window)
    try:
        assert window.ai.model_path() == str(model) and window.ai.device() == "cpu"
        qtbot.waitUntil(lambda: window.ai.worker is not None and window.ai.bundle is not None, timeout=30000)
        assert window.ai.worker._model_path == str(model) and window.ai.worker._device == "cpu"
    finally:
        window.close()


@pytest.mark.parametrize("command", ["gui", "demo"])
def test_a_missing_model_on_the_command_line_is_exit_2_before_any_window(tmp_path, command):
    """SPEC section 1: an unusable argument is exit code 2 and one line naming it; no window, no traceback."""
    env = {**os.environ, "MEDVIEW_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}
    missing = tmp_path / "no-such-model"
    done = subprocess.run([sys.executable, "-m", "medview", command, "--model", str(missing)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"medview {command}: {missing}: no such model file or folder"]
    assert not (tmp_path / "home" / "demo").exists()  # refused before the demo studies were written


def test_preferences_model_change_restarts_the_worker(qtbot, demo, open_app, tmp_path, model_runs):
    """From a missing model to a working one chosen in the preferences: no restart of the app needed."""
    from medview.qt.preferences_dialog import PreferencesDialog

    folder, _ = demo
    window = open_app(folder, model=str(tmp_path / "nowhere"))
    ai = window.ai
    qtbot.waitUntil(lambda: ai.model_error != "", timeout=30000)
    first = ai.worker
    qtbot.waitUntil(lambda: not first.isRunning(), timeout=10000)
    dialog = PreferencesDialog(ai, window)
    qtbot.addWidget(dialog)
    assert dialog.model_edit.text() == str(tmp_path / "nowhere") and not dialog.spins
    model = tmp_path / "copy"
    shutil.copytree(bundled_model_path(), model)
    dialog.model_edit.setText(str(model))
    dialog.device_box.setCurrentIndex(dialog.device_box.findData("cpu"))
    dialog.accept()
    assert ai.worker is not first and ai.model_path() == str(model) and ai.device() == "cpu"
    assert QSettings().value("ai/model") == str(model) and QSettings().value("ai/device") == "cpu"
    wait_scored(qtbot, window)
    assert ai.bundle is not None and ai.model_error == "" and model_runs["images"] == 6
    assert sum(t.startswith("flagged ") for _, t in ai_column(window)) == 3
    assert window.findings.model_label.text() == "Model: medview-cardiomegaly-phantom 2.1.0"


def test_case_states_and_their_order(demo):
    """Queued, running, flagged (highest first), not flagged, error, not applicable: the worklist's order."""
    from medview.core.dicom.source import SourceRef
    from medview.core.inference.results import Prediction
    from medview.qt.ai.ai_controller import study_status, status_text
    from medview.qt.workers.inference import ERROR, OK, InferenceJob, InferenceResult

    folder, _ = demo
    job = InferenceJob("S", "S.1", "S.1.1", SourceRef(str(next(folder.rglob("*.dcm")))), "DX")

    def ok(score):
        return InferenceResult(job, OK, Prediction({"cardiomegaly": score}, [], None, "m@1"))

    def flagged_of(p):
        return [k for k, v in p.scores.items() if v >= 0.5]

    cases = {
        "queued": study_status([], 2, flagged_of),
        "running": study_status([ok(0.2)], 2, flagged_of),
        "flagged early": study_status([ok(0.7)], 2, flagged_of),  # one flagged image is enough to rise
        "flagged high": study_status([ok(0.2), ok(0.95)], 2, flagged_of),
        "not flagged": study_status([ok(0.2), ok(0.49)], 2, flagged_of),
        "error": study_status([InferenceResult(job, ERROR, error="unreadable")], 1, flagged_of),
        "not applicable": study_status([], 0, flagged_of),
    }
    assert [status_text(state, score) for state, _, score in cases.values()] == [
        "queued", "running", "flagged 0.70", "flagged 0.95", "not flagged 0.49", "error", "not applicable"]
    assert status_text(*cases["running"][::2], done=1, expected=2) == "running 1/2"
    order = sorted(cases, key=lambda k: cases[k][1])
    assert order == ["flagged high", "flagged early", "running", "queued", "not flagged", "error", "not applicable"]


def test_empty_window_starts_the_worker_with_the_first_folder(qtbot, demo, open_app):
    folder, _ = demo
    window = open_app(folder)
    window.close()
    from medview.app import create_app

    app, empty = create_app(["medview"])
    qtbot.addWidget(empty)
    try:
        qtbot.wait(300)
        assert empty.ai.worker is None  # nothing to score: no model, no torch import for an empty window
        assert "when studies are opened" in empty.findings.model_label.text()
        empty.cases.open_paths([str(folder)])
        wait_scored(qtbot, empty)
        assert empty.ai.bundle is not None and sum(t.startswith("flagged ") for _, t in ai_column(empty)) == 3
    finally:
        empty.close()
    assert not empty.ai.worker.isRunning()


def test_image_does_not_move_when_the_model_loads_and_scores(qtbot, demo, open_app):
    """The viewer keeps its size while the worker loads the model and results arrive: an image that shrank and
    refitted under the reader's mouse would spoil a measurement being drawn."""
    folder, _ = demo
    window = open_app(folder)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    open_row(qtbot, window, 0)
    before = window.viewer.size()
    wait_scored(qtbot, window)
    qtbot.wait(50)  # let the layout settle after the last result
    assert window.viewer.size() == before


@pytest.mark.slow
def test_a_folder_without_radiographs_never_starts_the_model(qtbot, tmp_path, demo):
    """A CT-only folder: every case "not applicable", no worker and no torch in the process (checked in a fresh
    one); opening radiographs afterwards starts the worker and scores them."""
    ct_only = tmp_path / "ct"
    generate_demo(tmp_path / "full", cases=2, seed=5, ct_slices=4)
    ct_dir = next(p.parent.parent.parent for p in (tmp_path / "full").rglob("*.dcm")
                  if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT")
    shutil.copytree(ct_dir, ct_only)
    script = f"""
import sys, time
from medview.app import create_app
app, w = create_app(["medview", {str(ct_only)!r}])
deadline = time.time() + 60
while time.time() < deadline and not (w.cases.studies and all(
        (w.worklist.proxy.index(r, {COL_AI}).data() or "") == "not applicable"
        for r in range(w.worklist.proxy.rowCount()))):
    app.processEvents(); time.sleep(0.01)
cells = [w.worklist.proxy.index(r, {COL_AI}).data() for r in range(w.worklist.proxy.rowCount())]
print(cells, w.ai.worker is None, "torch" in sys.modules)
w.close()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.stdout.strip().endswith("True False"), out.stdout + out.stderr
    assert "not applicable" in out.stdout

    folder, _ = demo
    from medview.app import create_app

    app, window = create_app(["medview", str(ct_only)])
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: bool(window.cases.studies), timeout=30000)
    assert window.ai.worker is None
    window.cases.open_paths([str(folder)])
    qtbot.waitUntil(lambda: len(window.cases.studies) == 7, timeout=30000)  # six radiographs and a CT
    wait_scored(qtbot, window)
    assert window.ai.worker is not None and window.ai.bundle is not None
    assert any(text.startswith(FLAGGED) for _, text in ai_column(window))
    window.close()


def _first_case_watch(window) -> list[dict]:
    """What the worklist looked like each time the window opened a case (it opens one as the folder loads)."""
    seen = []
    proxy = window.worklist.proxy
    window.cases.case_opened.connect(lambda study: seen.append({
        "case": study.study_uid, "top": proxy.study_at(0).study_uid, "cells": ai_column(window),
        "order": [proxy.study_at(r).study_uid for r in range(proxy.rowCount())]}))
    return seen


def test_reopened_folder_is_ranked_before_its_first_case_opens(qtbot, demo, open_app, model_runs):
    """After a restart the cached results are in the worklist before the first case is chosen: it opens on the
    top flagged case that is not signed off, in the order the reader then goes through; nothing runs again."""
    from medview.core.review.store import ReviewStore

    folder, truth = demo
    first = open_app(folder)
    wait_scored(qtbot, first)
    ranked = ai_column(first)
    proxy = first.worklist.proxy
    order = [proxy.study_at(r).study_uid for r in range(proxy.rowCount())]
    assert [truth.get(uid) for uid in order][:3] == [1, 1, 1]
    first.close()
    with ReviewStore() as store:
        store.sign_off(order[0])  # the top case was signed off in that session

    second = open_app(folder)  # a new session, same MEDVIEW_HOME: the results cache and the review database
    seen = _first_case_watch(second)
    qtbot.waitUntil(lambda: bool(seen), timeout=20000)
    assert seen[0]["cells"] == ranked and seen[0]["order"] == order  # final order before any case is opened
    assert seen[0]["case"] == order[1]  # the top flagged one not signed off, not the scan's first
    results = [r for uid in order for r in second.ai.results_for(uid) if r.status == "ok"]
    assert len(results) == 6 and all(r.cached for r in results)
    qtbot.waitUntil(lambda: second.findings.model_label.text() == "Model: medview-cardiomegaly-phantom 2.1.0",
                    timeout=60000)  # the worker has loaded the model: it finds nothing left to score
    qtbot.waitUntil(lambda: second.ai.worker.pending() == 0, timeout=10000)
    assert model_runs["images"] == 6 and ai_column(second) == ranked
    assert [s["case"] for s in seen] == [order[1]]  # and the case on screen stayed


def test_new_folder_opens_at_once_and_reading_starts_at_the_top(qtbot, demo, open_app, tmp_path, monkeypatch):
    """Nothing cached: the first case opens at once, before any score, and stays on screen while the scores
    re-sort the worklist around it; Enter then opens the case now on top (the most suspicious), N goes on
    down from there."""
    from medview.qt.review import review_controller

    folder, truth = demo
    # without PAT0001 (a positive case) the scan's first case is a negative one: the scores move it down
    source = tmp_path / "studies"
    shutil.copytree(folder, source, ignore=lambda d, names: [n for n in names if n == "PAT0001"])
    window = open_app(source)
    seen = _first_case_watch(window)
    qtbot.waitUntil(lambda: bool(seen), timeout=20000)
    start = seen[0]["case"]
    assert start == seen[0]["top"] and truth[start] == 0
    assert {text for _, text in seen[0]["cells"]} <= {"queued", "not applicable"}  # opened before any score
    wait_scored(qtbot, window)
    order = [window.worklist.proxy.study_at(r).study_uid for r in range(window.worklist.proxy.rowCount())]
    assert order.index(start) > 0 and window.cases.case.study_uid == start  # moved down, still the case on screen
    assert [s["case"] for s in seen] == [start]

    monkeypatch.setattr(review_controller, "confirm_sign_off", lambda parent, unverdicted: (True, False))
    window.registry.action("review.sign_off").trigger()  # Enter
    assert window.cases.case.study_uid == order[0] and truth[order[0]] == 1  # the top flagged case, not the next row
    window.registry.action("case.next_unreviewed").trigger()  # N: the worklist order as shown, from there on
    assert window.cases.case.study_uid == order[1]


def test_h_where_there_is_no_heatmap_changes_nothing(qtbot, demo, open_app):
    """On the CT (the model does not read it) H and the panel's box are greyed out and H leaves the heatmap off:
    the next radiograph opens without it; H on that radiograph switches it on."""
    folder, _ = demo
    window = open_app(folder)
    wait_scored(qtbot, window)
    ai, action, box = window.ai, window.registry.action("ai.heatmap"), window.findings.heatmap_box
    open_row(qtbot, window, 6)  # the CT
    assert not action.isEnabled() and not box.isEnabled()
    qtbot.keyClick(window.viewer, Qt.Key.Key_H)
    assert not action.isChecked() and not box.isChecked() and not ai.heatmap_visible()
    box.setChecked(True)  # the panel's box is the same switch
    assert not box.isChecked() and not action.isChecked()
    open_row(qtbot, window, 0)  # the most suspicious radiograph: it has a heatmap, left off
    assert ai.overlay.has_heatmap() and not ai.heatmap_visible() and not ai.overlay.item.isVisible()
    qtbot.keyClick(window.viewer, Qt.Key.Key_H)
    assert ai.heatmap_visible() and action.isChecked() and box.isChecked()


@pytest.mark.slow
def test_cached_results_are_taken_in_the_gui_thread_before_the_first_case(qtbot, demo):
    """The cache is read in the GUI thread before the first case opens: 200 cached images among 1,000 other
    rows, each found under the file's pixel key (its speed is measured in benchmarks, not asserted here)."""
    import numpy as np

    from medview.app import create_app
    from medview.core.dicom.source import SourceRef
    from medview.core.inference.bundle import load_bundle
    from medview.core.inference.cache import ResultCache
    from medview.core.inference.results import InferenceJob, Prediction
    from medview.core.inference.scoring import pixel_key

    folder, _ = demo
    ref = SourceRef(str(next(folder.rglob("*.dcm"))))  # never read: only the cache is
    same_pixels = pixel_key(InferenceJob("S", "S.1", "2.25.0", ref, "DX"))
    meta = load_bundle(bundled_model_path())
    cache = ResultCache()
    rng = np.random.default_rng(0)
    for i in range(1200):
        heatmap = rng.random((1, 16, 16)).astype(np.float32)
        cache.put(f"2.25.{i}", 0, meta.sha256, meta.results_key, Prediction({"cardiomegaly": 0.7}, [], heatmap, "m@1"),
                  same_pixels)
    cache.close()
    _app, window = create_app(["medview"])
    qtbot.addWidget(window)
    ai = window.ai
    jobs = {f"S{s}": [InferenceJob(f"S{s}", "S.1", f"2.25.{s * 4 + k}", ref, "DX") for k in range(4)]
            for s in range(50)}
    ai._jobs, ai._results, ai.bundle = jobs, {}, meta
    assert ai._apply_cached() == 200
    assert all(r.cached and r.prediction.heatmap.shape == (1, 16, 16) for uid in jobs for r in ai.results_for(uid))
    window.close()


def test_a_not_flagged_image_shows_its_heatmap_faint_and_says_why(qtbot, demo, open_app):
    """The map of a finding below its threshold is drawn at score / threshold strength (a clearly normal
    radiograph barely tints), and the status line says so; a flagged one is drawn at full strength."""
    folder, _ = demo
    window = open_app(folder)
    wait_scored(qtbot, window)
    ai, item = window.ai, window.ai.overlay.item
    proxy = window.worklist.proxy
    scored = {}
    for row in range(proxy.rowCount()):
        for result in ai.results_for(proxy.study_at(row).study_uid):
            if result.prediction is not None:
                scored[row] = result.prediction.scores["cardiomegaly"]
    low_row = min(scored, key=scored.get)
    threshold = ai.thresholds()["cardiomegaly"]
    assert scored[low_row] < threshold / 2  # the demo has clearly normal radiographs
    open_row(qtbot, window, low_row)
    qtbot.keyClick(window.viewer, Qt.Key.Key_H)
    assert item.isVisible() and ai.overlay.strength() == pytest.approx(scored[low_row] / threshold)
    assert float(item.image.max()) <= ai.overlay.strength() + 1e-6
    assert "strength" in window.statusBar().currentMessage() and "below the threshold" in item.toolTip()

    high_row = max(scored, key=scored.get)
    open_row(qtbot, window, high_row)
    assert ai.overlay.strength() == 1.0 and float(item.image.max()) > 0.99 and "flagged" in item.toolTip()
