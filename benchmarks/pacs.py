"""Retrieving from a PACS (issue 19): the 300-slice CT (quick: 60) from a local Orthanc, against dcmtk's getscu.

A real Orthanc (tests/orthanc.py: 127.0.0.1, free ports, storage in a temporary folder) is given the series
once. Timed, each into an empty cache: `retrieve_study` by C-GET and by WADO-RS (the instance listing by C-FIND
or QIDO-RS included, as `medview pacs get` does it), and the peer, `getscu` (C-GET of the study into an empty
folder; its default 16 KB receive PDU and its largest, 128 KB: the faster counts). Then the app in a fresh offscreen process retrieves it as Enter in the PACS
panel does: when its first image is on screen, and how much of the study had arrived by then.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import data
from benchmarks._common import PY, best_of, figure, run_child, unavailable

FIRST_IMAGE_GOAL = 0.10  # of the study arrived when the first image is on screen


def run(quick: bool, repeats: int) -> dict:
    from tests.orthanc import ORTHANC, OrthancServer, dicomweb_plugin

    if ORTHANC is None or dicomweb_plugin() is None:
        reason = "Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"
        return {name: unavailable(reason) for name in ("pacs_get_cget", "pacs_get_wado", "pacs_first_image")}
    import pydicom

    from medview.core.net import PacsCache, resolve_server, retrieve_study, send_paths

    folder = data.ct_series("medium", quick)
    files = data.all_files(folder)
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    with tempfile.TemporaryDirectory(prefix="medview-bench-pacs-") as tmp:
        tmp = Path(tmp)
        orthanc = OrthancServer(tmp / "orthanc").start()
        try:
            failed = [r for r in send_paths(resolve_server(orthanc.dimse_url), [str(folder)]) if r.error]
            if failed:
                raise RuntimeError(f"Orthanc did not take the series: {failed[0].error}")
            runs = iter(range(10_000))

            def medview(url: str) -> float:
                cache = PacsCache(tmp / f"cache{next(runs)}" / "pacs")
                t0 = time.perf_counter()
                result = retrieve_study(resolve_server(url), study_uid, cache=cache)
                seconds = time.perf_counter() - t0
                if not result.complete or result.fetched != len(files):
                    raise RuntimeError(f"retrieve incomplete: {result.as_json()}")
                shutil.rmtree(cache.root.parent)
                return seconds

            getscu = shutil.which("getscu")

            def peer(*options: str) -> float:
                out = tmp / f"getscu{next(runs)}"
                out.mkdir()
                t0 = time.perf_counter()
                subprocess.run([getscu, *options, "-aet", "MEDVIEW", "-aec", "ORTHANC", "-S", "-k",
                                "QueryRetrieveLevel=STUDY",
                                "-k", f"StudyInstanceUID={study_uid}", "-od", str(out), "127.0.0.1",
                                str(orthanc.dicom_port)], check=True, capture_output=True, timeout=600)
                seconds = time.perf_counter() - t0
                if len(list(out.iterdir())) != len(files):
                    raise RuntimeError("getscu did not bring the whole study")
                shutil.rmtree(out)
                return seconds

            # alternated, best of each: the shared machine's other work weighs on both alike
            cget, wado, peer_default, peer_big_pdu = [], [], [], []
            for _ in range(max(1, repeats)):
                cget.append(medview(orthanc.dimse_url))
                wado.append(medview(orthanc.web_url))
                if getscu:
                    peer_default.append(peer())
                    peer_big_pdu.append(peer("--max-pdu", "131072"))
            # the peer is getscu at its faster setting: its default 16 KB receive PDU, or the largest it allows
            peer_best = min(peer_default + peer_big_pdu) if getscu else None
            peer_name = "dcmtk getscu (C-GET of the same study, its faster of default and --max-pdu 131072)" \
                if getscu else None
            peers = {"getscu_default_s": round(min(peer_default), 3) if getscu else None,
                     "getscu_max_pdu_s": round(min(peer_big_pdu), 3) if getscu else None}
            goal = "ratio <= 1.0 (no slower than getscu)"
            out = {}
            for name, times, how in (("pacs_get_cget", cget, "C-GET"), ("pacs_get_wado", wado, "WADO-RS")):
                best = min(times)
                out[name] = figure(best, "s", peer=peer_name, peer_value=peer_best, better="lower", goal=goal,
                                   met=(best <= peer_best) if peer_best else None, protocol=how, **peers,
                                   instances=len(files), megabytes=round(sum(f.stat().st_size for f in files) / 1e6))
            out["pacs_first_image"] = _first_image(tmp, orthanc, study_uid, len(files), repeats)
            return out
        finally:
            orthanc.kill()


def _first_image(tmp: Path, orthanc, study_uid: str, instances: int, repeats: int) -> dict:
    def once() -> dict:
        with tempfile.TemporaryDirectory(prefix="home-", dir=tmp) as home:
            Path(home, "servers.toml").write_text(f'[servers.orthanc]\nurl = "{orthanc.dimse_url}"\n')
            _wall, stdout = run_child([PY, "-m", "benchmarks._pacs_child", "orthanc", study_uid],
                                      env={"MEDVIEW_HOME": home, "QT_QPA_PLATFORM": "offscreen"})
        doc = json.loads(stdout.strip().splitlines()[-1])
        if doc["frames_shown"] != instances or doc["first_image_s"] is None:
            raise RuntimeError(f"the app did not show the whole study: {doc}")
        return doc

    docs = [once() for _ in range(max(1, repeats))]
    best = min(docs, key=lambda d: d["first_image_arrived"] or instances)
    fraction = (best["first_image_arrived"] or 0) / instances
    return figure(fraction, "fraction of the study arrived", better="lower",
                  goal=f"first image on screen before {FIRST_IMAGE_GOAL:.0%} of the study arrived",
                  met=fraction < FIRST_IMAGE_GOAL, first_image_s=best["first_image_s"],
                  retrieve_s=min(d["seconds"] for d in docs), all_shown_s=min(d["all_shown_s"] for d in docs),
                  instances=instances, protocol="C-GET")
