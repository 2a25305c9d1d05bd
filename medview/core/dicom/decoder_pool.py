"""Compressed frames decoded in worker processes, written straight into shared memory.

Why processes: the native decoders (python-gdcm, CharLS, OpenJPEG) abort the whole process on some broken
streams (an uncaught C++ exception), and pylibjpeg-rle raises a `PanicException`, which is a
`BaseException`. A decoder that crashes here takes down only its worker: the pool starts another, the job's
file is reported with the reason in words ("the JPEG-LS decoder crashed on this file"), and every other job
goes on. The processes also decode in parallel, one frame per job, so a stack loads on every core.

How: a caller opens a `DecodeBatch` (one stack load, one `render` run), allocates the target with
`SharedFrames` (an array in `multiprocessing.shared_memory` the caller keeps as its stack array) and submits
jobs by file, frame index and slot. One dispatcher thread hands each idle worker the next job, best first:
batches of the viewer before background ones, and within a batch outward from the frame in focus
(`DecodeBatch.focus` re-sorts what is pending). A worker reads the file, decodes only that frame (straight
from its fragments where `fragments` can, else with the display pipeline's reader, `pixels.stored_frame`)
and writes it into its slot; only a few bytes of reply cross the pipe, never a pixel array.

Workers are started lazily (the first compressed frame pays for it, later ones reuse them; a worker
idle for `IDLE_TIMEOUT` stops, and the next job starts one again) from a
forkserver that has the decoders imported (spawn where there is no forkserver, and in a frozen app), never
by forking this process, which may run Qt and torch threads. As with any multiprocessing start method but
fork, a worker imports the main script again: a script that embeds medview keeps its work under
`if __name__ == "__main__":` (medview's own entry points do). Uncompressed data never comes here: reading
it cannot crash, so the loader reads it in-process (`loader.fast_path`).
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import logging
import multiprocessing
import os
import queue
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from multiprocessing.connection import wait as wait_for
from typing import Hashable, Iterable

import numpy as np

from medview.core.dicom.source import SourceRef

log = logging.getLogger(__name__)

#: batch priorities: what the reader looks at before what runs in the background (the AI's frames)
INTERACTIVE, BACKGROUND = 0, 1

#: seconds a worker may wait without a job before it stops (the next job starts one again)
IDLE_TIMEOUT = 45.0

#: the worker's default decode function, "module:function" (tests pass their own)
DEFAULT_DECODE = "medview.core.dicom._decoder_process:decode_frame"

_WORKER_MODULE = "medview.core.dicom._decoder_process"

# transfer syntax UID -> the codec named in a failure ("the JPEG 2000 decoder crashed on this file")
_CODECS = {
    "1.2.840.10008.1.2.4.50": "JPEG baseline",
    "1.2.840.10008.1.2.4.51": "JPEG extended",
    "1.2.840.10008.1.2.4.57": "JPEG lossless",
    "1.2.840.10008.1.2.4.70": "JPEG lossless",
    "1.2.840.10008.1.2.4.80": "JPEG-LS",
    "1.2.840.10008.1.2.4.81": "JPEG-LS",
    "1.2.840.10008.1.2.4.90": "JPEG 2000",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.92": "JPEG 2000",
    "1.2.840.10008.1.2.4.93": "JPEG 2000",
    "1.2.840.10008.1.2.4.201": "HTJ2K",
    "1.2.840.10008.1.2.4.202": "HTJ2K",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
    "1.2.840.10008.1.2.5": "RLE",
    "1.2.840.10008.1.2.1.99": "deflate",
}


def codec_name(transfer_syntax: str) -> str:
    """The decoder's name for a transfer syntax UID ("JPEG-LS"), "image" when it has no short name."""
    return _CODECS.get(str(transfer_syntax or "").strip(), "image")


def crash_reason(transfer_syntax: str) -> str:
    return f"the {codec_name(transfer_syntax)} decoder crashed on this file"


# --------------------------------------------------------------------------------------------- layout


