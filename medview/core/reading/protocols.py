"""Hanging protocols: which layout a study opens in and which stack goes in which viewport, alone and beside
its prior.

The defaults ship as `protocols.json` in this package; `MEDVIEW_HOME/hanging_protocols.json` (same format)
comes first, and replaces a default of the same name. A user file that cannot be used is reported in one
message naming the file and the problem, and the defaults are used: a typo never leaves a reader without
images.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from medview.core.dicom.model import Stack, Study
from medview.core.dicom.series import slice_normal

log = logging.getLogger(__name__)

USER_FILE = "hanging_protocols.json"
PICKS = ("main", "first", "next")
MAX_SIDE = 4  # rows and columns of a layout: 1 to 4


class ProtocolError(ValueError):
    """A protocol file that cannot be used; the message says where and what."""


@dataclass(frozen=True)
class Pick:
    """What one viewport shows: a stack of the study, or with `prior` the prior's stack matching that pick."""

    pick: str = "main"
    min_images: int = 1
    prior: bool = False


@dataclass(frozen=True)
class Hanging:
    """A layout and what goes where, row by row; `linked`: scrolling linked from the start."""

    layout: tuple[int, int]
    viewports: tuple[Pick, ...]
    linked: bool = False


@dataclass(frozen=True)
class Protocol:
    name: str
    modalities: frozenset[str]  # empty: any
    body_parts: frozenset[str] | None  # None: any; "" in it: a study that does not say
    hanging: Hanging
    compare: Hanging

    def matches(self, modalities: set[str], body_part: str) -> bool:
        if self.modalities and not (self.modalities & modalities):
            return False
        return self.body_parts is None or body_part.upper() in self.body_parts


@dataclass
class ProtocolSet:
    """The protocols in the order they are tried, and what was wrong with the user's file ("" when nothing)."""

    protocols: list[Protocol]
    message: str = ""
    sources: list[str] = field(default_factory=list)

    def choose(self, modalities: set[str], body_part: str) -> Protocol:
        """The first protocol matching the study; the catch-all hanging when none does."""
        wanted = {m.upper() for m in modalities}
        for protocol in self.protocols:
            if protocol.matches(wanted, body_part):
                return protocol
        return FALLBACK


FALLBACK = Protocol("Any study", frozenset(), None, Hanging((1, 1), (Pick("first"),)),
                    Hanging((1, 2), (Pick("first"), Pick("first", prior=True))))


# ------------------------------------------------------------------------------------------------ reading


def _layout(value: Any, where: str) -> tuple[int, int]:
    if (not isinstance(value, list) or len(value) != 2 or not all(type(v) is int for v in value)
            or not all(1 <= v <= MAX_SIDE for v in value)):
        raise ProtocolError(f"{where}: layout must be [rows, columns], each 1 to {MAX_SIDE}, not {value!r}")
    return value[0], value[1]


def _pick(value: Any, where: str) -> Pick:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: a viewport must be an object like {{\"pick\": \"main\"}}, not {value!r}")
    unknown = set(value) - {"pick", "min_images", "prior"}
    if unknown:
        raise ProtocolError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: pick, min_images, prior)")
    pick = value.get("pick", "main")
    if pick not in PICKS:
        raise ProtocolError(f"{where}: pick must be one of {', '.join(PICKS)}, not {pick!r}")
    min_images = value.get("min_images", 1)
    if type(min_images) is not int or min_images < 1:
        raise ProtocolError(f"{where}: min_images must be a whole number of at least 1, not {min_images!r}")
    prior = value.get("prior", False)
    if not isinstance(prior, bool):
        raise ProtocolError(f"{where}: prior must be true or false, not {prior!r}")
    return Pick(pick, min_images, prior)


def _hanging(value: Any, where: str) -> Hanging:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: must be an object with layout and viewports")
    layout = _layout(value.get("layout"), where)
    viewports = value.get("viewports")
    if not isinstance(viewports, list) or not viewports:
        raise ProtocolError(f"{where}: viewports must be a list of at least one viewport")
    if len(viewports) > layout[0] * layout[1]:
        raise ProtocolError(f"{where}: {len(viewports)} viewports do not fit a {layout[0]}×{layout[1]} layout")
    linked = value.get("linked", False)
    if not isinstance(linked, bool):
        raise ProtocolError(f"{where}: linked must be true or false, not {linked!r}")
    picks = tuple(_pick(v, f"{where}, viewport {i + 1}") for i, v in enumerate(viewports))
    return Hanging(layout, picks, linked)


