"""The keyboard review flow of SPEC section 6, in plain Python: the GUI maps keys to these calls and redraws.

N `next_unreviewed`, F `select_next_finding`, A / X `agree` / `disagree`, K `toggle_key_image`, note field
`set_note`, dragging a measurement's line ends `correct_measurement`, Enter `sign_off` then `next_unreviewed`,
Ctrl+Z `undo`. Every call that changes something has
committed it to the review store before it returns, so the GUI may show "saved" at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from medview.core.errors import ReviewStoreError
from medview.core.review.measurements import cardiothoracic_ratio, check_line
from medview.core.review.store import (
    AuditEntry,
    Case,
    Finding,
    FindingInput,
    ReviewStore,
    Verdict,
)

# preference (in the review store): ask before signing off a case whose flagged findings have no verdict
PREF_CONFIRM_UNVERDICTED = "confirm_sign_off_unverdicted"


@dataclass(frozen=True)
class SignOffResult:
    """What `sign_off` did: `signed` False with `needs_confirmation` means the GUI should ask, then call
    `sign_off(confirmed=True, dont_ask_again=...)`."""

    signed: bool
    needs_confirmation: bool = False
    unverdicted: tuple[Finding, ...] = field(default=())
    case: Case | None = None


def findings_from_results(results: Iterable, thresholds: dict[str, float] | None = None) -> list[FindingInput]:
    """Reduce per-image AI results to the findings a reader reviews: per label, every flagged image, or
    (none flagged) the image with the highest score, so a missed finding can still be disagreed with.

    `results` are objects or dicts with sop_instance_uid, series_uid, frame, scores {label: p}, flagged
    [labels], model name/version/checksum (`model` "name@version" is accepted too): the inference result
    objects or `infer --json` lines, without depending on their classes.
    """
    def get(r, name, default=None):
        return r.get(name, default) if isinstance(r, dict) else getattr(r, name, default)

    by_label: dict[str, list[FindingInput]] = {}
    for r in results:
        name, version = get(r, "model_name"), get(r, "model_version")
        if name is None:
            name, _, version = str(get(r, "model", "")).partition("@")
        limits = {**(thresholds or {}), **(get(r, "thresholds") or {})}
        flagged = set(get(r, "flagged") or ())
        for label, score in (get(r, "scores") or {}).items():
            by_label.setdefault(label, []).append(FindingInput(
                sop_instance_uid=get(r, "sop_instance_uid"), label=label, score=float(score),
                flagged=label in flagged, model_name=name or "", model_version=version or "",
                model_checksum=get(r, "model_checksum") or get(r, "sha256") or "",
                threshold=limits.get(label), series_uid=get(r, "series_uid") or "", frame=int(get(r, "frame") or 0)))
    out: list[FindingInput] = []
    for label, items in by_label.items():
        flagged_items = [f for f in items if f.flagged]
        out.extend(flagged_items or [max(items, key=lambda f: f.score)])
    return out


class ReviewSession:
    """The case being read, its findings and the selected one."""

    def __init__(self, store: ReviewStore):
        self.store = store
        self.study_uid: str | None = None
        self.findings: list[Finding] = []
        self.selected_id: int | None = None

    # --------------------------------------------------------------------------------- case

    def open_case(self, study_uid: str, findings: Iterable[FindingInput] = ()) -> Case:
        """Open a case (unread -> in progress) with the AI results known so far; nothing is selected."""
        case = self.store.open_case(study_uid)
        self.study_uid = study_uid
        self.selected_id = None
        self.add_results(findings)
        self.findings = self.store.findings(study_uid)
        return case

    def add_results(self, findings: Iterable[FindingInput]) -> list[Finding]:
        """AI results that arrived for the open case (inference runs in the background); selection is kept."""
        findings = list(findings)
        if findings:
            self.findings = self.store.record_findings(self._current(), findings)
        return self.findings

    @property
    def case(self) -> Case | None:
        return None if self.study_uid is None else self.store.case(self.study_uid)

    def _current(self) -> str:
        if self.study_uid is None:
            raise ReviewStoreError("no case is open")
        return self.study_uid

    # ----------------------------------------------------------------------------- findings

    @property
    def selected(self) -> Finding | None:
        return next((f for f in self.findings if f.id == self.selected_id), None)

    def select_finding(self, finding_id: int) -> Finding:
        finding = next((f for f in self.findings if f.id == finding_id), None)
        if finding is None:
            raise ReviewStoreError(f"finding {finding_id} is not part of the open case")
        self.selected_id = finding_id
        return finding

    def select_next_finding(self) -> Finding | None:
        """F: the next finding (flagged first, then by score), wrapping round; the GUI shows its image."""
        if not self.findings:
            return None
        ids = [f.id for f in self.findings]
        index = ids.index(self.selected_id) + 1 if self.selected_id in ids else 0
        self.selected_id = ids[index % len(ids)]
        return self.selected

    def agree(self) -> Finding | None:
        return self._verdict(Verdict.AGREE)

    def disagree(self) -> Finding | None:
        return self._verdict(Verdict.DISAGREE)

    def _verdict(self, verdict: Verdict) -> Finding | None:
        """A / X on the selected finding (none selected: the first one is selected first)."""
        if self.selected is None and self.select_next_finding() is None:
            return None
        updated = self.store.set_verdict(self.selected_id, verdict)
        self._refresh()
        return updated

    # ------------------------------------------------------------------------ key images, note

    def toggle_key_image(self, sop_instance_uid: str, frame: int = 0, series_uid: str = "") -> bool:
        return self.store.toggle_key_image(self._current(), sop_instance_uid, frame, series_uid)

    def is_key_image(self, sop_instance_uid: str, frame: int = 0) -> bool:
        case = self.case
        return case is not None and any(k.sop_instance_uid == sop_instance_uid and k.frame == frame
                                        for k in case.key_images)

    def set_note(self, text: str) -> Case:
        return self.store.set_note(self._current(), text)

    # ---------------------------------------------------------------------------- measurements

    def correct_measurement(self, study_uid: str, sop_instance_uid: str, frame: int, name: str,
                            heart: list[list[float]], thorax: list[list[float]]) -> float:
        """The reader moved the CTR's line ends: store the new lines and their ratio (undoable); returns it."""
        geometry = {"heart": check_line(heart, "heart"), "thorax": check_line(thorax, "thorax")}
        value = cardiothoracic_ratio(geometry["heart"], geometry["thorax"])
        self.store.correct_measurement(study_uid, sop_instance_uid, frame, name, value, geometry)
        return value

    def corrected_measurement(self, study_uid: str, sop_instance_uid: str, frame: int, name: str) -> dict | None:
        """The reader's version in the model's measurement shape ("value", "heart", "thorax", "corrected": True),
        or None when the reader has not corrected it."""
        stored = self.store.corrected_measurement(study_uid, sop_instance_uid, frame, name)
        return None if stored is None else stored.as_dict()

    # ------------------------------------------------------------------------------ sign off

    @property
    def confirm_unverdicted(self) -> bool:
        return self.store.get_pref(PREF_CONFIRM_UNVERDICTED, "1") == "1"

    def unverdicted_flagged(self) -> list[Finding]:
        return [f for f in self.findings if f.flagged and f.verdict is None]

    def sign_off(self, confirmed: bool = False, dont_ask_again: bool = False) -> SignOffResult:
        """Enter: sign off; asks once (needs_confirmation) when flagged findings have no verdict."""
        study_uid = self._current()
        if dont_ask_again:
            self.store.set_pref(PREF_CONFIRM_UNVERDICTED, "0")
        unverdicted = tuple(self.unverdicted_flagged())
        if unverdicted and not confirmed and self.confirm_unverdicted:
            return SignOffResult(False, True, unverdicted, self.store.case(study_uid))
        case = self.store.sign_off(study_uid)
        return SignOffResult(True, False, unverdicted, case)

    def next_unreviewed(self, worklist_order: Sequence[str], *, open_it: bool = True) -> str | None:
        """N: the first case after the open one (wrapping round) in worklist order that is not reviewed."""
        order = list(worklist_order)
        if not order:
            return None
        start = order.index(self.study_uid) + 1 if self.study_uid in order else 0
        uid = self.store.first_unreviewed(order[start:] + order[:start])
        if uid is not None and open_it:
            self.open_case(uid)
        return uid

    def sign_off_and_next(self, worklist_order: Sequence[str], confirmed: bool = False,
                          dont_ask_again: bool = False) -> tuple[SignOffResult, str | None]:
        """Enter: sign off and, when signed, open the next unreviewed case."""
        result = self.sign_off(confirmed, dont_ask_again)
        nxt = self.next_unreviewed(worklist_order) if result.signed else None
        return result, nxt

    # ---------------------------------------------------------------------------------- undo

    def undo(self) -> AuditEntry | None:
        """Ctrl+Z: revert the last review action; if it was in another case (e.g. the sign-off just before
        Enter moved on), that case is opened again so the reader sees what was undone."""
        entry = self.store.undo()
        if entry is None:
            return None
        if entry.study_uid and entry.study_uid != self.study_uid:
            self.study_uid = entry.study_uid
            self.selected_id = None
        self._refresh()
        return entry

    def _refresh(self) -> None:
        if self.study_uid is not None:
            self.findings = self.store.findings(self.study_uid)
            if self.selected_id not in {f.id for f in self.findings}:
                self.selected_id = None
