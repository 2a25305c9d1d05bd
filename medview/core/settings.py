"""Every preference medview keeps, typed, with its default, in one place.

`Preferences` lists them; `Settings` reads and writes them through a key-value store: QSettings in the app
(`medview.qt.settings_store`, an INI file under MEDVIEW_HOME: SPEC section 7), a dict in tests and scripts.
What is stored comes back as the declared type whatever the store made of it (an INI file gives "true" and
"15" back as text); a value that cannot be used is read as the default. Nothing is cached: two windows, or a
preference changed by a dialog, never see stale values, and the callers that read on a hot path (the AI's
thresholds) hold what they read themselves.

Storage keys are those of earlier versions, so a reader's preferences carry over.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_CINE_FPS = 15
RECENT_MAX = 10


@dataclass(frozen=True)
class Preferences:
    """One value per preference; the defaults are what a first start uses."""

    ai_model: str = ""  # a model bundle folder or TorchScript file; "" is the bundled model
    ai_device: str = "auto"  # one of DEVICES
    cine_fps: int = DEFAULT_CINE_FPS
    export_folder: str = ""  # where the last export went
    recent: tuple[str, ...] = ()  # recently opened locations, newest first
    pacs_listen: bool = False  # run the storage listener (studies pushed to this station)
    pacs_send_on_sign_off: bool = False  # send the review to `pacs_send_server` when a case is signed off
    pacs_send_server: str = ""
    pacs_last_server: str = ""  # the server the PACS panel searched last


#: the storage key of each preference
KEYS = {
    "ai_model": "ai/model",
    "ai_device": "ai/device",
    "cine_fps": "viewer/cine_fps",
    "export_folder": "export/last_folder",
    "recent": "recent",
    "pacs_listen": "pacs/listen",
    "pacs_send_on_sign_off": "pacs/send_on_sign_off",
    "pacs_send_server": "pacs/send_server",
    "pacs_last_server": "pacs/last_server",
}
THRESHOLDS_GROUP = "ai/thresholds"  # /<model name>/<finding>: the reader's thresholds where not the bundle's
KEYMAP_GROUP = "keymap"  # /<action id>: the reader's keys where not the defaults ([""]: none)
WINDOW_KEYS = ("geometry", "state", "splitter")  # window/<name>: the main window's layout, as Qt saves it

_FIELDS = {f.name: f for f in dataclasses.fields(Preferences)}


class KeyValueStore(Protocol):
    """Where settings live: keys like "ai/model", groups are key prefixes."""

    def value(self, key: str) -> Any: ...  # None where not stored

    def set_value(self, key: str, value: Any) -> None: ...

    def remove(self, key: str) -> None: ...  # a key, or a group with everything under it

    def child_keys(self, group: str) -> list[str]: ...  # the keys directly under a group

    def sync(self) -> None: ...


class MemoryStore:
    """A store in a dict: tests and embedding scripts that must not touch the user's settings."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})

    def value(self, key: str) -> Any:
        return self.values.get(key)

    def set_value(self, key: str, value: Any) -> None:
        self.values[key] = value

    def remove(self, key: str) -> None:
        for k in [k for k in self.values if k == key or k.startswith(key + "/")]:
            del self.values[k]

    def child_keys(self, group: str) -> list[str]:
        prefix = group + "/"
        return sorted({k[len(prefix):] for k in self.values if k.startswith(prefix) and "/" not in k[len(prefix):]})

    def sync(self) -> None:
        pass


def key_part(text: str) -> str:
    """A model or finding name usable as one key level (no "/", nothing an INI file would mangle)."""
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in text) or "_"


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in ("true", "1", "yes") else False if text in ("false", "0", "no", "") else None


def _as_strings(value: Any) -> tuple[str, ...]:
    """A list as the store gives it back: an INI file returns a one-item list as a plain string."""
    items = [value] if isinstance(value, str) else list(value or [])
    return tuple(str(v) for v in items if str(v))


