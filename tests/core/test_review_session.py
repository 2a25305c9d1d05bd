"""The keyboard review flow (SPEC section 6) without Qt: N, F, A / X, K, note, Enter, Ctrl+Z."""

from __future__ import annotations

import pytest

from medview.core.errors import ReviewStoreError
from medview.core.review.session import ReviewSession, findings_from_results
from medview.core.review.store import CaseStatus, FindingInput, ReviewStore, Verdict

CASES = ["2.25.1", "2.25.2", "2.25.3"]


def _results(study: str, flagged: bool):
    """Two images of one study, as `infer --json` lines."""
    return [
        {"status": "ok", "file": "a.dcm", "frame": 0, "study_uid": study, "series_uid": study + ".1",
         "sop_instance_uid": study + ".1.1", "model": "demo-cxr@1.2", "sha256": "f00d",
         "scores": {"nodule": 0.91 if flagged else 0.2, "effusion": 0.1}, "flagged": ["nodule"] if flagged else []},
        {"status": "ok", "file": "b.dcm", "frame": 0, "study_uid": study, "series_uid": study + ".1",
         "sop_instance_uid": study + ".1.2", "model": "demo-cxr@1.2", "sha256": "f00d",
         "scores": {"nodule": 0.3, "effusion": 0.05}, "flagged": []},
    ]


@pytest.fixture
def session():
    with ReviewStore(reviewer="dr.k") as store:
        yield ReviewSession(store)


def test_findings_from_results_keeps_flagged_or_the_top_image():
    found = findings_from_results(_results("2.25.1", flagged=True), thresholds={"nodule": 0.5, "effusion": 0.6})
    by_label = {(f.label, f.sop_instance_uid): f for f in found}
    assert set(by_label) == {("nodule", "2.25.1.1.1"), ("effusion", "2.25.1.1.1")}
    nodule = by_label[("nodule", "2.25.1.1.1")]
    assert nodule.flagged and nodule.score == 0.91 and nodule.threshold == 0.5
    assert (nodule.model_name, nodule.model_version, nodule.model_checksum) == ("demo-cxr", "1.2", "f00d")
    assert not by_label[("effusion", "2.25.1.1.1")].flagged
    unflagged = findings_from_results(_results("2.25.2", flagged=False))
    assert {(f.label, f.sop_instance_uid, f.flagged) for f in unflagged} == {
        ("nodule", "2.25.2.1.2", False), ("effusion", "2.25.2.1.1", False)}


def test_full_keyboard_flow(session):
    store = session.store
    # N from nothing opens the first unreviewed case
    assert session.next_unreviewed(CASES) == "2.25.1"
    session.add_results(findings_from_results(_results("2.25.1", flagged=True)))
    assert store.case("2.25.1").status is CaseStatus.IN_PROGRESS

    # F selects the flagged finding first, then wraps round
    first = session.select_next_finding()
    assert first.label == "nodule" and first.flagged
    assert session.select_next_finding().label == "effusion"
    assert session.select_next_finding().id == first.id

    # A / X are on disk when the call returns (a fresh connection sees them)
    session.agree()
    with ReviewStore() as other:
        assert other.finding(first.id).verdict is Verdict.AGREE
    session.disagree()
    assert store.finding(first.id).verdict is Verdict.DISAGREE and session.selected.verdict is Verdict.DISAGREE

    assert session.toggle_key_image("2.25.1.1.1", 0, "2.25.1.1") is True
    assert session.is_key_image("2.25.1.1.1")
    session.set_note("nodule right upper lobe")

    # Enter: flagged findings all have a verdict -> signs off and opens the next unreviewed
    result, nxt = session.sign_off_and_next(CASES)
    assert result.signed and not result.needs_confirmation and nxt == "2.25.2"
    assert store.case("2.25.1").status is CaseStatus.REVIEWED and session.study_uid == "2.25.2"

    # Ctrl+Z after Enter undoes the sign-off and returns to that case
    entry = session.undo()
    assert entry.action == "undo sign_off" and session.study_uid == "2.25.1"
    assert store.case("2.25.1").status is CaseStatus.IN_PROGRESS
    session.undo()
    assert store.case("2.25.1").note == ""
    session.undo()
    assert not session.is_key_image("2.25.1.1.1")
    session.undo()
    assert store.finding(first.id).verdict is Verdict.AGREE