def frame_layout(rows: int, columns: int, samples: int, bits_allocated: int, signed: bool,
                 photometric: str) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of one frame as `pixels.stored_frame` returns it, from the header; None when unknown.

    Monochrome: (rows, columns) in the stored integer type (1-bit data unpacked to uint8); colour: (rows,
    columns, 3), RGB in the stored type, PALETTE COLOR as uint8 RGB (PS3.3 C.7.6.3.1.5).
    """
    photometric = (photometric or "").strip().upper()
    if rows <= 0 or columns <= 0:
        return None
    if photometric == "PALETTE COLOR":
        return (rows, columns, 3), np.dtype(np.uint8)
    if bits_allocated == 1:
        dtype = np.dtype(np.uint8)
    elif bits_allocated in (8, 16, 32, 64):
        dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    else:
        return None
    if samples == 1:
        return (rows, columns), dtype
    if samples == 3:
        return (rows, columns, 3), dtype
    return None


def info_layout(inst) -> tuple[tuple[int, ...], np.dtype] | None:
    """`frame_layout` of an `InstanceInfo` (what the scan read)."""
    return frame_layout(inst.rows, inst.columns, max(1, inst.samples_per_pixel), inst.bits_allocated,
                        inst.pixel_representation == 1, inst.photometric)


def dataset_layout(ds) -> tuple[tuple[int, ...], np.dtype] | None:
    """`frame_layout` of a pydicom dataset's header; None when it lacks what is needed."""
    try:
        return frame_layout(int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1) or 1),
                            int(ds.BitsAllocated), int(ds.get("PixelRepresentation", 0) or 0) == 1,
                            str(ds.get("PhotometricInterpretation", "") or ""))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------- shared memory


def _shm_room() -> int | None:
    """Free bytes where POSIX shared memory lives (/dev/shm, often small in containers); None: not known."""
    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


class SharedFrames:
    """An array (frames, ...) in shared memory that worker processes fill by name.

    `array` is the caller's: a plain numpy array whose memory lives as long as any view of it does (this
    object is its base), so a stack's volume can be kept and sliced like any array. Where /dev/shm has no
    room for it (a small container default), the memory is a mapped temporary file instead.
    """

    def __init__(self, shape: tuple[int, ...], dtype) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.frame_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        nbytes = max(1, self.frame_bytes * self.shape[0])
        self._shm: shared_memory.SharedMemory | None = None
        self._file: np.memmap | None = None
        self._unlinked = False
        self.segment = ("", "")
        room = _shm_room()
        if room is None or nbytes + (64 << 20) <= room:
            self._shm = shared_memory.SharedMemory(create=True, size=nbytes)
            self.segment = ("shm", self._shm.name)
            view = ctypes.c_char.from_buffer(self._shm.buf)
            address = ctypes.addressof(view)
            del view  # the address is kept, not an export: close() can unmap once no array refers here
        else:
            fd, path = tempfile.mkstemp(prefix="medview-frames-")
            os.close(fd)
            self._file = np.memmap(path, dtype=np.uint8, mode="w+", shape=(nbytes,))
            self.segment = ("file", path)
            address = self._file.ctypes.data
        self.__array_interface__ = {"shape": self.shape, "typestr": self.dtype.str, "data": (address, False),
                                    "version": 3}

    @property
    def array(self) -> np.ndarray:
        """The frames; each call returns a new array over the same memory (its base is this object)."""
        return np.asarray(self)

    def unlink(self) -> None:
        """Remove the name: no new process can attach; the memory stays while this process maps it."""
        if self._unlinked or not self.segment[0]:
            return
        self._unlinked = True
        try:
            if self._shm is not None:
                self._shm.unlink()
            elif self.segment[0] == "file":
                os.unlink(self.segment[1])
        except OSError:
            pass

    def __del__(self) -> None:
        self.unlink()
        if self._shm is not None:
            try:
                self._shm.close()
            except (OSError, BufferError):
                pass


# --------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class DecodeTask:
    """What a worker needs for one frame: small and picklable; the pixels go through shared memory."""

    job_id: int
    path: str
    member: str | None
    frame: int
    transfer_syntax: str
    segment: tuple[str, str]       # ("shm", name) or ("file", path)
    shape: tuple[int, ...]         # of the whole target array
    dtype: str
    slot: int


@dataclass
class DecodeResult:
    """One job's outcome: `error` None when the frame is in its slot; `layout` (shape, dtype) set when the
    decoded frame did not fit the slot's layout (the error then says how); `crashed` when the decoder took
    its process down or ran past its time (the file's other frames are best not tried)."""

    key: Hashable
    slot: int
    error: str | None = None
    layout: tuple[tuple[int, ...], str] | None = None
    crashed: bool = False


