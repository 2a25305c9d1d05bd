"""The worklist panel: a filter field (Ctrl+F) over the table of cases (`worklist`).

A filter that hides every case says so under the field (`worklist_no_match`), so an empty table is never
mistaken for an empty folder. Enter in the field opens the first match; the window then gives the keys back
to the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QLineEdit, QTableView, QVBoxLayout, QWidget

from medview.core.dicom.model import Study
from medview.qt.worklist.worklist_model import (
    COL_AI,
    COL_DATE,
    COL_DESCRIPTION,
    COL_ID,
    COL_IMAGES,
    COL_MODALITY,
    COL_PATIENT,
    COL_REVIEW,
    COL_SOURCE,
    WorklistModel,
    WorklistProxy,
)

# (min, max) width in pixels: everything up to the Review column fits in the default panel width
COLUMN_WIDTHS = {COL_PATIENT: (80, 120), COL_ID: (50, 72), COL_DATE: (86, 86), COL_MODALITY: (36, 44),
                 COL_IMAGES: (34, 48), COL_AI: (44, 64), COL_REVIEW: (56, 64), COL_SOURCE: (44, 170)}
# the columns that give up width in a narrow panel once the description is hidden (down to their minimum above)
SHRINKABLE = (COL_PATIENT, COL_ID)
# narrower than this the description reads "X…" under a clipped header: the column is hidden until there is room
DESCRIPTION_MIN = 64


class WorklistTable(QTableView):
    """The table of cases; says when it was resized. Why not an event filter on its viewport: that would call
    Python for every paint event, and each such call waits for the GIL while the AI worker scores."""

    resized = Signal()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self.resized.emit()


class WorklistPanel(QWidget):
    case_chosen = Signal(object)  # Study, when the user picks a row (click); keys go through the registry
    filter_done = Signal()  # Enter in the filter opened its first match: the keys go back to the image

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = WorklistModel(self)
        self.proxy = WorklistProxy(self)
        self.proxy.setSourceModel(self.model)
        self.filter = QLineEdit(self)
        self.filter.setObjectName("worklist_filter")
        self.filter.setPlaceholderText("Filter cases (Ctrl+F): name, ID, date, modality, description…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.filter.textChanged.connect(lambda _text: self._say_if_nothing_matches())
        self.no_match = QLabel(self)
        self.no_match.setObjectName("worklist_no_match")
        self.no_match.setWordWrap(True)
        self.no_match.setStyleSheet("QLabel { color: #ffb300; padding: 2px 4px; }")
        self.no_match.hide()
        self.filter.returnPressed.connect(self._filter_done)
        self.view = WorklistTable(self)
        self.view.setObjectName("worklist")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # scan order until the user sorts
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(30)
        self.view.setColumnHidden(COL_SOURCE, True)  # shown once a study came from a PACS (`show_sources`)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.clicked.connect(self._clicked)
        self.view.activated.connect(self._clicked)  # Enter on a row, while no registry action owns Enter
        self._preferred: dict[int, int] = {}  # the widths names and IDs have when there is room
        self._fitting = False
        header.sectionResized.connect(self._section_resized)
        # the columns fit the viewport's width: it changes with the table's size and with the vertical scroll bar
        self.view.resized.connect(self.fit_columns)
        self.view.verticalScrollBar().rangeChanged.connect(lambda _lo, _hi: self.fit_columns())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.filter)
        layout.addWidget(self.no_match)
        layout.addWidget(self.view)

    def set_studies(self, studies: list[Study]) -> None:
        self.model.set_studies(studies)
        self.view.resizeColumnsToContents()
        for col, (lo, hi) in COLUMN_WIDTHS.items():
            self.view.setColumnWidth(col, min(max(self.view.columnWidth(col), lo), hi))
        self._preferred = {col: self.view.columnWidth(col) for col in SHRINKABLE}
        self.fit_columns()
        self._say_if_nothing_matches()

    def _say_if_nothing_matches(self) -> None:
        text, total = self.filter.text().strip(), self.model.rowCount()
        empty = bool(text) and total > 0 and self.proxy.rowCount() == 0
        if empty:
            self.no_match.setText(f"No case matches “{text}”: all {total} case{'s' if total != 1 else ''} "
                                  "hidden by the filter. Clear it to see them.")
        self.no_match.setVisible(empty)

    def show_sources(self, shown: bool) -> None:
        """The From column: hidden while every case came from a local folder, else as wide as its texts
        ("pushed by MODALITY1") up to its maximum."""
        before = (self.view.isColumnHidden(COL_SOURCE), self.view.columnWidth(COL_SOURCE))
        self.view.setColumnHidden(COL_SOURCE, not shown)
        if shown:
            self.view.resizeColumnToContents(COL_SOURCE)
            lo, hi = COLUMN_WIDTHS[COL_SOURCE]
            self.view.setColumnWidth(COL_SOURCE, min(max(self.view.columnWidth(COL_SOURCE), lo), hi))
        if (self.view.isColumnHidden(COL_SOURCE), self.view.columnWidth(COL_SOURCE)) != before:
            self.fit_columns()

    def fit_columns(self) -> None:
        """Every column but the description whole, without scrolling sideways, in whatever width the panel has:
        in a narrow panel (a 1280-pixel screen) the description is hidden first (the viewer's corner text shows
        it), then names and IDs give up their slack; widened again, all come back."""
        if self._fitting or any(col not in self._preferred for col in SHRINKABLE):
            return  # before the first `set_studies` has measured them (a resize signal may come first)
        self._fitting = True
        try:
            header = self.view.horizontalHeader()
            fixed = sum(header.sectionSize(c) for c in range(header.count())
                        if c not in (COL_DESCRIPTION, *SHRINKABLE) and not header.isSectionHidden(c))
            short = fixed + sum(self._preferred.values()) + DESCRIPTION_MIN - self.view.viewport().width()
            header.setSectionHidden(COL_DESCRIPTION, short > 0)
            short -= DESCRIPTION_MIN
            for col in SHRINKABLE:
                give = max(0, min(short, self._preferred[col] - COLUMN_WIDTHS[col][0]))
                self.view.setColumnWidth(col, self._preferred[col] - give)
                short -= give
        finally:
            self._fitting = False

    def _section_resized(self, col: int, _old: int, new: int) -> None:
        if self._fitting:
            return
        if col in SHRINKABLE:
            self._preferred[col] = new  # the reader's own width for the column, kept from now on
        elif col != COL_DESCRIPTION:
            self.fit_columns()  # e.g. the AI column widened for "not flagged 0.48"

    def widen_ai_column(self, width: int) -> None:
        """The AI column at least `width` pixels wide; never narrowed, since the reader may have widened it."""
        if self.view.columnWidth(COL_AI) < width:
            self.view.setColumnWidth(COL_AI, width)

    def widen_review_column(self, width: int) -> None:
        """The Review column at least `width` pixels wide; never narrowed, since the reader may have widened it."""
        if self.view.columnWidth(COL_REVIEW) < width:
            self.view.setColumnWidth(COL_REVIEW, width)

    def sort_by_ai(self) -> None:
        """Cases in the order of their AI status (flagged first)."""
        self.view.sortByColumn(COL_AI, Qt.SortOrder.AscendingOrder)

    def focus_filter(self) -> None:
        self.filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter.selectAll()

    def _filter_done(self) -> None:
        """Enter in the filter opens the first matching case."""
        if self.proxy.rowCount():
            self.select_row(0)
            self.case_chosen.emit(self.proxy.study_at(0))
            self.filter_done.emit()

    def _clicked(self, index) -> None:
        study = self.proxy.study_at(index.row())
        if study is not None:
            self.case_chosen.emit(study)

    # --- reading order ------------------------------------------------------------------------------------
    def current_row(self) -> int:
        idx = self.view.currentIndex()
        return idx.row() if idx.isValid() else -1

    def select_row(self, row: int) -> None:
        idx = self.proxy.index(row, 0)
        self.view.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.view.scrollTo(idx)

    @contextmanager
    def current_row_kept_in_view(self) -> Iterator[None]:
        """A cell change re-sorts the rows under the reader (AI scores arriving, a sign-off): the case they have
        open stays where it was on screen, rather than sliding out of view. A case scrolled out of view by the
        reader is left where it is."""
        index = self.view.currentIndex()
        rect = self.view.visualRect(index) if index.isValid() else None
        top = rect.top() if rect is not None and self.view.viewport().rect().intersects(rect) else None
        try:
            yield
        finally:
            index = self.view.currentIndex()  # a persistent index: it follows its row through the sort
            if top is not None and index.isValid():
                moved = self.view.visualRect(index).top() - top
                if moved:
                    per_item = self.view.verticalScrollMode() == QAbstractItemView.ScrollMode.ScrollPerItem
                    step = max(self.view.rowHeight(index.row()), 1) if per_item else 1
                    bar = self.view.verticalScrollBar()
                    bar.setValue(bar.value() + round(moved / step))
                self.view.scrollTo(index)  # near the end the list cannot scroll that far: at least in view

    def select_study(self, study_uid: str) -> None:
        row = self.proxy.row_of(study_uid)
        if row >= 0:
            self.select_row(row)

    def neighbour(self, study_uid: str | None, delta: int) -> Study | None:
        """The case `delta` rows away in the shown (sorted, filtered) order: the reading order."""
        row = self.proxy.row_of(study_uid) if study_uid else -1
        target = row + delta if row >= 0 else (0 if delta > 0 else self.proxy.rowCount() - 1)
        return self.proxy.study_at(target)
