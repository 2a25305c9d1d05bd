"""The keyboard review flow in the window (issue 5, SPEC section 6) with pytest-qt, offscreen, on demo data.

Focus is moved around first (worklist row clicked, series strip, image view), then F, A, X, K, the note
(Ctrl+N, typing, Esc), Enter (the confirmation patched), N, Ctrl+Z, Ctrl+E. After each step a *fresh*
`ReviewStore` (its own connection) must hold exactly what the panel and the worklist show. The AI is a fake
with the AI controller's API whose scores come from the demo's ground truth, so no torch is needed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medview.core.demo import generate_demo
from medview.core.inference.results import Prediction
from medview.core.review.store import CaseStatus, ReviewStore, Verdict
from medview.qt.review import review_controller as rc
from medview.qt.review.review_panel import verdict_text
from medview.qt.workers.inference import InferenceJob, InferenceResult
from medview.qt.worklist.worklist_model import COL_ID, COL_REVIEW, review_cell
from tests.qt.helpers import open_window, wait_ready

FINDING = "cardiomegaly"
READY_MS = 20000  # how long these tests wait for the app to be ready
CHECKSUM = "c0ffee" * 10 + "abcd"


# ------------------------------------------------------------------------------------------- data and fakes


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory) -> Path:
    """Four radiographs (ground truth 1, 0, 1, 0 for seed 3: PAT0001..PAT0004) and a small CT (PAT0005)."""
    root = tmp_path_factory.mktemp("demo_src") / "studies"
    summary = generate_demo(root, cases=4, seed=3, ct_slices=6)
    assert summary.labels == [1, 0, 1, 0]
    return root


@pytest.fixture
def source(demo_source, tmp_path) -> Path:
    """A fresh copy per test: its bytes are hashed before and after."""
    dst = tmp_path / "studies"
    shutil.copytree(demo_source, dst)
    return dst


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class FakeBundle:
    name, version, sha256 = "demo-cxr", "1.0.0", CHECKSUM
    labels = (FINDING,)
    thresholds = {FINDING: 0.5}


class FakeAi(QObject):
    """What the review reads of the AI controller (`review_controller.AiResults`) with results made from
    ground_truth.csv: a positive radiograph scores 0.91, a negative one 0.12; it draws no heatmap nor lines."""

    study_results_changed = Signal(str)
    measurement_corrected = Signal(object)

    def __init__(self, source: Path, studies):
        super().__init__()
        self.bundle = FakeBundle()
        self.heatmaps: list[tuple[str, int, str]] = []
        truth = {r["sop_instance_uid"]: int(r["label"]) for r in csv.DictReader(open(source / "ground_truth.csv"))}
        self.results: dict[str, list] = {}
        for study in studies:
            for inst in (i for s in study.series for i in s.instances):
                if inst.sop_instance_uid not in truth:
                    continue  # the CT: not a modality of the model
                score = 0.91 if truth[inst.sop_instance_uid] else 0.12
                job = InferenceJob(study.study_uid, inst.series_uid, inst.sop_instance_uid, inst.ref, inst.modality)
                pred = Prediction({FINDING: score}, [FINDING] if score >= 0.5 else [], None, "demo-cxr@1.0.0")
                self.results.setdefault(study.study_uid, []).append(InferenceResult(job, "ok", pred))

    def results_for(self, study_uid: str) -> list:
        return list(self.results.get(study_uid, []))

    def thresholds(self) -> dict:
        return dict(self.bundle.thresholds)

    def show_heatmap_for(self, sop_uid: str, frame: int, label: str) -> None:
        self.heatmaps.append((sop_uid, frame, label))

    def set_correction_source(self, source) -> None:
        self.correction_source = source

    def refresh_view(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ helpers


def _press(widget, key, modifier=Qt.KeyboardModifier.NoModifier):
    if not widget.window().isActiveWindow():
        widget.window().activateWindow()
    widget.setFocus(Qt.FocusReason.OtherFocusReason)
    QApplication.processEvents()
    assert QApplication.focusWidget() is widget
    QTest.keyClick(widget, key, modifier)
    QApplication.processEvents()


def _click_row(w, row: int) -> None:
    rect = w.worklist.view.visualRect(w.worklist.proxy.index(row, 0))
    QTest.mouseClick(w.worklist.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _uid(w, patient_id: str) -> str:
    return next(s.study_uid for s in w.cases.studies if s.patient_id == patient_id)


def _patient(w) -> str:
    return w.cases.case.patient_id


def _review_cell(w, uid: str) -> str:
    model = w.worklist.model
    return model.index(model.row_of(uid), COL_REVIEW).data()


def assert_ui_is_disk(w, uid: str) -> None:
    """A separately opened store holds exactly what the panel and the worklist show for case `uid`."""
    panel = w.review.panel
    with ReviewStore() as disk:
        case = disk.case(uid)
        findings = disk.findings(uid)
        state = disk.worklist_states([uid])[uid]
    assert _review_cell(w, uid) == review_cell(*state)[0]
    if w.review.session.study_uid != uid:
        return
    assert panel.verdict_marks() == ([verdict_text(f) for f in findings] if findings else [
        panel.table.item(0, 0).text()] if panel.table.rowCount() else [])
    for row, f in enumerate(findings):
        by = panel.verdict_by(row)
        assert by == (f"{f.verdict_by} {f.verdict_at[11:16]}" if f.verdict else "")
    banner = panel.banner.text()
    expected = {CaseStatus.REVIEWED: "SIGNED OFF", CaseStatus.IN_PROGRESS: "IN PROGRESS", CaseStatus.UNREAD: "UNREAD"}
    assert expected[case.status] in banner
    if case.status is CaseStatus.REVIEWED:
        assert case.signed_off_by in banner
    if not panel.note.hasFocus():
        assert panel.note_text() == case.note
    assert panel.keys.count() == len(case.key_images)
    selected = w.review.session.selected
    assert panel.selected_row() == ([f.id for f in findings].index(selected.id) if selected else -1)


@pytest.fixture
def app_window(qtbot, source):
    """The app as `medview gui SOURCE` builds it, with the fake AI attached before the scan finishes."""
    w = open_window(qtbot, source, size=(1500, 950), timeout=READY_MS)
    w.ai.shutdown()  # the bundled model's worker: these tests use the fake's ground-truth scores
    w.ai = FakeAi(source, w.cases.studies)
    w.review.use_ai(w.ai)
    w.worklist.view.sortByColumn(COL_ID, Qt.SortOrder.AscendingOrder)
    yield w
    w.close()


# ---------------------------------------------------------------------------------------------------- tests


def test_full_keyboard_flow_is_on_disk_after_every_key(app_window, qtbot, source, monkeypatch):
    w = app_window
    before = tree_hashes(source)
    asked = []
    answers = [(False, False), (True, True)]

    def fake_confirm(parent, unverdicted):
        asked.append([f.label for f in unverdicted])
        return answers.pop(0)

    monkeypatch.setattr(rc, "confirm_sign_off", fake_confirm)
    reviewer = w.review.store.reviewer
    p1, p2, p3, p4, p5 = (_uid(w, f"PAT000{i}") for i in range(1, 6))
    order = w.review.worklist_order()
    assert order == [p1, p2, p3, p4, p5]  # sorted by patient ID, as shown

    # focus moved around first: click the worklist (opens PAT0001), then the series strip, then the image
    _click_row(w, 0)
    wait_ready(qtbot, w, READY_MS)
    assert _patient(w) == "PAT0001"
    w.strip.setFocus()
    QApplication.processEvents()
    QTest.mouseClick(w.viewer, Qt.MouseButton.LeftButton)
    assert_ui_is_disk(w, p1)
    with ReviewStore() as disk:
        assert disk.case(p1).status is CaseStatus.IN_PROGRESS  # opened
        assert [(f.label, f.flagged, f.model_checksum) for f in disk.findings(p1)] == [(FINDING, True, CHECKSUM)]
    assert _review_cell(w, p1) == f"✎ {reviewer}"

    # F from the worklist: the flagged finding is selected, its image and heatmap shown
    _press(w.worklist.view, Qt.Key.Key_F)
    finding = w.review.session.selected
    assert finding is not None and finding.label == FINDING
    assert w.ai.heatmaps[-1] == (finding.sop_instance_uid, 0, FINDING)
    assert "Finding 1/1: cardiomegaly" in w.statusBar().currentMessage()
    assert w.review.panel.verdict_marks() == ["! decide"]  # flagged, no verdict yet
    assert w.review.panel.table.item(0, 1).text().startswith("▶ cardiomegaly")
    assert_ui_is_disk(w, p1)

    # A from the series strip, X from the image
    _press(w.strip, Qt.Key.Key_A)
    with ReviewStore() as disk:
        assert disk.finding(finding.id).verdict is Verdict.AGREE and disk.finding(finding.id).verdict_by == reviewer
    assert w.statusBar().currentMessage().startswith("Agreed: cardiomegaly")
    assert w.review.panel.verdict_marks() == ["✓ agree"]
    assert_ui_is_disk(w, p1)
    _press(w.viewer, Qt.Key.Key_X)
    with ReviewStore() as disk:
        assert disk.finding(finding.id).verdict is Verdict.DISAGREE
    assert w.review.panel.verdict_marks() == ["✗ disagree"]
    assert_ui_is_disk(w, p1)

    # K on the shown image; Ctrl+Z takes it off again; K once more
    sop = w.viewer.stack.instances[0].sop_instance_uid
    _press(w.viewer, Qt.Key.Key_K)
    with ReviewStore() as disk:
        assert [(k.sop_instance_uid, k.frame) for k in disk.case(p1).key_images] == [(sop, 0)]
    assert "KEY IMAGE" in w.review.panel.shown_image.text()
    assert_ui_is_disk(w, p1)
    _press(w.worklist.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    with ReviewStore() as disk:
        assert disk.case(p1).key_images == ()
        assert disk.finding(finding.id).verdict is Verdict.DISAGREE  # only the last action was undone
    assert "KEY IMAGE" not in w.review.panel.shown_image.text()
    assert w.statusBar().currentMessage() == "Undone: key image"
    assert_ui_is_disk(w, p1)
    _press(w.viewer, Qt.Key.Key_K)
    assert_ui_is_disk(w, p1)

    # the note: Ctrl+N focuses it, keys type text (no A / X / K / N / Enter shortcuts), Esc saves and leaves
    note = w.review.panel.note
    _press(w.strip, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is note
    text = "Heart looks enlarged; ask next week. Kx"
    QTest.keyClicks(note, text)
    QTest.keyClick(note, Qt.Key.Key_Return)
    QTest.keyClicks(note, "a")
    assert note.toPlainText() == text + "\na"
    assert w.cases.case.study_uid == p1  # neither N nor Enter fired
    with ReviewStore() as disk:
        assert disk.case(p1).note == ""  # not yet: the note is saved when it is left
        assert disk.finding(finding.id).verdict is Verdict.DISAGREE and len(disk.case(p1).key_images) == 1
    QTest.keyClick(note, Qt.Key.Key_Escape)
    QApplication.processEvents()
    with ReviewStore() as disk:
        assert disk.case(p1).note == text + "\na"
    assert QApplication.focusWidget() is w.viewer
    assert w.statusBar().currentMessage() == "Note saved"
    assert_ui_is_disk(w, p1)

    # Enter (from the worklist): every flagged finding has a verdict -> no question; next unreviewed opens
    _press(w.worklist.view, Qt.Key.Key_Return)
    assert asked == []
    with ReviewStore() as disk:
        assert disk.case(p1).status is CaseStatus.REVIEWED and disk.case(p1).signed_off_by == reviewer
    assert w.cases.case.study_uid == p2
    assert _review_cell(w, p1) == f"✔ {reviewer}"
    assert w.statusBar().currentMessage() == "Signed off — opening next unreviewed case"
    wait_ready(qtbot, w, READY_MS)
    assert_ui_is_disk(w, p1)
    assert_ui_is_disk(w, p2)

    # PAT0002: no flagged finding -> Enter signs off without asking
    _press(w.viewer, Qt.Key.Key_Return)
    assert asked == [] and w.cases.case.study_uid == p3
    wait_ready(qtbot, w, READY_MS)
    # PAT0003: flagged without a verdict -> asked; "No" keeps it open, then "Yes" + don't ask again
    _press(w.strip, Qt.Key.Key_Return)
    assert asked == [[FINDING]] and w.cases.case.study_uid == p3
    with ReviewStore() as disk:
        assert disk.case(p3).status is CaseStatus.IN_PROGRESS
    assert_ui_is_disk(w, p3)
    _press(w.strip, Qt.Key.Key_Return)
    assert asked == [[FINDING], [FINDING]] and w.cases.case.study_uid == p4
    with ReviewStore() as disk:
        assert disk.case(p3).status is CaseStatus.REVIEWED
        assert disk.get_pref("confirm_sign_off_unverdicted") == "0"
    wait_ready(qtbot, w, READY_MS)
    for uid in (p2, p3, p4):
        assert_ui_is_disk(w, uid)

    # N: the next unreviewed case in the worklist order as shown (PAT0005), then round to PAT0004
    _press(w.worklist.view, Qt.Key.Key_N)
    assert w.cases.case.study_uid == p5
    wait_ready(qtbot, w, READY_MS)
    assert w.review.panel.table.item(0, 0).text() == "No AI findings for this case"  # the CT
    _press(w.viewer, Qt.Key.Key_N)
    assert w.cases.case.study_uid == p4
    wait_ready(qtbot, w, READY_MS)

    # Ctrl+Z undoes the last sign-off (PAT0003) and goes back to that case; once more: PAT0002
    _press(w.viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.cases.case.study_uid == p3 and w.statusBar().currentMessage() == "Undone: sign-off"
    with ReviewStore() as disk:
        assert disk.case(p3).status is CaseStatus.IN_PROGRESS
    assert _review_cell(w, p3) == f"✎ {reviewer}"
    wait_ready(qtbot, w, READY_MS)
    assert_ui_is_disk(w, p3)
    _press(w.worklist.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.cases.case.study_uid == p2
    wait_ready(qtbot, w, READY_MS)
    for uid in (p1, p2, p3, p4, p5):
        assert_ui_is_disk(w, uid)

    # the audit log holds every step, the undos included
    with ReviewStore() as disk:
        actions = [e.action for e in disk.audit(p1)]
        assert disk._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert actions.count("verdict_agree") == 1 and "undo key_image_on" in actions and "sign_off" in actions
    assert tree_hashes(source) == before  # nothing was written where the studies were read from


def test_stepping_through_images_marks_key_images_without_asking_the_database(app_window, qtbot, monkeypatch):
    """The shown image's KEY IMAGE mark comes from the key images the panel last read: a step runs no SQL."""
    w = app_window
    w.cases.open_case(next(s for s in w.cases.studies if s.patient_id == "PAT0005"))  # the CT: several images
    wait_ready(qtbot, w, READY_MS)
    v, panel, store = w.viewer, w.review.panel, w.review.store
    n = v.stack.frame_count
    assert n > 2
    v.go(2)
    _press(v, Qt.Key.Key_K)
    assert "KEY IMAGE" in panel.shown_image.text()
    asked = []
    for name in ("case", "findings"):
        real = getattr(store, name)
        monkeypatch.setattr(store, name, lambda *a, real=real, name=name: asked.append(name) or real(*a))
    marks = []
    for i in range(n):
        v.go(i)
        marks.append("KEY IMAGE" in panel.shown_image.text())
    assert marks == [i == 2 for i in range(n)] and asked == []
    v.go(2)
    _press(v, Qt.Key.Key_K)  # K again on that image: off, and the mark follows at once
    assert "KEY IMAGE" not in panel.shown_image.text()
    v.go(1)
    v.go(2)
    assert "KEY IMAGE" not in panel.shown_image.text()


