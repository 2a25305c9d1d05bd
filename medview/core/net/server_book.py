"""The servers of `MEDVIEW_HOME/servers.toml` as the preferences edit them: add, change, remove, then save.

What `servers.resolve_server` reads is what this writes: one `[servers.NAME]` table per server, in the order
the reader keeps them; the `[medview]` table and any key medview does not edit (cert_file, password_env…)
stay as they were. Comments in a hand-written file are not kept: the file is written anew.

A password or token typed in the preferences never goes into servers.toml: it goes to the OS keyring when
one is available (`keyring = "medview/NAME"` in the file), else into a file of its own under
`MEDVIEW_HOME/secrets` that only the user can read (`password_file`/`token_file`). Secrets are never logged.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from medview.core.atomic import write_atomic
from medview.core.home import home, home_file
from medview.core.net.servers import SETTINGS_FILE, PacsError, read_settings, resolve_server

AUTH_KINDS = ("none", "basic", "bearer")  # basic: username and password; bearer: a token (DICOMweb only)
SECRET_KEYS = ("password_file", "password_env", "token_file", "token_env", "keyring")
EDITED_KEYS = ("url", "retrieve", "tls", "ca_file", "username", *SECRET_KEYS)
SECRETS_FOLDER = "secrets"
KEYRING_PREFIX = "medview/"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f\"\\]{1,64}$")


def os_keyring():
    """The `keyring` module when an OS keyring stands behind it (Secret Service, macOS Keychain, Windows
    Credential Locker), else None (the package missing, or only its "fail" backend on a headless Linux)."""
    try:
        import keyring
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken keyring set-up is no keyring
        return None
    return keyring if getattr(backend, "priority", 0) > 0 else None


@dataclass
class ServerEntry:
    """One server as the preferences show it. `auth` is derived from the file's keys when read."""

    name: str
    url: str
    retrieve: str = "get"  # DIMSE: "get" (C-GET) or "move" (C-MOVE to medview's listener)
    tls: bool = False  # DIMSE over TLS; DICOMweb follows the URL's scheme
    ca_file: str = ""
    auth: str = "none"
    username: str = ""
    secret_ref: dict = field(default_factory=dict)  # where the secret is (keys of SECRET_KEYS), never the secret
    extra: dict = field(default_factory=dict)  # keys the preferences do not edit, written back as they were

    @property
    def dimse(self) -> bool:
        return self.url.strip().lower().startswith(("dicom://", "dicoms://"))

    def secret_where(self) -> str:
        """Where its secret is kept, in words ("" when it has none)."""
        ref = self.secret_ref
        if "keyring" in ref:
            return "in the OS keyring"
        for key in ("password_file", "token_file"):
            if key in ref:
                return f"in the file {ref[key]}"
        for key in ("password_env", "token_env"):
            if key in ref:
                return f"in the environment variable {ref[key]}"
        return ""

    def table(self) -> dict:
        """Its `[servers.NAME]` table."""
        out = dict(self.extra)
        out["url"] = self.url.strip()
        if self.dimse:
            if self.retrieve != "get":
                out["retrieve"] = self.retrieve
            if self.tls:
                out["tls"] = True
        if self.ca_file:
            out["ca_file"] = self.ca_file
        if self.auth == "basic":
            out["username"] = self.username
        if self.auth != "none":
            out.update(self.secret_ref)
        return out


def entry_from_table(name: str, table: dict) -> ServerEntry:
    ref = {k: table[k] for k in SECRET_KEYS if k in table}
    username = str(table.get("username", ""))
    if username:
        auth = "basic"
    elif any(k.startswith("token") for k in ref) or "keyring" in ref:
        auth = "bearer"
    else:
        auth = "none"
    return ServerEntry(
        name=name, url=str(table.get("url", "")), retrieve=str(table.get("retrieve", "get")),
        tls=bool(table.get("tls", False)), ca_file=str(table.get("ca_file", "")), auth=auth, username=username,
        secret_ref=ref, extra={k: v for k, v in table.items() if k not in EDITED_KEYS})


