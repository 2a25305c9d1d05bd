"""End-to-end scoring on CPU: DICOM files to scores, images per second, medview against a plain pipeline.

`scoring_end_to_end`: the demo radiographs (`data.radiographs`: 200 CR/DX images from `medview demo-data`,
quick 12) scored as `medview infer` scores them (`benchmarks/_scoring_child.py medview`: scan, the bundled
model's `Engine` on CPU, `FrameScorer`, no caches); peer: the plain pipeline on the same files (`plain`:
pydicom `pixel_array`, numpy windowing, a Pillow resize, ONNX Runtime on the bundle's `models/model.onnx`).
Each pipeline runs in a fresh process (so neither's thread pools share the cores with the other's), the two
alternating over rounds so a shared machine's load weighs on both alike; each process discards a warm-up
pass and keeps its best pass, and the best process is reported. medview does more per image than its peer
(the intended-use checks, the cardiothoracic ratio measured on the masks the network returns and the score
derived from it); the plain pipeline stops at the network's output.
"""

from __future__ import annotations

import json
import os
import tempfile

from benchmarks._common import PY, figure, last_json, run_child

ROUNDS = {False: 3, True: 2}  # processes per pipeline, alternating


def run(quick: bool, repeats: int) -> dict:
    from benchmarks.ai import _radiograph_files

    files = [str(f) for f in _radiograph_files(quick)]
    if not files:
        raise RuntimeError("no demo radiographs")
    best = {"medview": float("inf"), "plain": float("inf")}
    statuses: dict = {}
    with tempfile.TemporaryDirectory(prefix="medview-bench-scoring-") as tmp:
        listing = os.path.join(tmp, "files.json")
        with open(listing, "w") as fh:
            json.dump(files, fh)
        for round_ in range(ROUNDS[quick]):
            order = ("medview", "plain") if round_ % 2 == 0 else ("plain", "medview")
            for pipeline in order:
                _, out = run_child([PY, "-m", "benchmarks._scoring_child", pipeline, listing, str(max(1, repeats))])
                doc = last_json(out, f"{pipeline} scoring child")
                best[pipeline] = min(best[pipeline], min(doc["times"]))
                statuses[pipeline] = doc["statuses"]
    n = len(files)
    rate, peer_rate = n / best["medview"], n / best["plain"]
    return {"scoring_end_to_end": figure(
        rate, "images/s",
        peer="plain pipeline: pydicom pixel_array, numpy windowing, Pillow resize, ONNX Runtime on model.onnx "
             "(CPU, defaults), same files",
        peer_value=peer_rate, better="higher", goal="ratio >= 2.0", met=rate >= 2.0 * peer_rate, images=n,
        medview_results=statuses.get("medview"), isolation="each pipeline in its own process, alternating",
        load_average_1min=round(os.getloadavg()[0], 2),
    )}
