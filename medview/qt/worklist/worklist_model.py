"""The worklist: one row per case (study), behind a sort/filter proxy whose order is the reading order.

Columns are `COL_*` constants; the Study of a row is `WorklistProxy.study_at`, sorting goes through `SortRole`
(dates and counts sort as values, not text). The AI and review controllers fill their columns with `set_cell`,
which emits `dataChanged` for that one cell; the PACS controller the From column (`set_source`).
"""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QStandardItem, QStandardItemModel

from medview.core.dicom.model import Study
from medview.core.dicom.readable import readable_date, readable_name
from medview.core.review.store import CaseStatus
from medview.core.viewing.counts import count_images, count_short, count_words

COL_PATIENT, COL_ID, COL_DATE, COL_MODALITY, COL_DESCRIPTION, COL_IMAGES, COL_AI, COL_REVIEW, COL_SOURCE = range(9)
HEADERS = ("Patient", "ID", "Date", "Mod.", "Description", "Im.", "AI", "Review", "From")
HEADER_TIPS = ("Patient name", "Patient ID", "Study date", "Modalities", "Study description", "Images", "AI status", "Review status",
               "Where the study came from: a local folder, the PACS it was retrieved from, or pushed to this station")
LOCAL_SOURCE = "local"
NO_IMAGES_COLOUR = "#7a7a7a"
SortRole = Qt.ItemDataRole.UserRole + 2
NO_STATUS = float("inf")  # the AI column's sort value before the AI says anything: last


NO_IMAGES = "none"  # the Im. column of a case with objects only (an RT Plan, a report): listed, with no image


def image_count(study: Study) -> int:
    """What the reader scrolls through: each single-frame image and each frame of a cine."""
    return count_images(study.stacks).frames


def images_text(study: Study) -> str:
    """The Im. cell: "12" images, "30 fr" for a cine (one image of 30 frames), NO_IMAGES for none."""
    count = count_images(study.stacks)
    if not count.frames:
        return NO_IMAGES
    return str(count.images) if not count.multiframe else count_short(count)


def objects_text(study: Study) -> str:
    """The objects without pixels of a study in words: "1 RTPLAN object, 2 SR objects" ("" when none)."""
    counts: dict[str, int] = {}
    for inst in study.objects:
        counts[inst.modality or "other"] = counts.get(inst.modality or "other", 0) + 1
    return ", ".join(f"{n} {mod} object{'s' if n != 1 else ''}" for mod, n in counts.items())


def images_tip(study: Study) -> str:
    """The Im. column's tooltip: the images, and the objects without pixels that are not shown as images."""
    count = count_images(study.stacks)
    objects = objects_text(study)
    if not count.frames:
        return f"No images: {objects or 'nothing'} without pixel data (listed, not shown as images)"
    text = count_words(count)
    return f"{text}; also {objects} without pixel data (not shown as images)" if objects else text


STATUS_ORDER = {CaseStatus.UNREAD: 0, CaseStatus.IN_PROGRESS: 1, CaseStatus.REVIEWED: 2}
REVIEW_MARK = {CaseStatus.REVIEWED: "✔", CaseStatus.IN_PROGRESS: "✎"}


def review_cell(status: CaseStatus, reviewer: str | None) -> tuple[str, str]:
    """The worklist's Review cell and its sort value: "✔ dr.k" signed off by dr.k, "✎ dr.k" in progress
    (dr.k reading), "unread". Short on purpose: the worklist is narrow and a column of ✔ reads at a glance.
    The sort value is text (status order, then reviewer), as the worklist sorts each column on one type."""
    if status is CaseStatus.UNREAD:
        return status.label, str(STATUS_ORDER[status])
    return f"{REVIEW_MARK[status]} {reviewer or status.label}", f"{STATUS_ORDER[status]} {reviewer or ''}"


