"""Where the PACS is and who medview is on the network: `MEDVIEW_HOME/servers.toml` or a URL (SPEC section 8).

```toml
[medview]                        # medview's own side (all optional)
ae_title = "MEDVIEW"
listen_host = "127.0.0.1"        # the storage listener binds here unless set otherwise
listen_port = 11112
allowed_callers = ["ORTHANC"]    # when set, only these calling AE titles may store
cache_max_mb = 20000             # retrieved studies beyond this leave, oldest unopened first
tls_cert_file = "..."            # the listener speaks TLS when a certificate and key are given
tls_key_file = "..."

[servers.pacs]
url = "dicom://ORTHANC@pacs.example.org:4242"   # or https://pacs.example.org/dicom-web
retrieve = "get"                 # DIMSE: "get" (C-GET) or "move" (C-MOVE to medview's listener)
tls = true                       # DIMSE over TLS; DICOMweb follows the URL scheme
ca_file = "/etc/ssl/pacs-ca.pem" # verify the server with this CA (default: the system's CAs)
cert_file = "..."                # client certificate, when the server asks for one
key_file = "..."
username = "reader"              # basic authentication; the secret is never written here in clear:
password_file = "~/.config/medview/pacs.password"   # or password_env = "VAR", or keyring = "service"
token_file = "..."               # bearer authentication (or token_env / keyring)
```
Secrets are read when a connection is made and never logged or printed.
"""

from __future__ import annotations

import os
import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from medview.core.errors import MedviewError
from medview.core.home import home_file

DEFAULT_AE_TITLE = "MEDVIEW"
DEFAULT_LISTEN_PORT = 11112
DEFAULT_CACHE_MAX_MB = 20000
SETTINGS_FILE = "servers.toml"
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII without backslash, 16 at most


class PacsError(MedviewError):
    """A server that cannot be used (unknown name, unreachable, refusing): the message names it."""


@dataclass(frozen=True)
class Server:
    """One PACS: DIMSE (`kind == "dimse"`: AE title, host, port) or DICOMweb (`kind == "dicomweb"`: url)."""

    name: str
    kind: str
    host: str = ""
    port: int = 0
    called_ae: str = ""
    url: str = ""
    retrieve: str = "get"
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    secret_ref: dict = field(default_factory=dict, compare=False, repr=False)  # where a secret is, not it

    def label(self) -> str:
        """How messages name the server: its settings name, or the URL without credentials."""
        if self.kind == "dimse":
            where = f"dicom://{self.called_ae}@{self.host}:{self.port}"
        else:
            where = self.url
        return where if self.name == where else f"{self.name} ({where})"


@dataclass(frozen=True)
class LocalSettings:
    """medview's side of the network: its AE title, its listener and the cache bound."""

    ae_title: str = DEFAULT_AE_TITLE
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_LISTEN_PORT
    allowed_callers: tuple[str, ...] = ()
    cache_max_bytes: int = DEFAULT_CACHE_MAX_MB * 1024 * 1024
    tls_cert_file: str = ""
    tls_key_file: str = ""


def read_settings() -> dict:
    """The parsed servers.toml, or {} when there is none."""
    path = home_file(SETTINGS_FILE)
    try:
        with open(path, "rb") as fp:
            return tomllib.load(fp)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PacsError(f"{path}: cannot be read ({exc})") from None


def local_settings(settings: dict | None = None) -> LocalSettings:
    own = (read_settings() if settings is None else settings).get("medview", {})
    ae = str(own.get("ae_title", DEFAULT_AE_TITLE))
    check_ae_title(ae)
    return LocalSettings(
        ae_title=ae,
        listen_host=str(own.get("listen_host", "127.0.0.1")),
        listen_port=int(own.get("listen_port", DEFAULT_LISTEN_PORT)),
        allowed_callers=tuple(str(a) for a in own.get("allowed_callers", ())),
        cache_max_bytes=int(float(own.get("cache_max_mb", DEFAULT_CACHE_MAX_MB)) * 1024 * 1024),
        tls_cert_file=_path(own.get("tls_cert_file", "")),
        tls_key_file=_path(own.get("tls_key_file", "")),
    )


def check_ae_title(ae: str) -> str:
    if not _AE_TITLE.match(ae) or not ae.strip():
        raise PacsError(f"{ae!r} is not a valid AE title (1 to 16 printable ASCII characters, no backslash)")
    return ae


