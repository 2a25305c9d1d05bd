"""Shared helpers: figure records, timing, child processes, machine facts.

Every figure is one dict: value and unit, the peer measured in the same run and its value, ratio = value /
peer_value with the direction that is better stated, the goal in words and whether it is met. A figure whose
dependency is missing is `{"status": "unavailable", "reason": ...}` instead of a crash of the whole run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
PY = sys.executable


def figure(
    value: float,
    unit: str,
    *,
    peer: str | None = None,
    peer_value: float | None = None,
    better: str = "higher",
    goal: str = "",
    met: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One figure; ratio is value / peer_value and `better` says whether a higher or lower ratio wins."""
    ratio = None
    if peer_value not in (None, 0) and value is not None:
        ratio = round(value / peer_value, 3)
    out: dict[str, Any] = {
        "value": _round(value),
        "unit": unit,
        "peer": peer,
        "peer_value": _round(peer_value),
        "ratio": ratio,
        "ratio_better": better,
        "goal": goal,
        "met": met,
    }
    out.update(extra)
    return out


def unavailable(reason: str) -> dict[str, Any]:
    return {"status": "unavailable", "reason": reason}


def _round(x: float | None) -> float | None:
    if x is None:
        return None
    if abs(x) >= 100:
        return round(x, 1)
    return round(x, 3)


def guarded(name: str, fn: Callable[[], dict[str, Any]], figures: dict[str, Any]) -> None:
    """Run one group; any exception becomes 'unavailable' figures so the JSON document is always printed."""
    log(f"[bench] {name} ...")
    t0 = time.perf_counter()
    try:
        figures.update(fn())
    except Exception as exc:  # noqa: BLE001 - a missing dependency must not end the whole run
        reason = f"{type(exc).__name__}: {exc}".strip()
        if os.environ.get("MEDVIEW_BENCH_DEBUG"):
            traceback.print_exc()
        figures[name] = unavailable(reason.splitlines()[0][:300])
    log(f"[bench] {name} done in {time.perf_counter() - t0:.1f} s")


def one_figure(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The figures `fn` gives, or `name` unavailable with the reason: one missing piece hides no other figure."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported as the figure's reason
        return {name: unavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")}


def log(msg: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON document."""
    print(msg, file=sys.stderr, flush=True)


def best_of(n: int, fn: Callable[[], float]) -> float:
    """Smallest of n timings: the least disturbed by the other processes on a shared machine."""
    return min(fn() for _ in range(max(1, n)))


def run_child(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> tuple[float, str]:
    """Run a whole process; returns (wall seconds, stdout). Raises with the child's stderr on failure."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and "Traceback" in proc.stderr):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{' '.join(args[:4])}... exited {proc.returncode}: {tail[0][:200]}")
    return wall, proc.stdout


def proc_status_kib(field: str) -> int:
    """A size from /proc/self/status in KiB ("VmRSS": resident now, "VmHWM": peak since the last reset); 0 if
    absent (not Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current resident size (Linux `clear_refs` 5), so the next peak is this work's alone;
    False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_python_json(code: str, *args: str, env: dict[str, str] | None = None,
                    timeout: float = 600) -> dict[str, Any]:
    """Run `code` in a fresh interpreter with `args` as sys.argv[1:]; its last stdout line is a JSON object."""
    _, out = run_child([PY, "-c", code, *args], env=env, timeout=timeout)
    return last_json(out, "child")


def last_json(out: str, who: str) -> dict[str, Any]:
    """A child's result: the last stdout line that is a JSON object (whatever a library printed before it)."""
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{who} printed no JSON")
    return json.loads(lines[-1])


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        load = os.getloadavg()
        info["loadavg_1min"] = round(load[0], 2)
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            info["memory_gib"] = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    for mod in ("numpy", "pydicom", "torch", "PySide6", "pyqtgraph", "SimpleITK", "onnxruntime"):
        try:
            from importlib.metadata import version

            dist = {"PySide6": "PySide6-Essentials", "SimpleITK": "SimpleITK"}.get(mod, mod)
            info[mod] = version(dist)
        except Exception:  # noqa: BLE001
            pass
    return info
