"""Errors the CLI turns into one line on stderr and exit code 2, and the marker child
processes use to hand one-line failure reasons back to the harness."""

#: a child process (export or worker) prints its failure reason on a line starting so
ERROR_PREFIX = "HARNESS-ERROR: "


class UsageError(ValueError):
    """Bad input from the user (an unknown name, a bad number, an unwritable path)."""


def error_line(error: BaseException, context: str = "") -> str:
    """`ERROR_PREFIX` + "context: Type: first line of the message", for a child's stderr."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return f"{ERROR_PREFIX}{context + ': ' if context else ''}{text}"
