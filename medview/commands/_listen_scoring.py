"""Scoring what `medview listen` receives, in a process of its own.

The listener stays a small process that only receives, stores and indexes (it never imports torch, SPEC
section 1, and a model that fails or a decoder that crashes cannot stop it from accepting studies). The first
arrival starts one scoring process; it loads the model once, scores each study as `medview infer` would, keeps
the results in the results cache (the app then shows them without scoring again) and answers with one line of
words per study.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue

log = logging.getLogger(__name__)

STOP_WAIT_S = 10.0


class ScoringProcess:
    """Studies in (their folder in the PACS cache), one summary line per study out, in arrival order."""

    def __init__(self, model: str | None = None, device: str = "auto") -> None:
        self._model = model
        self._device = device
        self._context = multiprocessing.get_context("spawn")  # no copy of the listener's threads and sockets
        self._requests = None
        self._replies = None
        self._process = None
        self._left: list[tuple[str, str]] = []  # answers read while closing
        self._waiting: list[str] = []           # studies submitted and not answered yet, in order

    def submit(self, study_uid: str, path) -> None:
        if self._process is None:
            self._requests, self._replies = self._context.Queue(), self._context.Queue()
            self._process = self._context.Process(
                target=serve, args=(self._requests, self._replies, self._model, self._device),
                name="medview-listen-scoring", daemon=True)
            self._process.start()
        self._waiting.append(study_uid)
        self._requests.put((study_uid, str(path)))

    def answers(self) -> list[tuple[str, str]]:
        """(study UID, summary) of every study scored since the last call; a scoring process that died says so
        for the studies it still had."""
        out, self._left = self._left, []
        if self._replies is None:
            return out
        while True:
            try:
                answer = self._replies.get_nowait()
            except queue.Empty:
                break
            out.append(answer)
            if answer[0] in self._waiting:
                self._waiting.remove(answer[0])
        if self._process is not None and not self._process.is_alive() and self._waiting:
            # a native crash (a decoder, the runtime): the studies it had are said, the next arrival restarts it
            why = f"not scored: the scoring process stopped (exit code {self._process.exitcode})"
            out += [(uid, why) for uid in self._waiting]
            self._waiting.clear()
            self._process = None
        return out

    def close(self) -> None:
        """Let the process finish the study in hand and stop; its answers stay for `answers()`."""
        if self._process is None:
            return
        self._requests.put(None)
        self._process.join(STOP_WAIT_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(STOP_WAIT_S)
        self._left = self.answers()
        self._process = self._replies = None


def serve(requests, replies, model: str | None, device: str) -> None:
    """The scoring process: the model loaded once, then each study scored and summed up in words."""
    from medview.core.errors import MedviewError

    try:
        from medview.core.inference.bundle import load_bundle
        from medview.core.inference.cache import ResultCache
        from medview.core.inference.engine import Engine
        from medview.core.inference.scoring import FrameScorer
        from medview.resources import bundled_model_path

        bundle = load_bundle(model or bundled_model_path())
        engine = Engine(bundle, device=device)
        engine.warm_up()
        scorer = FrameScorer(engine, ResultCache())
        unusable = None
    except MedviewError as exc:
        scorer, unusable = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever torch raises, the listener goes on receiving
        scorer, unusable = None, f"the model could not be loaded ({exc})"
    while True:
        item = requests.get()
        if item is None:
            return
        study_uid, path = item
        if scorer is None:
            replies.put((study_uid, f"not scored: {unusable}"))
            continue
        try:
            replies.put((study_uid, score_study(scorer, path)))
        except Exception as exc:  # noqa: BLE001 - one study's failure is its own line
            log.warning("scoring a received study failed: %s", type(exc).__name__)
            replies.put((study_uid, f"not scored: {exc}"))


def score_study(scorer, path: str) -> str:
    """The study at `path` scored (cached results reused): its finding in words."""
    from medview.core.dicom.scan import scan
    from medview.core.inference.results import InferenceJob

    found = scan([path])
    jobs = [job for inst in found.instances for job in InferenceJob.for_instance(inst)]
    return summary(list(scorer.score(jobs)))


def summary(results) -> str:
    """"flagged: cardiomegaly 0.98 (CTR 0.62)", "not flagged (cardiomegaly 0.03; CTR 0.44)", "not applicable:
    (lateral view)" or "no image the model reads", with the errors counted."""
    from medview.core.inference.results import ERROR, NOT_APPLICABLE, OK
    from medview.core.viewing.findings_text import format_score

    scored = [r for r in results if r.status == OK]
    errors = sum(r.status == ERROR for r in results)
    tail = f"; {errors} image{'s' if errors != 1 else ''} could not be scored" if errors else ""
    if not scored:
        reasons = sorted({r.error for r in results if r.status == NOT_APPLICABLE and r.error})
        if reasons:
            return f"not applicable: {'; '.join(reasons)}{tail}"
        return f"no image the model reads{tail}" if not errors else tail[2:]
    top = max(scored, key=lambda r: max(r.prediction.scores.values(), default=0.0))
    label, score = max(top.prediction.scores.items(), key=lambda kv: kv[1])
    ratio = top.prediction.measurements.get("cardiothoracic_ratio")
    measured = f"CTR {ratio['value']:.2f}" if ratio else ""
    flagged = sorted({label for r in scored for label in r.prediction.flagged})
    name = label.replace("_", " ")
    if flagged:
        return f"flagged: {name} {format_score(score)}{f' ({measured})' if measured else ''}{tail}"
    return f"not flagged ({name} {format_score(score)}{f'; {measured}' if measured else ''}){tail}"
