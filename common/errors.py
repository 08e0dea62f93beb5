"""Errors that the command line turns into one clear line on stderr."""


class DlsuiteError(Exception):
    """A run failed for a reason the user can fix; the CLI prints it and exits 1."""

    exit_code = 1


class UsageError(DlsuiteError):
    """The command was called wrongly (bad flag value, bad combination); exit 2."""

    exit_code = 2


class DatasetError(DlsuiteError):
    """A dataset is missing, corrupt, or malformed; the message names the file and the fix."""


class CheckpointMismatch(DlsuiteError):
    """A checkpoint's weights do not fit the model (other sizes, other architecture)."""


class NoIntactCheckpoint(DlsuiteError):
    """A run has no checkpoint that can be read (none written, or every one damaged)."""
