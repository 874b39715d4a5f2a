"""User-facing errors: one clear sentence naming the input and what was expected."""


class AunetError(Exception):
    """An error in what the user gave aunet (a file, a folder, a parameter), not a bug in aunet.

    The CLI prints its message on one line and exits with status 2, without a traceback.
    """
