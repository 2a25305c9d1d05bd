"""What a user does with a PACS, whichever protocol the server speaks: echo, find, retrieve, send.

Plain functions for the CLI and a worker thread alike: each takes a Server (see servers.resolve_server),
reports `progress(done, total)` and stops soon after `cancel()` turns true. Problems reaching a server raise
PacsError; a transfer that stops half-way returns a result that says what is missing, and calling
`retrieve_study` again fetches only that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from medview.core.net import dimse, web
from medview.core.net.cache import InstanceKey, PacsCache
from medview.core.net.servers import LocalSettings, PacsError, Server, local_settings

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


@dataclass
class StudyQuery:
    """Study-level matching keys; empty means any. `study_date` is a DICOM date or range (20240101-20240131)."""

    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    modality: str = ""
    accession: str = ""
    study_uid: str = ""

    def filters(self) -> dict[str, str]:
        return {"PatientID": self.patient_id, "PatientName": self.patient_name, "StudyDate": self.study_date,
                "ModalitiesInStudy": self.modality, "AccessionNumber": self.accession,
                "StudyInstanceUID": self.study_uid}


@dataclass
class StudyMatch:
    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    modalities: list[str]
    description: str
    instances: int | None

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SeriesMatch:
    series_uid: str
    modality: str
    description: str
    number: int | None
    instances: int | None


@dataclass
class RetrieveResult:
    """Where a study is and whether all of it came: `missing` lists what the PACS has and this cache not."""

    study_uid: str
    path: Path
    expected: int
    fetched: int
    already_here: int
    missing: list[InstanceKey] = field(default_factory=list)
    error: str = ""

    @property
    def complete(self) -> bool:
        return not self.missing and not self.error

    def as_json(self) -> dict:
        return {"study_uid": self.study_uid, "path": str(self.path), "status": "ok" if self.complete else "partial",
                "instances": self.expected, "fetched": self.fetched, "already_here": self.already_here,
                "missing": [k.sop_uid for k in self.missing], **({"error": self.error} if self.error else {})}


def echo(server: Server, local: LocalSettings | None = None) -> None:
    """Returns when the server answers (C-ECHO, or a QIDO-RS probe); PacsError otherwise."""
    if server.kind == "dimse":
        dimse.echo(server, local or local_settings())
    else:
        web.echo(server)


def find_studies(server: Server, query: StudyQuery, local: LocalSettings | None = None) -> list[StudyMatch]:
    if server.kind == "dimse":
        return [_match_from_dataset(ds) for ds in dimse.find_studies(server, local or local_settings(),
                                                                      query.filters())]
    return [_match_from_json(item) for item in web.find_studies(server, query.filters())]


def find_series(server: Server, study_uid: str, local: LocalSettings | None = None) -> list[SeriesMatch]:
    """What one study holds, series by series."""
    if server.kind == "dimse":
        return [SeriesMatch(str(ds.get("SeriesInstanceUID", "")), str(ds.get("Modality", "") or ""),
                            str(ds.get("SeriesDescription", "") or ""), _int(ds.get("SeriesNumber")),
                            _int(ds.get("NumberOfSeriesRelatedInstances")))
                for ds in dimse.find_series(server, local or local_settings(), study_uid)]
    return [SeriesMatch(web.json_value(j, "0020000E"), web.json_value(j, "00080060"), web.json_value(j, "0008103E"),
                        _int(web.json_value(j, "00200011")), _int(web.json_value(j, "00201209")))
            for j in web.find_series(server, study_uid)]


def list_instances(server: Server, study_uid: str, local: LocalSettings | None = None) -> set[InstanceKey]:
    """Every instance the server holds of a study (instance-level C-FIND or QIDO-RS)."""
    if server.kind == "dimse":
        return dimse.list_instances(server, local or local_settings(), study_uid)
    return web.list_instances(server, study_uid)


def retrieve_study(server: Server, study_uid: str, *, local: LocalSettings | None = None,
                   cache: PacsCache | None = None, progress: Progress | None = None,
                   cancel: Cancel | None = None) -> RetrieveResult:
    """Brings a study into the cache, fetching only the instances the cache lacks (none when complete).

    The PACS's instance listing is kept with the study, so one that arrived in part says what is missing
    even after the PACS went away. Afterwards the cache is trimmed to its bound, this study kept.
    """
    local = local or local_settings()
    cache = cache or PacsCache()
    listing = list_instances(server, study_uid, local)
    if not listing:
        raise PacsError(f"{server.label()}: has no study {study_uid}")
    wanted = set(cache.record_expected(study_uid, listing, server.label(), server.name))
    error = ""
    if wanted:
        if server.kind == "dimse":
            error = dimse.retrieve(server, local, cache, study_uid, wanted, listing, move=server.retrieve == "move",
                                   progress=progress, cancel=cancel)
        else:
            error = web.retrieve(server, cache, study_uid, wanted, listing, progress=progress, cancel=cancel)
    missing = cache.missing(study_uid)
    if missing and not error:
        error = "the server did not send all instances"
    cache.enforce_limit(local.cache_max_bytes, keep={study_uid})
    return RetrieveResult(study_uid, cache.study_dir(study_uid), len(listing), len(wanted) - len(missing),
                          len(listing) - len(wanted), missing, error)


@dataclass
class SendResult:
    path: str
    error: str = ""


def dicom_files(paths: Sequence[str]) -> tuple[list[tuple[str, str, str]], list[SendResult]]:
    """The DICOM files among `paths` (folders walked) as (path, SOP class, transfer syntax), and a failure
    for each named file that cannot be sent. Files in folders that are not DICOM are passed over."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    found, failed = [], []

    def consider(path: str, named: bool) -> None:
        try:
            meta = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
            sop_class = str(meta.file_meta.MediaStorageSOPClassUID or meta.SOPClassUID)
            syntax = str(meta.file_meta.TransferSyntaxUID)
        except (InvalidDicomError, AttributeError, KeyError):
            if named:
                failed.append(SendResult(path, "not a DICOM file"))
            return
        except OSError as exc:
            failed.append(SendResult(path, f"cannot be read ({exc.strerror or exc})"))
            return
        found.append((path, sop_class, syntax))

    for given in paths:
        if os.path.isdir(given):
            for dirpath, dirnames, filenames in os.walk(given):
                dirnames.sort()
                for name in sorted(filenames):
                    consider(os.path.join(dirpath, name), False)
        elif os.path.exists(given):
            consider(given, True)
        else:
            failed.append(SendResult(given, "no such file or folder"))
    return found, failed


