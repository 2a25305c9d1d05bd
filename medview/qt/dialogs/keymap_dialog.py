"""The user's keymap: change any action's shortcut; a key another action uses is refused, in words."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from medview.core.viewing.keymap import KeymapConflict
from medview.qt.actions import ActionRegistry


class KeymapDialog(QDialog):
    def __init__(self, registry: ActionRegistry, parent=None):
        super().__init__(parent)
        self.setObjectName("keymap_dialog")
        self.setWindowTitle("Change shortcuts")
        self.resize(640, 720)
        self.registry = registry
        self.ids = list(registry.specs)
        self.table = QTableWidget(len(self.ids), 2, self)
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        for row, a in enumerate(self.ids):
            self.table.setItem(row, 0, QTableWidgetItem(registry.specs[a].text))
            self.table.setItem(row, 1, QTableWidgetItem(", ".join(registry.keys(a))))
        self.table.resizeColumnToContents(0)
        self.table.currentCellChanged.connect(lambda r, *_: self._load_row(r))
        self.edit = QKeySequenceEdit(self)
        self.edit.setObjectName("keymap_edit")
        assign = QPushButton("Assign", self)
        assign.clicked.connect(self.assign)
        default = QPushButton("Default", self)
        default.clicked.connect(self.reset_row)
        self.error = QLabel("", self)
        self.error.setObjectName("keymap_error")
        self.error.setStyleSheet("color: #ff8a80;")
        self.error.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.edit, 1)
        row.addWidget(assign)
        row.addWidget(default)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(row)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _load_row(self, row: int) -> None:
        if 0 <= row < len(self.ids):
            keys = self.registry.keys(self.ids[row])
            self.edit.setKeySequence(QKeySequence(keys[0] if keys else ""))
            self.error.clear()

    def set_keys(self, action_id: str, keys: list[str]) -> bool:
        """Bind `keys`; a conflict is shown under the field and nothing changes."""
        try:
            self.registry.set_keys(action_id, keys)
        except KeymapConflict as exc:
            self.error.setText(f"Not changed: {exc}.")
            return False
        self.error.clear()
        row = self.ids.index(action_id)
        self.table.item(row, 1).setText(", ".join(self.registry.keys(action_id)))
        return True

    def assign(self) -> bool:
        row = self.table.currentRow()
        if row < 0:
            return False
        seq = self.edit.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
        return self.set_keys(self.ids[row], [seq] if seq else [])

    def reset_row(self) -> None:
        row = self.table.currentRow()
        if row >= 0:
            a = self.ids[row]
            self.set_keys(a, self.registry.defaults[a])
            self._load_row(row)
