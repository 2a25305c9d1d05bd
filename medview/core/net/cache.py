"""The PACS cache: retrieved and received instances under `MEDVIEW_HOME/pacs/<study>/<series>/<sop>.dcm`.

Each file is written under a temporary name in `pacs-incoming/` (same disk) and renamed into place when
complete, so a reader (the worklist, `medview index`) never sees half a file. The file name is the SOP
Instance UID, so an instance is stored once whichever way it came. What a study should hold (the PACS's
listing) is kept beside it in `pacs-state/<study>.json`, outside the scanned tree, so a study that arrived in
part can say which instances are missing and the next `get` fetches only those.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from medview.core.home import home, home_dir

CACHE_FOLDER = "pacs"
_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
_HASHED = re.compile(r"^x[0-9a-f]{40}$")


@dataclass(frozen=True)
class InstanceKey:
    """Where one instance belongs: its series and its SOP Instance UID."""

    series_uid: str
    sop_uid: str


def safe_name(uid: str) -> str:
    """A UID as a file name; anything that is not a plain UID (a hostile `../x`) becomes a hash."""
    uid = uid.strip().rstrip("\x00")
    if (_UID.match(uid) and ".." not in uid) or _HASHED.match(uid):
        return uid  # a hashed name given back (e.g. a folder name) stays what it is
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def cache_in_use() -> bool:
    """Whether this MEDVIEW_HOME holds a PACS cache, found without making one (a station without a PACS
    gets no folders)."""
    return (home() / CACHE_FOLDER).is_dir()


class PacsCache:
    """Files of retrieved studies, their expected listings and when each was last opened."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else home_dir(CACHE_FOLDER)
        base = self.root.parent
        self.incoming = base / "pacs-incoming"
        self.state_dir = base / "pacs-state"
        for folder in (self.root, self.incoming, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # -- files ---------------------------------------------------------------------------------------------
    def study_dir(self, study_uid: str) -> Path:
        return self.root / safe_name(study_uid)

    def instance_path(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        return self.study_dir(study_uid) / safe_name(series_uid) / f"{safe_name(sop_uid)}.dcm"

    def has(self, study_uid: str, series_uid: str, sop_uid: str) -> bool:
        return self.instance_path(study_uid, series_uid, sop_uid).is_file()

    def store_bytes(self, data: bytes, study_uid: str, series_uid: str, sop_uid: str) -> bool:
        """Writes one Part-10 file; False when the instance was already here (nothing written).

        OSError (ENOSPC for a full disk) goes to the caller, which answers the sender accordingly.
        """
        target = self.instance_path(study_uid, series_uid, sop_uid)
        if target.is_file():
            return False
        fd, tmp = tempfile.mkstemp(dir=self.incoming, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fp:
                fp.write(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except BaseException:
            _remove(Path(tmp))
            raise
        return True

    def store_dataset(self, ds) -> bool:
        """A pydicom Dataset (e.g. from WADO-RS) written as a Part-10 file."""
        import pydicom

        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        return self.store_bytes(buffer.getvalue(), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                str(ds.SOPInstanceUID))

    def present(self, study_uid: str) -> set[InstanceKey]:
        """The instances of a study on disk, by the folder and file names they were stored under."""
        found = set()
        folder = self.study_dir(study_uid)
        if not folder.is_dir():
            return found
        for series in folder.iterdir():
            if series.is_dir():
                found.update(InstanceKey(series.name, f.name[:-4]) for f in series.iterdir()
                             if f.name.endswith(".dcm"))
        return found

    def studies(self) -> list[str]:
        """The study folders' names (each a study UID, or its hash when the UID is not a plain one)."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def remove_study(self, study_uid: str) -> None:
        shutil.rmtree(self.study_dir(study_uid), ignore_errors=True)
        _remove(self._state_path(study_uid))

    # -- what a study should hold ----------------------------------------------------------------------------
    def _state_path(self, study_uid: str) -> Path:
        return self.state_dir / f"{safe_name(study_uid)}.json"

    def read_state(self, study_uid: str) -> dict:
        try:
            return json.loads(self._state_path(study_uid).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _write_state(self, study_uid: str, state: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.incoming, suffix=".json.part")
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            json.dump(state, fp)
        os.replace(tmp, self._state_path(study_uid))

    def record_expected(self, study_uid: str, expected: set[InstanceKey], source: str,
                        server_name: str = "") -> list[InstanceKey]:
        """Keeps the PACS's listing of a study and which server it came from (its settings name, for the
        worklist of a later session); returns the instances of it not on disk (sorted)."""
        state = self.read_state(study_uid)
        state.update(
            study_uid=study_uid, source=source, listed_at=time.time(),
            expected=sorted([k.series_uid, k.sop_uid] for k in expected),
        )
        if server_name:
            state["server"] = server_name
        state.setdefault("arrived_at", time.time())
        self._write_state(study_uid, state)
        return self.missing(study_uid)

    def missing(self, study_uid: str) -> list[InstanceKey]:
        """Instances the last listing named that are not on disk: empty for a complete study."""
        expected = {InstanceKey(safe_name(s), safe_name(i)) for s, i in self.read_state(study_uid).get("expected", ())}
        return sorted(expected - self.present(study_uid), key=lambda k: (k.series_uid, k.sop_uid))

    def note_arrival(self, study_uid: str, calling_ae: str = "") -> None:
        """A study that came in by a push (the listener) gets an arrival time for the size bound, and who
        pushed it, for the worklist of a later session."""
        if not self._state_path(study_uid).exists():
            state = {"study_uid": study_uid, "arrived_at": time.time()}
            if calling_ae:
                state["pushed_by"] = calling_ae
            self._write_state(study_uid, state)

    def mark_opened(self, study_uid: str) -> None:
        """Called when the user opens a cached study: it leaves the cache after the unopened ones."""
        state = self.read_state(study_uid)
        state["opened_at"] = time.time()
        state.setdefault("arrived_at", time.time())
        self._write_state(study_uid, state)

    # -- size bound ------------------------------------------------------------------------------------------
    def size_bytes(self, study_uid: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.study_dir(study_uid)):
            for name in files:
                try:
                    total += os.stat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return total

    def enforce_limit(self, max_bytes: int, keep: set[str] = frozenset()) -> list[str]:
        """Removes whole studies until the cache fits `max_bytes`: never-opened ones first, oldest arrival
        first, then opened ones by oldest opening. Studies in `keep` (just retrieved) stay. Returns the
        removed study folder names."""
        sizes = {name: self.size_bytes(name) for name in self.studies()}
        total = sum(sizes.values())
        if total <= max_bytes:
            return []
        keep_names = {safe_name(uid) for uid in keep}

        def order(name: str):
            state = self.read_state(name)
            arrived = state.get("arrived_at") or _mtime(self.study_dir(name))
            opened = state.get("opened_at")
            return (opened is not None, opened or arrived)

        removed = []
        for name in sorted((n for n in sizes if n not in keep_names), key=order):
            if total <= max_bytes:
                break
            self.remove_study(name)
            total -= sizes[name]
            removed.append(name)
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
