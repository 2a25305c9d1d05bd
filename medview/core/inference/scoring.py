"""Scoring jobs (one frame of one file each): the one loop behind the app's AI worker and `medview infer`.

Why one loop: both need the same rules, and a multi-frame file must be read once for all its frames, not
once per frame. Compressed frames are decoded in the decoder pool's processes (`FrameReader`), or taken
from the viewer where it has decoded them; the next batch is read while lanes run the model on the current
one. A decoder that crashes on a file is that file's error. Images the model does not apply to are
"not_applicable"; results already in the cache (same SOP Instance UID, frame, model checksum and metadata)
are reused without running the model; an image that cannot be read or scored is an "error" result whose
reason names the file, and the other images still run.
No Qt; torch only through the engine the caller passes in.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np

from medview.core.errors import without_file
from medview.core.inference.results import (
    ERROR,
    NOT_APPLICABLE,
    OK,
    InferenceJob,
    InferenceResult,
    NotApplicable,
    Prediction,
    short_reason,
)

log = logging.getLogger(__name__)


class StoredFrame(NamedTuple):
    """One job's frame as read: its file's header (a pydicom Dataset), the frame number and stored values."""

    ds: object
    frame: int
    stored: np.ndarray


class OutOfScope(Exception):
    """An image whose header puts it outside the model's intended use (the message says why)."""


def other_modality(job: InferenceJob, bundle) -> str:
    return (f"other modality ({job.modality or 'unknown'}; the model reads "
            f"{', '.join(bundle.modalities)})")


def cached_result(cache, bundle, job: InferenceJob) -> InferenceResult | None:
    """The job's result known without the network: not applicable (another modality), or what the cache holds
    for the same pixels (instance, frame, the file's size and modification time), model checksum and
    metadata; None when the network must score it."""
    if not bundle.applies_to(job.modality):
        return InferenceResult(job, NOT_APPLICABLE, error=other_modality(job, bundle))
    if cache is None:
        return None
    hit = cache.get(job.sop_instance_uid, job.frame, bundle.sha256, bundle.results_key, pixel_key(job))
    if hit is None:
        return None
    if isinstance(hit, NotApplicable):
        return InferenceResult(job, NOT_APPLICABLE, error=hit.reason, cached=True)
    return InferenceResult(job, OK, hit, cached=True)


def pixel_key(job: InferenceJob) -> str:
    """What changes when the file's pixels change: its size and modification time (ns), with the instance."""
    try:
        size, mtime = job.ref.stat()
    except OSError:
        return ""
    return f"{size}:{mtime!r}"


