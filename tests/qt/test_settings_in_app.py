"""The app's settings: one typed module, stored by QSettings in MEDVIEW_HOME, shared by every part of the app."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

from medview.app import create_app
from medview.core.settings import Preferences


def test_preferences_are_stored_under_medview_home_and_read_back_as_their_types(qtbot, medview_home):
    app, window = create_app(["medview"])
    qtbot.addWidget(window)
    assert (app.organizationName(), app.applicationName()) == ("medview", "medview")
    settings = window.settings
    assert window.ai.settings is settings and window.pacs.settings is settings  # one, handed over by create_app
    assert settings.preferences() == Preferences()  # a first start: the defaults

    window.viewer.set_cine_fps(24)
    window.pacs.apply_preferences(listen=False, send_on_sign_off=True, send_server="archive")
    window.add_recent(str(medview_home))
    ini = Path(QSettings().fileName())
    assert ini.resolve() == (Path(medview_home) / "settings" / "medview" / "medview.ini").resolve()
    text = ini.read_text()
    assert "cine_fps=24" in text and "send_on_sign_off=true" in text and "send_server=archive" in text

    # what the INI file gives back as text is read as the declared types, by every part of the app
    prefs = settings.preferences()
    assert prefs.cine_fps == 24 and prefs.pacs_send_on_sign_off is True and prefs.pacs_listen is False
    assert prefs.recent == (os.path.abspath(medview_home),)
    assert window.pacs.preferences() == {"listen": False, "send_on_sign_off": True, "send_server": "archive"}
    from medview.qt.viewer.image_view import ImageView

    other = ImageView()
    qtbot.addWidget(other)
    assert other.cine_fps == 24
    window.shutdown()
