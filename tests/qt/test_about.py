"""The About dialog names the version, the research-use line and every bundled third-party licence."""

from medview import __version__
from medview.qt.about import THIRD_PARTY, about_html


def test_about_lists_version_research_use_and_licences():
    text = about_html()
    assert __version__ in text
    assert "Research use only, not for diagnosis" in text
    for _dist, name, licence, _role in THIRD_PARTY:
        assert name in text and licence in text
    # the licence consequence of the decoder choice (README): GDCM, not the GPLv3 pylibjpeg-libjpeg
    assert "GDCM" in text and "pylibjpeg-libjpeg" not in text and "GPL-licensed component" in text
