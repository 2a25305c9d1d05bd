"""One small hierarchy of errors whose messages are shown to users as they are.

Each message names the file (where there is one) and says the reason in words a radiologist or a PACS
administrator understands; no traceback is ever shown for these (the CLI and the app catch MedviewError).
"""


def without_file(message: str, *names: str | None) -> str:
    """`message` without a leading "<name>: " (the first of `names` it starts with), for a line or a result
    that names the file already (messages raised while reading a file start with its name, so that they
    stand alone in a log)."""
    for name in names:
        if name and message.startswith(f"{name}: "):
            return message[len(name) + 2:]
    return message


class MedviewError(Exception):
    """Base of every error medview reports to a user in words."""


class DicomReadError(MedviewError):
    """A file that is not usable DICOM: cut short, broken header, pixel data shorter than declared..."""


class ModelError(MedviewError):
    """A model bundle that cannot be used: missing keys, checksum mismatch, wrong output shapes..."""


class ReviewStoreError(MedviewError):
    """The review database cannot be opened or written (in use, corrupt, disk full)."""


class UsageError(MedviewError):
    """A command-line argument that cannot be used (missing path, unreadable folder): exit code 2."""
