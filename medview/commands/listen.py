"""`medview listen [--ae AE] [--port P]`: receive studies pushed by a PACS or modality (SPEC sections 1, 8).

Each arriving study goes into the PACS cache under MEDVIEW_HOME and is indexed (so the worklist finds it at
once); one line per study on stdout when its association ends. Runs until Ctrl+C or SIGTERM (exit 0).
"""

from __future__ import annotations

import dataclasses
import queue
import signal
import sys


def run(args) -> int:
    from medview.core.net import PacsCache, StorageListener, local_settings
    from medview.core.net.servers import check_ae_title

    local = local_settings()
    if args.ae:
        local = dataclasses.replace(local, ae_title=check_ae_title(args.ae))
    if args.port is not None:
        local = dataclasses.replace(local, listen_port=args.port)
    cache = PacsCache()
    arrivals: queue.Queue = queue.Queue()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with StorageListener(local, cache, on_study=arrivals.put) as listener:
        print(f"medview listen: {local.ae_title} on {local.listen_host}:{listener.port} "
              f"(Ctrl+C stops)", file=sys.stderr, flush=True)
        try:
            while not stopping:
                try:
                    arrival = arrivals.get(timeout=0.3)
                except queue.Empty:
                    continue
                _index(arrival.path)
                cache.enforce_limit(local.cache_max_bytes, keep={arrival.study_uid})
                again = f", {arrival.already_here} already here" if arrival.already_here else ""
                print(f"{arrival.study_uid}: {arrival.received} instances from {arrival.calling_ae}{again} "
                      f"in {arrival.path}", flush=True)
        except KeyboardInterrupt:
            pass
    return 0


def _index(path) -> None:
    """Fills the index cache, so the worklist and `medview index` read the study without parsing it again."""
    from medview.core.dicom.scan import scan

    scan([str(path)])
