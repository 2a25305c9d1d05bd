"""Cancel in the PACS panel while a retrieve is stuck mid-transfer: a real Orthanc behind a relay that stops
passing its bytes on part-way through the study (a PACS that stalls). The cancel ends the transfer without
waiting for the stalled server; the panel says it was cancelled and how much is here; only whole instances are
in the cache and in the worklist; the next retrieve brings the rest, none twice."""

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


@needs_orthanc
def test_cancel_of_a_stalled_retrieve_leaves_whole_instances_and_says_so(qtbot, orthanc, stalling, medview_home,
                                                                        tmp_path, start_app):
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

    stalling.hold_after(int(2.5 * SIDE * SIDE * 2))  # the PACS stalls inside the third instance
    press(results, Qt.Key.Key_Return)  # retrieve and open
    qtbot.waitUntil(lambda: stalling.held.is_set() and progress.isVisible() and progress.value() >= 1,
                    timeout=30000)
    assert window.pacs.retrieving()
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
    assert not list((medview_home / "pacs-incoming").iterdir())  # no half-written file left behind
    files = sorted((medview_home / "pacs").rglob("*.dcm"))
    assert len(files) == here
    assert all(pydicom.dcmread(f).pixel_array.shape == (SIDE, SIDE) for f in files)  # each one whole
    qtbot.waitUntil(lambda: window.reading_state()["viewports"][0]["frames"] == here, timeout=20000)
    (row,) = worklist_rows(window)
    assert (row["study_uid"], row["from"]) == (study, f"slow: {SLICES - here} missing")

    stalling.release()
    press(results, Qt.Key.Key_Return)  # again: the rest arrives, nothing twice
    qtbot.waitUntil(lambda: not window.pacs.retrieving() and results.item(0, 6).text() == "here", timeout=30000)
    assert status.text().startswith(f"Retrieved PAT-SLOW") and f"({here} were here already)" in status.text()
    files = sorted((medview_home / "pacs").rglob("*.dcm"))
    assert len(files) == SLICES == len({pydicom.dcmread(f).SOPInstanceUID for f in files})
    qtbot.waitUntil(lambda: window.reading_state()["viewports"][0]["frames"] == SLICES, timeout=20000)
    assert worklist_rows(window)[0]["from"] == "slow"
