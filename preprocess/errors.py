"""The one base class of the errors a user can fix.

Every error whose message tells the user what was wrong and what to do derives from
TeamnetError; the command line prints those as one line (exit status 1) and lets any other
exception, which would be a bug, show its traceback. Each kind lives beside the code that
raises it (DatasetError in discover, VideoError in decode, StoreError in store, SplitError and
CheckpointError in teamnet); the two general kinds are here.
"""


class TeamnetError(Exception):
    """A problem with the user's input, files or setup; the message says what to do."""


class SettingsError(TeamnetError):
    """A setting whose value cannot work (a malformed size, an unknown choice)."""


class SetupError(TeamnetError):
    """A tool, package or file this needs is missing (ffmpeg, the sample clips, weights)."""