def test_sign_off_asks_once_for_unverdicted_flagged_findings(session):
    session.open_case("2.25.1", findings_from_results(_results("2.25.1", flagged=True)))
    asked = session.sign_off()
    assert not asked.signed and asked.needs_confirmation
    assert [f.label for f in asked.unverdicted] == ["nodule"]
    assert session.store.case("2.25.1").status is CaseStatus.IN_PROGRESS
    done = session.sign_off(confirmed=True)
    assert done.signed and session.store.case("2.25.1").status is CaseStatus.REVIEWED

    # "don't ask again" is remembered in the store
    session.open_case("2.25.3", findings_from_results(_results("2.25.3", flagged=True)))
    assert session.sign_off(confirmed=True, dont_ask_again=True).signed
    session.open_case("2.25.2", findings_from_results(_results("2.25.2", flagged=True)))
    assert session.sign_off().signed
    assert session.next_unreviewed(CASES) is None  # all reviewed
    with ReviewStore() as again:
        assert ReviewSession(again).confirm_unverdicted is False


def test_case_without_flagged_findings_signs_off_without_asking(session):
    session.open_case("2.25.2", findings_from_results(_results("2.25.2", flagged=False)))
    assert session.sign_off().signed


def test_agree_without_findings_or_case(session):
    with pytest.raises(ReviewStoreError):
        session.set_note("no case open")
    session.open_case("2.25.9")
    assert session.select_next_finding() is None and session.agree() is None
    # A with nothing selected selects the first finding
    session.add_results([FindingInput("1.2", "nodule", 0.7, True, "demo", "1", "c")])
    assert session.agree().verdict is Verdict.AGREE and session.selected.label == "nodule"


def test_next_unreviewed_follows_worklist_order_and_wraps(session):
    session.open_case("2.25.2")
    session.sign_off()
    assert session.next_unreviewed(CASES, open_it=False) == "2.25.3"
    session.open_case("2.25.3")
    assert session.next_unreviewed(CASES) == "2.25.1"  # wraps round, skips reviewed 2.25.2


def test_corrected_ctr_is_stored_audited_and_undone(session):
    store = session.store
    session.open_case("2.25.1", findings_from_results(_results("2.25.1", flagged=True)))
    assert session.corrected_measurement("2.25.1", "2.25.1.1.1", 0, "cardiothoracic_ratio") is None
    value = session.correct_measurement("2.25.1", "2.25.1.1.1", 0, "cardiothoracic_ratio",
                                        heart=[[30, 40.5], [80, 41]], thorax=[[10, 60], [110, 60]])
    assert value == pytest.approx(0.5)
    with ReviewStore() as other:  # durable when the call returns
        again = ReviewSession(other).corrected_measurement("2.25.1", "2.25.1.1.1", 0, "cardiothoracic_ratio")
    assert again["value"] == pytest.approx(0.5) and again["corrected"] is True
    assert again["heart"] == [[30.0, 40.5], [80.0, 41.0]] and again["thorax"] == [[10.0, 60.0], [110.0, 60.0]]
    assert again["corrected_by"] == "dr.k"

    # dragging again replaces it; only the horizontal extents count
    assert session.correct_measurement("2.25.1", "2.25.1.1.1", 0, "cardiothoracic_ratio",
                                       [[80, 40], [20, 70]], [[10, 60], [110, 80]]) == pytest.approx(0.6)
    session.correct_measurement("2.25.1", "2.25.1.1.1", 0, "cardiothoracic_ratio",
                                [[80, 40], [20, 70]], [[10, 60], [110, 80]])  # the same lines: nothing new
    actions = [e.action for e in store.audit("2.25.1")]
    assert actions.count("measurement_corrected") == 2
    change = store.audit("2.25.1")[-1].changes[0]
    assert change["table"] == "measurements" and change["before"]["value"] == pytest.approx(0.5)

    # Ctrl+Z steps back through the corrections to none
    assert session.undo().action == "undo measurement_corrected"
    assert session.corrected_measurement("2.25.1", "2.25.1.1.1", 0, "cardiothoracic_ratio")["value"] == 0.5
    session.undo()
    assert session.corrected_measurement("2.25.1", "2.25.1.1.1", 0, "cardiothoracic_ratio") is None


def test_correction_after_sign_off_reopens_and_bad_lines_are_refused(session):
    session.open_case("2.25.2")
    session.sign_off()
    with pytest.raises(ReviewStoreError, match="thorax"):
        session.correct_measurement("2.25.2", "1.2", 0, "cardiothoracic_ratio", [[0, 0], [5, 0]], [[7, 0], [7, 9]])
    with pytest.raises(ReviewStoreError, match="heart"):
        session.correct_measurement("2.25.2", "1.2", 0, "cardiothoracic_ratio", [[0, 0]], [[0, 0], [9, 0]])
    assert session.store.case("2.25.2").status is CaseStatus.REVIEWED  # refused: nothing changed
    session.correct_measurement("2.25.2", "1.2", 0, "cardiothoracic_ratio", [[0, 0], [5, 0]], [[0, 0], [10, 0]])
    assert session.store.case("2.25.2").status is CaseStatus.IN_PROGRESS
