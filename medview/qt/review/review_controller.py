"""The keyboard review flow of SPEC section 6 in the window: keys -> `ReviewSession` calls -> redraw.

Thin by design: every decision is made and stored by `medview.core.review.session.ReviewSession` (on disk
when the call returns, hence when the key press returns); this object maps the registry's keys to it, keeps
the review panel, the worklist's Review column and the status bar in step, and reads the AI results from
the AI controller handed over by `use_ai` (`AiResults`: `results_for`, `thresholds`, `bundle`,
`study_results_changed`, `show_heatmap_for`...). Without one review still works, with no AI findings.

Keys: F next finding (and its image), A / X agree / disagree, K key image on the shown image, Ctrl+N the
note field (Esc saves and leaves it), Enter sign off and open the next unreviewed case (asking once when
flagged findings have no verdict), N next unreviewed case in the worklist order as shown, Ctrl+Z undo,
Ctrl+E export. A review database that cannot be written is said in words in the status bar.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Protocol

from PySide6.QtCore import QObject, Qt, Signal, SignalInstance
from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

from medview.core.dicom.model import Stack, Study
from medview.core.errors import MedviewError, ReviewStoreError
from medview.core.inference.bundle import ModelBundle, flagged_labels
from medview.core.review.session import ReviewSession, findings_from_results
from medview.core.review.store import Finding, ReviewStore, Verdict
from medview.core.viewing.findings_text import format_score
from medview.qt.review.review_panel import FindingRow, ReviewPanel

log = logging.getLogger(__name__)

# words for the audit log's action names, as the status bar says them after Ctrl+Z
ACTION_WORDS = {
    "verdict_agree": "agree", "verdict_disagree": "disagree", "verdict_clear": "verdict cleared",
    "key_image_on": "key image", "key_image_off": "key image removed", "note": "note", "sign_off": "sign-off",
    "measurement_corrected": "corrected measurement",
}
REVIEW_COLUMN_MAX = 100  # pixels: the mark and a reviewer name, without pushing the description out


class AiResults(Protocol):
    """What the review reads of the AI controller (medview.qt.ai's `AiController`; the review does not import
    the AI feature): its results and thresholds, the model in use, and the heatmap and ratio lines it draws."""

    bundle: ModelBundle | None  # the model in use (its `sha256` marks the findings), None before it loads
    study_results_changed: SignalInstance  # study UID: results arrived or thresholds changed
    measurement_corrected: SignalInstance  # the reader dragged a measuring line: a dict

    def results_for(self, study_uid: str) -> list: ...
    def thresholds(self) -> dict[str, float]: ...
    def show_heatmap_for(self, sop_instance_uid: str, frame: int, label: str) -> None: ...
    def set_correction_source(self, source: Callable[[str, str, int, str], dict | None]) -> None: ...
    def refresh_view(self) -> None: ...


def confirm_sign_off(parent: QWidget, unverdicted: list[Finding]) -> tuple[bool, bool]:
    """Ask before signing off with flagged findings that have no verdict: (sign off?, don't ask again?).

    Module-level so tests patch it; the dialog itself is a plain QMessageBox with a checkbox.
    """
    names = ", ".join(sorted({f.label.replace("_", " ") for f in unverdicted}))
    box = QMessageBox(QMessageBox.Icon.Question, "Sign off the case?",
                      f"{len(unverdicted)} flagged AI finding{'s' if len(unverdicted) != 1 else ''} "
                      f"({names}) {'have' if len(unverdicted) != 1 else 'has'} no verdict (A agree, X disagree).\n\n"
                      "Sign off the case anyway?",
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    check = QCheckBox("Don't ask again")
    box.setCheckBox(check)
    answer = box.exec()
    return answer == QMessageBox.StandardButton.Yes, check.isChecked()


def flat_results(results, thresholds: dict[str, float] | None = None, checksum: str = "") -> list[dict]:
    """The AI controller's results (`InferenceResult`: job + prediction) as the plain records that
    `findings_from_results` reads; records that already are plain (dicts, `infer --json` lines) pass as they
    are. Flagged follows the reader's operating points (`thresholds`) where given."""
    out = []
    for r in results or ():
        job, pred = getattr(r, "job", None), getattr(r, "prediction", None)
        if job is None:
            out.append(r)
            continue
        if getattr(r, "status", "ok") != "ok" or pred is None:
            continue
        scores = dict(pred.scores)
        flagged = flagged_labels(scores, thresholds) if thresholds else list(pred.flagged)
        out.append({"sop_instance_uid": job.sop_instance_uid, "series_uid": job.series_uid, "frame": job.frame,
                    "scores": scores, "flagged": flagged, "model": pred.model, "model_checksum": checksum})
    return out


def image_names(study: Study | None) -> dict[tuple[str, int], str]:
    """(sop, frame) -> "Im 3" (one series) or "Se 2 Im 3": how the reader finds the image in the viewer."""
    names: dict[tuple[str, int], str] = {}
    if study is None:
        return names
    stacks = [stack for s in study.series for stack in s.stacks if stack.instances]
    for stack in stacks:
        index = 0
        for inst in stack.instances:
            for frame in range(max(1, inst.frames)):
                prefix = f"Se {stack.number} " if len(stacks) > 1 and stack.number is not None else ""
                names.setdefault((inst.sop_instance_uid, frame), f"{prefix}Im {index + 1}")
                index += 1
    return names


def _guarded(method):
    """A key's handler: a review database error is said in the status bar, never as a traceback."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except MedviewError as exc:
            log.warning("review action failed: %s", exc)
            self.say(str(exc), 10000)
            self.refresh()
            return None
    return run


class ReviewController(QObject):
    """Wires the review keys, the review panel and the worklist's Review column to a `ReviewSession`."""

    signed_off = Signal(str)  # study UID, once its sign-off is stored (the PACS rule sends the review then)

    def __init__(self, window, cases, panel: ReviewPanel, store: ReviewStore | None = None):
        """`cases`: the case controller (medview.qt.cases) that opens the cases reviewed here; `panel`: the
        review panel the window shows (handed to it and to this controller by create_app)."""
        super().__init__(window)
        self.window = window
        self.cases = cases
        self.error = ""
        try:
            self.store = store if store is not None else ReviewStore()
        except ReviewStoreError as exc:  # in use beyond the timeout, damaged, on a read-only disk
            log.warning("review store unavailable: %s", exc)
            self.store = None
            self.error = f"Review unavailable: {exc}"
        self.session = ReviewSession(self.store) if self.store is not None else None
        self.study: Study | None = None
        self.ai: AiResults | None = None  # set by `use_ai`
        self._names: dict[tuple[str, int], str] = {}
        # (sop, frame) of the open case's key images, as refresh() last read them from the store (every toggle,
        # undo and case change goes through refresh): an image step then asks no SQL of its own
        self._key_images: set[tuple[str, int]] = set()

        self.panel = panel
        self.panel.sign_off_clicked.connect(self.sign_off)
        self.panel.note_done.connect(self.note_done)
        self.panel.reviewer_changed.connect(self.set_reviewer)
        self.panel.finding_clicked.connect(self.select_finding)
        self.panel.key_image_activated.connect(lambda sop, frame: self._show_image(sop, frame))

        r = window.registry
        for action_id, handler in (
            ("ai.next_finding", self.next_finding), ("review.agree", self.agree),
            ("review.disagree", self.disagree), ("review.key_image", self.toggle_key_image),
            ("review.note", self.edit_note), ("review.sign_off", self.sign_off), ("review.undo", self.undo),
            ("case.next_unreviewed", self.next_unreviewed), ("file.export", self.export),
        ):
            if action_id in r.actions:
                r.attach(action_id, handler)
        cases.case_opened.connect(self.case_opened)
        cases.studies_loaded.connect(self.studies_loaded)
        window.viewports.index_changed.connect(lambda *_: self._show_current_image())
        cases.stack_shown.connect(lambda *_: self._show_current_image())
        if self.store is not None:
            self.panel.set_reviewer(self.store.reviewer)
        if self.error:
            self.panel.banner.setText(self.error)

    # --- helpers ------------------------------------------------------------------------------------------
    def say(self, text: str, ms: int = 4000) -> None:
        self.window.statusBar().showMessage(text, ms)

    def use_ai(self, ai: AiResults) -> None:
        """Read the AI findings from `ai` from now on (create_app calls it once the AI controller exists): its
        results join the open case as they arrive; the measurements it draws are corrected into the review."""
        self.ai = ai
        ai.study_results_changed.connect(self.results_changed)
        ai.measurement_corrected.connect(self.correct_measurement)
        ai.set_correction_source(self.corrected_measurement)

    def _require(self) -> ReviewSession:
        if self.session is None:
            raise ReviewStoreError(self.error or "the review database is not available")
        if self.session.study_uid is None:
            raise ReviewStoreError("No case is open")
        return self.session

    def ai_findings(self, study_uid: str) -> list:
        ai = self.ai
        if ai is None:
            return []
        thresholds = dict(ai.thresholds() or {})
        checksum = ai.bundle.sha256 if ai.bundle is not None else ""
        results = flat_results(ai.results_for(study_uid), thresholds, checksum)
        return findings_from_results(results, thresholds)

    def worklist_order(self) -> list[str]:
        """The study UIDs in the worklist's order as shown (sorted, filtered): the reading order."""
        return [s.study_uid for s in self.window.worklist.proxy.studies_in_order()]

    def reading_order(self) -> list[str]:
        """What N and Enter go through: the worklist's order as shown, after the open case (wrapping round).
        The case the window opened by itself on load (`start_case_uid`) counts as standing before the top row:
        in a new folder it was opened before the AI had ranked anything, and the reader who signs it off
        expects the case now on top (the most suspicious), not the one below wherever scores moved it."""
        order = self.worklist_order()
        uid = self.session.study_uid if self.session is not None else None
        if uid is not None and uid == self.cases.start_case_uid and uid in order:
            order.remove(uid)
            order.insert(0, uid)
        return order

    def first_unreviewed(self, order: list[str]) -> str | None:
        """The first of these study UIDs that is not signed off (None: all are, or no review database)."""
        if self.store is None or not order:
            return None
        try:
            return self.store.first_unreviewed(order)
        except MedviewError as exc:
            log.warning("review states not read: %s", exc)
            return None

    def current_image(self) -> tuple[str, int, str] | None:
        """(SOP Instance UID, frame, series UID) of the image on screen, or None."""
        v = self.window.viewer
        stack: Stack | None = v.stack
        if stack is None or not stack.instances:
            return None
        shown = v.shown_frame()
        if shown is None and v.display is not None:  # a reformatted plane: the acquired image at its crosshair
            viewport = self.window.reading.viewport
            if viewport.reformatted and viewport.stack is stack:
                shown = viewport.frames[viewport.acquired_index()]
        inst_index, frame = shown or (0, 0)
        inst = stack.instances[min(inst_index, len(stack.instances) - 1)]
        return inst.sop_instance_uid, int(frame), inst.series_uid

    # --- redraw -------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw the panel and the open case's worklist cell from the store (what is on disk)."""
        s = self.session
        if s is None or s.study_uid is None:
            self._key_images = set()
            self.panel.show_case(None, [])
            return
        case = s.case
        self._key_images = {(k.sop_instance_uid, k.frame) for k in case.key_images}
        rows = [FindingRow(f, self._names.get((f.sop_instance_uid, f.frame), "image")) for f in s.findings]
        keys = [(k.sop_instance_uid, k.frame, self._names.get((k.sop_instance_uid, k.frame), "image"))
                for k in case.key_images]
        ai_note = "No AI findings for this case" if self.ai is not None else "No AI model: no AI findings"
        self.panel.show_case(case, rows, s.selected_id, keys, ai_note=ai_note)
        self.panel.set_reviewer(self.store.reviewer)
        self._show_current_image()
        self.update_worklist([s.study_uid])

    def update_worklist(self, uids: list[str]) -> None:
        if self.store is None or not uids:
            return
        worklist = self.window.worklist
        model, view = worklist.model, worklist.view
        widest = 0
        for uid, (status, reviewer) in self.store.worklist_states(uids).items():
            with worklist.current_row_kept_in_view():
                text = model.set_review_state(uid, status, reviewer)
            widest = max(widest, view.fontMetrics().horizontalAdvance(text) + 14)
        worklist.widen_review_column(min(widest, REVIEW_COLUMN_MAX))  # "✔ dr.k" whole where it fits

    def _show_current_image(self) -> None:
        image = self.current_image()
        if image is None or self.session is None:
            self.panel.set_shown_image("", False)
            return
        sop, frame, _series = image
        self.panel.set_shown_image(self._names.get((sop, frame), ""), (sop, frame) in self._key_images)

    def _show_image(self, sop: str, frame: int) -> None:
        if self.session is not None and self.session.study_uid:
            self.cases.show_instance(self.session.study_uid, sop, frame)

    # --- window events ------------------------------------------------------------------------------------
    @_guarded
    def studies_loaded(self, studies: list[Study]) -> None:
        self.update_worklist([s.study_uid for s in studies])

    @_guarded
    def case_opened(self, study: Study) -> None:
        if self.session is None:
            return
        if self.session.study_uid not in (None, study.study_uid):
            self.note_done()  # a note being typed belongs to the case it was typed in
        self.study = study
        self._names = image_names(study)
        self.session.open_case(study.study_uid, self.ai_findings(study.study_uid))
        self.refresh()

    @_guarded
    def results_changed(self, study_uid: str) -> None:
        """AI results arrived (inference runs in the background): added to the open case, verdicts kept."""
        if self.session is None or study_uid != self.session.study_uid:
            return
        self.session.add_results(self.ai_findings(study_uid))
        self.refresh()

    # --- keys ---------------------------------------------------------------------------------------------
    @_guarded
    def next_finding(self) -> Finding | None:
        """F: select the next finding and show its image (and its heatmap)."""
        s = self._require()
        finding = s.select_next_finding()
        if finding is None:
            self.say("No AI findings for this case" if self.ai is not None else "No AI model: no AI findings")
            return None
        self._show_finding(finding)
        n = [f.id for f in s.findings].index(finding.id) + 1
        self.say(f"Finding {n}/{len(s.findings)}: {finding.label.replace('_', ' ')} {format_score(finding.score)}"
                 + (" (flagged)" if finding.flagged else "") + " — A agree, X disagree")
        self.refresh()
        return finding

    def _show_finding(self, finding: Finding) -> None:
        self.cases.show_instance(finding.study_uid, finding.sop_instance_uid, finding.frame)
        ai = self.ai
        if ai is not None:
            ai.show_heatmap_for(finding.sop_instance_uid, finding.frame, finding.label)

    @_guarded
    def select_finding(self, finding_id: int) -> None:
        s = self._require()
        self._show_finding(s.select_finding(finding_id))
        self.refresh()

    @_guarded
    def agree(self) -> Finding | None:
        return self._verdict(Verdict.AGREE)

    @_guarded
    def disagree(self) -> Finding | None:
        return self._verdict(Verdict.DISAGREE)

    def _verdict(self, verdict: Verdict) -> Finding | None:
        s = self._require()
        had_selection = s.selected is not None
        updated = s.agree() if verdict is Verdict.AGREE else s.disagree()
        if updated is None:
            self.say("No AI finding to " + ("agree" if verdict is Verdict.AGREE else "disagree") + " with")
            return None
        if not had_selection:
            self._show_finding(updated)
        self.say(f"{'Agreed' if verdict is Verdict.AGREE else 'Disagreed'}: {updated.label.replace('_', ' ')}"
                 " — saved")
        self.refresh()
        return updated

    @_guarded
    def toggle_key_image(self) -> bool | None:
        s = self._require()
        image = self.current_image()
        if image is None:
            self.say("No image shown to mark as key image")
            return None
        stack = self.window.viewer.stack
        if stack.instances[0].study_uid != s.study_uid:
            self.say("This viewport shows another study (the prior): key images are marked on the case being read")
            return None
        sop, frame, series = image
        on = s.toggle_key_image(sop, frame, series)
        name = self._names.get((sop, frame), "image")
        self.say(f"Key image: {name} — saved" if on else f"Key image removed: {name}")
        self.refresh()
        return on

    def edit_note(self) -> None:
        """Ctrl+N: type the note; Esc saves it and gives the keys back to the image."""
        if self.session is None or self.session.study_uid is None:
            self.say("No case is open")
            return
        self.panel.note.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.panel.note.moveCursor(self.panel.note.textCursor().MoveOperation.End)
        self.say("Writing the note — Esc saves it and returns to the image", 6000)

    @_guarded
    def note_done(self) -> None:
        """Esc in the note field or focus left it: save (if changed) and give the keys back to the image."""
        s = self.session
        if s is None or s.study_uid is None:
            return
        text = self.panel.note_text()
        leaving_by_esc = self.panel.note.hasFocus()
        if text != s.case.note:
            s.set_note(text)
            self.say("Note saved")
            self.update_worklist([s.study_uid])
            self._redraw_banner()
        if leaving_by_esc:
            self.window.viewer.setFocus(Qt.FocusReason.OtherFocusReason)

    def _redraw_banner(self) -> None:
        self.panel._show_banner(self.session.case)

    @_guarded
    def set_reviewer(self, name: str) -> None:
        if self.store is None or not name.strip() or name.strip() == self.store.reviewer:
            return
        self.store.set_reviewer(name)
        self.say(f"Reviewer: {self.store.reviewer} (decisions from now on are attributed to them)")
        self.window.viewer.setFocus(Qt.FocusReason.OtherFocusReason)

    @_guarded
    def sign_off(self) -> bool:
        """Enter: sign off the case (asking once if flagged findings have no verdict), open the next unreviewed."""
        s = self._require()
        result = s.sign_off()
        if result.needs_confirmation:
            ok, dont_ask = confirm_sign_off(self.window, list(result.unverdicted))
            if not ok:
                self.say("Not signed off: flagged findings still need a verdict (F, then A or X)")
                return False
            result = s.sign_off(confirmed=True, dont_ask_again=dont_ask)
        signed_uid = s.study_uid
        self.update_worklist([signed_uid])
        self.signed_off.emit(signed_uid)
        nxt = s.next_unreviewed(self.reading_order(), open_it=False)
        if nxt is None or nxt == signed_uid:
            self.say("Signed off — all cases in the worklist are reviewed", 8000)
            self.refresh()
            return True
        self.say("Signed off — opening next unreviewed case", 5000)
        self.cases.open_case(self.cases.find_study(nxt))
        return True

    @_guarded
    def next_unreviewed(self) -> str | None:
        """N: the next case that is not reviewed, in the worklist's order as shown."""
        if self.session is None:
            raise ReviewStoreError(self.error)
        nxt = self.session.next_unreviewed(self.reading_order(), open_it=False)
        if nxt is None:
            self.say("All cases in the worklist are reviewed")
            return None
        if nxt == self.session.study_uid:
            self.say("This is the only unreviewed case")
            return nxt
        self.cases.open_case(self.cases.find_study(nxt))
        return nxt

    @_guarded
    def undo(self):
        """Ctrl+Z: revert the last review action (going back to its case) and show what was undone."""
        if self.session is None:
            raise ReviewStoreError(self.error)
        before = self.session.study_uid
        entry = self.session.undo()
        if entry is None:
            self.say("Nothing to undo")
            return None
        what = ACTION_WORDS.get(entry.action.removeprefix("undo "), entry.action.removeprefix("undo "))
        where = ""
        if entry.study_uid and entry.study_uid != before:
            self.update_worklist([before] if before else [])
            study = self.cases.find_study(entry.study_uid)
            if study is not None:
                self.cases.open_case(study)
            elif self.cases.case is not None:  # a case of another folder: stay with the one on screen
                self.session.open_case(self.cases.case.study_uid, self.ai_findings(self.cases.case.study_uid))
                where = " (in a case that is not in this worklist)"
        self.say(f"Undone: {what}{where}")
        self.refresh()
        ai = self.ai
        if ai is not None:
            ai.refresh_view()  # an undone correction: the model's lines again
        return entry

    @_guarded
    def correct_measurement(self, change: dict) -> float | None:
        """The reader let go of a dragged line end of a measurement (the CTR): the lines and the ratio they give
        are stored with the review; Ctrl+Z brings the model's back."""
        if self.session is None:
            raise ReviewStoreError(self.error or "the review database is not available")
        value = self.session.correct_measurement(change["study_uid"], change["sop_instance_uid"], change["frame"],
                                                 change["name"], change["heart"], change["thorax"])
        self.say(f"Cardiothoracic ratio corrected to {value:.2f} — saved (Ctrl+Z brings the model's back)", 6000)
        return value

    def corrected_measurement(self, study_uid: str, sop_instance_uid: str, frame: int, name: str) -> dict | None:
        """The reader's version of a measurement (None: the model's stands, or no review database)."""
        if self.session is None:
            return None
        return self.session.corrected_measurement(study_uid, sop_instance_uid, frame, name)

    def export(self) -> None:
        """Ctrl+E: the export dialog for the cases of the loaded folder."""
        from medview.qt.review.export_dialog import ExportDialog

        if self.store is None:
            self.say(self.error, 8000)
            return
        self.note_done()
        dialog = ExportDialog(self.window, self.store, list(self.cases.studies), list(self.cases.opened_paths),
                              settings=self.window.settings)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.export_dialog = dialog
