"""Errors the user can act on; the plugin and the CLI print them without a traceback."""


class UsageError(Exception):
    """Bad options, unknown model names, unreadable configuration."""
