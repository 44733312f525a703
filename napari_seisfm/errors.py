"""One exception type for everything a user can get wrong.

The CLI prints it as one line and exits non-zero; widgets show it as a notification. Anything
else that escapes is a bug in napari-seisfm.
"""


class SeisfmError(Exception):
    """A user-facing problem: the message names the file or input and says what is wrong."""


class SeisfmCancelled(SeisfmError):
    """The user stopped a long job; partial output is left marked incomplete."""
