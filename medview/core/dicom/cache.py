"""The index cache: what a scan learnt about each file, keyed by path (+ zip member), size and mtime.

SQLite under MEDVIEW_HOME (`index.sqlite`), one row per file: instances as JSON of their InstanceInfo, errors
with their reason, non-DICOM files too, so that a re-scan of a large archive opens no file at all. A file
whose size or modification time changed is read again. The cache is an optimisation only: when it cannot be
opened or written (locked, corrupt, read-only home) scanning goes on without it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import zlib
from dataclasses import fields
from typing import Iterable, Sequence

from medview.core.dicom.model import InstanceInfo
from medview.core.dicom.source import SourceRef, printable

log = logging.getLogger(__name__)

# bump when what read_header decides changes (a new check, a field read differently)
READER_VERSION = 6  # 2: a header that yields no data elements, or identifies nothing, is an error; 3: byte keys;
# 4: zeros are no data set, frames beyond the fragments are an error, an object of unread elements is kept;
# 5: bytes that are not DICOM are kept as such, not as the error or skip of the scan that first read them;
# 6: a frame over MAX_FRAME_BYTES is an error
_FIELDS = [f.name for f in fields(InstanceInfo) if f.name != "ref"]
# rows are positional JSON of the fields above: any change to InstanceInfo changes the version by itself,
# and a cache of another version is dropped, never misread
SCHEMA_VERSION = zlib.crc32(f"{READER_VERSION}:{','.join(_FIELDS)}".encode()) & 0x7FFFFFFF
_TUPLE_FIELDS = {"image_position", "image_orientation", "pixel_spacing", "imager_pixel_spacing"}
_SEP = "\x00"  # between path and zip member in a key: cannot occur in either


def _key(ref: SourceRef) -> bytes:
    return _key_bytes(ref.path if ref.member is None else ref.path + _SEP + ref.member)


def _key_bytes(text: str) -> bytes:
    """Keys are bytes: a file name that is not UTF-8 (a lone surrogate in Python) is no valid SQLite text.

    surrogatepass keeps every str distinct and byte order follows code point order, so folder ranges hold.
    """
    return text.encode("utf-8", "surrogatepass")


def info_to_json(info: InstanceInfo) -> str:
    """InstanceInfo without its ref (the key holds it) as compact JSON."""
    return json.dumps([getattr(info, name) for name in _FIELDS], separators=(",", ":"), ensure_ascii=False)


def info_from_json(ref: SourceRef, text: str) -> InstanceInfo:
    values = json.loads(text)
    kwargs = dict(zip(_FIELDS, values))
    for name in _TUPLE_FIELDS:
        if kwargs.get(name) is not None:
            kwargs[name] = tuple(kwargs[name])
    return InstanceInfo(ref=ref, **kwargs)


class IndexCache:
    """One connection to the cache database; use `lookup` once per scan and `store` once after it."""

    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, timeout=5.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            with self.conn:
                self.conn.execute("DROP TABLE IF EXISTS files")
                self.conn.execute(
                    "CREATE TABLE files (key BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                    " kind TEXT NOT NULL, data TEXT) WITHOUT ROWID"
                )
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @classmethod
    def open_default(cls) -> "IndexCache | None":
        """The cache under MEDVIEW_HOME, or None (logged) when it cannot be used."""
        from medview.core.home import home_file

        path = home_file("index.sqlite")
        try:
            return cls(str(path))
        except sqlite3.DatabaseError as exc:
            # only a cache: a damaged one is rebuilt rather than left to slow every scan down
            log.warning("index cache %s damaged (%s); starting a new one", path, exc)
            try:
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(f"{path}{suffix}"):
                        os.remove(f"{path}{suffix}")
                return cls(str(path))
            except (OSError, sqlite3.Error) as exc2:
                log.warning("index cache %s unusable (%s); scanning without it", path, exc2)
                return None
        except sqlite3.Error as exc:
            log.warning("index cache %s unusable (%s); scanning without it", path, exc)
            return None

    def lookup(self, items: Sequence[tuple[SourceRef, int, int]]) -> dict[SourceRef, tuple[str, object]]:
        """Cached answers for (ref, size, mtime_ns) whose size and mtime still match; others are absent."""
        wanted = {_key(ref): (ref, size, mtime) for ref, size, mtime in items}
        found: dict[SourceRef, tuple[str, object]] = {}
        try:
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (key BLOB PRIMARY KEY) WITHOUT ROWID")
            self.conn.execute("DELETE FROM wanted")
            self.conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((k,) for k in wanted))
            rows = self.conn.execute(
                "SELECT f.key, f.size, f.mtime_ns, f.kind, f.data FROM files f JOIN wanted w ON f.key = w.key"
            ).fetchall()
        except sqlite3.Error as exc:
            log.warning("index cache cannot be read (%s); reading the files", exc)
            return {}
        for key, size, mtime, kind, data in rows:
            ref, want_size, want_mtime = wanted[key]
            if size != want_size or mtime != want_mtime:
                continue
            try:
                value = info_from_json(ref, data) if kind == "instance" else data
            except (ValueError, TypeError):
                continue  # a row this version cannot read: the file is simply read again
            found[ref] = (kind, value)
        return found

    def store(self, results: Iterable[tuple[object, str, object]]) -> None:
        """Remember freshly read files: (entry with .ref/.size/.mtime_ns, kind, InstanceInfo or reason)."""
        rows = []
        for entry, kind, value in results:
            data = info_to_json(value) if kind == "instance" else (None if value is None else printable(str(value)))
            rows.append((_key(entry.ref), entry.size, entry.mtime_ns, kind, data))  # type: ignore[attr-defined]
        if not rows:
            return
        try:
            with self.conn:
                self.conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            log.warning("index cache cannot be written (%s)", exc)

    def prune(self, folders: Sequence[str]) -> None:
        """Forget files below `folders` that the scan just made did not see (deleted or moved away).

        Call after `lookup` of a complete scan: the keys it asked for are the files that still exist.
        """
        try:
            with self.conn:
                for folder in folders:
                    low = folder.rstrip(os.sep) + os.sep
                    high = low[:-1] + chr(ord(os.sep) + 1)
                    self.conn.execute(
                        "DELETE FROM files WHERE key >= ? AND key < ? AND key NOT IN (SELECT key FROM wanted)",
                        (_key_bytes(low), _key_bytes(high)),
                    )
        except sqlite3.Error as exc:
            log.warning("index cache cannot be pruned (%s)", exc)

    def close(self) -> None:
        self.conn.close()
