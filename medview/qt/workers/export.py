"""Export in a QThread: progress, cancel; the outcome is plain data sent by signal."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QThread, Signal

log = logging.getLogger(__name__)


class ExportWorker(QThread):
    """Runs `export_cases` on records collected in the GUI thread; never touches a widget. The PDF writer paints
    with QPdfWriter and QTextDocument, which Qt allows outside the GUI thread."""

    progress = Signal(int, int)  # steps done, steps in all
    done = Signal(object, object)  # files written (list[Path]), failures in words (list[str])
    failed = Signal(str)  # the reason in words: nothing was written
    cancelled = Signal()  # nothing was written

    def __init__(self, records: list, out: str, formats: list[str], anonymize: bool, parent=None, *,
                 pdf_writer=None):
        """`pdf_writer(record, path, **kwargs)` writes one case's PDF; given by the caller, which knows how
        reports look, and needed only when "pdf" is among the formats."""
        super().__init__(parent)
        self.records, self.out, self.formats, self.anonymize = list(records), out, list(formats), anonymize
        self.pdf_writer = pdf_writer
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        from medview.core.errors import MedviewError
        from medview.core.review.export import ExportCancelled, cached_heatmaps, export_cases

        failures: list[str] = []

        def on_error(record, fmt: str, reason: str) -> None:
            failures.append(f"study {record.study_uid}: the {fmt.upper()} could not be written: {reason}")

        pdf_writer = self.pdf_writer if "pdf" in self.formats else None
        try:
            written: list[Path] = export_cases(
                self.records, self.out, self.formats, anonymize=self.anonymize, on_error=on_error,
                heatmaps=cached_heatmaps if pdf_writer else None, pdf_writer=pdf_writer,
                progress=lambda d, t: self.progress.emit(int(d), int(t)), cancelled=self._cancel.is_set)
        except ExportCancelled:
            self.cancelled.emit()
            return
        except OSError as exc:
            log.warning("export into %s failed: %s", self.out, exc)
            self.failed.emit(f"{self.out}: cannot be written ({exc.strerror or exc}); nothing was exported.")
            return
        except MedviewError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported in words, logged in full
            log.exception("export failed")
            self.failed.emit(f"The export failed ({type(exc).__name__}: {exc}); nothing was written.")
            return
        self.done.emit(written, failures)
