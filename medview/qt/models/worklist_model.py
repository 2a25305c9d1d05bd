"""The worklist: one row per case (study), behind a sort/filter proxy whose order is the reading order.

Columns are `COL_*` constants; the Study is reached through `CaseRole`, sorting through `SortRole` (dates
and counts sort as values, not text). The AI and review issues fill their columns with `set_cell`, which
emits `dataChanged` for that one cell.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from medview.core.dicom.model import Study

COL_PATIENT, COL_ID, COL_DATE, COL_MODALITY, COL_DESCRIPTION, COL_IMAGES, COL_AI, COL_REVIEW = range(8)
HEADERS = ("Patient", "ID", "Date", "Mod.", "Description", "Im.", "AI", "Review")
HEADER_TIPS = ("Patient name", "Patient ID", "Study date", "Modalities", "Study description", "Images", "AI status", "Review status")
NO_IMAGES_COLOUR = "#7a7a7a"
CaseRole = Qt.ItemDataRole.UserRole + 1
SortRole = Qt.ItemDataRole.UserRole + 2


def _name(pn: str) -> str:
    parts = [p for p in (pn or "").split("^") if p]
    return f"{parts[0]}, {' '.join(parts[1:])}" if len(parts) > 1 else (parts[0] if parts else "")


def _date(d: str) -> str:
    d = (d or "").strip()
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


NO_IMAGES = "none"  # the Im. column of a case with objects only (an RT Plan, a report): listed, with no image


def image_count(study: Study) -> int:
    return sum(stack.frame_count for stack in study.stacks)


def objects_text(study: Study) -> str:
    """The objects without pixels of a study in words: "1 RTPLAN object, 2 SR objects" ("" when none)."""
    counts: dict[str, int] = {}
    for inst in study.objects:
        counts[inst.modality or "other"] = counts.get(inst.modality or "other", 0) + 1
    return ", ".join(f"{n} {mod} object{'s' if n != 1 else ''}" for mod, n in counts.items())


def images_tip(study: Study) -> str:
    """The Im. column's tooltip: the images, and the objects without pixels that are not shown as images."""
    n = image_count(study)
    objects = objects_text(study)
    if not n:
        return f"No images: {objects or 'nothing'} without pixel data (listed, not shown as images)"
    text = f"{n} image{'s' if n != 1 else ''}"
    return f"{text}; also {objects} without pixel data (not shown as images)" if objects else text


class WorklistModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.studies: list[Study] = []
        self._extra: list[dict[int, tuple[str, object]]] = []  # per row: column -> (text, sort value)

    def set_studies(self, studies: list[Study]) -> None:
        self.beginResetModel()
        self.studies = list(studies)
        self._extra = [{COL_AI: ("", ""), COL_REVIEW: ("unread", 0)} for _ in self.studies]
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.studies)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 - Qt API
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS[section]
        return None

    def _values(self, row: int, col: int) -> tuple[str, object]:
        s = self.studies[row]
        if col == COL_PATIENT:
            return _name(s.patient_name), _name(s.patient_name).lower()
        if col == COL_ID:
            return s.patient_id, s.patient_id
        if col == COL_DATE:
            return _date(s.study_date), s.study_date or ""
        if col == COL_MODALITY:
            text = "/".join(s.modalities)
            return text, text
        if col == COL_DESCRIPTION:
            return s.description, s.description.lower()
        if col == COL_IMAGES:
            n = image_count(s)
            return (str(n) if n else NO_IMAGES), n
        return self._extra[row].get(col, ("", ""))

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == Qt.ItemDataRole.ToolTipRole and col == COL_IMAGES:
            return images_tip(self.studies[row])
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._values(row, col)[0]
        if role == Qt.ItemDataRole.ForegroundRole and not image_count(self.studies[row]):
            return QColor(NO_IMAGES_COLOUR)  # a case with nothing to read: dimmed, still listed
        if role == SortRole:
            return self._values(row, col)[1]
        if role == CaseRole:
            return self.studies[row]
        if role == Qt.ItemDataRole.TextAlignmentRole and col == COL_IMAGES:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def row_of(self, study_uid: str) -> int:
        for i, s in enumerate(self.studies):
            if s.study_uid == study_uid:
                return i
        return -1

    def set_cell(self, study_uid: str, column: int, text: str, sort_value: object = None) -> None:
        """Set an AI or review cell of one case (e.g. "flagged 0.93"); only that cell is repainted."""
        row = self.row_of(study_uid)
        if row < 0:
            return
        self._extra[row][column] = (text, text if sort_value is None else sort_value)
        idx = self.index(row, column)
        self.dataChanged.emit(idx, idx)

    def set_ai_status(self, study_uid: str, text: str, sort_value: object = None) -> None:
        self.set_cell(study_uid, COL_AI, text, sort_value)

    def set_review_status(self, study_uid: str, text: str, sort_value: object = None) -> None:
        self.set_cell(study_uid, COL_REVIEW, text, sort_value)


class WorklistProxy(QSortFilterProxyModel):
    """Filters on any column (case-insensitive text), sorts on `SortRole`."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortRole(SortRole)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def lessThan(self, left, right):  # noqa: N802 - Qt API
        a, b = left.data(SortRole), right.data(SortRole)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)

    def study_at(self, row: int) -> Study | None:
        if 0 <= row < self.rowCount():
            return self.index(row, 0).data(CaseRole)
        return None

    def row_of(self, study_uid: str) -> int:
        source = self.sourceModel()
        src_row = source.row_of(study_uid) if source is not None else -1
        if src_row < 0:
            return -1
        return self.mapFromSource(source.index(src_row, 0)).row()