class FrameScorer:
    """Scores jobs with one engine and an optional `ResultCache`, reading a file once for all its frames
    (jobs list a file's frames one after another, as `InferenceJob.for_instance` makes them).

    The last file read is kept between calls while frames of it are still to come, so the worker's small
    batches of one multi-frame file do not read it again; it is let go after its last frame.
    `raise_model_failures`: what the engine raises on a batch (a failed warm-up, wrong output shapes, a torch
    error) propagates, as `medview infer` has it (a ModelError is its exit 2); otherwise each image of that
    batch gets an error result and the rest go on, as the app has it.
    `lanes`: how many shares of a batch are windowed, measured and run at once (default: the engine's
    `parallel_calls`, for `infer` and `listen`). The app passes 1: its GUI thread would share the GIL with
    every lane, so it scores in one, where the engine still splits the network's calls (which release it).
    """

    def __init__(self, engine, cache=None, *, raise_model_failures: bool = False, lanes: int | None = None) -> None:
        self.engine = engine
        self.cache = cache
        self.raise_model_failures = raise_model_failures
        self.lanes = max(1, int(lanes or getattr(engine, "parallel_calls", 1)))
        self._file = None  # (SourceRef, dataset or the exception reading it raised, header only) of the last read
        self._frames = None  # the FrameReader of the current `score` call
        self._more_frames = False  # frames of that file after the last one scored

    def score(self, jobs: Iterable[InferenceJob], cancelled: Callable[[], bool] = lambda: False
              ) -> Iterator[InferenceResult]:
        """A result per job, as each is known: not-applicable and cached ones first (in job order), then the
        rest batch by batch (per batch, unreadable images, then the model's answers). Stops, between images,
        once `cancelled()` is true. The cache is read and, where an image needs the network, the network is
        checked (warmed up) in this call, before the first result: an unusable model raises here, before
        anything is reported."""
        ready: list[InferenceResult] = []
        todo: list[InferenceJob] = []
        for job in jobs:
            if cancelled():
                break
            known = cached_result(self.cache, self.engine.bundle, job)
            if known is None:
                todo.append(job)
            else:
                ready.append(known)
        if todo:
            self.engine.warm_up()
        return self._results(ready, todo, cancelled)

    def _results(self, ready: list[InferenceResult], todo: list[InferenceJob], cancelled: Callable[[], bool]
                 ) -> Iterator[InferenceResult]:
        from medview.core.dicom.decoder_pool import BACKGROUND
        from medview.core.dicom.frame_reader import FrameReader

        self._frames = FrameReader(priority=BACKGROUND)  # after the frames the reader is waiting for
        self._frames.plan((job.ref, job.frame, None) for job in todo)
        try:
            yield from ready
            yield from self._scored(todo, cancelled)
        finally:
            self._frames.close()
            if cancelled() or not self._more_frames:
                self._file = None  # a file's data is held only while more of its frames are to come

    def _scored(self, todo: list[InferenceJob], cancelled: Callable[[], bool]) -> Iterator[InferenceResult]:
        """Batch by batch. The next batch is read while this one is windowed, shrunk, run through the network
        and measured in lanes: `lanes` threads of their own, each with a share of the batch. So reading
        (mostly this thread's Python) and the rest (numpy and the network's calls, which release the GIL)
        share the cores. With several lanes a batch is handed to them as soon as it is read, queued behind
        the one they are running, so a lane that finishes its share first goes on with the next batch instead
        of waiting for the others. A cancel drops the batches not yet begun and waits for the ones running:
        the engine is never left busy (with one lane, nothing after the running batch is begun)."""
        size = self.engine.batch_size
        chunks = [todo[start:start + size] for start in range(0, len(todo), size)]
        lanes = self.lanes
        pool = (ThreadPoolExecutor(lanes, thread_name_prefix="medview-score", initializer=self.engine.configure_thread,
                                   initargs=(1,))  # torch's own ops there (the resize) on that one thread
                if len(chunks) > 1 or lanes > 1 else None)
        running: tuple[list[InferenceJob], list[Future]] | None = None  # the batch in the lanes, and its shares
        try:
            for chunk in chunks:
                batch, frames, unread, stopped = self._read(chunk, cancelled)
                queued = None
                if lanes > 1 and batch and not (stopped or cancelled()):
                    queued = (batch, self._run(pool, lanes, frames))
                if running is not None:
                    if cancelled():
                        return
                    yield from self._answers(*running)
                running = queued
                yield from unread
                if stopped or cancelled():
                    return
                if batch and lanes == 1:  # one lane: handed over once the batch before has been answered
                    running = (batch, self._run(pool, lanes, frames))
            if running is not None and not cancelled():
                yield from self._answers(*running)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _read(self, chunk: list[InferenceJob], cancelled: Callable[[], bool]
              ) -> tuple[list[InferenceJob], list[StoredFrame], list[InferenceResult], bool]:
        """One batch's frames: the jobs read, their stored frames, the results of those that could not be read
        or are out of scope, and whether a cancel stopped the reading."""
        batch, images, unread = [], [], []
        for job in chunk:
            if cancelled():
                return batch, images, unread, True
            try:
                images.append(self._image(job))
                batch.append(job)
            except OutOfScope as why:
                unread.append(self._not_applicable(job, str(why)))
            except Exception as exc:  # noqa: BLE001 - one bad file is one error result, never the end
                unread.append(InferenceResult(job, ERROR, error=short_reason(exc, job.ref.display())))
        return batch, images, unread, False

    def _run(self, pool: ThreadPoolExecutor | None, lanes: int, frames: list[StoredFrame]) -> list[Future]:
        """The model's answers on one batch: a share per lane in the pool (else all here, already done)."""
        if pool is not None:
            shares = min(lanes, len(frames))
            bounds = [len(frames) * i // shares for i in range(shares + 1)]
            return [pool.submit(self._model_answers, frames[a:b], lanes > 1) for a, b in zip(bounds, bounds[1:])]
        done: Future = Future()
        try:
            done.set_result(self._model_answers(frames, False))
        except Exception as exc:  # noqa: BLE001 - handed on as a lane would hand it on
            done.set_exception(exc)
        return [done]

    def _model_answers(self, frames: list[StoredFrame], one_call: bool) -> list[Prediction | NotApplicable | str]:
        """Each frame through the display pipeline as the model sees it, then the engine on them (`one_call`:
        in one network call, the other lanes making theirs): an answer per frame, a reason (str) for a frame
        the display pipeline cannot show."""
        from medview.core.inference.engine import frame_for_model  # torch: the engine has it loaded already

        images, failed = [], {}
        for i, (ds, frame, stored) in enumerate(frames):
            try:
                images.append(frame_for_model(self.engine.bundle.window, ds, frame, stored))
            except Exception as exc:  # noqa: BLE001 - that image is an error, the others go on
                failed[i] = short_reason(exc)
        engine = self.engine
        answers = iter((engine.predict_images(images, one_call=True) if one_call else engine.predict_images(images))
                       if images else ())
        return [failed[i] if i in failed else next(answers) for i in range(len(frames))]

    def _image(self, job: InferenceJob) -> StoredFrame:
        """The job's stored frame with its header; its file is read only when it is not the last one read.

        Where the scan's header facts came with the job, an uncompressed monochrome frame is read at its
        offset, a compressed one is decoded in the pool from the file, and pydicom reads the header only (or
        it is the one the viewer read): the pixel data is not read twice, nor parsed."""
        from medview.core.dicom import decoded, pixels
        from medview.core.dicom.loader import read_native_frame

        stored = read_native_frame(job.ref, job.frame, job.info) if job.info is not None else None
        # pixel data in this process only for a frame neither read at its offset nor decoded in the pool
        needs_pixels = stored is None and not (job.info is not None and job.info.encapsulated)
        if self._file is None or self._file[0] != job.ref or (needs_pixels and self._file[2]):
            try:
                ds = pixels.read_dataset(job.ref) if needs_pixels else decoded.header(job.ref)
                self._file = (job.ref, ds, not needs_pixels)
            except Exception as exc:  # noqa: BLE001 - remembered, so its other frames fail without a re-read
                self._file = (job.ref, exc, False)
        ds = self._file[1]
        if isinstance(ds, Exception):
            self._more_frames = False
            raise ds
        self._more_frames = job.frame + 1 < pixels.number_of_frames(ds)
        why = self.engine.bundle.out_of_scope(ds)
        if why is not None:
            raise OutOfScope(why)
        if stored is None:
            stored = self._frames.stored_frame(ds, job.ref, job.frame)
        return StoredFrame(ds, job.frame, stored)

    def _not_applicable(self, job: InferenceJob, reason: str) -> InferenceResult:
        """An image outside the model's use: remembered in the cache like a score, so it is not read again."""
        bundle = self.engine.bundle
        if self.cache is not None:
            self.cache.put(job.sop_instance_uid, job.frame, bundle.sha256, bundle.results_key,
                           NotApplicable(reason), pixel_key(job))
        return InferenceResult(job, NOT_APPLICABLE, error=reason)

    def _answers(self, batch: list[InferenceJob], shares: list[Future]) -> Iterator[InferenceResult]:
        """The model's answers on one batch: a result per job, stored in the cache when it is a prediction."""
        bundle = self.engine.bundle
        try:
            outcomes = [outcome for share in shares for outcome in share.result()]
        except Exception as exc:  # noqa: BLE001 - whatever torch raises, the images are errors and the rest go on
            if self.raise_model_failures:
                raise
            log.warning("a batch of %d images failed: %s", len(batch), exc)
            outcomes = [f"the model failed on this image: {short_reason(exc)}"] * len(batch)
        for job, outcome in zip(batch, outcomes):
            if isinstance(outcome, str):
                yield InferenceResult(job, ERROR, error=without_file(outcome, job.ref.display()))
                continue
            if isinstance(outcome, NotApplicable):
                yield self._not_applicable(job, outcome.reason)
                continue
            if self.cache is not None:
                self.cache.put(job.sop_instance_uid, job.frame, bundle.sha256, bundle.results_key, outcome,
                               pixel_key(job))
            yield InferenceResult(job, OK, outcome)
