"""A retrieve stopped mid-transfer in the app: a real Orthanc behind a relay that stops passing its bytes on
part-way through the study. Cancelled from the panel while the PACS stalls, or the PACS killed: the transfer
ends without waiting for the server; the panel says what happened and how much is here; only whole instances
are in the cache and in the worklist; the next retrieve brings the rest, none twice; no patient name or ID in
the log."""

from __future__ import annotations

import re

import pydicom
import pytest
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QProgressBar, QPushButton, QTableWidget

from medview.core.net import resolve_server, send_paths
from tests.core.test_pacs import write_settings
from tests.factories import write_series
from tests.qt.test_pacs_in_app import needs_orthanc, orthanc, press, start_app, worklist_rows  # noqa: F401
from tests.stalling_proxy import StallingProxy

SLICES = 12
SIDE = 256  # 128 KiB of pixels per instance: the relay holds inside the third


@pytest.fixture
def stalling(orthanc):
    proxy = StallingProxy(orthanc.dicom_port)
    yield proxy
    proxy.close()


def stuck_retrieve(qtbot, orthanc, stalling, medview_home, tmp_path, start_app):
    """A CT on the PACS, searched in the panel and retrieved with Enter; returns once the PACS stalls inside its
    third instance: (window, panel, study UID)."""
    study = generate_uid()
    write_series(tmp_path / "ct", SLICES, study_uid=study, patient_id="PAT-SLOW", patient_name="Slow^Sam",
                 study_date="20240105", study_description="CT chest", rows=SIDE, cols=SIDE)
    assert all(not r.error for r in send_paths(resolve_server(orthanc.dimse_url), [str(tmp_path / "ct")]))
    write_settings(medview_home, f'[servers.slow]\nurl = "dicom://ORTHANC@127.0.0.1:{stalling.port}"\n')
    window = start_app()
    press(window.viewer, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    panel = window.findChild(QDialog, "pacs")
    qtbot.waitUntil(panel.isVisible)
    results = panel.findChild(QTableWidget, "pacs_results")
    status = panel.findChild(QLabel, "pacs_status")
    progress = panel.findChild(QProgressBar, "pacs_progress")
    patient_id = panel.findChild(QLineEdit, "pacs_patient_id")
    qtbot.keyClicks(patient_id, "PAT-SLOW")
    press(patient_id, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: results.rowCount() == 1 and status.text().startswith("1 study on slow"), timeout=20000)

    stalling.hold_after(int(2.5 * SIDE * SIDE * 2))
    press(results, Qt.Key.Key_Return)  # retrieve and open
    qtbot.waitUntil(lambda: stalling.held.is_set() and progress.isVisible() and progress.value() >= 1,
                    timeout=30000)
    assert window.pacs.retrieving()
    return window, panel, study


def only_whole_instances_here(qtbot, window, medview_home, study, here: int, server_says: str) -> None:
    """What arrived is in the cache, whole, and in the worklist (the open case follows); nothing else."""
    assert not list((medview_home / "pacs-incoming").iterdir())  # no half-written file left behind
    files = sorted((medview_home / "pacs").rglob("*.dcm"))
    assert len(files) == here
    assert all(pydicom.dcmread(f).pixel_array.shape == (SIDE, SIDE) for f in files)  # each one whole
    qtbot.waitUntil(lambda: window.reading_state()["viewports"][0]["frames"] == here, timeout=20000)
    (row,) = worklist_rows(window)
    assert (row["study_uid"], row["from"]) == (study, server_says)


def retrieve_the_rest(qtbot, window, panel, medview_home, here: int) -> None:
    """Enter on the study again: the rest arrives, nothing twice; the log names no patient."""
    results = panel.findChild(QTableWidget, "pacs_results")
    status = panel.findChild(QLabel, "pacs_status")
    press(results, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.pacs.retrieving() and results.item(0, 6).text() == "here", timeout=30000)
    assert status.text().startswith("Retrieved PAT-SLOW") and f"({here} were here already)" in status.text()
    files = sorted((medview_home / "pacs").rglob("*.dcm"))
    assert len(files) == SLICES == len({pydicom.dcmread(f).SOPInstanceUID for f in files})
    qtbot.waitUntil(lambda: window.reading_state()["viewports"][0]["frames"] == SLICES, timeout=20000)
    assert worklist_rows(window)[0]["from"] == "slow"
    logged = "".join(p.read_text(errors="replace") for p in (medview_home / "logs").glob("*.log*"))
    assert logged and not any(who in logged for who in ("PAT-SLOW", "Slow^Sam", "Slow, Sam"))


@needs_orthanc
def test_cancel_of_a_stalled_retrieve_leaves_whole_instances_and_says_so(qtbot, orthanc, stalling, medview_home,
                                                                        tmp_path, start_app):
    window, panel, study = stuck_retrieve(qtbot, orthanc, stalling, medview_home, tmp_path, start_app)
    results = panel.findChild(QTableWidget, "pacs_results")
    status = panel.findChild(QLabel, "pacs_status")
    progress = panel.findChild(QProgressBar, "pacs_progress")
    cancel = panel.findChild(QPushButton, "pacs_cancel")
    press(cancel, Qt.Key.Key_Space)  # the Cancel button, by keyboard
    qtbot.waitUntil(lambda: not window.pacs.retrieving() and " cancelled: " in status.text(), timeout=30000)

    said = re.fullmatch(rf"Retrieve of PAT-SLOW \S+ cancelled: (\d+) of {SLICES} instances here; retrieve it "
                        "again to complete it", status.text())
    assert said, status.text()
    here = int(said.group(1))
    assert 1 <= here < SLICES
    assert not progress.isVisible() and not cancel.isVisible()
    assert results.item(0, 6).text() == f"part here ({SLICES - here} missing)"
    only_whole_instances_here(qtbot, window, medview_home, study, here, f"slow: {SLICES - here} missing")

    stalling.release()
    retrieve_the_rest(qtbot, window, panel, medview_home, here)


@needs_orthanc
def test_pacs_killed_mid_retrieve_says_so_and_the_study_resumes(qtbot, orthanc, stalling, medview_home, tmp_path,
                                                               start_app):
    window, panel, study = stuck_retrieve(qtbot, orthanc, stalling, medview_home, tmp_path, start_app)
    status = panel.findChild(QLabel, "pacs_status")
    orthanc.kill()  # the PACS goes away while the transfer waits on it
    stalling.release()  # what it had sent still arrives, then the connection ends
    qtbot.waitUntil(lambda: not window.pacs.retrieving() and " in part: " in status.text(), timeout=30000)
    said = re.fullmatch(rf"Retrieved PAT-SLOW \S+ in part: (\d+) of {SLICES} instances missing \(the connection "
                        r"was lost during the transfer\); retrieve it again to complete it", status.text())
    assert said, status.text()
    here = SLICES - int(said.group(1))
    assert 1 <= here < SLICES
    only_whole_instances_here(qtbot, window, medview_home, study, here, f"slow: {SLICES - here} missing")

    orthanc.start()  # back, same ports and storage
    retrieve_the_rest(qtbot, window, panel, medview_home, here)
