"""Reading-in-context measurements, each in a fresh offscreen process:
`python -m benchmarks._reading_child linked FOLDER FRAMES` or `... prior FOLDER REPEATS`; one JSON line out.

- linked: the app on a CT study of four 512 x 512 series in one frame of reference, Ctrl+4 (2 x 2), all four
  loaded (the app's resident memory before opening and after, against the stored pixel bytes), S (linked), then
  Down sent to the active viewport each time every viewport has painted its new image, down the series and
  back; painted frames/s of each viewport. Peer, same process and window size: four plain pyqtgraph
  GraphicsViews in a grid, each fed its series' int16 frames with explicit levels, the next frame once all four
  were painted.
- prior: the app on demo radiographs with priors, scored by the AI first (so it is idle); a case that has a
  prior is opened and P pressed in the same turn of the event loop, its pixels read from disk again each time;
  milliseconds from `open_case` to the first paint of each of the two viewports. Peer: pydicom `dcmread` +
  `pixel_array` of the same two files, one after the other.
"""

from __future__ import annotations

import gc
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks._qt_child import (  # noqa: E402 - after the platform is chosen
    _emit,
    _loop,
    _normal_size,
    _note,
    _PaintWatch,
    _rss_after_start_up,
    _wait,
)


def _stored_bytes(stacks) -> int:
    """Pixel bytes the files declare for these stacks (rows x columns x frames x samples x bytes)."""
    return sum(i.rows * i.columns * max(1, i.frames) * i.samples_per_pixel * (i.bits_allocated // 8)
               for stack in stacks for i in stack.instances)


def linked(folder: str, frames_target: str = "200") -> None:
    from benchmarks._common import proc_status_kib
    from medview.app import create_app

    app, window = create_app(["medview", "gui"])
    _normal_size(window, 1600, 1000)
    window.show()
    before = _rss_after_start_up(app)
    window.cases.open_paths([folder])
    if not _wait(app, lambda: window.cases.case is not None, 120):
        raise RuntimeError("the CT study was not opened within 120 s")
    window.registry.action("layout.4").trigger()

    def all_loaded() -> bool:
        shown = window.reading_state()["viewports"]
        return (len(shown) == 4 and all(v["series_uid"] and v["loaded"] == v["frames"] for v in shown)
                and not window.cases.busy())

    if not _wait(app, all_loaded, 300):
        raise RuntimeError("the four series did not finish loading within 300 s")
    for _ in range(20):
        app.processEvents()
    gc.collect()
    after = proc_status_kib("VmRSS")
    stacks = {id(v.stack): v.stack for v in window.reading.viewports if v.stack is not None}
    out = {"memory": {"rss_before_open_kib": before, "rss_after_kib": after,
                      "stored_bytes": _stored_bytes(stacks.values()), "series": len(stacks)}}
    window.registry.action("reading.link").trigger()
    app.processEvents()
    views = window.viewports.views
    out["slices"] = [view.state.count for view in views]
    out["view_px"] = [views[0].width(), views[0].height()]
    out["scroll"] = _closed_loop(app, views, int(frames_target), window)
    _note(f"2x2 linked scroll {out['scroll']['fps']}")
    out["peer"] = _peer(app, [view.display.array for view in views], out["view_px"], int(frames_target))
    _emit(out)
    os._exit(0)


def _every_view_painted(viewports, shows_new, step, frames: int) -> tuple[int, list[int], float]:
    """Closed loop: `step()`, then again each time every viewport painted since (`shows_new(k)`: view k's
    paint shows the new frame), `frames` times; (steps, paints counted per view, seconds)."""
    from PySide6.QtCore import QTimer

    loop = _loop()
    done, painted = [False] * len(viewports), [0] * len(viewports)
    state = {"steps": 0, "t_end": None}

    def go() -> None:
        done[:] = [False] * len(done)
        step()

    def on_paint(k: int) -> None:
        if done[k] or not shows_new(k):
            return
        done[k] = True
        painted[k] += 1
        if not all(done):
            return
        state["steps"] += 1
        if state["steps"] >= frames:
            state["t_end"] = time.perf_counter()
            loop.quit()
            return
        go()

    watches = [_PaintWatch(vp, lambda k=k: on_paint(k)) for k, vp in enumerate(viewports)]
    QTimer.singleShot(120000, loop.quit)
    t0 = time.perf_counter()
    QTimer.singleShot(0, go)
    loop.exec()
    for vp, watch in zip(viewports, watches):
        vp.removeEventFilter(watch.filter)
    return state["steps"], painted, (state["t_end"] or time.perf_counter()) - t0


def _closed_loop(app, views, frames: int, window) -> dict:
    """Down (Up at the end) to the active viewport each time every viewport has painted its new image."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    count = min(view.state.count for view in views)
    active = window.viewer
    active.setFocus()
    app.processEvents()
    target = app.focusWidget() or active
    last = [view.state.index for view in views]
    direction = [Qt.Key.Key_Down]

    def shows_new(k: int) -> bool:
        idx = views[k].state.index
        if idx == last[k] or views[k]._shown != idx:
            return False
        last[k] = idx
        return True

    def step() -> None:
        if active.state.index >= count - 1:
            direction[0] = Qt.Key.Key_Up
        elif active.state.index <= 0:
            direction[0] = Qt.Key.Key_Down
        QTest.keyPress(target, direction[0])

    steps, painted, seconds = _every_view_painted([view.graphics.viewport() for view in views], shows_new, step,
                                                  min(frames, 2 * (count - 1)))
    fps = [n / seconds for n in painted]
    return {"steps": steps, "painted": painted, "seconds": seconds, "fps_each": fps, "fps": min(fps),
            "method": "QTest.keyPress(Down/Up) on the active viewport, next key once all four painted"}


def _peer(app, arrays, size, frames: int) -> dict:
    """Four plain pyqtgraph views in a grid of the app's viewport size, int16 frames + explicit levels."""
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtWidgets import QGridLayout, QWidget

    vols = [np.ascontiguousarray(a).astype(np.int16, copy=False) for a in arrays]
    n = min(len(v) for v in vols)
    host = QWidget()
    grid = QGridLayout(host)
    grid.setContentsMargins(0, 0, 0, 0)
    grid.setSpacing(2)
    items, viewports = [], []
    levels = (float(np.percentile(vols[0][0], 1)), float(np.percentile(vols[0][0], 99)))
    for k, vol in enumerate(vols):
        gv = pg.GraphicsView()
        vb = pg.ViewBox(lockAspect=True)
        gv.setCentralItem(vb)
        item = pg.ImageItem(axisOrder="row-major")
        vb.addItem(item)
        item.setImage(vol[0], autoLevels=False, levels=levels)
        grid.addWidget(gv, k // 2, k % 2)
        items.append(item)
        viewports.append(gv.viewport())
    host.resize(2 * size[0] + 2, 2 * size[1] + 2)
    host.show()
    _wait(app, lambda: False, 0.5)
    at = {"i": 0, "dir": 1}

    def step() -> None:
        at["i"] += at["dir"]
        if at["i"] >= n - 1 or at["i"] <= 0:
            at["dir"] = -at["dir"]
        for item, vol in zip(items, vols):
            item.setImage(vol[at["i"]], autoLevels=False, levels=levels)

    steps, painted, seconds = _every_view_painted(viewports, lambda k: True, step, min(frames, 2 * (n - 1)))
    host.close()
    fps = [p / seconds for p in painted]
    return {"steps": steps, "fps_each": fps, "fps": min(fps)}


def prior(folder: str, repeats: str = "5") -> None:
    from medview.app import create_app
    from medview.qt.ai.ai_controller import FLAGGED, NOT_APPLICABLE_TEXT, NOT_FLAGGED
    from medview.qt.worklist.worklist_model import COL_AI

    app, window = create_app(["medview", "gui"])
    _normal_size(window, 1600, 1000)
    window.show()
    window.cases.open_paths([folder])
    if not _wait(app, lambda: window.cases.case is not None and not window.cases.busy(), 120):
        raise RuntimeError("the radiographs were not opened within 120 s")
    final = (FLAGGED, NOT_FLAGGED, NOT_APPLICABLE_TEXT, "error")

    def scored() -> bool:
        proxy = window.worklist.proxy
        cells = [proxy.index(r, COL_AI).data() or "" for r in range(proxy.rowCount())]
        return bool(cells) and all(c.startswith(final) for c in cells)

    ai_idle = _wait(app, scored, 180)  # the AI scores first, so that it does not share the measured time
    with_prior = [s for s in window.cases.studies if window.reading.prior_of(s) is not None]
    if not with_prior:
        raise RuntimeError("no study with a prior in the folder")
    study = max(with_prior, key=lambda s: s.study_date)
    files = [study.stacks[0].instances[0].ref.path, window.reading.prior_of(study).stacks[0].instances[0].ref.path]

    def once() -> tuple[float, float]:
        window.cases.close_case()
        for _ in range(10):
            app.processEvents()
        gc.collect()
        first: dict[int, float] = {}

        def painted(k: int) -> None:
            views = window.viewports.views
            if k not in first and k < len(views) and views[k]._shown is not None:
                first[k] = time.perf_counter()

        cells = window.viewports.cells
        watches = [_PaintWatch(cell.view.graphics.viewport(), lambda k=k: painted(k))  # noqa: F841
                   for k, cell in enumerate(cells[:2])]
        t0 = time.perf_counter()
        window.cases.open_case(study)
        window.reading_controller.compare_with_prior()
        if not _wait(app, lambda: len(first) == 2, 30):
            raise RuntimeError("the case and its prior showed no images within 30 s")
        for cell, watch in zip(cells[:2], watches):
            cell.view.graphics.viewport().removeEventFilter(watch.filter)
        state = window.reading_state()["viewports"]
        assert [v["prior"] for v in state] == [False, True], state
        return (first[0] - t0) * 1e3, (first[1] - t0) * 1e3

    # once unmeasured: the second viewport's cell is made, the files are in the page cache
    window.cases.open_case(study)
    window.reading_controller.compare_with_prior()
    if not _wait(app, lambda: len(window.viewports.views) == 2 and all(
            view._shown is not None for view in window.viewports.views), 30):
        raise RuntimeError("the case and its prior showed no images within 30 s")
    runs = [once() for _ in range(int(repeats))]
    best = min(runs, key=max)
    import pydicom

    def peer() -> float:
        t0 = time.perf_counter()
        for f in files:
            pydicom.dcmread(f).pixel_array
        return (time.perf_counter() - t0) * 1e3

    peer_ms = min(peer() for _ in range(int(repeats)))
    shape = [study.stacks[0].instances[0].rows, study.stacks[0].instances[0].columns]
    _emit({"current_ms": best[0], "prior_ms": best[1], "runs": runs, "peer_ms": peer_ms, "ai_idle": ai_idle,
           "image_shape": shape, "modality": study.stacks[0].modality})
    os._exit(0)


if __name__ == "__main__":
    {"linked": linked, "prior": prior}[sys.argv[1]](*sys.argv[2:])
