"""The review panel (`review`): under the findings panel, a thin view of the open case's review state.

Built to be read at a glance at the end of a long shift: a coloured banner with the case status (grey
unread, amber in progress, green SIGNED OFF with who and when), each AI finding with a large ✓ / ✗ / ·
verdict mark, who and when, the selected finding (F) highlighted, the key images, the note and the sign-off
button. It holds no logic: `ReviewController` feeds it plain values and listens to its signals.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medview.core.review.store import Case, CaseStatus, Finding, Verdict
from medview.core.viewing.findings_text import format_score

COL_VERDICT, COL_FINDING, COL_SCORE = range(3)
HEADERS = ("Verdict", "Finding", "Score")

# (banner text colour, banner background) per status: the state must be obvious from across the room
STATUS_STYLE = {
    CaseStatus.UNREAD: ("#d0d0d0", "#303030"),
    CaseStatus.IN_PROGRESS: ("#1a1a1a", "#e0a030"),
    CaseStatus.REVIEWED: ("#ffffff", "#2e7d32"),
}
# the verdict cell: words as well as a mark, white on a solid colour, so it survives any row highlight
VERDICT_MARK = {Verdict.AGREE: ("✓ agree", "#2e7d32"), Verdict.DISAGREE: ("✗ disagree", "#c62828"),
                None: ("·", None)}
TO_DECIDE = ("! decide", "#8d5a00")  # a flagged finding without a verdict: sign-off will ask
SELECTED_BG = "#37474f"


def verdict_text(finding: Finding) -> str:
    """What the verdict cell says for a finding."""
    if finding.verdict is None and finding.flagged:
        return TO_DECIDE[0]
    return VERDICT_MARK[finding.verdict][0]


def short_time(iso: str | None) -> str:
    """"2026-11-24T16:42:07.123Z" -> "2026-11-24 16:42" (UTC, as stored)."""
    if not iso:
        return ""
    return iso[:16].replace("T", " ")


@dataclass(frozen=True)
class FindingRow:
    """One finding as shown: the stored finding and where its image is ("Im 1", "Se 2 Im 14")."""

    finding: Finding
    image: str


class NoteEdit(QPlainTextEdit):
    """The note field: takes every key while edited (it is a text field for the key router); Esc leaves it.

    Esc would otherwise be the window's "reset view" shortcut, so the field claims it (ShortcutOverride)
    and emits `done`; leaving the field by mouse or Tab emits `done` too, so the note is always saved.
    """

    done = Signal()

    def event(self, event):  # noqa: D401 - Qt API
        if event.type() == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_Escape:
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event):  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Escape:
            self.done.emit()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event):  # noqa: N802 - Qt API
        super().focusOutEvent(event)
        self.done.emit()


class ReviewPanel(QWidget):
    sign_off_clicked = Signal()
    note_done = Signal()                 # Esc in the note field, or it lost focus: save the note
    reviewer_changed = Signal(str)
    finding_clicked = Signal(int)        # finding id
    key_image_activated = Signal(str, int)  # sop instance uid, frame

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("review")
        self._finding_ids: list[int] = []
        self._selected_row = -1
        self._updating = False

        self.banner = QLabel("No case open")
        self.banner.setObjectName("review_status")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)
        font = self.banner.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.banner.setFont(font)
        self.banner.setMargin(4)

        self.reviewer = QLineEdit()
        self.reviewer.setObjectName("review_reviewer")
        self.reviewer.setToolTip("Who the decisions are attributed to; Enter saves")
        self.reviewer.editingFinished.connect(self._reviewer_edited)
        who = QHBoxLayout()
        who.addWidget(QLabel("Reviewer"))
        who.addWidget(self.reviewer, 1)

        self.table = QTableWidget(0, len(HEADERS))
        self.table.setObjectName("review_findings")
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # the selected finding (F) is drawn by the panel itself (▶ and a lighter row): Qt's highlight would
        # repaint the verdict colours
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_FINDING, QHeaderView.ResizeMode.Stretch)
        self.table.itemClicked.connect(self._finding_clicked)
        self.table.setToolTip("F: next finding · A agree · X disagree")

        self.shown_image = QLabel("")
        self.shown_image.setObjectName("review_shown_image")
        self.keys = QListWidget()
        self.keys.setObjectName("review_key_images")
        self.keys.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.keys.setMaximumHeight(70)
        self.keys.itemActivated.connect(self._key_activated)
        self.keys.itemClicked.connect(self._key_activated)

        self.note = NoteEdit()
        self.note.setObjectName("review_note")
        self.note.setPlaceholderText("Note (Ctrl+N to write, Esc to save and go back to the image)")
        self.note.setTabChangesFocus(True)
        self.note.setMaximumHeight(80)
        self.note.done.connect(self.note_done)
        self.note.setStyleSheet("QPlainTextEdit:focus { border: 2px solid #4fc3f7; }")  # typing: it shows

        self.sign_off = QPushButton("Sign off (Enter)")
        self.sign_off.setObjectName("review_sign_off")
        self.sign_off.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Enter stays the registry's key
        self.sign_off.clicked.connect(self.sign_off_clicked)

        self.key_label = QLabel("Key images (K)")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.banner)
        layout.addLayout(who)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.shown_image)
        layout.addWidget(self.key_label)
        layout.addWidget(self.keys)
        layout.addWidget(self.note)
        layout.addWidget(self.sign_off)
        self.show_case(None, [])

    # -- data in ---------------------------------------------------------------------------------------------
    def show_case(self, case: Case | None, rows: list[FindingRow], selected_id: int | None = None,
                  key_names: list[tuple[str, int, str]] | None = None, *, ai_note: str = "") -> None:
        """Redraw for `case` (None: no case open). `key_names` are (sop, frame, "Se 2 Im 14") per key image."""
        self._updating = True
        self._show_banner(case)
        self.sign_off.setEnabled(case is not None)
        signed = case is not None and case.status is CaseStatus.REVIEWED
        self.sign_off.setText("✔ Signed off — Enter: next unreviewed case" if signed else "Sign off (Enter)")
        self.note.setEnabled(case is not None)
        self._fill_findings(rows, selected_id, ai_note)
        self.keys.clear()
        for sop, frame, name in key_names or []:
            item = QListWidgetItem(f"★ {name}")
            item.setData(Qt.ItemDataRole.UserRole, (sop, frame))
            self.keys.addItem(item)
        self.key_label.setText(f"Key images (K): {len(key_names or [])}")
        if case is None:
            self.note.setPlainText("")
        elif not self.note.hasFocus() and self.note.toPlainText() != case.note:
            self.note.setPlainText(case.note)  # never under the reader's cursor while they type
        self._updating = False

    def set_reviewer(self, name: str) -> None:
        if not self.reviewer.hasFocus():
            self.reviewer.setText(name)

    def set_shown_image(self, name: str, is_key: bool) -> None:
        self.shown_image.setText(f"Shown: {name}   ★ KEY IMAGE" if is_key else (f"Shown: {name}" if name else ""))
        self.shown_image.setStyleSheet("color: #ffd54f; font-weight: bold;" if is_key else "")

    def note_text(self) -> str:
        return self.note.toPlainText()

    def verdict_marks(self) -> list[str]:
        """The verdict column's first line as shown, top to bottom (for tests and accessibility)."""
        return [self.table.item(r, COL_VERDICT).text().split("\n")[0] for r in range(self.table.rowCount())
                if self.table.item(r, COL_VERDICT) is not None]

    def verdict_by(self, row: int) -> str:
        """The verdict cell's second line: who and when ("" without a verdict)."""
        lines = self.table.item(row, COL_VERDICT).text().split("\n")
        return lines[1] if len(lines) > 1 else ""

    def selected_row(self) -> int:
        """The row of the selected finding (▶), -1 if none."""
        return self._selected_row

    # -- drawing ---------------------------------------------------------------------------------------------
    def _show_banner(self, case: Case | None) -> None:
        if case is None:
            text, (fg, bg) = "No case open", STATUS_STYLE[CaseStatus.UNREAD]
        elif case.status is CaseStatus.REVIEWED:
            text = f"✔ SIGNED OFF\n{case.signed_off_by or ''} · {short_time(case.signed_off_at)}"
            fg, bg = STATUS_STYLE[case.status]
        elif case.status is CaseStatus.IN_PROGRESS:
            text, (fg, bg) = "IN PROGRESS — not signed off", STATUS_STYLE[case.status]
        else:
            text, (fg, bg) = "UNREAD", STATUS_STYLE[case.status]
        self.banner.setText(text)
        self.banner.setStyleSheet(f"color: {fg}; background: {bg}; border-radius: 3px; padding: 4px;")

    def _fill_findings(self, rows: list[FindingRow], selected_id: int | None, ai_note: str) -> None:
        self.table.blockSignals(True)
        self._finding_ids = [r.finding.id for r in rows]
        self._selected_row = self._finding_ids.index(selected_id) if selected_id in self._finding_ids else -1
        if not rows:
            self.table.setRowCount(1)
            item = QTableWidgetItem(ai_note or "No AI findings for this case")
            item.setForeground(QBrush(QColor("#8a8a8a")))
            self.table.setSpan(0, 0, 1, len(HEADERS))
            self.table.setItem(0, 0, item)
            self.table.blockSignals(False)
            return
        self.table.clearSpans()
        self.table.setRowCount(len(rows))
        big = QFont(self.table.font())
        big.setPointSizeF(big.pointSizeF() * 1.1)
        big.setBold(True)
        for row, fr in enumerate(rows):
            f = fr.finding
            selected = row == self._selected_row
            mark = verdict_text(f)
            colour = TO_DECIDE[1] if mark == TO_DECIDE[0] else VERDICT_MARK[f.verdict][1]
            who = f"\n{f.verdict_by} {short_time(f.verdict_at)[11:]}" if f.verdict else ""
            verdict = QTableWidgetItem(mark + who)
            verdict.setFont(big)
            if colour:
                verdict.setBackground(QBrush(QColor(colour)))
                verdict.setForeground(QBrush(QColor("#ffffff")))
            else:
                verdict.setForeground(QBrush(QColor("#8a8a8a")))
            verdict.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            verdict.setToolTip(f"{f.verdict.value} by {f.verdict_by} at {short_time(f.verdict_at)} UTC" if f.verdict
                               else "flagged, no verdict yet: A agree, X disagree" if f.flagged else "no verdict")
            label = f.label.replace("_", " ")
            name = QTableWidgetItem(f"{'▶ ' if selected else ''}{label}\n{fr.image}")
            name.setToolTip(f"{label} on {fr.image}: score {format_score(f.score, 3)}"
                            + (f", threshold {f.threshold:.2f}" if f.threshold is not None else "")
                            + (" — flagged" if f.flagged else "") + f"\nmodel {f.model}")
            score = QTableWidgetItem(format_score(f.score) + (" ⚑" if f.flagged else ""))
            score.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if f.flagged:
                for item in (name, score):
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
            if f.flagged and f.verdict is None:
                name.setForeground(QBrush(QColor("#ffcc80")))  # still to decide
            for item in (name, score) if selected else ():
                item.setBackground(QBrush(QColor(SELECTED_BG)))
            for col, item in ((COL_VERDICT, verdict), (COL_FINDING, name), (COL_SCORE, score)):
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)

    # -- signals out -----------------------------------------------------------------------------------------
    def _finding_clicked(self, item: QTableWidgetItem) -> None:
        if 0 <= item.row() < len(self._finding_ids):
            self.finding_clicked.emit(self._finding_ids[item.row()])

    def _key_activated(self, item: QListWidgetItem) -> None:
        sop, frame = item.data(Qt.ItemDataRole.UserRole)
        self.key_image_activated.emit(sop, int(frame))

    def _reviewer_edited(self) -> None:
        if not self._updating:
            self.reviewer_changed.emit(self.reviewer.text())
