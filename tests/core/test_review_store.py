"""The review store: durability settings, migrations, undo, the append-only audit log, a second process."""

from __future__ import annotations

import getpass
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from medview.core.errors import ReviewStoreError
from medview.core.review import store as store_mod
from medview.core.review.store import CaseStatus, FindingInput, ReviewStore, Verdict

STUDY = "1.2.826.0.1.3680043.8.498.1"


def _inputs(n=2, checksum="abc"):
    return [FindingInput(f"1.2.3.{i}", label, score=0.9 - 0.3 * i, flagged=i == 0, model_name="demo",
                         model_version="1.0", model_checksum=checksum, threshold=0.5, series_uid="1.2.3")
            for i, label in enumerate(["nodule", "effusion"][:n])]


def test_fresh_store_settings(medview_home):
    with ReviewStore() as store:
        assert store.path == medview_home / "review.sqlite"
        assert store.schema_version == store_mod.SCHEMA_VERSION
        conn = store._conn  # per-connection settings can only be read on the store's own connection
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.reviewer == getpass.getuser()
        with pytest.raises(sqlite3.IntegrityError):  # foreign key: a finding needs its case
            conn.execute("INSERT INTO findings (study_uid, sop_instance_uid, label, score, flagged, model_name) "
                         "VALUES ('nope', '1', 'x', 0.1, 0, 'm')")


def test_unknown_case_is_unread_and_not_written():
    with ReviewStore() as store:
        assert store.case(STUDY).status is CaseStatus.UNREAD
        assert store.cases() == {}
        assert store.audit() == []


def test_decisions_verdicts_and_audit():
    with ReviewStore(reviewer="dr.a") as store:
        case = store.open_case(STUDY)
        assert case.status is CaseStatus.IN_PROGRESS and case.opened_at and case.reviewer == "dr.a"
        findings = store.record_findings(STUDY, _inputs())
        assert [f.label for f in findings] == ["nodule", "effusion"]  # flagged first
        again = store.record_findings(STUDY, _inputs())
        assert [f.id for f in again] == [f.id for f in findings]  # idempotent

        f = store.set_verdict(findings[0].id, "agree")
        assert f.verdict is Verdict.AGREE and f.verdict_by == "dr.a" and f.verdict_at
        store.set_verdict(findings[0].id, Verdict.AGREE)  # same verdict again: no change, no log entry
        assert store.toggle_key_image(STUDY, "1.2.3.0", 0, "1.2.3") is True
        store.set_note(STUDY, "small nodule, follow up")
        signed = store.sign_off(STUDY)
        assert signed.status is CaseStatus.REVIEWED and signed.signed_off_by == "dr.a" and signed.signed_off_at
        assert signed.note == "small nodule, follow up"
        assert [(k.sop_instance_uid, k.frame) for k in signed.key_images] == [("1.2.3.0", 0)]

        actions = [e.action for e in store.audit(STUDY)]
        assert actions == ["open", "record_findings", "verdict_agree", "key_image_on", "note", "sign_off"]

        # a new model version gives new findings; the old verdict stays with the model it was made on
        newer = store.record_findings(STUDY, _inputs(checksum="def"))
        assert len(newer) == 4
        assert {(f.model_checksum, f.verdict) for f in newer if f.label == "nodule"} == {
            ("abc", Verdict.AGREE), ("def", None)}


def test_change_after_sign_off_reopens_the_case():
    with ReviewStore() as store:
        store.open_case(STUDY)
        fid = store.record_findings(STUDY, _inputs())[0].id
        store.sign_off(STUDY)
        store.set_verdict(fid, "disagree")
        case = store.case(STUDY)
        assert case.status is CaseStatus.IN_PROGRESS and case.signed_off_at is None


def test_undo_reverts_in_order_and_is_logged():
    with ReviewStore(reviewer="dr.a") as store:
        store.open_case(STUDY)
        fid = store.record_findings(STUDY, _inputs())[0].id
        store.set_verdict(fid, "agree")
        store.set_verdict(fid, "disagree")
        store.set_note(STUDY, "note")
        store.sign_off(STUDY)

        assert store.undo().action == "undo sign_off"
        assert store.case(STUDY).status is CaseStatus.IN_PROGRESS
        store.undo()
        assert store.case(STUDY).note == ""
        store.undo()
        assert store.finding(fid).verdict is Verdict.AGREE
        store.undo()
        assert store.finding(fid).verdict is None
        assert store.undo() is None  # opening and AI results are not review actions
        assert store.case(STUDY).status is CaseStatus.IN_PROGRESS

        undos = [e for e in store.audit(STUDY) if e.undo_of is not None]
        assert len(undos) == 4 and all(not e.undoable for e in undos)


def test_undo_never_overwrites_someone_elses_later_change():
    with ReviewStore(reviewer="dr.a") as a, ReviewStore(reviewer="dr.b") as b:
        a.open_case(STUDY)
        fid = a.record_findings(STUDY, _inputs())[0].id
        a.set_verdict(fid, "agree")
        b.set_verdict(fid, "disagree")
        with pytest.raises(ReviewStoreError, match="changed since"):
            a.undo()
        assert a.finding(fid).verdict is Verdict.DISAGREE
        assert b.undo() is not None  # b's own action can be undone: back to a's agree
        assert a.finding(fid).verdict is Verdict.AGREE


