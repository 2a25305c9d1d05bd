"""The failed-files panel: every file that could not be used, with the reason in words; never a dialog."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from medview.core.dicom.model import FileError


class FailedFilesPanel(QWidget):
    changed = Signal(int)  # number of entries

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("failed_files")
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("failed_files_list")
        self.tree.setHeaderLabels(["File", "Reason"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.summary = QLabel("No failed files", self)
        copy = QPushButton("Copy list", self)
        copy.clicked.connect(self.copy)
        clear = QPushButton("Clear", self)
        clear.clicked.connect(self.clear)
        bar = QHBoxLayout()
        bar.addWidget(self.summary, 1)
        bar.addWidget(copy)
        bar.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.tree)
        self._seen: set[tuple[str, str]] = set()

    def add(self, errors: list[FileError]) -> int:
        """Add errors not listed yet; returns how many were new."""
        new = 0
        for e in errors:
            key = (e.file, e.error)
            if key in self._seen:
                continue
            self._seen.add(key)
            item = QTreeWidgetItem([e.file, e.error])
            item.setToolTip(0, e.file)
            item.setToolTip(1, e.error)
            self.tree.addTopLevelItem(item)
            new += 1
        if new:
            self.tree.resizeColumnToContents(0)
        self._update()
        return new

    def entries(self) -> list[tuple[str, str]]:
        return [(self.tree.topLevelItem(i).text(0), self.tree.topLevelItem(i).text(1))
                for i in range(self.tree.topLevelItemCount())]

    def count(self) -> int:
        return self.tree.topLevelItemCount()

    def clear(self) -> None:
        self.tree.clear()
        self._seen.clear()
        self._update()

    def copy(self) -> None:
        QApplication.clipboard().setText("\n".join(f"{f}\t{r}" for f, r in self.entries()))

    def _update(self) -> None:
        n = self.count()
        self.summary.setText(f"{n} file{'s' if n != 1 else ''} could not be used" if n else "No failed files")
        self.changed.emit(n)
