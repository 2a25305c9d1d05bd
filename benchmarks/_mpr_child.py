"""Scrolling a coronal plane in the app, in a fresh offscreen Qt process:
`python -m benchmarks._mpr_child FOLDER FRAMES` prints one JSON line.

The app opens the CT series, loads it whole, M shows the three planes, the coronal one is made active and the
Down key is sent each time its previous plane was painted (closed loop, down the volume and back, through the
app's shortcuts): frames/s counted from paints of the coronal view showing a new position. Peer, same process,
same window size, same planes: a plain pyqtgraph ImageItem fed per frame by a numpy trilinear reslice of the
loaded array (`benchmarks.mpr._peer_reslice`: each output pixel's fractional index, eight gathers) and numpy
windowing to uint8, the same closed loop on its paints.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks._common import proc_status_kib, reset_peak_rss  # noqa: E402
from benchmarks._qt_child import (  # noqa: E402 - after the platform is chosen
    _closed_loop_scroll,
    _emit,
    _loop,
    _normal_size,
    _note,
    _PaintWatch,
    _rss_after_start_up,
    _wait,
)


def scroll(folder: str, frames_target: str = "300") -> None:
    from medview.app import create_app

    app, window = create_app(["medview", "gui"])
    _normal_size(window, 1600, 900)
    window.show()
    rss_before_kib = _rss_after_start_up(app)
    window.cases.open_paths([folder])
    if not _wait(app, lambda: window.cases.case is not None and window.viewer._shown is not None, 120):
        raise RuntimeError("no image was shown within 120 s of opening the folder")
    if not _wait(app, lambda: not window.cases.busy(), 300):
        raise RuntimeError("the series did not finish loading within 300 s")
    window.reading_controller.toggle_mpr()
    state = window.reading_state()
    if [v["plane"] for v in state["viewports"]] != ["axial", "coronal", "sagittal"]:
        raise RuntimeError(f"M did not show the three planes: {window.statusBar().currentMessage()}")
    views = window.viewports.views
    if not _wait(app, lambda: all(v.shown_pixels() is not None for v in views), 60):
        raise RuntimeError("the planes were not drawn within 60 s")
    coronal = views[1]
    window.reading.activate(1)
    window.reading_controller.draw_session()
    coronal.setFocus()
    app.processEvents()
    target = window.focusWidget() or coronal
    plane = coronal.plane
    out = {"volume": [len(plane.source.frames), *plane.source.frame_shape], "plane_shape": list(plane.frame_shape),
           "spacing_mm": plane.spacing, "steps": plane.steps.count,
           "view_px": [coronal.graphics.viewport().width(), coronal.graphics.viewport().height()]}
    out["scroll"] = _closed_loop_scroll(app, coronal, coronal.graphics.viewport(), target, int(frames_target))
    _note(f"app {out['scroll']}")
    peak_app_kib = proc_status_kib("VmHWM")  # loading, M and the scroll: the peer's temporaries come after
    out["peer"] = _peer(app, plane, coronal.graphics.viewport().size(), int(frames_target))
    _note(f"peer {out['peer']}")
    peak_reset = reset_peak_rss()
    out["slabs"] = _slab_scrolls(app, window, views, int(frames_target))
    # the stack array holds the stored values as the files do (int16 for a CT): its size is the stored bytes
    out["memory"] = {"stored_bytes": int(plane.source.array.nbytes),
                     "rss_before_open_kib": rss_before_kib, "rss_after_kib": proc_status_kib("VmRSS"),
                     "peak_kib": max(peak_app_kib, proc_status_kib("VmHWM") if peak_reset else 0)}
    _note(f"memory {out['memory']}")
    _emit(out)
    os._exit(0)


def _slab_scrolls(app, window, views, frames: int) -> dict:
    """The same closed loop on slabs: MIP 10 mm (Shift+M) and 60 mm (] up to it) on the coronal plane, MIP 60 mm
    on the sagittal one."""
    results = {}
    for index, name in ((1, "coronal"), (2, "sagittal")):
        view = views[index]
        window.reading.activate(index)
        window.reading_controller.draw_session()
        view.setFocus()
        app.processEvents()
        target = window.focusWidget() or view
        if window.reading.viewport.slab == "off":
            window.reading_controller.cycle_slab()
        for thickness in ((10.0, 60.0) if name == "coronal" else (60.0,)):
            while window.reading.viewport.slab_mm < thickness and window.reading.step_slab(1):
                pass
            window.reading_controller.draw_session()
            app.processEvents()
            key = f"{name}_{window.reading.viewport.slab}_{window.reading.viewport.slab_mm:g}mm"
            results[key] = _closed_loop_scroll(app, view, view.graphics.viewport(), target, frames)
            _note(f"slab {key} {results[key]}")
    return results


def _peer(app, plane, size, frames: int) -> dict:
    """A plain pyqtgraph ImageItem; each frame the coronal plane resliced with numpy and windowed to uint8."""
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer

    from benchmarks.mpr import _peer_reslice
    from medview.core.dicom.pixels import Window

    array, geometry = plane.source.array, plane.geometry
    transform = plane.source.transform(0)
    window = plane.initial_voi(0)
    window = window if isinstance(window, Window) else Window(40.0, 400.0)
    low = window.center - window.width / 2
    win = pg.GraphicsLayoutWidget()
    win.resize(size)
    vb = win.addViewBox(lockAspect=True, invertY=True)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    count = plane.steps.count

    def frame(k: int) -> None:
        step = k % (2 * (count - 1))
        index = step if step < count else 2 * (count - 1) - step
        values = _peer_reslice(array, geometry, plane.plane_at(index), transform.slope, transform.intercept)
        grey = np.clip((np.nan_to_num(values, nan=low) - low) * (255.0 / window.width), 0, 255).astype(np.uint8)
        item.setImage(grey, autoLevels=False, levels=(0, 255))

    frame(0)
    vb.autoRange(padding=0)
    win.show()
    app.processEvents()
    viewport = win.viewport()
    loop = _loop()
    state = {"n": 0, "t_end": None}

    def on_paint() -> None:
        state["n"] += 1
        if state["n"] >= frames:
            state["t_end"] = time.perf_counter()
            loop.quit()
            return
        frame(state["n"])

    watch = _PaintWatch(viewport, on_paint)
    QTimer.singleShot(120000, loop.quit)
    t0 = time.perf_counter()
    QTimer.singleShot(0, lambda: frame(0))
    loop.exec()
    viewport.removeEventFilter(watch.filter)
    seconds = (state["t_end"] or time.perf_counter()) - t0
    win.close()
    return {"frames_painted": state["n"], "seconds": seconds, "fps": state["n"] / seconds}


if __name__ == "__main__":
    scroll(*sys.argv[1:])
