"""Stored values of frames asked for one after another (`render`, scoring, thumbnails), compressed ones
decoded in the decoder pool and never in this process.

Native (uncompressed) data is read in-process with `pixels.stored_frame`, exactly as before: it cannot
crash the process. Compressed frames go to the pool (`decoder_pool`); given the order of what comes next
(`plan`), the reader starts the next few compressed frames while the caller works on the current one, so a
folder of JPEG 2000 files renders or scores on every core. A file whose decoder crashes is a
`DicomReadError` naming it and the reason; the next call works as usual.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from medview.core.dicom import decoded, pixels
from medview.core.dicom.decoder_pool import (
    BACKGROUND,
    INTERACTIVE,
    DecodeBatch,
    DecoderPool,
    SharedFrames,
    dataset_layout,
    decoder_pool,
    info_layout,
    is_compressed,
)
from medview.core.dicom.source import SourceRef
from medview.core.errors import DicomReadError

log = logging.getLogger(__name__)

# where the header gives no usable layout: a placeholder the worker answers with the real one
_PLACEHOLDER = ((1, 1), np.dtype(np.uint8))


@dataclass
class _Started:
    target: SharedFrames
    transfer_syntax: str
    layout: tuple | None = None
    retried: bool = False
    result: object = None


def transfer_syntax_of(ds) -> str:
    """The dataset's Transfer Syntax UID ("" when it has none)."""
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""


