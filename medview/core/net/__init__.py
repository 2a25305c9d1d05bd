"""PACS networking: DIMSE (pynetdicom) and DICOMweb (dicomweb-client), the storage listener and the cache.

No Qt here: a panel calls these plain functions from a worker thread, passing `progress(done, total)` and a
`cancel()` callable. Start from `resolve_server`, then `echo`, `find_studies`, `find_series`,
`retrieve_study`, `send_paths`; `StorageListener` receives pushes; `PacsCache` says what is on disk.
"""

from medview.core.net.cache import InstanceKey, PacsCache
from medview.core.net.listener import StorageListener, StudyArrival
from medview.core.net.servers import LocalSettings, PacsError, Server, local_settings, resolve_server
from medview.core.net.transfer import (
    RetrieveResult,
    SendResult,
    SeriesMatch,
    StudyMatch,
    StudyQuery,
    echo,
    find_series,
    find_studies,
    retrieve_study,
    send_paths,
)

__all__ = [
    "InstanceKey", "LocalSettings", "PacsCache", "PacsError", "RetrieveResult", "SendResult", "SeriesMatch",
    "Server", "StorageListener", "StudyArrival", "StudyMatch", "StudyQuery", "echo", "find_series",
    "find_studies", "local_settings", "resolve_server", "retrieve_study", "send_paths",
]
