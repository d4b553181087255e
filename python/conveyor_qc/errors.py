"""The one base of every error that is the user's to fix, not a bug of ours.

Each area raises its own subclass (``ConfigError``, ``VideoError``, ``ModelError``, ...), whose
message names the problem and what to do. The command line prints such an error as one line and
exits 1; any other exception is a bug and keeps its traceback. Most subclasses are also a
``ValueError`` (bad input) or an ``OSError`` (an unwritable output), so code that caught those
before still catches them.
"""

from __future__ import annotations


class ConveyorQCError(Exception):
    """A problem with what was given (a file, a setting, a folder, a model); the message says which."""
