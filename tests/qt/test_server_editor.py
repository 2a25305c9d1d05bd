"""The PACS servers in File → Preferences, by keyboard: Insert adds a server, Enter edits it, Delete removes
it, OK writes servers.toml; the password typed never lands in servers.toml nor in the log, and the server
saved answers `medview pacs echo NAME` on a real Orthanc that asks for it."""

from __future__ import annotations

import stat
import sys
import tomllib

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QDialog, QLabel, QLineEdit, QListWidget

from medview.core.net import resolve_server
from tests.core.test_pacs import run_cli, write_settings
from tests.orthanc import ORTHANC, OrthancServer, dicomweb_plugin
from tests.qt.test_pacs_in_app import start_app  # noqa: F401 - fixture

PASSWORD = "s3cret-Pw!"


@pytest.fixture
def orthanc_with_users(tmp_path):
    if ORTHANC is None or dicomweb_plugin() is None:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
    server = OrthancServer(tmp_path / "orthanc", users={"reader": PASSWORD}).start()
    yield server
    server.kill()


def open_preferences(qtbot, window) -> QDialog:
    window.preferences_action.trigger()
    dialog = window.ai.preferences_dialog
    qtbot.waitUntil(dialog.isVisible)
    return dialog


def key(widget, k, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(widget, k, modifier)
    QApplication.processEvents()


def server_form(qtbot, dialog) -> QDialog:
    qtbot.waitUntil(lambda: dialog.findChild(QDialog, "server_form") is not None
                    and dialog.findChild(QDialog, "server_form").isVisible())
    return dialog.findChild(QDialog, "server_form")


def type_into(form, name: str, text: str) -> None:
    edit = form.findChild(QLineEdit, name)
    edit.setFocus(Qt.FocusReason.TabFocusReason)
    edit.selectAll()
    QTest.keyClicks(edit, text)


def choose(form, name: str, text: str) -> None:
    """A combo box chosen by keyboard: Down from its first entry until `text` shows."""
    box = form.findChild(QComboBox, name)
    box.setFocus(Qt.FocusReason.TabFocusReason)
    key(box, Qt.Key.Key_Home)
    for _ in range(box.count()):
        if box.currentText() == text:
            return
        key(box, Qt.Key.Key_Down)
    assert box.currentText() == text


def rows(dialog) -> list[str]:
    servers = dialog.findChild(QListWidget, "preferences-pacs-servers")
    return [servers.item(i).text() for i in range(servers.count())]


def test_servers_added_edited_and_removed_by_keyboard(qtbot, medview_home, orthanc_with_users, start_app,
                                                      monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "keyring", None)  # no OS keyring here: the password goes to a 0600 file
    web_url = orthanc_with_users.web_url
    write_settings(medview_home, '[medview]\nae_title = "READER1"\n\n[servers.old]\nurl = "dicom://OLD@pacs:104"\n')
    window = start_app()
    dialog = open_preferences(qtbot, window)
    servers = dialog.findChild(QListWidget, "preferences-pacs-servers")
    assert rows(dialog) == ["old — dicom://OLD@pacs:104"]
    servers.setFocus(Qt.FocusReason.TabFocusReason)

    key(servers, Qt.Key.Key_Insert)  # add: a DICOMweb server with a user name and password
    form = server_form(qtbot, dialog)
    assert QApplication.focusWidget() is form.findChild(QLineEdit, "server-name")
    type_into(form, "server-name", "web")
    type_into(form, "server-url", "ftp://nowhere")
    key(form.findChild(QLineEdit, "server-url"), Qt.Key.Key_Return)
    assert form.isVisible()  # what cannot be used is said, the form stays
    assert form.findChild(QLabel, "server-error").text() == "Not saved: ftp://nowhere: unknown scheme 'ftp' " \
                                                           "(dicom://, http:// or https://)"
    type_into(form, "server-url", web_url)
    choose(form, "server-auth", "User name and password")
    type_into(form, "server-username", "reader")
    type_into(form, "server-secret", PASSWORD)
    assert "never into servers.toml" in form.findChild(QLabel, "server-secret-note").text()
    key(form.findChild(QLineEdit, "server-secret"), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.findChild(QDialog, "server_form") is None)
    assert rows(dialog) == ["old — dicom://OLD@pacs:104", f"web — {web_url}"]
    assert servers.currentItem().text() == f"web — {web_url}"
    assert not (medview_home / "servers.toml").read_text().count("web")  # nothing written before OK

    servers.setCurrentRow(0)
    key(servers, Qt.Key.Key_Return)  # edit: the DIMSE server moves to C-MOVE over TLS
    form = server_form(qtbot, dialog)
    assert form.findChild(QLineEdit, "server-name").text() == "old"
    assert not form.findChild(QComboBox, "server-auth").isEnabled()  # DIMSE has no passwords
    choose(form, "server-retrieve", "C-MOVE to medview's listener")
    tls = form.findChild(QCheckBox, "server-tls")
    tls.setFocus(Qt.FocusReason.TabFocusReason)
    key(tls, Qt.Key.Key_Space)
    type_into(form, "server-url", "dicom://OLD@pacs:2762")
    key(form.findChild(QLineEdit, "server-url"), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.findChild(QDialog, "server_form") is None)
    assert rows(dialog)[0] == "old — dicom://OLD@pacs:2762"

    key(servers, Qt.Key.Key_Insert)  # one added by mistake, then removed with Delete
    form = server_form(qtbot, dialog)
    type_into(form, "server-name", "mistake")
    type_into(form, "server-url", "dicom://X@host:104")
    key(form.findChild(QLineEdit, "server-url"), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.findChild(QDialog, "server_form") is None)
    assert servers.currentItem().text() == "mistake — dicom://X@host:104"
    send_to = dialog.findChild(QComboBox, "preferences-pacs-send-server")
    assert [send_to.itemText(i) for i in range(send_to.count())] == ["old", "web", "mistake"]
    key(servers, Qt.Key.Key_Delete)
    assert rows(dialog) == ["old — dicom://OLD@pacs:2762", f"web — {web_url}"]
    assert dialog.isVisible()  # Enter and Delete in the list never closed the preferences

    with qtbot.waitSignal(dialog.destroyed):
        dialog.accept()
    text = (medview_home / "servers.toml").read_text()
    assert PASSWORD not in text
    settings = tomllib.loads(text)
    assert settings["medview"] == {"ae_title": "READER1"}
    assert list(settings["servers"]) == ["old", "web"]
    old, web = resolve_server("old"), resolve_server("web")
    assert (old.port, old.retrieve, old.tls) == (2762, "move", True)
    secret_file = medview_home / "secrets" / "web.password"
    assert settings["servers"]["web"] == {"url": web_url, "username": "reader", "password_file": str(secret_file)}
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert window.statusBar().currentMessage() == f"PACS servers saved; the secret typed is kept in the file " \
                                                  f"{secret_file}"

    rc, _out, err = run_cli(capsys, "pacs", "echo", "web")  # as saved, password and all, on the real Orthanc
    assert rc == 0, err
    logged = "".join(p.read_text(errors="replace") for p in (medview_home / "logs").glob("*.log*"))
    assert PASSWORD not in logged

    dialog = open_preferences(qtbot, window)  # opened again: the password stays stored unless one is typed
    servers = dialog.findChild(QListWidget, "preferences-pacs-servers")
    servers.setCurrentRow(1)
    key(servers, Qt.Key.Key_F2)
    form = server_form(qtbot, dialog)
    assert form.findChild(QLineEdit, "server-secret").text() == ""
    assert form.findChild(QLabel, "server-secret-note").text().startswith(
        f"Stored in the file {secret_file}; leave empty to keep it.")
    key(form.findChild(QLineEdit, "server-name"), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.findChild(QDialog, "server_form") is None)
    with qtbot.waitSignal(dialog.destroyed):
        dialog.accept()
    assert run_cli(capsys, "pacs", "echo", "web")[0] == 0
