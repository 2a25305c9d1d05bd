"""The PACS in the app against a real Orthanc and real pushes: the panel (Ctrl+P) finds a study and Enter
retrieves it into the worklist and opens it; with the listener on (Preferences), studies pushed by storescu
join the worklist, are scored, and the flagged one leads; a sign-off sends the review only when the reader set
that rule (and Ctrl+Shift+S sends it by key), and the SR is then found on the PACS by query."""

from __future__ import annotations

import csv
import shutil
import subprocess

import pydicom
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QDialog, QLabel, QLineEdit, QTableView, QTableWidget
from pydicom.uid import generate_uid

from medview.core.demo import generate_demo
from medview.core.net import StudyQuery, find_studies, resolve_server, send_paths
from medview.core.net.transfer import list_instances
from medview.qt.worklist.worklist_model import COL_AI, COL_ID, COL_SOURCE
from tests.core.test_pacs import write_settings
from tests.factories import write_image, write_series
from tests.orthanc import ORTHANC, OrthancServer, dicomweb_plugin, free_port

needs_orthanc = pytest.mark.skipif(ORTHANC is None or dicomweb_plugin() is None,
                                   reason="Orthanc with its DICOMweb plugin is not installed "
                                          "(apt-get install orthanc orthanc-dicomweb)")
FINAL = ("flagged", "not flagged")


@pytest.fixture
def orthanc(tmp_path):
    server = OrthancServer(tmp_path / "orthanc").start()
    yield server
    server.kill()


@pytest.fixture
def start_app(qtbot):
    windows = []

    def start(*paths):
        from medview.app import create_app

        _app, window = create_app(["medview", *map(str, paths)])
        qtbot.addWidget(window)
        window.showNormal()
        window.resize(1500, 900)
        qtbot.waitExposed(window)
        window.activateWindow()
        windows.append(window)
        return window

    yield start
    for window in windows:
        window.close()
        assert not window.pacs.retrieving() and window.pacs.listener is None


