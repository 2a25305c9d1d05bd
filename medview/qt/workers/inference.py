"""The app's long-lived AI worker: one QThread that owns the model and scores queued images.

Why a thread of its own: torch's thread count and `inference_mode` are per thread, and the model must be
loaded once, not per request; so `run()` sets both, loads the bundle and warms it up *inside* the thread.
The GUI hands it jobs (`enqueue`), may move the open case to the front (`prioritise`), `cancel`s what is
queued, and `stop`s it on quit. Results leave as plain data (`InferenceResult`) through queued signals:
the worker never touches a widget. One image that cannot be read or scored is an error result; the queue
goes on. Results already in the SQLite cache (same SOP Instance UID, frame, model checksum and metadata) are
returned without running the model. That scoring loop is core's `FrameScorer`, shared with `medview infer`;
this thread adds the queue, the priority of the open case and cancelling between images.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Iterable

from PySide6.QtCore import QCoreApplication, QThread, Signal

from medview.core.inference.results import (  # noqa: F401 - the AI controller imports them from here
    ERROR,
    NOT_APPLICABLE,
    OK,
    InferenceJob,
    InferenceResult,
)

log = logging.getLogger(__name__)


class InferenceWorker(QThread):
    """Scores queued images in the background with one model loaded for the life of the app."""

    model_ready = Signal(object)     # ModelBundle: name, version, labels, thresholds for the findings panel
    model_failed = Signal(str)       # why the model cannot be used (the worker then stops)
    result_ready = Signal(object)    # InferenceResult
    progress = Signal(int, int)      # done, total of the current run of the queue
    idle = Signal()                  # the queue ran empty

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        *,
        batch_size: int = 8,
        num_threads: int | None = None,
        use_cache: bool = True,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("inference-worker")
        self._model_path = model
        self._device = device
        self._batch_size = max(1, batch_size)
        self._num_threads = num_threads
        self._use_cache = use_cache
        self._cond = threading.Condition()
        self._queue: deque[InferenceJob] = deque()
        self._queued: set[tuple[str, int]] = set()
        self._priority: str | None = None
        self._stop = False
        # cancel() starts a new generation; a batch scores on while its generation is current. (An Event cleared
        # by the next enqueue let the old folder's batch run on when a new folder was opened: cancel, enqueue.)
        self._generation = 0
        self._done = 0
        self._total = 0
        self.bundle = None  # set in the worker thread once loaded
        app = QCoreApplication.instance()
        if app is not None:  # stop cleanly on quit even if the owner forgets to
            app.aboutToQuit.connect(self.stop)

    # -- called from the GUI thread --------------------------------------------------------------------------
    def enqueue(self, jobs: Iterable[InferenceJob]) -> int:
        """Add jobs (ones already queued are ignored); returns how many were added."""
        added = 0
        with self._cond:
            for job in jobs:
                if job.key in self._queued:
                    continue
                self._queue.append(job)
                self._queued.add(job.key)
                added += 1
            self._total += added
            self._cond.notify_all()
        return added

    def prioritise(self, study_uid: str | None) -> None:
        """Score this study's images next, those queued and those queued later (the case the reader opened);
        None: plain queue order again."""
        with self._cond:
            self._priority = study_uid

    def cancel(self) -> int:
        """Drop every queued job; the batch being scored stops before its next image. Returns the count."""
        with self._cond:
            dropped = len(self._queue)
            self._queue.clear()
            self._queued.clear()
            self._total -= dropped
            self._generation += 1
            self._cond.notify_all()
        return dropped

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def stop(self, timeout_ms: int = 10000) -> bool:
        """Ask the thread to finish (after the image in hand) and wait for it; True when it has ended."""
        with self._cond:
            self._stop = True
            self._generation += 1
            self._cond.notify_all()
        return self.wait(timeout_ms) if self.isRunning() else True

    # -- the worker thread -----------------------------------------------------------------------------------
    def run(self) -> None:  # noqa: D102 - documented in the module docstring
        import torch

        from medview.core.errors import MedviewError
        from medview.core.inference.bundle import load_bundle
        from medview.core.inference.cache import ResultCache
        from medview.core.inference.engine import Engine
        from medview.core.inference.scoring import FrameScorer

        # thread count and inference mode are per thread: set them here, in the thread that infers;
        # a low priority and one core left free (of torch's default, the physical cores) keep the GUI thread
        # first in line for the CPU: with every core busy the longest event-loop stall measured 43-53 ms
        self.setPriority(QThread.Priority.LowPriority)
        Engine.configure_thread(self._num_threads or max(1, torch.get_num_threads() - 1))
        with torch.inference_mode():
            try:
                bundle = load_bundle(self._model_path)
                engine = Engine(bundle, device=self._device, batch_size=self._batch_size)
                engine.warm_up()
            except MedviewError as exc:
                self.model_failed.emit(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - whatever torch raises, the app must go on without AI
                log.exception("model could not be loaded")
                self.model_failed.emit(f"the model could not be loaded: {exc}")
                return
            self.bundle = bundle
            self.model_ready.emit(bundle)
            cache = ResultCache() if self._use_cache else None
            scorer = FrameScorer(engine, cache, lanes=1)  # see FrameScorer: the GUI thread and the GIL
            try:
                while True:
                    batch, generation = self._next_batch()  # a cancel from now on ends this batch
                    if batch is None:
                        break
                    scored = 0
                    for result in scorer.score(batch, cancelled=lambda g=generation: self._generation != g):
                        self._emit(result)  # as each is known: the findings panel fills in as it goes
                        scored += 1
                    if scored < len(batch):  # cut short by a cancel: what it left is no longer to come
                        with self._cond:
                            self._total = max(self._done, self._total - (len(batch) - scored))
            finally:
                if cache is not None:
                    cache.close()

    def _next_batch(self) -> tuple[list[InferenceJob] | None, int]:
        """Up to batch_size jobs, the priority study's first, and the generation they were taken in; blocks
        while idle; no jobs (None) when stopping."""
        with self._cond:
            while not self._queue and not self._stop:
                if self._total:
                    self._done = self._total = 0
                    self.idle.emit()
                self._cond.wait()
            if self._stop:
                return None, self._generation
            batch: list[InferenceJob] = []
            if self._priority:
                for job in list(self._queue):
                    if len(batch) == self._batch_size:
                        break
                    if job.study_uid == self._priority:
                        batch.append(job)
                for job in batch:
                    self._queue.remove(job)
            while self._queue and len(batch) < self._batch_size:
                batch.append(self._queue.popleft())
            for job in batch:
                self._queued.discard(job.key)
            return batch, self._generation

    def _emit(self, result: InferenceResult) -> None:
        with self._cond:
            self._done += 1
            done, total = self._done, max(self._total, self._done)
        self.result_ready.emit(result)
        self.progress.emit(done, total)
