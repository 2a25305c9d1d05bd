"""How much memory the computer can still give, so that a series too big for it is refused in words.

Why: Linux hands out memory it does not have (an allocation succeeds and its pages are found only when they
are written), so a series larger than the free memory is not a MemoryError to catch: the system ends the app
once the loader has filled enough of it. Asked before allocating, the load is refused with the sizes instead,
and the app can first let go of series it no longer shows.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

#: left over for the app itself, the decoders and the AI when a series is loaded (see room_for_pixels)
RESERVE_BYTES = 256 << 20

_CGROUP = Path("/sys/fs/cgroup")


def available_memory() -> int | None:
    """Bytes the computer can still give this process: on Linux the kernel's estimate of what can be had
    without running out (MemAvailable) plus free swap, within the limit of the process's control group (a
    container's); on Windows what can still be committed. None where it cannot tell (nothing is refused)."""
    if sys.platform.startswith("linux"):
        try:
            room = _meminfo_room(Path("/proc/meminfo").read_text())
        except OSError:
            return None
        limit = _cgroup_room()
        return room if limit is None or room is None else min(room, limit)
    if sys.platform == "win32":
        return _windows_room()
    return None


def _meminfo_room(text: str) -> int | None:
    """MemAvailable + SwapFree of a /proc/meminfo text, in bytes (None where MemAvailable is missing)."""
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * 1024  # kB
    if "MemAvailable" not in fields:
        return None
    return fields["MemAvailable"] + fields.get("SwapFree", 0)


def _cgroup_room(root: Path = _CGROUP) -> int | None:
    """What the cgroup v2 memory limit leaves (the page cache it may drop counts as free); None: no limit."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if not limit.isdigit():
            return None  # "max"
        used = int((root / "memory.current").read_text().strip())
        stat = (root / "memory.stat").read_text()
    except (OSError, ValueError):
        return None
    reclaimable = 0
    for line in stat.splitlines():
        name, _, value = line.partition(" ")
        if name == "inactive_file" and value.strip().isdigit():
            reclaimable = int(value)
    return max(0, int(limit) - used + reclaimable)


def _windows_room() -> int | None:
    class MemoryStatus(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

    status = MemoryStatus()
    status.dwLength = ctypes.sizeof(MemoryStatus)
    try:
        if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return None
    except (AttributeError, OSError):
        return None
    return int(status.ullAvailPageFile)


def room_for_pixels() -> int | None:
    """What a series may take of the memory free: all of it less a reserve for the app itself, the decoders
    and the AI (RESERVE_BYTES, or a quarter of what is free where that is less: a computer short of memory
    still opens a small series). None where it cannot tell."""
    free = available_memory()
    return None if free is None else free - min(RESERVE_BYTES, free // 4)


def short_of_memory(nbytes: int) -> bool:
    """True where `nbytes` more would not fit in `room_for_pixels`."""
    room = room_for_pixels()
    return room is not None and nbytes > room


def memory_refusal(nbytes: int, what: str) -> str | None:
    """Why `what` (e.g. "this series of 3000 images") cannot be loaded with the memory free, in words; None
    when it fits."""
    room = room_for_pixels()
    if room is None or nbytes <= room:
        return None
    return (f"{what} needs {size_in_words(nbytes)} of memory and this computer has {size_in_words(room)} "
            "free for it (close other programs, or read it on a computer with more memory)")


def size_in_words(nbytes: int) -> str:
    """A size for a message: "1.8 GiB", "340 MiB", "0.6 MiB"."""
    if nbytes >= 1 << 30:
        return f"{nbytes / (1 << 30):.1f} GiB"
    mib = nbytes / (1 << 20)
    return f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.1f} MiB"