def _as_threshold(value: Any) -> float | None:
    """A stored threshold as a number in 0..1, or None where it is not one (a damaged or foreign setting)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def _typed(name: str, raw: Any) -> Any:
    """The stored `raw` as preference `name`'s type; the default where it is missing or cannot be used."""
    default = _FIELDS[name].default
    if raw is None:
        return default
    if isinstance(default, bool):
        value = _as_bool(raw)
        return default if value is None else value
    if isinstance(default, int):
        try:
            return int(str(raw).strip())
        except ValueError:
            return default
    if isinstance(default, tuple):
        return _as_strings(raw)
    value = str(raw)
    if name == "ai_device" and value not in DEVICES:
        return default
    return value


def _check(name: str, value: Any) -> Any:
    """A value about to be stored, of the preference's type (a programming error otherwise)."""
    if name not in _FIELDS:
        raise AttributeError(f"no preference {name!r}")
    default = _FIELDS[name].default
    if isinstance(default, tuple):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{name} takes a sequence of strings")
        return tuple(value)
    if type(value) is not type(default):
        raise TypeError(f"{name} takes {type(default).__name__}, not {type(value).__name__}")
    if name == "ai_device" and value not in DEVICES:
        raise ValueError(f"ai_device is one of {', '.join(DEVICES)}")
    return value


class Settings:
    """Typed reads and writes of the preferences, the AI thresholds, the keymap and the window layout."""

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store

    # --- the preferences ------------------------------------------------------------------------------------
    def preferences(self) -> Preferences:
        return Preferences(**{name: self.get(name) for name in _FIELDS})

    def get(self, name: str) -> Any:
        if name not in _FIELDS:
            raise AttributeError(f"no preference {name!r}")
        return _typed(name, self.store.value(KEYS[name]))

    def update(self, **changes: Any) -> None:
        """Store the given preferences (names of `Preferences` fields, values of their types)."""
        checked = {name: _check(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            self.store.set_value(KEYS[name], list(value) if isinstance(value, tuple) else value)
        self.store.sync()

    def add_recent(self, location: str) -> tuple[str, ...]:
        """`location` first among the recent ones (once), the oldest dropped beyond RECENT_MAX; returns them."""
        items = (location,) + tuple(p for p in self.get("recent") if p != location)
        self.update(recent=items[:RECENT_MAX])
        return items[:RECENT_MAX]

    # --- the reader's thresholds, per model -----------------------------------------------------------------
    def thresholds(self, model: str, labels: Iterable[str]) -> dict[str, float]:
        """The reader's thresholds for `model`'s findings `labels`, where set."""
        group = f"{THRESHOLDS_GROUP}/{key_part(model)}"
        out = {}
        for label in labels:
            number = _as_threshold(self.store.value(f"{group}/{key_part(label)}"))
            if number is not None:
                out[label] = number
        return out

    def set_thresholds(self, model: str, thresholds: dict[str, float]) -> None:
        """Replace the reader's thresholds for `model` (an empty dict: the bundle's again)."""
        group = f"{THRESHOLDS_GROUP}/{key_part(model)}"
        self.store.remove(group)
        for label, value in thresholds.items():
            self.store.set_value(f"{group}/{key_part(label)}", float(value))
        self.store.sync()

    # --- the keymap -------------------------------------------------------------------------------------------
    def keymap(self) -> dict[str, list[str]]:
        """The reader's keys per action id where they differ from the defaults ([]: the action has none)."""
        out = {}
        for action in self.store.child_keys(KEYMAP_GROUP):
            keys = list(_as_strings(self.store.value(f"{KEYMAP_GROUP}/{action}")))
            out[action] = keys
        return out

    def set_keymap(self, overrides: dict[str, list[str]]) -> None:
        self.store.remove(KEYMAP_GROUP)
        for action, keys in overrides.items():
            self.store.set_value(f"{KEYMAP_GROUP}/{action}", list(keys) if keys else [""])
        self.store.sync()

    # --- the window's layout --------------------------------------------------------------------------------
    def window_layout(self) -> dict[str, bytes]:
        """The main window's saved geometry, state and splitter (Qt's own bytes), those that are stored."""
        out = {}
        for name in WINDOW_KEYS:
            value = self.store.value(f"window/{name}")
            if isinstance(value, (bytes, bytearray)) and value:
                out[name] = bytes(value)
        return out

    def set_window_layout(self, **layout: bytes) -> None:
        for name, value in layout.items():
            if name not in WINDOW_KEYS:
                raise AttributeError(f"no window layout part {name!r}")
            self.store.set_value(f"window/{name}", bytes(value))
        self.store.sync()
