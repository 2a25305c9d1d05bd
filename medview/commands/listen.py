"""`medview listen [--ae AE] [--port P] [--model M] [--device D] [--no-ai]`: receive studies pushed by a PACS or
modality, index and score them (SPEC sections 1, 8).

Each arriving study goes into the PACS cache under MEDVIEW_HOME and is indexed (so the worklist finds it at
once): one line per study on stdout when its association ends ("UID: 3 instances from AE in PATH"). It is then
scored in a process of its own (`_listen_scoring`: this one never imports torch) into the results cache, which
the app reads, and a second line says what the model found ("UID: AI flagged: cardiomegaly 0.98 (CTR 0.62)").
Runs until Ctrl+C or SIGTERM (exit 0).
"""

from __future__ import annotations

import dataclasses
import queue
import signal
import sys

from medview.commands._listen_scoring import ScoringProcess


def run(args) -> int:
    from medview.core.net import PacsCache, StorageListener, local_settings
    from medview.core.net.servers import check_ae_title

    local = local_settings()
    if args.ae:
        local = dataclasses.replace(local, ae_title=check_ae_title(args.ae))
    if args.port is not None:
        local = dataclasses.replace(local, listen_port=args.port)
    cache = PacsCache()
    scoring = None if args.no_ai else ScoringProcess(args.model, args.device)
    arrivals: queue.Queue = queue.Queue()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with StorageListener(local, cache, on_study=arrivals.put) as listener:
        print(f"medview listen: {local.ae_title} on {local.listen_host}:{listener.port} "
              f"(Ctrl+C stops)", file=sys.stderr, flush=True)
        try:
            while not stopping:
                _say_scored(scoring)
                try:
                    arrival = arrivals.get(timeout=0.3)
                except queue.Empty:
                    continue
                _index(arrival.path)
                cache.enforce_limit(local.cache_max_bytes, keep={arrival.study_uid})
                again = f", {arrival.already_here} already here" if arrival.already_here else ""
                print(f"{arrival.study_uid}: {arrival.received} instances from {arrival.calling_ae}{again} "
                      f"in {arrival.path}", flush=True)
                if scoring is not None:
                    scoring.submit(arrival.study_uid, arrival.path)
        except KeyboardInterrupt:
            pass
        finally:
            if scoring is not None:
                scoring.close()
                _say_scored(scoring)
    return 0


def _say_scored(scoring: ScoringProcess | None) -> None:
    for study_uid, words in scoring.answers() if scoring is not None else ():
        print(f"{study_uid}: AI {words}", flush=True)


def _index(path) -> None:
    """Fills the index cache, so the worklist and `medview index` read the study without parsing it again."""
    from medview.core.dicom.scan import scan

    scan([str(path)])