class FrameReader:
    """Stored frames of datasets, compressed ones from the decoder pool; see the module docstring.

    `ahead`: how many planned compressed frames may be decoding or decoded and waiting (default twice the
    pool's workers). Use as a context manager, or `close()`: what was started and not used is dropped.
    """

    def __init__(self, pool: DecoderPool | None = None, *, ahead: int | None = None,
                 priority: int = INTERACTIVE) -> None:
        self._pool = pool
        self._ahead = ahead
        self._priority = priority
        self._batch: DecodeBatch | None = None
        self._plan: list[tuple[SourceRef, int, object]] = []
        self._index: dict[tuple[SourceRef, int], int] = {}
        self._cursor = 0       # plan entries before it were asked for (or passed over)
        self._considered = 0   # plan entries before it were looked at for starting ahead
        self._started: dict[tuple[SourceRef, int], _Started] = {}
        self._arrived: dict = {}  # results of frames started ahead, not yet asked for
        self._compressed_seen = False
        self._crashed: dict[SourceRef, str] = {}  # files whose decoder crashed: their other frames are not tried

    # -- public --------------------------------------------------------------------------------------------
    def plan(self, entries: Iterable[tuple[SourceRef, int, object]]) -> None:
        """The frames that will be asked for next, in order: (ref, frame, InstanceInfo or None)."""
        for ref, frame, info in entries:
            self._index.setdefault((ref, int(frame)), len(self._plan))
            self._plan.append((ref, int(frame), info))

    def stored_frame(self, ds, ref: SourceRef, frame: int = 0) -> np.ndarray:
        """The stored values of frame `frame` of `ds` (read from `ref`), as `pixels.stored_frame` gives them.

        Raises DicomReadError ("<file>: <reason>") for a frame that cannot be decoded, a decoder crash
        included.
        """
        key = (ref, int(frame))
        self._move_to(key)
        ts = transfer_syntax_of(ds)
        if not is_compressed(ts):
            self._start_ahead()
            return pixels.stored_frame(ds, frame)
        self._compressed_seen = True
        if ref in self._crashed:
            self._start_ahead()
            raise DicomReadError(f"{ref.display()}: {self._crashed[ref]}")
        layout = dataset_layout(ds)
        # the viewer has it, or is decoding it: not decoded twice (the screen's own readers, thumbnails, wait
        # for no load: the frame they ask for may be far from where the viewer decodes)
        wait_s = decoded.WAIT_S if self._priority == BACKGROUND else 0.0
        reused = decoded.frame_when_ready(ref, frame, layout, wait_s) if layout is not None else None
        if reused is not None:
            self._drop(key)
            self._start_ahead()
            return reused
        started = self._started.pop(key, None)
        if started is None:
            started = self._start(key, layout or _PLACEHOLDER, ts)
        self._start_ahead()
        return self._finish(key, started)

    def close(self) -> None:
        if self._batch is not None:
            self._batch.close()
            self._batch = None
        for started in self._started.values():
            started.target.unlink()
        self._started.clear()
        self._arrived.clear()

    def __enter__(self) -> "FrameReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- inside --------------------------------------------------------------------------------------------
    def _pool_(self) -> DecoderPool:
        if self._pool is None:
            self._pool = decoder_pool()
        return self._pool

    def _batch_(self) -> DecodeBatch:
        if self._batch is None:
            self._batch = self._pool_().batch(priority=self._priority)
        return self._batch

    def _move_to(self, key: tuple[SourceRef, int]) -> None:
        """Past the plan entries before `key`; frames started for skipped entries are dropped."""
        at = self._index.get(key)
        if at is None or at < self._cursor:
            return
        for ref, frame, _ in self._plan[self._cursor:at]:
            self._drop((ref, frame))
        self._cursor = at + 1

    def _drop(self, key: tuple[SourceRef, int]) -> None:
        """A frame started ahead that is no longer wanted from the pool."""
        started = self._started.pop(key, None)
        if started is not None:
            self._batch_().cancel([key])
            self._arrived.pop(key, None)
            started.target.unlink()

    def _start(self, key: tuple[SourceRef, int], layout, transfer_syntax: str) -> _Started:
        shape, dtype = layout
        target = SharedFrames((1,) + tuple(shape), dtype)
        ref, frame = key
        self._batch_().submit(key, ref, frame, target, 0, transfer_syntax, position=self._index.get(key, 0))
        return _Started(target, transfer_syntax, (tuple(shape), np.dtype(dtype)) if layout is not _PLACEHOLDER
                        else None)

    def _start_ahead(self) -> None:
        """Start the compressed frames among the next `ahead` planned ones (once compressed data was met:
        reading ahead costs a header read per file, which uncompressed work should not pay)."""
        if not self._compressed_seen:
            return
        ahead = self._ahead or 2 * self._pool_().max_workers
        end = min(len(self._plan), self._cursor + ahead)
        start = max(self._considered, self._cursor)
        for i in range(start, end):
            ref, frame, info = self._plan[i]
            key = (ref, frame)
            if key in self._started or ref in self._crashed:
                continue
            if info is None:
                info = _header(ref)
            if info is None or not info.encapsulated or frame >= max(1, info.frames):
                continue
            layout = info_layout(info)
            if layout is not None and decoded.is_coming(ref, frame, layout,
                                                         loaded_only=self._priority != BACKGROUND):
                continue  # the viewer has it, or (for the AI) is decoding it
            self._started[key] = self._start(key, layout or _PLACEHOLDER, info.transfer_syntax)
        self._considered = max(self._considered, end)

    def _finish(self, key: tuple[SourceRef, int], started: _Started) -> np.ndarray:
        name = key[0].display()
        while True:
            result = self._wait(key, started.layout)
            if isinstance(result, np.ndarray):  # the viewer decoded it first: this decode is not needed
                self._batch_().cancel([key])
                started.target.unlink()
                return result
            if result.error is None:
                started.target.unlink()
                return started.target.array[0]
            if result.layout is not None and not started.retried:
                started.target.unlink()
                # the header's layout was not what the decoder gives: once more, into the layout it gave
                shape, dtype = result.layout
                again = self._start(key, (shape, np.dtype(dtype)), started.transfer_syntax)
                again.retried = True
                started = again
                continue
            started.target.unlink()
            if result.crashed:
                self._forget_file(key[0], result.error)
            raise DicomReadError(f"{name}: {result.error}")

    def _forget_file(self, ref: SourceRef, reason: str) -> None:
        """A file whose decoder crashed: the frames of it started ahead are dropped, later ones not tried."""
        self._crashed[ref] = reason
        dropped = [key for key in self._started if key[0] == ref]
        if dropped:
            self._batch_().cancel(dropped)
        for key in dropped:
            self._started.pop(key).target.unlink()
            self._arrived.pop(key, None)

    def _wait(self, key, layout=None):
        """The result of `key`, or the frame's values where a viewer's load has it first (`layout` known);
        results of frames started ahead that arrive meanwhile are kept."""
        pending = self._arrived
        if key in pending:
            return pending.pop(key)
        batch = self._batch_()
        while True:
            result = batch.next_result(timeout=0.05 if layout is not None else 0.5)
            if result is None:
                if self._pool_().closed:
                    raise DicomReadError(f"{key[0].display()}: the decoder processes were shut down")
                elsewhere = decoded.frame_when_ready(key[0], key[1], layout, wait_s=0) if layout else None
                if elsewhere is not None:
                    return elsewhere
                continue
            if result.key == key:
                return result
            pending[result.key] = result


def _header(ref: SourceRef):
    """The scan's header facts of one file (its fast reader), or None when it cannot tell."""
    from medview.core.dicom.scan import read_header

    try:
        with ref.open() as fp:
            size = fp.seek(0, 2)
            fp.seek(0)
            return read_header(ref, fp, size)
    except Exception:  # noqa: BLE001 - not started ahead; reading it for real reports what is wrong
        log.debug("header of %s not read ahead", ref.display(), exc_info=True)
        return None


def display_frame_of(ref: SourceRef, frame: int = 0, window=None, pool: DecoderPool | None = None) -> np.ndarray:
    """`pixels.display_frame` of one file's frame, a compressed frame decoded in the decoder pool (thumbnails,
    report images). Raises DicomReadError naming the file."""
    ds = pixels.read_dataset(ref)
    with FrameReader(pool) as reader:
        stored = reader.stored_frame(ds, ref, frame)
    return pixels.display_frame(ds, frame, window, stored=stored)
