"""Qt measurements, each in a fresh process: `python -m benchmarks._qt_child WHAT ARGS...` prints one JSON line.

A fresh process per measurement: one QApplication per process, and start-up and memory figures need a
clean interpreter. Paints are counted on the image view's viewport (the pyqtgraph GraphicsView), so a frame
counts only when it was actually painted. Used by benchmarks/viewer.py and benchmarks/ai.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _note(msg: str) -> None:
    """Progress on stderr (the parent shows the last line when a child fails)."""
    print(f"[qt-child] {msg}", file=sys.stderr, flush=True)


def _emit(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _loop():
    """A local event loop: QApplication.quit() would also close every window (Qt 6), spoiling what follows."""
    from PySide6.QtCore import QEventLoop

    return QEventLoop()


class _PaintWatch:
    """Event filter on a widget: calls `on_paint()` right after each Paint event was handled."""

    def __init__(self, widget, on_paint):
        from PySide6.QtCore import QEvent, QObject, QTimer

        class Filter(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 - Qt API
                if event.type() == QEvent.Type.Paint:
                    QTimer.singleShot(0, on_paint)  # after the paint itself
                return False

        self.filter = Filter()
        widget.installEventFilter(self.filter)


def _wait(app, predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.001)
    return predicate()


def _rss_after_start_up(app) -> int:
    """VmRSS (KiB) once the window's start-up has settled: its first paints, style and fonts, and the imports
    the app defers until after its first paint (pydicom, about 40 MiB): not the memory of what is opened next."""
    import gc

    from benchmarks._common import proc_status_kib

    _wait(app, lambda: False, 1.0)
    gc.collect()
    return proc_status_kib("VmRSS")


def _normal_size(window, width: int, height: int) -> None:
    """The window at this size, not maximised: the offscreen screen (800 px) is small enough that medview
    maximises its first window, and the figures are taken at one size from run to run."""
    from PySide6.QtCore import Qt

    window.setWindowState(Qt.WindowState.WindowNoState)
    window.resize(width, height)


# ---- start-up ------------------------------------------------------------------------------------------------
def startup(kind: str, t0: str) -> None:
    """Time from the parent's Popen (CLOCK_MONOTONIC, system-wide) to the main window's first paint."""
    t_start = float(t0)
    from PySide6.QtCore import QTimer

    if kind == "medview":
        from medview.app import create_app

        app, window = create_app(["medview", "gui"])
    else:  # peer: a bare PySide6 main window with pyqtgraph's image view in it
        import pyqtgraph as pg
        from PySide6.QtWidgets import QApplication, QMainWindow

        app = QApplication.instance() or QApplication(["peer"])
        window = QMainWindow()
        window.setCentralWidget(pg.GraphicsLayoutWidget())
        window.resize(1280, 800)
    from PySide6.QtCore import QEvent, QObject

    first: dict = {}

    class FirstPaint(QObject):
        """Notes the time and whether torch is imported at the first Paint event itself (synchronously: the
        app may start importing torch in a worker thread right after its first paint, which is allowed)."""

        def eventFilter(self, obj, event):  # noqa: N802 - Qt API
            if event.type() == QEvent.Type.Paint and not first:
                first["t"] = time.monotonic()
                first["torch"] = "torch" in sys.modules
                QTimer.singleShot(0, app.quit)
            return False

    watch = FirstPaint()
    app.installEventFilter(watch)  # any widget's first paint
    window.show()
    QTimer.singleShot(10000, app.quit)
    app.exec()
    _emit({"shown_s": first.get("t", float("nan")) - t_start, "torch_imported": first.get("torch", True)})
    os._exit(0)  # skip teardown (workers, settings): not part of start-up


# ---- the viewer on a CT series ---------------------------------------------------------------------------------
def viewer(folder: str, frames_target: str = "600") -> None:
    """First image after opening a series, scrolling fps, W/L ms per update; plus the plain-pyqtgraph peers."""
    from medview.app import create_app

    app, window = create_app(["medview", "gui"])
    _normal_size(window, 1280, 900)
    window.show()
    app.processEvents()
    view = _find(window, "viewer")
    viewport = view.graphics.viewport()
    out: dict = {}

    # 1. open the folder (scan) and wait for its first image, then re-open the case: the series alone
    t_open = time.perf_counter()
    window.cases.open_paths([folder])
    if not _wait(app, lambda: view._shown is not None, 60):
        raise RuntimeError("no image was shown within 60 s of opening the folder")
    out["folder_to_first_image_ms"] = (time.perf_counter() - t_open) * 1e3
    _wait(app, lambda: bool(view._load_finished), 120)
    study = window.cases.case
    window.cases.close_case()
    app.processEvents()
    first_paint: list[float] = []

    def painted_first() -> None:
        if not first_paint and view._shown is not None:
            first_paint.append(time.perf_counter())

    watch = _PaintWatch(viewport, painted_first)  # noqa: F841
    t0 = time.perf_counter()
    window.cases.open_case(study)
    if not _wait(app, lambda: bool(first_paint), 30):
        raise RuntimeError("the re-opened series showed no image within 30 s")
    out["series_first_image_ms"] = (first_paint[0] - t0) * 1e3
    _note(f"first image {out['series_first_image_ms']:.1f} ms")
    if not _wait(app, lambda: bool(view._load_finished), 120):
        raise RuntimeError("the series did not finish loading within 120 s")
    out["slices"] = int(view.state.count)
    viewport.removeEventFilter(watch.filter)

    # 2. scrolling: Down held; each key is sent as soon as the previous frame was painted (closed loop), so
    #    every frame counted was painted, and the rate is what the viewer sustains
    view.setFocus()
    app.processEvents()
    target = window.focusWidget() or view
    out["scroll"] = _closed_loop_scroll(app, view, viewport, target, int(frames_target))
    _note(f"scroll {out['scroll']}")

    # 3. window/level drag with the mouse: each move is sent when the previous update was painted
    out["wl"] = _closed_loop_drag(app, view, viewport)
    _note(f"W/L {out['wl']}")

    # 4. peers in the same process: a plain pyqtgraph ImageItem fed int16 frames with explicit levels
    #    (scrolling), and numpy windowing to uint8 + setImage per update (W/L), both painted
    out["peer"] = _peers(app, view.display.array if view.display is not None else None)
    _emit(out)
    os._exit(0)


def _find(window, name):
    from PySide6.QtWidgets import QWidget

    w = window.findChild(QWidget, name)
    if w is None:
        raise RuntimeError(f"no widget named {name!r} in the main window")
    return w


def _closed_loop_scroll(app, view, viewport, target, frames: int) -> dict:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtTest import QTest

    count = view.state.count
    view.go(0)
    app.processEvents()
    loop = _loop()
    state = {"painted": 0, "last": view.state.index, "sent": 0, "dir": Qt.Key.Key_Down, "t_end": None}
    frames = min(frames, 2 * (count - 1))
    method = {"how": "QTest.keyPress(Key_Down) on the focus widget"}

    def press() -> None:
        if state["sent"] == 0:
            before = view.state.index
            QTest.keyPress(target, state["dir"])
            if view.state.index == before:  # the key did not reach the shortcut: drive the view directly
                method["how"] = "ImageView.step(1) (the key press did not change the image)"
                view.step(1)
        elif method["how"].startswith("QTest"):
            QTest.keyPress(target, state["dir"])
        else:
            view.step(1 if state["dir"] == Qt.Key.Key_Down else -1)
        state["sent"] += 1

    def on_paint() -> None:
        idx = view.state.index
        if idx != state["last"] and view._shown == idx:
            state["last"] = idx
            state["painted"] += 1
            if state["painted"] >= frames:
                state["t_end"] = time.perf_counter()
                loop.quit()
                return
            if idx >= count - 1:
                state["dir"] = Qt.Key.Key_Up
            elif idx <= 0:
                state["dir"] = Qt.Key.Key_Down
            press()

    watch = _PaintWatch(viewport, on_paint)
    QTimer.singleShot(60000, loop.quit)
    t0 = time.perf_counter()
    QTimer.singleShot(0, press)
    loop.exec()
    viewport.removeEventFilter(watch.filter)
    t_end = state["t_end"] or time.perf_counter()
    return {"frames_painted": state["painted"], "keys_sent": state["sent"], "seconds": t_end - t0,
            "fps": state["painted"] / (t_end - t0), "method": method["how"]}


def _closed_loop_drag(app, view, viewport, updates: int = 200) -> dict:
    from PySide6.QtCore import QPoint, Qt, QTimer
    from PySide6.QtTest import QTest

    view.set_tool("window")
    view.fit()
    app.processEvents()
    centre = viewport.rect().center()
    start_window = view.state.window
    _mouse(viewport, "press", centre)
    # past pyqtgraph's drag threshold (0.4 cm, or 0.5 s) first
    for dx in (10, 20, 30, 40):
        _mouse(viewport, "move", centre + QPoint(dx, dx))
        app.processEvents()
    how = "left-button mouse drag (QMouseEvents) on the image view's viewport"
    if view.state.window == start_window:
        how = "ImageView.set_window per update (the synthetic drag did not reach pyqtgraph)"
    loop = _loop()
    state = {"n": 0, "t_end": None, "last": view.state.window, "step": 0}

    def move() -> None:
        state["step"] += 1
        k = state["step"]
        if how.startswith("left-button"):
            _mouse(viewport, "move", centre + QPoint(40 + (k % 120), 40 + (k % 80)))
        else:
            from medview.core.dicom.pixels import Window

            w = start_window
            view.set_window(Window(w.center + k % 120, max(1.0, w.width + 2 * (k % 80))))

    def on_paint() -> None:
        if view.state.window != state["last"]:
            state["last"] = view.state.window
            state["n"] += 1
            if state["n"] >= updates:
                state["t_end"] = time.perf_counter()
                loop.quit()
                return
        move()

    def on_paint_counted() -> None:
        state["paints"] = state.get("paints", 0) + 1
        on_paint()

    def watchdog() -> None:  # a move that changed nothing paints nothing: send the next one
        if state.get("paints", 0) == state.get("seen", -1):
            state["resends"] = state.get("resends", 0) + 1
            move()
        state["seen"] = state.get("paints", 0)

    watch = _PaintWatch(viewport, on_paint_counted)
    dog = QTimer()
    dog.timeout.connect(watchdog)
    dog.start(100)
    QTimer.singleShot(60000, loop.quit)
    t0 = time.perf_counter()
    QTimer.singleShot(0, move)
    loop.exec()
    dog.stop()
    viewport.removeEventFilter(watch.filter)
    _mouse(viewport, "release", centre)
    t_end = state["t_end"] or time.perf_counter()
    n = max(1, state["n"])
    return {"updates_painted": state["n"], "seconds": t_end - t0, "ms_per_update": (t_end - t0) / n * 1e3,
            "method": how, "watchdog_resends": state.get("resends", 0)}


def _mouse(widget, kind: str, pos) -> None:
    """A left-button mouse event as the window system sends it (buttons held during moves)."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}
    button = Qt.MouseButton.NoButton if kind == "move" else Qt.MouseButton.LeftButton
    buttons = Qt.MouseButton.NoButton if kind == "release" else Qt.MouseButton.LeftButton
    local = QPointF(pos)
    event = QMouseEvent(types[kind], local, QPointF(widget.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def _peers(app, volume) -> dict:
    """Plain pyqtgraph in the same window size: int16 frames (scroll) and numpy windowing (W/L)."""
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer

    if volume is None:
        return {}
    vol = np.ascontiguousarray(volume[: min(len(volume), 300)])
    if vol.dtype != np.int16:
        vol = vol.astype(np.int16)  # the peer is fed stored CT values as pydicom gives them
    win = pg.GraphicsLayoutWidget()
    win.resize(1000, 850)
    vb = win.addViewBox(lockAspect=True)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    lo, hi = float(np.percentile(vol[0], 1)), float(np.percentile(vol[0], 99))
    item.setImage(vol[0], autoLevels=False, levels=(lo, hi))
    win.show()
    app.processEvents()
    viewport = win.viewport()
    result = {}

    def loop(step, n):
        loop = _loop()
        state = {"n": 0, "t_end": None}

        def on_paint() -> None:
            state["n"] += 1
            if state["n"] >= n:
                state["t_end"] = time.perf_counter()
                loop.quit()
                return
            step(state["n"])

        watch = _PaintWatch(viewport, on_paint)
        QTimer.singleShot(60000, loop.quit)
        t0 = time.perf_counter()
        QTimer.singleShot(0, lambda: step(0))
        loop.exec()
        viewport.removeEventFilter(watch.filter)
        return state["n"], (state["t_end"] or time.perf_counter()) - t0

    n, secs = loop(lambda k: item.setImage(vol[k % len(vol)], autoLevels=False, levels=(lo, hi)), 300)
    result["scroll_fps"] = n / secs
    frame = vol[len(vol) // 2].astype(np.float32)

    def wl(k: int) -> None:
        c, w = 40.0 + k % 120, 400.0 + 2 * (k % 80)
        img = np.clip((frame - (c - w / 2)) * (255.0 / w), 0, 255).astype(np.uint8)
        item.setImage(img, autoLevels=False, levels=(0, 255))

    n, secs = loop(wl, 200)
    result["wl_ms_per_update"] = secs / n * 1e3
    win.close()
    return result


# ---- memory of an open CT --------------------------------------------------------------------------------------
def memory(folder: str) -> None:
    """Resident memory of the app with a CT open and fully loaded, minus the app before opening it."""
    from benchmarks._common import proc_status_kib, reset_peak_rss
    from medview.app import create_app

    app, window = create_app(["medview", "gui"])
    window.show()
    app.processEvents()
    view = _find(window, "viewer")
    import gc

    # the AI worker imports torch and loads its model right after the first paint: let it settle first, so
    # the figure is the memory of the open CT, not of torch
    ai = getattr(window, "ai", None)
    _wait(app, lambda: getattr(getattr(ai, "worker", None), "bundle", None) is not None, 30)
    gc.collect()
    time.sleep(0.2)
    app.processEvents()
    before = proc_status_kib("VmRSS")
    hwm_ok = reset_peak_rss()
    window.cases.open_paths([folder])
    if not _wait(app, lambda: view._shown is not None and bool(view._load_finished), 300):
        raise RuntimeError("the CT did not finish loading within 300 s")
    for _ in range(20):
        app.processEvents()
    gc.collect()
    after = proc_status_kib("VmRSS")
    peak = proc_status_kib("VmHWM") if hwm_ok else None
    stored = int(view.display.array.nbytes) if view.display is not None else None
    insts = window.cases.stacks[window.stack_index].stack.instances
    stored_declared = sum(i.rows * i.columns * max(1, i.frames) * i.samples_per_pixel * (i.bits_allocated // 8)
                          for i in insts)
    _emit({"open_kib": after - before, "peak_kib": (peak - before) if peak else None, "stored_bytes": stored_declared,
           "volume_bytes": stored, "slices": len(insts)})
    os._exit(0)


# ---- GUI responsiveness while the AI worker scores ----------------------------------------------------------
def ai_gui(folder: str, expected: str, mode: str = "app") -> None:
    """Event-loop stalls (1 ms precise timer, QElapsedTimer) from opening a folder of radiographs until the
    app's AI worker has scored them all; and the time until the first case in the worklist is a flagged one.

    mode "own" (the peer): the app's AI controller is kept from starting, and the benchmark runs the same
    InferenceWorker class itself with its results going nowhere: the stalls the worker alone causes."""
    from PySide6.QtCore import QElapsedTimer, QThread, Qt, QTimer

    from medview.app import create_app

    if mode == "own":
        from medview.qt.ai import ai_controller

        ai_controller.AiController.start = lambda self: None

    n_expected = int(expected)
    app, window = create_app(["medview", "gui"])
    _normal_size(window, 1280, 900)
    window.show()
    app.processEvents()
    clock = QElapsedTimer()
    clock.start()
    intervals: list[tuple[float, float]] = []  # (time s, interval ms)
    state = {"last": 0, "results": 0, "t_first_result": None, "t_done": None, "t_flagged": None,
             "worker": None, "t_open": None}


    def worker_of_app():
        for thread in window.findChildren(QThread) + app.findChildren(QThread):
            if thread.objectName() == "inference-worker":
                return thread
        return None

    def on_result(_result) -> None:
        state["results"] += 1
        now = clock.nsecsElapsed() / 1e9
        if state["t_first_result"] is None:
            state["t_first_result"] = now
        if state["results"] >= n_expected and state["t_done"] is None:
            state["t_done"] = now
            QTimer.singleShot(200, app.quit)

    def flagged_first() -> bool:
        try:
            proxy = window.worklist.proxy
        except AttributeError:
            return False
        if proxy.rowCount() == 0:
            return False
        from medview.qt.worklist.worklist_model import COL_AI

        text = str(proxy.index(0, COL_AI).data() or "").lower()
        return "flag" in text and "not" not in text

    def tick() -> None:
        ns = clock.nsecsElapsed()
        if state["last"]:
            intervals.append((ns / 1e9, (ns - state["last"]) / 1e6))
        state["last"] = ns
        if state["worker"] is None:
            worker = worker_of_app()
            if worker is not None:
                state["worker"] = worker
                worker.result_ready.connect(on_result, Qt.ConnectionType.QueuedConnection)
        if state["t_flagged"] is None and flagged_first():
            state["t_flagged"] = ns / 1e9
        if (state["worker"] is None and state["t_open"] is not None and getattr(window, "studies", None)
                and (mode == "own" or ns / 1e9 - state["t_open"] > 3.0)):
            start_own_worker()

    def start_own_worker() -> None:
        """The app started no AI worker (not wired yet): run the same worker class, owned by the benchmark,
        so the stall figure still measures the GUI thread while it scores (the results are not shown)."""
        from medview.qt.workers.inference import InferenceJob, InferenceWorker
        from medview.resources import bundled_model_path

        worker = InferenceWorker(bundled_model_path(), "cpu", use_cache=False, parent=window)
        state["worker"] = worker
        state["own_worker"] = True
        worker.result_ready.connect(on_result, Qt.ConnectionType.QueuedConnection)
        worker.start()
        jobs = [job for study in window.cases.studies for series in study.series for inst in series.instances
                for job in InferenceJob.for_instance(inst)]
        worker.enqueue(jobs)

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(1)
    timer.timeout.connect(tick)
    timer.start()
    QTimer.singleShot(570000, app.quit)

    def open_folder() -> None:
        state["t_open"] = clock.nsecsElapsed() / 1e9
        window.cases.open_paths([folder])

    QTimer.singleShot(50, open_folder)
    app.exec()
    timer.stop()
    t0 = state["t_first_result"]
    t1 = state["t_done"] or clock.nsecsElapsed() / 1e9
    window_ms = sorted(ms for t, ms in intervals if t0 is not None and t0 <= t <= t1)
    all_ms = sorted(ms for _, ms in intervals)

    def pct(values, q):
        return values[min(len(values) - 1, int(q * len(values)))] if values else None

    _emit({
        "worker_found": state["worker"] is not None, "own_worker": state.get("own_worker", False),
        "results": state["results"], "expected": n_expected,
        "scoring_s": (t1 - t0) if t0 is not None else None,
        "stall_max_ms": window_ms[-1] if window_ms else None, "stall_p99_ms": pct(window_ms, 0.99),
        "ticks": len(window_ms), "whole_run_stall_max_ms": all_ms[-1] if all_ms else None,
        "first_flagged_s": (state["t_flagged"] - state["t_open"]) if state["t_flagged"] else None,
    })
    os._exit(0)


if __name__ == "__main__":
    what, *args = sys.argv[1:]
    {"startup": startup, "viewer": viewer, "memory": memory, "ai_gui": ai_gui}[what](*args)
