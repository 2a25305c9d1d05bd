"""medview against a real Orthanc on 127.0.0.1: echo, send, find, get (C-GET, C-MOVE, WADO-RS), resuming,
the PACS going away mid-retrieve, authentication, and two MEDVIEW_HOMEs sharing an SR through the PACS."""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest
from pydicom.uid import generate_uid

from medview.core.net import PacsCache, resolve_server, retrieve_study
from tests.core.test_pacs import run_cli, write_settings
from tests.factories import write_image, write_series
from tests.orthanc import ORTHANC, OrthancServer, dicomweb_plugin

pytestmark = [
    pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"),
    pytest.mark.skipif(dicomweb_plugin() is None, reason="the Orthanc DICOMweb plugin is not installed "
                                                        "(apt-get install orthanc-dicomweb)"),
]


@pytest.fixture
def orthanc(tmp_path):
    server = OrthancServer(tmp_path / "orthanc").start()
    yield server
    server.kill()  # its storage is the test's tmp_path: no need to wait for a clean shutdown


@pytest.fixture
def two_studies(tmp_path):
    """A CT of two series (5 + 3 slices) of one patient and a CR of another, in one folder."""
    root = tmp_path / "studies"
    ct = generate_uid()
    write_series(root / "ct1", 5, study_uid=ct, patient_id="PAT-CT", patient_name="Ct^Anna", study_date="20240105",
                 study_description="CT chest")
    write_series(root / "ct2", 3, study_uid=ct, patient_id="PAT-CT", patient_name="Ct^Anna", study_date="20240105",
                 study_description="CT chest", series_number=2)
    cr = generate_uid()
    write_image(root / "cr" / "cr.dcm", modality="CR", study_uid=cr, patient_id="PAT-CR", patient_name="Cr^Bo",
                study_date="20240320", position=None, orientation=None, slice_thickness=None)
    return root, ct, cr


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_echo_over_dimse_and_dicomweb(orthanc, capsys):
    assert run_cli(capsys, "pacs", "echo", orthanc.dimse_url)[0] == 0
    rc, out, _ = run_cli(capsys, "pacs", "echo", orthanc.web_url)
    assert rc == 0 and "answers" in out


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_send_then_find_by_patient_date_and_modality(orthanc, two_studies, capsys, protocol):
    root, ct, cr = two_studies
    url = orthanc.dimse_url if protocol == "dimse" else orthanc.web_url
    rc, _, err = run_cli(capsys, "pacs", "send", url, str(root))
    assert rc == 0, err
    assert orthanc.instance_count() == 9

    rc, out, _ = run_cli(capsys, "pacs", "find", url, "--patient-id", "PAT-CT", "--json")
    (study,) = lines(out)
    assert rc == 0 and study["study_uid"] == ct and study["patient_name"] == "Ct^Anna"
    assert study["instances"] == 8 and study["modalities"] == ["CT"] and study["description"] == "CT chest"
    assert study["study_date"] == "20240105"
    assert [s["study_uid"] for s in lines(run_cli(capsys, "pacs", "find", url, "--study-date", "20240301-20240331",
                                                  "--json")[1])] == [cr]
    assert [s["study_uid"] for s in lines(run_cli(capsys, "pacs", "find", url, "--modality", "CR", "--json")[1])] == [cr]
    assert lines(run_cli(capsys, "pacs", "find", url, "--patient-name", "Nobody*", "--json")[1]) == []


@pytest.mark.slow
def test_send_demo_data_by_stow_and_find_it(orthanc, tmp_path, capsys):
    assert run_cli(capsys, "demo-data", str(tmp_path / "demo"), "--cases", "2", "--seed", "1",
                   "--ct-slices", "0")[0] == 0
    files = [p for p in (tmp_path / "demo").rglob("*.dcm")]
    rc, _, err = run_cli(capsys, "pacs", "send", orthanc.web_url, str(tmp_path / "demo"))
    assert rc == 0, err
    assert orthanc.instance_count() == len(files)
    found = lines(run_cli(capsys, "pacs", "find", orthanc.dimse_url, "--json")[1])
    assert sum(s["instances"] for s in found) == len(files)


