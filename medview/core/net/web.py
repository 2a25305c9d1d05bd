"""DICOMweb with dicomweb-client: QIDO-RS (find, list), WADO-RS (retrieve), STOW-RS (send).

HTTPS verifies the certificate (against the server's ca_file, else the system's CAs); basic or bearer
credentials come from where servers.toml points. Query URLs carry patient data, so dicomweb-client's and
urllib3's loggers are kept above debug.
"""

from __future__ import annotations

import logging
from typing import Callable

from medview.core.net.cache import InstanceKey, PacsCache
from medview.core.net.servers import PacsError, Server, read_secret

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
TIMEOUT_S = 30
STOW_BATCH = 20


def _client(server: Server):
    import requests
    from dicomweb_client import DICOMwebClient

    for name in ("dicomweb_client", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    class PinnedSession(requests.Session):
        """Keeps the server's own CA file: requests otherwise lets REQUESTS_CA_BUNDLE override it."""

        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if server.ca_file:
                settings["verify"] = server.ca_file
            return settings

    session = PinnedSession()
    session.verify = server.ca_file or True
    if server.cert_file:
        session.cert = (server.cert_file, server.key_file) if server.key_file else server.cert_file
    headers = {}
    if server.username:
        session.auth = (server.username, read_secret(server, "password"))
    else:
        token = read_secret(server, "token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
    client = DICOMwebClient(server.url, session=session, headers=headers, timeout=TIMEOUT_S)
    client.set_http_retry_params(retry=False)
    return client


def _failure(server: Server, exc: Exception) -> PacsError:
    """An HTTP problem in words; never the URL (it may hold patient data) nor credentials."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return PacsError(f"{server.label()}: the server's certificate cannot be verified")
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in (401, 403):
            return PacsError(f"{server.label()}: access refused (HTTP {code}: check the user name and password "
                             "or token in servers.toml)")
        return PacsError(f"{server.label()}: the server answered HTTP {code}")
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return PacsError(f"{server.label()}: no answer (is the server running and reachable?)")
    return PacsError(f"{server.label()}: {type(exc).__name__}")


def _call(server: Server, fn, *args, **kwargs):
    import requests

    try:
        return fn(*args, **kwargs)
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise _failure(server, exc) from None


def _search_all(server: Server, search, **kwargs) -> list[dict]:
    """Every page of a QIDO-RS answer. Pages until one brings nothing new: some servers ignore `offset` for
    some filters (Orthanc with ModalitiesInStudy) and would repeat the first page for ever."""
    import json

    found, seen, offset = [], set(), 0
    while True:
        page = _call(server, search, offset=offset, **kwargs) if offset else _call(server, search, **kwargs)
        fresh = [item for item in page if json.dumps(item, sort_keys=True) not in seen]
        if not fresh:
            return found
        seen.update(json.dumps(item, sort_keys=True) for item in fresh)
        found.extend(fresh)
        offset += len(page)


def echo(server: Server) -> None:
    client = _client(server)
    _call(server, client.search_for_studies, limit=1)


def find_studies(server: Server, filters: dict[str, str]) -> list[dict]:
    """Study-level QIDO-RS; `filters` maps DICOM keywords to matching values. Answers in DICOM JSON."""
    client = _client(server)
    fields = ["StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyDescription",
              "ModalitiesInStudy", "AccessionNumber", "NumberOfStudyRelatedInstances"]
    return _search_all(server, client.search_for_studies,
                       search_filters={k: v for k, v in filters.items() if v}, fields=fields)


def find_series(server: Server, study_uid: str) -> list[dict]:
    client = _client(server)
    return _search_all(server, client.search_for_series, study_instance_uid=study_uid,
                       fields=["SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances"])


def list_instances(server: Server, study_uid: str) -> set[InstanceKey]:
    client = _client(server)
    answers = _search_all(server, client.search_for_instances, study_instance_uid=study_uid)
    keys = set()
    for answer in answers:
        series, sop = json_value(answer, "0020000E"), json_value(answer, "00080018")
        if series and sop:
            keys.add(InstanceKey(series, sop))
    return keys


def retrieve(server: Server, cache: PacsCache, study_uid: str, wanted: set[InstanceKey],
             listing: set[InstanceKey], *, progress: Progress | None = None, cancel: Cancel | None = None) -> str:
    """WADO-RS of `wanted` (the whole study streamed when all of it is wanted, else instance by instance);
    returns "" when all came, else why not. What arrived stays."""
    import requests

    client = _client(server)
    total, done = len(wanted), 0
    try:
        if wanted >= listing:
            datasets = client.iter_study(study_uid)
        else:
            datasets = (client.retrieve_instance(study_uid, k.series_uid, k.sop_uid)
                        for k in sorted(wanted, key=lambda k: (k.series_uid, k.sop_uid)))
        for ds in datasets:
            if cancel is not None and cancel():
                return "cancelled"
            try:
                cache.store_dataset(ds)
            except OSError as exc:
                return f"cannot be stored here ({exc.strerror or exc})"
            except (AttributeError, ValueError, TypeError):
                continue  # an instance without its UIDs: cannot be placed; the listing shows it missing
            done += 1
            if progress is not None:
                progress(min(done, total), total)
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.Timeout):
        return "the connection was lost during the transfer"
    except (requests.exceptions.RequestException, ValueError) as exc:
        return str(_failure(server, exc)).split(": ", 1)[-1]
    if done < total:  # the multipart stream just ended: the server went away (or sent less than it listed)
        return "the transfer stopped early: the connection was lost or the server sent less than it listed"
    return ""


def send(server: Server, paths: list[str], *, progress: Progress | None = None,
         cancel: Cancel | None = None) -> dict[str, str]:
    """STOW-RS in batches; returns {path: error} for the files that did not arrive."""
    import pydicom
    import requests

    client = _client(server)
    errors: dict[str, str] = {}
    done = 0
    for start in range(0, len(paths), STOW_BATCH):
        batch = paths[start:start + STOW_BATCH]
        if cancel is not None and cancel():
            errors.update({p: "cancelled" for p in batch})
            continue
        datasets, sent = [], []
        for path in batch:
            try:
                datasets.append(pydicom.dcmread(path))
                sent.append(path)
            except Exception as exc:  # noqa: BLE001 - one unreadable file is reported, the rest go on
                errors[path] = f"cannot be read ({type(exc).__name__})"
        if datasets:
            try:
                answer = client.store_instances(datasets)
                for path, problem in zip(sent, _stow_failures(answer, datasets)):
                    if problem:
                        errors[path] = problem
            except (requests.exceptions.RequestException, ValueError) as exc:
                reason = str(_failure(server, exc)).split(": ", 1)[-1]
                errors.update({p: reason for p in sent})
        done += len(batch)
        if progress is not None:
            progress(done, len(paths))
    return errors


def _stow_failures(answer, datasets) -> list[str]:
    """Per dataset, "" when stored, else the reason, from the STOW-RS response's Failed SOP Sequence."""
    failed = {}
    for item in (answer or {}).get("00081198", {}).get("Value", []) if answer else []:
        uid = json_value(item, "00081155")
        failed[uid] = f"refused by the server (reason {json_value(item, '00081197') or 'not given'})"
    return [failed.get(str(ds.SOPInstanceUID), "") for ds in datasets]


def json_value(item: dict, tag: str) -> str:
    """The first value of a tag in DICOM JSON as text (a person name as its alphabetic form)."""
    values = item.get(tag, {}).get("Value") or []
    if not values:
        return ""
    value = values[0]
    if isinstance(value, dict):
        return str(value.get("Alphabetic", ""))
    return str(value)


def json_values(item: dict, tag: str) -> list[str]:
    return [str(v) for v in item.get(tag, {}).get("Value") or []]
