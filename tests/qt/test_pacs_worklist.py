"""Studies from the PACS in the worklist beside local folders: what was retrieved or received stays when a
folder is opened."""

from __future__ import annotations

import shutil

from pydicom.uid import generate_uid

from medview.core.net import StudyQuery, find_studies, resolve_server, send_paths
from tests.core.test_pacs import write_settings
from tests.factories import write_series
from tests.orthanc import free_port
from tests.qt.test_pacs_in_app import (  # noqa: F401 - fixtures
    FINAL,
    demo_cases,
    needs_orthanc,
    orthanc,
    push,
    set_preferences,
    start_app,
    worklist_rows,
)

PUSHED_BY = "pushed by STORESCU" if shutil.which("storescu") else "pushed by MEDVIEW"


def ct(folder, patient_id: str, slices: int = 3) -> str:
    """A small CT series of its own study; returns the study UID."""
    uid = generate_uid()
    write_series(folder, slices, study_uid=uid, patient_id=patient_id, patient_name=f"{patient_id}^Test",
                 study_date="20240105", study_description="CT chest")
    return uid


def sources(window) -> dict[str, str]:
    """Patient ID -> the worklist's From cell."""
    return {row["id"]: row["from"] for row in worklist_rows(window)}


@needs_orthanc
def test_opening_a_folder_keeps_the_studies_retrieved_and_received(qtbot, orthanc, medview_home, tmp_path,
                                                                   start_app):
    retrieved = ct(tmp_path / "on_pacs", "PAT-PACS")
    assert all(not r.error for r in send_paths(resolve_server(orthanc.dimse_url), [str(tmp_path / "on_pacs")]))
    ct(tmp_path / "pushed", "PAT-PUSH")
    ct(tmp_path / "local_a", "PAT-LOCAL-A")
    ct(tmp_path / "local_b", "PAT-LOCAL-B")
    port = free_port()
    write_settings(medview_home, f'[medview]\nlisten_port = {port}\n[servers.orthanc]\nurl = "{orthanc.dimse_url}"\n')
    window = start_app()
    set_preferences(qtbot, window, listen=True)
    push(tmp_path / "pushed", port)
    window.pacs.retrieve("orthanc", find_studies(resolve_server("orthanc"), StudyQuery(study_uid=retrieved)))
    qtbot.waitUntil(lambda: sources(window) == {"PAT-PACS": "orthanc", "PAT-PUSH": PUSHED_BY}, timeout=60000)

    window.open_paths([str(tmp_path / "local_a")])  # what Ctrl+O does once a folder is chosen
    qtbot.waitUntil(lambda: "PAT-LOCAL-A" in sources(window) and not window.busy(), timeout=30000)
    assert sources(window) == {"PAT-LOCAL-A": "local", "PAT-PACS": "orthanc", "PAT-PUSH": PUSHED_BY}

    window.open_paths([str(tmp_path / "local_b")])  # another folder: the previous one goes, the PACS's stay
    qtbot.waitUntil(lambda: "PAT-LOCAL-B" in sources(window) and not window.busy(), timeout=30000)
    assert sources(window) == {"PAT-LOCAL-B": "local", "PAT-PACS": "orthanc", "PAT-PUSH": PUSHED_BY}
    window.open_case(window.find_study(retrieved))  # still readable, from the cache
    qtbot.waitUntil(lambda: window.reading_state()["viewports"][0]["loaded"] == 3, timeout=20000)
    assert window.reading_state()["case"]["study_uid"] == retrieved

