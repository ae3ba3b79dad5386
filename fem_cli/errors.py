"""The one error type for bad input: the CLI prints its message on one line and exits 2."""


class FemError(Exception):
    """A user-facing error: the message says what is wrong and where (file:line when a file)."""
