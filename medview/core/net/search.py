"""The PACS panel's logic without Qt: the servers to offer, a query from what the reader typed, and where each
study stands in this station (not here, here, part here, on its way).

The panel types as a reader does: a date as 2024-03-10, 20240310, "today" or "yesterday"; a name without a
wildcard matches names that begin with it (C-FIND and QIDO-RS would otherwise match it exactly).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from medview.core.net.cache import PacsCache
from medview.core.net.servers import PacsError, read_settings
from medview.core.net.transfer import RetrieveResult, StudyQuery

_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_WORDS = {"today": 0, "yesterday": 1}
LOCAL = "local"


def server_names(settings: dict | None = None) -> list[str]:
    """The servers named in servers.toml, in the order written there."""
    settings = read_settings() if settings is None else settings
    return [str(name) for name in settings.get("servers", {})]


def dicom_date(text: str, what: str = "date", today: dt.date | None = None) -> str:
    """"2024-03-10", "20240310", "today", "yesterday" as a DICOM date ("" stays ""); PacsError in words."""
    text = text.strip().lower()
    if not text:
        return ""
    if text in _WORDS:
        return ((today or dt.date.today()) - dt.timedelta(days=_WORDS[text])).strftime("%Y%m%d")
    match = _DATE.match(text)
    try:
        if match is None:
            raise ValueError
        return dt.date(*(int(g) for g in match.groups())).strftime("%Y%m%d")
    except ValueError:
        raise PacsError(f"{what} {text!r} is not a date: write it as YYYY-MM-DD (or today, yesterday)") from None


def date_range(date_from: str, date_to: str, today: dt.date | None = None) -> str:
    """A DICOM date range from the two fields: "20240101-20240131", "20240101-" (from), "-20240131" (until),
    one date when both are the same, "" for any date."""
    start = dicom_date(date_from, "the date from", today)
    end = dicom_date(date_to, "the date to", today)
    if start and end and start > end:
        raise PacsError(f"the date from ({start[:4]}-{start[4:6]}-{start[6:]}) is after the date to "
                        f"({end[:4]}-{end[4:6]}-{end[6:]})")
    if start and start == end:
        return start
    return f"{start}-{end}" if start or end else ""


def name_pattern(text: str) -> str:
    """A patient name as typed, as a matching value: "ct" finds "Ct^Anna"; a "*" or "?" typed is kept as is.
    "Family, Given" is written the DICOM way, "Family^Given"."""
    text = text.strip()
    if not text:
        return ""
    if "," in text and "^" not in text:
        text = "^".join(part.strip() for part in text.split(",", 1))
    return text if any(c in text for c in "*?") else text + "*"


def build_query(patient_id: str = "", patient_name: str = "", date_from: str = "", date_to: str = "",
                modality: str = "", accession: str = "", today: dt.date | None = None) -> StudyQuery:
    """The study-level query of the panel's fields (PacsError naming the field that cannot be used)."""
    modality = modality.strip().upper()
    if modality and not re.fullmatch(r"[A-Z0-9]{1,16}", modality):
        raise PacsError(f"modality {modality!r} is not a DICOM modality (CR, DX, CT, MR…)")
    return StudyQuery(patient_id=patient_id.strip(), patient_name=name_pattern(patient_name),
                      study_date=date_range(date_from, date_to, today), modality=modality,
                      accession=accession.strip())


@dataclass
class Arrival:
    """One study that came in from a PACS during this session, and how far it got."""

    source: str              # the server's name, or "pushed by <AE>"
    done: int = 0
    total: int = 0
    running: bool = False
    missing: int = 0
    error: str = ""


