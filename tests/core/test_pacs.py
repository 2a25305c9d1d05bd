"""PACS parts that need no PACS: server addresses, the cache, and medview's own storage listener."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medview.cli import main
from medview.core.net import InstanceKey, LocalSettings, PacsCache, PacsError, StorageListener, resolve_server
from medview.core.net.servers import local_settings, read_secret
from tests.factories import write_image, write_series
from tests.orthanc import free_port


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def write_settings(home: Path, text: str) -> None:
    (home / "servers.toml").write_text(text, encoding="utf-8")


def test_servers_by_url_and_by_name(medview_home, tmp_path):
    server = resolve_server("dicom://ORTHANC@127.0.0.1:4242")
    assert (server.kind, server.called_ae, server.host, server.port) == ("dimse", "ORTHANC", "127.0.0.1", 4242)
    web = resolve_server("https://pacs.example.org/dicom-web/")
    assert (web.kind, web.url, web.tls) == ("dicomweb", "https://pacs.example.org/dicom-web", True)
    (tmp_path / "pw").write_text("s3cret\n")
    write_settings(medview_home, f"""
[medview]
ae_title = "READER1"
allowed_callers = ["ORTHANC"]
cache_max_mb = 1

[servers.main]
url = "dicom://MAINPACS@10.0.0.5:104"
retrieve = "move"
tls = true

