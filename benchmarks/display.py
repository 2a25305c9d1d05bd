"""Display pipeline: ms per 512x512 CT frame from stored pixels to 8-bit (goal < 2 ms).

medview: `pixels.display_stored` (the viewer's per-frame path: modality LUT + VOI + inversion folded into
one cached uint8 lookup table for integer data) into a reused uint8 buffer, with the file's VOI; the stored
array is decoded once beforehand (decoding is the load figure's business). Also reported: the same frame
through the float path (`use_lut=False`), and the first frame at a new window (building the table). Peer: pydicom's `apply_modality_lut` + `apply_voi_lut`, then numpy scaling of pydicom's
output range to uint8. Mean over 200 frames, best of N.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import data
from benchmarks._common import best_of, figure

FRAMES = 200


def run(quick: bool, repeats: int) -> dict:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from medview.core.dicom import pixels

    files = data.sorted_slices(data.ct_series("medium", quick))
    ds = pydicom.dcmread(files[len(files) // 2])
    stored = ds.pixel_array
    transform = pixels.modality_transform(ds)
    voi = pixels.display_voi(ds, 0, stored)
    invert = pixels.is_inverted(ds)
    out = np.empty(stored.shape, np.uint8)

    def medview_frame() -> np.ndarray:
        return pixels.display_stored(stored, transform, voi, invert, out)

    def medview_float() -> np.ndarray:
        return pixels.display_stored(stored, transform, voi, invert, out, use_lut=False)

    shifts = iter(range(1, 10**6))

    def medview_new_window() -> np.ndarray:
        w = pixels.Window(voi.center + next(shifts), voi.width)
        return pixels.display_stored(stored, transform, w, invert, out)

    # pydicom's windowing output range (pydicom.pixels.processing.apply_windowing)
    bits = int(ds.BitsStored)
    y_min, y_max = (0, 2**bits - 1) if ds.PixelRepresentation == 0 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    y_min, y_max = y_min * slope + intercept, y_max * slope + intercept

    def peer_frame() -> np.ndarray:
        v = apply_voi_lut(apply_modality_lut(stored, ds), ds)
        return ((v - y_min) * (255.0 / (y_max - y_min))).astype(np.uint8)

    def per_frame(fn) -> float:
        fn()
        t0 = time.perf_counter()
        for _ in range(FRAMES):
            fn()
        return (time.perf_counter() - t0) / FRAMES

    ms = best_of(repeats, lambda: per_frame(medview_frame)) * 1e3
    float_ms = best_of(repeats, lambda: per_frame(medview_float)) * 1e3
    new_window_ms = best_of(repeats, lambda: per_frame(medview_new_window)) * 1e3
    peer_ms = best_of(repeats, lambda: per_frame(peer_frame)) * 1e3
    # the two must agree on the picture (within rounding): otherwise the timing compares different work
    diff = np.abs(medview_frame().astype(int) - peer_frame().astype(int)).max()
    return {
        "display_frame": figure(
            ms, "ms/frame", peer="pydicom apply_modality_lut + apply_voi_lut + numpy scaling to uint8",
            peer_value=peer_ms, better="lower", goal="value < 2 ms", met=ms < 2.0,
            shape=list(stored.shape), dtype=str(stored.dtype), max_abs_diff_vs_peer=int(diff),
            float_path_ms=round(float_ms, 3), new_window_first_frame_ms=round(new_window_ms, 3),
        )
    }
