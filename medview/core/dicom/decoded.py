"""Frames decoded and headers read in this process for the viewer, for whoever needs them next: a compressed
frame decoded for the screen is not decoded again for the model, nor its header parsed again.

Every stack load registers its volume here (`publish`) and says when it stops (`finished`). `frame_when_ready`
finds a frame by its file and frame number in a registered volume that is still alive: loaded, it returns a
copy of its stored values; still to come in a load that is running (the AI worker usually asks for the open
case while the viewer decodes it), it waits for it. Volumes are held weakly: one the viewer lets go is
forgotten with it. The header-only datasets the viewer reads are kept the same way (`publish_header`,
`header_of`): the AI reads them, it never changes them. Thread-safe: the viewer's loaders publish from their
threads, the AI worker asks from its own.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field

import numpy as np

from medview.core.dicom.source import SourceRef

#: the longest a caller waits for a frame a running load has still to decode, before decoding it itself
WAIT_S = 60.0


@dataclass
class _Entry:
    volume: weakref.ref
    where: dict[tuple[SourceRef, int], int]  # (file, frame number in the file) -> index in the volume's array
    stopped: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
# id(volume) -> its entry; a StackVolume is a dataclass compared by value, so not hashable, hence its id
_entries: dict[int, _Entry] = {}
_headers: dict[SourceRef, weakref.ref] = {}  # file -> its header-only dataset, as the viewer read it
_headers_pruned_at = [1024]  # entries at which the headers let go are next forgotten: twice those still kept


def publish_header(ref: SourceRef, ds) -> None:
    """The header-only dataset of `ref` the viewer read, findable while the viewer keeps it."""
    with _lock:
        _headers[ref] = weakref.ref(ds)
        if len(_headers) >= _headers_pruned_at[0]:  # now and then, not per header: a 2000-slice series
            for key, alive in list(_headers.items()):
                if alive() is None:
                    del _headers[key]
            _headers_pruned_at[0] = max(1024, 2 * len(_headers))


def header_of(ref: SourceRef):
    """The header-only dataset of `ref` the viewer read and still keeps, or None."""
    with _lock:
        alive = _headers.get(ref)
    return alive() if alive is not None else None


def header(ref: SourceRef):
    """The header-only dataset of `ref` for a reader that does not change it (the AI, export): the viewer's
    where it keeps one, else read now (`pixels.read_dataset`, which raises DicomReadError naming the file)."""
    from medview.core.dicom.pixels import read_dataset

    found = header_of(ref)
    return found if found is not None else read_dataset(ref, stop_before_pixels=True)


def publish(volume) -> None:
    """Make the frames of a `StackVolume` findable while it lives (each once its `loaded` flag is set)."""
    where = {(volume.stack.instances[index].ref, int(frame)): k for k, (index, frame) in enumerate(volume.frames)}
    with _lock:
        _alive_locked()
        _entries[id(volume)] = _Entry(weakref.ref(volume), where)


def finished(volume) -> None:
    """The load filling `volume` has stopped (all read, failed or cancelled): nothing more will arrive."""
    with _lock:
        entry = _entries.get(id(volume))
    if entry is not None and entry.volume() is volume:
        entry.stopped.set()


def _alive_locked() -> list[tuple[object, _Entry]]:
    """The registered volumes still alive; the others are forgotten here (no weakref callback: one could run
    inside the lock, on any thread)."""
    alive = []
    for key, entry in list(_entries.items()):
        volume = entry.volume()
        if volume is None:
            del _entries[key]
        else:
            alive.append((volume, entry))
    return alive


def _holders(ref: SourceRef, frame: int, layout) -> list[tuple[object, int, threading.Event]]:
    """(volume, index, its load's stop flag) of each live volume holding that frame as grey values of `layout`
    ((rows, columns), dtype), loaded or not: loaded ones first."""
    with _lock:
        alive = _alive_locked()
    found = []
    for volume, entry in alive:
        k = entry.where.get((ref, int(frame)))
        if k is None:
            continue
        array = volume.array
        if array.ndim != 3 or (layout is not None and (array.shape[1:] != tuple(layout[0])
                                                       or array.dtype != np.dtype(layout[1]))):
            continue  # colour is converted for the screen; another layout is not the file's stored values
        found.append((volume, k, entry.stopped))
    found.sort(key=lambda item: not item[0].loaded[item[1]])
    return found


def is_coming(ref: SourceRef, frame: int, layout=None, *, loaded_only: bool = False) -> bool:
    """True when the frame is decoded already, or (unless `loaded_only`) on its way in a load that is running."""
    return any(volume.loaded[k] or not (loaded_only or stopped.is_set())
               for volume, k, stopped in _holders(ref, frame, layout))


def frame_when_ready(ref: SourceRef, frame: int, layout=None, wait_s: float = WAIT_S) -> np.ndarray | None:
    """A copy of the stored values of frame `frame` of `ref` from a live volume: at once where it is loaded;
    where a running load has it still to decode, once it is (at most `wait_s`). None where no volume has it,
    or the load stopped without it."""
    deadline = time.monotonic() + wait_s
    for volume, k, stopped in _holders(ref, frame, layout):
        while not volume.loaded[k] and not stopped.is_set() and time.monotonic() < deadline:
            stopped.wait(0.01)
        if volume.loaded[k]:
            return np.array(volume.array[k], copy=True)
    return None
