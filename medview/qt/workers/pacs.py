"""PACS work in a QThread: a search, a retrieve, a send. The work is a plain function of core.net; what it
reports leaves by queued signal, and it never touches a widget.

`PacsTask(work)` runs `work(task)`; the function reports through `task.progress(done, total)` and
`task.note(value)` (e.g. the first instance of a study arrived) and stops soon after `task.cancelled()` turns
true. Its return value is `done`'s; a PacsError (or any other failure, logged in full) is `failed`'s in words.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from PySide6.QtCore import QThread, Signal

log = logging.getLogger(__name__)


class PacsTask(QThread):
    progress_changed = Signal(int, int)  # done, total
    noted = Signal(object)               # whatever the work reports on the way
    done = Signal(object)                # the work's result
    failed = Signal(str)                 # the reason in words

    def __init__(self, work: Callable[["PacsTask"], object], parent=None):
        super().__init__(parent)
        self.work = work
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, done: int, total: int) -> None:
        self.progress_changed.emit(int(done), int(total))

    def note(self, value) -> None:
        self.noted.emit(value)

    def run(self) -> None:
        from medview.core.errors import MedviewError

        try:
            result = self.work(self)
        except MedviewError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported in words, logged in full
            log.exception("PACS task failed")
            self.failed.emit(f"The PACS task failed ({type(exc).__name__}: {exc})")
            return
        self.done.emit(result)
