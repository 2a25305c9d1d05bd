"""Reading in context without Qt: the session (studies, open case, layout of viewports), hanging protocols,
priors and linked scrolling, and the worklist's cases (`CaseList`). The window draws `ReadingSession`'s state
and sends it intents."""

from medview.core.reading.cases import CaseList
from medview.core.reading.protocols import ProtocolSet, load_protocols
from medview.core.reading.session import LAYOUT_KEYS, NO_PRIOR, PAGE, PLANES, ReadingSession, Viewport

__all__ = ["LAYOUT_KEYS", "NO_PRIOR", "PAGE", "PLANES", "CaseList", "ProtocolSet", "ReadingSession", "Viewport",
           "load_protocols"]