def send_paths(server: Server, paths: Sequence[str], *, local: LocalSettings | None = None,
               progress: Progress | None = None, cancel: Cancel | None = None) -> list[SendResult]:
    """Sends DICOM files (C-STORE or STOW-RS); one result per file, `error` empty when it arrived."""
    files, failed = dicom_files(paths)
    if not files:
        return failed
    if server.kind == "dimse":
        errors = dimse.send(server, local or local_settings(), files, progress=progress, cancel=cancel)
    else:
        errors = web.send(server, [f[0] for f in files], progress=progress, cancel=cancel)
    return failed + [SendResult(path, errors.get(path, "")) for path, _, _ in files]


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _match_from_dataset(ds) -> StudyMatch:
    modalities = ds.get("ModalitiesInStudy", "")
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split("\\") if m]
    return StudyMatch(str(ds.get("StudyInstanceUID", "")), str(ds.get("PatientID", "") or ""),
                      str(ds.get("PatientName", "") or ""), str(ds.get("StudyDate", "") or ""),
                      [str(m) for m in modalities], str(ds.get("StudyDescription", "") or ""),
                      _int(ds.get("NumberOfStudyRelatedInstances")))


def _match_from_json(item: dict) -> StudyMatch:
    return StudyMatch(web.json_value(item, "0020000D"), web.json_value(item, "00100020"),
                      web.json_value(item, "00100010"), web.json_value(item, "00080020"),
                      web.json_values(item, "00080061"), web.json_value(item, "00081030"),
                      _int(web.json_value(item, "00201208")))