def test_enter_and_n_follow_the_worklist_order_as_shown(app_window, qtbot, monkeypatch):
    w = app_window
    monkeypatch.setattr(rc, "confirm_sign_off", lambda parent, unverdicted: (True, False))
    w.worklist.view.sortByColumn(COL_ID, Qt.SortOrder.DescendingOrder)
    shown = w.review.worklist_order()
    assert [next(s.patient_id for s in w.cases.studies if s.study_uid == u) for u in shown] == [
        "PAT0005", "PAT0004", "PAT0003", "PAT0002", "PAT0001"]
    _click_row(w, 0)
    wait_ready(qtbot, w, READY_MS)
    opened = [_patient(w)]
    for _ in range(4):
        _press(w.worklist.view, Qt.Key.Key_Return)
        wait_ready(qtbot, w, READY_MS)
        opened.append(_patient(w))
    assert opened == ["PAT0005", "PAT0004", "PAT0003", "PAT0002", "PAT0001"]
    _press(w.viewer, Qt.Key.Key_Return)  # the last one: nothing left
    assert w.statusBar().currentMessage() == "Signed off — all cases in the worklist are reviewed"
    assert all(_review_cell(w, u) == f"✔ {w.review.store.reviewer}" for u in shown)
    _press(w.viewer, Qt.Key.Key_N)
    assert w.statusBar().currentMessage() == "All cases in the worklist are reviewed"
    # the Review column is filled from the store when the studies are loaded again (a new session)
    w.cases.set_studies(list(w.cases.studies))
    assert all(_review_cell(w, u) == f"✔ {w.review.store.reviewer}" for u in shown)