class ServerBook:
    """The servers being edited; nothing is written until `save()`."""

    def __init__(self, settings: dict | None = None):
        settings = read_settings() if settings is None else settings
        self._settings = settings
        self.entries = [entry_from_table(str(name), dict(table))
                        for name, table in settings.get("servers", {}).items()]
        self._secrets: dict[str, str] = {}  # server name -> a secret typed, until saved
        self._dropped: list[ServerEntry] = []  # removed or changed: medview's own secrets of them go on save

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> ServerEntry | None:
        return next((e for e in self.entries if e.name == name), None)

    def put(self, entry: ServerEntry, secret: str = "", replacing: str | None = None) -> None:
        """Adds a server, or changes `replacing` (its old name); PacsError says what cannot be used.
        An empty `secret` keeps the stored one of a server that has one."""
        entry.name = entry.name.strip()
        entry.url = entry.url.strip()
        if not _NAME.match(entry.name) or "://" in entry.name:
            raise PacsError("a server needs a name: up to 64 characters, no quotes, backslashes or ://")
        if entry.name != replacing and self.get(entry.name) is not None:
            raise PacsError(f"there is already a server named {entry.name!r}")
        if entry.auth not in AUTH_KINDS:
            raise PacsError(f"unknown authentication {entry.auth!r}")
        if entry.auth != "none" and entry.dimse:
            raise PacsError("DIMSE (dicom://) has no passwords or tokens: use TLS, or a DICOMweb URL")
        if entry.auth == "basic" and not entry.username.strip():
            raise PacsError("basic authentication needs a user name")
        entry.username = entry.username.strip() if entry.auth == "basic" else ""
        old = self.get(replacing) if replacing is not None else None
        secret = secret or (self._secrets.get(old.name, "") if old is not None else "")
        if entry.auth == "none":
            entry.secret_ref = {}
        elif secret:
            entry.secret_ref = {}  # where it goes is known once saved
        elif old is not None and old.auth == entry.auth and old.username == entry.username and old.secret_ref:
            entry.secret_ref = dict(old.secret_ref)  # the stored one, also under a new name
        else:
            what = "password" if entry.auth == "basic" else "token"
            raise PacsError(f"type the {what}" + (" again: the user name changed" if old is not None
                                                  and old.auth == entry.auth else ""))
        resolve_server(entry.name, {"servers": {entry.name: entry.table()}})  # as servers.toml will be read
        if old is not None:
            self._secrets.pop(old.name, None)
            if old.secret_ref and old.secret_ref != entry.secret_ref:
                self._dropped.append(old)
            self.entries[self.entries.index(old)] = entry
        else:
            self.entries.append(entry)
        if secret:
            self._secrets[entry.name] = secret

    def remove(self, name: str) -> None:
        entry = self.get(name)
        if entry is not None:
            self.entries.remove(entry)
            self._dropped.append(entry)
            self._secrets.pop(name, None)

    def save(self) -> str:
        """Writes servers.toml and the typed secrets; returns where the secrets went, in words ("" when none
        were typed). PacsError when the file or a secret cannot be written."""
        still_used = [e.secret_ref for e in self.entries if e.secret_ref and e.name not in self._secrets]
        for entry in self._dropped:  # first: a new secret may go where the old one was
            if entry.secret_ref not in still_used:
                _forget_secret(entry)
        self._dropped.clear()
        keyring = os_keyring() if self._secrets else None
        stored = []
        for entry in self.entries:
            secret = self._secrets.pop(entry.name, "")
            if secret:
                entry.secret_ref = _store_secret(entry, secret, keyring)
                stored.append(entry.secret_where())
        data = {k: v for k, v in self._settings.items() if k != "servers"}
        data["servers"] = {e.name: e.table() for e in self.entries}
        path = home_file(SETTINGS_FILE)
        try:
            write_atomic(path, (HEADER + dump_toml(data)).encode("utf-8"), mode=0o644)
        except OSError as exc:
            raise PacsError(f"{path}: cannot be written ({exc.strerror or exc})") from None
        self._settings = data
        return "; ".join(sorted(set(stored)))


HEADER = ("# medview's PACS servers and network settings (File → Preferences writes this file;\n"
          "# passwords and tokens are kept in the OS keyring or in files of their own, never here).\n\n")


def _account(entry: ServerEntry) -> str:
    return entry.username if entry.auth == "basic" else "token"


def _store_secret(entry: ServerEntry, secret: str, keyring) -> dict:
    kind = "password" if entry.auth == "basic" else "token"
    if keyring is not None:
        service = KEYRING_PREFIX + entry.name
        try:
            keyring.set_password(service, _account(entry), secret)
            return {"keyring": service}
        except Exception:  # noqa: BLE001 - a keyring that refuses (locked, denied): the file below instead
            pass
    folder = home() / SECRETS_FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / f"{_file_name(entry.name)}.{kind}"
    try:
        write_atomic(path, (secret + "\n").encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise PacsError(f"the {kind} of {entry.name!r} cannot be stored ({exc.strerror or exc})") from None
    return {f"{kind}_file": str(path)}


def _forget_secret(entry: ServerEntry) -> None:
    """Removes the secret medview itself stored for a server (its keyring entry, its file under
    MEDVIEW_HOME/secrets); a file or variable the user named is theirs and stays."""
    ref = entry.secret_ref
    service = str(ref.get("keyring", ""))
    if service.startswith(KEYRING_PREFIX):
        keyring = os_keyring()
        if keyring is not None:
            try:
                keyring.delete_password(service, _account(entry))
            except Exception:  # noqa: BLE001 - already gone
                pass
    folder = home() / SECRETS_FOLDER
    for key in ("password_file", "token_file"):
        path = Path(str(ref.get(key, "")))
        if key in ref and path.parent == folder:
            try:
                path.unlink()
            except OSError:
                pass


def _file_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40]
    return safe or "server"




# -- TOML ----------------------------------------------------------------------------------------------------
def dump_toml(data: dict) -> str:
    """Tables of strings, numbers, booleans and lists of them, as TOML that `tomllib` reads back equal."""
    lines: list[str] = []
    _dump_table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _dump_table(table: dict, path: list[str], lines: list[str]) -> None:
    plain = {k: v for k, v in table.items() if not isinstance(v, dict)}
    nested = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (plain or not nested):
        lines.append(f"[{'.'.join(_key(p) for p in path)}]")
    for key, value in plain.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    if plain:
        lines.append("")
    for key, value in nested.items():
        _dump_table(value, path + [str(key)], lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    return json.dumps(str(text), ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return _string(value)
