"""Scanning in a QThread: headers only, progress, cancel; results are plain data sent by signal."""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QThread, Signal

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
