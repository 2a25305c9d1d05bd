"""The viewer's figures (issue 3), each measured in a fresh offscreen Qt process (benchmarks/_qt_child.py).

- start-up: from the parent's Popen to the main window's first paint (CLOCK_MONOTONIC is system-wide),
  `create_app(["gui"])` + show; also whether torch was imported by then. Peer: a bare PySide6 main window
  holding a pyqtgraph GraphicsLayoutWidget, same measure. Best of N.
- first image: the 300-slice series is scanned and loaded once, the case closed, then `open_case` again;
  time to the first paint of the image view's viewport showing a frame (the whole load starts again).
- scrolling: Down key presses (QTest, through the app's shortcuts) sent each as soon as the previous frame
  was painted, over the loaded series, down and back up; frames/s counted from viewport paints that show a
  new index. Peer: a plain pyqtgraph ImageItem fed the int16 frames with explicit levels, same loop.
- W/L drag: left-button mouse drag on the viewport (the default window tool), each move sent when the
  previous update was painted; ms per painted update. Peer: numpy windowing to uint8 + setImage per update.
- memory: resident size after a 1000-slice CT is open and fully loaded, minus the app's before opening it,
  against the stored pixel bytes.
"""

from __future__ import annotations

import tempfile
import time

from benchmarks import data
from benchmarks._common import PY, figure, last_json, one_figure, run_child

CHILD = [PY, "-m", "benchmarks._qt_child"]


def _child(args: list[str], home: str, timeout: float = 600) -> dict:
    _, out = run_child(CHILD + args, env={"MEDVIEW_HOME": home, "QT_QPA_PLATFORM": "offscreen"}, timeout=timeout)
    return last_json(out, f"{args[0]} child")


def run(quick: bool, repeats: int) -> dict:
    import medview.app  # noqa: F401 - ImportError here marks the viewer figures unavailable

    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="medview-bench-home-") as home:
        figures.update(one_figure("viewer_startup", lambda: _startup(home, repeats)))
        figures.update(one_figure("viewer_series", lambda: _series(home, quick)))
        figures.update(one_figure("viewer_memory", lambda: _memory(home, quick)))
    return figures


def _startup(home: str, repeats: int) -> dict:
    def one(kind: str) -> dict:
        return _child(["startup", kind, repr(time.monotonic())], home, timeout=60)

    one("medview")  # first start writes settings and byte-code caches: not what a user sees every day
    med = min((one("medview") for _ in range(repeats)), key=lambda d: d["shown_s"])
    peer = min((one("peer") for _ in range(repeats)), key=lambda d: d["shown_s"])
    ok = med["shown_s"] < 1.0 and not med["torch_imported"]
    return {"viewer_startup": figure(
        med["shown_s"] * 1e3, "ms", peer="bare PySide6 QMainWindow + pyqtgraph widget, same measure",
        peer_value=peer["shown_s"] * 1e3, better="lower", goal="value < 1000 ms and torch not imported", met=ok,
        torch_imported=med["torch_imported"],
    )}


def _series(home: str, quick: bool) -> dict:
    folder = data.ct_series("medium", quick)
    doc = _child(["viewer", str(folder), "120" if quick else "600"], home, timeout=600)
    scroll, wl, peer = doc["scroll"], doc["wl"], doc.get("peer", {})
    return {
        "viewer_first_image": figure(
            doc["series_first_image_ms"], "ms", peer=None, peer_value=None, better="lower",
            goal="value < 150 ms", met=doc["series_first_image_ms"] < 150, slices=doc["slices"],
            folder_to_first_image_ms=round(doc["folder_to_first_image_ms"], 1),
        ),
        "viewer_scroll": figure(
            scroll["fps"], "frames/s", peer="plain pyqtgraph ImageItem, int16 frames + explicit levels, painted",
            peer_value=peer.get("scroll_fps"), better="higher", goal="value >= 60 frames/s painted",
            met=scroll["fps"] >= 60, frames_painted=scroll["frames_painted"], keys_sent=scroll["keys_sent"],
            method=scroll["method"],
        ),
        "viewer_window_drag": figure(
            wl["ms_per_update"], "ms/update", peer="numpy windowing to uint8 + ImageItem.setImage, painted",
            peer_value=peer.get("wl_ms_per_update"), better="lower", goal="value < 5 ms", met=wl["ms_per_update"] < 5,
            updates_painted=wl["updates_painted"], method=wl["method"],
        ),
    }


def _memory(home: str, quick: bool) -> dict:
    folder = data.ct_series("viewer", quick)
    doc = _child(["memory", str(folder)], home, timeout=600)
    mib = 2**20
    stored = doc["stored_bytes"]
    open_bytes = doc["open_kib"] * 1024
    return {"viewer_memory": figure(
        open_bytes / mib, "MiB", peer="stored pixel bytes of the series", peer_value=stored / mib, better="lower",
        goal="ratio <= 1.3", met=open_bytes <= 1.3 * stored, slices=doc["slices"],
        peak_while_loading_mib=round(doc["peak_kib"] * 1024 / mib, 1) if doc.get("peak_kib") else None,
    )}
