"""A case whose series do not all fit in the memory free: the app lets go of the series no longer shown
before it loads the next (shown again, it loads again), and a series that does not fit even then is refused
in the failed-files panel, the app going on. The memory free is made small by replacing
`memory.available_memory` with what a fixed budget leaves beside the stacks the app has loaded."""

from __future__ import annotations

import functools
import weakref

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from medview.core import memory
from medview.core.dicom import decoded
from medview.qt.ai import ai_controller
from tests.factories import write_series
from tests.qt.helpers import IdleWorker, open_window, press

SLICES, ROWS, COLS = 24, 128, 96
SERIES_BYTES = SLICES * ROWS * COLS * 2


@pytest.fixture
def budget(tmp_path, monkeypatch):
    """The case (one CT study, two series) and a setter of the bytes the computer gives the app's stacks; the
    AI idle, so that only the viewer holds pixels."""
    monkeypatch.setattr(ai_controller, "AiController",
                        functools.partial(ai_controller.AiController, worker_factory=IdleWorker))
    for number in (1, 2):
        write_series(tmp_path / f"s{number}", SLICES, modality="CT", rows=ROWS, cols=COLS, study_uid="1.2.3",
                     series_uid=f"1.2.3.{number}", series_number=number)
    volumes: list[weakref.ref] = []
    publish = decoded.publish

    def published(volume) -> None:
        volumes.append(weakref.ref(volume))
        publish(volume)

    monkeypatch.setattr(decoded, "publish", published)
    limit = [None]

    def available() -> int | None:
        held = sum(v().array.nbytes for v in volumes if v() is not None)
        return None if limit[0] is None else limit[0] - held  # of which the app keeps a quarter back

    monkeypatch.setattr(memory, "available_memory", available)
    return tmp_path, lambda nbytes: limit.__setitem__(0, nbytes)


def _shown(w) -> dict:
    return w.reading_state()["viewports"][0]


def test_the_series_no_longer_shown_is_let_go_for_the_next(qtbot, budget):
    folder, set_budget = budget
    set_budget(SERIES_BYTES * 3 // 2)  # room for one series at a time (three quarters of it: 1.125 series)
    w = open_window(qtbot, folder, size=(1200, 800))
    failed = w.findChild(QWidget, "failed_files")
    assert _shown(w)["series_uid"] == "1.2.3.1" and _shown(w)["loaded"] == SLICES

    press(qtbot, w, Qt.Key.Key_Right)
    assert _shown(w)["series_uid"] == "1.2.3.2" and _shown(w)["loaded"] == SLICES
    press(qtbot, w, Qt.Key.Key_Left)  # the first series was let go: it loads again
    assert _shown(w)["series_uid"] == "1.2.3.1" and _shown(w)["loaded"] == SLICES
    assert failed.count() == 0
    w.close()


def test_a_series_the_memory_cannot_hold_is_refused_and_the_app_goes_on(qtbot, budget):
    folder, set_budget = budget
    set_budget(SERIES_BYTES // 2)
    from medview.app import create_app

    _app, w = create_app(["medview", str(folder)])
    qtbot.addWidget(w)
    failed = w.findChild(QWidget, "failed_files")
    qtbot.waitUntil(lambda: failed.count() >= 1 and not w.cases.busy(), timeout=20000)
    [(file, reason)] = failed.entries()
    assert file.startswith(str(folder / "s1"))
    assert reason.startswith(f"this series of {SLICES} images needs 0.6 MiB of memory and this computer has 0.2 MiB")
    assert _shown(w)["series_uid"] == "1.2.3.1" and _shown(w)["loaded"] == 0

    set_budget(None)  # memory freed elsewhere: the next series loads
    press(qtbot, w, Qt.Key.Key_Right)
    assert _shown(w)["series_uid"] == "1.2.3.2" and _shown(w)["loaded"] == SLICES
    w.close()
