"""Reformatting: coronal planes per second while scrolling through a 512 x 512 CT (goal >= 30 planes/s).

medview: `mpr.sample_plane` (modality values, HU) of a coronal plane stepped one pixel spacing at a time
from the front of the volume to the back, on the stack array as the loader holds it (int16 stored values,
Rescale Intercept -1024), square pixels at the finest spacing. Peer, same run, same array and output grid:
a straightforward numpy trilinear reslice per frame (each output pixel's fractional (slice, row, column)
index on the regular grid, eight gathers, weights). Also reported: a sagittal plane, and a plane of an
oblique stack (per-pixel inverse map), both as planes/s; `max_abs_diff_vs_peer` (HU) checks both compute
the same picture. The volume is made in memory (400 slices, quick 100): reformatting, not loading, is timed.

`mpr_app_scroll_coronal`: the same scroll in the app (benchmarks/_mpr_child.py, a fresh offscreen process): the
1000-slice CT series (quick 100) opened and loaded, M, Down sent to the coronal plane each time its previous
position was painted; painted frames/s. Peer, same process and window size: a plain pyqtgraph ImageItem fed a
numpy trilinear reslice of the same loaded array per frame, windowed to uint8, painted, same closed loop.
The same child then scrolls slabs (`mpr_app_scroll_slab`: coronal MIP 10 and 60 mm, sagittal MIP 60 mm) and
reports the app's RSS growth against the stored pixel bytes (`mpr_app_memory`).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import data
from benchmarks._common import PY, best_of, figure, last_json, run_child, unavailable

SIZE = 512
PIXEL_MM = 0.7
SLICE_MM = 1.25
PLANES = 100


def _volume(slices: int) -> np.ndarray:
    """A CT-like int16 stack with structure in every direction (the values do not change the timing)."""
    z = np.arange(slices, dtype=np.int32)[:, None, None]
    y = np.arange(SIZE, dtype=np.int32)[None, :, None]
    x = np.arange(SIZE, dtype=np.int32)[None, None, :]
    return ((x * 7 + y * 13 + z * 29) % 2000).astype(np.int16)


def _geometry(slices: int, orientation=None):
    from medview.core.viewing import mpr

    rot = np.eye(3) if orientation is None else orientation
    row, col = rot @ (1.0, 0.0, 0.0), rot @ (0.0, 1.0, 0.0)
    normal = np.cross(row, col)
    corner = -(row + col) * PIXEL_MM * (SIZE - 1) / 2
    positions = corner + np.arange(slices)[:, None] * SLICE_MM * normal
    return mpr.VolumeGeometry(np.arange(slices), positions, row, col, normal, PIXEL_MM, PIXEL_MM, SIZE, SIZE,
                              positions @ normal, SLICE_MM)


def _peer_reslice(array: np.ndarray, geometry, plane, slope: float, intercept: float) -> np.ndarray:
    """The plain per-frame reslice: fractional indices of every output pixel on the regular grid, eight
    gathers and the trilinear weights, NaN outside."""
    rows, cols = plane.shape
    i, j = np.mgrid[0:rows, 0:cols]
    points = plane.origin + (i[..., None] * plane.column_direction + j[..., None] * plane.row_direction) \
        * plane.spacing - geometry.positions[0]
    k = points @ geometry.normal / geometry.slice_spacing
    r = points @ geometry.column_cosines / geometry.row_spacing
    c = points @ geometry.row_cosines / geometry.column_spacing
    n, h, w = array.shape
    inside = (k >= 0) & (k <= n - 1) & (r >= 0) & (r <= h - 1) & (c >= 0) & (c <= w - 1)
    k0 = np.clip(np.floor(k).astype(int), 0, n - 2)
    r0 = np.clip(np.floor(r).astype(int), 0, h - 2)
    c0 = np.clip(np.floor(c).astype(int), 0, w - 2)
    fk, fr, fc = k - k0, r - r0, c - c0
    out = np.zeros(k.shape)
    for dk in (0, 1):
        for dr in (0, 1):
            for dc in (0, 1):
                weight = (fk if dk else 1 - fk) * (fr if dr else 1 - fr) * (fc if dc else 1 - fc)
                out += weight * array[k0 + dk, r0 + dr, c0 + dc]
    out = out * slope + intercept
    out[~inside] = np.nan
    return out


def run(quick: bool, repeats: int) -> dict:
    from medview.core.dicom import pixels
    from medview.core.viewing import mpr

    slices = 100 if quick else 400
    array = _volume(slices)
    transform = pixels.ModalityTransform(1.0, -1024.0)
    geometry = _geometry(slices)
    centre = geometry.center()
    extent = PIXEL_MM * (SIZE - 1) / 2
    ys = np.linspace(-extent, extent, PLANES)

    def planes(name: str, geom) -> list:
        """Planes stepped from front to back (coronal) or right to left (sagittal) through the centre."""
        if name == "coronal":
            return [mpr.plane_through(geom, name, (centre[0], y, centre[2])) for y in ys]
        return [mpr.plane_through(geom, name, (x, centre[1], centre[2])) for x in ys]

    def planes_per_s(plane_list, reslice) -> float:
        def seconds_per_plane() -> float:
            t0 = time.perf_counter()
            for plane in plane_list:
                reslice(plane)
            return (time.perf_counter() - t0) / len(plane_list)

        return 1.0 / best_of(repeats, seconds_per_plane)

    def ours(geom):
        return lambda plane: mpr.sample_plane(array, geom, plane, transform)

    def peer(plane):
        return _peer_reslice(array, geometry, plane, 1.0, -1024.0)

    coronal = planes("coronal", geometry)
    value = planes_per_s(coronal, ours(geometry))
    peer_value = planes_per_s(coronal[::10], peer)  # the slow one on every tenth plane of the same walk
    sagittal = planes_per_s(planes("sagittal", geometry), ours(geometry))
    tilt = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    turn = np.array([[np.cos(0.2), -np.sin(0.2), 0], [np.sin(0.2), np.cos(0.2), 0], [0, 0, 1]])
    oblique_geometry = _geometry(slices, tilt @ turn)
    oblique = planes_per_s(planes("coronal", oblique_geometry)[::10], ours(oblique_geometry))
    middle = coronal[len(coronal) // 2]
    a, b = ours(geometry)(middle), peer(middle)
    both = ~np.isnan(a) & ~np.isnan(b)
    return {
        **_app_scroll(quick),
        "mpr_scroll_coronal": figure(
            value, "planes/s", peer="numpy trilinear reslice per frame (per-pixel indices, eight gathers)",
            peer_value=peer_value, better="higher", goal="value >= 30 planes/s and ratio >= 1",
            met=value >= 30 and value >= peer_value, volume=[slices, SIZE, SIZE], plane_shape=list(middle.shape),
            spacing_mm=middle.spacing, sagittal_planes_per_s=round(sagittal, 1),
            oblique_stack_planes_per_s=round(oblique, 1),
            max_abs_diff_vs_peer=round(float(np.abs(a[both] - b[both]).max()), 4),
        )
    }


def _app_scroll(quick: bool) -> dict:
    """Painted frames/s scrolling the coronal plane of a CT series in the app, against a numpy reslice per frame
    painted by plain pyqtgraph (see the module docstring)."""
    import tempfile

    try:
        folder = data.ct_series("viewer", quick)
        with tempfile.TemporaryDirectory(prefix="medview-bench-home-") as home:
            _, out = run_child([PY, "-m", "benchmarks._mpr_child", str(folder), "150" if quick else "400"],
                               env={"MEDVIEW_HOME": home, "QT_QPA_PLATFORM": "offscreen"}, timeout=900)
        doc = last_json(out, "mpr child")
    except Exception as exc:  # noqa: BLE001 - the reformatting figure above still stands
        return {"mpr_app_scroll_coronal": unavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")}
    scroll, peer = doc["scroll"], doc["peer"]
    return {**_slab_figures(doc), "mpr_app_scroll_coronal": figure(
        scroll["fps"], "frames/s", peer="plain pyqtgraph ImageItem fed a numpy trilinear reslice per frame, painted",
        peer_value=peer["fps"], better="higher", goal="value >= 60 frames/s painted and ratio >= 1",
        met=scroll["fps"] >= 60 and scroll["fps"] >= peer["fps"], volume=doc["volume"], plane_shape=doc["plane_shape"],
        spacing_mm=doc["spacing_mm"], view_px=doc["view_px"], frames_painted=scroll["frames_painted"],
        peer_frames_painted=peer["frames_painted"], method=scroll["method"],
    )}


def _slab_figures(doc: dict) -> dict:
    """The slab scrolls of the same child (coronal MIP 10 and 60 mm, sagittal MIP 60 mm) and the app's memory
    after all the scrolling, against the stored pixel bytes."""
    figures = {}
    slabs, peer = doc.get("slabs") or {}, doc["peer"]
    if slabs:
        slowest = min(slabs, key=lambda k: slabs[k]["fps"])
        value = slabs[slowest]["fps"]
        figures["mpr_app_scroll_slab"] = figure(
            value, "frames/s", peer="plain pyqtgraph ImageItem fed a numpy trilinear reslice per frame (no slab)",
            peer_value=peer["fps"], better="higher", goal="value >= 60 frames/s painted for every slab and ratio >= 1",
            met=value >= 60 and value >= peer["fps"], slowest=slowest, volume=doc["volume"],
            fps={k: round(v["fps"], 1) for k, v in slabs.items()})
    memory = doc.get("memory")
    if memory:
        mib = 2**20
        grown = (memory["rss_after_kib"] - memory["rss_before_open_kib"]) * 1024
        stored = memory["stored_bytes"]
        figures["mpr_app_memory"] = figure(
            grown / mib, "MiB", peer="stored pixel bytes of the series", peer_value=stored / mib, better="lower",
            goal="ratio <= 1.3 (the app's RSS growth from before opening to after loading, M and every scroll)",
            met=grown <= 1.3 * stored, volume=doc["volume"], rss_after_mib=round(memory["rss_after_kib"] / 1024, 1),
            peak_rss_mib=round(memory["peak_kib"] / 1024, 1),
            peak_growth_ratio=round((memory["peak_kib"] - memory["rss_before_open_kib"]) * 1024 / stored, 3))
    return figures
