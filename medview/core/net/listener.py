"""medview's storage listener (C-STORE SCP): receives what a PACS or modality pushes, and C-MOVE results.

Binds to 127.0.0.1 unless `listen_host` is set, accepts only the configured calling AE titles when there are
any, writes each instance into the PACS cache and answers with the DIMSE status (see dimse.StoreHandler);
a refused instance never stops the listener. When an association ends, `on_study` hears once per study it
brought: the unit a user thinks in.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from medview.core.net.cache import PacsCache
from medview.core.net.dimse import RECEIVE_SYNTAXES, StoreHandler, make_ae, storage_sop_classes
from medview.core.net.servers import LocalSettings, PacsError, server_ssl_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyArrival:
    """What one association brought of one study."""

    study_uid: str
    calling_ae: str
    received: int      # newly written
    already_here: int  # sent again, not written twice
    path: Path


class StorageListener:
    """Start with `start()` (or `with`); `stop()` closes it. Handlers run on pynetdicom's threads."""

    def __init__(self, local: LocalSettings, cache: PacsCache | None = None, *,
                 on_study: Callable[[StudyArrival], None] | None = None,
                 on_stored: Callable[[str, bool], None] | None = None):
        self.local = local
        self.cache = cache or PacsCache()
        self.on_study = on_study
        self.on_stored = on_stored
        self._server = None
        self._lock = threading.Lock()
        self._per_assoc: dict[int, dict[str, list[int]]] = {}

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self.local.listen_port

    def start(self) -> "StorageListener":
        from pynetdicom import evt
        from pynetdicom.sop_class import Verification

        ae = make_ae(self.local)
        for uid in storage_sop_classes():
            ae.add_supported_context(uid, RECEIVE_SYNTAXES)
        ae.add_supported_context(Verification)
        if self.local.allowed_callers:
            ae.require_calling_aet = list(self.local.allowed_callers)
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_RELEASED, self._ended),
                    (evt.EVT_ABORTED, self._ended), (evt.EVT_CONN_CLOSE, self._ended)]
        address = (self.local.listen_host, self.local.listen_port)
        try:
            self._server = ae.start_server(address, block=False, evt_handlers=handlers,
                                           ssl_context=server_ssl_context(self.local))
        except OSError as exc:
            raise PacsError(f"cannot listen on {address[0]}:{address[1]} ({exc.strerror or exc})") from None
        log.info("listening as %s on %s:%d", self.local.ae_title, address[0], self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> "StorageListener":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _store(self, event) -> int:
        def stored(study: str, new: bool) -> None:
            with self._lock:
                counts = self._per_assoc.setdefault(id(event.assoc), {}).setdefault(study, [0, 0])
                counts[0 if new else 1] += 1
            if self.on_stored is not None:
                self.on_stored(study, new)

        return StoreHandler(self.cache, stored)(event)

    def _ended(self, event) -> None:
        with self._lock:
            studies = self._per_assoc.pop(id(event.assoc), {})
        calling = str(event.assoc.requestor.ae_title).strip()
        for study, (new, again) in studies.items():
            self.cache.note_arrival(study, calling)
            if self.on_study is not None:
                self.on_study(StudyArrival(study, calling, new, again, self.cache.study_dir(study)))


@contextlib.contextmanager
def running_listener(local: LocalSettings, cache: PacsCache, on_stored=None) -> Iterator[None]:
    """A listener for the length of a C-MOVE; when the port is taken, a `medview listen` already runs there
    and receives into the same cache (with the same MEDVIEW_HOME), so the move goes on."""
    listener = StorageListener(local, cache, on_stored=on_stored)
    try:
        listener.start()
    except PacsError as exc:
        if "in use" not in str(exc) and errno.errorcode.get(errno.EADDRINUSE, "") not in str(exc):
            raise
        log.warning("port %d is taken; assuming medview's own listener receives the move", local.listen_port)
        yield
        return
    try:
        yield
    finally:
        listener.stop()
