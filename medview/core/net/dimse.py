"""DIMSE with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE against one server.

Connection problems become PacsError naming the server; a transfer that stops half-way (the PACS went away,
the user cancelled) returns what arrived, and the caller compares it with the listing to say what is missing.
Identifiers are never logged (pynetdicom would log them at debug level).
"""

from __future__ import annotations

import errno
import logging
import threading
from typing import TYPE_CHECKING, Callable

from medview.core.net.cache import InstanceKey, PacsCache
from medview.core.net.servers import LocalSettings, PacsError, Server, client_ssl_context

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
CONNECT_TIMEOUT_S = 10
DIMSE_TIMEOUT_S = 60
CANCEL_POLL_S = 0.1  # how soon a cancel aborts a transfer that waits on the PACS

# The transfer syntaxes medview reads: proposed for everything received, so the PACS need not transcode.
RECEIVE_SYNTAXES = [
    "1.2.840.10008.1.2.1",     # Explicit VR Little Endian
    "1.2.840.10008.1.2",       # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",     # Explicit VR Big Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",     # RLE Lossless
]


def _quiet_pynetdicom() -> None:
    from pynetdicom import _config

    _config.LOG_REQUEST_IDENTIFIERS = False   # patient names and IDs of queries stay out of every log
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # failures are reported in words by medview


def storage_sop_classes() -> list[str]:
    """The storage SOP classes medview takes in (images, SR, KOS, SEG, presentation states...): 120, so
    they fit one association beside the query/retrieve contexts (at most 128)."""
    from pynetdicom.presentation import StoragePresentationContexts

    return [str(cx.abstract_syntax) for cx in StoragePresentationContexts]


def make_ae(local: LocalSettings):
    from pynetdicom import AE

    _quiet_pynetdicom()
    ae = AE(ae_title=local.ae_title)
    ae.acse_timeout = CONNECT_TIMEOUT_S
    ae.connection_timeout = CONNECT_TIMEOUT_S
    ae.dimse_timeout = DIMSE_TIMEOUT_S
    ae.network_timeout = DIMSE_TIMEOUT_S
    ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
    return ae


def associate(server: Server, local: LocalSettings, contexts, *, ext_neg=None, evt_handlers=None):
    """An established association, or PacsError saying why not in words."""
    ae = make_ae(local)
    tls = (client_ssl_context(server), server.host) if server.tls else None
    try:
        assoc = ae.associate(server.host, server.port, contexts=contexts, ae_title=server.called_ae,
                             ext_neg=ext_neg, evt_handlers=evt_handlers, tls_args=tls)
    except (OSError, ValueError) as exc:
        raise PacsError(f"{server.label()}: cannot connect ({exc})") from None
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise PacsError(f"{server.label()}: the server refused the association (is {local.ae_title!r} "
                        f"known to it, and is {server.called_ae!r} its AE title?)")
    raise PacsError(f"{server.label()}: no answer (is the server running and reachable"
                    f"{', and does it speak TLS' if server.tls else ''}?)")


def echo(server: Server, local: LocalSettings) -> None:
    from pynetdicom import build_context
    from pynetdicom.sop_class import Verification

    assoc = associate(server, local, [build_context(Verification)])
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status or status.get("Status", -1) != STATUS_SUCCESS:
        raise PacsError(f"{server.label()}: C-ECHO failed ({_status_text(status)})")


def _find(server: Server, local: LocalSettings, identifier: Dataset) -> list[Dataset]:
    from pynetdicom import build_context
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FindModel

    assoc = associate(server, local, [build_context(FindModel)])
    found, failure = [], None
    try:
        for status, answer in assoc.send_c_find(identifier, FindModel):
            code = status.get("Status", -1) if status else -1
            if code in (0xFF00, 0xFF01) and answer is not None:
                found.append(answer)
            elif code != STATUS_SUCCESS:
                failure = _status_text(status)
    finally:
        if assoc.is_established:
            assoc.release()
    if failure:
        raise PacsError(f"{server.label()}: the query failed ({failure})")
    return found


