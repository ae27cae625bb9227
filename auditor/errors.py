"""Errors a user can fix. The CLI prints their message and exits with code 2."""


class UserError(Exception):
    """Bad input or usage: the message says what to fix."""
