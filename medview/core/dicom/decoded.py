"""Frames already decoded in this process, for whoever needs them next: a compressed frame the viewer decoded
for the screen is not decoded again for the model.

Every stack load registers its volume here (`publish`); `decoded_frame` finds a frame by its file and frame
number in any registered volume that is still alive and has that frame loaded, and returns a copy of its
stored values. Volumes are held weakly: one the viewer lets go is forgotten with it. Thread-safe: the viewer's
loaders publish from their threads, the AI worker looks up from its own.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from medview.core.dicom.source import SourceRef

_lock = threading.Lock()
# id(volume) -> (a weak reference to it, {(file, frame number in the file): index in its array}); a
# StackVolume is a dataclass compared by value, so not hashable, hence its id
_volumes: dict[int, tuple[weakref.ref, dict[tuple[SourceRef, int], int]]] = {}


def publish(volume) -> None:
    """Make the frames of a `StackVolume` findable while it lives (each once its `loaded` flag is set)."""
    where = {(volume.stack.instances[index].ref, int(frame)): k for k, (index, frame) in enumerate(volume.frames)}
    with _lock:
        _alive_locked()
        _volumes[id(volume)] = (weakref.ref(volume), where)


def _alive() -> list[tuple[object, dict[tuple[SourceRef, int], int]]]:
    with _lock:
        return _alive_locked()


def _alive_locked() -> list[tuple[object, dict[tuple[SourceRef, int], int]]]:
    """The registered volumes still alive; the others are forgotten here (no weakref callback: one could run
    inside the lock, on any thread)."""
    alive = []
    for key, (ref, where) in list(_volumes.items()):
        volume = ref()
        if volume is None:
            del _volumes[key]
        else:
            alive.append((volume, where))
    return alive


def _find(ref: SourceRef, frame: int, layout) -> tuple[object, int] | None:
    """(volume, index) of a loaded grey frame of that file with that (shape, dtype), or None."""
    for volume, where in _alive():
        k = where.get((ref, int(frame)))
        if k is None or not volume.loaded[k]:
            continue
        array = volume.array
        if array.ndim != 3 or (layout is not None and (array.shape[1:] != tuple(layout[0])
                                                       or array.dtype != np.dtype(layout[1]))):
            continue  # colour is converted for the screen; another layout is not the file's stored values
        return volume, k
    return None


def is_decoded(ref: SourceRef, frame: int, layout=None) -> bool:
    """True when `decoded_frame` would find the frame (without copying it)."""
    return _find(ref, frame, layout) is not None


def decoded_frame(ref: SourceRef, frame: int, layout=None) -> np.ndarray | None:
    """A copy of the stored values of frame `frame` of `ref` where a live volume has it loaded, as grey values
    of `layout` ((rows, columns), dtype) when given; None otherwise."""
    found = _find(ref, frame, layout)
    if found is None:
        return None
    volume, k = found
    return np.array(volume.array[k], copy=True)
