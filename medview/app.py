"""Composition root: the QApplication, its names and settings, logging, the excepthook, the main window.

`create_app(argv)` builds the app exactly as `medview gui` does, without entering the event loop (SPEC
section 7): tests and embedders get the same window the user gets. torch is not imported here: the AI
controller starts its worker (which imports it) only once an opened folder holds an image the model reads.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import traceback
from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox

from medview.core.errors import MedviewError
from medview.core.home import home_dir
from medview.core.whole_imports import SHARED_PACKAGES, import_whole

log = logging.getLogger("medview")
ORGANISATION = APPLICATION = "medview"
_LOG_MARK = "_medview_file_handler"


def setup_logging() -> None:
    """medview.log under MEDVIEW_HOME/logs (rotated); added once per process."""
    root = logging.getLogger()
    if any(getattr(h, _LOG_MARK, False) for h in root.handlers):
        return
    handler = logging.handlers.RotatingFileHandler(
        home_dir("logs") / "medview.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    setattr(handler, _LOG_MARK, True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        # the console keeps the level it had (warnings; --debug: everything); the file also gets INFO
        console_level = root.level or logging.WARNING
        for h in root.handlers:
            if h.level == logging.NOTSET:
                h.setLevel(console_level)
        root.setLevel(logging.INFO)
    root.addHandler(handler)


def error_text(exc_type, exc) -> str:
    """An error in words: our own errors as they are, anything else named without a traceback."""
    if isinstance(exc, MedviewError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Not enough memory for this operation. Close other series or applications and try again."
    return f"Something went wrong ({exc_type.__name__}: {exc}). The details are in the log file."


class ErrorReporter:
    """The excepthook: logs the traceback, tells the user in words, at most one dialog at a time."""

    def __init__(self, window: QMainWindow | None = None):
        self.window = window
        self._box: QMessageBox | None = None
        self._previous = sys.excepthook

    def install(self) -> None:
        sys.excepthook = self.hook
        threading.excepthook = lambda args: self.hook(args.exc_type, args.exc_value, args.exc_traceback)

    def hook(self, exc_type, exc, tb) -> None:
        if self._previous not in (sys.__excepthook__, None):
            self._previous(exc_type, exc, tb)  # a test harness's hook (pytest-qt) still sees the error
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        log.error("unhandled error:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        text = error_text(exc_type, exc)
        if threading.current_thread() is not threading.main_thread():
            return  # logged; a worker's own errors reach the window by signal
        if self.window is not None:
            self.window.statusBar().showMessage(text, 10000)
        if self._box is not None and self._box.isVisible():
            return  # no modal storm: one message box, the rest goes to the log and the status bar
        self._box = QMessageBox(QMessageBox.Icon.Warning, "medview", text, QMessageBox.StandardButton.Ok,
                                self.window)
        self._box.setWindowModality(Qt.WindowModality.NonModal)
        self._box.show()


_garbage_collector = None


def collect_garbage_in_gui_thread() -> None:
    """Python's cyclic garbage collection, off in other threads and run by a timer in this one, once per process.

    Why: collection runs in whichever thread happens to allocate when a threshold is crossed; a window or a
    graphics item in a reference cycle collected from the listener's, the scan's or the AI worker's thread is
    a Qt object destroyed outside the GUI thread, and that can crash the whole app (seen: a pyqtgraph item
    destroyed from pynetdicom's network thread). pyqtgraph's GarbageCollector collects on a QTimer instead.
    """
    global _garbage_collector
    if _garbage_collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _garbage_collector = GarbageCollector(interval=1.0)


def gui_arguments(argv: list[str]) -> tuple[list[str], str | None, str]:
    """(paths, --model, --device) of an argv like ["medview", "gui", PATH..., "--model", M], read by the command
    line's own parser; options it does not know (Qt's, such as -platform) are left out."""
    from medview.cli import build_parser, normalise_argv

    args, _unknown = build_parser().parse_known_args(normalise_argv(list(argv[1:])))
    if args.command not in ("gui", "demo"):
        return [], None, "auto"
    return list(getattr(args, "paths", None) or []), args.model, args.device


class ImportAfterFirstPaint(QObject):
    """Imports modules in the GUI thread once the window has first been painted, then runs `then` (opening the
    folders given at start): the window shows without waiting for them (pydicom: a third of a second), and no
    worker thread that may use them starts before they are whole.

    Not in a thread of its own, which the GUI thread and the scan's would race (`medview.core.whole_imports`).
    A window never painted (started minimised) gets them after FALLBACK_MS."""

    FALLBACK_MS = 2000

    def __init__(self, app: QApplication, modules: tuple[str, ...], then: Callable[[], None] | None = None) -> None:
        super().__init__(app)
        self.modules = list(modules)
        self.then = then
        self._done = False
        app.installEventFilter(self)
        QTimer.singleShot(self.FALLBACK_MS, self._run)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Paint and not self._done:
            QApplication.instance().removeEventFilter(self)
            QTimer.singleShot(0, self._run)  # after this paint has been shown
        return False

    def _run(self) -> None:
        if self._done:
            return
        self._done = True
        QApplication.instance().removeEventFilter(self)
        import_whole(self.modules)
        if self.then is not None:
            self.then()


def create_app(argv: list[str], *, model: str | None = None, device: str | None = None,
               paths: list[str] | None = None) -> tuple[QApplication, QMainWindow]:
    """The QApplication and the shown main window of `medview gui`, with `argv`'s paths being opened and its
    --model and --device in force; the keyword arguments, where given, win over argv."""
    argv_paths, argv_model, argv_device = gui_arguments(argv)
    model = model if model is not None else argv_model
    device = device if device is not None else argv_device
    if QApplication.instance() is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(list(argv) or ["medview"])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("medview")
    from medview.qt.settings_store import app_settings, configure_settings

    configure_settings()
    setup_logging()
    settings = app_settings()

    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="k")
    collect_garbage_in_gui_thread()

    from medview.qt.main_window import MainWindow
    from medview.qt.style import apply_dark_theme

    apply_dark_theme(app)
    from medview.qt.ai.findings_panel import FindingsPanel
    from medview.qt.cases import CaseController
    from medview.qt.reading import ReadingController
    from medview.qt.review.review_controller import ReviewController
    from medview.qt.review.review_panel import ReviewPanel

    findings, review_panel = FindingsPanel(), ReviewPanel()
    window = MainWindow(settings=settings, findings=findings, review_panel=review_panel)
    # the reading keys and the session's drawing, which the case and PACS controllers draw through
    reading = window.reading_controller = ReadingController(window)
    cases = window.cases = CaseController(window, reading)  # opens folders and cases in the window
    review = window.review = ReviewController(window, cases, review_panel)  # the review keys, panel and column
    cases.use_review(review.first_unreviewed)  # a loaded folder opens on its first case not signed off
    ErrorReporter(window).install()
    window.show()
    window.raise_()
    window.activateWindow()  # without a window manager (kiosk, Xvfb) nothing else makes it active: no shortcuts
    todo = argv_paths if paths is None else list(paths)
    from medview.qt.ai.ai_controller import AiController

    ai = window.ai = AiController(window, cases, model=model, device=device, settings=settings)  # fills `findings`
    review.use_ai(ai)  # the AI findings join the review
    from medview.qt.ai.incoming import IncomingController

    # SEG and SR results that came with a study, in the findings panel
    window.incoming = IncomingController(window, cases)
    from medview.qt.pacs.pacs_controller import PacsController

    # Ctrl+P panel, retrieved and pushed studies, sending the review
    window.pacs = PacsController(window, cases, reading, settings)
    # the folders given are opened once the window has been painted and pydicom imported; the AI worker (and
    # torch) starts once a scanned folder holds an image the model reads: not for an empty window, nor for a
    # CT-only folder
    opening = (lambda: cases.open_paths(todo)) if todo else None
    window.importer = ImportAfterFirstPaint(app, SHARED_PACKAGES, opening)
    log.info("medview window shown; opening %s", todo or "nothing")
    return app, window
