"""Studies from the PACS in the worklist beside local folders: what was retrieved or received stays when a
folder is opened, and what an earlier session left in the PACS cache is listed at start, with where it came
from, its AI results taken from the results cache rather than scored again."""

from __future__ import annotations

import functools
import shutil

from pydicom.uid import generate_uid

from medview.core.net import StudyQuery, find_studies, resolve_server, send_paths
from medview.qt.ai import ai_controller
from medview.qt.workers.inference import InferenceWorker
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

    window.cases.open_paths([str(tmp_path / "local_a")])  # what Ctrl+O does once a folder is chosen
    qtbot.waitUntil(lambda: "PAT-LOCAL-A" in sources(window) and not window.cases.busy(), timeout=30000)
    assert sources(window) == {"PAT-LOCAL-A": "local", "PAT-PACS": "orthanc", "PAT-PUSH": PUSHED_BY}

    window.cases.open_paths([str(tmp_path / "local_b")])  # another folder: the previous one goes, the PACS's stay
    qtbot.waitUntil(lambda: "PAT-LOCAL-B" in sources(window) and not window.cases.busy(), timeout=30000)
    assert sources(window) == {"PAT-LOCAL-B": "local", "PAT-PACS": "orthanc", "PAT-PUSH": PUSHED_BY}
    window.cases.open_case(window.cases.find_study(retrieved))  # still readable, from the cache
    qtbot.waitUntil(lambda: window.reading_state()["viewports"][0]["loaded"] == 3, timeout=20000)
    assert window.reading_state()["case"]["study_uid"] == retrieved


class CountingWorker(InferenceWorker):
    """The app's AI worker, noting the study of every image it is asked to score."""

    asked: list[str] = []

    def enqueue(self, jobs) -> int:
        jobs = list(jobs)
        CountingWorker.asked += [job.study_uid for job in jobs]
        return super().enqueue(jobs)


def ai_settled(window, count: int) -> bool:
    rows = worklist_rows(window)
    return len(rows) == count and all(r["ai"].startswith(FINAL) or r["ai"] == "not applicable" for r in rows)


@needs_orthanc
def test_the_cache_of_an_earlier_session_is_listed_at_start_without_scoring_again(qtbot, orthanc, medview_home,
                                                                                 tmp_path, start_app, monkeypatch):
    folders, truth = demo_cases(tmp_path)
    retrieved = ct(tmp_path / "on_pacs", "PAT-PACS")
    assert all(not r.error for r in send_paths(resolve_server(orthanc.dimse_url), [str(tmp_path / "on_pacs")]))
    port = free_port()
    write_settings(medview_home, f'[medview]\nlisten_port = {port}\n[servers.orthanc]\nurl = "{orthanc.dimse_url}"\n')

    first = start_app()  # an earlier session: two radiographs pushed and scored, a CT retrieved
    set_preferences(qtbot, first, listen=True)
    push(folders[0][0], port)
    push(folders[1][0], port)
    first.pacs.retrieve("orthanc", find_studies(resolve_server("orthanc"), StudyQuery(study_uid=retrieved)))
    qtbot.waitUntil(lambda: ai_settled(first, 3) and not first.pacs.retrieving(), timeout=120000)
    before = {r["study_uid"]: (r["from"], r["ai"]) for r in worklist_rows(first)}
    first.close()

    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=CountingWorker))
    CountingWorker.asked = []
    window = start_app()  # a new session on the same MEDVIEW_HOME, no folder given
    qtbot.waitUntil(lambda: ai_settled(window, 3), timeout=60000)
    rows = worklist_rows(window)
    assert {r["study_uid"]: (r["from"], r["ai"]) for r in rows} == before
    assert {r["from"] for r in rows} == {PUSHED_BY, "orthanc"}
    assert [truth.get(r["study_uid"]) for r in rows[:2]] == [1, 0]  # flagged first, from the results cache
    assert window.reading_state()["case"] is not None

    local = sorted(set(folders[0] + folders[1]) - {folders[0][0], folders[1][0]})[0]  # a radiograph not scored
    # yet, opened beside them
    window.cases.open_paths([str(local)])
    qtbot.waitUntil(lambda: ai_settled(window, 4), timeout=120000)
    (new,) = {r["study_uid"] for r in worklist_rows(window)} - set(before)
    assert set(CountingWorker.asked) == {new}  # the model scored the new one only
