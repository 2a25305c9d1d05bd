"""Hostile inputs: odd file names, zip bombs, FIFOs, huge files, lying headers, paths leaving the folder.

Each gives one clear line on stderr naming the file and the reason, no traceback, and every other input is
still processed (exit 1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from medview.cli import main
from tests.factories import copy_testdata


def _medview(*argv, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medview", *map(os.fsdecode, argv)], capture_output=True,
                          env=env, timeout=120)


def _odd_names_folder(tmp_path):
    """CT_small.dcm under a name that is not UTF-8, and a broken file with a newline in its name."""
    folder = tmp_path / "odd"
    folder.mkdir()
    ct = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm").read_bytes()
    with open(os.path.join(os.fsencode(folder), b"bad\xff.dcm"), "wb") as fh:
        fh.write(ct)
    (folder / "broken\nname.dcm").write_bytes(bytes(128) + b"DICM" + b"\x02\x00")
    return folder


def test_file_names_that_are_not_utf8_or_hold_a_newline(tmp_path):
    folder = _odd_names_folder(tmp_path)
    for cache in ([], ["--no-cache"], []):  # the second cached run reads the names back from the cache
        done = _medview("index", folder, "--json", *cache)
        assert done.returncode == 1, done.stderr
        doc = json.loads(done.stdout.decode("utf-8"))  # valid UTF-8
        assert [s["series"][0]["instances"] for s in doc["studies"]] == [1]
        assert doc["errors"] == [{"file": f"{folder}/broken\\nname.dcm",
                                  "error": "broken DICOM file (no data elements; cut short?)"}]
        assert done.stderr.decode("utf-8").splitlines() == [
            f"{folder}/broken\\nname.dcm: broken DICOM file (no data elements; cut short?)"]

    done = _medview("render", folder, "--out-dir", tmp_path / "out")
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    lines = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    ok = next(line for line in lines if line["status"] == "ok")
    assert ok["input"] == f"{folder}/bad\\xff.dcm" and os.path.exists(ok["output"])
    assert len(done.stderr.decode("utf-8").splitlines()) == 1
