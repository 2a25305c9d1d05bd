"""The frozen app (dist/medview) must not grow more than 10% beyond the size recorded in packaging/size.json.

The size check runs only where `make package` has built dist/medview (CI builds it before the tests that
follow it; a plain `make test` skips it, saying so). The recorded size itself is always checked against the
700 MB goal of the CPU build.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist" / "medview"
RECORD = ROOT / "packaging" / "size.json"


def _size_module():
    spec = importlib.util.spec_from_file_location("medview_packaging_size", ROOT / "packaging" / "size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_size_is_under_the_cpu_goal():
    recorded = json.loads(RECORD.read_text())
    assert recorded["bytes"] < 700 * 10**6, f"recorded frozen size {recorded['mib']} MiB is over the 700 MB goal"


@pytest.mark.skipif(not DIST.is_dir(), reason="dist/medview is not built here (run `make package` first)")
def test_frozen_app_has_not_grown_more_than_10_percent():
    recorded = json.loads(RECORD.read_text())
    size, files = _size_module().folder_size(DIST)
    limit = recorded["bytes"] * (1 + recorded.get("max_growth", 0.10))
    assert size <= limit, (
        f"dist/medview is {size / 2**20:.1f} MiB ({files} files), more than 10% over the recorded "
        f"{recorded['mib']} MiB: find what came in (a new dependency? an exclusion lost?) or, when intended, "
        f"record the new size with `python packaging/size.py --record`"
    )