def test_review_column_filled_on_load_from_an_earlier_session(qtbot, source, medview_home):
    with ReviewStore(reviewer="dr.earlier") as store:
        pass
    w = open_window(qtbot, source, timeout=READY_MS)
    uids = [s.study_uid for s in w.cases.studies]
    first = w.cases.case.study_uid  # opened on load: in progress by this reviewer
    with ReviewStore(reviewer="dr.earlier") as store:
        other = next(u for u in uids if u != first)
        store.sign_off(other)
    w.cases.set_studies(list(w.cases.studies))  # loading the folder again (opens its first case: in progress)
    assert _review_cell(w, other) == "✔ dr.earlier"
    opened = {first, w.cases.case.study_uid}
    assert all(_review_cell(w, u) == f"✎ {w.review.store.reviewer}" for u in opened if u != other)
    assert all(_review_cell(w, u) == "unread" for u in uids if u not in opened | {other})
    w.close()


def test_results_arriving_later_and_a_store_error_in_words(app_window, qtbot, monkeypatch):
    w = app_window
    ai = w.ai
    uid = _uid(w, "PAT0001")
    kept = ai.results.pop(uid)
    _click_row(w, 0)
    wait_ready(qtbot, w, READY_MS)
    assert w.review.session.findings == []
    _press(w.viewer, Qt.Key.Key_A)
    assert w.statusBar().currentMessage() == "No AI finding to agree with"
    ai.results[uid] = kept
    ai.study_results_changed.emit(uid)  # the worker scored the case
    assert [f.label for f in w.review.session.findings] == [FINDING]
    assert_ui_is_disk(w, uid)

    from medview.core.errors import ReviewStoreError

    def busy(*args, **kwargs):
        raise ReviewStoreError("review.sqlite: the review database is in use by another medview (waited 5 s); "
                               "try again")

    monkeypatch.setattr(w.review.store, "set_verdict", busy)
    _press(w.viewer, Qt.Key.Key_A)  # no exception reaches Qt: said in words
    assert "in use by another medview" in w.statusBar().currentMessage()
    with ReviewStore() as disk:
        assert disk.findings(uid)[0].verdict is None
    assert_ui_is_disk(w, uid)


