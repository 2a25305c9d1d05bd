"""Reading in context without Qt: the session (studies, open case, layout of viewports), hanging protocols,
priors and linked scrolling, the worklist's cases (`CaseList`) and the room viewports side by side take from
the worklist (`WorklistRoom`). The window draws `ReadingSession`'s state; the reading controller sends it
intents."""

from medview.core.reading.cases import CaseList
from medview.core.reading.protocols import ProtocolSet, load_protocols
from medview.core.reading.room import WorklistRoom
from medview.core.reading.session import LAYOUT_KEYS, NO_PRIOR, NO_SLAB_HERE, PAGE, PLANES, ReadingSession, Viewport

__all__ = ["LAYOUT_KEYS", "NO_PRIOR", "NO_SLAB_HERE", "PAGE", "PLANES", "CaseList", "ProtocolSet", "ReadingSession",
           "Viewport", "WorklistRoom", "load_protocols"]
