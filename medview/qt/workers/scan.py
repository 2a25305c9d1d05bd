"""Scanning in a QThread: headers only, progress, cancel; results are plain data sent by signal.

`FolderScan` keeps the window to one scan at a time and owns the threads of the scans it stopped.
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, QThread, Signal

log = logging.getLogger(__name__)


class ScanWorker(QThread):
    """Scans `paths` and groups the instances into studies; never touches a widget."""

    progress = Signal(int, int)  # files done, files found
    done = Signal(object, object)  # ScanResult, list[Study]
    failed = Signal(str)  # the reason in words

    def __init__(self, paths: list[str], parent=None):
        super().__init__(parent)
        self.paths = list(paths)
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        from medview.core.dicom.scan import scan
        from medview.core.dicom.series import build_studies
        from medview.core.errors import MedviewError

        try:
            result = scan(self.paths, progress=lambda d, t: self.progress.emit(int(d), int(t)),
                          cancel=self._cancel.is_set)
            studies = build_studies(result.instances)
            if any(inst.encapsulated for inst in result.instances):
                from medview.core.dicom.decoder_pool import decoder_pool

                decoder_pool().start()  # compressed images: the decoders start now, not at the first image
        except MedviewError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported in words, logged in full
            log.exception("scan failed")
            self.failed.emit(f"The folder could not be read ({type(exc).__name__}: {exc})")
            return
        self.done.emit(result, studies)


class FolderScan(QObject):
    """The window's one scan at a time: a new scan (or `stop`) cancels the one before, whose thread is kept
    referenced until it ends and whose signals are dropped; `shutdown` waits for every thread."""

    progress = Signal(int, int)  # files done, files found: the current scan's only
    done = Signal(object, object)  # ScanResult, list[Study]: the current scan's only
    failed = Signal(str)  # the reason in words: the current scan's only
    finished = Signal()  # a scan's thread ended (the current one's or one stopped before)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.worker: ScanWorker | None = None
        self._stopped: list[ScanWorker] = []  # cancelled, still running

    def start(self, paths: list[str]) -> None:
        """Scan `paths` in the background, in place of any scan still running."""
        self.stop()
        worker = ScanWorker(paths, self)
        worker.progress.connect(self._progress)  # slots of this object: run in its (the GUI) thread
        worker.done.connect(self._done)
        worker.failed.connect(self._failed)
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()

    def _progress(self, done: int, total: int) -> None:
        if self.sender() is self.worker:
            self.progress.emit(done, total)

    def _done(self, result, studies) -> None:
        if self.sender() is self.worker:
            self.done.emit(result, studies)

    def _failed(self, reason: str) -> None:
        if self.sender() is self.worker:
            self.failed.emit(reason)

    def _finished(self) -> None:
        worker = self.sender()
        if worker in self._stopped:
            self._stopped.remove(worker)
        self.finished.emit()

    def running(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def cancel(self) -> None:
        """Cancel the current scan: it ends with what it has read (`done`, its result marked cancelled)."""
        if self.running():
            self.worker.cancel()

    def stop(self) -> None:
        """Cancel the current scan and forget it: nothing more is heard of it."""
        w, self.worker = self.worker, None
        if w is not None and w.isRunning():
            w.cancel()
            self._stopped.append(w)  # until its thread ends (`_finished`)

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Stop the scan and wait for every scan thread: none outlives the window."""
        self.stop()
        for w in list(self._stopped):
            w.wait(wait_ms)