def cached_sops(study_uid: str) -> list[str]:
    return sorted(p.stem for p in PacsCache().study_dir(study_uid).rglob("*.dcm"))


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["c-get", "wado-rs"])
def test_get_into_cache_then_nothing_again_and_completes_a_partial_study(orthanc, two_studies, capsys, protocol):
    root, ct, _ = two_studies
    assert run_cli(capsys, "pacs", "send", orthanc.dimse_url, str(root))[0] == 0
    url = orthanc.dimse_url if protocol == "c-get" else orthanc.web_url
    sops = sorted(pydicom.dcmread(p).SOPInstanceUID for p in (root / "ct1").iterdir()) + sorted(
        pydicom.dcmread(p).SOPInstanceUID for p in (root / "ct2").iterdir())

    rc, out, err = run_cli(capsys, "pacs", "get", url, ct, "--json")
    (result,) = lines(out)
    assert rc == 0, err
    assert result["status"] == "ok" and result["fetched"] == 8 and result["missing"] == []
    assert cached_sops(ct) == sorted(sops)
    assert not list(PacsCache().incoming.iterdir())  # nothing half-written left

    (again,) = lines(run_cli(capsys, "pacs", "get", url, ct, "--json")[1])
    assert again["fetched"] == 0 and again["already_here"] == 8

    cache = PacsCache()
    for path in sorted(cache.study_dir(ct).rglob("*.dcm"))[:3]:  # a study that arrived in part
        path.unlink()
    assert len(cache.missing(ct)) == 3
    rc, out, _ = run_cli(capsys, "pacs", "get", url, ct, "--json")
    (resumed,) = lines(out)
    assert rc == 0 and resumed["fetched"] == 3 and resumed["already_here"] == 5
    assert cached_sops(ct) == sorted(sops) and cache.missing(ct) == []


@pytest.mark.slow
def test_get_by_c_move_to_medviews_listener(orthanc, two_studies, medview_home, capsys):
    root, ct, _ = two_studies
    assert run_cli(capsys, "pacs", "send", orthanc.dimse_url, str(root))[0] == 0
    write_settings(medview_home, f"""
[medview]
listen_port = {orthanc.medview_port}

[servers.pacs]
url = "{orthanc.dimse_url}"
retrieve = "move"
""")
    rc, out, err = run_cli(capsys, "pacs", "get", "pacs", ct, "--json")
    (result,) = lines(out)
    assert rc == 0, err
    assert result["status"] == "ok" and result["fetched"] == 8 and len(cached_sops(ct)) == 8


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_pacs_going_away_mid_retrieve_leaves_a_resumable_study(orthanc, tmp_path, capsys, protocol):
    study = generate_uid()
    # 20 MB: more than the kernel's socket buffers hold, so the kill stops WADO-RS's stream half-way too
    write_series(tmp_path / "ct", 40, study_uid=study, rows=512, cols=512)
    assert run_cli(capsys, "pacs", "send", orthanc.dimse_url, str(tmp_path / "ct"))[0] == 0
    server = resolve_server(orthanc.dimse_url if protocol == "dimse" else orthanc.web_url)

    def kill_after_some(done: int, total: int) -> None:
        if done == 5:
            orthanc.kill()

    result = retrieve_study(server, study, progress=kill_after_some)
    assert not result.complete and "connection was lost" in result.error
    assert 5 <= 40 - len(result.missing) < 40
    assert not list(PacsCache().incoming.iterdir())

    # the CLI with the PACS still gone: one clear line naming it, exit 2, nothing lost
    rc, _, err = run_cli(capsys, "pacs", "get", orthanc.dimse_url, study)
    assert rc == 2 and "no answer" in err and "Traceback" not in err
    assert len(PacsCache().missing(study)) == len(result.missing)

    orthanc.start()
    rc, out, err = run_cli(capsys, "pacs", "get", server.url or orthanc.dimse_url, study, "--json")
    (resumed,) = lines(out)
    assert rc == 0, err
    assert resumed["fetched"] == len(result.missing) and resumed["missing"] == []
    assert len(cached_sops(study)) == 40


def test_partial_get_says_what_is_missing(orthanc, two_studies, capsys, monkeypatch):
    root, ct, _ = two_studies
    assert run_cli(capsys, "pacs", "send", orthanc.dimse_url, str(root))[0] == 0
    from medview.core.net import dimse

    real = dimse.retrieve

    def only_one_series(server, local, cache, study_uid, wanted, listing, **kw):
        first = sorted({k.series_uid for k in wanted})[0]
        return real(server, local, cache, study_uid, {k for k in wanted if k.series_uid == first}, listing, **kw)

    monkeypatch.setattr(dimse, "retrieve", only_one_series)
    rc, out, err = run_cli(capsys, "pacs", "get", orthanc.dimse_url, ct)
    assert rc == 1 and "partial" in out
    assert "instances missing" in err and "again to finish" in err and err.count("\n") == 1


