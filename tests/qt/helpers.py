"""Opening the app the way `medview gui SOURCE` does, and waiting until the reader could start work; an AI
worker that never loads a model, for tests about reading."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


def wait_ready(qtbot, w, timeout: int = 15000) -> None:
    """The worklist is filled, nothing is loading and an image is on screen."""
    qtbot.waitUntil(lambda: bool(w.cases.studies) and not w.cases.busy() and w.viewer._shown is not None,
                    timeout=timeout)


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


def settled(w) -> bool:
    """Nothing loading, and every viewport that shows a stack has all of it decoded and an image drawn."""
    shown = [v for v in w.reading_state()["viewports"] if v["series_uid"]]
    return (not w.cases.busy() and all(v["loaded"] == v["frames"] for v in shown)
            and all(view.shown_pixels() is not None for view in w.viewports.views if view.stack is not None))


def press(qtbot, w, key, modifier=None, focus=None) -> None:
    """A key with the focus on `focus` (the worklist table unless said): the app's keys work from any panel;
    then wait until what it changed is loaded and drawn."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    target = focus if focus is not None else w.worklist.view
    if not w.isActiveWindow():
        w.activateWindow()
        qtbot.waitUntil(w.isActiveWindow, timeout=2000)
    target.setFocus(Qt.FocusReason.OtherFocusReason)
    QApplication.processEvents()
    QTest.keyClick(target, key, modifier if modifier is not None else Qt.KeyboardModifier.NoModifier)
    qtbot.waitUntil(lambda: settled(w), timeout=20000)
