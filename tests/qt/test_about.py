"""The About dialog names the version, the research-use line and every bundled third-party licence."""

from medview import __version__
from medview.qt.dialogs.about import THIRD_PARTY, about_html


def test_about_lists_version_research_use_and_licences():
    text = about_html()
    assert __version__ in text
    assert "Research use only, not for diagnosis" in text
    for _dist, name, licence, _role in THIRD_PARTY:
        assert name in text and licence in text
    # the licence consequence of the decoder choice (README): GDCM, not the GPLv3 pylibjpeg-libjpeg
    assert "GDCM" in text and "pylibjpeg-libjpeg" not in text and "GPL-licensed component" in text


def test_help_menu_opens_the_about_dialog(qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from medview.qt.main_window import MainWindow
    from medview.qt.settings_store import configure_settings

    shown = []
    monkeypatch.setattr(QMessageBox, "about", staticmethod(lambda parent, title, text: shown.append((title, text))))
    configure_settings()
    window = MainWindow()
    qtbot.addWidget(window)
    help_menu = next(m.menu() for m in window.menuBar().actions() if m.text() == "Help")
    about = next(a for a in help_menu.actions() if a.text().startswith("About medview"))
    about.trigger()
    assert shown and shown[0][0] == "About medview" and __version__ in shown[0][1]