def test_ctrl_e_exports_csv_json_pdf_sr_and_refuses_the_source_folder(app_window, qtbot, source, tmp_path,
                                                                       monkeypatch):
    from pypdf import PdfReader

    from medview.qt.review import export_dialog

    w = app_window
    before = tree_hashes(source)
    _click_row(w, 0)
    wait_ready(qtbot, w, READY_MS)
    _press(w.viewer, Qt.Key.Key_F)
    _press(w.viewer, Qt.Key.Key_A)
    _press(w.viewer, Qt.Key.Key_K)
    _press(w.viewer, Qt.Key.Key_Return)  # PAT0001 signed off, PAT0002 opens (in progress, no review data)
    wait_ready(qtbot, w, READY_MS)

    out = tmp_path / "export out"
    chosen = [str(source / "PAT0001"), str(out)]
    monkeypatch.setattr(export_dialog, "choose_folder", lambda parent, start: chosen.pop(0))
    _press(w.worklist.view, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    dialog = w.review.export_dialog
    qtbot.waitExposed(dialog)
    for box in dialog.formats.values():
        box.setChecked(True)
    # a folder inside the source folder is refused, in words, and nothing is written there
    QTest.mouseClick(dialog.findChild(QObject, "export_browse"), Qt.MouseButton.LeftButton)
    QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert "lies inside the source folder" in dialog.result.toPlainText()
    assert tree_hashes(source) == before

    QTest.mouseClick(dialog.findChild(QObject, "export_browse"), Qt.MouseButton.LeftButton)
    QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.busy(), timeout=60000)  # written in a worker thread
    p1 = _uid(w, "PAT0001")
    study = next(s for s in w.cases.studies if s.study_uid == p1)
    family, given = study.patient_name.split("^")[:2]
    day, accession = study.study_date, study.series[0].instances[0].accession_number
    stem = f"{family}_{given}_{day[:4]}-{day[4:6]}-{day[6:]}_{accession}"  # what a person looks for
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["review_findings.csv", "review_findings.json", f"{stem}.pdf", f"{stem}_SR.dcm",
                            f"{stem}_KOS.dcm"])  # the KOS of the key image beside the SR
    report = dialog.result.toPlainText()
    assert report.startswith("5 files written for 1 case into") and "could not" not in report

    rows = list(csv.DictReader(open(out / "review_findings.csv", encoding="utf-8")))
    with ReviewStore() as disk:
        f = disk.findings(p1)[0]
    assert [(r["study_uid"], r["finding"], r["verdict"], r["case_status"], r["key_image"]) for r in rows] == [
        (p1, FINDING, "agree", "reviewed", "true")]
    doc = json.loads((out / "review_findings.json").read_text(encoding="utf-8"))
    assert doc["findings"][0]["verdict_by"] == f.verdict_by
    sr = pydicom.dcmread(out / f"{stem}_SR.dcm")
    assert sr.Modality == "SR" and sr.VerificationFlag == "VERIFIED"
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(out / f"{stem}.pdf").pages).split())
    compact = "".join(text.split()).lower()  # table cells wrap words ("cardiomega ly")
    assert f"cardiomegaly0.9100.5yesagree{f.verdict_by}" in compact and "research use only" in text.lower(), text
    dialog.close()
    assert tree_hashes(source) == before


