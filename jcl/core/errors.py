"""Exceptions that the command line turns into one readable line.

Every error a user can cause (bad input, missing or corrupt data, an
unwritable output folder) is raised as a subclass of :class:`JclError`;
``jcl.cli`` prints ``jcl: error: <message>`` and exits non-zero for these,
without a traceback. Anything else is a bug and keeps its traceback.
"""


class JclError(Exception):
    """Base class of all user-facing errors."""


class DataError(JclError):
    """A data set is missing, truncated, corrupt or fails its checksum."""


class ConfigError(JclError):
    """An unknown name or an impossible value on the command line or API."""


class OutputError(JclError):
    """The output folder cannot be written, or would lose results."""
