"""Errors the project raises for bad input; the CLI turns them into one-line messages."""


class RecsysError(Exception):
    """Base class: a problem with the user's input, not a bug. The message says what is wrong."""


class ConfigError(RecsysError):
    """A configuration value, flag or config file is invalid."""


class DataError(RecsysError):
    """An input file or table is missing, unreadable or has the wrong shape."""


class ModelError(RecsysError):
    """A model directory or SavedModel is missing or not what was expected."""