def press(widget, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    window = widget.window()
    if QGuiApplication.focusWindow() is not window.windowHandle():  # e.g. a dialog just closed (offscreen)
        window.activateWindow()
        assert QTest.qWaitForWindowActive(window)  # shortcuts go to the focused window only
    widget.setFocus(Qt.FocusReason.OtherFocusReason)
    QApplication.processEvents()
    QTest.keyClick(widget, key, modifier)
    QApplication.processEvents()


def worklist_rows(window) -> list[dict]:
    """The worklist as shown (object name `worklist`): patient ID, AI cell and From cell per row."""
    view = window.findChild(QTableView, "worklist")
    model = view.model()
    return [{"id": model.index(r, COL_ID).data(), "ai": model.index(r, COL_AI).data() or "",
             "from": model.index(r, COL_SOURCE).data(), "study_uid": window.worklist.proxy.study_at(r).study_uid}
            for r in range(model.rowCount())]


def row_texts(table: QTableWidget, row: int) -> list[str]:
    return [table.item(row, c).text() for c in range(table.columnCount())]


@needs_orthanc
def test_panel_search_and_enter_retrieves_into_the_worklist(qtbot, orthanc, medview_home, tmp_path, start_app):
    root, ct = tmp_path / "studies", generate_uid()
    write_series(root / "ct", 6, study_uid=ct, patient_id="PAT-CT", patient_name="Ct^Anna", study_date="20240105",
                 study_description="CT chest")
    write_image(root / "cr" / "cr.dcm", modality="CR", study_uid=generate_uid(), patient_id="PAT-CR",
                patient_name="Cr^Bo", study_date="20240320", position=None, orientation=None, slice_thickness=None)
    assert all(not r.error for r in send_paths(resolve_server(orthanc.dimse_url), [str(root)]))
    write_settings(medview_home, f'[servers.orthanc]\nurl = "{orthanc.dimse_url}"\n')
    window = start_app()
    assert window.reading_state()["case"] is None and worklist_rows(window) == []

    press(window.viewer, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    panel = window.findChild(QDialog, "pacs")
    qtbot.waitUntil(lambda: panel.isVisible())
    assert panel.findChild(QComboBox, "pacs_server").currentText() == "orthanc"
    results = panel.findChild(QTableWidget, "pacs_results")
    status = panel.findChild(QLabel, "pacs_status")

    date_from = panel.findChild(QLineEdit, "pacs_date_from")
    QTest.keyClicks(date_from, "2024-13-01")
    press(date_from, Qt.Key.Key_Return)
    assert status.text() == "Not searched: the date from '2024-13-01' is not a date: write it as YYYY-MM-DD " \
                            "(or today, yesterday)"
    date_from.clear()

    name = panel.findChild(QLineEdit, "pacs_patient_name")
    QTest.keyClicks(name, "ct")  # the beginning of the name is enough
    press(name, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: results.rowCount() == 1 and status.text().startswith("1 study on orthanc"), timeout=20000)
    assert row_texts(results, 0) == ["Ct, Anna", "PAT-CT", "2024-01-05", "CT", "CT chest", "6", ""]
    assert QApplication.focusWidget() is results and results.currentRow() == 0  # the arrows and Enter go on here

    press(results, Qt.Key.Key_Return)  # retrieve, and open as soon as its first image is here
    qtbot.waitUntil(lambda: (window.reading_state()["case"] or {}).get("study_uid") == ct, timeout=30000)
    qtbot.waitUntil(lambda: not window.pacs.retrieving() and results.item(0, 6).text() == "here", timeout=30000)
    qtbot.waitUntil(lambda: window.reading_state()["viewports"][0]["frames"] == 6, timeout=20000)
    (row,) = worklist_rows(window)
    assert (row["id"], row["from"], row["study_uid"]) == ("PAT-CT", "orthanc", ct)
    assert not window.worklist.view.isColumnHidden(COL_SOURCE)
    cached = sorted(p.stem for p in (medview_home / "pacs").rglob("*.dcm"))
    assert cached == sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in (root / "ct").iterdir())

    press(panel.findChild(QLineEdit, "pacs_patient_id"), Qt.Key.Key_Escape)  # Esc closes the panel
    assert not panel.isVisible()


def demo_cases(tmp_path, cases: int = 4) -> tuple[dict[int, list], dict[str, int]]:
    """Demo radiographs by label: {1: [study folder, ...], 0: [...]}, and the label of each study UID."""
    out = tmp_path / "demo"
    generate_demo(out, cases=cases, seed=11, ct_slices=0)
    with (out / "ground_truth.csv").open(newline="") as f:
        truth = {row["study_uid"]: int(row["label"]) for row in csv.DictReader(f)}
    folders: dict[int, list] = {0: [], 1: []}
    for path in sorted(out.rglob("*.dcm")):
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
        folders[truth[uid]].append(path.parent.parent)
    return folders, truth


def push(folder, port: int) -> None:
    """What a modality or PACS does: C-STORE of a folder to medview's listener (storescu, else pynetdicom)."""
    if shutil.which("storescu"):
        subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "MEDVIEW", "+sd", "+r", "127.0.0.1", str(port),
                        str(folder)], check=True, capture_output=True, timeout=60)
    else:
        assert all(not r.error for r in send_paths(resolve_server(f"dicom://MEDVIEW@127.0.0.1:{port}"), [folder]))


def set_preferences(qtbot, window, **boxes) -> None:
    """File → Preferences, the PACS boxes ticked or not as given, OK."""
    window.preferences_action.trigger()
    dialog = window.ai.preferences_dialog
    qtbot.waitUntil(dialog.isVisible)
    names = {"listen": "preferences-pacs-listen", "send": "preferences-pacs-send-on-sign-off"}
    for key, checked in boxes.items():
        if key == "server":
            dialog.findChild(QComboBox, "preferences-pacs-send-server").setCurrentText(checked)
        else:
            dialog.findChild(QCheckBox, names[key]).setChecked(checked)
    with qtbot.waitSignal(dialog.destroyed):  # gone, and the keys back with the main window
        dialog.accept()


