"""The review store: every reading decision, durable when the call returns, with an append-only audit log.

SQLite under MEDVIEW_HOME (`review.sqlite`), opened in WAL mode with `synchronous=FULL`, so a committed
transaction is fsynced before `commit()` returns: a decision shown as saved survives SIGKILL or power loss.

Concurrency (decided, tested): a second medview on the same MEDVIEW_HOME *shares* the store. WAL lets
readers run beside one writer; every change is one short `BEGIN IMMEDIATE` transaction, and `busy_timeout`
lets a writer wait for the other's commit. Only if the other process holds the write lock longer than the
timeout is the caller told, in words, that the store is in use (ReviewStoreError). Undo only reverts a row
that still holds the value the undone action wrote, so one reader never silently erases another's change.

The store takes plain values (UIDs, labels, scores, model name/version/checksum) so it depends neither on
the inference classes nor on Qt.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterator

from medview.core.errors import ReviewStoreError

DB_NAME = "review.sqlite"
BUSY_TIMEOUT_MS = 5000


class CaseStatus(StrEnum):
    UNREAD = "unread"
    IN_PROGRESS = "in_progress"
    REVIEWED = "reviewed"

    @property
    def label(self) -> str:
        """The words shown in the worklist."""
        return self.value.replace("_", " ")


class Verdict(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"


# --------------------------------------------------------------------------------------------- schema

_V1 = [
    """CREATE TABLE cases (
        study_uid      TEXT PRIMARY KEY,
        status         TEXT NOT NULL DEFAULT 'unread' CHECK (status IN ('unread', 'in_progress', 'reviewed')),
        reviewer       TEXT,
        opened_at      TEXT,
        signed_off_at  TEXT,
        signed_off_by  TEXT,
        note           TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE findings (
        id               INTEGER PRIMARY KEY,
        study_uid        TEXT NOT NULL REFERENCES cases(study_uid),
        series_uid       TEXT NOT NULL DEFAULT '',
        sop_instance_uid TEXT NOT NULL,
        frame            INTEGER NOT NULL DEFAULT 0,
        label            TEXT NOT NULL,
        score            REAL NOT NULL,
        threshold        REAL,
        flagged          INTEGER NOT NULL CHECK (flagged IN (0, 1)),
        model_name       TEXT NOT NULL,
        model_version    TEXT NOT NULL DEFAULT '',
        model_checksum   TEXT NOT NULL DEFAULT '',
        verdict          TEXT CHECK (verdict IN ('agree', 'disagree')),
        verdict_by       TEXT,
        verdict_at       TEXT,
        UNIQUE (study_uid, sop_instance_uid, frame, label, model_checksum)
    )""",
    "CREATE INDEX findings_study ON findings(study_uid)",
    """CREATE TABLE key_images (
        study_uid        TEXT NOT NULL REFERENCES cases(study_uid),
        sop_instance_uid TEXT NOT NULL,
        frame            INTEGER NOT NULL DEFAULT 0,
        series_uid       TEXT NOT NULL DEFAULT '',
        added_by         TEXT,
        added_at         TEXT,
        PRIMARY KEY (study_uid, sop_instance_uid, frame)
    )""",
    """CREATE TABLE prefs (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE audit (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at        TEXT NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        study_uid TEXT,
        changes   TEXT NOT NULL,
        undoable  INTEGER NOT NULL DEFAULT 0,
        undo_of   INTEGER REFERENCES audit(id)
    )""",
    "CREATE INDEX audit_undo_of ON audit(undo_of)",
    # append-only: the log is evidence, so the database itself refuses to rewrite history
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
]

# the reader's corrections of a model's measurement (one per image and measurement name): the value and the
# geometry it was computed from (JSON, e.g. {"heart": [[c, r], [c, r]], "thorax": [...]}, source image pixels)
_V2 = [
    """CREATE TABLE measurements (
        study_uid        TEXT NOT NULL REFERENCES cases(study_uid),
        sop_instance_uid TEXT NOT NULL,
        frame            INTEGER NOT NULL DEFAULT 0,
        name             TEXT NOT NULL,
        value            REAL NOT NULL,
        geometry         TEXT NOT NULL,
        corrected_by     TEXT,
        corrected_at     TEXT,
        PRIMARY KEY (study_uid, sop_instance_uid, frame, name)
    )""",
]

# Each migration is a list of SQL statements, or a callable taking the connection; it runs in one
# transaction together with the `user_version` bump, so a crash mid-migration leaves the old schema intact.
Migration = Sequence[str] | Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = [_V1, _V2]
SCHEMA_VERSION = len(MIGRATIONS)


# ---------------------------------------------------------------------------------------------- values


def now_iso() -> str:
    """UTC, millisecond precision, sortable as text."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class FindingInput:
    """One AI result to review: a label on one image (frame) by one model."""

    sop_instance_uid: str
    label: str
    score: float
    flagged: bool
    model_name: str
    model_version: str = ""
    model_checksum: str = ""
    threshold: float | None = None
    series_uid: str = ""
    frame: int = 0


@dataclass(frozen=True)
class Finding:
    id: int
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    frame: int
    label: str
    score: float
    threshold: float | None
    flagged: bool
    model_name: str
    model_version: str
    model_checksum: str
    verdict: Verdict | None
    verdict_by: str | None
    verdict_at: str | None

    @property
    def model(self) -> str:
        """"name@version" as `infer --json` writes it."""
        return f"{self.model_name}@{self.model_version}" if self.model_version else self.model_name


@dataclass(frozen=True)
class KeyImage:
    sop_instance_uid: str
    frame: int
    series_uid: str
    added_by: str | None
    added_at: str | None


@dataclass(frozen=True)
class CorrectedMeasurement:
    """The reader's version of a model's measurement on one image (e.g. the CTR after dragging its lines)."""

    sop_instance_uid: str
    frame: int
    name: str
    value: float
    geometry: dict[str, Any]
    corrected_by: str | None
    corrected_at: str | None

    def as_dict(self) -> dict[str, Any]:
        """The model's measurement shape ({"value", "heart", "thorax", ...}) marked "corrected"."""
        return {**self.geometry, "value": self.value, "corrected": True, "corrected_by": self.corrected_by,
                "corrected_at": self.corrected_at}


@dataclass(frozen=True)
class Case:
    study_uid: str
    status: CaseStatus
    reviewer: str | None
    opened_at: str | None
    signed_off_at: str | None
    signed_off_by: str | None
    note: str
    key_images: tuple[KeyImage, ...] = ()

    @property
    def has_review_data(self) -> bool:
        """Signed off, a note or key images (verdicts live on the findings); merely opening is not a review."""
        return self.status is CaseStatus.REVIEWED or bool(self.note) or bool(self.key_images)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    study_uid: str | None
    changes: list[dict[str, Any]]
    undoable: bool
    undo_of: int | None


# Row snapshots per table: what an action changes and what undo restores. Keys identify the row.
_CASE_COLS = ("status", "reviewer", "opened_at", "signed_off_at", "signed_off_by", "note")
_VERDICT_COLS = ("verdict", "verdict_by", "verdict_at")
_KEY_COLS = ("series_uid", "added_by", "added_at")
_MEASUREMENT_COLS = ("value", "geometry", "corrected_by", "corrected_at")


class ReviewStore:
    """The review database of one MEDVIEW_HOME. Every mutating method commits (fsync) before it returns."""

    def __init__(self, path: str | Path | None = None, *, reviewer: str | None = None,
                 timeout_ms: int = BUSY_TIMEOUT_MS):
        if path is None:
            from medview.core.home import home_file

            path = home_file(DB_NAME)
        self.path = Path(path)
        self._timeout_ms = timeout_ms
        try:
            # autocommit mode (isolation_level None): transactions are explicit BEGIN IMMEDIATE ... COMMIT
            self._conn = sqlite3.connect(self.path, timeout=timeout_ms / 1000, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise ReviewStoreError(f"{self.path}: the review database cannot use write-ahead logging "
                                       f"(journal mode {mode}); is it on a network drive?")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except BaseException as exc:
            if hasattr(self, "_conn"):
                self._conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise
        self._reviewer = reviewer or self.get_pref("reviewer") or _os_user()

    # ------------------------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, exc: sqlite3.Error) -> ReviewStoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return ReviewStoreError(f"{self.path}: the review database is in use by another medview "
                                    f"(waited {self._timeout_ms / 1000:g} s); try again")
        if "append-only" in text:
            return ReviewStoreError("the audit log is append-only: entries cannot be changed or removed")
        if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
            return ReviewStoreError(f"{self.path}: the review database is damaged ({text})")
        return ReviewStoreError(f"{self.path}: the review database could not be written ({text})")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; committed (and fsynced) when the block ends, rolled back on error."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            yield self._conn
        except BaseException as exc:
            self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from exc
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise self._error(exc) from exc

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ReviewStoreError(f"{self.path}: the review database was written by a newer medview "
                                   f"(schema {version}, this one knows {len(MIGRATIONS)}); update medview")
        while version < len(MIGRATIONS):
            with self._tx() as conn:
                # re-read inside the write lock: another process may have migrated meanwhile
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= len(MIGRATIONS):
                    break
                step = MIGRATIONS[version]
                if callable(step):
                    step(conn)
                else:
                    for statement in step:
                        conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self) -> str:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    # ---------------------------------------------------------------------------------- snapshots

    def _snapshot(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        cols = {"cases": _CASE_COLS, "findings": _VERDICT_COLS, "key_images": _KEY_COLS, "prefs": ("value",),
                "measurements": _MEASUREMENT_COLS}[table]
        where = " AND ".join(f"{k} = ?" for k in key)
        row = self._conn.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE {where}",
                                 tuple(key.values())).fetchone()
        return None if row is None else {c: row[c] for c in cols}

    def _write(self, table: str, key: dict[str, Any], values: dict[str, Any] | None) -> None:
        """Make the row identified by `key` hold `values` (None: no row; findings rows are never removed)."""
        if values is None:
            if table == "findings":
                raise ReviewStoreError("AI findings cannot be removed from the review database")
            where = " AND ".join(f"{k} = ?" for k in key)
            self._conn.execute(f"DELETE FROM {table} WHERE {where}", tuple(key.values()))
            return
        if table == "findings":
            sets = ", ".join(f"{c} = ?" for c in values)
            self._conn.execute(f"UPDATE findings SET {sets} WHERE id = ?", (*values.values(), key["id"]))
            return
        row = {**key, **values}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)
        self._conn.execute(
            f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}",
            tuple(row.values()),
        )

    def _apply(self, action: str, study_uid: str | None,
               patches: list[tuple[str, dict[str, Any], dict[str, Any] | None]], *,
               undoable: bool = True, undo_of: int | None = None) -> int | None:
        """Write the patches and log them in the audit table; inside a transaction. None if nothing changed."""
        changes = []
        for table, key, after in patches:
            before = self._snapshot(table, key)
            if before == after:
                continue
            self._write(table, key, after)
            changes.append({"table": table, "key": key, "before": before, "after": after})
        if not changes:
            return None
        cur = self._conn.execute(
            "INSERT INTO audit (at, actor, action, study_uid, changes, undoable, undo_of) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now_iso(), self._reviewer, action, study_uid, json.dumps(changes, sort_keys=True),
             int(undoable), undo_of),
        )
        return cur.lastrowid

    def _ensure_case(self, study_uid: str) -> dict[str, Any]:
        if not study_uid:
            raise ReviewStoreError("a case needs a Study Instance UID")
        snap = self._snapshot("cases", {"study_uid": study_uid})
        if snap is None:
            self._conn.execute("INSERT INTO cases (study_uid) VALUES (?)", (study_uid,))
            snap = self._snapshot("cases", {"study_uid": study_uid})
        return snap

    def _edit_case(self, study_uid: str, patches: list, action: str, **case_changes: Any) -> int | None:
        """An edit of a case's content; a signed-off case goes back to in progress (its sign-off no longer holds)."""
        case = self._ensure_case(study_uid)
        after = {**case, **case_changes}
        if case["status"] != CaseStatus.IN_PROGRESS:
            after.update(status=CaseStatus.IN_PROGRESS.value, signed_off_at=None, signed_off_by=None)
        if not case["opened_at"]:
            after["opened_at"] = now_iso()
        after["reviewer"] = self._reviewer
        return self._apply(action, study_uid, [*patches, ("cases", {"study_uid": study_uid}, after)])

    # ------------------------------------------------------------------------------ preferences

    @property
    def reviewer(self) -> str:
        """Who the decisions made through this store are attributed to (the OS user unless changed)."""
        return self._reviewer

    def set_reviewer(self, name: str) -> None:
        name = name.strip()
        if not name:
            raise ReviewStoreError("the reviewer name cannot be empty")
        with self._tx():
            self._apply("set_reviewer", None, [("prefs", {"key": "reviewer"}, {"value": name})], undoable=False)
        self._reviewer = name

    def get_pref(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM prefs WHERE key = ?", (key,)).fetchone()
        return default if row is None else row["value"]

    def set_pref(self, key: str, value: str) -> None:
        with self._tx():
            self._apply("set_pref", None, [("prefs", {"key": key}, {"value": str(value)})], undoable=False)

    # ------------------------------------------------------------------------------------ reading

    def case(self, study_uid: str) -> Case:
        """The case's review state; an unknown study is an unread case (nothing is written)."""
        snap = self._snapshot("cases", {"study_uid": study_uid})
        if snap is None:
            return Case(study_uid, CaseStatus.UNREAD, None, None, None, None, "")
        keys = tuple(
            KeyImage(r["sop_instance_uid"], r["frame"], r["series_uid"], r["added_by"], r["added_at"])
            for r in self._conn.execute(
                "SELECT * FROM key_images WHERE study_uid = ? ORDER BY added_at, sop_instance_uid, frame",
                (study_uid,))
        )
        return Case(study_uid, CaseStatus(snap["status"]), snap["reviewer"], snap["opened_at"],
                    snap["signed_off_at"], snap["signed_off_by"], snap["note"], keys)

    def cases(self, study_uids: Iterable[str] | None = None) -> dict[str, Case]:
        """Review states for the worklist (every stored case when `study_uids` is None)."""
        if study_uids is None:
            study_uids = [r[0] for r in self._conn.execute("SELECT study_uid FROM cases ORDER BY study_uid")]
        return {uid: self.case(uid) for uid in study_uids}

    def worklist_states(self, study_uids: Iterable[str]) -> dict[str, tuple[CaseStatus, str | None]]:
        """(status, reviewer) per study for the worklist columns, in one query per 500 studies."""
        uids = list(study_uids)
        found = {}
        for i in range(0, len(uids), 500):
            chunk = uids[i:i + 500]
            marks = ",".join("?" for _ in chunk)
            for row in self._conn.execute(
                    f"SELECT study_uid, status, reviewer FROM cases WHERE study_uid IN ({marks})", chunk):
                found[row[0]] = (CaseStatus(row[1]), row[2])
        return {uid: found.get(uid, (CaseStatus.UNREAD, None)) for uid in uids}

    def statuses(self, study_uids: Iterable[str]) -> dict[str, CaseStatus]:
        """Just the status per study."""
        return {uid: state[0] for uid, state in self.worklist_states(study_uids).items()}

    def first_unreviewed(self, study_uids: Sequence[str]) -> str | None:
        """The first of these studies (in their order) that is not signed off; None when all are."""
        statuses = self.statuses(study_uids)
        return next((uid for uid in study_uids if statuses[uid] is not CaseStatus.REVIEWED), None)

    def finding(self, finding_id: int) -> Finding:
        row = self._conn.execute("SELECT * FROM findings WHERE id = ?", (finding_id,)).fetchone()
        if row is None:
            raise ReviewStoreError(f"no AI finding with id {finding_id} in the review database")
        return _finding(row)

    def findings(self, study_uid: str) -> list[Finding]:
        """The case's findings: flagged first, then by score (highest first)."""
        rows = self._conn.execute(
            "SELECT * FROM findings WHERE study_uid = ? ORDER BY flagged DESC, score DESC, label, id", (study_uid,))
        return [_finding(r) for r in rows]

    def corrected_measurements(self, study_uid: str) -> list[CorrectedMeasurement]:
        """The reader's corrected measurements of a case, by image and name."""
        rows = self._conn.execute(
            "SELECT * FROM measurements WHERE study_uid = ? ORDER BY sop_instance_uid, frame, name", (study_uid,))
        return [_measurement(r) for r in rows]

    def corrected_measurement(self, study_uid: str, sop_instance_uid: str, frame: int,
                              name: str) -> CorrectedMeasurement | None:
        row = self._conn.execute(
            "SELECT * FROM measurements WHERE study_uid = ? AND sop_instance_uid = ? AND frame = ? AND name = ?",
            (study_uid, sop_instance_uid, int(frame), name)).fetchone()
        return None if row is None else _measurement(row)

    def audit(self, study_uid: str | None = None) -> list[AuditEntry]:
        if study_uid is None:
            rows = self._conn.execute("SELECT * FROM audit ORDER BY id")
        else:
            rows = self._conn.execute("SELECT * FROM audit WHERE study_uid = ? ORDER BY id", (study_uid,))
        return [AuditEntry(r["id"], r["at"], r["actor"], r["action"], r["study_uid"], json.loads(r["changes"]),
                           bool(r["undoable"]), r["undo_of"]) for r in rows]

    # ------------------------------------------------------------------------------------ writing

    def open_case(self, study_uid: str) -> Case:
        """Opening an unread case makes it in progress and records when it was first opened (not undoable)."""
        with self._tx():
            case = self._ensure_case(study_uid)
            if case["status"] == CaseStatus.UNREAD:
                after = {**case, "status": CaseStatus.IN_PROGRESS.value, "reviewer": self._reviewer,
                         "opened_at": case["opened_at"] or now_iso()}
                self._apply("open", study_uid, [("cases", {"study_uid": study_uid}, after)], undoable=False)
        return self.case(study_uid)

    def record_findings(self, study_uid: str, findings: Iterable[FindingInput]) -> list[Finding]:
        """Store the AI results of a case; a result already stored (same image, label, model) keeps its verdict."""
        with self._tx() as conn:
            self._ensure_case(study_uid)
            added = []
            for f in findings:
                cur = conn.execute(
                    """INSERT INTO findings (study_uid, series_uid, sop_instance_uid, frame, label, score, threshold,
                                             flagged, model_name, model_version, model_checksum)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (study_uid, sop_instance_uid, frame, label, model_checksum) DO NOTHING""",
                    (study_uid, f.series_uid, f.sop_instance_uid, int(f.frame), f.label, float(f.score),
                     None if f.threshold is None else float(f.threshold), int(bool(f.flagged)), f.model_name,
                     f.model_version, f.model_checksum),
                )
                if cur.rowcount:
                    added.append({"id": cur.lastrowid, "label": f.label, "sop_instance_uid": f.sop_instance_uid,
                                  "frame": int(f.frame), "model": f"{f.model_name}@{f.model_version}"})
            if added:
                conn.execute(
                    "INSERT INTO audit (at, actor, action, study_uid, changes, undoable) VALUES (?, ?, ?, ?, ?, 0)",
                    (now_iso(), self._reviewer, "record_findings", study_uid,
                     json.dumps([{"table": "findings", "added": added}])),
                )
        return self.findings(study_uid)

    def set_verdict(self, finding_id: int, verdict: Verdict | str | None) -> Finding:
        """Agree or disagree with an AI finding (None clears the verdict)."""
        verdict = None if verdict is None else Verdict(verdict)
        with self._tx():
            finding = self.finding(finding_id)
            after = ({"verdict": None, "verdict_by": None, "verdict_at": None} if verdict is None else
                     {"verdict": verdict.value, "verdict_by": self._reviewer, "verdict_at": now_iso()})
            if finding.verdict != verdict:
                self._edit_case(finding.study_uid, [("findings", {"id": finding_id}, after)],
                                f"verdict_{verdict.value if verdict else 'clear'}")
        return self.finding(finding_id)

    def set_key_image(self, study_uid: str, sop_instance_uid: str, frame: int = 0, on: bool = True,
                      series_uid: str = "") -> bool:
        key = {"study_uid": study_uid, "sop_instance_uid": sop_instance_uid, "frame": int(frame)}
        with self._tx():
            if (self._snapshot("key_images", key) is not None) != on:
                after = {"series_uid": series_uid, "added_by": self._reviewer, "added_at": now_iso()} if on else None
                self._edit_case(study_uid, [("key_images", key, after)], "key_image_on" if on else "key_image_off")
        return on

    def toggle_key_image(self, study_uid: str, sop_instance_uid: str, frame: int = 0, series_uid: str = "") -> bool:
        """K: key image on / off; returns the new state."""
        on = not any(k.sop_instance_uid == sop_instance_uid and k.frame == frame
                     for k in self.case(study_uid).key_images)
        return self.set_key_image(study_uid, sop_instance_uid, frame, on, series_uid)

    def correct_measurement(self, study_uid: str, sop_instance_uid: str, frame: int, name: str, value: float,
                            geometry: dict[str, Any]) -> CorrectedMeasurement:
        """Store the reader's value of a measurement and the geometry it comes from (undoable, audited); the
        same geometry again changes nothing."""
        key = {"study_uid": study_uid, "sop_instance_uid": sop_instance_uid, "frame": int(frame), "name": name}
        text = json.dumps(geometry, sort_keys=True)
        with self._tx():
            before = self._snapshot("measurements", key)
            if before is None or before["geometry"] != text or before["value"] != float(value):
                after = {"value": float(value), "geometry": text, "corrected_by": self._reviewer,
                         "corrected_at": now_iso()}
                self._edit_case(study_uid, [("measurements", key, after)], "measurement_corrected")
        return self.corrected_measurement(study_uid, sop_instance_uid, frame, name)

    def set_note(self, study_uid: str, text: str) -> Case:
        with self._tx():
            case = self._ensure_case(study_uid)
            if case["note"] != text:
                self._edit_case(study_uid, [], "note", note=text)
        return self.case(study_uid)

    def sign_off(self, study_uid: str) -> Case:
        """The case is reviewed by the current reviewer, now."""
        with self._tx():
            case = self._ensure_case(study_uid)
            if case["status"] != CaseStatus.REVIEWED:
                at = now_iso()
                after = {**case, "status": CaseStatus.REVIEWED.value, "reviewer": self._reviewer,
                         "opened_at": case["opened_at"] or at, "signed_off_at": at, "signed_off_by": self._reviewer}
                self._apply("sign_off", study_uid, [("cases", {"study_uid": study_uid}, after)])
        return self.case(study_uid)

    def undo(self) -> AuditEntry | None:
        """Revert this reviewer's last undoable action not yet undone; the undo is itself logged.

        Refused (ReviewStoreError) when a row has changed since the action (e.g. by another medview): undo
        never overwrites a decision it did not make. Returns the new audit entry, or None if nothing to undo.
        """
        with self._tx() as conn:
            row = conn.execute(
                """SELECT * FROM audit WHERE undoable = 1 AND actor = ?
                   AND id NOT IN (SELECT undo_of FROM audit WHERE undo_of IS NOT NULL)
                   ORDER BY id DESC LIMIT 1""", (self._reviewer,)).fetchone()
            if row is None:
                return None
            changes = json.loads(row["changes"])
            patches = []
            for change in reversed(changes):
                if self._snapshot(change["table"], change["key"]) != change["after"]:
                    raise ReviewStoreError(f"cannot undo '{row['action']}': the case was changed since "
                                           "(by another medview or reviewer); nothing was undone")
                patches.append((change["table"], change["key"], change["before"]))
            new_id = self._apply(f"undo {row['action']}", row["study_uid"], patches, undoable=False,
                                 undo_of=row["id"])
        return next(e for e in self.audit(row["study_uid"]) if e.id == new_id)


def _finding(row: sqlite3.Row) -> Finding:
    return Finding(row["id"], row["study_uid"], row["series_uid"], row["sop_instance_uid"], row["frame"],
                   row["label"], row["score"], row["threshold"], bool(row["flagged"]), row["model_name"],
                   row["model_version"], row["model_checksum"],
                   None if row["verdict"] is None else Verdict(row["verdict"]), row["verdict_by"],
                   row["verdict_at"])


def _measurement(row: sqlite3.Row) -> CorrectedMeasurement:
    return CorrectedMeasurement(row["sop_instance_uid"], row["frame"], row["name"], row["value"],
                                json.loads(row["geometry"]), row["corrected_by"], row["corrected_at"])


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): still attribute decisions to someone
        return "unknown"