def _identifier(level: str) -> Dataset:
    """An empty query/retrieve identifier at `level`. pydicom is imported here, not with the module: the app
    imports this module when it starts (its PACS panel), and pydicom's import is a third of a second."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    return ds


def find_studies(server: Server, local: LocalSettings, filters: dict[str, str]) -> list[Dataset]:
    """Study-level C-FIND; `filters` maps DICOM keywords (PatientID, StudyDate...) to matching values."""
    ds = _identifier("STUDY")
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyDescription",
                    "ModalitiesInStudy", "AccessionNumber", "NumberOfStudyRelatedInstances"):
        setattr(ds, keyword, filters.get(keyword, ""))
    return _find(server, local, ds)


def find_series(server: Server, local: LocalSettings, study_uid: str) -> list[Dataset]:
    """Series-level C-FIND: what one study holds."""
    ds = _identifier("SERIES")
    ds.StudyInstanceUID = study_uid
    for keyword in ("SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber",
                    "NumberOfSeriesRelatedInstances"):
        setattr(ds, keyword, "")
    return _find(server, local, ds)


def list_instances(server: Server, local: LocalSettings, study_uid: str) -> set[InstanceKey]:
    """Instance-level C-FIND: every instance of a study, to compare with what the cache holds."""
    ds = _identifier("IMAGE")
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = ""
    ds.SOPInstanceUID = ""
    return {InstanceKey(str(a.SeriesInstanceUID), str(a.SOPInstanceUID))
            for a in _find(server, local, ds) if a.get("SOPInstanceUID") and a.get("SeriesInstanceUID")}


def retrieve_identifiers(study_uid: str, wanted: set[InstanceKey], listing: set[InstanceKey]) -> list[Dataset]:
    """The fewest C-GET/C-MOVE identifiers that ask for `wanted` and nothing else: the study when all of it is
    wanted, else each series wanted whole, else the wanted instances of a series as a UID list."""
    def identifier(level: str, series: str = "", sops: list[str] | None = None) -> Dataset:
        ds = _identifier(level)
        ds.StudyInstanceUID = study_uid
        if series:
            ds.SeriesInstanceUID = series
        if sops:
            ds.SOPInstanceUID = sops
        return ds

    if wanted >= listing:
        return [identifier("STUDY")]
    out = []
    for series in sorted({k.series_uid for k in wanted}):
        in_series = {k for k in listing if k.series_uid == series}
        wanted_here = sorted(k.sop_uid for k in wanted if k.series_uid == series)
        if len(wanted_here) == len(in_series):
            out.append(identifier("SERIES", series))
        else:
            for start in range(0, len(wanted_here), 100):  # UID lists of a sane length
                out.append(identifier("IMAGE", series, wanted_here[start:start + 100]))
    return out


class StoreHandler:
    """Writes each received instance into the cache and answers the sender with the DIMSE status:
    success, 0xA700 when the disk is full or unwritable (the sender keeps it), 0xC000 for data that is
    not a storable instance. Used by C-GET (on the same association) and the listener (C-MOVE, pushes)."""

    def __init__(self, cache: PacsCache, on_stored: Callable[[str, bool], None] | None = None):
        self.cache = cache
        self.on_stored = on_stored  # (study_uid, newly written)
        self.failures = 0

    def __call__(self, event) -> int:
        try:
            ds = event.dataset
            study, series, sop = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
            if not (study and series and sop):
                raise ValueError("no study, series or SOP instance UID")
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:  # noqa: BLE001 - any undecodable data is the sender's problem, not ours
            log.warning("refused an instance that cannot be stored (%s)", type(exc).__name__)
            self.failures += 1
            return STATUS_CANNOT_UNDERSTAND
        try:
            new = self.cache.store_bytes(data, study, series, sop)
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            log.warning("could not store an instance (%s)", "disk full" if full else exc.strerror or exc)
            self.failures += 1
            return STATUS_OUT_OF_RESOURCES
        if self.on_stored is not None:
            self.on_stored(study, new)
        return STATUS_SUCCESS


def retrieve(server: Server, local: LocalSettings, cache: PacsCache, study_uid: str, wanted: set[InstanceKey],
             listing: set[InstanceKey], *, move: bool = False, progress: Progress | None = None,
             cancel: Cancel | None = None) -> str:
    """C-GET (or C-MOVE to medview's listener) of `wanted`; returns "" when the PACS finished, else why not.

    Nothing is undone on failure: what arrived stays, and the next call asks only for the rest.
    """
    from pynetdicom import build_context, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GetModel
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MoveModel

    total, done = len(wanted), [0]

    def stored(_study: str, _new: bool) -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total), total)

    handler = StoreHandler(cache, stored)
    if move:
        from medview.core.net.listener import running_listener

        with running_listener(local, cache, on_stored=stored):
            return _run_retrieve(server, local, study_uid, wanted, listing, cancel, handler, MoveModel,
                                 [build_context(MoveModel)], None, None)
    classes = storage_sop_classes()
    contexts = [build_context(GetModel)] + [build_context(uid, RECEIVE_SYNTAXES) for uid in classes]
    roles = [build_role(uid, scp_role=True) for uid in classes]
    return _run_retrieve(server, local, study_uid, wanted, listing, cancel, handler, GetModel, contexts, roles,
                         [(evt.EVT_C_STORE, handler)])


def abort_when_cancelled(assoc, cancel: Cancel | None) -> threading.Event:
    """Watches `cancel` while the association works: a PACS that stalls sends no next response for the
    transfer's loop to see the cancel by, so it is aborted from here and the loop woken. Set the event returned
    when the association is done with."""
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(CANCEL_POLL_S):
            if cancel():
                # not abort()'s default, which waits for the connection to close: a stalled PACS may hold it
                assoc.abort(block=False)
                # what pynetdicom queues when the peer aborts; again at each poll until the loop has ended, as
                # the association's own thread may take one off the queue first
                assoc.dimse.msg_queue.put((None, None))

    if cancel is not None:
        threading.Thread(target=watch, name="pacs-cancel", daemon=True).start()
    return finished


def _run_retrieve(server, local, study_uid, wanted, listing, cancel, handler, model, contexts, roles,
                  handlers) -> str:
    assoc = associate(server, local, contexts, ext_neg=roles, evt_handlers=handlers)
    is_move = handlers is None
    problem = ""
    cancelled = cancel if cancel is not None else (lambda: False)
    watching = abort_when_cancelled(assoc, cancel)
    try:
        for msg_id, identifier in enumerate(retrieve_identifiers(study_uid, wanted, listing), start=1):
            if is_move:
                responses = assoc.send_c_move(identifier, local.ae_title, model, msg_id=msg_id)
            else:
                responses = assoc.send_c_get(identifier, model, msg_id=msg_id)
            for status, _answer in responses:
                if cancelled():
                    assoc.abort(block=False)
                    return "cancelled"
                code = status.get("Status", -1) if status else -1
                if not status:
                    problem = "the connection was lost during the transfer"
                elif code not in (STATUS_SUCCESS, 0xFF00, 0xFF01) and not 0xB000 <= code <= 0xBFFF:
                    problem = f"the server answered {_status_text(status)}"
            if assoc.is_aborted or not assoc.is_established:
                return "cancelled" if cancelled() else "the connection was lost during the transfer"
    finally:
        watching.set()
        if assoc.is_established and not cancelled():  # aborted: a release would wait on the PACS
            assoc.release()
    if handler.failures:
        problem = problem or f"{handler.failures} instances could not be stored here"
    return problem


def send(server: Server, local: LocalSettings, files: list[tuple[str, str, str]], *,
         progress: Progress | None = None, cancel: Cancel | None = None) -> dict[str, str]:
    """C-STORE of files given as (path, SOP class UID, transfer syntax UID); returns {path: error} for the
    files that did not arrive. One association per 100 distinct presentation contexts."""
    from pynetdicom import build_context

    errors: dict[str, str] = {}
    by_context: dict[tuple[str, str], list[str]] = {}
    for path, sop_class, syntax in files:
        by_context.setdefault((sop_class, syntax), []).append(path)
    keys = sorted(by_context)
    done = 0
    for start in range(0, len(keys), 100):
        chunk = keys[start:start + 100]
        contexts = [build_context(sop_class, [syntax]) for sop_class, syntax in chunk]
        assoc = associate(server, local, contexts)
        try:
            accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
            for key in chunk:
                for path in by_context[key]:
                    if cancel is not None and cancel():
                        errors[path] = "cancelled"
                        continue
                    if assoc.is_aborted or not assoc.is_established:
                        errors[path] = "the connection was lost during the transfer"
                        continue
                    if key not in accepted:
                        errors[path] = f"{server.label()} does not accept this kind of object in this encoding"
                    else:
                        status = _store_one(assoc, path)
                        if status:
                            errors[path] = status
                    done += 1
                    if progress is not None:
                        progress(done, len(files))
        finally:
            if assoc.is_established:
                assoc.release()
    return errors


def _store_one(assoc, path: str) -> str:
    try:
        status = assoc.send_c_store(path)
    except (OSError, ValueError, AttributeError) as exc:
        return f"cannot be sent ({exc})"
    code = status.get("Status", -1) if status else -1
    if not status:
        return "no answer from the server (connection lost?)"
    if code == STATUS_SUCCESS or 0xB000 <= code <= 0xBFFF:
        return ""
    return f"refused by the server ({_status_text(status)})"


def _status_text(status: Dataset | None) -> str:
    if not status or "Status" not in status:
        return "no answer"
    code = int(status.Status)
    from pynetdicom.status import code_to_category

    comment = str(status.get("ErrorComment", "") or "")
    return f"status 0x{code:04X} {code_to_category(code).lower()}" + (f": {comment}" if comment else "")

