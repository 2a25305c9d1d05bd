"""Opening the app the way `medview gui SOURCE` does, and waiting until the reader could start work."""

from __future__ import annotations


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
