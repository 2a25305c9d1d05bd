"""`medview listen` scores what it receives in a process of its own: a line per study says what the model found,
the results land in the results cache the app reads, and the listening process itself never loads torch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medview.commands._listen_scoring import ScoringProcess, summary
from medview.core.demo import generate_demo
from medview.core.inference.results import ERROR, NOT_APPLICABLE, OK, InferenceJob, InferenceResult, Prediction
from medview.core.net import PacsCache
from tests.orthanc import free_port


def _result(status, scores=None, flagged=(), ctr=None, error=""):
    job = InferenceJob("1.2", "1.2.3", "1.2.3.4", None, "DX")
    prediction = None
    if status == OK:
        measured = {"cardiothoracic_ratio": {"value": ctr}} if ctr is not None else {}
        prediction = Prediction(scores, list(flagged), None, "m@1", measured)
    return InferenceResult(job, status, prediction, error)


def test_a_study_is_summed_up_in_words():
    assert summary([_result(OK, {"cardiomegaly": 0.98}, ["cardiomegaly"], 0.621),
                    _result(OK, {"cardiomegaly": 0.2}, ctr=0.47)]) == "flagged: cardiomegaly 0.98 (CTR 0.62)"
    assert summary([_result(OK, {"cardiomegaly": 0.03}, ctr=0.44), _result(ERROR, error="cut short")]) == (
        "not flagged (cardiomegaly 0.03; CTR 0.44); 1 image could not be scored")
    assert summary([_result(NOT_APPLICABLE, error="lateral view")]) == "not applicable: lateral view"
    assert summary([]) == "no image the model reads"
    assert summary([_result(ERROR, error="x"), _result(ERROR, error="y")]) == "2 images could not be scored"


@pytest.mark.slow
def test_the_scoring_process_scores_studies_in_order_and_says_when_it_cannot(tmp_path, medview_home):
    """Two studies (a flagged demo radiograph, a CT the model does not read) and a model that is missing:
    each study gets its answer; the results of the first are in the results cache for the app."""
    demo = generate_demo(tmp_path / "demo", cases=4, seed=7, ct_slices=3)
    flagged = Path(next(p for p, label in zip(demo.radiographs, demo.labels) if label))
    ct = Path(demo.ct_files[0]).parent
    scoring = ScoringProcess(device="cpu")
    try:
        scoring.submit("A", flagged.parent)
        scoring.submit("B", ct)
        answers = []
        deadline = time.monotonic() + 180
        while len(answers) < 2 and time.monotonic() < deadline:
            answers += scoring.answers()
            time.sleep(0.2)
    finally:
        scoring.close()
    assert [uid for uid, _ in answers] == ["A", "B"]
    assert answers[0][1].startswith("flagged: cardiomegaly") and "CTR 0." in answers[0][1]
    assert answers[1][1] == "not applicable: other modality (CT; the model reads CR, DX)"
    import pydicom

    from medview.core.inference.bundle import load_bundle
    from medview.core.inference.cache import ResultCache
    from medview.resources import bundled_model_path

    bundle = load_bundle(bundled_model_path())
    kept = ResultCache().get(pydicom.dcmread(flagged, stop_before_pixels=True).SOPInstanceUID, 0, bundle.sha256,
                             bundle.results_key)
    assert kept is not None and "cardiomegaly" in kept.flagged

    broken = ScoringProcess(model=str(tmp_path / "no-such-model"), device="cpu")
    try:
        broken.submit("C", Path(flagged).parent)
        deadline = time.monotonic() + 120
        answers = []
        while not answers and time.monotonic() < deadline:
            answers = broken.answers()
            time.sleep(0.2)
    finally:
        broken.close()
    assert answers == [("C", f"not scored: model {tmp_path / 'no-such-model'}: not found")]


@pytest.mark.slow
def test_listen_scores_what_arrives_without_loading_torch_itself(medview_home, tmp_path):
    """`medview listen` in its own process, a demo radiograph pushed to it with storescu-like C-STORE
    (`medview pacs send`): the arrival line, then the AI's line; torch is mapped in the scoring process only."""
    demo = generate_demo(tmp_path / "demo", cases=2, seed=11, ct_slices=0)
    study_dir = Path(demo.radiographs[0]).parent
    port = free_port()
    env = dict(os.environ, MEDVIEW_HOME=str(medview_home))
    proc = subprocess.Popen([sys.executable, "-m", "medview", "listen", "--port", str(port), "--ae", "READER",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "READER on 127.0.0.1" in proc.stderr.readline()
        sent = subprocess.run([sys.executable, "-m", "medview", "pacs", "send", f"dicom://READER@127.0.0.1:{port}",
                               str(study_dir)], capture_output=True, text=True, env=env, timeout=120)
        assert sent.returncode == 0, sent.stderr
        arrival = proc.stdout.readline()
        study_uid = arrival.split(":")[0]
        assert " 1 instances from MEDVIEW" in arrival
        scored = proc.stdout.readline()
        assert scored.startswith(f"{study_uid}: AI ") and ("flagged" in scored), scored
        maps = Path(f"/proc/{proc.pid}/maps")
        if maps.exists():
            assert "libtorch" not in maps.read_text()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert PacsCache().study_dir(study_uid).is_dir()
