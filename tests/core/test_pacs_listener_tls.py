"""medview's storage listener over TLS (`tls_cert_file` and `tls_key_file` in servers.toml's [medview]): a
sender that trusts its certificate stores, one that speaks plain DICOM or does not trust it is refused, and
nothing of theirs lands in the cache."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from pydicom.uid import generate_uid

from medview.core.net import PacsCache, PacsError, StorageListener, local_settings, resolve_server, send_paths
from tests.core.test_pacs import write_settings
from tests.core.test_pacs_orthanc import self_signed_certificate
from tests.factories import write_series


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_listener_over_tls_stores_only_from_senders_that_trust_it(tmp_path, medview_home):
    cert, key = self_signed_certificate(tmp_path)
    study = generate_uid()
    files = write_series(tmp_path / "ct", 3, study_uid=study, patient_id="PAT-TLS")
    write_settings(medview_home, f"""
[medview]
listen_port = 0
tls_cert_file = "{cert}"
tls_key_file = "{key}"
""")
    cache = PacsCache()
    with StorageListener(local_settings(), cache) as listener:
        where = f"MEDVIEW@127.0.0.1:{listener.port}"
        write_settings(medview_home, f"""
[medview]
ae_title = "SENDER"

[servers.trusting]
url = "dicom://{where}"
tls = true
ca_file = "{cert}"

[servers.untrusting]
url = "dicom://{where}"
tls = true
""")
        with pytest.raises(PacsError):
            send_paths(resolve_server(f"dicom://{where}"), [str(tmp_path / "ct")])  # plain DICOM
        with pytest.raises(PacsError):
            send_paths(resolve_server("untrusting"), [str(tmp_path / "ct")])  # the system's CAs do not know it
        assert not cache.present(study)

        results = send_paths(resolve_server("trusting"), [str(tmp_path / "ct")])
        assert [r.error for r in results] == ["", "", ""]
    stored = sorted(str(pydicom.dcmread(p).SOPInstanceUID) for p in cache.study_dir(study).rglob("*.dcm"))
    assert stored == sorted(str(pydicom.dcmread(f).SOPInstanceUID) for f in files)