def test_dicomweb_authentication_from_a_password_file(tmp_path, medview_home, capsys):
    orthanc = OrthancServer(tmp_path / "orthanc", users={"reader": "s3cret-pw"}).start()
    try:
        (tmp_path / "pw").write_text("s3cret-pw\n")
        (tmp_path / "wrong").write_text("nope\n")
        write_settings(medview_home, f"""
[servers.web]
url = "{orthanc.web_url}"
username = "reader"
password_file = "{tmp_path / 'pw'}"

[servers.wrong]
url = "{orthanc.web_url}"
username = "reader"
password_file = "{tmp_path / 'wrong'}"
""")
        rc, _, err = run_cli(capsys, "pacs", "echo", "web")
        assert rc == 0, err
        rc, _, err = run_cli(capsys, "pacs", "echo", "wrong")
        assert rc == 2 and "access refused (HTTP 401" in err and "nope" not in err
        rc, _, err = run_cli(capsys, "pacs", "echo", orthanc.web_url)
        assert rc == 2 and "401" in err
    finally:
        orthanc.kill()


@pytest.mark.slow
def test_two_homes_share_an_sr_through_the_pacs(orthanc, tmp_path, monkeypatch, capsys):
    """Reader A exports an SR of a reviewed study and sends it; reader B finds the study and gets the SR."""
    from tests.review_data import make_reviewed_source

    home_a, home_b = tmp_path / "home_a", tmp_path / "home_b"
    monkeypatch.setenv("MEDVIEW_HOME", str(home_a))
    src = make_reviewed_source(tmp_path / "src")
    assert run_cli(capsys, "export", str(src.root), "--out", str(tmp_path / "out"), "--format", "sr")[0] == 0
    (sr_file,) = [p for p in (tmp_path / "out").rglob("*.dcm")
                  if pydicom.dcmread(p).PatientID == src.case_a["patient_id"] and p.name.endswith("_SR.dcm")]
    sr = pydicom.dcmread(sr_file)
    assert run_cli(capsys, "pacs", "send", orthanc.web_url, str(tmp_path / "out"))[0] == 0  # SR and KOS

    monkeypatch.setenv("MEDVIEW_HOME", str(home_b))
    (found,) = lines(run_cli(capsys, "pacs", "find", orthanc.dimse_url, "--patient-id", sr.PatientID, "--json")[1])
    assert found["study_uid"] == sr.StudyInstanceUID and "SR" in found["modalities"]
    rc, out, err = run_cli(capsys, "pacs", "get", orthanc.dimse_url, found["study_uid"], "--json")
    assert rc == 0, err
    got = {pydicom.dcmread(p).SOPInstanceUID: p for p in (home_b / "pacs").rglob("*.dcm")}
    assert got[sr.SOPInstanceUID].read_bytes().count(b"Nodule") == sr_file.read_bytes().count(b"Nodule")
    assert not (home_a / "pacs").exists() or not list((home_a / "pacs").rglob("*.dcm"))


def self_signed_certificate(folder) -> tuple:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    import subprocess

    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_verifies_the_servers_certificate(tmp_path, medview_home, capsys, two_studies):
    """DIMSE over TLS against Orthanc; HTTPS against a small local DICOMweb stand-in (Debian's Orthanc 1.10
    crashes serving HTTPS), both verified against the certificate named in servers.toml, refused without it."""
    import http.server
    import ssl
    import threading

    cert, key = self_signed_certificate(tmp_path)
    orthanc = OrthancServer(tmp_path / "orthanc", tls=(cert, key)).start()

    class EmptyQido(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    https = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EmptyQido)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    https.socket = context.wrap_socket(https.socket, server_side=True)
    threading.Thread(target=https.serve_forever, daemon=True).start()
    web_url = f"https://127.0.0.1:{https.server_address[1]}/dicom-web"
    try:
        write_settings(medview_home, f"""
[servers.web]
url = "{web_url}"
ca_file = "{cert}"

[servers.dimse]
url = "{orthanc.dimse_url}"
tls = true
ca_file = "{cert}"

[servers.untrusted]
url = "{orthanc.dimse_url}"
tls = true
""")
        rc, _, err = run_cli(capsys, "pacs", "echo", web_url)  # the system's CAs do not know it
        assert rc == 2 and "certificate cannot be verified" in err
        rc, _, err = run_cli(capsys, "pacs", "echo", "web")
        assert rc == 0, err
        assert run_cli(capsys, "pacs", "echo", "untrusted")[0] == 2
        assert run_cli(capsys, "pacs", "echo", "dimse")[0] == 0
        root, ct, _ = two_studies
        assert run_cli(capsys, "pacs", "send", "dimse", str(root / "ct1"))[0] == 0
        (result,) = lines(run_cli(capsys, "pacs", "get", "dimse", ct, "--json")[1])
        assert result["status"] == "ok" and result["fetched"] == 5
    finally:
        https.shutdown()
        orthanc.kill()
