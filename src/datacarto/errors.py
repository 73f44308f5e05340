"""Errors raised on bad input; the CLI prints them as one line and exits non-zero."""


class DatacartoError(ValueError):
    """Bad input or state that the user can fix: the message names the problem."""


def not_utf8(path, error: UnicodeDecodeError, *, offset: int = 0) -> DatacartoError:
    """The one line for a file that is not UTF-8: which byte, where (``offset``: of the decoded chunk)."""
    return DatacartoError(f"{path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                          f"{offset + error.start})")
