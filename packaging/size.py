"""Size of the frozen folder: `python packaging/size.py [DIR] [--record]` (record writes packaging/size.json).

tests/test_package_size.py compares a built dist/medview with the recorded size (at most 10% growth).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "packaging" / "size.json"


def folder_size(folder: Path) -> tuple[int, int]:
    """(bytes, files) of a folder; symbolic links count as nothing (they point inside it)."""
    total = files = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
                files += 1
    return total, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", nargs="?", default=str(ROOT / "dist" / "medview"))
    parser.add_argument("--record", action="store_true", help="write the size into packaging/size.json")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"size.py: {folder} does not exist; build it with 'make package'", file=sys.stderr)
        return 2
    size, files = folder_size(folder)
    doc = {"bytes": size, "mib": round(size / 2**20, 1), "files": files, "variant": "cpu",
           "platform": sys.platform, "recorded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "max_growth": 0.10}
    print(json.dumps(doc))
    if args.record:
        RECORD.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"size.py: recorded in {RECORD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