def test_listener_pushed_studies_join_the_worklist_scored_flagged_first(qtbot, medview_home, tmp_path, start_app):
    folders, truth = demo_cases(tmp_path)
    port = free_port()
    write_settings(medview_home, f"[medview]\nlisten_port = {port}\n")
    window = start_app()
    assert window.pacs.listener is None  # off by default
    set_preferences(qtbot, window, listen=True)
    assert window.pacs.listener is not None and window.pacs.listener.port == port
    assert f"on 127.0.0.1:{port}" in window.pacs.listener_text()

    push(folders[0][0], port)  # a normal study first
    qtbot.waitUntil(lambda: len(worklist_rows(window)) == 1, timeout=30000)
    assert window.reading_state()["case"] is not None  # an empty station opens what arrives
    push(folders[1][0], port)  # then one with the finding: it rises above the first once scored

    def scored():
        rows = worklist_rows(window)
        assert len(rows) == 2 and all(r["ai"].startswith(FINAL) for r in rows), rows
    qtbot.waitUntil(scored, timeout=120000)
    rows = worklist_rows(window)
    assert [truth[r["study_uid"]] for r in rows] == [1, 0]
    assert rows[0]["ai"].startswith("flagged ") and rows[1]["ai"].startswith("not flagged ")
    assert {r["from"] for r in rows} == {"pushed by STORESCU" if shutil.which("storescu") else "pushed by MEDVIEW"}

    set_preferences(qtbot, window, listen=False)
    assert window.pacs.listener is None


@needs_orthanc
def test_review_sent_on_sign_off_only_when_set_and_by_key(qtbot, orthanc, medview_home, tmp_path, start_app,
                                                           monkeypatch):
    import medview.qt.review.review_controller as review_controller

    monkeypatch.setattr(review_controller, "confirm_sign_off", lambda *_: (True, False))
    folders, _truth = demo_cases(tmp_path, cases=3)
    write_settings(medview_home, f'[servers.orthanc]\nurl = "{orthanc.web_url}"\n')  # STOW-RS, QIDO-RS back
    window = start_app(tmp_path / "demo")
    qtbot.waitUntil(lambda: len(worklist_rows(window)) == 3
                    and all(r["ai"].startswith(FINAL) for r in worklist_rows(window)), timeout=120000)
    server = resolve_server("orthanc")

    first = window.cases.case.study_uid
    press(window.viewer, Qt.Key.Key_Return)  # sign off, without the rule: nothing is sent
    assert window.cases.case.study_uid != first and not window.pacs.sending()
    assert orthanc.instance_count() == 0

    set_preferences(qtbot, window, send=True, server="orthanc")
    second = window.cases.case.study_uid
    press(window.viewer, Qt.Key.Key_Return)
    assert window.pacs.sending()
    qtbot.waitUntil(lambda: not window.pacs.sending(), timeout=60000)
    result = window.pacs.last_send
    assert result.ok, result.summary() if hasattr(result, "summary") else result
    assert "SR" in [o.kind for o in result.objects] and {o.study_uid for o in result.objects} == {second}
    listed = {k.sop_uid for k in list_instances(server, second)}
    assert {o.sop_uid for o in result.objects} <= listed  # found on the PACS, by a query of our own
    (found,) = find_studies(server, StudyQuery(study_uid=second))
    assert "SR" in found.modalities

    window.cases.open_case(window.cases.find_study(first))  # the first case's review, by key
    press(window.viewer, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: not window.pacs.sending() and window.pacs.last_send is not result, timeout=60000)
    by_key = window.pacs.last_send
    assert by_key.ok and {o.study_uid for o in by_key.objects} == {first}
    assert {o.sop_uid for o in by_key.objects} <= {k.sop_uid for k in list_instances(server, first)}
    assert window.statusBar().currentMessage().startswith("Review sent to orthanc: SR")
