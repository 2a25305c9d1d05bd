"""Shared test set-up: each test writes only into its own MEDVIEW_HOME; Qt runs offscreen.

Data factories live in tests/factories.py (DICOM files built to order) and medview.core.demo (phantoms).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def medview_home(tmp_path_factory, monkeypatch):
    """A fresh MEDVIEW_HOME per test, so no test sees another's cache, settings or review database."""
    home = tmp_path_factory.mktemp("medview_home")
    monkeypatch.setenv("MEDVIEW_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def own_log_file():
    """create_app adds medview.log once per process, in the MEDVIEW_HOME of whichever test calls it first:
    take it off after each test, so every test that starts the app logs into its own home."""
    import logging

    yield
    root = logging.getLogger()
    marked = [h for h in root.handlers if getattr(h, "_medview_file_handler", False)]  # medview.app._LOG_MARK
    for handler in marked:
        root.removeHandler(handler)
        handler.close()
