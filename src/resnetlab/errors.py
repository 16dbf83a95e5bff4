"""The one class of errors that bad input raises: the command line prints it as one line naming the problem
and the fix; any other exception is a bug, reported as an internal error."""


class UsageError(ValueError):
    """Bad input (a flag, a file, a name, an argument): its message is one line with the fix."""


class UnknownArgument(UsageError, TypeError):
    """A keyword argument a builder or a config does not take: a ``TypeError``, as Python's own for a call."""


class DataError(UsageError):
    """Data that cannot be used as it is (too many unreadable files, a decoder that crashed): one line naming
    the files, printed after the run's last checkpoint was saved."""
