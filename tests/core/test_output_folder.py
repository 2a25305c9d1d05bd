"""The one rule of SPEC section 7 for output folders, as render and export apply it."""

import pytest

from medview.core.errors import UsageError
from medview.core.output_folder import check_output_folder


def test_folder_inputs_protect_everything_below(tmp_path):
    src = tmp_path / "cd"
    (src / "sub").mkdir(parents=True)
    for out in (src, src / "sub", src / "new"):
        with pytest.raises(UsageError, match="lies inside the source folder"):
            check_output_folder(str(out), [str(src)], below_files=False)
    assert check_output_folder(str(tmp_path / "elsewhere"), [str(src)]) == str((tmp_path / "elsewhere").resolve())


def test_file_inputs_protect_their_folder_and_below_files_decides_the_rest(tmp_path):
    archive = tmp_path / "export.zip"
    archive.write_bytes(b"PK")
    with pytest.raises(UsageError):
        check_output_folder(str(tmp_path), [str(archive)], below_files=False)
    assert check_output_folder(str(tmp_path / "png"), [str(archive)], below_files=False)
    with pytest.raises(UsageError):
        check_output_folder(str(tmp_path / "png"), [str(archive)], below_files=True)
    dicomdir = tmp_path / "DICOMDIR"
    dicomdir.write_bytes(b"")
    with pytest.raises(UsageError):  # a DICOMDIR's folder is read below itself either way
        check_output_folder(str(tmp_path / "png"), [str(dicomdir)], below_files=False)


def test_a_file_is_not_an_output_folder(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        check_output_folder(str(tmp_path / "out"), [])
