"""The one error type for bad input (the CLI prints its message on one line and exits 2), and how
an interruption is reported."""


class FemError(Exception):
    """A user-facing error: the message says what is wrong and where (file:line when a file)."""


# Ctrl-C (SIGINT): one line and exit code 130 (128 + SIGINT, as shells report it).
INTERRUPTED_EXIT_CODE = 130
INTERRUPTED_MESSAGE = "interrupted: rerun the same command to resume"
# Set by `fem loop` for its stage processes: the loop reports an interruption once, itself.
QUIET_INTERRUPT_ENV = "FEM_LOOP_STAGE"