def test_audit_log_is_append_only(medview_home):
    with ReviewStore() as store:
        store.open_case(STUDY)
        store.set_note(STUDY, "x")
    conn = sqlite3.connect(medview_home / "review.sqlite")
    for sql in ("UPDATE audit SET actor = 'someone else'", "DELETE FROM audit", "DELETE FROM audit WHERE id = 1"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 2
    conn.close()


def test_reviewer_is_changeable_and_remembered():
    with ReviewStore() as store:
        store.set_reviewer("Dr. Who")
        store.open_case(STUDY)
        store.sign_off(STUDY)
        with pytest.raises(ReviewStoreError):
            store.set_reviewer("   ")
    with ReviewStore() as store:
        assert store.reviewer == "Dr. Who"
        assert store.case(STUDY).signed_off_by == "Dr. Who"
        assert store.audit()[0].action == "set_reviewer"


def test_migrations_apply_once_and_keep_data(monkeypatch, medview_home):
    with ReviewStore() as store:
        store.open_case(STUDY)
        store.set_note(STUDY, "kept")
    calls = []

    def add_column(conn):
        calls.append(1)
        conn.execute("ALTER TABLE cases ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(store_mod, "MIGRATIONS", [*store_mod.MIGRATIONS, add_column])
    with ReviewStore() as store:
        assert store.schema_version == len(store_mod.MIGRATIONS)
        assert store.case(STUDY).note == "kept"
        assert store.worklist_states([STUDY, "2.25.none"]) == {
            STUDY: (CaseStatus.IN_PROGRESS, store.reviewer), "2.25.none": (CaseStatus.UNREAD, None)}
        assert store._conn.execute("SELECT priority FROM cases").fetchone()[0] == 0
    with ReviewStore():
        pass
    assert calls == [1]


def test_failed_migration_leaves_the_old_schema(monkeypatch):
    with ReviewStore() as store:
        store.open_case(STUDY)
    version = store_mod.SCHEMA_VERSION

    def broken(conn):
        conn.execute("ALTER TABLE cases ADD COLUMN half_done TEXT")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_mod, "MIGRATIONS", [*store_mod.MIGRATIONS, broken])
    with pytest.raises(ReviewStoreError):
        ReviewStore()
    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:-1])
    with ReviewStore() as store:
        assert store.schema_version == version
        cols = [r[1] for r in store._conn.execute("PRAGMA table_info(cases)")]
        assert "half_done" not in cols and store.case(STUDY).status is CaseStatus.IN_PROGRESS


def test_newer_database_is_refused(medview_home):
    with ReviewStore():
        pass
    conn = sqlite3.connect(medview_home / "review.sqlite")
    conn.execute(f"PRAGMA user_version = {store_mod.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ReviewStoreError, match="newer medview"):
        ReviewStore()


def test_not_a_database_is_reported_in_words(medview_home):
    (medview_home / "review.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ReviewStoreError, match="damaged"):
        ReviewStore()


def test_second_process_shares_the_store(medview_home):
    """Two medviews writing at once: both sets of decisions land, nothing is lost, integrity holds."""
    n = 60
    code = textwrap.dedent(f"""
        from medview.core.review.store import ReviewStore
        with ReviewStore(reviewer="proc") as s:
            for i in range({n}):
                s.set_note("2.25.proc.%d" % i, "p%d" % i)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    with ReviewStore(reviewer="here") as store:
        for i in range(n):
            store.set_note(f"2.25.here.{i}", f"h{i}")
        assert proc.wait(timeout=60) == 0
        notes = {uid: c.note for uid, c in store.cases().items()}
        assert len(notes) == 2 * n
        assert notes["2.25.proc.7"] == "p7" and notes["2.25.here.7"] == "h7"
        assert store.integrity_check() == "ok"
        assert len(store.audit()) == 2 * n


def test_store_held_too_long_by_another_is_reported_as_in_use(medview_home):
    with ReviewStore():
        pass
    blocker = sqlite3.connect(medview_home / "review.sqlite", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with ReviewStore(timeout_ms=200) as store:  # reading still works beside a writer (WAL)
            assert store.case(STUDY).status is CaseStatus.UNREAD
            with pytest.raises(ReviewStoreError, match="in use by another medview"):
                store.set_note(STUDY, "blocked")
        released = threading.Timer(0.3, lambda: blocker.execute("ROLLBACK"))
        released.start()
        with ReviewStore(timeout_ms=5000) as store:  # a short hold is simply waited for
            store.set_note(STUDY, "waited")
            assert store.case(STUDY).note == "waited"
        released.join()
    finally:
        blocker.close()


def test_store_of_schema_1_gains_the_measurements_table(monkeypatch, medview_home):
    every = store_mod.MIGRATIONS
    monkeypatch.setattr(store_mod, "MIGRATIONS", every[:1])
    with ReviewStore() as store:
        store.open_case(STUDY)
        store.set_note(STUDY, "kept")
        assert store.schema_version == 1
    monkeypatch.setattr(store_mod, "MIGRATIONS", every)
    with ReviewStore() as store:
        assert store.schema_version == store_mod.SCHEMA_VERSION >= 2
        assert store.case(STUDY).note == "kept" and store.corrected_measurements(STUDY) == []
        saved = store.correct_measurement(STUDY, "1.2.3.0", 0, "cardiothoracic_ratio", 0.55,
                                          {"heart": [[1, 2], [56, 2]], "thorax": [[0, 5], [100, 5]]})
        assert saved.value == 0.55 and saved.geometry["heart"] == [[1, 2], [56, 2]]
        assert store.corrected_measurements(STUDY) == [saved]
