"""The export dialog writes in a worker thread, shows its progress and can be cancelled, leaving nothing."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget

from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.review.store import ReviewStore
from tests.review_data import make_reviewed_source


def test_export_runs_in_a_worker_with_progress_and_cancel_leaves_nothing(qtbot, tmp_path, monkeypatch):
    from medview.qt.review import report_pdf
    from medview.qt.review.export_dialog import ExportDialog

    src = make_reviewed_source(tmp_path / "src")
    studies = build_studies(scan([str(src.root)], use_cache=False).instances)
    reached, release, threads = threading.Event(), threading.Event(), []
    real_writer = report_pdf.write_case_pdf

    def held_writer(record, path, **kwargs):  # the first PDF waits until the test has pressed Cancel
        threads.append(threading.current_thread())
        reached.set()
        release.wait(10)
        return real_writer(record, path, **kwargs)

    monkeypatch.setattr(report_pdf, "write_case_pdf", held_writer)
    out = tmp_path / "out"
    parent = QWidget()
    qtbot.addWidget(parent)
    with ReviewStore() as store:
        dialog = ExportDialog(parent, store, studies, [str(src.root)])
        dialog.folder.setText(str(out))
        dialog.show()
        qtbot.waitExposed(dialog)
        QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(reached.is_set, timeout=20000)
        cancel = dialog.findChild(QObject, "export_cancel")
        assert threads[0] is not threading.main_thread()  # the window keeps painting meanwhile
        assert dialog.busy() and cancel.isVisible() and not dialog.export_button.isEnabled()
        assert dialog.findChild(QObject, "export_progress").isVisible()
        QTest.mouseClick(cancel, Qt.MouseButton.LeftButton)
        release.set()
        qtbot.waitUntil(lambda: not dialog.busy(), timeout=20000)
        assert "cancelled" in dialog.result.toPlainText() and "nothing was written" in dialog.result.toPlainText()
        assert list(out.iterdir()) == []  # the CSV and JSON made before the cancel are gone too, no temp files
        assert dialog.export_button.isEnabled() and not cancel.isVisible()

        reached.clear(), release.clear()  # now the whole export: each file under its name, the progress at its end
        QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(reached.is_set, timeout=20000)
        release.set()
        qtbot.waitUntil(lambda: not dialog.busy(), timeout=60000)
        names = sorted(p.name for p in out.iterdir())
        assert f"{src.case_a['files']}.pdf" in names and "review_findings.csv" in names
        assert dialog.result.toPlainText().startswith(f"{len(names)} files written for 2 cases")
        dialog.close()