@dataclass
class _Job:
    job_id: int
    key: Hashable
    position: int
    task: DecodeTask
    batch: "DecodeBatch"


class PoolUnavailable(RuntimeError):
    """The decoder processes cannot be started here (the reason is the message)."""


class DecodeBatch:
    """The frames one caller asked for (a stack load, a `render` run); results come back one by one.

    `submit` queues a frame; `results` / `next_result` give each job's `DecodeResult` exactly once, unless
    it was cancelled while still pending. Thread-safe; `close` when done (pending jobs are dropped).
    """

    def __init__(self, pool: "DecoderPool", priority: int, centre: int | None) -> None:
        self._pool = pool
        self.priority = priority
        self.centre = centre
        self.pending: list[_Job] = []  # sorted worst first: the next job is pending[-1]
        self.running: dict[int, _Job] = {}
        self.closed = False
        self._results: queue.SimpleQueue[DecodeResult] = queue.SimpleQueue()
        self._segments: set[tuple[str, str]] = set()

    # -- caller side ---------------------------------------------------------------------------------------
    def submit(self, key: Hashable, ref: SourceRef, frame: int, target: SharedFrames, slot: int,
               transfer_syntax: str, position: int | None = None) -> None:
        """Decode frame `frame` of `ref` into `target.array[slot]`; `position` orders it (default: `slot`)."""
        self.submit_many([(key, ref, frame, target, slot, transfer_syntax, position)])

    def submit_many(self, jobs: Iterable[tuple]) -> None:
        """`submit` for many at once (one re-sort): tuples (key, ref, frame, target, slot, transfer_syntax,
        position or None)."""
        self._pool._submit(self, list(jobs))

    def focus(self, position: int) -> None:
        """Decode outward from `position` from now on (the reader moved there); this batch goes first among
        those of its priority."""
        self._pool._focus(self, position)

    def cancel(self, keys: Iterable[Hashable] | None = None) -> set[Hashable]:
        """Drop pending jobs (all, or those of `keys`); returns the keys dropped. Running ones finish."""
        return self._pool._cancel(self, None if keys is None else set(keys))

    def next_result(self, timeout: float | None = None) -> DecodeResult | None:
        """The next finished job's result, waiting up to `timeout` seconds (None: no limit); None on timeout."""
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Drop what is pending and forget this batch; running jobs finish into memory nobody waits for."""
        self._pool._close(self)

    def __enter__(self) -> "DecodeBatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- pool side (under the pool's lock) -----------------------------------------------------------------
    def _sort_key(self, job: _Job):
        if self.centre is None:
            return (job.position, 0)
        distance = job.position - self.centre
        return (abs(distance), 1 if distance < 0 else 0)  # ties: the frame after the focus first

    def _resort(self) -> None:
        self.pending.sort(key=self._sort_key, reverse=True)

    def _deliver(self, result: DecodeResult) -> None:
        if not self.closed:
            self._results.put(result)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    jobs: list[_Job] = field(default_factory=list)  # handed over, in order: the first is being decoded
    started: float = 0.0      # when the first of `jobs` started (monotonic)
    limit: float = 0.0        # seconds that job may take
    idle_since: float = 0.0   # when it last had nothing to do (monotonic)

    def begin(self, limit: float) -> None:
        """Its first job starts now (or did, as far as this process can tell) and may take `limit` seconds."""
        self.started, self.limit = time.monotonic(), limit


def _context():
    """forkserver (fast worker starts, decoders imported once, nothing forked from this threaded process);
    spawn where there is none and in a frozen app."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods and not getattr(sys, "frozen", False):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([_WORKER_MODULE])
        return ctx
    return multiprocessing.get_context("spawn")