def test_sign_off_dialog_asks_with_a_dont_ask_again_box(qtbot, monkeypatch):
    """The real dialog (not patched): Yes with the box ticked gives (True, True)."""
    from PySide6.QtWidgets import QMessageBox

    from medview.core.review.store import Finding

    seen = {}

    def fake_exec(box):
        seen["text"] = box.text()
        box.checkBox().setChecked(True)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    f = Finding(1, "1.2", "", "1.2.3", 0, "cardiomegaly", 0.9, 0.5, True, "m", "1", "c", None, None, None)
    assert rc.confirm_sign_off(None, [f]) == (True, True)
    assert "cardiomegaly" in seen["text"] and "no verdict" in seen["text"]


def test_enter_in_a_text_field_is_not_sign_off(app_window, qtbot, monkeypatch):
    """Enter in the worklist filter opens the first match and in the reviewer field saves the name; neither
    signs the open case off (QLineEdit does not claim Enter itself: the key router gives it the key)."""
    w = app_window
    asked = []
    monkeypatch.setattr(rc, "confirm_sign_off", lambda parent, unverdicted: asked.append(1) or (True, False))
    _click_row(w, 0)
    wait_ready(qtbot, w, READY_MS)
    p1 = w.cases.case.study_uid
    _press(w.viewer, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is w.worklist.filter
    QTest.keyClicks(w.worklist.filter, "PAT0003")
    QTest.keyClick(w.worklist.filter, Qt.Key.Key_Return)
    wait_ready(qtbot, w, READY_MS)
    assert _patient(w) == "PAT0003"
    field = w.review.panel.reviewer
    field.setFocus()
    field.selectAll()
    QTest.keyClicks(field, "Dr Night Shift")
    QTest.keyClick(field, Qt.Key.Key_Return)
    with ReviewStore() as disk:
        assert disk.case(p1).status is CaseStatus.IN_PROGRESS
        assert disk.case(w.cases.case.study_uid).status is CaseStatus.IN_PROGRESS
        assert disk.reviewer == "Dr Night Shift"  # the preference, read by a fresh store
    assert w.review.store.reviewer == "Dr Night Shift" and asked == []
    _press(w.viewer, Qt.Key.Key_Return)  # now, on the image, Enter signs off as the new reviewer
    with ReviewStore() as disk:
        case = disk.case(_uid(w, "PAT0003"))
    assert case.status is CaseStatus.REVIEWED and case.signed_off_by == "Dr Night Shift"


def test_with_the_real_ai_controller_and_bundled_model(qtbot, source):
    """The real `AiController` (bundled model, CPU): its results become the case's findings, F shows the
    finding's image with its heatmap switched on, A stores the verdict with the model's name and checksum."""
    w = open_window(qtbot, source, timeout=READY_MS)
    ai = w.ai
    if not hasattr(ai, "results_for"):
        pytest.skip("no AI controller in this build")
    radiograph = next(s for s in w.cases.studies if s.modalities[0] in ("CR", "DX"))
    w.cases.open_case(radiograph)
    qtbot.waitUntil(lambda: ai.bundle is not None and bool(w.review.session.findings), timeout=90000)
    wait_ready(qtbot, w, READY_MS)
    uid = radiograph.study_uid
    result = next(r for r in ai.results_for(uid) if r.status == "ok")
    score = result.prediction.scores[FINDING]
    _press(w.worklist.view, Qt.Key.Key_F)
    assert ai.heatmap_visible() or result.prediction.heatmap is None
    _press(w.viewer, Qt.Key.Key_A)
    with ReviewStore() as disk:
        (f,) = disk.findings(uid)
    assert (f.label, f.model_name, f.model_version, f.model_checksum) == (
        FINDING, ai.bundle.name, ai.bundle.version, ai.bundle.sha256)
    assert f.score == pytest.approx(score) and f.flagged == (score >= ai.thresholds()[FINDING])
    assert f.verdict is Verdict.AGREE
    assert_ui_is_disk(w, uid)
    w.close()


def test_undo_of_a_case_not_in_the_worklist_keeps_the_shown_case(app_window, qtbot):
    """Ctrl+Z may revert a decision of an earlier session in another folder: it is undone and said, and the
    panel stays with the case on screen."""
    w = app_window
    _click_row(w, 0)
    wait_ready(qtbot, w, READY_MS)
    shown = w.cases.case.study_uid
    w.review.store.sign_off("2.25.999.elsewhere")  # the last action, made in a case of another folder
    _press(w.viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.statusBar().currentMessage() == "Undone: sign-off (in a case that is not in this worklist)"
    with ReviewStore() as disk:
        assert disk.case("2.25.999.elsewhere").status is not CaseStatus.REVIEWED
    assert w.cases.case.study_uid == shown and w.review.session.study_uid == shown
    assert_ui_is_disk(w, shown)
