"""Series load to memory, first image, and peak memory (issue 2).

Load: `load_stack` on the 300-slice 512x512 series (scanned beforehand, as the app does) against SimpleITK's
`ImageSeriesReader.Execute()` given the same sorted file names, and a plain pydicom loop (`dcmread` +
`pixel_array`, then `np.stack`). All in this process, page cache warm, best of N.
First image: from the `load_stack` call to its first `on_frame` callback; peer: `dcmread(first).pixel_array`.
Peak memory: a child process loads the 2000-slice series; the peak resident size (VmHWM, reset through
/proc/self/clear_refs just before the load; ru_maxrss where that is not possible) minus the resident size
just before, against the stored pixel bytes (rows x columns x bytes per sample x frames).
"""

from __future__ import annotations

import gc
import time

import numpy as np

from benchmarks import data
from benchmarks._common import best_of, figure, run_python_json


def _stack(folder):
    from medview.core.dicom.scan import scan
    from medview.core.dicom.series import build_studies

    result = scan([str(folder)], use_cache=False)
    stacks = [st for study in build_studies(result.instances) for s in study.series for st in s.stacks]
    return max(stacks, key=lambda st: st.frame_count)


def run(quick: bool, repeats: int) -> dict:
    from medview.core.dicom.loader import load_stack

    folder = data.ct_series("medium", quick)
    files = [str(f) for f in data.sorted_slices(folder)]
    n = len(files)
    stack = _stack(folder)
    if stack.frame_count != n:
        raise RuntimeError(f"scan found a stack of {stack.frame_count} frames, expected {n}")

    def medview_load() -> tuple[float, float]:
        first: list[float] = []
        t0 = time.perf_counter()

        def on_frame(i: int) -> None:
            if not first:
                first.append(time.perf_counter())

        vol = load_stack(stack, on_frame=on_frame)
        t1 = time.perf_counter()
        if not bool(np.all(vol.loaded)):
            raise RuntimeError(f"load_stack left frames unloaded: {vol.errors[:1]}")
        del vol
        gc.collect()
        return t1 - t0, ((first[0] - t0) if first else float("nan"))

    def pydicom_loop() -> float:
        import pydicom

        t0 = time.perf_counter()
        arr = np.stack([pydicom.dcmread(f).pixel_array for f in files])
        dt = time.perf_counter() - t0
        del arr
        gc.collect()
        return dt

    def pydicom_first() -> float:
        import pydicom

        t0 = time.perf_counter()
        pydicom.dcmread(files[0]).pixel_array
        return time.perf_counter() - t0

    medview_load()  # warm-up: imports, page cache
    runs = [medview_load() for _ in range(repeats)]
    load_s = min(r[0] for r in runs)
    first_s = min(r[1] for r in runs)
    loop_s = best_of(repeats, pydicom_loop)
    first_peer_s = best_of(repeats, pydicom_first)
    figures = {}
    try:
        import SimpleITK as sitk

        def sitk_load() -> float:
            t0 = time.perf_counter()
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            image = reader.Execute()
            sitk.GetArrayViewFromImage(image)
            dt = time.perf_counter() - t0
            del image
            return dt

        sitk_s = best_of(repeats, sitk_load)
    except ImportError:
        sitk_s = None
    also = [{"peer": "pydicom loop (dcmread + pixel_array, np.stack)", "peer_value": round(loop_s * 1e3, 1),
             "ratio": round(load_s / loop_s, 3)}]
    if sitk_s is not None:
        figures["load_series"] = figure(
            load_s * 1e3, "ms", peer=f"SimpleITK ImageSeriesReader.Execute, same {n} files", peer_value=sitk_s * 1e3,
            better="lower", goal="ratio <= 0.333 (at least 3x faster than SimpleITK)", met=load_s * 3 <= sitk_s,
            slices=n, speedup_vs_peer=round(sitk_s / load_s, 2), also=also,
        )
    else:
        figures["load_series"] = figure(
            load_s * 1e3, "ms", peer="pydicom loop (SimpleITK not installed)", peer_value=loop_s * 1e3,
            better="lower", goal="at least 3x faster than SimpleITK (not measurable here)", met=None, slices=n,
        )
    figures["load_first_image"] = figure(
        first_s * 1e3, "ms", peer="pydicom dcmread(first file).pixel_array", peer_value=first_peer_s * 1e3,
        better="lower", goal="value < 100 ms", met=first_s < 0.1,
    )
    return figures


MEMORY_CODE = r"""
import gc, json, os, resource, sys
kind, folder = sys.argv[1], sys.argv[2]

from benchmarks._common import proc_status_kib, reset_peak_rss

import numpy as np
if kind == "medview":
    from medview.core.dicom.scan import scan
    from medview.core.dicom.series import build_studies
    from medview.core.dicom.loader import load_stack
    res = scan([folder], use_cache=False)
    stacks = [st for study in build_studies(res.instances) for s in study.series for st in s.stacks]
    stack = max(stacks, key=lambda st: st.frame_count)
    stored = sum(i.rows * i.columns * max(1, i.frames) * i.samples_per_pixel * (i.bits_allocated // 8)
                 for i in stack.instances)
    work = lambda: load_stack(stack)
else:
    import pydicom
    files = sorted(os.path.join(d, n) for d, _, ns in os.walk(folder) for n in ns)
    stored = None
    work = lambda: np.stack([pydicom.dcmread(f).pixel_array for f in files])
gc.collect()
method = "VmHWM after clear_refs" if reset_peak_rss() else "ru_maxrss"
before = proc_status_kib("VmRSS")
result = work()
peak = proc_status_kib("VmHWM") if method.startswith("VmHWM") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
arr = result if kind != "medview" else result.array
if stored is None:
    stored = arr.nbytes
print(json.dumps({"peak_increase": (peak - before) * 1024, "stored": stored, "method": method}))
"""


def run_memory(quick: bool, repeats: int) -> dict:
    folder = data.ct_series("big", quick)
    n = len(data.all_files(folder))
    med = _memory_child("medview", folder)
    peer = _memory_child("pydicom", folder)
    stored = med["stored"]
    mib = 2**20
    ratio = med["peak_increase"] / stored
    return {
        "memory_load": figure(
            med["peak_increase"] / mib, "MiB", peer="stored pixel bytes of the series", peer_value=stored / mib,
            better="lower", goal="ratio < 1.3", met=ratio < 1.3, slices=n, method=med["method"],
            also=[{"peer": "pydicom loop (dcmread + pixel_array, np.stack), same measure",
                   "peer_value": round(peer["peak_increase"] / mib, 1),
                   "ratio": round(med["peak_increase"] / peer["peak_increase"], 3)}],
        )
    }


def _memory_child(kind: str, folder) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="medview-bench-home-") as home:
        return run_python_json(MEMORY_CODE, kind, str(folder), env={"MEDVIEW_HOME": home}, timeout=900)
