"""A case's review to a PACS: its SR, key-image selection (KOS) and segmentations (SEG), made as
`medview export --format sr` makes them, sent (C-STORE or STOW-RS) and then looked for on the server: an object
counts as arrived only when the server lists it (the query back). Other reading stations see it there.

Nothing is sent unless the reader asked (a key, or the sign-off rule they set). The files are made in a folder
under MEDVIEW_HOME that is removed afterwards, never next to the studies.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from medview.core.home import home_dir
from medview.core.net.servers import LocalSettings, PacsError, Server
from medview.core.net.transfer import Cancel, Progress, list_instances, send_paths

KIND_OF_MODALITY = {"SR": "SR", "KO": "KOS", "SEG": "SEG"}


@dataclass
class SentObject:
    """One object of a review: what it is, whether the server took it, whether it lists it now."""

    kind: str          # "SR", "KOS" or "SEG"
    study_uid: str
    sop_uid: str
    error: str = ""    # why it did not arrive ("" when the server took it)
    confirmed: bool = False


@dataclass
class ReviewSendResult:
    server: str
    objects: list[SentObject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be made or checked, in words

    @property
    def ok(self) -> bool:
        return bool(self.objects) and all(o.confirmed for o in self.objects) and not self.problems

    def summary(self) -> str:
        """One line for the status bar: what arrived and was found on the server, what did not and why."""
        if not self.objects:
            return "; ".join(self.problems) or "nothing to send"
        kinds = ", ".join(dict.fromkeys(o.kind for o in self.objects if o.confirmed))
        confirmed = sum(o.confirmed for o in self.objects)
        if confirmed == len(self.objects) and not self.problems:
            return f"Review sent to {self.server}: {kinds} found there by query"
        failed = [o for o in self.objects if not o.confirmed]
        reasons = "; ".join(f"{o.kind}: {o.error or 'not listed by the server after sending'}" for o in failed)
        done = f"{kinds} found there, " if confirmed else ""
        return f"Review to {self.server}: {done}{len(failed)} of {len(self.objects)} not arrived ({reasons})" + (
            f"; {'; '.join(self.problems)}" if self.problems else "")


def make_review_objects(records: Sequence, out: Path, predictions: Callable | None = None) -> tuple[list[Path],
                                                                                                    list[str]]:
    """The SR, KOS and SEG files of the cases into `out`, and the cases whose objects could not be made."""
    from medview.core.review.export import export_cases

    problems: list[str] = []

    def failed(record, fmt: str, reason: str) -> None:
        problems.append(f"the {fmt.upper()} of study {record.study_uid} could not be made ({reason})")

    files = export_cases(records, out, ["sr"], on_error=failed, predictions=predictions)
    return [f for f in files if f.suffix == ".dcm"], problems


def _identify(path: Path) -> SentObject:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return SentObject(KIND_OF_MODALITY.get(str(ds.get("Modality", "")), str(ds.get("Modality", "") or "object")),
                      str(ds.StudyInstanceUID), str(ds.SOPInstanceUID))


def send_review(server: Server, records: Sequence, *, local: LocalSettings | None = None,
                progress: Progress | None = None, cancel: Cancel | None = None,
                predictions: Callable | None = None) -> ReviewSendResult:
    """Make the review objects of `records` (export.CaseRecord), send them to `server`, and query each back.

    PacsError when the server cannot be reached at all; anything less is in the result, object by object.
    """
    result = ReviewSendResult(server.name)
    staging = Path(tempfile.mkdtemp(prefix="send-", dir=home_dir("outbox")))
    try:
        files, result.problems = make_review_objects(records, staging, predictions)
        if not files:
            result.problems = result.problems or ["no review objects to send (no findings, key images or masks)"]
            return result
        objects = {str(f): _identify(f) for f in files}
        for sent in send_paths(server, list(objects), local=local, progress=progress, cancel=cancel):
            if sent.path in objects:
                objects[sent.path].error = sent.error
        result.objects = list(objects.values())
        arrived = [o for o in result.objects if not o.error]
        for study_uid in dict.fromkeys(o.study_uid for o in arrived):
            try:
                listed = {k.sop_uid for k in list_instances(server, study_uid, local)}
            except PacsError as exc:
                result.problems.append(f"sent, but not found by query ({str(exc).split(': ', 1)[-1]})")
                continue
            for o in arrived:
                if o.study_uid == study_uid:
                    o.confirmed = o.sop_uid in listed
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
