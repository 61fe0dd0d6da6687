"""The one exception type for mistakes a user can make."""


class MakemoreError(Exception):
    """A problem caused by input, flags or files, not by a bug.

    The command line prints it as one line on stderr and exits with status 2.
    """
