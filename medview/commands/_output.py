"""Shared output helpers of the commands: one line per failure on stderr, JSON lines on stdout.

Every text written goes through `printable`: a file name with bytes that are not UTF-8, or with a newline,
still gives one line of valid UTF-8 (JSON included).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from medview.core.dicom.source import printable


def report_failure(file: str, reason: str) -> None:
    """One line on stderr naming the file and the reason (SPEC section 1)."""
    print(printable(f"{file}: {reason}"), file=sys.stderr)


def printable_values(obj: Any) -> Any:
    """`obj` with every string in it `printable`, for JSON that is valid UTF-8."""
    if isinstance(obj, str):
        return printable(obj)
    if isinstance(obj, dict):
        return {printable_values(k): printable_values(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [printable_values(v) for v in obj]
    return obj


def print_json_line(obj: dict[str, Any]) -> None:
    """One JSON document on one line of stdout, flushed so a reader sees it at once."""
    sys.stdout.write(json.dumps(printable_values(obj), ensure_ascii=False) + "\n")
    sys.stdout.flush()
