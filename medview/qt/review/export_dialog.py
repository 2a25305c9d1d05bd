"""Ctrl+E: export the review of the loaded cases (CSV, JSON, PDF, DICOM SR), as `medview export` does.

The same core calls as the command (`collect_cases`, `export_cases`, `cached_heatmaps`) and the same guard
(`medview.core.output_folder.check_output_folder`): a folder inside a folder the studies were read from is
refused, since medview never writes where it reads studies from. The export runs in an `ExportWorker` thread
with a progress bar and a Cancel button (a cancelled export leaves nothing in the folder). The result is said
in words in the dialog (files written, cases that failed and why); nothing here raises to the user.
"""

from __future__ import annotations

import logging
import os

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medview.core.errors import MedviewError
from medview.core.review.export import FORMATS, collect_cases
from medview.core.settings import Settings
from medview.qt.review import report_pdf
from medview.qt.settings_store import app_settings
from medview.qt.workers.export import ExportWorker

log = logging.getLogger(__name__)
FORMAT_NAMES = {"csv": "CSV (one row per finding)", "json": "JSON", "pdf": "PDF report per case",
                "sr": "DICOM Structured Report per case"}


def choose_folder(parent: QWidget, start: str) -> str:
    """The folder dialog (module-level so tests patch it); "" when cancelled."""
    return QFileDialog.getExistingDirectory(parent, "Export the review into…", start)


def output_folder_problem(out: str, source_paths: list[str]) -> str:
    """Why `out` cannot take the export ("" if it can): inside a source folder, or a file."""
    from medview.core.output_folder import check_output_folder

    try:
        check_output_folder(out, source_paths)
    except MedviewError as exc:
        return str(exc).removeprefix("--out ")
    return ""


