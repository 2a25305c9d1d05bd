"""The preferences' server editor without Qt: servers.toml written as `resolve_server` reads it, the rest of
the file kept, and passwords or tokens in the OS keyring (when there is one) or in a file only the user can
read, never in servers.toml."""

from __future__ import annotations

import re
import stat
import sys
import tomllib
import types

import pytest

from medview.core.net import PacsError, resolve_server
from medview.core.net.server_book import ServerBook, ServerEntry, dump_toml, os_keyring
from medview.core.net.servers import read_secret
from tests.core.test_pacs import write_settings


@pytest.fixture
def no_keyring(monkeypatch):
    monkeypatch.setitem(sys.modules, "keyring", None)  # `import keyring` fails: no keyring package


@pytest.fixture
def fake_keyring(monkeypatch):
    """An OS keyring: the `keyring` package's calls over a dict."""
    vault: dict[tuple[str, str], str] = {}
    module = types.SimpleNamespace(
        get_keyring=lambda: types.SimpleNamespace(priority=5),
        get_password=lambda service, account: vault.get((service, account)),
        set_password=lambda service, account, secret: vault.__setitem__((service, account), secret),
        delete_password=lambda service, account: vault.pop((service, account)),
    )
    monkeypatch.setitem(sys.modules, "keyring", module)
    return vault


def test_toml_written_reads_back_equal():
    data = {"medview": {"ae_title": "MEDVIEW", "listen_port": 11112, "allowed_callers": ["ORTHANC", "CT 1"],
                        "cache_max_mb": 1.5},
            "servers": {"main pacs": {"url": "dicom://PACS@10.0.0.1:104", "tls": True},
                        "web.1": {"url": "https://pacs/dicom-web", "note": 'quote " back\\slash \x7f é\n'}}}
    assert tomllib.loads(dump_toml(data)) == data


def test_servers_added_changed_and_removed_keep_the_rest_of_the_file(medview_home, tmp_path, no_keyring):
    write_settings(medview_home, '[medview]\nae_title = "READER1"\nlisten_port = 11113\n\n'
                                 '[servers.old]\nurl = "dicom://OLD@pacs:104"\ncert_file = "/etc/c.pem"\n')
    book = ServerBook()
    assert book.names() == ["old"] and os_keyring() is None
    book.put(ServerEntry("orthanc", "dicom://ORTHANC@127.0.0.1:4242", retrieve="move", tls=True,
                         ca_file=str(tmp_path / "ca.pem")))
    changed = ServerEntry("older", "dicom://OLD@pacs:11112", extra=dict(book.get("old").extra))
    book.put(changed, replacing="old")
    book.put(ServerEntry("web", "http://127.0.0.1:8042/dicom-web", auth="bearer"), "tok-123")
    assert book.save() == f"in the file {medview_home / 'secrets' / 'web.token'}"

    text = (medview_home / "servers.toml").read_text()
    assert "tok-123" not in text
    settings = tomllib.loads(text)
    assert settings["medview"] == {"ae_title": "READER1", "listen_port": 11113}
    assert list(settings["servers"]) == ["older", "orthanc", "web"]
    older, orthanc, web = (resolve_server(n) for n in ("older", "orthanc", "web"))
    assert (older.port, older.cert_file) == (11112, "/etc/c.pem")  # a key the editor does not show, kept
    assert (orthanc.kind, orthanc.retrieve, orthanc.tls, orthanc.ca_file) == ("dimse", "move", True,
                                                                              str(tmp_path / "ca.pem"))
    assert read_secret(web, "token") == "tok-123"
    secret_file = medview_home / "secrets" / "web.token"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700

    book = ServerBook()
    entry = book.get("web")
    assert (entry.auth, entry.secret_where()) == ("bearer", f"in the file {secret_file}")
    book.put(ServerEntry("web2", entry.url, auth="bearer"), replacing="web")  # renamed: the same token
    book.save()
    assert read_secret(resolve_server("web2"), "token") == "tok-123"
    book.put(ServerEntry("web2", entry.url), replacing="web2")  # no authentication any more
    book.remove("orthanc")
    book.save()
    assert not secret_file.exists()
    assert list(tomllib.loads((medview_home / "servers.toml").read_text())["servers"]) == ["older", "web2"]


def test_secrets_go_to_the_os_keyring_when_there_is_one(medview_home, fake_keyring):
    book = ServerBook()
    book.put(ServerEntry("web", "https://pacs.example.org/dicom-web", auth="basic", username="reader"), "pw-1")
    assert book.save() == "in the OS keyring"
    assert fake_keyring == {("medview/web", "reader"): "pw-1"}
    text = (medview_home / "servers.toml").read_text()
    assert "pw-1" not in text and tomllib.loads(text)["servers"]["web"] == {
        "url": "https://pacs.example.org/dicom-web", "username": "reader", "keyring": "medview/web"}
    assert read_secret(resolve_server("web"), "password") == "pw-1"

    book = ServerBook()
    book.put(ServerEntry("web", "https://pacs.example.org/dicom-web", auth="basic", username="reader"), "pw-2",
             replacing="web")
    book.save()
    assert fake_keyring == {("medview/web", "reader"): "pw-2"}
    book.remove("web")
    book.save()
    assert fake_keyring == {}


@pytest.mark.parametrize("entry, secret, message", [
    (ServerEntry("", "dicom://A@h:104"), "", "a server needs a name"),
    (ServerEntry("x://y", "dicom://A@h:104"), "", "a server needs a name"),
    (ServerEntry("old", "dicom://A@h:104"), "", "there is already a server named 'old'"),
    (ServerEntry("new", "dicom://h:104"), "", "a DIMSE server is written dicom://CALLED_AE@host:port"),
    (ServerEntry("new", "ftp://h"), "", "unknown scheme 'ftp'"),
    (ServerEntry("new", "https://u:p@h/dicom-web"), "", "credentials in the URL"),
    (ServerEntry("new", "dicom://A@h:104", auth="basic", username="u"), "pw", "DIMSE (dicom://) has no passwords"),
    (ServerEntry("new", "https://h/dicom-web", auth="basic"), "pw", "basic authentication needs a user name"),
    (ServerEntry("new", "https://h/dicom-web", auth="bearer"), "", "type the token"),
])
def test_what_cannot_be_used_is_said_and_nothing_changes(medview_home, entry, secret, message):
    write_settings(medview_home, '[servers.old]\nurl = "dicom://OLD@pacs:104"\n')
    book = ServerBook()
    with pytest.raises(PacsError, match=re.escape(message)):
        book.put(entry, secret)
    assert book.names() == ["old"]