def default_workers() -> int:
    """One worker per core this process may use, at most 16 (each holds its own decoders and a file)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


class DecoderPool:
    """Worker processes that decode compressed frames into shared memory; see the module docstring.

    `workers`: at most this many processes, started as jobs wait. `decode`: "module:function" run in the
    worker for each job (`decode(task, out)`, `out` the slot's array). `time_limit(task)`: seconds a job may
    run before its worker is killed and the file reported (a decoder caught in a loop); default 30 s plus
    a second per MB of frame. `idle_timeout`: seconds a worker may go without a job before it stops, so that
    an app left open does not keep a process per core and their memory (None: never); the next job starts
    workers again, from the forkserver, in milliseconds. `queued`: jobs handed to a busy worker beyond the
    one it decodes, once every worker is busy, so that it goes on to the next frame without waiting for this
    process to answer (a loaded machine can take milliseconds to wake it: a whole HTJ2K frame); such a job
    is no longer re-ordered by `focus` nor dropped by `cancel`, and goes back to its batch if its worker dies.
    """

    def __init__(self, workers: int | None = None, *, decode: str = DEFAULT_DECODE,
                 time_limit=None, idle_timeout: float | None = IDLE_TIMEOUT, queued: int = 1) -> None:
        self.max_workers = max(1, workers or default_workers())
        self.queued = max(0, queued)
        self.decode = decode
        self._time_limit = time_limit or _default_time_limit
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._batches: list[DecodeBatch] = []  # service order within a priority: first is served first
        self._workers: list[_Worker] = []
        self._releases: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full buffer means a wake-up is already waiting
        self._closing = False
        self._broken: str | None = None
        self._ctx = None
        self._want_workers = 0  # started before any job waits (`start`)
        self.crashes = 0  # workers lost to a crash or a time limit (for logs and tests)

    # -- public --------------------------------------------------------------------------------------------
    def batch(self, *, priority: int = INTERACTIVE, centre: int | None = None) -> DecodeBatch:
        """A new batch; `centre`: the position decoded first and outward from (None: in position order)."""
        b = DecodeBatch(self, priority, centre)
        with self._lock:
            if self._closing:
                raise PoolUnavailable("the decoder pool has been shut down")
            self._batches.insert(0, b)
        return b

    def start(self) -> None:
        """Start the dispatcher and one worker now (the app does this when it meets compressed data, so
        the first image does not wait for a process to start)."""
        with self._lock:
            self._ensure_thread()
            self._want_workers = max(1, self._want_workers)
        self._wake()

    @property
    def closed(self) -> bool:
        """True once `shutdown` began: jobs not finished by then never report."""
        return self._closing

    def worker_pids(self) -> list[int]:
        """The live workers' process ids (tests, diagnostics)."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the workers (pending jobs are dropped); the pool cannot be used afterwards."""
        with self._lock:
            self._closing = True
            for b in self._batches:
                b.pending.clear()
                b.closed = True
            self._batches.clear()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._stop_workers(timeout)

    # -- called by batches ---------------------------------------------------------------------------------
    def _submit(self, batch: DecodeBatch, jobs: list[tuple]) -> None:
        made = []
        for key, ref, frame, target, slot, ts, position in jobs:
            job_id = next(self._ids)
            task = DecodeTask(job_id, ref.path, ref.member, int(frame), str(ts), target.segment, target.shape,
                              target.dtype.str, int(slot))
            made.append(_Job(job_id, key, int(slot if position is None else position), task, batch))
        with self._lock:
            if batch.closed:
                return
            if self._broken is not None or self._closing:
                reason = self._broken or "the decoder pool has been shut down"
                for job in made:
                    batch._deliver(DecodeResult(job.key, job.task.slot, reason))
                return
            for job in made:
                batch._segments.add(job.task.segment)
            batch.pending.extend(made)
            batch._resort()
            self._ensure_thread()
        self._wake()

    def _focus(self, batch: DecodeBatch, position: int) -> None:
        with self._lock:
            batch.centre = int(position)
            batch._resort()
            if batch in self._batches:
                self._batches.remove(batch)
                self._batches.insert(0, batch)

    def _cancel(self, batch: DecodeBatch, keys: set | None) -> set:
        with self._lock:
            if keys is None:
                dropped = {job.key for job in batch.pending}
                batch.pending.clear()
            else:
                dropped = {job.key for job in batch.pending if job.key in keys}
                batch.pending = [job for job in batch.pending if job.key not in keys]
        return dropped

    def _close(self, batch: DecodeBatch) -> None:
        with self._lock:
            batch.closed = True
            batch.pending.clear()
            if batch in self._batches:
                self._batches.remove(batch)
            self._releases.extend(batch._segments)
            batch._segments.clear()
        self._wake()

    # -- dispatcher ----------------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already waiting, or the pool is gone

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="medview-decoder-pool", daemon=True)
            self._thread.start()

    def _next_job(self) -> _Job | None:
        best: DecodeBatch | None = None
        for b in self._batches:
            if b.pending and (best is None or b.priority < best.priority):
                best = b
        if best is None:
            return None
        job = best.pending.pop()
        best.running[job.job_id] = job
        return job

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                releases, self._releases = self._releases, []
                handouts = self._hand_out(1)
                retired = self._retire_idle()
                waiting = sum(len(b.pending) for b in self._batches)
                missing = 0 if self._broken else min(self.max_workers - len(self._workers),
                                                     max(waiting, self._want_workers - len(self._workers)))
                if missing <= 0 and self.queued:  # every worker there will be is busy: queue the next ones
                    handouts += self._hand_out(1 + self.queued)
            for w, job in handouts:
                self._send(w, ("decode", job.task))
            if retired:
                self._stop(retired, timeout=2.0)
            for segment in releases:
                for w in list(self._workers):
                    self._send(w, ("release", segment))
            if missing > 0:
                self._start_workers(missing)
                continue
            self._wait_and_collect()

    def _hand_out(self, depth: int) -> list[tuple[_Worker, _Job]]:
        """Under the lock: the best pending jobs to the workers holding fewer than `depth`, the emptiest
        first, one round after another."""
        handouts = []
        while True:
            open_ = [w for w in self._workers if len(w.jobs) < depth]
            if not open_:
                return handouts
            for w in sorted(open_, key=lambda w: len(w.jobs)):
                job = self._next_job()
                if job is None:
                    return handouts
                if not w.jobs:
                    w.begin(self._time_limit(job.task))
                w.jobs.append(job)
                handouts.append((w, job))

    def _retire_idle(self) -> list[_Worker]:
        """Under the lock: the workers idle for `idle_timeout`, taken out of the pool (none is idle while a
        job waits: the handouts came first)."""
        if self._idle_timeout is None:
            return []
        now = time.monotonic()
        retired = [w for w in self._workers if not w.jobs and now - w.idle_since >= self._idle_timeout]
        if retired:
            self._workers = [w for w in self._workers if w not in retired]
            self._want_workers = 0  # `start`'s early worker has served its turn
        return retired

    def _send(self, worker: _Worker, message) -> None:
        try:
            worker.conn.send(message)
        except (OSError, ValueError):
            pass  # it died: its sentinel reports it and its job is failed there

    def _start_workers(self, count: int) -> None:
        for _ in range(count):
            try:
                if self._ctx is None:
                    self._ctx = _context()
                parent_conn, child_conn = self._ctx.Pipe()
                process = self._ctx.Process(target=_worker_entry, args=(child_conn, self.decode),
                                            name="medview-decoder", daemon=True)
                process.start()
                child_conn.close()
            except Exception as exc:  # noqa: BLE001 - go on with the workers there are, or fail every job
                log.warning("decoder processes cannot be started: %s", exc)
                with self._lock:
                    self.max_workers = max(1, len(self._workers))
                    alive = bool(self._workers)
                if not alive:
                    self._fail_everything(f"the decoder processes cannot be started ({exc})")
                return
            with self._lock:
                self._workers.append(_Worker(process, parent_conn, idle_since=time.monotonic()))

    def _fail_everything(self, reason: str) -> None:
        with self._lock:
            self._broken = reason
            for b in self._batches:
                for job in b.pending:
                    b._deliver(DecodeResult(job.key, job.task.slot, reason))
                b.pending.clear()

    def _wait_and_collect(self) -> None:
        with self._lock:
            workers = list(self._workers)
            now = time.monotonic()
            deadlines = [w.started + w.limit - now for w in workers if w.jobs]
            if self._idle_timeout is not None:
                deadlines += [w.idle_since + self._idle_timeout - now for w in workers if not w.jobs]
        timeout = max(0.0, min(deadlines)) if deadlines else None
        objects = [self._wake_r] + [w.conn for w in workers] + [w.process.sentinel for w in workers]
        ready = wait_for(objects, timeout)
        for obj in ready:
            if obj is self._wake_r:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
        for w in workers:
            if w.conn in ready:
                try:
                    message = w.conn.recv()
                except (EOFError, OSError):
                    self._lost(w, None)
                    continue
                self._finished(w, message)
            elif w.process.sentinel in ready:
                self._lost(w, None)
        now = time.monotonic()
        for w in workers:
            if w.jobs and now >= w.started + w.limit and w in self._workers:
                self._lost(w, w.limit)

    def _finished(self, worker: _Worker, message) -> None:
        kind, job_id = message[0], message[1]
        with self._lock:
            if not worker.jobs or worker.jobs[0].job_id != job_id:
                return
            job = worker.jobs.pop(0)
            if worker.jobs:
                worker.begin(self._time_limit(worker.jobs[0].task))
            else:
                worker.idle_since = time.monotonic()
            job.batch.running.pop(job.job_id, None)
        slot = job.task.slot
        if kind == "ok":
            job.batch._deliver(DecodeResult(job.key, slot))
        elif kind == "layout":
            job.batch._deliver(DecodeResult(job.key, slot, message[2], (tuple(message[3]), message[4])))
        else:
            job.batch._deliver(DecodeResult(job.key, slot, message[2]))

    def _lost(self, worker: _Worker, limit: float | None) -> None:
        """A worker died (a decoder crashed) or ran past its job's time limit: the job it was decoding fails,
        those queued behind it go back to their batches, it goes."""
        with self._lock:
            if worker not in self._workers:
                return
            self._workers.remove(worker)
            jobs, worker.jobs = worker.jobs, []
            job = jobs[0] if jobs else None
            for each in jobs:
                each.batch.running.pop(each.job_id, None)
            for queued in jobs[1:]:
                if not queued.batch.closed:
                    queued.batch.pending.append(queued)
                    queued.batch._resort()
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        if job is None:
            if not self._closing:
                log.warning("a decoder process ended on its own (exit code %s)", worker.process.exitcode)
            return
        self.crashes += 1
        name = SourceRef(job.task.path, job.task.member).display()
        codec = codec_name(job.task.transfer_syntax)
        if limit is not None:
            reason = f"the {codec} decoder did not finish within {limit:.0f} s on this file"
        else:
            reason = crash_reason(job.task.transfer_syntax)
        log.info("%s: %s (frame %d, exit code %s)", name, reason, job.task.frame, worker.process.exitcode)
        job.batch._deliver(DecodeResult(job.key, job.task.slot, reason, crashed=True))

    def _stop_workers(self, timeout: float) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        self._stop(workers, timeout)

    def _stop(self, workers: list[_Worker], timeout: float) -> None:
        """Ask `workers` (out of the pool already) to end, killing those that do not within `timeout`."""
        for w in workers:
            self._send(w, None)
        end = time.monotonic() + timeout
        for w in workers:
            w.process.join(max(0.0, end - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1)
            w.conn.close()


def _default_time_limit(task: DecodeTask) -> float:
    frame_bytes = int(np.prod(task.shape[1:], dtype=np.int64)) * np.dtype(task.dtype).itemsize
    return 30.0 + frame_bytes / 1e6


def _worker_entry(conn, decode: str) -> None:
    """The worker process's target (imported there by name; the module does the work)."""
    from medview.core.dicom import _decoder_process

    _decoder_process.main(conn, decode)


# --------------------------------------------------------------------------------------------- the shared pool

_POOL: DecoderPool | None = None
_POOL_LOCK = threading.Lock()


def decoder_pool() -> DecoderPool:
    """The process's pool, created on first use (its processes start as jobs arrive) and stopped at exit."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = DecoderPool()
            atexit.register(_shutdown_shared)
        return _POOL


def _shutdown_shared() -> None:
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(timeout=1.0)


def is_compressed(transfer_syntax: str) -> bool:
    """Encapsulated pixel data (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE...): decoded only in the pool."""
    from pydicom.uid import UID

    try:
        return bool(UID(str(transfer_syntax)).is_encapsulated)
    except (TypeError, ValueError):
        return False


__all__ = [
    "BACKGROUND", "INTERACTIVE", "DecodeBatch", "DecodeResult", "DecodeTask", "DecoderPool", "PoolUnavailable",
    "SharedFrames", "codec_name", "crash_reason", "dataset_layout", "decoder_pool", "default_workers",
    "frame_layout", "info_layout", "is_compressed",
]
