"""A case's review to a real Orthanc: SR and KOS made, sent, and found there by query; a server that is not
there is said in words and leaves nothing behind."""

from __future__ import annotations

import pytest

from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.home import home_dir
from medview.core.net import PacsError, resolve_server
from medview.core.net.share import send_review
from medview.core.net.transfer import list_instances
from medview.core.review.export import collect_cases
from medview.core.review.store import ReviewStore
from tests.orthanc import ORTHANC, OrthancServer, dicomweb_plugin, free_port
from tests.review_data import make_reviewed_source

pytestmark = pytest.mark.skipif(ORTHANC is None or dicomweb_plugin() is None,
                                reason="Orthanc with its DICOMweb plugin is not installed "
                                       "(apt-get install orthanc orthanc-dicomweb)")


@pytest.fixture
def records(tmp_path):
    src = make_reviewed_source(tmp_path / "src")
    studies = build_studies(scan([str(src.root)]).instances)
    with ReviewStore() as store:
        found = collect_cases(studies, store)
    return src, found


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_the_review_lands_and_is_found_by_query(tmp_path, records, protocol):
    src, found = records
    orthanc = OrthancServer(tmp_path / "orthanc").start()
    try:
        server = resolve_server(orthanc.dimse_url if protocol == "dimse" else orthanc.web_url)
        steps = []
        result = send_review(server, [r for r in found if r.study_uid == src.case_a["study"]],
                             progress=lambda d, t: steps.append((d, t)))
        assert result.ok, result.summary()
        assert sorted(o.kind for o in result.objects) == ["KOS", "SR"]
        assert result.summary().startswith(f"Review sent to {server.name}: ") and "found there by query" in \
            result.summary()
        listed = {k.sop_uid for k in list_instances(server, src.case_a["study"])}
        assert {o.sop_uid for o in result.objects} <= listed
        assert steps[-1] == (2, 2)
        assert not list(home_dir("outbox").iterdir())  # the files made for sending are gone
    finally:
        orthanc.kill()


def test_a_server_that_is_not_there_is_said_and_leaves_nothing(records):
    _src, found = records
    with pytest.raises(PacsError, match="no answer"):
        send_review(resolve_server(f"dicom://NOBODY@127.0.0.1:{free_port()}"), found)
    assert not list(home_dir("outbox").iterdir())