def _strings(value: Any, where: str, key: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{where}: {key} must be a list of strings, not {value!r}")
    return frozenset(v.strip().upper() for v in value)


def parse_protocols(document: Any) -> list[Protocol]:
    """Protocols from a parsed JSON document ({"protocols": [...]}); raises ProtocolError naming the problem."""
    if not isinstance(document, dict) or not isinstance(document.get("protocols"), list):
        raise ProtocolError('the file must hold an object with a list "protocols"')
    protocols = []
    for i, item in enumerate(document["protocols"]):
        where = f"protocol {i + 1}"
        if not isinstance(item, dict):
            raise ProtocolError(f"{where}: must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ProtocolError(f"{where}: needs a name")
        where = f"protocol {i + 1} ({name!r})"
        modalities = _strings(item.get("modalities", []), where, "modalities")
        body_parts = _strings(item["body_parts"], where, "body_parts") if "body_parts" in item else None
        hanging = _hanging({"layout": item.get("layout"), "viewports": item.get("viewports"),
                            "linked": item.get("linked", False)}, where)
        compare = _hanging(item["compare"], f"{where}, compare") if "compare" in item else FALLBACK.compare
        protocols.append(Protocol(name.strip(), modalities, body_parts, hanging, compare))
    return protocols


def default_protocols() -> list[Protocol]:
    text = resources.files(__package__).joinpath("protocols.json").read_text(encoding="utf-8")
    return parse_protocols(json.loads(text))


def read_protocol_file(path: Path) -> list[Protocol]:
    """The protocols of one file; ProtocolError with the reason in words when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("not UTF-8 text") from None
    except OSError as exc:
        raise ProtocolError(f"cannot be read ({exc.strerror or exc})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    return parse_protocols(document)


def load_protocols(user_file: Path | None = None) -> ProtocolSet:
    """The user's protocols (MEDVIEW_HOME/hanging_protocols.json unless `user_file`) before the defaults.

    A user file that cannot be used gives the defaults and a message "<file>: <problem>; using the default
    hanging protocols" (also logged as a warning).
    """
    defaults = default_protocols()
    if user_file is None:
        from medview.core.home import home_file

        user_file = home_file(USER_FILE)
    if not user_file.exists():
        return ProtocolSet(defaults, sources=["defaults"])
    try:
        mine = read_protocol_file(user_file)
    except ProtocolError as exc:
        message = f"{user_file}: {exc}; using the default hanging protocols"
        log.warning("%s", message)
        return ProtocolSet(defaults, message=message, sources=["defaults"])
    names = {p.name.casefold() for p in mine}
    rest = [p for p in defaults if p.name.casefold() not in names]
    return ProtocolSet(mine + rest, sources=[str(user_file), "defaults"])


# ------------------------------------------------------------------------------------------------ hanging


def main_stack(study: Study) -> Stack | None:
    """The stack with the most images (the first of equals): a CT's axial series, not its topogram."""
    stacks = study.stacks
    return max(stacks, key=lambda s: s.frame_count) if stacks else None


def matching_stack(stack: Stack, other: Study) -> Stack | None:
    """`other`'s stack that best matches `stack`: same modality and description, else same modality and
    orientation, else the same modality, each time the one with the most images; else `other`'s main stack."""
    candidates = [s for s in other.stacks if s.modality == stack.modality]

    def most(stacks: list[Stack]) -> Stack | None:
        return max(stacks, key=lambda s: s.frame_count) if stacks else None

    described = stack.description.strip().casefold()
    same_description = [s for s in candidates if described and s.description.strip().casefold() == described]
    normal = _normal(stack)
    same_orientation = [s for s in candidates if normal is not None and _parallel(normal, _normal(s))]
    return most(same_description) or most(same_orientation) or most(candidates) or main_stack(other)


def _normal(stack: Stack):
    orientation = stack.instances[0].image_orientation if stack.instances else None
    return slice_normal(orientation) if orientation is not None else None


def _parallel(a, b) -> bool:
    return b is not None and abs(sum(x * y for x, y in zip(a, b))) > 0.9


def hang(hanging: Hanging, study: Study, prior: Study | None = None,
         focus: Stack | None = None) -> list[tuple[Study, Stack, bool] | None]:
    """What each viewport of the layout shows, row by row: (study, stack, is the prior) or None (empty).

    `focus`: the stack being read, which "main" picks instead of the largest (P compares what the reader is
    looking at). Picks of the prior are left empty when there is no prior; when no pick finds a stack, the
    study's main stack goes in the first viewport, so a study never opens blank.
    """
    cells: list[tuple[Study, Stack, bool] | None] = [None] * (hanging.layout[0] * hanging.layout[1])
    used: set[int] = set()
    for i, pick in enumerate(hanging.viewports):
        stack = focus if pick.pick == "main" and focus is not None else _picked(pick, study, used)
        if stack is None:
            continue
        if pick.prior:
            if prior is not None:
                found = matching_stack(stack, prior)
                cells[i] = (prior, found, True) if found is not None else None
        else:
            used.add(id(stack))
            cells[i] = (study, stack, False)
    if all(cell is None or cell[2] for cell in cells) and study.stacks:
        cells[0] = (study, main_stack(study), False)  # type: ignore[assignment]
    return cells


def _picked(pick: Pick, study: Study, used: set[int]) -> Stack | None:
    stacks = study.stacks
    if pick.pick == "main":
        return main_stack(study)
    if pick.pick == "first":
        return stacks[0] if stacks else None
    return next((s for s in stacks if id(s) not in used and s.frame_count >= pick.min_images), None)
