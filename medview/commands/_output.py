"""Shared output helpers of the commands: one line per failure on stderr, JSON lines on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any


def report_failure(file: str, reason: str) -> None:
    """One line on stderr naming the file and the reason (SPEC section 1)."""
    print(f"{file}: {reason}", file=sys.stderr)


def print_json_line(obj: dict[str, Any]) -> None:
    """One JSON document on one line of stdout, flushed so a reader sees it at once."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()
