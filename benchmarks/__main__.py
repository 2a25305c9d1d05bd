"""`python -m benchmarks [--quick] [--only index,load,...]`: prints one JSON document on stdout.

Progress goes to stderr. A group whose dependency is missing reports `{"status": "unavailable"}` for its
figures; the run itself always completes and prints the document.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from datetime import datetime, timezone

from benchmarks import data
from benchmarks._common import guarded, log, machine

# group -> (module of benchmarks, its function)
GROUPS = {
    "index": ("index", "run"),
    "load": ("load", "run"),
    "decode": ("decode", "run"),
    "display": ("display", "run"),
    "mpr": ("mpr", "run"),
    "memory": ("load", "run_memory"),
    "viewer": ("viewer", "run"),
    "reading": ("reading", "run"),
    "ai": ("ai", "run"),
    "scoring": ("scoring", "run"),
    "pacs": ("pacs", "run"),
}


def _group(name: str, quick: bool, repeats: int):
    """The callable of one group; imported lazily so a broken module only marks its own figures."""

    def call() -> dict:
        module, function = GROUPS[name]
        return getattr(importlib.import_module(f"benchmarks.{module}"), function)(quick, repeats)

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data, one repeat: a smoke run")
    parser.add_argument("--only", default="", help=f"comma-separated groups of {','.join(GROUPS)}")
    parser.add_argument("--repeats", type=int, default=None, help="runs per timing, best kept (default 3; quick 1)")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    repeats = args.repeats or (1 if args.quick else 3)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    t0 = time.perf_counter()
    figures: dict = {}
    for name in groups:
        guarded(name, _group(name, args.quick, repeats), figures)
    doc = {
        "machine": machine(),
        "run": {
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "quick": args.quick,
            "repeats": repeats,
            "groups": groups,
            "data_writer": data.writer_used(args.quick),
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "figures": figures,
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    met = [f.get("met") for f in figures.values() if isinstance(f, dict)]
    log(f"[bench] {sum(m is True for m in met)} of {len(met)} figures meet their goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
