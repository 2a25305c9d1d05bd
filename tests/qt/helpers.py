"""Opening the app the way `medview gui SOURCE` does, and waiting until the reader could start work; an AI
worker that never loads a model, for tests about reading."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


def wait_ready(qtbot, w, timeout: int = 15000) -> None:
    """The worklist is filled, nothing is loading and an image is on screen."""
    qtbot.waitUntil(lambda: bool(w.studies) and not w.busy() and w.viewer._shown is not None, timeout=timeout)


def open_window(qtbot, source, *, size: tuple[int, int] | None = None, timeout: int = 15000):
    """The main window on `source`, ready; with `size`, resized, exposed and active (keyboard tests)."""
    from medview.app import create_app

    _app, w = create_app(["medview", str(source)])
    qtbot.addWidget(w)
    if size is not None:
        w.showNormal()  # the offscreen screen is 800 px wide: a first window on a screen that small is maximised
        w.resize(*size)
        qtbot.waitExposed(w)
        w.activateWindow()
    wait_ready(qtbot, w, timeout)
    return w


class IdleWorker(QObject):
    """The AI worker's signals and calls, never loading a model: these tests are about reading, not scoring."""

    model_ready = Signal(object)
    model_failed = Signal(str)
    result_ready = Signal(object)
    progress = Signal(int, int)
    idle = Signal()

    def __init__(self, model, device="auto", parent=None):
        super().__init__(parent)

    def start(self) -> None:
        pass

    def enqueue(self, jobs) -> int:
        return len(list(jobs))

    def prioritise(self, study_uid) -> None:
        pass

    def cancel(self) -> int:
        return 0

    def stop(self, timeout_ms: int = 0) -> bool:
        return True

    def isRunning(self) -> bool:  # noqa: N802 - QThread's name
        return False
