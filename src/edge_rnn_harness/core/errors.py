"""Errors the CLI turns into one line on stderr and exit code 2, and the marker child
processes use to hand one-line failure reasons back to the harness."""

#: a child process (export or worker) prints its failure reason on a line starting so
ERROR_PREFIX = "HARNESS-ERROR: "


class UsageError(ValueError):
    """Bad input from the user (an unknown name, a bad number, an unwritable path)."""


#: longest reason kept from a runtime's (sometimes page-long) error message
MAX_REASON_CHARS = 400


def error_line(error: BaseException, context: str = "") -> str:
    """`ERROR_PREFIX` + "context: Type: message" on one line (whitespace folded, at most
    MAX_REASON_CHARS of the message), for a child's stderr."""
    message = " ".join(str(error).split())
    if len(message) > MAX_REASON_CHARS:
        message = message[:MAX_REASON_CHARS] + "..."
    return f"{ERROR_PREFIX}{context + ': ' if context else ''}{type(error).__name__}: {message}"
