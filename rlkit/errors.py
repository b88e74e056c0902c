"""The two ways a command stops on purpose, each printed as one line without a traceback by
`rlkit.config.cli`: bad input from the user or from a file (UsageError, exit 2), and a run
that had to stop (RunError, exit 1). Every module raises these; none imports the config to do so."""


class UsageError(Exception):
    """Bad input (a command-line value, a damaged or hostile file): one line, exit code 2."""


class RunError(Exception):
    """A run that had to stop (a non-finite loss, a full disk): one line, exit code 1."""