[servers.web]
url = "https://pacs.example.org/dicom-web"
username = "reader"
password_file = "{tmp_path / 'pw'}"
""")
    main_pacs = resolve_server("main")
    assert (main_pacs.called_ae, main_pacs.retrieve, main_pacs.tls) == ("MAINPACS", "move", True)
    assert read_secret(resolve_server("web"), "password") == "s3cret"
    assert "s3cret" not in repr(resolve_server("web"))
    local = local_settings()
    assert (local.ae_title, local.allowed_callers, local.listen_host) == ("READER1", ("ORTHANC",), "127.0.0.1")
    assert local.cache_max_bytes == 1024 * 1024


@pytest.mark.parametrize("text", ["unknown-name", "dicom://127.0.0.1:104", "ftp://x/y",
                                  "https://user:pw@pacs.example.org/dicom-web"])
def test_unusable_servers_are_one_line_and_exit_2(capsys, text):
    rc, out, err = run_cli(capsys, "pacs", "echo", text)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err and "pw" not in err.replace("password", "")


def test_clear_text_secret_is_refused(medview_home):
    write_settings(medview_home, '[servers.w]\nurl = "https://h/dicom-web"\nusername = "u"\npassword = "x"\n')
    with pytest.raises(PacsError, match="not in clear"):
        resolve_server("w")


def test_unreachable_server_is_exit_2_naming_it(capsys):
    port = free_port()
    rc, _, err = run_cli(capsys, "pacs", "echo", f"dicom://ORTHANC@127.0.0.1:{port}")
    assert rc == 2 and f"127.0.0.1:{port}" in err and err.count("\n") == 1
    rc, _, err = run_cli(capsys, "pacs", "find", f"http://127.0.0.1:{port}/dicom-web", "--patient-id", "X")
    assert rc == 2 and f"127.0.0.1:{port}" in err and "no answer" in err


def test_cache_writes_whole_files_once_and_knows_what_is_missing(tmp_path):
    cache = PacsCache(tmp_path / "pacs")
    path = write_image(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    assert cache.store_bytes(path.read_bytes(), study, series, sop) is True
    assert cache.store_bytes(path.read_bytes(), study, series, sop) is False
    assert not list(cache.incoming.iterdir())  # no temporary file left
    other = InstanceKey(series, "1.2.3.4")
    missing = cache.record_expected(study, {InstanceKey(series, sop), other}, "test")
    assert missing == [other] and cache.missing(study) == [other]
    hostile = cache.instance_path("../../etc", "..", "../passwd")
    assert cache.root in hostile.parents


def test_cache_bound_removes_oldest_unopened_first(tmp_path):
    cache = PacsCache(tmp_path / "pacs")
    studies = []
    for i in range(3):
        uid = generate_uid()
        path = write_image(tmp_path / f"{i}.dcm", study_uid=uid, rows=64, cols=64)
        ds = pydicom.dcmread(path)
        cache.store_bytes(path.read_bytes(), uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        cache.note_arrival(uid)
        studies.append(uid)
        time.sleep(0.01)
    cache.mark_opened(studies[0])  # the oldest was opened: it stays longer than the unopened second
    one = cache.size_bytes(studies[0])
    removed = cache.enforce_limit(2 * one, keep={studies[2]})
    assert removed == [studies[1]]
    assert cache.studies() == sorted([studies[0], studies[2]])


def _listener(tmp_path, **settings) -> StorageListener:
    local = LocalSettings(listen_port=0, **settings)
    return StorageListener(local, PacsCache(tmp_path / "pacs"))


def _client_association(port: int, calling_ae: str = "ORTHANC"):
    from pynetdicom import AE, StoragePresentationContexts

    ae = AE(ae_title=calling_ae)
    ae.requested_contexts = StoragePresentationContexts[:100]
    return ae.associate("127.0.0.1", port, ae_title="MEDVIEW")


def test_listener_refuses_unknown_calling_ae(tmp_path):
    with _listener(tmp_path, allowed_callers=("ORTHANC",)) as listener:
        assoc = _client_association(listener.port, "STRANGER")
        assert assoc.is_rejected
        assoc = _client_association(listener.port, "ORTHANC")
        assert assoc.is_established
        assoc.release()


def test_listener_answers_disk_full_and_bad_data_and_goes_on(tmp_path, monkeypatch):
    arrivals = []
    listener = _listener(tmp_path)
    listener.on_study = arrivals.append
    good = pydicom.dcmread(write_image(tmp_path / "good.dcm"))
    no_study = pydicom.dcmread(write_image(tmp_path / "bad.dcm", sop_uid=generate_uid()))
    del no_study.StudyInstanceUID
    with listener:
        real_store = listener.cache.store_bytes

        def full_disk(*args):
            raise OSError(errno.ENOSPC, "No space left on device")

        assoc = _client_association(listener.port)
        monkeypatch.setattr(listener.cache, "store_bytes", full_disk)
        assert assoc.send_c_store(good).Status == 0xA700
        monkeypatch.setattr(listener.cache, "store_bytes", real_store)
        assert assoc.send_c_store(no_study).Status & 0xF000 == 0xC000
        assert assoc.send_c_store(good).Status == 0x0000
        assoc.release()
        deadline = time.monotonic() + 5
        while not arrivals and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [(a.study_uid, a.received) for a in arrivals] == [(good.StudyInstanceUID, 1)]
    assert listener.cache.has(good.StudyInstanceUID, good.SeriesInstanceUID, good.SOPInstanceUID)


@pytest.mark.slow
def test_listen_command_receives_indexes_and_says_what_arrived(medview_home, tmp_path, capsys):
    """`medview listen` in its own process; `medview pacs send` to it (DIMSE both ways, 127.0.0.1 only)."""
    port = free_port()
    study = generate_uid()
    files = write_series(tmp_path / "in", 3, study_uid=study)
    env = dict(os.environ, MEDVIEW_HOME=str(medview_home))
    proc = subprocess.Popen([sys.executable, "-m", "medview", "listen", "--port", str(port), "--ae", "READER"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "READER on 127.0.0.1" in proc.stderr.readline()
        rc, _, err = run_cli(capsys, "pacs", "send", f"dicom://READER@127.0.0.1:{port}", str(tmp_path / "in"))
        assert rc == 0, err
        line = proc.stdout.readline()
        assert line.startswith(f"{study}: 3 instances from MEDVIEW")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    cached = PacsCache().study_dir(study)
    assert sorted(p.name for p in cached.rglob("*.dcm")) == sorted(
        f"{pydicom.dcmread(f).SOPInstanceUID}.dcm" for f in files)
    rc, out, _ = run_cli(capsys, "index", str(cached), "--json")
    assert rc == 0 and '"instances": 3' in out
