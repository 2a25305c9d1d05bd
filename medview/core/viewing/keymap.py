"""Keymap rules without Qt: which bindings conflict, and which differ from the defaults (the only ones stored).

Key sequences are compared in Qt's portable text form ("Ctrl+F", "Shift+Down"), normalised by the caller.
"""

from __future__ import annotations

from typing import Mapping, Sequence


class KeymapConflict(ValueError):
    """A binding already used by another action; the message names both."""


def conflicts(
    bindings: Mapping[str, Sequence[str]], action_id: str, keys: Sequence[str], names: Mapping[str, str] | None = None
) -> list[str]:
    """Messages for each key of `keys` that another action already uses ([] when the change is allowed)."""
    names = names or {}
    out = []
    for key in keys:
        if not key:
            continue
        for other, other_keys in bindings.items():
            if other != action_id and key in other_keys:
                out.append(f"{key} is already used by “{names.get(other, other)}”")
    dupes = {k for k in keys if k and list(keys).count(k) > 1}
    out += [f"{k} is given twice" for k in sorted(dupes)]
    return out


def overrides(defaults: Mapping[str, Sequence[str]], current: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The bindings that differ from the defaults: what is stored in the settings, nothing more."""
    return {a: list(keys) for a, keys in current.items() if list(keys) != list(defaults.get(a, []))}
