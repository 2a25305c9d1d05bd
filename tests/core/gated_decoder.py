"""Decode functions for the decoder pool's tests: `decode` waits at a gate (order and cancel), `process_id`
writes which worker ran the job (idle workers stopping and starting again).

Run in the pool's worker processes (`DecoderPool(decode="tests.core.gated_decoder:decode")`). The job's
file names a folder: each job appends "start <slot>" to `log` in it, waits until a file `gate` exists
there, writes the slot number into every pixel of its frame and appends "done <slot>". The folder is the
only channel, because a worker's environment is the one its forkserver started with.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def decode(task, out: np.ndarray) -> None:
    folder = Path(task.path).parent
    log = folder / "log"
    with open(log, "a") as fh:
        fh.write(f"start {task.slot}\n")
    end = time.monotonic() + 120  # never wait forever if a test fails before opening the gate
    while not (folder / "gate").exists() and time.monotonic() < end:
        time.sleep(0.01)
    out[...] = task.slot
    with open(log, "a") as fh:
        fh.write(f"done {task.slot}\n")


def process_id(task, out: np.ndarray) -> None:
    out[...] = os.getpid()


def lines(folder: Path, kind: str) -> list[int]:
    """The slots of the log's lines of `kind` ("start" or "done"), in order."""
    log = Path(folder) / "log"
    if not log.exists():
        return []
    return [int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith(kind + " ")]
