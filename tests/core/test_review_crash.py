"""A decision shown as saved survives SIGKILL: a process writes decisions in a loop, printing each one after
the store call returned; it is killed mid-way; every printed decision must be in the database, intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from medview.core.review.store import CaseStatus, ReviewStore, Verdict

WRITER = textwrap.dedent("""
    import sys
    from medview.core.review.store import FindingInput, ReviewStore
    with ReviewStore(reviewer="crash") as s:
        i = 0
        while True:
            uid = "2.25.%d" % i
            s.open_case(uid)
            [f] = s.record_findings(uid, [FindingInput("1.2.%d" % i, "nodule", 0.8, True, "demo", "1", "abc")])
            s.set_verdict(f.id, "agree" if i % 2 else "disagree")
            s.set_note(uid, "note %d" % i)
            s.sign_off(uid)
            print(i, flush=True)  # shown as saved only after every call above returned
            i += 1
""")


def test_sigkill_mid_session_loses_nothing_shown_as_saved(medview_home):
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "MEDVIEW_HOME": str(medview_home)})
    printed = []
    try:
        for line in proc.stdout:
            printed.append(int(line))
            if len(printed) >= 40:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(printed) >= 40

    with ReviewStore() as store:
        assert store.integrity_check() == "ok"
        for i in printed:
            uid = f"2.25.{i}"
            case = store.case(uid)
            assert case.status is CaseStatus.REVIEWED and case.note == f"note {i}" and case.signed_off_by == "crash"
            [finding] = store.findings(uid)
            assert finding.verdict is (Verdict.AGREE if i % 2 else Verdict.DISAGREE)
        # the store is still usable after the crash
        store.set_note("2.25.after", "after the crash")
        assert store.case("2.25.after").note == "after the crash"