def resolve_server(text: str, settings: dict | None = None) -> Server:
    """SERVER as given on the command line: a name from servers.toml or a dicom:// or http(s):// URL."""
    settings = read_settings() if settings is None else settings
    entry = settings.get("servers", {}).get(text)
    if entry is not None:
        if "url" not in entry:
            raise PacsError(f"server {text!r} in {SETTINGS_FILE} has no url")
        return _from_url(text, str(entry["url"]), entry)
    if "://" not in text:
        known = ", ".join(sorted(settings.get("servers", {}))) or "none"
        raise PacsError(f"{text}: not a server name in {home_file(SETTINGS_FILE)} (known: {known}) "
                        "nor a dicom://AE@host:port or http(s):// URL")
    return _from_url(text, text, {})


def _from_url(name: str, url: str, entry: dict) -> Server:
    parts = urlsplit(url)
    common = dict(
        name=name, ca_file=_path(entry.get("ca_file", "")), cert_file=_path(entry.get("cert_file", "")),
        key_file=_path(entry.get("key_file", "")), username=str(entry.get("username", "")),
        secret_ref={k: entry[k] for k in ("password_file", "password_env", "token_file", "token_env", "keyring")
                    if k in entry},
    )
    if "password" in entry or "token" in entry:
        raise PacsError(f"server {name!r}: put the secret in a file (password_file/token_file), an environment "
                        "variable (password_env/token_env) or the keyring, not in clear in servers.toml")
    if parts.scheme in ("dicom", "dicoms"):
        if not parts.username or not parts.hostname or not parts.port:
            raise PacsError(f"{url}: a DIMSE server is written dicom://CALLED_AE@host:port")
        retrieve = str(entry.get("retrieve", "get"))
        if retrieve not in ("get", "move"):
            raise PacsError(f"server {name!r}: retrieve must be \"get\" or \"move\", not {retrieve!r}")
        return Server(kind="dimse", host=parts.hostname, port=parts.port,
                      called_ae=check_ae_title(parts.username), retrieve=retrieve,
                      tls=bool(entry.get("tls", parts.scheme == "dicoms")), **common)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise PacsError(f"{url}: no host")
        if parts.username or parts.password:
            raise PacsError(f"{parts.hostname}: credentials in the URL would be shown and logged; "
                            f"put them in {SETTINGS_FILE} (username and password_file)")
        return Server(kind="dicomweb", url=url.rstrip("/"), tls=parts.scheme == "https", **common)
    raise PacsError(f"{url}: unknown scheme {parts.scheme!r} (dicom://, http:// or https://)")


def _path(value) -> str:
    return str(Path(str(value)).expanduser()) if value else ""


def read_secret(server: Server, kind: str) -> str:
    """The password (`kind="password"`) or bearer token (`"token"`) of `server`, or "" when none is set."""
    ref = server.secret_ref
    if f"{kind}_file" in ref:
        path = Path(str(ref[f"{kind}_file"])).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PacsError(f"server {server.name!r}: the {kind} file {path} cannot be read "
                            f"({exc.strerror or exc})") from None
    if f"{kind}_env" in ref:
        value = os.environ.get(str(ref[f"{kind}_env"]), "")
        if not value:
            raise PacsError(f"server {server.name!r}: environment variable {ref[f'{kind}_env']} is not set")
        return value
    if "keyring" in ref and (kind == "password") == bool(server.username):
        try:
            import keyring
        except ImportError:
            raise PacsError(f"server {server.name!r}: a keyring entry is named but the keyring package is "
                            "not installed") from None
        value = keyring.get_password(str(ref["keyring"]), server.username or "token")
        if not value:
            raise PacsError(f"server {server.name!r}: nothing in the keyring under {ref['keyring']!r}")
        return value
    return ""


def client_ssl_context(server: Server) -> ssl.SSLContext:
    """Verifies the server's certificate and host name (against ca_file, else the system's CAs)."""
    try:
        context = ssl.create_default_context(cafile=server.ca_file or None)
        if server.cert_file:
            context.load_cert_chain(server.cert_file, server.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise PacsError(f"{server.label()}: TLS set-up failed ({exc})") from None
    return context


def server_ssl_context(settings: LocalSettings) -> ssl.SSLContext | None:
    """The listener's TLS context, when a certificate and key are configured."""
    if not settings.tls_cert_file:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise PacsError(f"listener TLS set-up failed ({exc})") from None
    return context