class WorklistModel(QStandardItemModel):
    """The cases as Qt items: painting, filtering and sorting read them inside Qt, never calling Python.

    Why items and not a Python `data()`: a repaint asks thousands of (cell, role) pairs and a re-sort hundreds
    of comparisons; each call into Python must first win the GIL from the AI worker, and while it scored, one
    worklist update stalled the event loop for 50-70 ms. Sort values must be of one type per column (str, int
    or float), as Qt compares them.
    """

    def __init__(self, parent=None):
        super().__init__(0, len(HEADERS), parent)
        for col, (text, tip) in enumerate(zip(HEADERS, HEADER_TIPS)):
            self.setHeaderData(col, Qt.Orientation.Horizontal, text, Qt.ItemDataRole.DisplayRole)
            self.setHeaderData(col, Qt.Orientation.Horizontal, tip, Qt.ItemDataRole.ToolTipRole)
        self.studies: list[Study] = []
        self._rows: dict[str, int] = {}  # study UID -> row

    def set_studies(self, studies: list[Study]) -> None:
        self.studies = list(studies)
        self._rows = {s.study_uid: i for i, s in enumerate(self.studies)}
        rows = [self._row_items(s) for s in self.studies]
        self.beginResetModel()
        blocked = self.blockSignals(True)  # one reset for the views, not a row insertion per case
        try:
            self.setRowCount(0)
            for items in rows:
                self.appendRow(items)
        finally:
            self.blockSignals(blocked)
            self.endResetModel()

    @staticmethod
    def _row_items(s: Study) -> list[QStandardItem]:
        n = image_count(s)
        cells = {
            COL_PATIENT: (readable_name(s.patient_name), readable_name(s.patient_name).lower()),
            COL_ID: (s.patient_id, s.patient_id),
            COL_DATE: (readable_date(s.study_date), s.study_date or ""),
            COL_MODALITY: ("/".join(s.modalities), "/".join(s.modalities)),
            COL_DESCRIPTION: (s.description, s.description.lower()),
            COL_IMAGES: (images_text(s), n),
            COL_AI: ("", NO_STATUS),
            COL_REVIEW: review_cell(CaseStatus.UNREAD, None),
            COL_SOURCE: (LOCAL_SOURCE, LOCAL_SOURCE),
        }
        items = []
        for col in range(len(HEADERS)):
            text, sort_value = cells[col]
            item = QStandardItem(text)
            item.setEditable(False)
            item.setData(sort_value, SortRole)
            item.setToolTip(images_tip(s) if col == COL_IMAGES else text)
            if not n:
                item.setForeground(QColor(NO_IMAGES_COLOUR))  # a case with nothing to read: dimmed, still listed
            if col == COL_IMAGES:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            items.append(item)
        return items

    def row_of(self, study_uid: str) -> int:
        return self._rows.get(study_uid, -1)

    def set_cell(self, study_uid: str, column: int, text: str, sort_value: object = None) -> None:
        """Set an AI or review cell of one case (e.g. "flagged 0.93"): one `dataChanged` for that cell."""
        row = self.row_of(study_uid)
        if row < 0:
            return
        self.setItemData(self.index(row, column), {
            int(Qt.ItemDataRole.DisplayRole): text, int(Qt.ItemDataRole.ToolTipRole): text,
            int(SortRole): text if sort_value is None else sort_value})

    def set_ai_status(self, study_uid: str, text: str, sort_value: float) -> None:
        self.set_cell(study_uid, COL_AI, text, float(sort_value))

    def set_review_status(self, study_uid: str, text: str, sort_value: str) -> None:
        self.set_cell(study_uid, COL_REVIEW, text, str(sort_value))

    def set_review_state(self, study_uid: str, status: CaseStatus, reviewer: str | None) -> str:
        """The Review cell of a case in its review state (`review_cell`); returns the text shown."""
        text, sort_value = review_cell(status, reviewer)
        self.set_review_status(study_uid, text, sort_value)
        return text

    def set_source(self, study_uid: str, text: str, tip: str) -> None:
        """The From cell: "local", the PACS a study was retrieved from (with its progress), "pushed by X"."""
        self.set_cell(study_uid, COL_SOURCE, text, text)
        row = self.row_of(study_uid)
        if row >= 0:
            self.setData(self.index(row, COL_SOURCE), tip, Qt.ItemDataRole.ToolTipRole)


class WorklistProxy(QSortFilterProxyModel):
    """Filters on any column (case-insensitive text), sorts on `SortRole` with Qt's own comparison (no Python
    `lessThan`: see `WorklistModel`)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortRole(SortRole)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def study_at(self, row: int) -> Study | None:
        if 0 <= row < self.rowCount():
            source = self.sourceModel()
            return source.studies[self.mapToSource(self.index(row, 0)).row()]
        return None

    def studies_in_order(self) -> list[Study]:
        """The cases as shown (sorted, filtered): the reading order."""
        return [self.study_at(row) for row in range(self.rowCount())]

    def row_of(self, study_uid: str) -> int:
        source = self.sourceModel()
        src_row = source.row_of(study_uid) if source is not None else -1
        if src_row < 0:
            return -1
        return self.mapFromSource(source.index(src_row, 0)).row()



