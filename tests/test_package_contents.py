"""Data files the frozen app (dist/medview) reads at run time but no PyInstaller hook collects.

Checked only where `make package` has built dist/medview (CI runs it after the build, beside the size test).
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTERNAL = ROOT / "dist" / "medview" / "_internal"

pytestmark = pytest.mark.skipif(not INTERNAL.is_dir(),
                                reason="dist/medview is not built here (run `make package` first)")


@pytest.mark.parametrize("table", ["sop_class_iod_map.json", "iod_module_map.json", "module_attribute_map.json",
                                   "anatomic_regions.json"])
def test_highdicom_standard_tables_are_frozen_whole(table):
    """highdicom reads these with pkgutil.get_data when an SR or KOS is exported; the spec compacts them."""
    frozen = INTERNAL / "highdicom" / "_standard" / table
    assert frozen.is_file(), f"{frozen.relative_to(ROOT)} is missing: `medview export --format sr` fails frozen"
    installed = files("highdicom").joinpath("_standard", table).read_text(encoding="utf-8")
    assert json.loads(frozen.read_text(encoding="utf-8")) == json.loads(installed)
