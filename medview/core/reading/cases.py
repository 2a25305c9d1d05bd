"""The worklist's cases without Qt: which studies are listed, which case is open, and which case a loaded folder
opens on. The case controller (medview.qt.cases) keeps one and draws what it says."""

from __future__ import annotations

from typing import Callable, Sequence

from medview.core.dicom.model import Study

KeptStudies = Callable[[], list[Study]]  # the studies a source holds now (the PACS cache's)
FirstUnreviewed = Callable[[list[str]], "str | None"]  # of study UIDs in the worklist's order


class CaseList:
    """The studies the worklist lists (the opened paths' and the kept ones), the open case and the case opened
    by itself on load."""

    def __init__(self) -> None:
        self.studies: list[Study] = []
        self.case: Study | None = None
        # the case opened by itself when the folder loaded (`first_case`), until another is opened or the reader
        # picks it in the worklist: N and Enter go on from the top of the worklist, not from its row
        self.start_case_uid: str | None = None
        self.opened_paths: list[str] = []
        self._kept: list[KeptStudies] = []

    def keep_on_open(self, source: KeptStudies) -> None:
        """`source`'s studies stay in the worklist whichever folder is opened."""
        self._kept.append(source)

    def beside_kept(self, studies: Sequence[Study]) -> list[Study]:
        """The opened folder's studies followed by those kept whatever is opened; a study in both is the
        folder's."""
        opened = {s.study_uid for s in studies}
        kept = [s for kept_now in self._kept for s in kept_now() if s.study_uid not in opened]
        return list(studies) + kept

    def merged(self, studies: Sequence[Study]) -> list[Study]:
        """The listed studies with `studies` joined: one listed already is replaced in its place by the newer
        scan, the others follow."""
        incoming = {s.study_uid: s for s in studies}
        return [incoming.pop(s.study_uid, s) for s in self.studies] + list(incoming.values())

    def find_study(self, study_uid: str) -> Study | None:
        """The listed study with this UID (None: not in the worklist)."""
        return next((s for s in self.studies if s.study_uid == study_uid), None)

    def is_open(self, study: Study) -> bool:
        return self.case is not None and self.case.study_uid == study.study_uid

    @staticmethod
    def first_case(order: Sequence[Study], first_unreviewed: FirstUnreviewed | None = None) -> Study | None:
        """The case a loaded folder opens on: the first in the worklist's `order` that is not signed off, else
        the first; None for an empty worklist."""
        if not order:
            return None
        uid = first_unreviewed([s.study_uid for s in order]) if first_unreviewed is not None else None
        return next((s for s in order if s.study_uid == uid), order[0])
