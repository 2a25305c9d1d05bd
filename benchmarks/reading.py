"""Reading in context: a 2 x 2 layout scrolled linked, a case opened with its prior, the memory of open stacks.

Each measured in a fresh offscreen process (benchmarks/_reading_child.py, where the method and the peers are
described):

- `reading_2x2_linked_scroll`: four 512 x 512 CT series of one study and frame of reference (300 slices each,
  quick 60) in 2 x 2, linked (S), Down to the active viewport each time all four painted; the slowest
  viewport's painted frames/s (every viewport's in `fps_each`). Peer: four plain pyqtgraph views, same loop.
- `reading_memory_2x2`: the app's resident memory growth from before opening that study to all four series
  loaded, against the pixel bytes the files store.
- `reading_open_with_prior`: a demo chest radiograph with its prior, `open_case` and P in one turn of the event
  loop, to the first paint of both viewports (the later one). Peer: pydicom reading both images' pixels.
"""

from __future__ import annotations

import tempfile

from benchmarks import data
from benchmarks._common import BENCH_DIR, PY, figure, last_json, log, one_figure, run_child

CHILD = [PY, "-m", "benchmarks._reading_child"]
SERIES = 4


def _child(args: list[str], home: str, timeout: float = 900) -> dict:
    _, out = run_child(CHILD + args, env={"MEDVIEW_HOME": home, "QT_QPA_PLATFORM": "offscreen"}, timeout=timeout)
    return last_json(out, f"reading {args[0]} child")


def four_series(quick: bool):
    """One CT study of four series (the medium CT's slices under four series UIDs), one frame of reference."""
    import json

    import pydicom
    from pydicom.uid import generate_uid

    source = data.ct_series("medium", quick)
    slices = data.sorted_slices(source)
    folder = BENCH_DIR / ("quick" if quick else "full") / f"reading_ct{SERIES}x{len(slices)}"
    marker = folder.parent / f"{folder.name}.complete"
    if marker.exists():
        return folder
    log(f"[bench] writing {SERIES} series of {len(slices)} slices to {folder} (once)")
    for k in range(SERIES):
        uid = generate_uid()
        out = folder / f"series{k + 1}"
        out.mkdir(parents=True, exist_ok=True)
        for n, path in enumerate(slices):
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID, ds.SeriesNumber = uid, k + 2
            ds.SeriesDescription = f"AXIAL {k + 1}"
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(out / f"{n:05d}.dcm", enforce_file_format=True)
    marker.write_text(json.dumps({"series": SERIES, "slices": len(slices)}))
    return folder


def radiographs_with_priors(quick: bool):
    folder = BENCH_DIR / ("quick" if quick else "full") / "cxr_priors"
    marker = folder.parent / "cxr_priors.complete"
    if not marker.exists():
        from medview.core.demo import generate_demo

        log(f"[bench] writing demo radiographs with priors to {folder} (once)")
        generate_demo(folder, cases=6, seed=7, ct_slices=0, priors=True)
        marker.write_text("{}")
    return folder


def run(quick: bool, repeats: int) -> dict:
    import medview.app  # noqa: F401 - ImportError here marks the reading figures unavailable

    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="medview-bench-home-") as home:
        figures.update(one_figure("reading_2x2_linked_scroll", lambda: _linked(home, quick)))
    with tempfile.TemporaryDirectory(prefix="medview-bench-home-") as home:
        figures.update(one_figure("reading_open_with_prior", lambda: _prior(home, quick, repeats)))
    return figures


def _linked(home: str, quick: bool) -> dict:
    doc = _child(["linked", str(four_series(quick)), "100" if quick else "400"], home)
    scroll, peer, memory = doc["scroll"], doc["peer"], doc["memory"]
    mib = 2**20
    grown = (memory["rss_after_kib"] - memory["rss_before_open_kib"]) * 1024
    stored = memory["stored_bytes"]
    return {
        "reading_2x2_linked_scroll": figure(
            scroll["fps"], "frames/s", peer="four plain pyqtgraph views, int16 frames + explicit levels, painted",
            peer_value=peer["fps"], better="higher",
            goal="value >= 60 frames/s painted in every viewport", met=scroll["fps"] >= 60,
            fps_each=[round(f, 1) for f in scroll["fps_each"]], steps=scroll["steps"], slices=doc["slices"],
            view_px=doc["view_px"], method=scroll["method"]),
        "reading_memory_2x2": figure(
            grown / mib, "MiB", peer="stored pixel bytes of the four series", peer_value=stored / mib,
            better="lower", goal="ratio <= 1.3 (RSS growth from before opening to all four series loaded)",
            met=grown <= 1.3 * stored, series=memory["series"]),
    }


def _prior(home: str, quick: bool, repeats: int) -> dict:
    doc = _child(["prior", str(radiographs_with_priors(quick)), str(max(3, repeats))], home)
    value = max(doc["current_ms"], doc["prior_ms"])
    return {"reading_open_with_prior": figure(
        value, "ms", peer="pydicom dcmread + pixel_array of both images, one after the other",
        peer_value=doc["peer_ms"], better="lower", goal="value < 150 ms (both first images painted)",
        met=value < 150, current_ms=round(doc["current_ms"], 1), prior_ms=round(doc["prior_ms"], 1),
        image_shape=doc["image_shape"], modality=doc["modality"], ai_idle=doc["ai_idle"],
        runs_ms=[[round(a, 1), round(b, 1)] for a, b in doc["runs"]])}