class ExportDialog(QDialog):
    def __init__(self, parent: QWidget, store, studies: list, source_paths: list[str],
                 settings: Settings | None = None):
        super().__init__(parent)
        self.settings = settings or app_settings()
        self.setObjectName("export_dialog")
        self.setWindowTitle("Export review")
        self.store, self.studies, self.source_paths = store, list(studies), list(source_paths)
        self.written: list = []
        self.failures: list[str] = []
        self.worker: ExportWorker | None = None
        self._cases = 0

        self.folder = QLineEdit(self.settings.get("export_folder"))
        self.folder.setObjectName("export_folder")
        self.folder.setPlaceholderText("Output folder (not inside the folder the studies are read from)")
        browse = QPushButton("Choose…")
        browse.setObjectName("export_browse")
        browse.clicked.connect(self.browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)

        self.formats: dict[str, QCheckBox] = {}
        boxes = QHBoxLayout()
        for fmt in FORMATS:
            box = QCheckBox(fmt.upper())
            box.setObjectName(f"export_{fmt}")
            box.setToolTip(FORMAT_NAMES[fmt])
            box.setChecked(True)
            self.formats[fmt] = box
            boxes.addWidget(box)
        self.anonymize = QCheckBox("Anonymise (pseudonyms for names and IDs; DICOM PS3.15 for the SR)")
        self.anonymize.setObjectName("export_anonymize")

        n_cases = len(collect_cases(self.studies, store)) if store is not None else 0
        self.summary = QLabel(f"{n_cases} of {len(self.studies)} cases in the worklist have review data.")
        self.result = QPlainTextEdit()
        self.result.setObjectName("export_result")
        self.result.setReadOnly(True)
        self.result.setPlaceholderText("What was written appears here.")

        self.progress = QProgressBar()
        self.progress.setObjectName("export_progress")
        self.progress.hide()

        buttons = QDialogButtonBox()
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setObjectName("export_run")
        self.cancel_button = buttons.addButton("Cancel export", QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button.setObjectName("export_cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.run)  # the dialog stays open to show what was written
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Output folder"))
        layout.addLayout(row)
        layout.addWidget(QLabel("Formats"))
        layout.addLayout(boxes)
        layout.addWidget(self.anonymize)
        layout.addWidget(self.summary)
        layout.addWidget(self.result, 1)
        layout.addWidget(self.progress)
        layout.addWidget(buttons)
        self.resize(560, 380)

    def browse(self) -> None:
        start = self.folder.text() or os.path.expanduser("~")
        path = choose_folder(self, start)
        if path:
            self.folder.setText(path)

    def chosen_formats(self) -> list[str]:
        return [fmt for fmt, box in self.formats.items() if box.isChecked()]

    def busy(self) -> bool:
        return self.worker is not None

    def run(self) -> bool:
        """Start the export into the chosen folder; False (said in words) when it cannot start. The outcome is
        shown when the worker is done."""
        if self.busy():
            return False
        self.written, self.failures = [], []
        out = self.folder.text().strip()
        formats = self.chosen_formats()
        if not out:
            return self._say("Choose an output folder first.")
        if not formats:
            return self._say("Choose at least one format.")
        problem = output_folder_problem(out, self.source_paths)
        if problem:
            return self._say(problem)
        records = collect_cases(self.studies, self.store)  # the review database is read in this thread only
        if not records:
            return self._say(f"No reviewed cases among the {len(self.studies)} cases in the worklist; "
                             "nothing written.")
        self._cases = len(records)
        self.worker = ExportWorker(records, out, formats, self.anonymize.isChecked(), self,
                                   pdf_writer=report_pdf.write_case_pdf)
        self.worker.progress.connect(self._progress)
        self.worker.done.connect(self._done)
        self.worker.failed.connect(self._finish)
        self.worker.cancelled.connect(self._cancelled)
        self.progress.setRange(0, 0)  # busy until the first step is counted
        self.progress.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()
        self.export_button.setEnabled(False)
        self.result.setPlainText(f"Exporting {self._cases} case{'s' if self._cases != 1 else ''} into {out}…")
        self.worker.start()
        return True

    def cancel(self) -> None:
        """Cancel export: the worker stops after the file it is writing; nothing is left in the folder."""
        if self.worker is not None:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.result.setPlainText("Cancelling…")

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _done(self, written: list, failures: list[str]) -> None:
        self.written, self.failures = list(written), list(failures)
        out = self.worker.out if self.worker is not None else ""
        self.settings.update(export_folder=str(out))
        lines = [f"{len(self.written)} file{'s' if len(self.written) != 1 else ''} written for "
                 f"{self._cases} case{'s' if self._cases != 1 else ''} into {out}"
                 + (" (anonymised)" if self.anonymize.isChecked() else "") + ":"]
        lines += [f"  {os.path.basename(str(p))}" for p in self.written]
        if self.failures:
            lines += ["", f"{len(self.failures)} could not be written:"] + [f"  {f}" for f in self.failures]
        self._finish("\n".join(lines))
        parent = self.parentWidget()
        if isinstance(parent, QMainWindow):
            parent.statusBar().showMessage(lines[0].rstrip(":"), 8000)

    def _cancelled(self) -> None:
        out = self.worker.out if self.worker is not None else ""
        self._finish(f"Export cancelled; nothing was written into {out}.")

    def _finish(self, text: str) -> None:
        if self.worker is not None:
            self.worker.wait()
            self.worker.deleteLater()
            self.worker = None
        self.progress.hide()
        self.cancel_button.hide()
        self.export_button.setEnabled(True)
        self._say(text)

    def done(self, result: int) -> None:  # noqa: D102 - closing: no export outlives the dialog
        if self.worker is not None:
            for signal in (self.worker.progress, self.worker.done, self.worker.failed, self.worker.cancelled):
                signal.disconnect()
            self.worker.cancel()
            self.worker.wait()
            self.worker = None
        super().done(result)

    def _say(self, text: str) -> bool:
        self.result.setPlainText(text)
        return False
