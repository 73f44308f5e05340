"""Errors raised on bad input; the CLI prints them as one line and exits non-zero."""


class DatacartoError(ValueError):
    """Bad input or state that the user can fix: the message names the problem."""
