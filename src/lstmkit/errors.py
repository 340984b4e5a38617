"""The one exception type for bad user input.

The CLI prints it as a single line and exits with code 2, without a traceback. Library
code raises it wherever the problem is the user's data, config or run directory, so the
message can name the file and what is wrong with it.
"""
from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback."""
