"""`medview demo` writes its studies once, and again where an older demo folder has no priors to compare with."""

from __future__ import annotations

from medview.commands.demo import demo_folder
from medview.core import demo


def test_demo_studies_are_written_once_and_again_when_they_have_no_priors(monkeypatch, medview_home):
    calls = []

    def fake_generate(out, priors=False):
        calls.append(priors)
        (out / "PAT0001" / "ST01").mkdir(parents=True, exist_ok=True)
        if priors:
            (out / "PAT0001" / "ST02").mkdir(parents=True, exist_ok=True)
        (out / demo.MARKER).write_text("{}", encoding="utf-8")

    monkeypatch.setattr(demo, "generate_demo", fake_generate)
    out = demo_folder()
    assert out == medview_home / "demo" and calls == [True]
    assert demo_folder() == out and calls == [True]  # complete, with priors: kept
    (out / "PAT0001" / "ST02").rmdir()  # as written before demo studies had priors
    demo_folder()
    assert calls == [True, True] and (out / "PAT0001" / "ST02").is_dir()
