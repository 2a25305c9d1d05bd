"""Index speed (issue 2): `medview index DIR --json` as whole processes, cold and cached.

Cold: a fresh MEDVIEW_HOME (no index cache). Cached: the same home again. Peer: a plain
`pydicom.dcmread(f, stop_before_pixels=True)` loop over the same files, also a whole process (interpreter
start, walking the folder, reading every header). The OS page cache is warm for all three: we measure
medview's work, not the disk. Files/s = DICOM files / wall seconds of the process; best of N runs.
"""

from __future__ import annotations

import json
import tempfile

from benchmarks import data
from benchmarks._common import PY, best_of, figure, run_child

PEER_CODE = r"""
import os, sys, pydicom
n = 0
for dirpath, _, names in os.walk(sys.argv[1]):
    for name in names:
        ds = pydicom.dcmread(os.path.join(dirpath, name), stop_before_pixels=True)
        n += 1
print(n)
"""


def run(quick: bool, repeats: int) -> dict:
    folder = data.ct_series("big", quick)
    n_files = len(data.all_files(folder))

    def cold() -> float:
        with tempfile.TemporaryDirectory(prefix="medview-bench-home-") as home:
            wall, out = run_child([PY, "-m", "medview", "index", str(folder), "--json"],
                                  env={"MEDVIEW_HOME": home})
            _check(out, n_files)
            return wall

    def peer() -> float:
        wall, out = run_child([PY, "-c", PEER_CODE, str(folder)])
        if int(out.strip()) != n_files:
            raise RuntimeError("peer loop read a different number of files")
        return wall

    peer_s = best_of(repeats, peer)
    cold_s = best_of(repeats, cold)
    with tempfile.TemporaryDirectory(prefix="medview-bench-home-") as home:
        run_child([PY, "-m", "medview", "index", str(folder), "--json"], env={"MEDVIEW_HOME": home})

        def cached() -> float:
            wall, out = run_child([PY, "-m", "medview", "index", str(folder), "--json"],
                                  env={"MEDVIEW_HOME": home})
            _check(out, n_files)
            return wall

        cached_s = best_of(repeats, cached)

    peer_rate = n_files / peer_s
    cold_rate = n_files / cold_s
    cached_rate = n_files / cached_s
    peer_name = f"pydicom.dcmread(stop_before_pixels=True) loop, whole process, {n_files} files"
    return {
        "index_cold": figure(
            cold_rate, "files/s", peer=peer_name, peer_value=peer_rate, better="higher",
            goal="ratio >= 1.0 (no slower than the plain pydicom loop)", met=cold_rate >= peer_rate,
            files=n_files, seconds=round(cold_s, 3),
        ),
        "index_cached": figure(
            cached_rate, "files/s", peer=peer_name, peer_value=peer_rate, better="higher",
            goal="ratio >= 4.0", met=cached_rate >= 4 * peer_rate, files=n_files, seconds=round(cached_s, 3),
        ),
    }


def _check(out: str, n_files: int) -> None:
    try:
        doc = json.loads(out)
    except ValueError:
        raise RuntimeError(f"medview index --json printed no JSON document: {out.strip()[:120]!r}") from None
    instances = sum(s["instances"] for st in doc["studies"] for s in st["series"])
    if instances != n_files:
        raise RuntimeError(f"medview index found {instances} instances, expected {n_files}")
