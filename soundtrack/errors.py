"""The one exception the library raises for a problem with the user's inputs or settings."""


class StageError(Exception):
    """A missing or mismatched input, or a setting that cannot work: the message is for the
    user as it stands (which file, what was found, what was expected, what to do). Library
    code raises it; only a script's ``main`` turns it into ``error: <message>`` and an exit
    status."""