@dataclass
class Arrivals:
    """Where the worklist's studies came from and how far each transfer got: the worklist's "From" cell and
    the panel's "Here" cell. A study not named here was opened from a local folder."""

    studies: dict[str, Arrival] = field(default_factory=dict)

    def retrieving(self, study_uid: str, server: str) -> None:
        self.studies[study_uid] = Arrival(server, running=True)

    def progress(self, study_uid: str, done: int, total: int) -> None:
        arrival = self.studies.get(study_uid)
        if arrival is not None:
            arrival.done, arrival.total = done, total

    def retrieved(self, study_uid: str, result: RetrieveResult | None, error: str = "") -> None:
        arrival = self.studies.get(study_uid)
        if arrival is None:
            return
        arrival.running = False
        if result is not None:
            arrival.done, arrival.total = result.expected - len(result.missing), result.expected
            arrival.missing, arrival.error = len(result.missing), result.error
        else:
            arrival.error = error

    def pushed(self, study_uid: str, calling_ae: str = "") -> None:
        """An instance (or a whole association) pushed to the listener; a study being retrieved stays so."""
        arrival = self.studies.get(study_uid)
        if arrival is not None and (arrival.running or not arrival.source.startswith("pushed")):
            return
        self.studies[study_uid] = Arrival(f"pushed by {calling_ae}" if calling_ae else "pushed")

    def add_cached(self, cache: PacsCache) -> list[str]:
        """The studies earlier sessions left in the cache, each with where it came from (the server it was
        retrieved from, or who pushed it) and what of it is missing; a study known this session stays as it
        is. Returns the study UIDs added."""
        added = []
        for name in cache.studies():
            state = cache.read_state(name)
            uid = str(state.get("study_uid") or name)
            if uid in self.studies:
                continue
            expected = len(state.get("expected", ()))
            missing = len(cache.missing(name)) if expected else 0
            self.studies[uid] = Arrival(cached_source(state), done=expected - missing, total=expected,
                                        missing=missing)
            added.append(uid)
        return added

    def is_remote(self, study_uid: str) -> bool:
        return study_uid in self.studies

    def any_remote(self, study_uids) -> bool:
        return any(uid in self.studies for uid in study_uids)

    def source_text(self, study_uid: str) -> str:
        """The worklist's From cell: "local", "orthanc", "orthanc 12/40", "orthanc: 3 missing", "pushed by X"."""
        arrival = self.studies.get(study_uid)
        if arrival is None:
            return LOCAL
        if arrival.running:
            return f"{arrival.source} {arrival.done}/{arrival.total}" if arrival.total else f"{arrival.source} …"
        if arrival.missing:
            return f"{arrival.source}: {arrival.missing} missing"
        return arrival.source

    def source_tip(self, study_uid: str) -> str:
        arrival = self.studies.get(study_uid)
        if arrival is None:
            return "Opened from a local folder"
        if arrival.source.startswith("pushed"):
            return f"Sent to this station ({arrival.source}); kept in the PACS cache"
        if arrival.running:
            return f"Being retrieved from {arrival.source}: {arrival.done} of {arrival.total or '?'} instances here"
        if arrival.missing:
            return (f"Retrieved in part from {arrival.source}: {arrival.missing} of {arrival.total} instances "
                    f"missing ({arrival.error or 'stopped'}); retrieve it again to complete it")
        return f"Retrieved from {arrival.source}; kept in the PACS cache"


def cached_source(state: dict) -> str:
    """Where a cached study came from, by its state in the cache: the server's settings name (or the label
    of a server given as a URL), else who pushed it; a study without a listing came by a push."""
    if state.get("server") or state.get("source"):
        return str(state.get("server") or state.get("source"))
    return f"pushed by {state['pushed_by']}" if state.get("pushed_by") else "pushed"


def here_text(study_uid: str, instances: int | None, cache: PacsCache, arrivals: Arrivals) -> str:
    """The panel's Here cell: what this station holds of a study the PACS listed."""
    arrival = arrivals.studies.get(study_uid)
    if arrival is not None and arrival.running:
        return f"retrieving {arrival.done}/{arrival.total}" if arrival.total else "retrieving…"
    if arrival is not None and arrival.error and arrival.error != "cancelled" and not arrival.missing:
        return f"failed: {arrival.error}"
    present = len(cache.present(study_uid))
    if not present:
        return ""
    missing = cache.missing(study_uid)
    expected = instances if instances is not None else present + len(missing)
    if missing or present < expected:
        return f"part here ({max(len(missing), expected - present)} missing)"
    return "here"
