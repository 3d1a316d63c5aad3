"""The two kinds of failure the comparison reports to its caller."""

from __future__ import annotations

__all__ = ["CompareError", "DataError", "UsageError"]


class CompareError(Exception):
    """A problem the user can fix; its message is one line that says how.

    ``exit_code`` is what the command line exits with.
    """

    exit_code = 1


class UsageError(CompareError, ValueError):
    """The request itself is wrong: an unknown loss, dataset, column or file."""

    exit_code = 2


class DataError(CompareError, ValueError):
    """The request is well formed but the data cannot be used as asked."""

    exit_code = 1
